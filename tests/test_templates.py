"""One fingerprint for every template file that can be rendered: in the page key and in
every request's hash, so an edited partial regenerates the pages that use it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mkdocs_aigen.prompts import PACKAGED_TEMPLATES, Prompts, templates_fingerprint
from tests.conftest import Site
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE

GUIDE_SECTIONS = 7


def _copy_packaged(folder: Path) -> Path:
    shutil.copytree(PACKAGED_TEMPLATES, folder)
    return folder


# -- the fingerprint, as a plain function ------------------------------------------------


def test_a_copy_of_the_packaged_templates_changes_nothing(tmp_path: Path) -> None:
    # Only what Jinja2 would load counts, by relative path: a verbatim override is the
    # same prompt, and the hash does not depend on where the folders are.
    assert Prompts(_copy_packaged(tmp_path / "a")).fingerprint() == Prompts().fingerprint()
    assert Prompts(_copy_packaged(tmp_path / "b")).fingerprint() == Prompts().fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        "edit an override of a packaged partial",
        "edit a partial in a subfolder",
        "add a file",
        "rename a file",
    ],
)
def test_every_file_that_can_be_rendered_counts(tmp_path: Path, change: str) -> None:
    folder = _copy_packaged(tmp_path / "templates")
    (folder / "partials").mkdir()
    (folder / "partials" / "style.j2").write_text("Short sentences.\n", encoding="utf-8")
    before = templates_fingerprint([folder, PACKAGED_TEMPLATES])
    if change == "edit an override of a packaged partial":
        (folder / "_system.j2").write_text("{# a comment #}\n", encoding="utf-8")
    elif change == "edit a partial in a subfolder":
        (folder / "partials" / "style.j2").write_text("Long sentences.\n", encoding="utf-8")
    elif change == "add a file":
        (folder / "partials" / "extra.md").write_text("More.\n", encoding="utf-8")
    else:
        (folder / "partials" / "style.j2").rename(folder / "partials" / "tone.j2")
    assert templates_fingerprint([folder, PACKAGED_TEMPLATES]) != before


def test_tool_droppings_do_not_count(tmp_path: Path) -> None:
    folder = _copy_packaged(tmp_path / "templates")
    before = templates_fingerprint([folder])
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: x\n", encoding="utf-8")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert templates_fingerprint([folder]) == before


# -- real builds against the fake server -------------------------------------------------


@pytest.fixture
def templated(site: Site) -> Path:
    """The packaged templates copied into the site's ``templates_dir``, with the shared
    system text including an extra partial from a subfolder."""
    folder = _copy_packaged(site.root / "templates")
    (folder / "partials").mkdir()
    (folder / "partials" / "style.j2").write_text(
        "House style: short sentences.\n", encoding="utf-8"
    )
    system = folder / "_system.j2"
    include = '{% include "partials/style.j2" %}\n'
    system.write_text(system.read_text(encoding="utf-8") + include, encoding="utf-8")
    site.plugin["templates_dir"] = "templates"
    site.page("guide.md", GUIDE)
    return folder


def _system_texts(server: FakeOpenAI, start: int) -> list[str]:
    return [r.body["messages"][0]["content"] for r in server.log[start:]]


@pytest.mark.parametrize(
    ("partial", "old", "new"),
    [
        ("partials/style.j2", "short sentences", "plain words"),
        ("_system.j2", "technical writer", "careful technical writer"),
    ],
)
def test_an_edited_partial_regenerates_the_pages(
    site: Site, server: FakeOpenAI, templated: Path, partial: str, old: str, new: str
) -> None:
    site.build()
    assert len(server.log) == GUIDE_SECTIONS
    assert all("House style: short sentences." in t for t in _system_texts(server, 0))
    site.build()
    assert len(server.log) == GUIDE_SECTIONS  # nothing edited, nothing sent
    path = templated / partial
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    site.build()
    assert len(server.log) == 2 * GUIDE_SECTIONS
    assert all(new in t for t in _system_texts(server, GUIDE_SECTIONS))
    site.build()
    assert len(server.log) == 2 * GUIDE_SECTIONS


def test_an_edit_that_renders_the_same_text_still_regenerates(
    site: Site, server: FakeOpenAI, templated: Path
) -> None:
    # The page key and every request's hash see the same fingerprint: a comment added to
    # a partial misses the stored page AND every cached answer, rather than the first
    # alone (which would assemble the page again from answers to other templates).
    site.build()
    assert len(server.log) == GUIDE_SECTIONS
    page = templated / "_page.j2"
    page.write_text("{# reviewed #}\n" + page.read_text(encoding="utf-8"), encoding="utf-8")
    site.build()
    assert len(server.log) == 2 * GUIDE_SECTIONS
    first = [r.body["messages"] for r in server.log[:GUIDE_SECTIONS]]
    again = [r.body["messages"] for r in server.log[GUIDE_SECTIONS:]]
    assert sorted(map(str, first)) == sorted(map(str, again))  # the same prompts, asked again
