"""Tests for the client-side rate limiter.

Pacing is checked on logical state with a fake clock (what is admitted now, how long
the next request must wait), never on wall-clock durations. The few tests with real
threads only wait for events with generous safety timeouts.
"""

from __future__ import annotations

import math
import threading
import time

import pytest

from mkdocs_aigen import limits
from mkdocs_aigen.limits import (
    LimiterClosed,
    Permit,
    RateLimiter,
    estimate_prompt_tokens,
    parse_reset,
)

MARGIN = 0.03


class FakeClock:
    """A settable clock; the limiter only ever reads it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(predicate, timeout: float = 5.0) -> None:
    """Wait for another thread to reach a state (a safety net, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.001)


def start_thread(target) -> tuple[threading.Thread, dict]:
    """Run ``target`` in a thread; its result or exception lands in the dict."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def drain(limiter: RateLimiter, tokens: int = 0) -> list[Permit]:
    """Take every permit available right now."""
    permits = []
    while (permit := limiter.try_acquire(tokens)) is not None:
        permits.append(permit)
    return permits


# ----------------------------------------------------------------- parse_reset


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("120ms", 0.12),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("0.5s", 0.5),
        ("0.5", 0.5),
        ("2", 2.0),
        (" 17ms ", 0.017),
        ("1m30s", 90.0),
        ("500us", 0.0005),
        ("1d", 86400.0),
        ("0s", 0.0),
        ("1S", 1.0),
    ],
)
def test_parse_reset_accepts_durations(value: str, seconds: float) -> None:
    assert parse_reset(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["", "  ", "abc", "1x", "s", "-1s", "-2", "1s2", "nan", "inf", "1.2.3s", "1s x"]
)
def test_parse_reset_rejects_garbage(value: str) -> None:
    assert parse_reset(value) is None


# ----------------------------------------------------------------- token estimates


@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (4, 1), (5, 2), (4001, 1001)])
def test_estimate_prompt_tokens_without_text_is_chars_over_four(chars: int, tokens: int) -> None:
    assert estimate_prompt_tokens(chars) == tokens


def test_estimate_prompt_tokens_uses_tiktoken_when_available(monkeypatch) -> None:
    class Encoding:
        def encode(self, text: str, disallowed_special=()) -> list[int]:
            return list(range(len(text.split())))

    monkeypatch.setattr(limits, "_tiktoken_encoding", Encoding)
    assert estimate_prompt_tokens(23, "three words here") == 3
    # Without the text there is nothing to encode.
    assert estimate_prompt_tokens(23) == 6


def test_estimate_prompt_tokens_falls_back_without_tiktoken(monkeypatch) -> None:
    monkeypatch.setattr(limits, "_tiktoken_encoding", lambda: None)
    assert estimate_prompt_tokens(10, "x" * 10) == 3


def test_limiter_estimate_learns_chars_per_token() -> None:
    limiter = RateLimiter(concurrency=4)
    assert limiter.estimate(4000, 100) == 1100
    for _ in range(20):
        permit = limiter.acquire(limiter.estimate(3000, 0), prompt_chars=3000, max_tokens=0)
        limiter.on_success(permit, headers=None, prompt_tokens=1000, max_tokens=0)
        limiter.release(permit)
    # 3 chars per token observed; the 4 chars/token prior is nearly forgotten.
    assert limiter.chars_per_token == pytest.approx(3.0, abs=0.02)
    assert abs(limiter.estimate(3000, 0) - 1000) <= 5
    assert limiter.estimate(3000, 500) == limiter.estimate(3000, 0) + 500


# ----------------------------------------------------------------- pacing


def test_request_bucket_admits_one_window_then_paces() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=100, rpm=600, safety_margin=MARGIN, clock=clock)
    rate = 600 / 60 * (1 - MARGIN)  # 9.7 requests per second
    capacity = 10 * (1 - MARGIN)  # one second of requests, minus the margin

    assert len(drain(limiter)) == 9  # 9.7 in the bucket: 9 go at once
    expected = (1 - (capacity - 9)) / rate
    assert limiter.time_until_admission() == pytest.approx(expected)

    clock.advance(expected)
    assert limiter.try_acquire(0) is not None
    assert limiter.time_until_admission() == pytest.approx(1 / rate)
    clock.advance(1 / rate / 2)
    assert limiter.try_acquire(0) is None
    clock.advance(1 / rate / 2)
    assert limiter.try_acquire(0) is not None


def test_token_bucket_paces_and_caps_at_one_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=100, tpm=60_000, clock=clock)
    rate = 1000 * (1 - MARGIN)
    assert limiter.try_acquire(900) is not None
    assert limiter.try_acquire(100) is None
    assert limiter.time_until_admission(100) == pytest.approx((100 - 70) / rate)
    # A long idle stretch refills only up to capacity, not a minute's worth.
    clock.advance(3600)
    assert limiter.try_acquire(int(rate)) is not None
    assert limiter.try_acquire(1) is None


def test_huge_request_is_admitted_when_bucket_is_full() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=10, tpm=6000, clock=clock)  # capacity 97 tokens
    rate = 100 * (1 - MARGIN)
    assert limiter.try_acquire(5000) is not None
    # The level went deep negative: the average rate still holds.
    assert limiter.time_until_admission(10) == pytest.approx((10 + 4903) / rate)
    # Another huge one waits for a full bucket, not forever.
    assert limiter.time_until_admission(5000) == pytest.approx((97 + 4903) / rate)
    clock.advance((97 + 4903) / rate)
    assert limiter.try_acquire(5000) is not None


def test_blocking_acquire_waits_for_the_bucket() -> None:
    clock = FakeClock()
    # 0.97 requests per second: the waiter sleeps ~1 s unless something wakes it.
    limiter = RateLimiter(concurrency=100, rpm=60, clock=clock)
    (held,) = drain(limiter)
    thread, outcome = start_thread(lambda: limiter.acquire(0))
    wait_until(lambda: limiter.waiting == 1)
    assert "result" not in outcome
    # Queued threads come first: a non-blocking caller may not jump the queue.
    clock.advance(10)
    assert limiter.try_acquire(0) is None
    # A release wakes the head of the queue, which sees the bucket refilled.
    limiter.release(held)
    thread.join(5)
    assert isinstance(outcome.get("result"), Permit)
    assert limiter.waiting == 0


def test_no_limits_never_wait_and_never_shrink() -> None:
    limiter = RateLimiter(concurrency=8)
    assert limiter.rpm is None
    assert limiter.tpm is None
    for _ in range(200):
        permit = limiter.acquire(10**9)
        assert limiter.time_until_admission(10**9) == 0.0
        limiter.on_success(permit, headers={}, prompt_tokens=10, max_tokens=10)
        limiter.release(permit)
    assert limiter.current_concurrency == 8
    assert limiter.throttle_events == 0
    assert limiter.in_flight == 0


# ----------------------------------------------------------------- learning from answers


def test_token_charge_is_corrected_from_usage() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=10, tpm=60_000, clock=clock)  # capacity 970
    permit = limiter.acquire(900, prompt_chars=1600, max_tokens=500)
    assert limiter.try_acquire(171) is None
    # Really 300 + 500 = 800 tokens: 100 come back.
    limiter.on_success(permit, headers=None, prompt_tokens=300, max_tokens=None)
    assert permit.tokens == 800
    assert limiter.try_acquire(170) is not None
    assert limiter.try_acquire(1) is None


def test_token_undercharge_is_charged_later() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=10, tpm=60_000, clock=clock)
    permit = limiter.acquire(100, max_tokens=50)
    limiter.on_success(permit, headers=None, prompt_tokens=450, max_tokens=50)
    assert permit.tokens == 500
    assert limiter.try_acquire(471) is None
    assert limiter.try_acquire(470) is not None


def test_missing_usage_keeps_the_estimate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=10, tpm=60_000, clock=clock)
    permit = limiter.acquire(900, prompt_chars=1600, max_tokens=500)
    limiter.on_success(permit, headers=None, prompt_tokens=0, max_tokens=500)
    assert permit.tokens == 900
    assert limiter.chars_per_token == 4.0
    assert limiter.try_acquire(71) is None


def test_remaining_zero_pauses_until_reset() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=10, clock=clock)
    permit = limiter.acquire(0)
    headers = {"X-RateLimit-Remaining-Requests": "0", "X-RateLimit-Reset-Requests": "250ms"}
    limiter.on_success(permit, headers=headers, prompt_tokens=None, max_tokens=None)
    assert limiter.paused_until == pytest.approx(clock.now + 0.25)
    assert limiter.time_until_admission() == pytest.approx(0.25)
    assert limiter.try_acquire(0) is None
    clock.advance(0.25)
    assert limiter.try_acquire(0) is not None


def test_remaining_zero_pause_is_capped_at_one_refill() -> None:
    # OpenAI's reset means "until the window is full again"; one more request only
    # needs 1/limit of a minute, here 0.1 s at 600 per minute.
    clock = FakeClock()
    limiter = RateLimiter(concurrency=10, clock=clock)
    permit = limiter.acquire(0)
    headers = {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s",
    }
    limiter.on_success(permit, headers=headers, prompt_tokens=None, max_tokens=None)
    assert limiter.paused_until == pytest.approx(clock.now + 0.1)


def test_remaining_above_zero_does_not_pause() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=10, clock=clock)
    permit = limiter.acquire(0)
    headers = {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "2s"}
    limiter.on_success(permit, headers=headers, prompt_tokens=None, max_tokens=None)
    assert limiter.paused_until <= clock.now
    assert limiter.try_acquire(0) is not None


def test_lower_server_limit_is_adopted_with_margin() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=100, rpm=600, tpm=100_000, clock=clock)
    permit = limiter.acquire(10)
    headers = {"x-ratelimit-limit-requests": "300", "x-ratelimit-limit-tokens": "200000"}
    limiter.on_success(permit, headers=headers, prompt_tokens=None, max_tokens=None)
    assert limiter.rpm == 300
    assert limiter.tpm == 100_000  # a higher reported limit is not adopted
    clock.advance(60)
    # New capacity: 5 requests per second minus the margin = 4.85.
    assert len(drain(limiter)) == 4
    assert limiter.time_until_admission() == pytest.approx(0.15 / (5 * (1 - MARGIN)))


def test_reported_limit_starts_pacing_an_unconfigured_dimension() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=100, clock=clock)
    permit = limiter.acquire(0)
    limiter.on_success(
        permit,
        headers={"x-ratelimit-limit-requests": "120"},
        prompt_tokens=None,
        max_tokens=None,
    )
    assert limiter.rpm == 120
    # We sent unpaced so far: assume the server's bucket is empty.
    assert limiter.try_acquire(0) is None
    assert limiter.time_until_admission() == pytest.approx(1 / (2 * (1 - MARGIN)))


# ----------------------------------------------------------------- throttling


def test_storm_of_throttles_is_one_event() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=16, clock=clock)
    permits = [limiter.acquire(0) for _ in range(10)]
    for permit in permits:
        limiter.on_throttled(permit, retry_after=0.5, headers=None)
        limiter.release(permit)
    assert limiter.current_concurrency == 8
    assert limiter.throttle_events == 1
    assert limiter.throttled_requests == 10
    assert limiter.paused_until == pytest.approx(clock.now + 0.5)
    assert limiter.time_until_admission() == pytest.approx(0.5)

    # A request sent after the pause is a new event.
    clock.advance(0.5)
    fresh = limiter.acquire(0)
    limiter.on_throttled(fresh, retry_after=0.2, headers=None)
    assert limiter.current_concurrency == 4
    assert limiter.throttle_events == 2


def test_late_429_of_an_old_request_does_not_halve_again() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=16, clock=clock)
    early, late = limiter.acquire(0), limiter.acquire(0)
    limiter.on_throttled(early, retry_after=0.1, headers=None)
    clock.advance(1.0)  # pause over
    limiter.on_throttled(late, retry_after=0.1, headers=None)
    assert limiter.current_concurrency == 8
    assert limiter.throttle_events == 1
    assert limiter.paused_until == pytest.approx(clock.now + 0.1)


def test_pause_length_sources() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=16, clock=clock, default_pause=1.0)
    permit = limiter.acquire(0)
    limiter.on_throttled(permit, retry_after=None, headers=None)
    assert limiter.paused_until == pytest.approx(clock.now + 1.0)

    clock.advance(5)
    permit = limiter.acquire(0)
    limiter.on_throttled(permit, retry_after=None, headers={"Retry-After-Ms": "1500"})
    assert limiter.paused_until == pytest.approx(clock.now + 1.5)

    clock.advance(5)
    permit = limiter.acquire(0)
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "300ms",
        "x-ratelimit-remaining-tokens": "5000",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    # Only the exhausted limit's reset counts, not the tokens' long one.
    limiter.on_throttled(permit, retry_after=None, headers=headers)
    assert limiter.paused_until == pytest.approx(clock.now + 0.3)


def test_throttle_holds_bucket_at_one_request_after_pause() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=100, rpm=600, clock=clock)
    permit = limiter.acquire(0)
    headers = {"x-ratelimit-remaining-requests": "0"}
    limiter.on_throttled(permit, retry_after=0.2, headers=headers)
    limiter.release(permit)
    assert limiter.rpm == pytest.approx(540)  # rate cut once for the event
    clock.advance(0.2)
    # The server has room for exactly one request now, and so do we; refilling
    # starts only at the end of the pause.
    assert limiter.try_acquire(0) is not None
    assert limiter.try_acquire(0) is None
    assert limiter.time_until_admission() == pytest.approx(1 / (9 * (1 - MARGIN)))


def test_throttle_refunds_a_limit_that_had_room() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=100, rpm=600, tpm=60_000, clock=clock)
    permit = limiter.acquire(900)
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "5000"}
    limiter.on_throttled(permit, retry_after=0.1, headers=headers)
    assert limiter.tpm == 60_000  # the tokens limit was not the problem
    clock.advance(0.1)
    assert limiter.try_acquire(970) is not None  # the 900 tokens came back


def test_rate_429_keeps_the_slots_the_rate_needs() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=32, rpm=600, clock=clock)
    permit = limiter.acquire(0)
    clock.advance(2.0)  # answers take 2 s
    limiter.on_success(permit, headers=None, prompt_tokens=None, max_tokens=None)
    limiter.release(permit)
    permit = limiter.acquire(0)
    limiter.on_throttled(permit, retry_after=0.1, headers={"x-ratelimit-remaining-requests": "0"})
    # Halving would give 16, but 8.73 requests/s x 2 s (+25 %) needs 23 slots.
    needed = math.ceil(600 / 60 * (1 - MARGIN) * 0.9 * 2.0 * 1.25) + 1
    assert limiter.current_concurrency == needed


def test_rate_429_before_any_answer_keeps_concurrency() -> None:
    limiter = RateLimiter(concurrency=32, rpm=600, clock=FakeClock())
    permit = limiter.acquire(0)
    limiter.on_throttled(permit, retry_after=0.1, headers={"x-ratelimit-remaining-requests": "0"})
    assert limiter.current_concurrency == 32
    assert limiter.throttle_events == 1


def test_quiet_stretch_grows_concurrency_and_rates_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=4, rpm=6000, clock=clock)
    old = limiter.acquire(0)
    throttled = limiter.acquire(0)
    limiter.on_throttled(throttled, retry_after=0.1, headers=None)
    limiter.release(throttled)
    limiter.release(old)
    assert limiter.current_concurrency == 2
    assert limiter.rpm == pytest.approx(5400)
    clock.advance(5)
    # Answers to requests sent before the 429 prove nothing.
    for _ in range(20):
        limiter.on_success(old, headers=None, prompt_tokens=None, max_tokens=None)
    assert limiter.current_concurrency == 2

    def succeed(count: int) -> None:
        for _ in range(count):
            permit = limiter.acquire(0)
            limiter.on_success(permit, headers=None, prompt_tokens=None, max_tokens=None)
            limiter.release(permit)

    succeed(10)
    assert limiter.current_concurrency == 3
    assert limiter.rpm == pytest.approx(5700)
    succeed(10)  # ten more successes, but not 2 s since the last step
    assert limiter.current_concurrency == 3
    clock.advance(2)
    succeed(1)
    assert limiter.current_concurrency == 4
    assert limiter.rpm == pytest.approx(6000)
    for _ in range(5):
        clock.advance(2)
        succeed(10)
    assert limiter.current_concurrency == 4  # never above the configured value
    assert limiter.rpm == pytest.approx(6000)


def test_permits_survive_double_feedback_and_release() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=2, tpm=60_000, clock=clock)
    permit = limiter.acquire(500)
    limiter.on_throttled(permit, retry_after=0.0, headers=None)
    limiter.on_throttled(permit, retry_after=0.0, headers=None)  # refunded once only
    limiter.release(permit)
    limiter.release(permit)
    assert limiter.in_flight == 0


# ----------------------------------------------------------------- threads


def test_close_wakes_blocked_acquirer() -> None:
    limiter = RateLimiter(concurrency=1)
    held = limiter.acquire(0)
    thread, outcome = start_thread(lambda: limiter.acquire(0))
    wait_until(lambda: limiter.waiting == 1)
    limiter.close()
    thread.join(5)
    assert isinstance(outcome.get("error"), LimiterClosed)
    with pytest.raises(LimiterClosed):
        limiter.acquire(0)
    limiter.release(held)


def test_close_wakes_waiter_in_a_long_pause() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=4, clock=clock)
    permit = limiter.acquire(0)
    limiter.on_throttled(permit, retry_after=30.0, headers=None)
    thread, outcome = start_thread(lambda: limiter.acquire(0))
    wait_until(lambda: limiter.waiting == 1)
    limiter.close()
    thread.join(5)
    assert isinstance(outcome.get("error"), LimiterClosed)


def test_acquire_timeout() -> None:
    limiter = RateLimiter(concurrency=1)
    held = limiter.acquire(0)
    with pytest.raises(TimeoutError):
        limiter.acquire(0, timeout=0.01)
    assert limiter.waiting == 0
    limiter.release(held)
    limiter.release(limiter.acquire(0, timeout=0.01))


def test_concurrency_never_exceeded_under_contention() -> None:
    limiter = RateLimiter(concurrency=4)
    lock = threading.Lock()
    held = 0
    peak = 0
    errors: list[BaseException] = []

    def hammer() -> None:
        nonlocal held, peak
        try:
            for i in range(50):
                permit = limiter.acquire(1)
                try:
                    with lock:
                        held += 1
                        peak = max(peak, held)
                    if i % 7 == 0:
                        time.sleep(0)
                    with lock:
                        held -= 1
                    limiter.on_success(permit, headers=None, prompt_tokens=1, max_tokens=0)
                finally:
                    limiter.release(permit)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert all(not thread.is_alive() for thread in threads)
    assert 1 <= peak <= 4
    assert limiter.in_flight == 0
    assert limiter.waiting == 0


def test_shrunk_limit_is_respected_by_waiters() -> None:
    limiter = RateLimiter(concurrency=4)
    permits = [limiter.acquire(0) for _ in range(4)]
    limiter.on_throttled(permits[0], retry_after=0.0, headers=None)
    assert limiter.current_concurrency == 2
    thread, outcome = start_thread(lambda: limiter.acquire(0))
    wait_until(lambda: limiter.waiting == 1)
    limiter.release(permits[0])
    limiter.release(permits[1])  # 2 still held: at the limit, so still waiting
    assert limiter.waiting == 1
    limiter.release(permits[2])
    thread.join(5)
    assert isinstance(outcome.get("result"), Permit)
    assert limiter.in_flight == 2


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        RateLimiter(concurrency=0)
    with pytest.raises(ValueError):
        RateLimiter(concurrency=1, rpm=0)
    with pytest.raises(ValueError):
        RateLimiter(concurrency=1, safety_margin=1.0)


def test_a_deep_cut_is_won_back_half_the_gap_at_a_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(concurrency=32, clock=clock)
    for _ in range(6):  # six separate storms: 32 -> 16 -> 8 -> 4 -> 2 -> 1 -> 1
        permit = limiter.acquire(0)
        limiter.on_throttled(permit, retry_after=0.1, headers=None)
        limiter.release(permit)
        clock.advance(0.2)
    assert limiter.current_concurrency == 1
    seen = []
    for _ in range(6):
        clock.advance(2)
        for _ in range(10):
            permit = limiter.acquire(0)
            limiter.on_success(permit, headers=None, prompt_tokens=None, max_tokens=None)
            limiter.release(permit)
        seen.append(limiter.current_concurrency)
    assert seen == [16, 24, 28, 30, 31, 32]
