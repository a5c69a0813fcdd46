"""Pure parts of grounding: parsing ``sources`` entries, reading files once, the budget,
the "Sources:" line and the repository link."""

from __future__ import annotations

from pathlib import Path

import pytest
from mkdocs.config.defaults import MkDocsConfig

from mkdocs_aigen.citations import cite_line
from mkdocs_aigen.grounding import _water_level
from mkdocs_aigen.setup import source_link
from mkdocs_aigen.sources import SourceError, SourceLibrary, SourceSpec, parse_source


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("src/app/config.py", SourceSpec("src/app/config.py", "file", "src/app/config.py")),
        ("src/**/*.py", SourceSpec("src/**/*.py", "glob", "src/**/*.py")),
        ("src/a.py:3-9", SourceSpec("src/a.py:3-9", "lines", "src/a.py", start=3, end=9)),
        (
            "src/a.py:defaults",
            SourceSpec("src/a.py:defaults", "section", "src/a.py", name="defaults"),
        ),
        ("docs/x.md:intro", SourceSpec("docs/x.md:intro", "section", "docs/x.md", name="intro")),
        (
            "a.py::Config.load",
            SourceSpec("a.py::Config.load", "symbol", "a.py", name="Config.load"),
        ),
        (
            "app.config:Config",
            SourceSpec("app.config:Config", "module", "app.config", name="Config"),
        ),
        (
            {"source": "app.cli:main", "code": True},
            SourceSpec("app.cli:main", "module", "app.cli", name="main", code=True),
        ),
    ],
)
def test_entries_parse_into_their_kind(written: object, expected: SourceSpec) -> None:
    assert parse_source(written) == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("", "a path, glob"),
        (3, "a path, glob"),
        ("a.py:0-4", "1 <= START <= END, found 0-4"),
        ("a.py::", "with a dotted object name"),
        ({"path": "a.py"}, "unknown keys: path"),
        ({"source": "a.py", "code": "yes"}, "'code' must be true or false"),
    ],
)
def test_malformed_entries_say_what_is_expected(written: object, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_source(written)


def test_each_file_is_read_once_per_library(tmp_path: Path) -> None:
    path = tmp_path / "config.py"
    path.write_text("# --8<-- [start:a]\nA = 1\n# --8<-- [end:a]\nB = 2\n", encoding="utf-8")
    library = SourceLibrary(tmp_path)
    [whole] = library.resolve(parse_source("config.py"))
    path.write_text("changed after the first read\n", encoding="utf-8")
    # A range, a section and the file again: all from the one read.
    [lines] = library.resolve(parse_source("config.py:4-4"))
    [section] = library.resolve(parse_source("config.py:a"))
    assert (lines.text, section.text) == ("B = 2", "A = 1")
    assert library.resolve(parse_source("config.py"))[0] is whole
    assert library.files_read == [tmp_path / "config.py"]
    # The next build's library reads it again.
    assert SourceLibrary(tmp_path).resolve(parse_source("config.py"))[0].text.startswith("changed")


def test_a_range_is_labelled_and_hashed_apart_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("one\ntwo\nthree\n", encoding="utf-8")
    library = SourceLibrary(tmp_path)
    [part] = library.resolve(parse_source("a.py:2-3"))
    [whole] = library.resolve(parse_source("a.py"))
    assert (part.label, part.text, part.lines) == ("a.py:2-3", "two\nthree", (2, 3))
    assert part.digest != whole.digest
    assert str(part) == f"a.py:2-3@{part.digest}"


@pytest.mark.parametrize(
    ("sizes", "limit", "level"),
    [
        ([10, 20, 30], 100, 30),  # everything fits: nothing is cut
        ([10, 20, 300], 100, 70),  # the largest gives way first
        ([100, 100, 100], 90, 30),
        ([5, 500, 600], 205, 100),
    ],
)
def test_the_water_level_keeps_small_sources_whole(
    sizes: list[int], limit: int, level: int
) -> None:
    assert _water_level(sizes, limit) == level
    if sum(sizes) > limit:  # cut: what is left fits the limit
        assert sum(min(size, level) for size in sizes) <= limit


def _config(tmp_path: Path, **values: object) -> MkDocsConfig:
    config = MkDocsConfig(config_file_path=str(tmp_path / "mkdocs.yml"))
    config.load_dict({"site_name": "x", "docs_dir": str(tmp_path / "docs"), **values})
    (tmp_path / "docs").mkdir(exist_ok=True)
    errors, _ = config.validate()
    assert not errors
    return config


def test_the_repository_link_points_at_the_source_not_the_docs(tmp_path: Path) -> None:
    github = _config(tmp_path, repo_url="https://github.com/acme/lumen", edit_uri="edit/main/docs/")
    assert source_link(github) == "https://github.com/acme/lumen/blob/main/"
    gitlab = _config(
        tmp_path, repo_url="https://gitlab.com/acme/lumen", edit_uri="-/edit/dev/docs/"
    )
    assert source_link(gitlab) == "https://gitlab.com/acme/lumen/-/blob/dev/"
    assert source_link(_config(tmp_path)) is None  # no repository named


def test_the_sources_line_links_or_names_each_file(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("one\ntwo\n", encoding="utf-8")
    library = SourceLibrary(tmp_path)
    texts = [*library.resolve(parse_source("a.py:2-2")), *library.resolve(parse_source("a.py"))]
    assert cite_line(texts, None) == "*Sources: `a.py:2-2`, `a.py`*"
    assert cite_line(texts, "https://github.com/o/r/blob/main/") == (
        "*Sources: [`a.py:2-2`](https://github.com/o/r/blob/main/a.py#L2-L2), "
        "[`a.py`](https://github.com/o/r/blob/main/a.py)*"
    )
