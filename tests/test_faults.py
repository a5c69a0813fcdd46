"""Faults are survived: 500s, 429 storms, timeouts, dropped connections, a server outage.

Real builds through MkDocs and the real openai SDK against the fake server, which injects
the faults. What is asserted is what the server saw and what the site contains, never how
long anything took.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from html import escape
from typing import Any

import pytest

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
    max_retries = 8
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
    records = server.records(stage="section")
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
    ("fault", "outcome"),
    [
        (lambda body, record: Reply("upstream broke", status=500), "500"),
        (lambda body, record: Reply("slow", delay=3.0), "ok"),  # every attempt times out
        (lambda body, record: Reply("busy", status=503, headers={"retry-after": "0"}), "503"),
    ],
    ids=["always-500", "always-timeout", "always-503"],
)
def test_attempts_per_section_are_bounded_by_max_retries(
    site: Site,
    server: FakeOpenAI,
    warnings: pytest.LogCaptureFixture,
    fault: Callable[[dict[str, Any], RequestRecord], Reply],
    outcome: str,
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
    assert outcome in {r.outcome for r in broken} or outcome == "ok"
