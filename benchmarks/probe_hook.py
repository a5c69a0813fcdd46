"""An MkDocs hook that the throughput benchmark adds to every site it builds.

The benchmark times each build as a whole process, from its start to its exit, as a user
would. Some figures can only be read inside the process; this hook reads them, last of
every plugin (the lowest priority), and writes them as JSON to ``$AIGEN_BENCH_PROBE``:

- ``nav_end``: when ``on_nav`` ended (``time.monotonic()``, the same clock in every
  process on Linux), the point a cold build's first request is measured against;
- ``worker_cpu``: the CPU of the engine's worker threads, i.e. the whole request path;
- ``main_cpu``: the main thread's CPU;
- ``openai_imported``: whether anything loaded the openai SDK.

It costs a few microseconds, and the plain builds it is compared with load it too. A
plain build (no ``aigen`` plugin) also gets the plugin's exit
(:mod:`mkdocs_aigen.quick_exit`): without it, the plain process would also run Python's
last garbage collection, and (d) would credit the plugin with the time that saves.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from mkdocs.plugins import event_priority

_probe: dict[str, Any] = {}


def on_config(config: Any) -> None:
    """Give a plain build the exit that the plugin gives its builds."""
    if "aigen" not in config.plugins:
        from mkdocs_aigen.quick_exit import skip_final_collection

        skip_final_collection()


@event_priority(-1000)
def on_nav(nav: Any, config: Any, files: Any) -> Any:
    """Note when every plugin's ``on_nav`` has run."""
    _probe["nav_end"] = time.monotonic()
    return nav


@event_priority(-1000)
def on_post_build(config: Any) -> None:
    """Read the threads' CPU while the engine's workers still exist (``on_shutdown`` ends
    them), and write everything out."""
    _probe["worker_cpu"] = worker_cpu()
    _probe["main_cpu"] = time.thread_time()
    _probe["openai_imported"] = "openai" in sys.modules
    target = os.environ.get("AIGEN_BENCH_PROBE")
    if target:
        with open(target, "w", encoding="utf-8") as out:
            json.dump(_probe, out)


def worker_cpu() -> float | None:
    """CPU seconds of the engine's worker threads so far (``aigen-0`` ...; Linux only):
    the limiter, retries, the request, the cache write and the flow that continues with
    the answer. ``None`` where ``/proc`` cannot tell."""
    total = 0.0
    for thread in threading.enumerate():
        if not thread.name.startswith("aigen-") or thread.name == "aigen-start":
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0]) / 1e9  # nanoseconds on a CPU
        except (OSError, ValueError, IndexError):
            return None
    return total
