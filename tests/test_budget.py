"""The spending cap: ``max_requests`` and ``budget`` stop a real build against the fake
server, counted by what the server saw; ``plan`` forecasts it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from html import unescape
from pathlib import Path

import pytest
from mkdocs.exceptions import Abort

from mkdocs_aigen.budget import Budget, BudgetReached, Price, cost
from tests.conftest import Site, warning_messages
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE

SECTIONS = 7


def _errors(warnings: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in warnings.records if r.levelname == "ERROR"]


def _plan(site: Site) -> str:
    site.write_config()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs_aigen.cli", "-f", str(site.config_file), "plan"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_max_requests_stops_sending_and_says_so_once(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    site.plugin["max_requests"] = 3
    site.plugin["concurrency"] = 2
    site.page("guide.md", GUIDE)
    assert "the next build would reach it (7 requests to send, max_requests 3)" in _plan(site)
    site.build()
    assert len(server.log) == 3
    html = unescape(site.html("guide.md"))
    assert html.count("Not generated") == SECTIONS - 3
    assert "the spending cap is reached (sent 3 of max_requests 3)" in html
    # One error for the build, naming what was sent and the cap; no warning per section.
    assert _errors(warnings) == [
        m for m in warning_messages(warnings) if "spending cap reached" in m
    ]
    (error,) = _errors(warnings)
    assert error.startswith(
        "aigen: spending cap reached, no more requests sent: sent 3 of max_requests 3; "
        "4 section(s) left as placeholders"
    )
    report = json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))
    assert report["budget"] == {
        "spent_usd": 0.0,  # no price for test-model is needed for max_requests
        "budget_usd": None,
        "requests": 3,
        "max_requests": 3,
        "reached": True,
    }
    page = (site.root / "site" / "aigen-report.html").read_text(encoding="utf-8")
    assert "<dt>spending cap</dt><dd>3 of 3 requests (reached)</dd>" in page
    # Nothing paid for is lost: without the cap only the rest is sent.
    del site.plugin["max_requests"]
    site.build()
    assert len(server.log) == SECTIONS
    assert "Not generated" not in site.html("guide.md")


def test_the_cap_fails_a_strict_build(site: Site, server: FakeOpenAI) -> None:
    site.plugin["max_requests"] = 0
    site.page("guide.md", GUIDE)
    with pytest.raises(Abort, match="strict mode"):
        site.build(strict=True)
    assert server.log == []


def test_budget_in_dollars_never_passes_the_cap(
    site: Site, server: FakeOpenAI, tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    # $1 per thousand tokens either way: a section costs a few tenths of a dollar.
    (site.root / "prices.yaml").write_text(
        "test-model: {input: 1000, output: 1000}\n", encoding="utf-8"
    )
    site.plugin.update(prices="prices.yaml", budget=1.0, concurrency=3)
    site.page("guide.md", GUIDE)
    assert "spending cap: the next build would reach it (up to $" in _plan(site)
    site.build()
    sent = len(server.log)
    assert 0 < sent < SECTIONS
    paid = sum(r.prompt_tokens + r.completion_tokens for r in server.log) / 1000
    assert paid <= 1.0
    (error,) = _errors(warnings)
    assert f"of the $1.0000 budget; {SECTIONS - sent} section(s) left as placeholders" in error
    assert f"spent ${paid:.4f}" in error

    site.plugin["budget"] = 100
    assert "spending cap: the next build stays within it" in _plan(site)


def test_a_budget_without_a_price_names_the_option(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    site.plugin["budget"] = 5
    site.page("guide.md", GUIDE)
    with pytest.raises(Abort):
        site.build()
    assert any(
        "'budget': no price known for model 'test-model'" in m for m in warning_messages(warnings)
    )
    assert server.log == []


def test_reservations_keep_concurrent_requests_under_the_cap() -> None:
    price = Price(input=1_000_000, output=1_000_000)  # a dollar a token
    budget = Budget(usd=10.0, max_requests=None, price=price)
    admitted: list[float] = []
    refused = []
    lock = threading.Lock()

    def one() -> None:
        try:
            reserved = budget.admit(prompt_chars=8, max_tokens=1)  # 2 + 1 tokens: $3
        except BudgetReached:
            with lock:
                refused.append(1)
            return
        with lock:
            admitted.append(reserved)

    threads = [threading.Thread(target=one) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted == [3.0, 3.0, 3.0] and len(refused) == 7
    for reserved in admitted:
        budget.settle(reserved, prompt_tokens=1, completion_tokens=0)  # $1 each
    assert budget.spent == 3.0
    # Once it refused, it stays closed, though 3 + 3 <= 10 would fit.
    with pytest.raises(BudgetReached, match=r"spent \$3.0000 of the \$10.0000 budget"):
        budget.admit(prompt_chars=8, max_tokens=1)

    # Before any refusal, a settled request frees what it reserved beyond its cost.
    budget = Budget(usd=7.0, max_requests=None, price=price)
    first = budget.admit(prompt_chars=8, max_tokens=1)
    budget.admit(prompt_chars=8, max_tokens=1)  # reserved 6 of 7
    budget.settle(first, prompt_tokens=1, completion_tokens=0)  # 1 spent + 3 reserved
    assert budget.admit(prompt_chars=8, max_tokens=1) == 3.0  # 1 + 3 + 3 <= 7


def test_cached_input_is_priced_apart() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.5)
    assert cost(price, 1_000_000, 0, cached_tokens=1_000_000) == 0.5
    assert cost(price, 1_000_000, 1_000_000, cached_tokens=500_000) == 1.0 + 0.25 + 8.0
    assert cost(Price(1.0, 1.0), 1_000_000, 0, cached_tokens=1_000_000) == 1.0


def test_a_failed_attempt_gives_its_reservation_back(site: Site, server: FakeOpenAI) -> None:
    """Two 429s before the first answer: the same sections fit in the budget as without
    them (a request that failed is not billed, and what it reserved is free again)."""
    (site.root / "prices.yaml").write_text(
        "test-model: {input: 1000, output: 1000}\n", encoding="utf-8"
    )
    site.plugin.update(prices="prices.yaml", budget=1.0, concurrency=1)
    site.page("guide.md", GUIDE)
    site.build()
    calm = [r.index for r in server.log if r.outcome == "ok"]
    site.plugin["cache_dir"] = ".cache/second"
    server.storm(2, retry_after=0.01)
    site.build()
    stormy = [r for r in server.log[len(calm) :] if r.outcome == "ok"]
    assert [r.outcome for r in server.log[len(calm) :][:2]] == ["storm", "storm"]
    assert 0 < len(stormy) == len(calm) < SECTIONS
