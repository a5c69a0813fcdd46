"""End to end: real ``mkdocs build``, real openai SDK, the fake server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from html import escape
from typing import Any

import pytest
from mkdocs.exceptions import Abort

from tests.conftest import Site, warning_messages
from tests.fake_server import FakeOpenAI, Reply, RequestRecord, default_responder
from tests.pages import GUIDE

PLAIN = """
# Plain page

Nothing generated here. <!-- aigen --> is only text inside a sentence.

* a list
"""

EXPECTED_ORDER = [
    ("h2", "Overview", "Overview"),
    ("h2", "The config file", "The config file"),
    ("h3", "Environment variables", "The config file > Environment variables"),
    ("h3", "Secrets", "The config file > Secrets"),
    ("h2", "Troubleshooting", "Troubleshooting"),
    ("h3", "Logs", "Troubleshooting > Logs"),
    ("h3", "Common errors", "Troubleshooting > Common errors"),
]


def _positions(html: str, needles: list[str]) -> list[int]:
    positions = [html.find(needle) for needle in needles]
    assert -1 not in positions, [n for n, p in zip(needles, positions, strict=False) if p == -1]
    return positions


def test_sections_land_in_outline_order_at_the_marker(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", GUIDE)
    site.build()
    html = site.html("guide.md")
    needles = ["Hand-written text stays exactly where it is."]
    for tag, title, path in EXPECTED_ORDER:
        needles.append(f">{title}</{tag}>")
        needles.append(escape(f"Text for {path}.", quote=False))
    needles.append("More hand-written text.")
    positions = _positions(html, needles)
    assert positions == sorted(positions)
    assert "&lt;!-- aigen --&gt;" not in html and "<!-- aigen -->" not in html
    assert server.count(stage="section") == len(EXPECTED_ORDER)


def test_without_marker_sections_follow_the_body(site: Site) -> None:
    site.page("guide.md", GUIDE.replace("<!-- aigen -->\n", ""))
    site.build()
    html = site.html("guide.md")
    positions = _positions(html, ["More hand-written text.", "Text for Overview."])
    assert positions == sorted(positions)


def test_page_without_stub_is_untouched(site: Site) -> None:
    site.page("guide.md", GUIDE)
    site.page("plain.md", PLAIN)
    site.build()
    with_plugin = site.html("plain.md")
    site.extra_config = {"plugins": []}
    site.build()
    # Same page, same nav: identical HTML with and without the plugin.
    assert with_plugin == site.html("plain.md")


def test_pool_runs_exactly_concurrency_requests_at_once(site: Site, server: FakeOpenAI) -> None:
    server.configure(latency=0.15)
    site.plugin["concurrency"] = 3
    site.page("guide.md", GUIDE)
    site.build()
    assert server.count(stage="section") == 7
    assert server.max_in_flight == 3


def test_concurrency_one_is_sequential(site: Site, server: FakeOpenAI) -> None:
    server.configure(latency=0.02)
    site.plugin["concurrency"] = 1
    site.page("guide.md", GUIDE)
    site.build()
    assert server.max_in_flight == 1
    records = server.records(stage="section")
    assert len(records) == 7
    for earlier, later in itertools.pairwise(records):
        assert earlier.end is not None and earlier.end <= later.start


def test_all_pages_are_in_flight_together(site: Site, server: FakeOpenAI) -> None:
    server.configure(latency=0.15)
    site.plugin["concurrency"] = 16
    for number in range(3):
        site.page(f"page{number}.md", GUIDE)
    site.build()
    # 3 pages x 7 sections, all submitted before the first page renders.
    assert server.count(stage="section") == 21
    assert server.max_in_flight == 16


def test_cached_rebuild_sends_nothing_and_one_hint_costs_one_request(
    site: Site, server: FakeOpenAI
) -> None:
    site.page("guide.md", GUIDE)
    site.build()
    first = site.html("guide.md")
    assert len(server.log) == 7
    site.build()
    assert len(server.log) == 7
    assert site.html("guide.md") == first
    site.page("guide.md", GUIDE.replace("Never put tokens", "Never, ever put tokens"))
    site.build()
    assert len(server.log) == 8
    changed = server.log[-1]
    assert "Section: The config file > Secrets" in changed.body["messages"][-1]["content"]


def test_429_and_500_are_retried(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", GUIDE)
    server.storm(2, retry_after=0.2)
    server.fail_next(2, status=500)
    site.build()
    html = site.html("guide.md")
    for _, _, path in EXPECTED_ORDER:
        assert escape(f"Text for {path}.", quote=False) in html
    outcomes = [r.outcome for r in server.log]
    assert outcomes.count("storm") == 2
    assert outcomes.count("500") == 2
    assert outcomes.count("ok") == 7
    report = json.loads((site.root / "site" / "aigen-report.json").read_text())
    assert report["stages"]["section"]["retries"] == 4


def _always_fail(section: str, status: int = 500) -> Any:
    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if f"Section: {section}\n" in body["messages"][-1]["content"]:
            return Reply("boom", status=status)
        return default_responder(body, record)

    return responder


def test_failing_section_becomes_placeholder_and_warning(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    server.responder = _always_fail("The config file > Secrets")
    site.plugin["max_retries"] = 2
    site.page("guide.md", GUIDE)
    site.build()
    html = site.html("guide.md")
    assert ">Secrets</h3>" in html
    assert "Not generated" in html
    assert "Text for Troubleshooting &gt; Logs." in html
    messages = warning_messages(warnings)
    assert any("The config file > Secrets" in m and "500" in m for m in messages)
    section_line = "Section: The config file > Secrets\n"
    secrets = [r for r in server.log if section_line in r.body["messages"][-1]["content"]]
    assert len(secrets) == 3  # first attempt + max_retries


def test_failing_section_fails_strict_build(site: Site, server: FakeOpenAI) -> None:
    server.responder = _always_fail("Overview", status=400)
    site.page("guide.md", GUIDE)
    with pytest.raises(Abort, match="strict mode"):
        site.build(strict=True)
    # 400 is not retried.
    assert len([r for r in server.log if r.outcome == "400"]) == 1


def test_strict_cli_exits_non_zero(site: Site, server: FakeOpenAI) -> None:
    server.responder = _always_fail("Overview", status=400)
    site.page("guide.md", GUIDE)
    result = site.cli("build", "--strict", env={"AIGEN_TEST_KEY": "sk-test"})
    assert result.returncode != 0
    assert "Overview" in result.stderr


def test_on_error_fail_stops_with_plugin_error(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    server.responder = _always_fail("Overview", status=400)
    site.plugin["on_error"] = "fail"
    site.page("guide.md", GUIDE)
    with pytest.raises(Abort, match="BuildError"):
        site.build()
    errors = [r.getMessage() for r in warnings.records if r.levelname == "ERROR"]
    assert "aigen: guide.md: section 'Overview' failed: HTTP 400: boom" in errors


def test_model_output_is_cleaned(site: Site, server: FakeOpenAI) -> None:
    def responder(body: dict[str, Any], record: RequestRecord) -> str:
        prompt = body["messages"][-1]["content"]
        title = re.search(r"^Section: (?:.* > )?(.+)$", prompt, re.M).group(1)
        return f"```markdown\n## {title}\n\nBody of {title}.\n\n### Deeper\n\nMore.\n```"

    server.responder = responder
    site.page("guide.md", GUIDE)
    site.build()
    html = site.html("guide.md")
    assert html.count(">Overview</h2>") == 1
    assert "Body of Overview." in html
    assert "<pre>" not in html
    assert ">Deeper</h3>" in html  # deeper heading kept below the ## section
    assert ">Deeper</h4>" in html  # and pushed below the ### sections


def test_cached_rebuild_never_imports_the_sdk(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", GUIDE)
    site.build()
    first = site.html("guide.md")
    site.write_config()
    probe = (
        "import sys\n"
        "from mkdocs.commands.build import build\n"
        "from mkdocs.config import load_config\n"
        f"config = load_config(config_file={str(site.config_file)!r})\n"
        "config.plugins.on_startup(command='build', dirty=False)\n"
        "build(config)\n"
        "config.plugins.on_shutdown()\n"
        "loaded = ('openai', 'tenacity', 'diskcache', 'mkdocs_aigen.engine',\n"
        "          'mkdocs_aigen.pipeline', 'mkdocs_aigen.requests')\n"
        "print(*(name in sys.modules for name in loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    # Whole pages come back from their own files: not even the answers' database is
    # opened, and nothing that generates is loaded.
    assert result.stdout.split() == ["False"] * 6
    assert len(server.log) == 7  # nothing sent by the second build
    assert site.html("guide.md") == first


def test_the_process_ends_without_a_final_collection_but_builds_before_it_collect(
    site: Site, server: FakeOpenAI
) -> None:
    """``quick_exit``: the plugin freezes every object only when the process exits (its
    last garbage collection then has nothing to look at); a process that builds twice
    has nothing frozen in between."""
    import gc

    site.page("guide.md", GUIDE)
    site.build()
    site.build()
    assert gc.get_freeze_count() == 0
    # An atexit handler registered before the build runs after the plugin's (last in,
    # first out), and sees what it left.
    child = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "from mkdocs.__main__ import cli\n"
        f"sys.argv = ['mkdocs', 'build', '-f', {str(site.config_file)!r}]\n"
        "cli()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "frozen at exit: True" in done.stdout
    assert server.count(stage="section") == len(EXPECTED_ORDER)  # the rebuilds were cached
