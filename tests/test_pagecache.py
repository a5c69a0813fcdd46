"""The page store's key and its files, as plain functions."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from mkdocs_aigen.jobs import PageResult, Settings
from mkdocs_aigen.pagecache import PageStore, StoredPage, page_key, site_identity

SETTINGS = Settings(site_name="Site", model="m")


def _key(src_path: str, text: str, settings: Settings, templates: str) -> str:
    return page_key(site_identity(settings, templates), src_path, text)


def test_every_part_of_the_key_counts() -> None:
    base = _key("a.md", "text", SETTINGS, "t1")
    variants = {
        _key("b.md", "text", SETTINGS, "t1"),
        _key("a.md", "text!", SETTINGS, "t1"),
        _key("a.md", "text", dataclasses.replace(SETTINGS, model="m2"), "t1"),
        _key("a.md", "text", dataclasses.replace(SETTINGS, site_context="c"), "t1"),
        _key("a.md", "text", SETTINGS, "t2"),
    }
    assert base not in variants
    assert len(variants) == 5
    assert _key("a.md", "text", SETTINGS, "t1") == base


def test_parts_do_not_run_together() -> None:
    # With a plain separator these two would hash the same text.
    assert _key("a|b", "c", SETTINGS, "t") != _key("a", "b|c", SETTINGS, "t")


def _page(result: PageResult) -> StoredPage:
    return StoredPage(title="T", neighbours=(None, "Next"), sections=1, result=result)


def test_a_page_round_trips(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    page = _page(PageResult(src_path="a.md", block="## A\n\nText.\n"))
    store.put("k1", page)
    assert store.get("k1") == page
    assert list(store) == ["k1"]
    assert store.size() > 0
    assert store.get("missing") is None


def test_a_value_pickle_refuses_is_not_kept_and_leaves_nothing(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    result = PageResult(src_path="a.md", block="x")
    result.warnings.append(threading.Lock())  # type: ignore[arg-type]  # cannot be pickled
    store.put("k1", _page(result))  # must not raise: the page is only not stored
    assert store.get("k1") is None
    assert list((tmp_path / "pages").iterdir()) == []


@pytest.mark.parametrize("count", [0, 3])
def test_clear_removes_pages_and_leftovers(tmp_path: Path, count: int) -> None:
    store = PageStore(tmp_path)
    for number in range(count):
        store.put(f"k{number}", _page(PageResult(src_path="a.md", block="x")))
    (tmp_path / "pages").mkdir(exist_ok=True)
    (tmp_path / "pages" / "tmpabc.tmp").write_bytes(b"half")
    assert store.clear() == count
    assert list((tmp_path / "pages").iterdir()) == []
