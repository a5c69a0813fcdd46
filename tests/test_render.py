"""``mkdocs-aigen render``: docs_dir as plain Markdown for any site generator.

The command runs in a child process against the fake server; "sends nothing" is what
the server saw. The front-matter surgery gets plain unit tests.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs_aigen.render import rendered_page, without_stub
from tests.conftest import Site
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE, SECRETS_HINT
from tests.test_cli import aigen
from tests.test_incremental import GUIDE_SECTIONS, _edit

PLAIN = """---
title: Plain  # a comment that must survive
---
# Plain page

Nothing generated here.
"""


def _site(site: Site) -> Path:
    guide = site.page(
        "guide.md", GUIDE.replace("title: Configuring Foo", "title: Configuring Foo\ntags: [a, b]")
    )
    site.page("plain.md", PLAIN)
    (site.docs / "img").mkdir()
    (site.docs / "img" / "logo.png").write_bytes(bytes(range(256)))
    return guide


def test_render_writes_every_file_and_a_build_after_it_pays_nothing(
    site: Site, server: FakeOpenAI
) -> None:
    _site(site)
    rendered = aigen(site, "render")
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    out = site.root / ".aigen" / "docs"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "guide.md",
        "img/logo.png",
        "plain.md",
    ]
    guide = (out / "guide.md").read_text(encoding="utf-8")
    assert guide.startswith("---\ntitle: Configuring Foo\ntags: [a, b]\n---\n")
    assert "aigen" not in guide
    assert "## The config file\n" in guide and "#### Secrets" not in guide
    assert "Text for The config file > Secrets." in guide
    assert "Hand-written text stays exactly where it is." in guide
    assert (out / "plain.md").read_bytes() == (site.docs / "plain.md").read_bytes()
    assert (out / "img" / "logo.png").read_bytes() == bytes(range(256))
    assert (site.root / ".aigen" / "aigen-report.json").is_file()
    assert server.count() == GUIDE_SECTIONS

    site.build()  # the same cache: nothing is asked twice
    assert server.count() == GUIDE_SECTIONS
    again = aigen(site, "render")
    assert again.returncode == 0, again.stderr
    assert ", 0 changed" in again.stdout
    assert server.count() == GUIDE_SECTIONS


def test_render_check_names_what_is_out_of_date_and_sends_nothing(
    site: Site, server: FakeOpenAI
) -> None:
    guide = _site(site)
    assert aigen(site, "render").returncode == 0
    fresh = aigen(site, "render", "--check")
    assert fresh.returncode == 0, fresh.stdout
    assert "is up to date (3 files)" in fresh.stdout

    _edit(guide, SECRETS_HINT, "Tokens live in the vault.")
    (site.docs / "img" / "logo.png").unlink()  # not a page: no neighbour changes
    stale = aigen(site, "render", "--check")
    assert stale.returncode == 1
    assert "guide.md: The config file > Secrets: not in the lock or cache" in stale.stdout
    assert "guide.md: out of date" in stale.stdout
    assert "img/logo.png: no longer in docs_dir" in stale.stdout
    assert server.count() == GUIDE_SECTIONS  # --check sent nothing

    assert aigen(site, "render").returncode == 0
    assert not (site.root / ".aigen" / "docs" / "img").exists()
    assert aigen(site, "render", "--check").returncode == 0
    assert server.count() == GUIDE_SECTIONS + 1


def test_render_refuses_an_output_folder_inside_docs_dir(site: Site) -> None:
    _site(site)
    result = aigen(site, "render", "--out", "docs/out")
    assert result.returncode == 2
    assert "must be outside docs_dir" in result.stderr
    assert not (site.docs / "out").exists()


# -- front matter ------------------------------------------------------------------------


def test_only_the_aigen_key_leaves_the_front_matter() -> None:
    text = (
        "---\n# kept comment\ntitle: 'A: b'\naigen:\n  brief: x\n  outline:\n    - A\n"
        "tags:\n  - one\n---\n# Body\n"
    )
    front, body = without_stub(text)
    assert front == "---\n# kept comment\ntitle: 'A: b'\ntags:\n  - one\n---\n"
    assert body == "# Body\n"


def test_front_matter_with_only_a_stub_goes_entirely() -> None:
    assert without_stub("---\naigen:\n  brief: x\n---\n# Body\n") == ("", "# Body\n")


def test_a_page_without_front_matter_is_left_as_it_is() -> None:
    text = "# Title\n\n---\n\naigen: not front matter\n"
    assert without_stub(text) == ("", text)


def test_the_block_goes_where_the_marker_stands() -> None:
    text = "---\naigen:\n  brief: x\n---\n# T\n\nBefore.\n\n<!-- aigen -->\n\nAfter.\n"
    page = rendered_page(text, "## A\n\nGenerated.\n", "t.md")
    assert page.index("Before.") < page.index("Generated.") < page.index("After.")
    assert "<!-- aigen -->" not in page
    assert not page.startswith("---")
