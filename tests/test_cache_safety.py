"""A cache directory restored from a shared store must not run code (no pickle is read).

The poison is a real pickle whose ``__reduce__`` creates a marker file when it is loaded,
planted the way anyone with write access to the store could: with plain ``diskcache``
under the keys a build stored, and over the stored page files. The builds are the real
``mkdocs build`` command against the fake server.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import diskcache

from mkdocs_aigen.cache import CachedAnswer, ResponseCache
from tests.conftest import Site
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE

GUIDE_SECTIONS = 7


class Evil:
    """Loading this pickle creates ``marker`` (what a real attack would do is worse)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _cache_dir(site: Site) -> Path:
    return site.root / ".cache" / "plugin" / "aigen"


def _poison_answers(directory: Path, marker: Path) -> int:
    """Replace every stored answer by the poison; returns how many there were."""
    cache = diskcache.Cache(str(directory))
    try:
        keys = list(cache.iterkeys())
        for key in keys:
            cache.set(key, Evil(marker))
    finally:
        cache.close()
    return len(keys)


def _poison_pages(directory: Path, marker: Path) -> int:
    """Overwrite every stored page file with the poison; returns how many there were."""
    files = [path for path in (directory / "pages").iterdir() if path.is_file()]
    for path in files:
        path.write_bytes(pickle.dumps(Evil(marker)))
    return len(files)


def test_a_poisoned_cache_is_a_miss_and_runs_no_code(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", GUIDE)
    site.build()
    first = site.html("guide.md")
    assert len(server.log) == GUIDE_SECTIONS
    marker = site.root / "pwned"
    assert _poison_answers(_cache_dir(site), marker) == GUIDE_SECTIONS
    assert _poison_pages(_cache_dir(site), marker) == 1
    result = site.cli("build")
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    # Every planted entry was a miss: each section was asked again, and the page is whole.
    assert len(server.log) == 2 * GUIDE_SECTIONS
    assert site.html("guide.md") == first
    # The answers and the page were stored again, as data: the next build asks nothing.
    result = site.cli("build")
    assert result.returncode == 0, result.stderr
    assert len(server.log) == 2 * GUIDE_SECTIONS
    assert not marker.exists()


def test_a_poisoned_page_file_alone_is_assembled_from_the_answers(
    site: Site, server: FakeOpenAI
) -> None:
    site.page("guide.md", GUIDE)
    site.build()
    first = site.html("guide.md")
    marker = site.root / "pwned"
    assert _poison_pages(_cache_dir(site), marker) == 1
    result = site.cli("build")
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert len(server.log) == GUIDE_SECTIONS  # the answers were still good
    assert site.html("guide.md") == first


def test_a_pickled_key_or_value_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    planted = diskcache.Cache(str(tmp_path / "cache"))
    planted.set(("a", "tuple", "key"), Evil(marker))  # a key diskcache must pickle
    planted.set("value", Evil(marker))
    planted.close()
    cache = ResponseCache(tmp_path / "cache", warn=_no_warning)
    try:
        assert list(cache.keys()) == ["value"]
        assert cache.get("value") is None
        assert cache.set("value", CachedAnswer("Fine.", 1, 2, "m", "section", "a.md: A"))
        assert cache.get("value") == CachedAnswer("Fine.", 1, 2, "m", "section", "a.md: A")
        assert cache.info()[0] == 2
    finally:
        cache.close()
    assert not marker.exists()


def test_answers_are_stored_as_json_text(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, warn=_no_warning)
    try:
        cache.set("k", CachedAnswer("Text  \n\U0001f600", 3, 4, "m", "section", "label"))
    finally:
        cache.close()
    raw = diskcache.Cache(str(tmp_path))
    try:
        # A plain reader sees a string, never a pickled object.
        assert isinstance(raw.get("k"), str)
    finally:
        raw.close()


def _no_warning(message: str) -> None:
    """A warning from the cache here is a bug: it would mean the cache gave up."""
    raise AssertionError(message)
