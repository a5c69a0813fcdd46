"""``endpoints:``: several OpenAI-compatible servers as one pool, each with its own
limits; one that stops answering rests while the others take its requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from mkdocs.exceptions import Abort

from tests.conftest import Site, warning_messages
from tests.fake_server import FakeOpenAI, RequestRecord, default_responder

GUIDE = """\
---
aigen:
  brief: Explain Lumen.
  outline: [One, Two, Three, Four, Five, Six, Seven, Eight, Nine, Ten, Eleven, Twelve]
---
# Guide
"""


@pytest.fixture
def three() -> Iterator[list[FakeOpenAI]]:
    servers = [FakeOpenAI(latency=latency, seed=n) for n, latency in enumerate((0.05, 0.1, 0.2))]
    for server in servers:
        server.start()
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def _endpoints(site: Site, servers: list[FakeOpenAI], **extra: Any) -> None:
    site.plugin.pop("base_url")
    site.plugin["endpoints"] = [
        {"base_url": s.base_url, "concurrency": 2, "model": f"served-name-{n}", **extra}
        for n, s in enumerate(servers)
    ]


def test_requests_spread_over_every_endpoint_within_its_limits(
    site: Site, three: list[FakeOpenAI]
) -> None:
    _endpoints(site, three)
    site.page("guide.md", GUIDE)
    site.build()
    counts = [s.count("section") for s in three]
    assert sum(counts) == 12 and all(count >= 1 for count in counts), counts
    assert all(s.max_in_flight <= 2 for s in three)
    # Each server is asked for the model by its own name for it.
    assert {r.model for r in three[1].records()} == {"served-name-1"}
    report = json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))
    per_endpoint = report["endpoints"]
    assert sorted(e["requests"] for e in per_endpoint.values()) == sorted(counts)
    assert all(e["failures"] == 0 for e in per_endpoint.values())


def test_an_endpoint_that_dies_mid_build_loses_no_section(
    site: Site, three: list[FakeOpenAI]
) -> None:
    dying = three[0]
    seen = []

    def answer_then_die(body: dict[str, Any], record: RequestRecord) -> str:
        seen.append(record.index)
        if len(seen) == 2:
            dying.fail_next(1000, status=503)  # a storm of 5xx from here on
        return default_responder(body, record)

    dying.responder = answer_then_die
    _endpoints(site, three)
    site.page("guide.md", GUIDE)
    site.build()
    html = site.html("guide.md")
    for title in ("One", "Six", "Twelve"):
        assert f"Text for {title}." in html
    assert "could not be generated" not in html
    failures = dying.count(status=503)
    # Taken out after three failures in a row: its requests went to the others.
    assert 3 <= failures <= 3 + 2, failures
    report = json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))
    assert report["sections_failed"] == 0
    dead = next(e for name, e in report["endpoints"].items() if dying.base_url in name)
    assert dead["failures"] == failures


def test_a_refused_endpoint_is_skipped(site: Site, three: list[FakeOpenAI]) -> None:
    three[2].stop()  # connection refused
    _endpoints(site, three)
    site.page("guide.md", GUIDE)
    site.build()
    assert three[0].count("section", 200) + three[1].count("section", 200) == 12


def test_which_endpoint_answered_is_not_part_of_the_key(
    site: Site, three: list[FakeOpenAI], server: FakeOpenAI
) -> None:
    _endpoints(site, three)
    site.page("guide.md", GUIDE)
    site.build()
    # The same site against one other server: everything from the cache.
    site.plugin.pop("endpoints")
    site.plugin["base_url"] = server.base_url
    site.build()
    assert server.count() == 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"base_url": "ftp://x"}, "'endpoints[1].base_url': expected an http(s) URL"),
        (
            {"base_url": "http://x", "concurrency": 0},
            "'endpoints[1].concurrency': expected a positive",
        ),
        ({"base_url": "http://x", "rmp": 5}, "'endpoints[1]': unknown keys rmp"),
    ],
)
def test_a_bad_endpoint_names_its_field(
    site: Site,
    three: list[FakeOpenAI],
    warnings: pytest.LogCaptureFixture,
    entry: dict[str, Any],
    message: str,
) -> None:
    _endpoints(site, three[:1])
    site.plugin["endpoints"].append(entry)
    site.page("guide.md", GUIDE)
    with pytest.raises(Abort):
        site.build()
    assert any(message in m for m in warning_messages(warnings)), warning_messages(warnings)
    assert three[0].count() == 0


def _pool(backlog: int, fast_started: float) -> tuple[Any, Any, Any]:
    """A fast endpoint (0.1 s, two slots, both busy since ``fast_started``) and a slow
    one (1 s, free), with ``backlog`` requests queued in the engine."""
    from mkdocs_aigen.backends.endpoints import Endpoint, EndpointPool
    from mkdocs_aigen.backends.http import HTTPBackend
    from mkdocs_aigen.limits import RateLimiter

    def endpoint(name: str, latency: float) -> Endpoint:
        # Never sent to: the routing decision alone is under test.
        backend = HTTPBackend(api_key="unused", base_url="http://127.0.0.1:9/v1")
        found = Endpoint(name, "m", backend, RateLimiter(concurrency=2))
        found.latency = latency
        return found

    fast, slow = endpoint("fast", 0.1), endpoint("slow", 1.0)
    fast.assigned = 2
    fast.started = {1: fast_started, 2: fast_started}
    pool = EndpointPool([fast, slow])
    pool.watch_backlog(lambda: backlog)
    return pool, fast, slow


@pytest.mark.parametrize(
    ("backlog", "started_ago", "waits"),
    [
        (2, 0.05, True),  # the end of a build: the fast slots finish all three sooner
        (100, 0.05, False),  # the middle of one: every slot is needed
        (2, 5.0, False),  # the fast slots are stuck (overdue): nothing to wait for
    ],
)
def test_near_the_end_a_request_waits_for_a_faster_endpoint(
    backlog: int, started_ago: float, waits: bool
) -> None:
    import time

    now = time.monotonic()
    pool, fast, slow = _pool(backlog, now - started_ago)
    pool._waiting = 1  # the request being routed
    assert pool._sooner_elsewhere(slow, [fast, slow], now) is waits
    assert pool._sooner_elsewhere(fast, [fast, slow], now) is False  # nothing is faster
