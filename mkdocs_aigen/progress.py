"""Progress while sections generate: a bar redrawn in place on a terminal, a log line
every few seconds elsewhere (CI logs, pipes), where a redrawn line would be noise.

The bar shares the terminal with MkDocs' log lines. A filter on the handlers that write
to the same stream wipes the bar just before a record is written, so every log line
starts at column 0 and stays whole; the next update draws the bar again below it.

Standard library only, and loaded with the first answer from the network: a cached build
never imports it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TextIO

from mkdocs_aigen.stats import BuildStats

#: Carriage return, then erase to the end of the line (ANSI, understood by every terminal
#: emulator MkDocs' own coloured output already relies on).
_WIPE = "\r\x1b[K"
_BAR_WIDTH = 24
#: Seconds between redraws on a terminal: smooth enough, and no cost worth measuring.
_REDRAW = 0.1


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal that understands ``\\r`` and ANSI."""
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False
    return interactive and os.environ.get("TERM", "") != "dumb"


def progress_text(stats: BuildStats, now: float) -> str:
    """``31/120 sections, 12 cached, 0 failed, 8 in flight, ETA 14s`` and a bar."""
    total = max(stats.sections_total, stats.sections_done)
    done = stats.sections_done
    fraction = done / total if total else 1.0
    filled = round(fraction * _BAR_WIDTH)
    bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
    in_flight = max(0, int(stats.total("requests")) - len(stats.attempts))
    return (
        f"[{bar}] {done}/{total} sections, {stats.sections_from_store} cached, "
        f"{stats.sections_failed} failed, {in_flight} in flight, ETA {_eta(stats, now)}"
    )


def _eta(stats: BuildStats, now: float) -> str:
    """Remaining sections at the pace generated ones arrived so far."""
    generated = stats.sections_done - stats.sections_from_store
    remaining = max(0, stats.sections_total - stats.sections_done)
    elapsed = now - stats.started
    if remaining == 0:
        return "0s"
    if generated <= 0 or elapsed <= 0:
        return "?"
    seconds = remaining * elapsed / generated
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


class Progress:
    """One build's progress display; :meth:`update` may be called from any thread."""

    def __init__(
        self,
        stats: BuildStats,
        *,
        interval: float,
        log: logging.LoggerAdapter[logging.Logger] | logging.Logger,
        stream: TextIO | None = None,
    ) -> None:
        self.stats = stats
        self.interval = interval
        self.log = log
        self.stream = stream if stream is not None else sys.stderr
        # `mkdocs build -q` hides INFO lines: a quiet build draws no bar either.
        quiet = not logging.getLogger("mkdocs").isEnabledFor(logging.INFO)
        self.terminal = is_terminal(self.stream) and not quiet
        self._lock = threading.Lock()
        self._last = 0.0
        self._last_done = -1
        self._shown = False
        self._filtered: list[logging.Handler] = []
        if self.terminal:
            self._watch_handlers()

    def update(self) -> None:
        """A request finished: redraw the bar, or log a line if one is due."""
        now = time.monotonic()
        if self.terminal:
            with self._lock:
                if now - self._last < _REDRAW:
                    return
                self._last = now
                self._draw(progress_text(self.stats, now))
            return
        stats = self.stats
        if now - self._last < self.interval:
            return
        if stats.sections_done == self._last_done:
            return  # polish and review are still running: nothing new to say
        self._last = now
        self._last_done = stats.sections_done
        self.log.info(
            f"aigen: {stats.sections_done}/{stats.sections_total} sections "
            f"({stats.sections_from_store} cached, {stats.sections_failed} failed)"
        )

    def close(self) -> None:
        """Wipe the bar and stop watching the log handlers (the summary line follows)."""
        with self._lock:
            self._wipe()
            for handler in self._filtered:
                handler.removeFilter(self._before_record)
            self._filtered.clear()

    # -- the terminal --------------------------------------------------------------------

    def _draw(self, text: str) -> None:
        self.stream.write(f"{_WIPE}aigen: {text}")
        self.stream.flush()
        self._shown = True

    def _wipe(self) -> None:
        if self._shown:
            self.stream.write(_WIPE)
            self.stream.flush()
            self._shown = False

    def _before_record(self, record: logging.LogRecord) -> bool:
        """A handler filter: wipe the bar so the record's line starts clean; never drops it."""
        # No lock: a handler emits under its own lock, and taking ours here could
        # deadlock with a redraw that logs. A wipe racing a redraw costs one stray bar.
        self._wipe()
        return True

    def _watch_handlers(self) -> None:
        """Filter every handler (MkDocs' and the root's) that writes to our stream."""
        loggers = [logging.getLogger("mkdocs"), logging.getLogger()]
        for logger in loggers:
            for handler in logger.handlers:
                if (
                    getattr(handler, "stream", None) is self.stream
                    and handler not in self._filtered
                ):
                    handler.addFilter(self._before_record)
                    self._filtered.append(handler)
