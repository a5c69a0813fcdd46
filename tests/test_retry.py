"""The retry policy as a pure function: what it retries, how often, and what it re-raises.

``call_with_retries`` makes the first attempt itself and hands a retryable failure to
tenacity as that attempt's outcome; these tests pin that the count of attempts, the
retry callbacks and the errors re-raised are exactly the policy's.
"""

from __future__ import annotations

import threading

import pytest

from mkdocs_aigen.requests import BackendError
from mkdocs_aigen.retry import Cancelled, call_with_retries


class Script:
    """An attempt that fails with each error in ``failures`` in turn, then returns "ok"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def _run(script: Script, max_retries: int = 3, cancelled: threading.Event | None = None):  # type: ignore[no-untyped-def]
    retried: list[BackendError] = []
    result = call_with_retries(
        script,
        max_retries=max_retries,
        cancelled=cancelled or threading.Event(),
        on_retry=retried.append,
    )
    return result, retried


def _throttled(n: int) -> BackendError:
    # Throttled errors wait 0 s here: the rate limiter does the pausing.
    return BackendError("throttled", f"429 number {n}", status=429)


def test_a_first_success_is_one_call_and_no_retry() -> None:
    script = Script()
    assert _run(script) == ("ok", [])
    assert script.calls == 1


def test_retryable_failures_are_retried_each_reported_once_in_order() -> None:
    failures = [_throttled(1), _throttled(2)]
    script = Script(*failures)
    result, retried = _run(script)
    assert result == "ok"
    assert script.calls == 3
    assert retried == failures


def test_the_last_error_is_reraised_as_it_was_once_retries_are_spent() -> None:
    failures = [_throttled(n) for n in range(5)]
    script = Script(*failures)
    with pytest.raises(BackendError) as raised:
        _run(script, max_retries=2)
    assert raised.value is failures[2]
    assert script.calls == 3  # the first attempt and two retries


def test_no_retries_allowed_means_one_attempt() -> None:
    error = _throttled(1)
    script = Script(error)
    with pytest.raises(BackendError) as raised:
        _run(script, max_retries=0)
    assert raised.value is error and script.calls == 1


@pytest.mark.parametrize("kind", ["fatal", "invalid", "truncated"])
def test_errors_a_retry_cannot_fix_are_raised_at_once(kind: str) -> None:
    for position in (0, 1):  # as the first attempt's error and after a retry
        error = BackendError(kind, f"{kind} error")  # type: ignore[arg-type]
        script = Script(*([_throttled(0)] * position), error)
        with pytest.raises(BackendError) as raised:
            _run(script)
        assert raised.value is error
        assert script.calls == position + 1


def test_anything_else_is_not_retried() -> None:
    script = Script(KeyError("bug"))
    with pytest.raises(KeyError):
        _run(script)
    assert script.calls == 1


def test_a_cancelled_build_stops_the_wait_before_a_retry() -> None:
    cancelled = threading.Event()
    cancelled.set()
    # A 5xx waits (backoff) before its retry: a cancelled build does not.
    script = Script(BackendError("retryable", "503", status=503))
    with pytest.raises(Cancelled):
        _run(script, cancelled=cancelled)
    assert script.calls == 1
