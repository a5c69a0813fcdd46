"""The report's timeline picture: an inline SVG drawn from the engine's own timestamps.

One row per worker slot, one bar per request from start to end, coloured by stage; a
cross marks an attempt that failed and was retried or given up, a notch an attempt
answered with 429; a thin line before a bar is time the limiter held the slot back
(pacing, or the pause after a 429). Answers that needed no request (cache, lock) get a
row apart. The time axis marks the build's wall time, the lower bound and the ideal
schedule (see :func:`lower_bound` and :func:`ideal_makespan`).

Standard library only: the picture is a few hundred elements, not worth a plotting stack.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from html import escape
from typing import NamedTuple

from mkdocs_aigen.stats import Attempt, Hit

#: One colour per stage; the report's legend shows the same.
STAGE_COLOURS: dict[str, str] = {
    "expand": "#8e6c8a",
    "section": "#4c78a8",
    "augment": "#f58518",
    "polish": "#54a24b",
    "review": "#b279a2",
}
_WIDTH = 960
_LEFT = 90  # room for the row names
_RIGHT = 20
_ROW = 16
_GAP = 4
_TOP = 10
_AXIS = 56  # room below the rows for tick labels and the marks' names

#: Seconds -> x coordinate.
Scale = Callable[[float], float]


class Limits(NamedTuple):
    """What bounds a build's time besides the requests themselves."""

    concurrency: int
    rpm: int | None = None
    tpm: int | None = None


def lower_bound(attempts: Sequence[Attempt], limits: Limits) -> float:
    """``T_min = max(max L_i, sum L_i / C, 60 N / R, 60 sum T_i / M)`` in seconds.

    ``L_i``: each request's latency as the engine measured it; ``T_i``: its tokens;
    ``C``: concurrency; ``R`` and ``M``: the configured requests and tokens per minute
    (left out when not configured). No schedule can finish these requests sooner.
    """
    if not attempts:
        return 0.0
    latencies = [a.end - a.start for a in attempts]
    terms = [max(latencies), sum(latencies) / max(1, limits.concurrency)]
    if limits.rpm:
        terms.append(60 * len(attempts) / limits.rpm)
    if limits.tpm:
        terms.append(60 * sum(a.tokens for a in attempts) / limits.tpm)
    return max(terms)


def ideal_makespan(latencies: Sequence[float], slots: int) -> float:
    """Longest first over ``slots`` slots: when the last would end with no waiting at all.

    Whole requests cannot split across slots, so this is the schedule to compare with
    (it is within 4/3 of the true optimum, and usually on it).
    """
    if not latencies:
        return 0.0
    ends = [0.0] * max(1, min(slots, len(latencies)))
    for latency in sorted(latencies, reverse=True):
        heapq.heappush(ends, heapq.heappop(ends) + latency)
    return max(ends)


def timeline_svg(
    attempts: Sequence[Attempt], hits: Sequence[Hit], wall: float, limits: Limits
) -> str:
    """The timeline as one ``<svg>`` element (self-contained: no script, no external file)."""
    slots = max([limits.concurrency - 1, *(a.slot for a in attempts)]) + 1 if attempts else 0
    rows = slots + 1  # the last row: answers without a request
    height = _TOP + rows * (_ROW + _GAP) + _AXIS
    bound = lower_bound(attempts, limits)
    ideal = ideal_makespan([a.end - a.start for a in attempts], limits.concurrency)
    span = max(wall, bound, ideal, *(a.end for a in attempts), *(h.at for h in hits), 1e-3)
    scale = (_WIDTH - _LEFT - _RIGHT) / span

    def x(seconds: float) -> float:
        return round(_LEFT + max(0.0, seconds) * scale, 2)

    def y(row: int) -> int:
        return _TOP + row * (_ROW + _GAP)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{_WIDTH}" '
        f'height="{height}" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="Requests over time, one row per worker slot">'
    ]
    for slot in range(slots):
        out.append(
            f'<text class="row" x="{_LEFT - 6}" y="{y(slot) + _ROW - 4}" '
            f'text-anchor="end">slot {slot + 1}</text>'
        )
    out.append(
        f'<text class="row" x="{_LEFT - 6}" y="{y(slots) + _ROW - 4}" '
        f'text-anchor="end">no request</text>'
    )
    for attempt in attempts:
        out.extend(_bar(attempt, x, y(attempt.slot)))
    out.extend(_hits(hits, x, y(slots)))
    out.extend(_axis(span, x, y(rows) + 2, wall=wall, bound=bound, ideal=ideal, top_row=_TOP))
    out.append("</svg>")
    return "\n".join(out)


def _bar(attempt: Attempt, x: Scale, top: int) -> list[str]:
    colour = STAGE_COLOURS.get(attempt.stage, "#888888")
    left, right = x(attempt.start), x(attempt.end)
    width = max(1.0, round(right - left, 2))
    tip = (
        f"{attempt.label or attempt.stage} ({attempt.stage}): "
        f"{attempt.start:.2f}s to {attempt.end:.2f}s, {attempt.outcome}"
    )
    if attempt.waited > 0.001:
        tip += f", held back {attempt.waited:.2f}s first"
    parts = []
    if attempt.waited > 0.001:
        middle = top + _ROW // 2
        parts.append(
            f'<line class="wait" x1="{x(attempt.start - attempt.waited)}" y1="{middle}" '
            f'x2="{left}" y2="{middle}"/>'
        )
    parts.append(
        f'<rect class="bar {escape(attempt.outcome)}" data-stage="{escape(attempt.stage)}" '
        f'data-slot="{attempt.slot}" x="{left}" y="{top}" width="{width}" height="{_ROW}" '
        f'fill="{colour}"><title>{escape(tip)}</title></rect>'
    )
    end = round(left + width, 2)
    if attempt.outcome == "throttled":
        # A notch at the bar's end: the server said 429 here.
        parts.append(f'<path class="mark throttled" d="M{end} {top} l-5 0 l5 {_ROW // 2} z"/>')
    elif attempt.outcome == "error":
        parts.append(
            f'<path class="mark retry" d="M{end - 4} {top + 3} l8 {_ROW - 6} '
            f'm0 -{_ROW - 6} l-8 {_ROW - 6}"/>'
        )
    return parts


def _hits(hits: Sequence[Hit], x: Scale, top: int) -> list[str]:
    parts = []
    # One tick per distinct pixel column: hundreds of cached answers found in the same
    # millisecond are one tick with their count in its tooltip, not hundreds of elements.
    columns: dict[float, list[Hit]] = {}
    for hit in hits:
        columns.setdefault(x(hit.at), []).append(hit)
    for left, found in sorted(columns.items()):
        cache = sum(1 for h in found if h.source == "cache")
        lock = len(found) - cache
        tip = f"{cache} from the cache, {lock} from the lock at {found[0].at:.2f}s"
        parts.append(
            f'<rect class="hit" data-count="{len(found)}" x="{left}" y="{top}" width="2" '
            f'height="{_ROW}"><title>{tip}</title></rect>'
        )
    if hits:
        cache = sum(1 for h in hits if h.source == "cache")
        parts.append(
            f'<text class="hits" x="{x(0) + 8}" y="{top + _ROW - 4}">'
            f"{cache} from the cache, {len(hits) - cache} from the lock</text>"
        )
    return parts


def _axis(
    span: float, x: Scale, top: int, *, wall: float, bound: float, ideal: float, top_row: int
) -> list[str]:
    parts = [f'<line class="axis" x1="{x(0)}" y1="{top}" x2="{x(span)}" y2="{top}"/>']
    step = _tick_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        parts.append(
            f'<line class="tick" x1="{x(tick)}" y1="{top}" x2="{x(tick)}" y2="{top + 4}"/>'
        )
        parts.append(
            f'<text class="tick" x="{x(tick)}" y="{top + 15}" text-anchor="middle">{tick:g}s</text>'
        )
        tick = round(tick + step, 9)
    # The three times to compare, as lines across every row.
    for name, seconds, row in (("wall", wall, 1), ("ideal", ideal, 2), ("bound", bound, 3)):
        if seconds <= 0:
            continue
        parts.append(
            f'<line class="mark-line {name}" data-seconds="{seconds:.3f}" x1="{x(seconds)}" '
            f'y1="{top_row}" x2="{x(seconds)}" y2="{top}"/>'
        )
        anchor = "end" if name == "wall" else "start"
        parts.append(
            f'<text class="mark-label {name}" x="{x(seconds)}" y="{top + 15 + 11 * row}" '
            f'text-anchor="{anchor}">{name} {seconds:.2f}s</text>'
        )
    return parts


def _tick_step(span: float) -> float:
    """A round step giving 5 to 10 ticks."""
    step = 0.001
    while span / step > 10:
        for factor in (2, 2.5, 2):
            step *= factor
            if span / step <= 10:
                break
    return step
