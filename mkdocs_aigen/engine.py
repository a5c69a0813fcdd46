"""One pool for the whole site: flows of dependent requests, served longest first.

A *flow* is a generator that yields what it needs and receives the answer:

* a :class:`~mkdocs_aigen.requests.ChatRequest` -> an :class:`Outcome`;
* a :class:`Gather` of flows -> the list of their results, in order.

The engine answers from the lock and the cache at once, on the calling thread; only
misses go to the worker threads. So a fully cached build never starts a thread or
imports an SDK, and the pipeline reads as plain sequential code while every section
of every page is in flight together.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mkdocs_aigen.answers import AnswerSources, Outcome
from mkdocs_aigen.backends.base import Backend
from mkdocs_aigen.requests import BackendError, ChatRequest, Completion
from mkdocs_aigen.scrub import scrub
from mkdocs_aigen.stats import Attempt, BuildStats, Hit

if TYPE_CHECKING:
    from mkdocs_aigen.budget import Budget
    from mkdocs_aigen.limits import RateLimiter


#: Modules the request path loads on first use (a cached build needs none of them): the
#: retry policy and tenacity, the spending cap's errors, and the ``idna`` codec, which
#: the socket module loads to resolve the first host name.
_NEEDED_TO_SEND = ("mkdocs_aigen.retry", "mkdocs_aigen.budget", "encodings.idna")
#: Modules the first answer needs: the Markdown sanitiser (its patterns take a few ms).
_NEEDED_FOR_ANSWERS = ("mkdocs_aigen.sanitize",)


@dataclass(frozen=True)
class Gather:
    """Run these flows concurrently and resume with their results, in order."""

    flows: Sequence[Flow]


@dataclass(frozen=True)
class Fresh:
    """Send this request even when the lock or the cache holds an answer (``regenerate``,
    ``AIGEN_REFRESH``); the new answer then replaces the cached one."""

    request: ChatRequest


Flow = Generator["ChatRequest | Gather | Fresh", Any, Any]
Done = Callable[[Any, BaseException | None], None]


@dataclass
class _Job:
    request: ChatRequest
    deliver: Callable[[Outcome], None]
    #: The build's cancellation at the time it was queued: cancelling a build never
    #: reaches into the next one, which has its own.
    cancelled: threading.Event
    #: The build's answer sources: a request still in flight when the next build begins
    #: is kept where its own build said.
    answers: AnswerSources


class Engine:
    """Drives flows; sends misses through one rate-limited, retrying worker pool."""

    def __init__(
        self,
        *,
        concurrency: int,
        answers: AnswerSources,
        stats: BuildStats,
        backend_factory: Callable[[], Backend] | None,
        limiter: Callable[[], RateLimiter] | None = None,
        max_retries: int = 5,
        timeout: float = 120.0,
        on_progress: Callable[[], None] | None = None,
        longest_first: bool = True,
    ) -> None:
        #: Where answers come from and where they are kept (see :mod:`mkdocs_aigen.answers`).
        self.answers = answers
        self.stats = stats
        self._backend_factory = backend_factory
        self._concurrency = max(1, concurrency)
        # Made with the first request: a cached build never needs (or imports) it.
        self._limiter_factory = limiter
        self._limiter: RateLimiter | None = None
        self._max_retries = max_retries
        self._timeout = timeout
        self._on_progress = on_progress
        self._longest_first = longest_first
        self._queue: queue.PriorityQueue[tuple[float, int, _Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._workers: list[threading.Thread] = []
        #: Builds the backend, then starts the workers (see ``_ensure_workers``).
        self._starter: threading.Thread | None = None
        self._closed = False
        self._backend_lock = threading.Lock()
        self._gate = threading.Event()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        #: Each worker's slot number, for the report's timeline.
        self._slot = threading.local()
        self._backend: Backend | None = None
        self._backend_error: BackendError | None = None
        #: The first error that makes every further request pointless (401, unknown model).
        self.fatal: BackendError | None = None
        #: This build's spending cap (``budget:``, ``max_requests:``), if any.
        self.budget: Budget | None = None

    def begin_build(self, answers: AnswerSources, stats: BuildStats) -> None:
        """Start a build from clean state on an engine kept from the previous one.

        Under ``mkdocs serve`` one engine (threads, HTTP connections) serves every
        rebuild. A failed or interrupted build cancelled it, closed its limiter and may
        have recorded a fatal error; none of that may carry into the next build, which
        would otherwise fail every section it has to generate as "cancelled".
        """
        with self._lock:
            self.answers = answers
            self.stats = stats
            self.fatal = None
            self._cancelled = threading.Event()
            if self._limiter is not None and self._limiter.closed:
                self._limiter = None  # the next request makes a fresh one
            # A backend that could not start (a missing package) may start now.
            if self._backend is None:
                self._backend_error = None

    # -- flows ---------------------------------------------------------------------------

    def run(self, flow: Flow, done: Done) -> None:
        """Start ``flow``; ``done(result, error)`` is called once it returns or raises."""
        self._advance(flow, done, None, None)

    def _advance(self, flow: Flow, done: Done, value: Any, error: BaseException | None) -> None:
        # Loop rather than recurse while answers come straight from the lock or cache,
        # so a page of 500 cached sections does not build a deep stack.
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                done(stop.value, None)
                return
            except Exception as failure:
                done(None, failure)
                return
            error = None
            if isinstance(step, Gather):
                self._gather(
                    step, lambda results, flow=flow: self._advance(flow, done, results, None)
                )
                return
            if isinstance(step, Fresh):
                request = step.request
                outcome = self._unsendable(request)
            else:
                request = step
                outcome = self._answer_now(request)
            if outcome is None:
                self._submit(request, lambda out, flow=flow: self._advance(flow, done, out, None))
                return
            value = outcome

    def _gather(self, gather: Gather, resume: Callable[[list[Any]], None]) -> None:
        flows = list(gather.flows)
        if not flows:
            resume([])
            return
        results: list[Any] = [None] * len(flows)
        remaining = [len(flows)]
        lock = threading.Lock()

        def finished(index: int, result: Any, error: BaseException | None) -> None:
            results[index] = error if error is not None else result
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                resume(results)

        for index, child in enumerate(flows):
            self.run(child, lambda r, e, i=index: finished(i, r, e))

    # -- answers -------------------------------------------------------------------------

    def _answer_now(self, request: ChatRequest) -> Outcome | None:
        """An outcome without the network, or ``None`` when the request must be sent."""
        outcome = self.answers.lookup(request, self.stats)
        if outcome is not None:
            if outcome.source in ("cache", "lock"):
                # For the report's timeline: one small object per hit, no lock.
                at = time.monotonic() - self.stats.started
                self.stats.hits.append(Hit(at, request.stage, outcome.source))
            return outcome
        return self._unsendable(request)

    def _unsendable(self, request: ChatRequest) -> Outcome | None:
        """Why ``request`` cannot be sent (offline, a fatal error), or ``None``."""
        if self.answers.offline_reason is not None:
            return Outcome(request, "missing", error=self.answers.offline_reason)
        if self.fatal is not None:
            self.stats.add(request.stage, failures=1)
            return Outcome(request, "failed", error=self.fatal.message)
        return None

    def _submit(self, request: ChatRequest, deliver: Callable[[Outcome], None]) -> None:
        cancelled = self._cancelled
        if cancelled.is_set():
            deliver(Outcome(request, "failed", error="the build was cancelled"))
            return
        self._ensure_workers()
        # Longest first (max_tokens ~ expected latency) keeps the tail short on a parallel
        # API. A backend that runs one request at a time gains nothing from that, but a lot
        # from submission order: requests of one page share their prompt's long prefix,
        # which llama.cpp then reads only once. Expansions go first either way: whole
        # subtrees wait on them.
        if request.stage == "expand":
            priority = -1e9
        elif self._longest_first:
            priority = -float(request.max_tokens)
        else:
            priority = 0.0
        job = _Job(request, deliver, cancelled, self.answers)
        self._queue.put((priority, next(self._order), job))

    def start(self) -> None:
        """Build the backend and the workers now, ahead of the first miss; the workers
        still wait for :meth:`open`."""
        self._ensure_workers()

    def open(self) -> None:
        """Let the workers start. Called once every initial request is queued, so the
        longest requests of the whole site go first, not the first page's."""
        self._gate.set()

    def _ensure_workers(self) -> None:
        if self._starter is not None:
            return
        with self._lock:
            if self._starter is not None:
                return
            # One thread builds the backend (importing the SDK takes ~0.5 s) and then the
            # workers, while this one goes on queueing the site's requests. Only a miss, or
            # :meth:`start` when one is certain, gets here: a cached build never imports it.
            self._starter = threading.Thread(target=self._start, name="aigen-start", daemon=True)
            self._starter.start()

    def _start(self) -> None:
        # A failure is not lost: every request meets it again in ``_execute`` and reports it.
        with contextlib.suppress(Exception):
            self._get_backend()
        # What every request needs, loaded once here while the site's requests are still
        # being queued, rather than by the first request of every worker at once.
        for module in _NEEDED_TO_SEND:
            importlib.import_module(module)
        with self._lock:
            if self._closed:
                return
            for number in range(self._concurrency):
                worker = threading.Thread(
                    target=self._work, args=(number,), name=f"aigen-{number}", daemon=True
                )
                worker.start()
                self._workers.append(worker)
        # What the first answers need, loaded while the first requests are in flight.
        for module in _NEEDED_FOR_ANSWERS:
            importlib.import_module(module)

    def _work(self, slot: int) -> None:
        self._slot.number = slot
        self._gate.wait()
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            try:
                outcome = self._execute(job)
            except Exception as error:  # a bug, not a provider's failure: still only one section
                self.stats.add(job.request.stage, failures=1)
                message = scrub(f"internal error: {type(error).__name__}: {error}")
                outcome = Outcome(job.request, "failed", error=message)
            try:
                job.deliver(outcome)
            finally:
                if self._on_progress is not None:
                    self._on_progress()

    def _execute(self, job: _Job) -> Outcome:
        # Imported by the first request: a cached build never needs tenacity (~6 ms).
        from mkdocs_aigen.budget import BudgetReached
        from mkdocs_aigen.limits import LimiterClosed
        from mkdocs_aigen.retry import Cancelled

        request, cancelled, answers = job.request, job.cancelled, job.answers
        if cancelled.is_set():
            return Outcome(request, "failed", error="the build was cancelled")
        if self.fatal is not None:
            self.stats.add(request.stage, failures=1)
            return Outcome(request, "failed", error=self.fatal.message)
        sent = answers.to_send(request)
        try:
            backend = self._get_backend()
            completion = self._complete(backend, sent, cancelled)
        except (Cancelled, LimiterClosed):
            return Outcome(request, "failed", error="the build was cancelled")
        except BudgetReached as reached:
            return Outcome(
                request, "capped", error=f"not sent: the spending cap is reached ({reached})"
            )
        except BackendError as error:
            self.stats.add(request.stage, failures=1)
            if error.kind == "fatal":
                with self._lock:
                    if self.fatal is None:
                        self.fatal = error
            return Outcome(request, "failed", error=error.message)
        return answers.keep(request, sent, completion)

    def _complete(
        self, backend: Backend, request: ChatRequest, cancelled: threading.Event
    ) -> Completion:
        """Retried as the policy says; an answer cut off at ``max_tokens`` gets one more
        try with twice the budget, and is never used as it is."""
        from mkdocs_aigen.retry import call_with_retries

        def attempt(sent: ChatRequest) -> Completion:
            return call_with_retries(
                lambda: self._attempt(backend, sent),
                max_retries=self._max_retries,
                cancelled=cancelled,
                on_retry=lambda error: self.stats.add(request.stage, retries=1),
            )

        try:
            return attempt(request)
        except BackendError as error:
            if error.kind != "truncated":
                raise
        self.stats.add(request.stage, retries=1)
        # The larger budget changes only what is sent: the answer is kept under the
        # original request's key, which is what the next build looks for.
        try:
            # A new seed too: a small model that looped past its budget would otherwise
            # walk the same path again, only further.
            seed = (request.seed or 0) + 1
            return attempt(replace(request, max_tokens=request.max_tokens * 2, seed=seed))
        except BackendError as error:
            if error.kind != "truncated":
                raise
            raise BackendError(
                "invalid",
                f"the answer was cut off at max_tokens even with twice the budget "
                f"({request.max_tokens * 2} tokens)",
            ) from None

    def _attempt(self, backend: Backend, request: ChatRequest) -> Completion:
        chars = request.prompt_chars()
        limiter = self._rate_limiter()
        estimate = limiter.estimate(chars, request.max_tokens)
        budget = self.budget
        # Before the limiter: a request the cap refuses must not hold a slot or a permit.
        reserved = budget.admit(chars, request.max_tokens) if budget is not None else 0.0
        asked = time.monotonic()
        try:
            permit = limiter.acquire(estimate, prompt_chars=chars, max_tokens=request.max_tokens)
        except BaseException:
            if budget is not None:
                budget.settle(reserved, 0, 0)
            raise
        self.stats.add(request.stage, requests=1)
        start = time.monotonic()
        completion: Completion | None = None
        try:
            completion = backend.complete(request, self._timeout)
        except BackendError as error:
            self._record(
                request, asked, start, "throttled" if error.kind == "throttled" else "error"
            )
            if error.endpoint is not None:
                self.stats.endpoint_done(error.endpoint, time.monotonic() - start, ok=False)
            if error.kind == "throttled":
                self.stats.add(request.stage, throttled=1)
                limiter.on_throttled(permit, retry_after=error.retry_after, headers=error.headers)
            raise
        finally:
            limiter.release(permit)
            if budget is not None and completion is None:
                budget.settle(reserved, 0, 0)  # a failed request is not billed
        tokens = completion.prompt_tokens + completion.completion_tokens
        self._record(request, asked, start, "ok", tokens)
        if completion.endpoint is not None:
            self.stats.endpoint_done(completion.endpoint, completion.latency, ok=True)
        if budget is not None:
            budget.settle(
                reserved,
                completion.prompt_tokens,
                completion.completion_tokens,
                completion.cached_tokens,
            )
        limiter.on_success(
            permit,
            headers=completion.headers,
            prompt_tokens=completion.prompt_tokens or None,
            max_tokens=request.max_tokens,
        )
        self.stats.add(
            request.stage,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cached_tokens=completion.cached_tokens,
            latency=completion.latency,
        )
        return completion

    def _record(
        self, request: ChatRequest, asked: float, start: float, outcome: str, tokens: int = 0
    ) -> None:
        """One bar of the report's timeline, from the engine's own clock."""
        origin = self.stats.started
        self.stats.attempts.append(
            Attempt(
                slot=getattr(self._slot, "number", 0),
                stage=request.stage,
                label=request.label,
                start=start - origin,
                end=time.monotonic() - origin,
                outcome=outcome,
                waited=start - asked,
                tokens=tokens,
            )
        )

    def _rate_limiter(self) -> RateLimiter:
        if self._limiter is None:
            with self._lock:
                if self._limiter is None:
                    from mkdocs_aigen.limits import RateLimiter

                    factory = self._limiter_factory
                    concurrency = self._concurrency
                    limiter = factory() if factory else RateLimiter(concurrency=concurrency)
                    if self._cancelled.is_set():
                        limiter.close()
                    self._limiter = limiter
        return self._limiter

    def _get_backend(self) -> Backend:
        if self._backend is not None:
            return self._backend
        with self._backend_lock:
            if self._backend is None and self._backend_error is None:
                if self._backend_factory is None:
                    self._backend_error = BackendError("fatal", "no backend is configured")
                else:
                    try:
                        backend = self._backend_factory()
                        watch = getattr(backend, "watch_backlog", None)
                        if watch is not None:  # it routes better knowing what is left
                            watch(self._queue.qsize)
                        self._backend = backend
                    except BackendError as error:
                        self._backend_error = error
                    except Exception as error:  # e.g. an SDK too old or too new to load
                        # Every request meets this error and reports it; an exception
                        # escaping here would end a worker and leave its pages waiting.
                        self._backend_error = BackendError(
                            "fatal",
                            scrub(f"cannot start the backend: {type(error).__name__}: {error}"),
                        )
            if self._backend_error is not None:
                raise self._backend_error
            assert self._backend is not None
            return self._backend

    # -- shutdown ------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop: queued requests fail as cancelled, waiting threads wake up, answers that
        already arrived stay in the cache."""
        with self._lock:
            cancelled = self._cancelled
        cancelled.set()
        self._gate.set()
        if self._limiter is not None:
            self._limiter.close()
        while True:
            try:
                _, _, job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.deliver(Outcome(job.request, "failed", error="the build was cancelled"))

    def close(self, *, cancel: bool = True, wait: float = 5.0) -> None:
        """Cancel (by default), stop the workers and release the backend."""
        if cancel:
            self.cancel()
        self._gate.set()
        deadline = time.monotonic() + wait
        with self._lock:
            self._closed = True  # a starter still building the backend starts no workers
        if self._starter is not None:
            self._starter.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            workers = list(self._workers)
            self._workers.clear()
        for _ in workers:
            self._queue.put((float("inf"), next(self._order), None))
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if self._backend is not None:
            self._backend.close()
            self._backend = None
