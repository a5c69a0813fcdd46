"""Regenerating on purpose: ``mkdocs-aigen regenerate`` and ``AIGEN_REFRESH``, counted by
what the fake server saw, with the real command line and a real lock file."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import Site
from tests.fake_server import FakeOpenAI, RequestRecord, default_responder
from tests.pages import GUIDE
from tests.test_cli import aigen, polishing_responder

SECTIONS = 7
SECRETS = "The config file > Secrets"


def _takes(body: dict[str, Any], record: RequestRecord) -> str:
    """The default answer, numbered: a regenerated section reads differently."""
    return f"Take {record.index}. {default_responder(body, record)}"


def _section_of(record: RequestRecord) -> str:
    assert record.body is not None
    prompt = record.body["messages"][-1]["content"]
    return next(
        line[len("Section: ") :] for line in prompt.splitlines() if line.startswith("Section: ")
    )


def _lock_entries(site: Site) -> dict[str, dict[str, Any]]:
    lock = yaml.safe_load((site.root / "aigen.lock").read_text(encoding="utf-8"))
    return {entry["path"]: entry for entry in lock["pages"]["guide.md"]["sections"]}


@pytest.fixture
def locked(site: Site, server: FakeOpenAI) -> Site:
    """The guide built once and locked: 7 requests, every answer in cache and lock."""
    server.responder = _takes
    site.plugin["lock"] = "aigen.lock"
    site.page("guide.md", GUIDE)
    site.page("other.md", GUIDE.replace("Configuring Foo", "Other page"))
    site.build()
    assert aigen(site, "lock").returncode == 0
    assert len(server.log) == 2 * SECTIONS
    return site


def test_regenerating_one_section_sends_one_request_and_rewrites_one_lock_entry(
    locked: Site, server: FakeOpenAI
) -> None:
    before = _lock_entries(locked)
    lock_text = (locked.root / "aigen.lock").read_text(encoding="utf-8")
    result = aigen(locked, "regenerate", "docs/guide.md", "--section", SECRETS)
    assert result.returncode == 0, result.stderr
    fresh = server.log[2 * SECTIONS :]
    assert [(r.stage, _section_of(r)) for r in fresh] == [("section", SECRETS)]
    # A unified diff of the generated text: the old take out, the new one in.
    out = result.stdout
    assert out.startswith("--- a/guide.md\n+++ b/guide.md\n@@ ")
    assert f"-Take {before['The config file > Secrets']['text'].split('.')[0][5:]}." in out
    assert f"+Take {fresh[0].index}. Text for {SECRETS}." in out
    assert [
        line[0] for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ] == ["-", "+"]
    assert "updated 1 entries of aigen.lock" in out
    # Only that entry changed: same hash (same request), new text; the rest as it was.
    after = _lock_entries(locked)
    assert after[SECRETS]["hash"] == before[SECRETS]["hash"]
    assert after[SECRETS]["text"].startswith(f"Take {fresh[0].index}. ")
    assert {k: v for k, v in after.items() if k != SECRETS} == {
        k: v for k, v in before.items() if k != SECRETS
    }
    new_text = (locked.root / "aigen.lock").read_text(encoding="utf-8")
    changed = [
        (a, b) for a, b in zip(lock_text.splitlines(), new_text.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == 1  # one line of text in the whole file
    # The cache holds the new answer too: a build without the lock sends nothing.
    del locked.plugin["lock"]
    locked.build()
    assert len(server.log) == 2 * SECTIONS + 1
    assert f"Take {fresh[0].index}. Text for {SECRETS}." in locked.html("guide.md").replace(
        "&gt;", ">"
    )


def test_regenerating_a_page_stage_sends_that_page_only(locked: Site, server: FakeOpenAI) -> None:
    result = aigen(locked, "regenerate", "guide.md", "--stage", "section")
    assert result.returncode == 0, result.stderr
    fresh = server.log[2 * SECTIONS :]
    assert len(fresh) == SECTIONS
    assert {r.stage for r in fresh} == {"section"}
    assert all("Configuring Foo" in str(r.body) for r in fresh)
    assert "updated 7 entries of aigen.lock" in result.stdout


def test_mistakes_are_one_line_and_send_nothing(locked: Site, server: FakeOpenAI) -> None:
    cases = {
        ("regenerate", "docs/nope.md"): "'docs/nope.md' is not a page with an aigen stub",
        (
            "regenerate",
            "guide.md",
            "--section",
            "Nope",
        ): "guide.md: no section 'Nope' (sections: Overview;",
        (
            "regenerate",
            "guide.md",
            "--stage",
            "review",
        ): "guide.md: no stage 'review' to regenerate",
    }
    for args, message in cases.items():
        result = aigen(locked, *args)
        assert result.returncode == 2, result
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    assert len(server.log) == 2 * SECTIONS


def test_aigen_refresh_regenerates_that_page_in_a_build(site: Site, server: FakeOpenAI) -> None:
    server.responder = _takes
    site.page("guide.md", GUIDE)
    site.page("other.md", GUIDE.replace("Configuring Foo", "Other page"))
    site.build()
    assert len(server.log) == 2 * SECTIONS
    result = site.cli("build", env={"AIGEN_REFRESH": "docs/guide.md"})
    assert result.returncode == 0, result.stderr
    fresh = server.log[2 * SECTIONS :]
    assert len(fresh) == SECTIONS
    assert all("Configuring Foo" in str(r.body) for r in fresh)
    assert f"Take {fresh[0].index}." in site.html("guide.md")
    # The next build takes the new answers from the cache.
    site.build()
    assert len(server.log) == 3 * SECTIONS
    bad = site.cli("build", env={"AIGEN_REFRESH": "docs/nope.md"})
    assert bad.returncode != 0
    assert "AIGEN_REFRESH: 'docs/nope.md' is not a page with an aigen stub" in bad.stderr


def test_regenerating_polish_or_review_sends_only_that_stage(
    site: Site, server: FakeOpenAI
) -> None:
    server.responder = polishing_responder
    site.plugin.update(
        lock="aigen.lock", polish=True, review={"criteria": {"clarity": "clear"}, "votes": 2}
    )
    site.page("guide.md", GUIDE)
    assert aigen(site, "lock").returncode == 0
    sent = len(server.log)
    assert sent == SECTIONS + 1 + 2
    lock_before = (site.root / "aigen.lock").read_text(encoding="utf-8")

    result = aigen(site, "regenerate", "guide.md", "--stage", "review")
    assert result.returncode == 0, result.stderr
    assert [r.stage for r in server.log[sent:]] == ["review", "review"]
    # Reviews are not in the lock, and the page's text did not change.
    assert (site.root / "aigen.lock").read_text(encoding="utf-8") == lock_before
    assert "the new text is the same as before" in result.stdout

    sent = len(server.log)
    result = aigen(site, "regenerate", "guide.md", "--stage", "polish")
    assert result.returncode == 0, result.stderr
    assert [r.stage for r in server.log[sent:]] == ["polish"]
    assert "updated 1 entries of aigen.lock" in result.stdout
