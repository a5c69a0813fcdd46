"""Incremental rebuilds: ``mkdocs serve``, offline builds, no API key, lock-file edits.

Every build is a real MkDocs build (its own API in process, or the real ``mkdocs``
command in a child process) against the fake server on 127.0.0.1; request counts are
what the server saw.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import Abort

import mkdocs_aigen
from mkdocs_aigen.pagecache import PageStore, StoredPage
from mkdocs_aigen.plugin import AigenPlugin
from tests.conftest import TEST_KEY_ENV, Site, warning_messages
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE, SECRETS_HINT

GUIDE_SECTIONS = 7

SECOND = """
---
aigen:
  brief: Operating Foo in production.
  words: 30
  outline:
    - Monitoring
    - Backups
---
# Operations
"""

SERVE_URL = "http://127.0.0.1:8000/"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def _tree_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> SHA-256), to prove nothing is written."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _placeholder_for(path: str) -> str:
    """The start of a placeholder's HTML (it writes every special character as an entity)."""
    return f"Not generated: {path.replace('>', '&#62;')}."


# -- mkdocs serve, in process ------------------------------------------------------------


class ServeSession:
    """What ``mkdocs.commands.serve.serve`` does, minus the HTTP server and the watcher.

    It loads the config, calls ``on_startup(command="serve")`` once, builds, and for each
    rebuild loads the config *again* (MkDocs keeps the instances of plugins that define
    ``on_startup``, so the plugin, and with it its pool and cache, survives); the
    session ends with ``on_shutdown``.
    """

    def __init__(self, site: Site) -> None:
        self.site = site
        self.site_dir = site.root / "served"
        self.config: MkDocsConfig | None = None

    def _load(self) -> MkDocsConfig:
        config = load_config(config_file=str(self.site.config_file), site_dir=str(self.site_dir))
        config.site_url = SERVE_URL
        return config

    def start(self) -> AigenPlugin:
        self.site.write_config()
        self.config = self._load()
        self.config.plugins.on_startup(command="serve", dirty=False)
        build(self.config, serve_url=SERVE_URL)
        return self.plugin(self.config)

    def rebuild(self) -> MkDocsConfig:
        config = self._load()
        build(config, serve_url=SERVE_URL)
        return config

    def stop(self) -> None:
        if self.config is not None:
            self.config.plugins.on_shutdown()
            self.config = None

    @staticmethod
    def plugin(config: MkDocsConfig) -> AigenPlugin:
        plugin = config.plugins["aigen"]
        assert isinstance(plugin, AigenPlugin)
        return plugin

    def html(self, name: str) -> str:
        stem = name.removesuffix(".md")
        target = "index.html" if stem == "index" else f"{stem}/index.html"
        return (self.site_dir / target).read_text(encoding="utf-8")


def test_serve_keeps_engine_and_regenerates_only_the_edited_section(
    site: Site, server: FakeOpenAI
) -> None:
    guide = site.page("guide.md", GUIDE)
    site.page("ops.md", SECOND)
    docs_before = _tree_digest(site.docs)
    session = ServeSession(site)
    try:
        plugin = session.start()
        assert server.count() == GUIDE_SECTIONS + 2
        engine = plugin._engine
        assert engine is not None
        workers = list(engine._workers)
        assert workers and all(w.is_alive() for w in workers)
        # The plugin wrote nothing into docs_dir (the cache lives outside it).
        assert _tree_digest(site.docs) == docs_before
        assert not (site.docs / ".cache").exists()

        _edit(guide, SECRETS_HINT, "Tokens never go in foo.toml; use the vault.")
        docs_edited = _tree_digest(site.docs)
        config = session.rebuild()

        # Same plugin instance, same engine, same worker threads: nothing was rebuilt.
        assert session.plugin(config) is plugin
        assert plugin._engine is engine
        assert engine._workers == workers
        assert all(w.is_alive() for w in workers)
        # Exactly one request: the section whose hint changed.
        assert server.count() == GUIDE_SECTIONS + 3
        last = server.log[-1]
        assert last.stage == "section"
        assert "Section: The config file > Secrets" in last.body["messages"][-1]["content"]
        assert "Text for The config file &gt; Secrets." in session.html("guide.md")
        assert "Text for Monitoring." in session.html("ops.md")
        assert _tree_digest(site.docs) == docs_edited

        # A rebuild without edits sends nothing and still uses the same engine.
        session.rebuild()
        assert server.count() == GUIDE_SECTIONS + 3
        assert plugin._engine is engine
    finally:
        session.stop()
    # on_shutdown stopped the pool and let go of the engine.
    assert plugin._engine is None
    assert not any(w.is_alive() for w in workers)


def test_serve_cache_only_previews_without_requests(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    guide = site.page("guide.md", GUIDE)
    # The page exists before its stub does: a page added to the nav would change its
    # neighbours' prompts (they name the pages before and after them).
    site.page("operations.md", "# Operations\n\nTo be written.\n")
    site.plugin["serve"] = "cache_only"
    # `mkdocs build` ignores `serve: cache_only`: this fills the cache.
    site.build()
    assert server.count() == GUIDE_SECTIONS

    _edit(guide, SECRETS_HINT, "Tokens never go in foo.toml.")
    site.page("operations.md", SECOND)
    docs_before = _tree_digest(site.docs)
    warnings.clear()
    session = ServeSession(site)
    try:
        session.start()
    finally:
        session.stop()
    assert server.count() == GUIDE_SECTIONS  # not one request
    html = session.html("guide.md")
    assert "Text for Overview." in html  # from the cache
    assert _placeholder_for("The config file > Secrets") in html
    assert _placeholder_for("Monitoring") in session.html("operations.md")
    messages = warning_messages(warnings)
    secrets = [m for m in messages if "The config file > Secrets" in m]
    assert len(secrets) == 1 and "serve: cache_only" in secrets[0]
    assert any("operations.md" in m and "'Monitoring', 'Backups'" in m for m in messages)
    assert _tree_digest(site.docs) == docs_before

    # The same site under `mkdocs build` generates what the preview skipped.
    site.build()
    assert server.count() == GUIDE_SECTIONS + 1 + 2


# -- mkdocs serve, the real command ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it is truthy; the timeout only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode("utf-8"))
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def serve_regenerates_one_section(
    log_path: Path, guide: Path, url: str, server: FakeOpenAI
) -> None:
    """A served GUIDE, first build then one edited hint: exactly one more request, and
    the page served shows the new section (``mkdocs serve`` and ``properdocs serve``)."""
    page = _wait_for(lambda: _get(url), "the first build")
    assert "Text for Overview." in page
    assert server.count() == GUIDE_SECTIONS

    def builds() -> int:
        return log_path.read_text(encoding="utf-8").count("Documentation built in")

    _wait_for(lambda: builds() == 1, "the end of the first build")
    _edit(guide, SECRETS_HINT, "Tokens never go in foo.toml; use the vault.")
    _wait_for(lambda: builds() == 2, "the rebuild")
    assert server.count() == GUIDE_SECTIONS + 1
    assert "Text for The config file &gt; Secrets." in (_get(url) or "")


def test_real_mkdocs_serve_rebuilds_one_section_and_stops_cleanly(
    site: Site, server: FakeOpenAI
) -> None:
    """``mkdocs serve`` in a child process: one request per edited hint; Ctrl-C during a
    rebuild stops the queued requests and exits without a traceback."""
    guide = site.page("guide.md", GUIDE)
    site.plugin["concurrency"] = 1  # so a cancelled rebuild has queued work to drop
    site.write_config()
    port = _free_port()
    log_path = site.root / "serve.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        command = ["serve", "-f", str(site.config_file), "-a", f"127.0.0.1:{port}"]
        process = subprocess.Popen(
            [sys.executable, "-m", "mkdocs", *command],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AIGEN_OFFLINE": ""},
        )
        try:
            url = f"http://127.0.0.1:{port}/guide/"
            serve_regenerates_one_section(log_path, guide, url, server)

            # A brief change regenerates the whole page; make the first answer hang,
            # then press Ctrl-C while it is in flight and six more are queued.
            server.configure(latency=30)
            _edit(guide, "for a first deployment", "for a production deployment")
            _wait_for(lambda: server.in_flight == 1, "a request in flight")
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log_path.read_text(encoding="utf-8")
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert "Shutting down" in output
    # The request in flight at Ctrl-C was the last one: nothing queued went out.
    assert server.count() + server.in_flight == GUIDE_SECTIONS + 2
    assert not list(site.docs.glob(".*")), "nothing may be written into docs_dir"


# -- offline and no API key --------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "environment"])
def test_offline_uses_cache_and_marks_missing_sections(
    site: Site,
    server: FakeOpenAI,
    warnings: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    guide = site.page("guide.md", GUIDE)
    site.build()
    assert server.count() == GUIDE_SECTIONS
    _edit(guide, SECRETS_HINT, "Tokens never go in foo.toml.")
    if how == "option":
        site.plugin["offline"] = True
    else:
        monkeypatch.setenv("AIGEN_OFFLINE", "1")
    warnings.clear()
    site.build()
    assert server.count() == GUIDE_SECTIONS  # offline: no request at all
    html = site.html("guide.md")
    assert "Text for Overview." in html and "Text for Troubleshooting &gt; Logs." in html
    assert _placeholder_for("The config file > Secrets") in html
    messages = warning_messages(warnings)
    assert len(messages) == 1, messages
    assert "guide.md" in messages[0]
    assert "'The config file > Secrets'" in messages[0]
    assert "offline mode" in messages[0]

    with pytest.raises(Abort, match="strict mode"):
        site.build(strict=True)
    assert server.count() == GUIDE_SECTIONS


def test_offline_strict_cli_names_the_missing_sections(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", GUIDE)
    site.page("ops.md", SECOND)
    result = site.cli("build", "--strict", env={"AIGEN_OFFLINE": "1"})
    assert result.returncode != 0
    assert server.count() == 0
    assert "'Monitoring', 'Backups'" in result.stderr
    assert "'The config file > Secrets'" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_api_key_is_said_once_with_the_fix(
    site: Site,
    server: FakeOpenAI,
    warnings: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # provider: openai, so the embedded local model (installed here) is not picked.
    monkeypatch.delenv(TEST_KEY_ENV)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    site.plugin.pop("base_url")
    site.plugin["provider"] = "openai"
    site.page("guide.md", GUIDE)
    site.page("ops.md", SECOND)
    site.build()
    assert server.count() == 0
    messages = warning_messages(warnings)
    hints = [m for m in messages if "set the environment variable" in m]
    assert hints == [
        f"aigen: no API key: set the environment variable {TEST_KEY_ENV} (or `base_url` for "
        "a server that needs none), commit a lock file, or build with `offline: true`."
    ]
    # Then one line per page that names its sections, not one per section.
    assert len(messages) == 1 + 2, messages
    assert _placeholder_for("Overview") in site.html("guide.md")
    assert _placeholder_for("Backups") in site.html("ops.md")


# -- the lock file in builds -------------------------------------------------------------


def _lock_entries(path: Path) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {s["path"]: s for s in data["pages"]["guide.md"]["sections"]}


def test_author_edit_in_the_lock_wins_until_the_stub_changes(
    site: Site, server: FakeOpenAI
) -> None:
    guide = site.page("guide.md", GUIDE)
    site.plugin["lock"] = "aigen.lock"
    site.build()
    assert server.count() == GUIDE_SECTIONS
    locked = subprocess.run(
        [sys.executable, "-m", "mkdocs_aigen.cli", "-f", str(site.config_file), "lock"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert locked.returncode == 0, locked.stderr
    lock_path = site.root / "aigen.lock"
    entry = _lock_entries(lock_path)["Troubleshooting > Logs"]
    original = entry["text"]
    edited = "Logs live in /var/log/foo. An author wrote this sentence."
    lock_path.write_text(
        lock_path.read_text(encoding="utf-8").replace(original, edited), encoding="utf-8"
    )

    site.build()
    assert server.count() == GUIDE_SECTIONS  # the lock answered, not the network
    html = site.html("guide.md")
    assert "An author wrote this sentence." in html
    assert "Text for Troubleshooting &gt; Logs." not in html

    # The stub of that section changes: the edit no longer applies; one request.
    _edit(guide, "Troubleshooting: [Logs, Common errors]", _LOGS_WITH_HINT)
    site.build()
    assert server.count() == GUIDE_SECTIONS + 1
    html = site.html("guide.md")
    assert "An author wrote this sentence." not in html
    assert "Text for Troubleshooting &gt; Logs." in html


_LOGS_WITH_HINT = """title: Troubleshooting
      sections:
        - title: Logs
          hint: Where Foo writes its logs.
        - Common errors"""


# -- whole pages -------------------------------------------------------------------------

SHORT = """
---
aigen:
  brief: {brief}
  words: 20
  outline: [First, Second]
---
# {title}

<!-- aigen -->
"""


def _stored_pages(site: Site) -> dict[str, bytes]:
    folder = site.root / ".cache" / "plugin" / "aigen" / "pages"
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.page"))}


def test_pages_are_stored_whole_and_served_without_requests(site: Site, server: FakeOpenAI) -> None:
    guide = site.page("guide.md", GUIDE)
    site.page("other.md", SHORT.format(brief="Other things.", title="Other"))
    site.build()
    first = site.html("guide.md")
    assert len(server.log) == GUIDE_SECTIONS + 2
    assert len(_stored_pages(site)) == 2
    site.build()
    assert len(server.log) == GUIDE_SECTIONS + 2
    assert site.html("guide.md") == first
    # Hand-written text is part of the key, but not of any prompt: the page is assembled
    # again from the answers, and nothing is asked.
    _edit(guide, "More hand-written text.", "Different hand-written text.")
    site.build()
    assert len(server.log) == GUIDE_SECTIONS + 2
    assert "Different hand-written text." in site.html("guide.md")
    assert "Text for Overview." in site.html("guide.md")


def test_a_renamed_neighbour_regenerates_the_page_next_to_it(
    site: Site, server: FakeOpenAI
) -> None:
    # Reading order a, b, c: b's prompts name "Page A" and "C notes" (a page without a
    # stub is named after its file); a's name only "Page B".
    site.page("a.md", SHORT.format(brief="About A.", title="Page A"))
    site.page("b.md", SHORT.format(brief="About B.", title="Page B"))
    plain = site.page("c-notes.md", "# Notes\n\nHand-written.\n")
    site.build()
    assert len(server.log) == 4
    stored = _stored_pages(site)
    plain.rename(plain.with_name("c-changes.md"))
    site.build()
    asked = server.log[4:]
    assert len(asked) == 2
    assert all("C changes" in r.body["messages"][-1]["content"] for r in asked)
    # b is stored again under the same key (its own text did not change), a is untouched.
    now = _stored_pages(site)
    assert now.keys() == stored.keys()
    assert sum(now[name] != stored[name] for name in now) == 1
    site.build()
    assert len(server.log) == 6


def test_a_damaged_page_file_is_only_a_miss(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", GUIDE)
    site.build()
    first = site.html("guide.md")
    folder = site.root / ".cache" / "plugin" / "aigen" / "pages"
    (page_file,) = folder.glob("*.page")
    page_file.write_bytes(page_file.read_bytes()[:40])
    site.build()
    assert len(server.log) == GUIDE_SECTIONS  # assembled again from the answers
    assert site.html("guide.md") == first
    # ... and stored whole again under the same key, readable this time.
    assert isinstance(PageStore(folder.parent).get(page_file.stem), StoredPage)


@pytest.mark.parametrize(
    ("option", "value"),
    [("model", "another-model"), ("temperature", 0.2), ("seed", 7), ("context", "ctx.md")],
)
def test_a_site_wide_change_misses_every_stored_page(
    site: Site, server: FakeOpenAI, option: str, value: Any
) -> None:
    site.page("guide.md", GUIDE)
    (site.root / "ctx.md").write_text("Foo runs on Linux.\n", encoding="utf-8")
    site.build()
    assert len(server.log) == GUIDE_SECTIONS
    site.plugin[option] = value
    site.build()
    # New settings mean new requests for every section: no stored page stands in for them.
    assert len(server.log) == 2 * GUIDE_SECTIONS


def test_an_edited_template_misses_the_stored_page(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", GUIDE)
    templates = site.root / "templates"
    templates.mkdir()
    site.plugin["templates_dir"] = str(templates)
    site.build()
    assert len(server.log) == GUIDE_SECTIONS
    packaged = Path(mkdocs_aigen.__file__).parent / "templates" / "section.j2"
    text = packaged.read_text(encoding="utf-8")
    (templates / "section.j2").write_text(
        text.replace("Write about", "Keep sentences short.\nWrite about"), encoding="utf-8"
    )
    site.build()
    asked = server.log[GUIDE_SECTIONS:]
    assert len(asked) == GUIDE_SECTIONS
    assert all("Keep sentences short." in r.body["messages"][-1]["content"] for r in asked)


def test_a_stub_warning_comes_back_on_every_build(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    site.page("guide.md", GUIDE.replace("  tone: precise", "  tnoe: precise"))
    for _ in range(2):
        warnings.clear()
        site.build()
        messages = warning_messages(warnings)
        assert any("'aigen.tnoe' is not a known key" in m for m in messages), messages
    assert len(server.log) == GUIDE_SECTIONS
    assert _stored_pages(site) == {}
