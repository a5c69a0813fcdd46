"""The engine keeps its promise that every request gets an outcome, even when a backend
or the code around it breaks in a way no provider error explains (a hang otherwise:
``on_page_markdown`` would wait for a page whose sections never finish).

Backends plug in through the engine's factory, the same seam the local model uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from mkdocs_aigen.answers import AnswerSources, Outcome
from mkdocs_aigen.backends.base import Backend
from mkdocs_aigen.cache import ResponseCache
from mkdocs_aigen.engine import Engine
from mkdocs_aigen.requests import BackendError, ChatRequest, Completion, Message
from mkdocs_aigen.stats import BuildStats

#: Only a guard against a hang: every outcome here arrives in milliseconds.
HANG_GUARD = 30.0


def _request(number: int) -> ChatRequest:
    return ChatRequest(
        stage="section",
        model="test-model",
        messages=(Message("user", f"Write section {number}."),),
        max_tokens=50,
    )


def _run(engine: Engine, requests: list[ChatRequest]) -> list[Outcome]:
    """Run one flow per request and wait for all of them."""
    outcomes: list[Outcome] = []
    finished = threading.Event()
    lock = threading.Lock()

    def flow(request: ChatRequest):  # type: ignore[no-untyped-def]
        outcome = yield request
        return outcome

    def done(result: Outcome, error: BaseException | None) -> None:
        assert error is None
        with lock:
            outcomes.append(result)
            if len(outcomes) == len(requests):
                finished.set()

    for request in requests:
        engine.run(flow(request), done)
    engine.open()
    assert finished.wait(HANG_GUARD), f"{len(outcomes)} of {len(requests)} outcomes arrived"
    return outcomes


def _engine(tmp_path: Path, factory: Callable[[], Backend]) -> Engine:
    return Engine(
        concurrency=2,
        answers=AnswerSources(ResponseCache(tmp_path / "cache", lambda message: None)),
        stats=BuildStats(),
        backend_factory=factory,
        max_retries=1,
    )


def test_a_backend_that_cannot_start_fails_every_request_instead_of_hanging(
    tmp_path: Path,
) -> None:
    def factory() -> Backend:
        raise ModuleNotFoundError("No module named 'httpx9'")

    engine = _engine(tmp_path, factory)
    try:
        outcomes = _run(engine, [_request(n) for n in range(5)])
    finally:
        engine.close()
    assert [o.source for o in outcomes] == ["failed"] * 5
    assert all("cannot start the backend" in (o.error or "") for o in outcomes)
    assert all("httpx9" in (o.error or "") for o in outcomes)


class _Flaky:
    """Raises a bug-like exception for the first request, answers the others."""

    name = "flaky"
    max_parallel: int | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0

    def complete(self, request: ChatRequest, timeout: float) -> Completion:
        with self._lock:
            self._calls += 1
            first = self._calls == 1
        if first:
            raise KeyError("choices")
        return Completion(text=f"Answer to {request.messages[0].content}")

    def close(self) -> None:
        pass


def test_an_unexpected_error_fails_only_its_own_request(tmp_path: Path) -> None:
    engine = _engine(tmp_path, _Flaky)
    try:
        outcomes = _run(engine, [_request(n) for n in range(4)])
    finally:
        engine.close()
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == 1
    assert "internal error: KeyError" in (failed[0].error or "")
    assert sorted(o.text for o in outcomes if o.ok) == sorted(
        f"Answer to Write section {n}." for n in range(4) if _request(n) != failed[0].request
    )
    assert engine.stats.total("failures") == 1


class _CutOff:
    """Cuts every answer off at its budget unless the budget is at least ``enough``."""

    name = "cut-off"
    max_parallel: int | None = None

    def __init__(self, enough: int) -> None:
        self.enough = enough
        self.budgets: list[int] = []

    def complete(self, request: ChatRequest, timeout: float) -> Completion:
        self.budgets.append(request.max_tokens)
        if request.max_tokens < self.enough:
            raise BackendError("truncated", "the answer was cut off at max_tokens")
        return Completion(text="A whole answer.", finish_reason="stop")

    def close(self) -> None:
        pass


def test_a_cut_off_answer_is_asked_again_with_twice_the_budget(tmp_path: Path) -> None:
    backend = _CutOff(enough=100)
    engine = _engine(tmp_path, lambda: backend)
    request = _request(1)
    try:
        [outcome] = _run(engine, [request])
    finally:
        engine.close(cancel=False)
    assert outcome.text == "A whole answer."
    assert backend.budgets == [50, 100]
    # Kept under the key the next build looks for: the request as the pipeline made it.
    cached = engine.answers.cache.get(request.key)
    assert cached is not None and cached.text == "A whole answer."


def test_an_answer_cut_off_twice_is_never_kept(tmp_path: Path) -> None:
    backend = _CutOff(enough=1000)
    engine = _engine(tmp_path, lambda: backend)
    request = _request(1)
    try:
        [outcome] = _run(engine, [request])
    finally:
        engine.close(cancel=False)
    assert not outcome.ok
    assert "twice the budget (100 tokens)" in (outcome.error or "")
    assert backend.budgets == [50, 100]
    assert engine.answers.cache.get(request.key) is None
    assert engine.answers.cache.count() == 0


class _Watching:
    """Answers at once and records how many requests the engine said were queued."""

    name = "watching"
    max_parallel: int | None = None

    def __init__(self) -> None:
        self.queued: Callable[[], int] | None = None
        self.seen: list[int] = []
        self._lock = threading.Lock()

    def watch_backlog(self, queued: Callable[[], int]) -> None:
        self.queued = queued

    def complete(self, request: ChatRequest, timeout: float) -> Completion:
        assert self.queued is not None, "the engine never told the backend its backlog"
        with self._lock:
            self.seen.append(self.queued())
        return Completion(text=f"Answer to {request.messages[0].content}")

    def close(self) -> None:
        pass


def test_a_backend_that_routes_learns_how_many_requests_are_still_queued(
    tmp_path: Path,
) -> None:
    """``endpoints:`` finishes a build on its fastest endpoints by knowing what is left:
    the engine hands the backend its queue's size."""
    backend = _Watching()
    engine = _engine(tmp_path, lambda: backend)
    try:
        outcomes = _run(engine, [_request(n) for n in range(6)])
    finally:
        engine.close()
    assert [o.source for o in outcomes] == ["network"] * 6
    # Two workers: the first request sent still has at least four behind it, and the
    # one that took the last has none.
    assert max(backend.seen) >= 4
    assert min(backend.seen) == 0
