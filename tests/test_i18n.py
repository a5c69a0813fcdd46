"""mkdocs-static-i18n, installed for real: the site is built once per language, each
language's stub pages get their sections in that language, and the cache keeps the
languages apart."""

from __future__ import annotations

import pytest

from tests.conftest import Site
from tests.fake_server import FakeOpenAI, message_text

pytest.importorskip("mkdocs_static_i18n")

GUIDE = """\
---
aigen:
  brief: {brief}
  outline:
    - {first}
    - {second}
---
# {title}
"""


def _i18n(site: Site, *, before: bool) -> None:
    i18n = {
        "i18n": {
            "docs_structure": "suffix",
            "languages": [
                {"locale": "en", "default": True, "name": "English", "build": True},
                {"locale": "fr", "name": "Français", "build": True},
            ],
        }
    }
    aigen = {"aigen": site.plugin}
    site.extra_config["plugins"] = [i18n, aigen] if before else [aigen, i18n]
    site.page("index.md", "# Home\n")
    site.page("index.fr.md", "# Accueil\n")
    site.page(
        "guide.md",
        GUIDE.format(
            brief="How to install Lumen.", first="Requirements", second="First steps", title="Guide"
        ),
    )
    site.page(
        "guide.fr.md",
        GUIDE.format(
            brief="Comment installer Lumen.",
            first="Prérequis",
            second="Premiers pas",
            title="Guide FR",
        ),
    )
    # Only in English: i18n builds it into the French site too, as the English page.
    site.page(
        "faq.md",
        GUIDE.format(brief="Common questions.", first="Install", second="Upgrade", title="FAQ"),
    )


@pytest.mark.parametrize("before", [True, False], ids=["i18n-first", "aigen-first"])
def test_each_language_gets_its_sections_in_its_language(
    site: Site, server: FakeOpenAI, before: bool
) -> None:
    _i18n(site, before=before)
    result = site.cli("build")
    assert result.returncode == 0, result.stderr
    english = (site.root / "site" / "guide" / "index.html").read_text(encoding="utf-8")
    french = (site.root / "site" / "fr" / "guide" / "index.html").read_text(encoding="utf-8")
    assert "Requirements" in english and "Prérequis" not in english
    assert "Prérequis" in french and "Premiers pas" in french
    faq_fr = (site.root / "site" / "fr" / "faq" / "index.html").read_text(encoding="utf-8")
    assert "Upgrade" in faq_fr
    prompts = {
        message_text(r.body["messages"][-1]).split("\nSection: ", 1)[1].split("\n", 1)[0]: (
            message_text(r.body["messages"][0])
        )
        for r in server.records("section")
    }
    assert "Write in French (language code fr)" in prompts["Prérequis"]
    assert "Write in" not in prompts["Requirements"]
    faq = [
        "\n".join(message_text(m) for m in r.body["messages"])
        for r in server.records("section")
        if "Page: FAQ" in message_text(r.body["messages"][-1])
    ]
    # The English FAQ, in both sites: in English, next to each site's own pages.
    assert len(faq) == 4 and not any("Write in" in text for text in faq)
    assert sum("Next page in the docs: Guide FR" in text for text in faq) == 2
    assert sum("Next page in the docs: Guide\n" in text for text in faq) == 2
    assert server.count("section") == 8
    again = site.cli("build")
    assert again.returncode == 0, again.stderr
    assert server.count("section") == 8  # each language from its own cache entries
