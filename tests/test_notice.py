"""AI-content labels: the page notice, ``data-aigen`` on each generated section and the
generator tag, built for real with MkDocs' own theme and with Material."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from html.parser import HTMLParser
from importlib.util import find_spec
from typing import Any

import pytest
import yaml
from mkdocs.exceptions import Abort

from mkdocs_aigen.jobs import SectionResult
from mkdocs_aigen.notice import mark_sections, wrap_marked
from tests.conftest import Site, needs, warning_messages
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE

SECTIONS = 7


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def _report(site: Site) -> dict[str, Any]:
    return json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))


def _check_labels(site: Site, html: str) -> None:
    """One ``data-aigen`` div per section, holding its heading, keyed by its request hash."""
    hashes = [
        attrs["data-aigen"] for tag, attrs in _tags(html) if tag == "div" and "data-aigen" in attrs
    ]
    # Siblings: each section's div closes before the next one opens.
    between = re.split(r'<div class="aigen-section" data-aigen="\w+">', html)[1:-1]
    assert all(piece.rstrip().endswith("</div>") for piece in between), between
    details = _report(site)["pages"]["guide.md"]["section_details"]
    assert hashes == [d["hash"] for d in details]
    assert len(hashes) == SECTIONS
    for detail in details:
        title = detail["path"].split(" > ")[-1]
        opening = f'data-aigen="{detail["hash"]}">'
        after = html[html.index(opening) :]
        # The section's own heading is the first thing inside its div.
        assert re.match(rf'data-aigen="\w+">\s*<h[23][^>]*>{re.escape(title)}', after), after[:200]
    generators = [
        attrs.get("content") or ""
        for tag, attrs in _tags(html)
        if tag == "meta" and attrs.get("name") == "generator"
    ]
    assert any(g.startswith("mkdocs-aigen ") and "model test-model" in g for g in generators)


def test_plain_mkdocs_labels_every_section_and_shows_the_notice(
    site: Site, server: FakeOpenAI
) -> None:
    site.plugin["notice"] = {"enabled": True}
    site.page("guide.md", GUIDE)
    site.page("plain.md", "# Plain\n\nNo stub.\n")
    site.build()
    html = site.html("guide.md")
    _check_labels(site, html)
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    notice = (
        f"Parts of this page were written by an AI model (test-model), last generated on {today}."
    )
    assert f"<p>{notice}</p>" in html
    # At the top: under the title, before the author's own text.
    assert html.index(notice) < html.index("Hand-written text stays exactly where it is.")
    plain = site.html("plain.md")
    assert "data-aigen" not in plain and "mkdocs-aigen" not in plain
    assert "written by an AI model" not in plain
    assert "<!-- aigen-section" not in html  # every marker became a div


@needs(None if find_spec("material") else "mkdocs-material (pip install mkdocs-material)")
def test_material_keeps_the_attributes_and_renders_the_notice_as_an_admonition(
    site: Site, server: FakeOpenAI
) -> None:
    site.extra_config = {"theme": {"name": "material"}, "markdown_extensions": ["admonition"]}
    site.plugin["notice"] = {
        "enabled": True,
        "position": "bottom",
        "admonition": "info",
        "template": "Written with {{ model }} ({{ sections }} sections).",
    }
    site.page("guide.md", GUIDE)
    site.build()
    html = site.html("guide.md")
    _check_labels(site, html)
    box = re.search(
        r'<div class="admonition info">\s*<p class="admonition-title">About this page</p>\s*'
        r"<p>Written with test-model \(7 sections\)\.</p>",
        html,
    )
    assert box is not None
    assert box.start() > html.index("More hand-written text.")


def test_a_page_can_turn_the_notice_off(site: Site, server: FakeOpenAI) -> None:
    site.plugin["notice"] = {"enabled": True}
    site.page("guide.md", GUIDE.replace("  tone: precise, friendly\n", "  notice: false\n"))
    site.build()
    html = site.html("guide.md")
    assert "written by an AI model" not in html
    assert html.count("data-aigen=") == SECTIONS  # the labels stay


def test_a_bad_notice_template_names_the_option(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    site.plugin["notice"] = {"enabled": True, "template": "Written by {{ model "}
    site.page("guide.md", GUIDE)
    with pytest.raises(Abort):
        site.build()
    assert any(
        m.startswith("aigen: mkdocs.yml: 'notice.template': not a valid Jinja2 template (line 1")
        for m in warning_messages(warnings)
    )
    assert server.log == []
    # A variable the template does not have: named, with the ones it has.
    site.plugin["notice"] = {"enabled": True, "template": "By {{ modle }}"}
    with pytest.raises(Abort):
        site.build()
    assert any(
        "'notice.template': 'modle' is undefined (variables: model, models, date" in m
        for m in warning_messages(warnings)
    )


def test_a_person_edit_in_the_lock_shows_in_notice_and_report(
    site: Site, server: FakeOpenAI
) -> None:
    site.plugin["lock"] = "aigen.lock"
    site.plugin["notice"] = {
        "enabled": True,
        "template": "{% if edited %}Edited by a person.{% else %}Model text only.{% endif %}",
    }
    site.page("guide.md", GUIDE)
    site.build()
    assert "Model text only." in site.html("guide.md")
    written = subprocess.run(
        [sys.executable, "-m", "mkdocs_aigen.cli", "-f", str(site.config_file), "lock"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    lock_path = site.root / "aigen.lock"
    site.build()
    assert "Model text only." in site.html("guide.md")
    origins = {d["origin"] for d in _report(site)["pages"]["guide.md"]["section_details"]}
    assert origins == {"lock"}

    lock = yaml.safe_load(lock_path.read_text(encoding="utf-8"))
    (overview,) = [e for e in lock["pages"]["guide.md"]["sections"] if e["path"] == "Overview"]
    overview["text"] = "A person wrote this overview."
    lock_path.write_text(yaml.safe_dump(lock), encoding="utf-8")
    site.build()
    assert "Edited by a person." in site.html("guide.md")
    details = _report(site)["pages"]["guide.md"]["section_details"]
    edited = [d["path"] for d in details if d["origin"] == "lock, edited by a person"]
    assert edited == ["Overview"]
    assert all(d["date"] for d in details)
    assert len(server.log) == SECTIONS


# -- the markers, as text --------------------------------------------------------------


def _section(path: tuple[str, ...], key: str, text: str | None = "body") -> SectionResult:
    return SectionResult(path=path, level=len(path) + 1, key=key, target=10, text=text)


def test_markers_skip_headings_in_code_and_failed_sections() -> None:
    block = "## One\n\n```\n## Two\n```\n\n## Two\n\nNot generated.\n\n### Three\n\nText.\n\n"
    sections = [
        _section(("One",), "a" * 64),
        _section(("Two",), "b" * 64, text=None),
        _section(("Two", "Three"), "c" * 64),
    ]
    marked = mark_sections(block, sections)
    assert marked.count("<!-- aigen-section ") == 2
    assert marked.count("<!-- /aigen-section -->") == 2
    one = marked.index("aigen-section " + "a" * 64)
    assert one < marked.index("## One") < marked.index("<!-- /aigen-section -->")
    # The failed section's placeholder sits between the pairs, outside both.
    assert "b" * 64 not in marked
    html = wrap_marked(marked, ["a" * 64, "c" * 64])
    assert html.count("<div") == 2 == html.count("</div>")


def test_one_comment_per_section_and_one_where_generated_text_stops() -> None:
    """A start ends the section before it: sibling divs from one comment per section."""
    import markdown

    keys = ["a" * 64, "b" * 64, "c" * 64]
    block = "## One\n\nFirst.\n\n## Two\n\nSecond.\n\n### Three\n\nThird.\n\n"
    sections = [
        _section(("One",), keys[0]),
        _section(("Two",), keys[1]),
        _section(("Two", "Three"), keys[2]),
    ]
    marked = mark_sections(block, sections) + "\nHand-written.\n"
    assert marked.count("<!-- aigen-section ") == 3
    assert marked.count("<!-- /aigen-section -->") == 1
    html = wrap_marked(markdown.markdown(marked), keys)
    assert "<!--" not in html
    pieces = re.findall(r'<div class="aigen-section" data-aigen="(\w+)">(.*?)</div>', html, re.S)
    assert [key for key, _ in pieces] == keys
    for (_, inner), words in zip(pieces, ["First.", "Second.", "Third."], strict=True):
        assert inner.count("<h") == 1 and words in inner and "<div" not in inner
    assert html.rstrip().endswith("</div>\n\n<p>Hand-written.</p>")
    # Comments that are not the ones the page's sections call for: no divs at all.
    assert "<div" not in wrap_marked(markdown.markdown(marked), [keys[0], keys[2], keys[1]])
    assert "<div" not in wrap_marked(markdown.markdown(marked), keys[:2])


def test_unpaired_markers_leave_no_broken_markup() -> None:
    key = "d" * 64
    assert wrap_marked(f"<!-- aigen-section {key} --><p>x</p>", [key]) == "<p>x</p>"
    assert wrap_marked("<p>x</p><!-- /aigen-section -->", []) == "<p>x</p>"
    # Headings that are not the generated ones: left unmarked.
    assert mark_sections("## Other\n\ntext\n", [_section(("One",), key)]) == "## Other\n\ntext\n"


def test_the_fallback_model_is_named_for_its_own_text() -> None:
    from mkdocs_aigen.jobs import PageResult
    from mkdocs_aigen.notice import generator_tag, notice_variables

    ours = _section(("One",), "a" * 64)
    theirs = SectionResult(
        path=("Two",), level=2, key="b" * 64, target=10, text="x", fallback=True, created=0.0
    )
    only_fallback = notice_variables(PageResult("p.md", [theirs]), "gpt-x", "tiny.gguf")
    assert only_fallback["models"] == ["tiny.gguf"] and only_fallback["model"] == "tiny.gguf"
    assert only_fallback["date"] == "1970-01-01"
    both = notice_variables(PageResult("p.md", [ours, theirs]), "gpt-x", "tiny.gguf")
    assert both["models"] == ["gpt-x", "tiny.gguf"]
    html = generator_tag("<html><head><title>t</title></head></html>", "tiny.gguf")
    assert '<meta name="generator" content="mkdocs-aigen ' in html
    assert html.index("tiny.gguf") < html.index("</head>")


def test_the_generator_tag_finds_a_head_written_in_any_case() -> None:
    from mkdocs_aigen.notice import generator_tag

    for end in ("</head>", "</HEAD>", "</head >"):
        html = generator_tag(f"<html><head><title>t</title>{end}<body></body></html>", "m")
        assert html.index('<meta name="generator"') < html.index(end) < html.index("<body>")
    assert generator_tag("<p>no head</p>", "m") == "<p>no head</p>"


def test_page_models_name_who_wrote_the_page_and_the_template_compiles_once() -> None:
    from mkdocs_aigen.jobs import PageResult
    from mkdocs_aigen.notice import _compiled, page_models, render_notice

    ours = _section(("One",), "a" * 64)
    failed = SectionResult(path=("Two",), level=2, key="b" * 64, target=10, error="boom")
    assert page_models(PageResult("p.md", [ours, failed]), "gpt-x", "tiny.gguf") == ["gpt-x"]
    # No generated text at all: the configured model, never an empty list.
    assert page_models(PageResult("p.md", [failed]), "gpt-x", "") == ["gpt-x"]
    # Every page of a build renders the same template: it is compiled on the first only.
    template = "Written by {{ models | join(' and ') }} ({{ page }})."
    before = _compiled.cache_info().misses
    texts = [render_notice(template, {"models": ["m"], "page": f"p{i}.md"}) for i in range(3)]
    assert texts == [f"Written by m (p{i}.md)." for i in range(3)]
    assert _compiled.cache_info().misses == before + 1
