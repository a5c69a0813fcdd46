"""Where an answer comes from, and under which key it is kept: the one place that decides.

The plugin, the engine and the command line all ask this module. Its rules:

* **The key is what the user configured** (model, sampling, prompt). It never depends on
  what the environment resolved: a lock entry or a cached answer written for the
  configured model is found by every later build of the same stub, whether that build
  has an API key, falls back to the embedded model, has nothing at all or is offline.
* **A fallback's text never poses as the configured model's.** When ``provider: auto``
  finds no key and falls back to the embedded model, a miss is sent as the *fallback's*
  request (its model and sampling), and the answer is cached under that request's own
  key. It is never stored under the configured key and never written into the lock.
* **Only answers that ended normally are stored** (the backends refuse the others, see
  :func:`mkdocs_aigen.backends.checks.check_answer`), and each record names the site that
  paid for it, so ``cache prune`` in one site leaves another site's answers alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from mkdocs_aigen.cache import CachedAnswer, ResponseCache
from mkdocs_aigen.jobs import Fallback
from mkdocs_aigen.requests import ChatRequest, Completion
from mkdocs_aigen.stats import BuildStats

#: ``capped``: not sent, because the build's spending cap was reached.
Source = Literal["lock", "cache", "network", "planned", "missing", "failed", "capped"]


@dataclass(frozen=True)
class Outcome:
    """The answer to one request, or why there is none."""

    request: ChatRequest
    source: Source
    text: str | None = None
    error: str | None = None
    completion: Completion | None = None
    #: Written by the fallback backend (now or in an earlier build), not the configured model.
    fallback: bool = False
    #: When the answer was first received (Unix time), if known: for the report and notice.
    created: float | None = None
    #: The key the answer is kept under when that is not ``request.key``: the fallback's
    #: own request (what ``data-aigen`` and the report name, so its text never poses as
    #: the configured model's).
    answer_key: str | None = None
    #: Behind a lock entry: the model's answer the cache still holds for the same request,
    #: so the pipeline can tell a person's edit in the lock from the model's text.
    original: str | None = None

    @property
    def ok(self) -> bool:
        """Whether there is text to use."""
        return self.text is not None


class AnswerStore(Protocol):
    """Text known before asking anyone (the lock file)."""

    def answer_for(self, request: ChatRequest) -> tuple[str, str] | None:
        """``(hash, text)`` of the stored answer for ``request``, if any."""
        ...


class AnswerSources:
    """Lock, cache, fallback, planning and offline, asked in that order for each request.

    One instance per build (or per command): it also records what the build used, for
    ``cache prune``, ``lock --check`` and the fallback's summary line.
    """

    def __init__(
        self,
        cache: ResponseCache,
        *,
        lock: AnswerStore | None = None,
        fallback: Fallback | None = None,
        offline_reason: str | None = None,
        planning: Callable[[ChatRequest], str] | None = None,
        site: str = "",
    ) -> None:
        self.cache = cache
        self.lock = lock
        self.fallback = fallback
        #: Why no request may be sent (offline, no key, ``serve: cache_only``); ``None``: online.
        self.offline_reason = offline_reason
        self.site = site
        self._planning = planning
        self._guard = threading.Lock()
        #: Requests a planning run would send.
        self.requests_planned: list[ChatRequest] = []
        #: Every key looked up while planning, configured and fallback (``cache prune``
        #: keeps them, ``lock --check`` compares with them); a build has no use for it.
        self.keys_seen: set[str] = set()
        #: Configured keys answered with the fallback's text in this run.
        self.fallback_keys: set[str] = set()

    def lookup(self, request: ChatRequest, stats: BuildStats) -> Outcome | None:
        """An outcome without the network, or ``None`` when ``request`` must be sent."""
        key = request.key
        if self._planning is not None:
            self._seen(key)
        if self.lock is not None:
            locked = self.lock.answer_for(request)
            if locked is not None:
                if self._planning is not None:
                    self._seen(locked[0])  # an older lock's hash: still in use
                stats.add(request.stage, lock_hits=1)
                # One cache read more (~6 µs): the answer's date, and whether a person
                # edited the text in the lock.
                behind = self.cache.get(locked[0])
                if behind is None:
                    return Outcome(request, "lock", locked[1])
                return Outcome(
                    request, "lock", locked[1], created=behind.created, original=behind.text
                )
        cached = self.cache.get(key)
        if cached is not None:
            stats.add(request.stage, cache_hits=1)
            return Outcome(request, "cache", cached.text, created=cached.created)
        if self.fallback is not None:
            sent = self.fallback.adapt(request)
            if self._planning is not None:
                self._seen(sent.key)
            cached = self.cache.get(sent.key)
            if cached is not None:
                stats.add(request.stage, cache_hits=1)
                self._used_fallback(key)
                return Outcome(
                    request,
                    "cache",
                    cached.text,
                    fallback=True,
                    created=cached.created,
                    answer_key=sent.key,
                )
        if self._planning is not None:
            with self._guard:
                self.requests_planned.append(request)
            return Outcome(request, "planned", self._planning(request))
        if self.offline_reason is not None:
            return Outcome(request, "missing", error=self.offline_reason)
        return None

    def to_send(self, request: ChatRequest) -> ChatRequest:
        """What the backend is asked for ``request``: itself, or the fallback's request."""
        return self.fallback.adapt(request) if self.fallback is not None else request

    def keep(self, request: ChatRequest, sent: ChatRequest, completion: Completion) -> Outcome:
        """Store a good answer under the key of what was *sent*, and say where it came from.

        The cache write comes first: a paid answer is never lost, even if the build is
        interrupted a moment later.
        """
        self.cache.set(
            sent.key,
            CachedAnswer(
                text=completion.text,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                model=sent.model,
                stage=sent.stage,
                label=sent.label,
                site=self.site,
            ),
        )
        fallback = sent is not request
        if fallback:
            self._used_fallback(request.key)
        return Outcome(
            request,
            "network",
            completion.text,
            completion=completion,
            fallback=fallback,
            created=time.time(),
            answer_key=sent.key if fallback else None,
        )

    def _seen(self, key: str) -> None:
        with self._guard:
            self.keys_seen.add(key)

    def _used_fallback(self, key: str) -> None:
        with self._guard:
            self.fallback_keys.add(key)
