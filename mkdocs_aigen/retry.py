"""The one retry policy: which failures are retried, how long to wait, how often."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import tenacity

from mkdocs_aigen.requests import BackendError

T = TypeVar("T")

#: Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... capped, randomised so that
#: threads that failed together do not come back together.
_backoff = tenacity.wait_random_exponential(multiplier=0.5, max=8)


class Cancelled(Exception):
    """The build was cancelled while a request waited to be retried."""


def is_retryable(error: BaseException) -> bool:
    """429, 408, 409, 5xx, timeouts and dropped connections; never 400/401/403/404."""
    return isinstance(error, BackendError) and error.kind in ("retryable", "throttled")


def _wait(state: tenacity.RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, BackendError) and error.kind == "throttled":
        # The rate limiter already pauses every thread for exactly the server's
        # retry-after; waiting here as well would double it.
        return 0.0
    delay = _backoff(state)
    if isinstance(error, BackendError) and error.retry_after is not None:
        # A 503 with retry-after knows better than our guess.
        delay = max(delay, error.retry_after)
    return delay


def call_with_retries(
    attempt: Callable[[], T],
    *,
    max_retries: int,
    cancelled: threading.Event,
    on_retry: Callable[[BackendError], None],
) -> T:
    """Run ``attempt`` until it succeeds, fails for good, or ``max_retries`` retries are spent.

    The last error is re-raised as it was (a :class:`BackendError`), so callers see what
    really happened rather than a ``RetryError`` wrapper.
    """
    # Most requests succeed at once: they never build tenacity's machinery (a tenth of a
    # millisecond of CPU a request). A retryable failure hands over to tenacity with that
    # first failure replayed as its first attempt, so the policy counts and waits exactly
    # as if tenacity had made it.
    try:
        return attempt()
    except Exception as error:
        if not is_retryable(error) or max_retries <= 0:
            raise
        first: Exception | None = error

    def replaying() -> T:
        nonlocal first
        if first is not None:
            error, first = first, None
            raise error
        return attempt()

    def sleep(seconds: float) -> None:
        if cancelled.wait(seconds):
            raise Cancelled

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, BackendError):
            on_retry(error)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max_retries + 1),
        wait=_wait,
        retry=tenacity.retry_if_exception(is_retryable),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(replaying)
