"""Faults are survived: 500s, 429 storms, timeouts, dropped connections, a server outage.

Real builds through MkDocs and the real openai SDK against the fake server, which injects
the faults. What is asserted is what the server saw and what the site contains, never how
long anything took.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from html import escape
from pathlib import Path
from typing import Any

import pytest
from mkdocs.exceptions import MkDocsException

from tests.conftest import Site, warning_messages
from tests.fake_server import FakeOpenAI, Reply, RequestRecord, default_responder

_PAGE_LINE = re.compile(r"^Page: (.+)$", re.MULTILINE)
_SECTION_LINE = re.compile(r"^Section: (.+)$", re.MULTILINE)


def section_of(record: RequestRecord) -> tuple[str, str]:
    """``(page title, section path)`` a section request was for."""
    body = record.body or {}
    prompt = body["messages"][-1]["content"]
    page = _PAGE_LINE.search(prompt)
    section = _SECTION_LINE.search(prompt)
    assert page is not None and section is not None, prompt
    return page.group(1), section.group(1)


def readable(records: list[RequestRecord]) -> list[RequestRecord]:
    """Records whose request body the server read.

    A connection cut by ``down_for`` while the server was still reading a body leaves a
    record without one (answered 400 into a closed socket: the client saw a dropped
    connection and retried). Such an attempt cannot be attributed to a section.
    """
    return [r for r in records if r.body is not None]


def stub_page(number: int, sections: int) -> str:
    titles = ", ".join(f"Topic {number}-{i}" for i in range(sections))
    return f"""
    ---
    title: Page {number}
    aigen:
      brief: Page {number} of the fault test.
      words: 8
      outline: [{titles}]
    ---
    # Page {number}

    <!-- aigen -->
    """


def write_pages(site: Site, pages: int, sections: int) -> list[tuple[str, str]]:
    """``pages`` stub pages; returns every ``(file, section title)``."""
    expected = []
    for number in range(pages):
        site.page(f"p{number:03d}.md", stub_page(number, sections))
        expected.extend((f"p{number:03d}.md", f"Topic {number}-{i}") for i in range(sections))
    return expected


def missing_sections(site: Site, expected: list[tuple[str, str]]) -> list[tuple[str, str]]:
    pages: dict[str, str] = {}
    missing = []
    for name, title in expected:
        html = pages.get(name) or pages.setdefault(name, site.html(name))
        if escape(f"Text for {title}.", quote=False) not in html:
            missing.append((name, title))
    return missing


class Trigger:
    """Fires each ``(after, action)`` once the server has logged ``after`` requests."""

    def __init__(self, server: FakeOpenAI, steps: list[tuple[int, Callable[[], None]]]) -> None:
        self._server = server
        self._steps = sorted(steps, key=lambda step: step[0])
        self._stop = threading.Event()
        self.fired: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for after, action in self._steps:
            while len(self._server.log) < after:
                if self._stop.wait(0.01):
                    return
            action()
            self.fired.append(after)

    def __enter__(self) -> Trigger:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def faulty() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(latency=0.0, seed=11) as fake:
        yield fake


def test_thousand_sections_survive_every_kind_of_fault(site: Site, faulty: FakeOpenAI) -> None:
    server = faulty
    server.configure(fail_rate=0.10, drop_rate=0.02, slow_rate=0.01, slow_seconds=2.0)
    # Each attempt of a section may meet a 500 (one in ten), a drop, a timeout, a storm's
    # 429 or the outage. With 8 retries a CI run once lost a section whose nine attempts
    # all met one of them: the budget, not the plugin, decided that run. The assertions
    # below still hold every section to this budget.
    max_retries = 10
    site.plugin.update(
        base_url=server.base_url, concurrency=32, timeout=0.5, max_retries=max_retries
    )
    expected = write_pages(site, pages=50, sections=20)
    steps: list[tuple[int, Callable[[], None]]] = [
        (150, lambda: server.storm(40, retry_after=0.2)),
        (450, lambda: server.down_for(1.5)),
        (800, lambda: server.storm(20, retry_after=0.1)),
    ]
    with Trigger(server, steps) as trigger:
        site.build()
    assert trigger.fired == [150, 450, 800]
    server.stop()  # requests still sleeping past the client's timeout log themselves

    assert missing_sections(site, expected) == []
    every = server.records(stage="section")
    records = readable(every)
    # Unreadable ones are rare: only a request caught mid-body by the outage.
    assert len(every) - len(records) <= 32
    outcomes = Counter(r.outcome for r in records)
    # Every fault really happened ...
    assert outcomes["500"] >= 50
    assert outcomes["storm"] == 60
    assert outcomes["dropped"] >= 5
    assert outcomes["aborted"] >= 1  # cut off when the server went down
    slow = [r for r in records if r.delay == 2.0]
    assert slow
    # ... every section got exactly one good answer, in at most max_retries + 1 attempts.
    ok = Counter(section_of(r) for r in records if r.outcome == "ok" and r.delay < 2.0)
    attempts = Counter(section_of(r) for r in records)
    assert len(ok) == len(expected)
    assert max(attempts.values()) <= max_retries + 1
    # A request that timed out was retried: its section has a later, fast, good answer.
    for record in slow:
        later = [
            r
            for r in records
            if section_of(r) == section_of(record) and r.index > record.index and r.delay < 2.0
        ]
        assert any(r.outcome == "ok" for r in later)
    report = json.loads((site.root / "site" / "aigen-report.json").read_text())
    assert report["sections_failed"] == 0
    assert report["stages"]["section"]["retries"] >= outcomes["500"] + outcomes["storm"]


def _first_attempt(reply: Callable[[dict[str, Any], RequestRecord], str | Reply]) -> Any:
    """A responder that answers each section's first request with ``reply``."""
    seen: set[str] = set()
    lock = threading.Lock()

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        section = _SECTION_LINE.search(body["messages"][-1]["content"])
        key = section.group(1) if section else ""
        with lock:
            first = key not in seen
            seen.add(key)
        return reply(body, record) if first else default_responder(body, record)

    return responder


def test_timed_out_request_is_retried_not_left_hanging(site: Site, server: FakeOpenAI) -> None:
    server.responder = _first_attempt(
        lambda body, record: Reply(default_responder(body, record), delay=5.0)
    )
    site.plugin.update(timeout=0.3, max_retries=2, concurrency=4)
    expected = write_pages(site, pages=1, sections=6)
    site.build()
    assert missing_sections(site, expected) == []
    server.stop()  # the slow first attempts wake up and log themselves as aborted
    records = server.records(stage="section")
    per_section = Counter(section_of(r) for r in records)
    assert set(per_section.values()) == {2}  # the slow first attempt, then a retry
    assert sorted(r.delay for r in records) == [0.0] * 6 + [5.0] * 6


def test_dropped_connection_is_retried(site: Site, server: FakeOpenAI) -> None:
    server.drop_next(3)
    site.plugin["max_retries"] = 1
    expected = write_pages(site, pages=1, sections=5)
    site.build()
    assert missing_sections(site, expected) == []
    assert server.count(outcome="dropped") == 3
    assert server.count(stage="section", outcome="ok") == 5


def test_storm_with_retry_after_is_waited_out(site: Site, server: FakeOpenAI) -> None:
    server.storm(12, retry_after=0.2)
    site.plugin.update(max_retries=6, concurrency=4)
    expected = write_pages(site, pages=1, sections=8)
    site.build()
    assert missing_sections(site, expected) == []
    assert server.count(outcome="storm") == 12
    assert server.count(stage="section", outcome="ok") == 8
    report = json.loads((site.root / "site" / "aigen-report.json").read_text())
    assert report["stages"]["section"]["throttled"] == 12


def test_server_down_then_back(site: Site, server: FakeOpenAI) -> None:
    site.plugin.update(max_retries=10, concurrency=4)
    expected = write_pages(site, pages=2, sections=6)
    server.down_for(1.0)
    site.build()
    assert missing_sections(site, expected) == []
    assert server.count(stage="section", outcome="ok") == 12


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (lambda body, record: Reply("upstream broke", status=500), "HTTP 500: upstream broke"),
        # Every attempt is held past the client's timeout (0.3 s).
        (lambda body, record: Reply("slow", delay=3.0), "the request timed out"),
        (
            lambda body, record: Reply("busy", status=503, headers={"retry-after": "0"}),
            "HTTP 503: busy",
        ),
    ],
    ids=["always-500", "always-timeout", "always-503"],
)
def test_attempts_per_section_are_bounded_by_max_retries(
    site: Site,
    server: FakeOpenAI,
    warnings: pytest.LogCaptureFixture,
    fault: Callable[[dict[str, Any], RequestRecord], Reply],
    reason: str,
) -> None:
    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if "Section: Topic 0-1\n" in body["messages"][-1]["content"]:
            return fault(body, record)
        return default_responder(body, record)

    server.responder = responder
    site.plugin.update(max_retries=2, timeout=0.3)
    expected = write_pages(site, pages=1, sections=3)
    site.build()
    server.stop()  # the slow handlers wake up and log their requests
    broken = [r for r in server.records(stage="section") if section_of(r)[1] == "Topic 0-1"]
    assert len(broken) == 3  # the first attempt and max_retries retries, no more
    assert missing_sections(site, expected) == [("p000.md", "Topic 0-1")]
    assert "Not generated" in site.html("p000.md")
    messages = [m for m in warning_messages(warnings) if "Topic 0-1" in m]
    assert len(messages) == 1
    # The warning names the fault the server dealt; every attempt was dealt it (the
    # server decided each answer, and its delay, on arrival).
    assert messages[0] == f"aigen: p000.md: section 'Topic 0-1' failed: {reason}"
    dealt = fault({}, broken[0])
    for record in broken:
        assert record.delay == (dealt.delay or 0.0)
        if dealt.status != 200:
            assert record.outcome == str(dealt.status)


# -- nothing paid for is lost ------------------------------------------------------------


def _ok_sections(records: list[RequestRecord]) -> set[tuple[str, str]]:
    return {section_of(r) for r in records if r.stage == "section" and r.outcome == "ok"}


def _build_process(site: Site) -> subprocess.Popen[str]:
    site.write_config()
    return subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(site.config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )


def _wait_until(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    """Poll ``condition``; fail (not hang) if the build ends first or it takes too long."""
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, "the build ended before the test could interrupt it"
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.01)


def test_interrupted_build_stops_and_the_next_one_sends_only_what_is_missing(
    site: Site, server: FakeOpenAI
) -> None:
    server.configure(latency=0.3)
    site.plugin.update(concurrency=4, cache_dir=str(site.root / "cache"))
    expected = write_pages(site, pages=2, sections=20)
    process = _build_process(site)
    try:
        _wait_until(lambda: server.count(outcome="ok") >= 8, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)  # stops; never hangs
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0
    assert "Traceback" not in stderr
    time.sleep(0.5)  # anything still coming would arrive now
    first = server.log
    answered = _ok_sections(first)
    # Queued work was cancelled: far from every section was asked for.
    assert 8 <= len(first) < len(expected)
    assert all(r.outcome == "ok" for r in first)

    result = site.cli("build")
    assert result.returncode == 0, result.stderr
    second = server.log[len(first) :]
    asked_again = [section_of(r) for r in second if r.stage == "section"]
    all_sections = {(f"Page {int(name[1:4])}", title) for name, title in expected}
    # Exactly the sections whose first request never got an answer, each once.
    assert sorted(asked_again) == sorted(all_sections - answered)
    assert missing_sections(site, expected) == []
    report = json.loads((site.root / "site" / "aigen-report.json").read_text())
    assert report["stages"]["section"]["cache_hits"] == len(answered)


def test_two_builds_sharing_one_cache_both_succeed(
    site: Site, server: FakeOpenAI, tmp_path: Path
) -> None:
    server.configure(latency=0.02)
    site.plugin.update(concurrency=8, cache_dir=str(tmp_path / "shared-cache"))
    expected = write_pages(site, pages=4, sections=10)
    twin = Site(tmp_path / "twin", dict(site.plugin))
    write_pages(twin, pages=4, sections=10)
    processes = [_build_process(site), _build_process(twin)]
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=120))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert "WARNING" not in stderr, stderr
    assert missing_sections(site, expected) == []
    assert missing_sections(twin, expected) == []
    # Both asked at once, so some sections may be paid twice, but never more.
    sections = Counter(section_of(r) for r in server.records(stage="section"))
    assert len(sections) == len(expected) and max(sections.values()) <= 2
    # And the shared cache holds every answer: a third build sends nothing.
    before = len(server.log)
    result = site.cli("build")
    assert result.returncode == 0 and len(server.log) == before


@pytest.mark.parametrize("damage", ["garbage-database", "garbage-after-use", "file-not-folder"])
def test_broken_cache_degrades_to_no_cache_with_one_warning(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture, damage: str
) -> None:
    cache_dir = site.root / "cache"
    site.plugin["cache_dir"] = "cache"
    expected = write_pages(site, pages=2, sections=5)
    if damage == "garbage-database":
        cache_dir.mkdir()
        (cache_dir / "cache.db").write_bytes(b"this is not sqlite " * 200)
    elif damage == "garbage-after-use":
        site.build()
        (cache_dir / "cache.db").write_bytes(b"\x00\xff garbage " * 500)
        # Finished pages live in files of their own and would still be served whole; the
        # answers' database is what this case is about.
        shutil.rmtree(cache_dir / "pages")
    else:
        cache_dir.write_text("a file where the cache folder should be", encoding="utf-8")
    warnings.clear()
    before = len(server.log)
    site.build()
    assert missing_sections(site, expected) == []
    assert len(server.log) - before == len(expected)  # every section generated afresh
    messages = warning_messages(warnings)
    assert len(messages) == 1, messages
    assert "cache" in messages[0] and str(cache_dir) in messages[0]
    assert "continuing without a cache" in messages[0]


# -- fail fast where retrying is pointless ------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"required_key": "sk-some-other-key-000000"}, ("HTTP 401", "$AIGEN_TEST_KEY")),
        ({"models": ["real-model"]}, ("HTTP 404", "test-model", "`model`")),
    ],
    ids=["wrong-key", "unknown-model"],
)
def test_fatal_answer_stops_all_work_with_one_message(
    site: Site,
    server: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    settings: dict[str, Any],
    expected: tuple[str, ...],
) -> None:
    caplog.set_level(logging.INFO)
    server.configure(latency=0.05, **settings)
    site.plugin.update(concurrency=4, max_retries=5)
    write_pages(site, pages=5, sections=10)
    with pytest.raises(MkDocsException):
        site.build()
    # Only the requests already in flight when the first answer came: no retry storm.
    assert 1 <= len(server.log) <= 4
    assert {r.status for r in server.log} == {int(expected[0].split()[1])}
    problems = [
        r.getMessage()
        for r in caplog.records
        # MkDocs itself adds "Error reading page 'x.md':" before any error of that event.
        if r.levelno >= logging.WARNING and not r.getMessage().startswith("Error reading page")
    ]
    assert len(problems) == 1, problems
    assert all(part in problems[0] for part in expected), problems[0]
    assert "generation stopped" in problems[0]


def test_fatal_answer_on_the_command_line_is_one_line(site: Site, server: FakeOpenAI) -> None:
    server.configure(required_key="sk-some-other-key-000000")
    write_pages(site, pages=3, sections=6)
    result = site.cli("build")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "401" in line]
    assert len(lines) == 1 and "AIGEN_TEST_KEY" in lines[0]
    assert len(server.log) <= 4


def test_lock_command_keeps_to_max_retries_too(
    site: Site, server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    from mkdocs_aigen.cli import main as aigen_main

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if "Section: Topic 0-1\n" in body["messages"][-1]["content"]:
            return Reply("upstream broke", status=500)
        return default_responder(body, record)

    server.responder = responder
    site.plugin.update(max_retries=1, lock="aigen.lock")
    write_pages(site, pages=1, sections=3)
    site.write_config()
    assert aigen_main(["-f", str(site.config_file), "lock"]) == 1
    assert "not locked: p000.md: Topic 0-1: HTTP 500" in capsys.readouterr().out
    broken = [r for r in server.records(stage="section") if section_of(r)[1] == "Topic 0-1"]
    assert len(broken) == 2  # max_retries from mkdocs.yml, not the default 5
