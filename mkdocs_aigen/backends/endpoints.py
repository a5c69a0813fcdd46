"""Several OpenAI-compatible endpoints as one backend (``endpoints:``).

Each endpoint has its own client and its own :class:`~mkdocs_aigen.limits.RateLimiter`
(its ``concurrency``, ``rpm`` and ``tpm``); a request goes to the fastest endpoint with a
free slot. At the end of a build, when the requests left are fewer than the faster
endpoints can finish sooner, a request waits for one of those instead of taking a slow
slot: the build ends with its fastest endpoints, not with a slow straggler. An endpoint
that stops answering (refused connections, a run of 5xx) is cooled down: the others take
its requests, and it is tried again after the cool-down.

Which endpoint answered never enters a request's key: every endpoint serves the
configured model (``model`` per endpoint is only the name that server knows it by), so
the cache and the lock treat all their answers alike.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mkdocs_aigen.requests import BackendError, ChatRequest, Completion

if TYPE_CHECKING:
    from mkdocs_aigen.backends.base import Backend
    from mkdocs_aigen.limits import RateLimiter

#: Failures in a row (connection refused, 5xx, timeouts) that take an endpoint out.
FAILURES_TO_COOL = 3
#: Seconds an endpoint rests after that, before it is tried again.
COOL_DOWN = 30.0
#: Seconds per answer assumed of an endpoint before its first answer.
PRIOR_LATENCY = 1.0


@dataclass
class Endpoint:
    """One endpoint: its backend, its limits and its health."""

    name: str
    #: The model name this server knows the configured model by.
    model: str
    backend: Backend
    limiter: RateLimiter
    failures_in_row: int = 0
    cooling_until: float = 0.0
    #: Smoothed seconds per answer (``None`` until the first): what routing expects.
    latency: float | None = None
    #: Requests routed here and not finished.
    assigned: int = 0
    #: When each of them was routed here (by ticket), to foresee when slots free.
    started: dict[int, float] = field(default_factory=dict)

    def expected_latency(self) -> float:
        """Seconds an answer is expected to take here."""
        return self.latency if self.latency is not None else PRIOR_LATENCY

    def answers_by(self, deadline: float, now: float) -> int:
        """Answers this endpoint is expected to finish, started from now on, before
        ``deadline``: each slot's next start is when its request in flight should end.
        A request overdue by more than its expected latency frees its slot at no
        foreseeable time, so that slot counts for nothing."""
        latency = self.expected_latency()
        frees = [now] * max(0, self.capacity() - self.assigned)
        for began in self.started.values():
            end = began + latency
            if now <= end + latency:
                frees.append(max(end, now))
        return sum(max(0, math.floor((deadline - free) / latency)) for free in frees)

    def capacity(self) -> int:
        """Requests worth having here at once: its slots, or for a rate-limited endpoint
        what its rate keeps busy (R/60 x latency in flight, by Little's law); more would
        only wait in its limiter while another endpoint could answer them."""
        slots = max(1, self.limiter.current_concurrency)
        rpm = self.limiter.rpm
        if not rpm:
            return slots
        latency = self.latency if self.latency is not None else PRIOR_LATENCY
        return max(1, min(slots, math.ceil(rpm / 60 * latency) + 1))


@dataclass
class EndpointPool:
    """A :class:`~mkdocs_aigen.backends.base.Backend` that spreads requests over
    endpoints (see the module docstring)."""

    endpoints: list[Endpoint]
    cool_down: float = COOL_DOWN
    name: str = "endpoints"
    max_parallel: int | None = None
    _lock: threading.Condition = field(default_factory=threading.Condition)
    #: Requests queued in the engine and not yet at the pool (see :meth:`watch_backlog`).
    _backlog: Callable[[], int] = lambda: 0
    #: Requests waiting in :meth:`_choose`.
    _waiting: int = 0
    _tickets: Iterator[int] = field(default_factory=itertools.count)

    def watch_backlog(self, queued: Callable[[], int]) -> None:
        """Tell the pool how many requests wait behind those it sees, so that it knows
        when a build is near its end."""
        self._backlog = queued

    def complete(self, request: ChatRequest, timeout: float) -> Completion:
        """Send ``request`` to the endpoint that should answer it first; a failure names
        the endpoint."""
        endpoint, ticket = self._choose()
        try:
            return self._send(endpoint, request, timeout)
        finally:
            with self._lock:
                endpoint.assigned -= 1
                endpoint.started.pop(ticket, None)
                # Every waiter: each weighs the endpoints again, and not all want this one.
                self._lock.notify_all()

    def _send(self, endpoint: Endpoint, request: ChatRequest, timeout: float) -> Completion:
        chars = request.prompt_chars()
        limiter = endpoint.limiter
        estimate = limiter.estimate(chars, request.max_tokens)
        permit = limiter.acquire(estimate, prompt_chars=chars, max_tokens=request.max_tokens)
        try:
            completion = endpoint.backend.complete(replace(request, model=endpoint.model), timeout)
        except BackendError as error:
            self._failed(endpoint, error, permit)
            error.endpoint = endpoint.name
            if error.kind == "throttled":
                # One endpoint's limit: it waits, the others go on. Not the engine's
                # shared pause, which would hold every endpoint back.
                error.kind = "retryable"
            raise
        finally:
            limiter.release(permit)
        limiter.on_success(
            permit,
            headers=completion.headers,
            prompt_tokens=completion.prompt_tokens or None,
            max_tokens=request.max_tokens,
        )
        with self._lock:
            endpoint.failures_in_row = 0
            latency = completion.latency
            previous = endpoint.latency
            endpoint.latency = latency if previous is None else 0.8 * previous + 0.2 * latency
        return replace(completion, endpoint=endpoint.name)

    def close(self) -> None:
        """Close every endpoint's client and limiter."""
        for endpoint in self.endpoints:
            endpoint.limiter.close()
            endpoint.backend.close()

    def _choose(self) -> tuple[Endpoint, int]:
        """Wait for a free slot on any endpoint not cooling down, and take the fastest
        such endpoint, unless the build is near its end and faster endpoints would finish
        every request left before this one could finish there. Deciding when a slot
        frees, not when the request arrives, keeps every endpoint busy: a request parked
        behind one endpoint's queue would hold a worker that another endpoint could use.
        All cooling down: the one back first."""
        with self._lock:
            self._waiting += 1
            try:
                while True:
                    now = time.monotonic()
                    ready = [e for e in self.endpoints if e.cooling_until <= now]
                    if not ready:
                        chosen = min(self.endpoints, key=lambda e: e.cooling_until)
                        break
                    free = [e for e in ready if e.assigned < e.capacity()]
                    if free:
                        chosen = min(free, key=Endpoint.expected_latency)
                        if not self._sooner_elsewhere(chosen, ready, now):
                            break
                    # Woken when a request ends; the timeout notices a cool-down ending.
                    self._lock.wait(timeout=1.0)
            finally:
                self._waiting -= 1
            ticket = next(self._tickets)
            chosen.assigned += 1
            chosen.started[ticket] = time.monotonic()
            return chosen, ticket

    def _sooner_elsewhere(self, chosen: Endpoint, ready: list[Endpoint], now: float) -> bool:
        """Whether faster endpoints are expected to finish every request left (the
        waiting ones and the engine's queue) before ``chosen`` would finish this one."""
        deadline = now + chosen.expected_latency()
        faster = [e for e in ready if e.expected_latency() < chosen.expected_latency()]
        if not faster:
            return False
        left = self._waiting + self._backlog()
        sooner = 0
        for endpoint in faster:
            sooner += endpoint.answers_by(deadline, now)
            if sooner >= left:
                return True
        return False

    def _failed(self, endpoint: Endpoint, error: BackendError, permit: object) -> None:
        if error.kind == "throttled":
            endpoint.limiter.on_throttled(
                permit,  # type: ignore[arg-type]
                retry_after=error.retry_after,
                headers=error.headers,
            )
            return
        if error.kind != "retryable" or (error.status is not None and error.status < 500):
            return  # the request's own fault, not the endpoint's
        with self._lock:
            endpoint.failures_in_row += 1
            if endpoint.failures_in_row >= FAILURES_TO_COOL:
                endpoint.cooling_until = time.monotonic() + self.cool_down
                endpoint.failures_in_row = 0
