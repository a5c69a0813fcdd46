"""Pages in their own language: the stub's ``language``, else mkdocs-static-i18n's locale,
else the theme's; in the prompts, the request hash, ``plan`` and the report."""

from __future__ import annotations

import json

import pytest
from mkdocs.exceptions import Abort

from tests.conftest import Site, warning_messages
from tests.fake_server import FakeOpenAI, message_text
from tests.test_cli import aigen

STUB = """\
---
aigen:
  brief: Explain how to install Lumen.
{language}  outline:
    - Requirements
    - First steps
---
# {title}
"""


def _page(site: Site, name: str, title: str, language: str | None = None) -> None:
    line = f"  language: {language}\n" if language else ""
    site.page(name, STUB.format(language=line, title=title))


def _system_texts(server: FakeOpenAI, page_title: str) -> set[str]:
    return {
        message_text(r.body["messages"][0])
        for r in server.records("section")
        if f"Page: {page_title}" in message_text(r.body["messages"][-1])
    }


def test_a_french_page_asks_for_french(site: Site, server: FakeOpenAI) -> None:
    _page(site, "install.md", "Installation", "fr")
    _page(site, "about.md", "About")
    site.build()
    [french] = _system_texts(server, "Installation")
    assert "Write in French (language code fr)" in french
    [english] = _system_texts(server, "About")
    assert "Write in" not in english  # English is the templates' own language


def test_the_same_stub_in_german_and_english_is_cached_apart(
    site: Site, server: FakeOpenAI
) -> None:
    _page(site, "de.md", "Lumen", "de")
    _page(site, "en.md", "Lumen")
    site.build()
    assert server.count("section") == 4  # same outline, two languages: four requests
    systems = _system_texts(server, "Lumen")
    assert len(systems) == 2
    assert sum("Write in German (language code de)" in text for text in systems) == 1
    site.build()
    assert server.count("section") == 4  # each is cached under its own key


def test_english_named_explicitly_keeps_every_key(site: Site, server: FakeOpenAI) -> None:
    _page(site, "install.md", "Installation")
    site.build()
    _page(site, "install.md", "Installation", "en-US")
    site.build()
    assert server.count("section") == 2  # nothing new: English states nothing


def test_the_theme_language_is_the_default(site: Site, server: FakeOpenAI) -> None:
    site.extra_config["theme"] = {"name": "mkdocs", "locale": "de"}
    _page(site, "install.md", "Installation")
    _page(site, "about.md", "About", "fr")  # a stub's own language wins
    site.build()
    [german] = _system_texts(server, "Installation")
    assert "Write in German (language code de)" in german
    [french] = _system_texts(server, "About")
    assert "Write in French" in french


def test_plan_and_the_report_show_each_pages_language(site: Site, server: FakeOpenAI) -> None:
    _page(site, "install.md", "Installation", "pt_BR")
    _page(site, "about.md", "About")
    plan = json.loads(aigen(site, "plan", "--json").stdout)
    assert {p["page"]: p["language"] for p in plan["pages"]} == {
        "about.md": "en",
        "install.md": "pt-BR",
    }
    assert "install.md (pt-BR)" in aigen(site, "plan").stdout.splitlines()
    site.build()
    report = json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))
    assert report["pages"]["install.md"]["language"] == "pt-BR"
    assert report["pages"]["about.md"]["language"] == "en"
    [portuguese] = _system_texts(server, "Installation")
    assert "Write in Brazilian Portuguese (language code pt-BR)" in portuguese


@pytest.mark.parametrize("value", ["'français'", "42", "'f'", "[fr]"])
def test_a_bad_language_names_the_field(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture, value: str
) -> None:
    _page(site, "install.md", "Installation", value)
    with pytest.raises(Abort):
        site.build()
    [message] = [m for m in warning_messages(warnings) if m.startswith("aigen:")]
    assert message.startswith(
        "aigen: install.md: 'aigen.language': a language code such as 'fr', 'de' or 'pt-BR', found "
    )
    assert server.count() == 0
