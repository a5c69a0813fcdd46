"""Thread-safe counters per stage, for the progress line, the summary and the report."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from mkdocs_aigen.jobs import STAGES

if TYPE_CHECKING:
    from mkdocs_aigen.jobs import PageResult


#: A stage's counters, in the order the report lists them. ``cached_tokens``: of
#: ``prompt_tokens``, those the provider read from its prompt cache.
COUNTERS = (
    "requests",
    "cache_hits",
    "lock_hits",
    "retries",
    "failures",
    "throttled",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "latency",
)


class StageStats:
    """Counters of one stage (expand, section, augment, polish, review).

    A plain class with slots, not a dataclass: this module loads on every build, cached
    ones too, and a dataclass compiles its generated methods from source as it loads
    (see the note in :mod:`mkdocs_aigen.jobs`).
    """

    __slots__ = COUNTERS

    def __init__(self) -> None:
        self.requests = self.cache_hits = self.lock_hits = self.retries = 0
        self.failures = self.throttled = 0
        self.prompt_tokens = self.completion_tokens = self.cached_tokens = 0
        self.latency = 0.0

    def as_dict(self) -> dict[str, float]:
        """Every counter by name, in the order of :data:`COUNTERS`."""
        return {name: getattr(self, name) for name in COUNTERS}

    def copy(self) -> StageStats:
        """The counters as they are now."""
        copied = StageStats()
        for name in COUNTERS:
            setattr(copied, name, getattr(self, name))
        return copied


class Attempt(NamedTuple):
    """One request as the engine sent it: the bar the report's timeline draws.

    Times are seconds since the build's start (:attr:`BuildStats.started`), taken by the
    engine itself around the backend call; ``waited`` is how long the limiter held it
    back first (pacing, or the pause after a 429).
    """

    slot: int
    stage: str
    label: str
    start: float
    end: float
    #: ``ok``, ``throttled`` (429) or ``error`` (anything else that failed this attempt).
    outcome: str
    waited: float = 0.0
    tokens: int = 0


class Hit(NamedTuple):
    """An answer that needed no request (cache or lock), and when it was found."""

    at: float
    stage: str
    source: str


class BuildStats:
    """Everything one build counted. Every method is safe to call from any thread.

    A plain class, not a dataclass, for the reason :class:`StageStats` gives.
    """

    def __init__(self, *, started: float | None = None) -> None:
        self.stages: dict[str, StageStats] = {stage: StageStats() for stage in STAGES}
        self.sections_total = 0
        self.sections_done = 0
        self.sections_failed = 0
        self.sections_from_store = 0
        self.word_ratios: list[float] = []
        self.augmented = 0
        #: When the build began (``time.monotonic()``): the timeline's zero.
        self.started = time.monotonic() if started is None else started
        self.finished: float | None = None
        #: Every request sent, in the order they ended (appends are atomic under the GIL).
        self.attempts: list[Attempt] = []
        #: Every lookup answered without a request, for the timeline's row apart.
        self.hits: list[Hit] = []
        #: Requests, failures and latency per endpoint, when several are configured.
        self.endpoints: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, **counts: float) -> None:
        """Add ``counts`` (field name -> amount) to ``stage``'s counters."""
        with self._lock:
            target = self.stages[stage]
            for name, amount in counts.items():
                setattr(target, name, getattr(target, name) + amount)

    def endpoint_done(self, name: str, latency: float, *, ok: bool) -> None:
        """One request an endpoint answered (``ok``) or failed, for the report."""
        with self._lock:
            counts = self.endpoints.setdefault(
                name, {"requests": 0, "failures": 0, "latency_seconds": 0.0}
            )
            counts["requests"] += 1
            counts["failures"] += 0 if ok else 1
            counts["latency_seconds"] += latency

    def more_sections(self, count: int) -> None:
        """A second round of work (review regeneration): progress counts it too, so the
        done count never runs past the total."""
        with self._lock:
            self.sections_total += count

    def page_asked(self, result: PageResult, stage: str) -> None:
        """Count one request that ``result``'s page asked for in ``stage``.

        Under the build's lock: a page's flows resume on whichever worker thread an answer
        arrives on, so two of them can count at once, and ``Counter[...] += 1`` is a read
        then a write that loses one of two concurrent updates.
        """
        with self._lock:
            result.asked[stage] += 1

    def section_finished(
        self, *, failed: bool, from_store: bool, ratio: float | None, augmented: bool = False
    ) -> None:
        """One section reached its final text (or failed)."""
        with self._lock:
            self.sections_done += 1
            self.augmented += augmented
            self.sections_failed += failed
            self.sections_from_store += from_store
            if ratio is not None:
                self.word_ratios.append(ratio)

    def replay(self, result: PageResult) -> None:
        """Count a page served whole from the page cache as the cache hits it stands for."""
        sections = result.sections
        rounds = 2 if result.regenerated else 1
        with self._lock:
            if result.regenerated:
                self.sections_total += len(sections)
            self.sections_done += rounds * len(sections)
            self.sections_from_store += rounds * len(sections)
            self.word_ratios.extend(s.ratio for s in sections if s.ratio is not None)
            self.augmented += sum(s.augmented for s in sections)
            for stage, count in result.asked.items():
                self.stages[stage].cache_hits += count

    def total(self, name: str) -> float:
        """A counter summed over all stages."""
        with self._lock:
            return sum(getattr(s, name) for s in self.stages.values())

    @property
    def wall(self) -> float:
        """Seconds from the first submission to the end (or now)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    def summary_line(self) -> str:
        """One line for the end of the build."""
        requests = int(self.total("requests"))
        hits = int(self.total("cache_hits") + self.total("lock_hits"))
        ratio = ""
        if self.word_ratios:
            mean = sum(self.word_ratios) / len(self.word_ratios)
            ratio = (
                f", words {mean:.0%} of target, augmented {self.augmented}"
                f" ({self.augmentation_rate() or 0:.0%} of generated)"
            )
        cached = _cached(self.total("cached_tokens"))
        return (
            f"{self.sections_total} sections, {hits} cache/lock hits, {requests} requests, "
            f"{int(self.total('retries'))} retries, {self.sections_failed} failed, "
            f"tokens {int(self.total('prompt_tokens'))} prompt{cached} + "
            f"{int(self.total('completion_tokens'))} completion, "
            f"wall {self.wall:.2f}s, request time {self.total('latency'):.2f}s{ratio}"
        )

    def stage_lines(self) -> list[str]:
        """One summary line per stage that did anything, e.g. ``section: 7 requests, ...``."""
        with self._lock:
            stages = {name: s.copy() for name, s in self.stages.items()}
        lines = []
        for name, s in stages.items():
            if not (s.requests or s.cache_hits or s.lock_hits or s.failures):
                continue
            lines.append(
                f"{name}: {s.requests} requests, {s.cache_hits} cache hits, "
                f"{s.lock_hits} lock hits, {s.retries} retries, {s.failures} failed, "
                f"tokens {s.prompt_tokens} prompt{_cached(s.cached_tokens)} + "
                f"{s.completion_tokens} completion, "
                f"request time {s.latency:.2f}s"
            )
        return lines

    def augmentation_rate(self) -> float | None:
        """Augmented sections per section with measured text (``None`` without any).

        Measured sections (network or cache, not the lock) are exactly the ones that may
        be augmented, so the rate means the same on a fresh and on a cached build; request
        counts would not (retries inflate them, a cached build has none).
        """
        with self._lock:
            measured = len(self.word_ratios)
            return self.augmented / measured if measured else None

    def as_dict(self) -> dict[str, Any]:
        """The numbers for the JSON report."""
        with self._lock:
            ratios = list(self.word_ratios)
            stages = {name: s.as_dict() for name, s in self.stages.items()}
        return {
            "sections": self.sections_total,
            "sections_done": self.sections_done,
            "sections_failed": self.sections_failed,
            "augmented": self.augmented,
            "augmentation_rate": self.augmentation_rate(),
            "mean_word_ratio": (sum(ratios) / len(ratios)) if ratios else None,
            "wall_seconds": round(self.wall, 3),
            "stages": stages,
            "endpoints": {
                name: {**counts, "latency_seconds": round(counts["latency_seconds"], 3)}
                for name, counts in sorted(self.endpoints.items())
            },
        }


def _cached(tokens: float) -> str:
    """`` (N cached)`` when the provider read prompt tokens from its cache; else nothing."""
    return f" ({int(tokens)} cached)" if tokens else ""
