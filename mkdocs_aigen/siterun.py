"""One generation of a whole site: every page submitted to one pool at once, each page
collected on its own.

The MkDocs plugin does this across its events; front doors that have no events of their
own (the Markdown extension under Zensical) start a :class:`SiteRun` on their first page
and ask it for one page at a time. Same engine, answer sources, limiter and statistics as
a build: only the timing of the calls differs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from mkdocs_aigen.answers import AnswerSources
from mkdocs_aigen.build_messages import PendingPage
from mkdocs_aigen.cache import ResponseCache
from mkdocs_aigen.engine import Engine
from mkdocs_aigen.jobs import PageJob, PageResult
from mkdocs_aigen.pipeline import PagePipeline
from mkdocs_aigen.setup import Setup
from mkdocs_aigen.stats import BuildStats


class SiteRun:
    """Every section of every page in flight together; a page waits for its own only."""

    def __init__(
        self,
        setup: Setup,
        jobs: Iterable[PageJob],
        warn: Callable[[str], None],
        *,
        on_progress: Callable[[], None] | None = None,
        on_all_done: Callable[[], None] | None = None,
        answers: AnswerSources | None = None,
    ) -> None:
        """``answers``: where answers come from (default: the setup's, on its cache);
        the run closes its cache."""
        self.setup = setup
        self.jobs = list(jobs)
        self.stats = BuildStats()
        self.stats.sections_total = sum(setup.count_sections(job.stub) for job in self.jobs)
        if answers is None:
            answers = setup.answer_sources(ResponseCache(setup.cache_dir, warn))
        self.cache = answers.cache
        self.engine = Engine(
            concurrency=setup.concurrency,
            answers=answers,
            stats=self.stats,
            backend_factory=setup.backend_factory,
            limiter=setup.make_limiter,
            max_retries=setup.max_retries,
            timeout=setup.timeout,
            on_progress=on_progress,
            longest_first=setup.max_parallel != 1,
        )
        # Each run may spend up to the cap, as each build may.
        self.engine.budget = setup.cap.budget() if setup.cap is not None else None
        self._pending: dict[str, PendingPage] = {}
        self._closed = False
        #: Called once, on the thread that finishes the last page, before that page's
        #: waiter wakes up: a front door without a post-build event reports from here.
        self._on_all_done = on_all_done
        self._remaining = len(self.jobs)
        self._count_lock = threading.Lock()

    def start(self) -> None:
        """Submit every page, then let the pool go (longest request of the site first).

        Answers in the lock or the cache come back at once, on this thread.
        """
        for job in self.jobs:
            pending = self._pending[job.stub.src_path] = PendingPage()
            pipeline = PagePipeline(job, self.setup.settings, self.setup.prompts, self.stats)
            done = self._finishing(pending)
            try:
                self.engine.run(pipeline.flow(), done)
            except BaseException as error:
                done(None, error)  # a flow can fail as it starts (a template): no hang
                raise
        self.engine.open()

    def _finishing(self, pending: PendingPage) -> Callable[[Any, BaseException | None], None]:
        def done(result: Any, error: BaseException | None) -> None:
            pending.result, pending.error = result, error
            with self._count_lock:
                self._remaining -= 1
                last = self._remaining == 0
            try:
                if last and self._on_all_done is not None:
                    self.stats.finished = time.monotonic()
                    self._on_all_done()
            finally:
                pending.done.set()  # whatever happened: a waiter must never hang

        return done

    def __contains__(self, src_path: str) -> bool:
        return src_path in self._pending

    def page(self, src_path: str) -> PageResult:
        """Wait for this page's sections only; re-raises what stopped its flow."""
        pending = self._pending[src_path]
        while not pending.done.wait(0.5):  # short waits: Ctrl-C is noticed
            pass
        if pending.error is not None:
            self.engine.cancel()
            raise pending.error
        assert pending.result is not None
        return pending.result

    def errors(self) -> list[BaseException]:
        """What stopped pages' flows (a template that failed on real values...)."""
        return [p.error for p in self._pending.values() if p.error is not None]

    def results(self) -> list[PageResult]:
        """The pages that have finished, by path."""
        done = [p.result for p in self._pending.values() if p.result is not None]
        return sorted(done, key=lambda r: r.src_path)

    def close(self, *, cancel: bool = False) -> list[PageResult]:
        """Wait for every page (answers paid for reach the cache), stop the pool, close
        the cache; every page's result. ``cancel``: drop what is still queued."""
        if self._closed:
            return self.results()
        self._closed = True
        if cancel:
            self.engine.cancel()
        else:
            for pending in self._pending.values():
                pending.done.wait()
        self.engine.close(cancel=cancel)
        self.cache.close()
        if self.stats.finished is None:
            self.stats.finished = time.monotonic()
        return self.results()
