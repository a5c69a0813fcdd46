"""The page store's key and its files, as plain functions."""

from __future__ import annotations

import json
import pickle
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mkdocs_aigen.jobs import (
    SECTION_RECORD,
    DataError,
    Expansion,
    PageResult,
    SectionResult,
    Settings,
)
from mkdocs_aigen.pagecache import (
    PageStore,
    StoredPage,
    page_from_data,
    page_key,
    page_to_data,
    site_identity,
)

SETTINGS = Settings(site_name="Site", model="m")


def _at(field: str) -> int:
    """Where a stored section's record holds ``field``."""
    return SECTION_RECORD.index(field)


def _key(src_path: str, text: str, settings: Settings, templates: str) -> str:
    return page_key(site_identity(settings, templates), src_path, text)


def test_every_part_of_the_key_counts() -> None:
    base = _key("a.md", "text", SETTINGS, "t1")
    variants = {
        _key("b.md", "text", SETTINGS, "t1"),
        _key("a.md", "text!", SETTINGS, "t1"),
        _key("a.md", "text", SETTINGS._replace(model="m2"), "t1"),
        _key("a.md", "text", SETTINGS._replace(site_context="c"), "t1"),
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


def test_a_value_json_refuses_is_not_kept_and_leaves_nothing(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    result = PageResult(src_path="a.md", block="x")
    result.warnings.append(threading.Lock())  # type: ignore[arg-type]  # not JSON
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


def _full_page() -> StoredPage:
    """A page with every field set to something other than its default."""
    result = PageResult(
        src_path="dir/ü.md",
        sections=[
            SectionResult(
                path=("A", "B \u2028 C"),
                level=3,
                key="k" * 64,
                target=40,
                text="Text  \nwith a hard break\r\n\U0001f600",
                source="cache",
                augmented=True,
                lock_key="l" * 64,
                ratio=0.875,
                fallback=True,
            ),
            SectionResult(path=("Failed",), level=2, key="f", target=40, error="HTTP 500"),
        ],
        expansions=[Expansion(path=("A",), key="e", titles=("One", "Two"), source="api")],
        block="## A\n\nText.\n",
        polish_key="p",
        polished="## A\n\nPolished.\n",
        scores={"clarity": 7.0, "accuracy": 8.5},
        regenerated=True,
        warnings=["a warning"],
        asked=Counter({"section": 2, "expand": 1}),
    )
    return StoredPage(
        title="Tïtle",
        neighbours=("Prev", None),
        sections=3,
        result=result,
        site="/sites/docs/mkdocs.yml",
        marked="<!-- aigen-section kkkk -->\n\n## A\n\nText.\n\u00e9",
    )


def test_every_field_of_a_page_round_trips_through_json(tmp_path: Path) -> None:
    page = _full_page()
    assert page_from_data(json.loads(json.dumps(page_to_data(page)))) == page
    store = PageStore(tmp_path)
    store.put("k1", page)
    assert store.get("k1") == page
    assert (tmp_path / "pages" / "k1.page").is_file()


def test_fields_a_later_version_adds_are_ignored() -> None:
    data = page_to_data(_full_page())
    data["written_by"] = "a later version"
    data["result"]["site"] = "x"
    data["result"]["sections"][0].append([1, 2])
    assert page_from_data(data) == _full_page()


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("title"),
        lambda d: d.update(neighbours=["only one"]),
        lambda d: d.update(sections=True),
        lambda d: d["result"].update(sections="not a list"),
        lambda d: d["result"]["sections"][0].__setitem__(_at("text"), 3),
        lambda d: d["result"]["sections"][0].__setitem__(_at("path"), [1]),
        lambda d: d["result"]["sections"][0].__setitem__(_at("lock_key"), 1),
        lambda d: d["result"]["sections"][0].pop(),
        lambda d: d["result"]["sections"].append({"path": ["A"]}),
        lambda d: d["result"].update(asked={"section": "2"}),
        lambda d: d["result"].update(scores={"clarity": "high"}),
    ],
)
def test_a_record_of_another_shape_is_refused(damage: Any) -> None:
    data = page_to_data(_full_page())
    damage(data)
    with pytest.raises(DataError):
        page_from_data(data)


def test_a_file_that_is_not_a_page_is_a_miss(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    store.put("k1", _full_page())
    written = (tmp_path / "pages" / "k1.page").read_bytes()
    header = written.partition(b"\n")[0]
    for content in (
        b"[1, 2]",
        b"{}",
        b"\xff\xfe",
        pickle.dumps(_full_page()),
        b"[" * 100_000,
        header,  # no block at all: a truncated file
        header + b"\n\xff",  # a block that is not UTF-8
        b'{"result": 1}\n',
        written[: len(written) // 2],
    ):
        (tmp_path / "pages" / "k1.page").write_bytes(content)
        assert store.get("k1") is None


def test_pages_of_earlier_formats_go_with_the_leftovers(tmp_path: Path) -> None:
    store = PageStore(tmp_path)
    store.put("k1", _full_page())
    (tmp_path / "pages" / "old.pickle").write_bytes(pickle.dumps(_full_page()))
    (tmp_path / "pages" / "older.json").write_text(json.dumps(page_to_data(_full_page())))
    store.remove_leftovers()
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["k1.page"]


def test_sections_citing_the_same_files_round_trip_and_each_list_is_checked() -> None:
    """Equal source lists are stored and read once and shared; each list is checked."""
    cited = (("src/a.py", "a" * 64), ("src/b.py", "b" * 64))
    other = (("src/c.py", "c" * 64),)
    sections = [
        SectionResult(path=(title,), level=2, key=title, target=10, text="x", sources=sources)
        for title, sources in (("One", cited), ("Two", cited), ("Three", other), ("Four", ()))
    ]
    page = StoredPage("T", (None, None), 4, PageResult("p.md", sections))
    data = page_to_data(page)
    assert len(data["result"]["cited"]) == 2
    back = page_from_data(json.loads(json.dumps(data)))
    assert back == page
    assert back.result.sections[0].sources is back.result.sections[1].sources
    for bad in ([["src/a.py"]], [["src/c.py", 3]], "src/a.py"):
        data = page_to_data(page)
        data["result"]["cited"][1] = bad
        with pytest.raises(DataError):
            page_from_data(data)
    for index in (2, -1, True, "0"):
        data = page_to_data(page)
        data["result"]["sections"][0][_at("cited")] = index
        with pytest.raises(DataError):
            page_from_data(data)


def test_texts_are_spans_of_the_block_where_they_stand_in_it() -> None:
    block = "## One\n\nFirst text.\n\n## Two\n\nSecond, rewritten by the polish.\n"
    sections = [
        SectionResult(path=("One",), level=2, key="a", target=10, text="First text."),
        SectionResult(path=("Two",), level=2, key="b", target=10, text="Second text."),
        SectionResult(path=("Three",), level=2, key="c", target=10, text=""),
        SectionResult(path=("Four",), level=2, key="d", target=10, error="HTTP 500"),
    ]
    page = StoredPage("T", (None, None), 4, PageResult("p.md", sections, block=block))
    data = page_to_data(page)
    records = data["result"]["sections"]
    start = block.index("First text.")
    assert records[0][_at("text")] == [start, start + len("First text.")]
    assert records[1][_at("text")] == "Second text."
    assert page_from_data(json.loads(json.dumps(data))) == page
    for span in ([0, len(block) + 1], [5, 4], [-1, 3], [0], [True, 3], [0, 2.0], 7):
        data = page_to_data(page)
        data["result"]["sections"][0][_at("text")] = span
        with pytest.raises(DataError):
            page_from_data(data)


def test_a_lock_key_is_stored_only_where_it_is_not_the_key() -> None:
    sections = [
        SectionResult(path=("A",), level=2, key="k", target=1, text="a", lock_key="k"),
        SectionResult(path=("B",), level=2, key="k2", target=1, text="b", lock_key="other"),
    ]
    page = StoredPage("T", (None, None), 2, PageResult("p.md", sections, block="a b"))
    records = page_to_data(page)["result"]["sections"]
    assert records[0][_at("lock_key")] is None and records[1][_at("lock_key")] == "other"
    assert page_from_data(page_to_data(page)) == page


#: Values of each JSON type, and the fields of a stored section that may hold each.
_VALID_FOR = {
    "a mapping": ({}, ()),
    "a float": (1.5, ("ratio", "created")),
    "a string": (
        "text",
        ("key", "text", "error", "source", "lock_key", "lock_inputs", "answer_key"),
    ),
    "a bool": (True, ("augmented", "fallback", "edited")),
}


@pytest.mark.parametrize(
    ("field", "wrong"),
    [
        (field, value)
        for value, valid in _VALID_FOR.values()
        for field in SECTION_RECORD
        if field not in valid
    ],
)
def test_every_field_of_a_stored_section_is_checked(field: str, wrong: Any) -> None:
    """A value of a type the field never holds is refused, naming the field."""
    data = page_to_data(_full_page())
    data["result"]["sections"][0][_at(field)] = wrong
    with pytest.raises(DataError, match=field):
        page_from_data(data)
