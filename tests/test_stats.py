"""The build's counters stay exact when many worker threads update them at once.

Flows resume on whichever worker thread an answer arrives on, so every counter a flow
touches is updated concurrently. The unit test hammers the public methods with a tiny
switch interval (so a read-then-write race shows within a few thousand updates); the build
test checks the counts a real concurrent build reports against the server's own log.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mkdocs_aigen.jobs import STAGES, PageResult
from mkdocs_aigen.stats import BuildStats
from tests.conftest import Site
from tests.fake_server import FakeOpenAI, RequestRecord, default_responder, filler_text

THREADS = 32
UPDATES = 2000
PAGES = 24000


@pytest.fixture
def eager_switching() -> Iterator[None]:
    """Let CPython switch threads after (almost) every bytecode, so lost updates show."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _hammer(work: Callable[[int], None]) -> None:
    """Run ``work(thread number)`` on THREADS threads released together; re-raise errors."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            start.wait()
            work(number)
        except BaseException as error:  # reported below, on the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]


@pytest.mark.usefixtures("eager_switching")
def test_counters_are_exact_under_contention() -> None:
    stats = BuildStats()
    page = PageResult("guide.md")

    def work(number: int) -> None:
        stage = STAGES[number % len(STAGES)]
        for _ in range(UPDATES):
            stats.add(stage, requests=1, prompt_tokens=3)
            stats.page_asked(page, stage)
            stats.more_sections(1)
            stats.section_finished(failed=False, from_store=True, ratio=1.0, augmented=True)

    _hammer(work)
    updates = THREADS * UPDATES
    assert stats.total("requests") == updates
    assert stats.total("prompt_tokens") == 3 * updates
    assert sum(page.asked.values()) == updates
    per_stage = Counter(STAGES[n % len(STAGES)] for n in range(THREADS))
    assert page.asked == Counter({stage: n * UPDATES for stage, n in per_stage.items()})
    assert stats.sections_total == updates
    assert stats.sections_done == stats.sections_from_store == stats.augmented == updates
    assert len(stats.word_ratios) == updates


@pytest.mark.usefixtures("eager_switching")
def test_page_counts_are_exact_when_flows_of_a_page_count_at_once() -> None:
    """Every thread counts on the same fresh pages in the same order: the first count of
    a stage runs ``Counter.__missing__`` (Python code, a switch point), where an unlocked
    ``+= 1`` loses updates most runs."""
    stats = BuildStats()
    pages = [PageResult(f"page{n}.md") for n in range(PAGES)]
    stored = PageResult("stored.md", asked=Counter({"section": 2}))

    def work(number: int) -> None:
        for page in pages:
            stats.page_asked(page, "section")
        if number % 2:
            stats.replay(stored)  # takes the same lock, from other threads at once

    _hammer(work)
    assert [page.asked["section"] for page in pages] == [THREADS] * PAGES
    assert stats.stages["section"].cache_hits == THREADS // 2 * 2


def _short_sections(body: dict[str, Any], record: RequestRecord) -> str:
    """Sections come back at half their target, so every one is augmented: the augment
    requests (and their counting) happen on the worker threads the answers arrive on."""
    if record.stage == "section":
        return filler_text("Short.", 10)
    return default_responder(body, record)


def _stub(number: int) -> str:
    items = "\n".join(f"    - Part {number}.{i}" for i in range(12))
    return (
        "---\n"
        f"title: Page {number}\n"
        "aigen:\n"
        "  brief: Describe the part.\n"
        "  words: 30\n"
        "  outline:\n"
        f"{items}\n"
        "    - title: Recipes\n"
        "      sections: {auto: 2}\n"
        "---\n"
        f"# Page {number}\n"
    )


def _report(site: Site) -> dict[str, Any]:
    return json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))


def test_concurrent_build_reports_exactly_what_the_server_saw(
    site: Site, server: FakeOpenAI
) -> None:
    server.responder = _short_sections
    server.configure(latency=0.01, jitter=0.01)
    site.plugin["concurrency"] = 32
    for number in range(4):
        site.page(f"page{number}.md", _stub(number))
    site.build()
    seen = Counter(record.stage for record in server.log)
    # 4 pages x (12 parts + Recipes + 2 proposed), each a section and an augment, and
    # one expansion a page.
    assert seen == {"section": 60, "augment": 60, "expand": 4}
    first = _report(site)
    assert {stage: counts["requests"] for stage, counts in first["stages"].items()} == {
        stage: seen[stage] for stage in STAGES
    }
    assert first["sections"] == first["sections_done"] == 60
    assert first["augmented"] == 60

    # The second build serves every page whole from the page store: its cache hits are
    # what the pages counted asking for in the first, request for request.
    site.build()
    assert len(server.log) == sum(seen.values())
    second = _report(site)
    assert {stage: counts["cache_hits"] for stage, counts in second["stages"].items()} == {
        stage: seen[stage] for stage in STAGES
    }
    assert second["sections_done"] == 60
