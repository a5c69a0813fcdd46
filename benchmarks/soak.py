"""Soak benchmark: a 2000-section build through every fault the fake server can inject.

Run from the repository root::

    python -m benchmarks.soak                  # 100 pages x 20 sections, about a minute
    python -m benchmarks.soak --pages 20       # a smaller run

The fake OpenAI-compatible server runs as a separate process (``tests.fake_server``)
with 10 % 500s, 2 % connections dropped mid-response and 1 % replies slower than the
client's ``timeout``; while the build runs, this script adds two 429 storms with
``retry-after`` and takes the server down for 5 s. The build is a real ``mkdocs build``
(``load_config`` + ``build`` + ``on_shutdown``) in a child process of its own, which
reports its wall time and peak memory (``ru_maxrss``).

It prints one table: sections completed and lost (a section is lost when its text is
missing from the built HTML: must be 0), retries as the plugin counted them (the JSON
report) and as the server saw them (requests beyond one per section), the server's
outcomes, the largest number of attempts any section needed against ``max_retries + 1``,
peak memory and wall time. Exits 1 if a section was lost or a bound was broken.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "AIGEN_SOAK_KEY"
WORDS = 30
MAX_RETRIES = 10
TIMEOUT = 1.0
SLOW_SECONDS = 3.0
DOWN_SECONDS = 5.0

_PAGE_LINE = re.compile(r"^Page: (.+)$", re.MULTILINE)
_SECTION_LINE = re.compile(r"^Section: (.+)$", re.MULTILINE)


def write_site(root: Path, *, pages: int, sections: int, base_url: str) -> Path:
    """``pages`` stub pages of ``sections`` sections each; returns the mkdocs.yml path."""
    from benchmarks.sites import write_stub_site

    options = {
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "model": "soak-model",
        "concurrency": 32,
        "words": WORDS,
        "timeout": TIMEOUT,
        "max_retries": MAX_RETRIES,
        "cache_dir": str(root / "cache"),
        "progress_interval": 5,
    }
    return write_stub_site(root, pages=pages, sections=sections, aigen=options, name="soak")


# --------------------------------------------------------------------------- the build


def run_build(config_file: str) -> int:
    """``--build``: one real build in this process; prints ``RESULT {json}`` at the end."""
    import logging
    import resource

    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    counts: Counter[str] = Counter()

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            counts[record.levelname] += 1

    logging.basicConfig(level=logging.WARNING, format="  build %(levelname)s: %(message)s")
    logging.getLogger().addHandler(Count(logging.WARNING))
    started = time.monotonic()
    config = load_config(config_file=config_file)
    config.plugins.on_startup(command="build", dirty=False)
    try:
        build(config)
    finally:
        config.plugins.on_shutdown()
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "wall": wall,
        "maxrss_mb": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "cpu": usage.ru_utime + usage.ru_stime,
        "warnings": counts["WARNING"],
        "errors": counts["ERROR"],
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- faults


class FaultSchedule:
    """Injects each fault once the server has logged a given number of requests."""

    def __init__(self, base_url: str, steps: list[tuple[int, str, dict[str, Any]]]) -> None:
        self._url = base_url
        self._steps = steps
        self._stop = threading.Event()
        self.fired: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _count(self, since: int) -> int:
        from tests.fake_server import admin_call

        data = admin_call(self._url, f"/_admin/log?since={since}&bodies=0")
        return since + len(data["records"])

    def _run(self) -> None:
        from tests.fake_server import admin_call

        seen = 0
        for after, name, fault in self._steps:
            while seen < after:
                if self._stop.wait(0.05):
                    return
                try:
                    seen = self._count(seen)
                except OSError:
                    continue  # the server is down (our own outage): ask again
            admin_call(self._url, "/_admin/fault", fault)
            self.fired.append(f"{name} after {after} requests")

    def __enter__(self) -> FaultSchedule:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------- analysis


def section_key(record: dict[str, Any]) -> tuple[str, str] | None:
    body = record.get("body") or {}
    messages = body.get("messages") or []
    if not messages:
        return None
    prompt = str(messages[-1].get("content", ""))
    page, section = _PAGE_LINE.search(prompt), _SECTION_LINE.search(prompt)
    if page is None or section is None:
        return None
    return page.group(1), section.group(1)


def lost_sections(root: Path, pages: int, sections: int) -> tuple[int, list[str]]:
    """``(completed, lost)``: sections whose text is (not) in the built HTML."""
    completed, lost = 0, []
    for page in range(pages):
        path = root / "site" / f"p{page:03d}" / "index.html"
        html = path.read_text(encoding="utf-8") if path.exists() else ""
        for i in range(sections):
            if escape(f"Text for Topic {page}-{i}.", quote=False) in html:
                completed += 1
            else:
                lost.append(f"p{page:03d}.md: Topic {page}-{i}")
    return completed, lost


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


def soak(pages: int, sections: int, keep: bool, faults: bool = True) -> int:
    from tests.fake_server import admin_call, start_process

    total = pages * sections
    arguments = ["--latency", "0.05", "--jitter", "0.5", "--seed", "2024"]
    if faults:
        arguments += [
            "--fail-rate", "0.10", "--drop-rate", "0.02",
            "--slow-rate", "0.01", "--slow-seconds", str(SLOW_SECONDS),
        ]  # fmt: skip
    server, base_url = start_process(arguments)
    workdir = Path(tempfile.mkdtemp(prefix="aigen-soak-"))
    try:
        config_file = write_site(workdir, pages=pages, sections=sections, base_url=base_url)
        # Faults at fixed points of the run (in requests the server has seen).
        scale = total / 2000
        first, second = max(1, int(64 * scale)), max(1, int(32 * scale))
        steps: list[tuple[int, str, dict[str, Any]]] = [
            (
                int(300 * scale),
                f"429 storm x{first}",
                {"storm": {"count": first, "retry_after": 0.5}},
            ),
            (int(900 * scale), f"down for {DOWN_SECONDS:g} s", {"down_for": DOWN_SECONDS}),
            (
                int(1500 * scale),
                f"429 storm x{second}",
                {"storm": {"count": second, "retry_after": 0.2}},
            ),
        ]
        if not faults:
            steps = []
        env = {**os.environ, KEY_ENV: "sk-soak-0000000000000000"}
        print(
            f"soak: {pages} pages x {sections} sections = {total}, concurrency 32, "
            f"timeout {TIMEOUT:g} s, max_retries {MAX_RETRIES}; server {base_url}",
            flush=True,
        )
        with FaultSchedule(base_url, steps) as schedule:
            process = subprocess.run(
                [sys.executable, "-m", "benchmarks.soak", "--build", str(config_file)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        sys.stderr.write(_tail(process.stderr))
        result_line = next(
            (line for line in process.stdout.splitlines() if line.startswith("RESULT ")), None
        )
        if process.returncode != 0 or result_line is None:
            print(f"soak: the build failed (exit {process.returncode})")
            return 1
        build = json.loads(result_line.removeprefix("RESULT "))
        time.sleep(SLOW_SECONDS)  # slow requests the client gave up on log themselves
        records = admin_call(base_url, "/_admin/log")["records"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    chat = [r for r in records if r.get("path") == "/v1/chat/completions"]
    outcomes = Counter(r["outcome"] for r in chat)
    attempts: Counter[tuple[str, str]] = Counter()
    for record in chat:
        key = section_key(record)
        if key is not None:
            attempts[key] += 1
    slow = sum(1 for r in chat if r.get("delay") == SLOW_SECONDS)
    report = json.loads((workdir / "site" / "aigen-report.json").read_text(encoding="utf-8"))
    stages = report["stages"]
    plugin_retries = sum(stage["retries"] for stage in stages.values())
    throttled = sum(stage["throttled"] for stage in stages.values())
    completed, lost = lost_sections(workdir, pages, sections)
    worst = max(attempts.values()) if attempts else 0
    rows = [
        ("sections", f"{total}"),
        ("completed (text in the HTML)", f"{completed}"),
        ("lost", f"{len(lost)}"),
        ("failed (report)", f"{report['sections_failed']}"),
        ("retries (report)", f"{plugin_retries} ({throttled} after a 429)"),
        ("requests seen by the server", f"{len(chat)}"),
        ("retries seen by the server", f"{len(chat) - total} (refused connections are unseen)"),
        (
            "server outcomes",
            ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items())),
        ),
        ("replies slower than timeout", f"{slow}"),
        ("most attempts for one section", f"{worst} (bound: max_retries + 1 = {MAX_RETRIES + 1})"),
        ("faults injected", "; ".join(schedule.fired) or "none"),
        ("build warnings / errors", f"{build['warnings']} / {build['errors']}"),
        ("peak memory (build process)", f"{build['maxrss_mb']:.0f} MB"),
        ("CPU time (build process)", f"{build['cpu']:.1f} s"),
        ("wall time (build)", f"{build['wall']:.1f} s"),
    ]
    print(table(rows))
    for name in lost[:20]:
        print(f"  lost: {name}")
    if keep:
        print(f"  site kept in {workdir}")
    else:
        _remove(workdir)
    ok = not lost and worst <= MAX_RETRIES + 1 and len(schedule.fired) == len(steps)
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


def _tail(text: str, lines: int = 8) -> str:
    kept = text.splitlines()[-lines:]
    return "".join(f"{line}\n" for line in kept)


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--sections", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the generated site")
    parser.add_argument(
        "--no-faults", action="store_true", help="the same build without faults, for comparison"
    )
    parser.add_argument("--build", help=argparse.SUPPRESS)  # the child process
    arguments = parser.parse_args(argv)
    if arguments.build:
        return run_build(arguments.build)
    return soak(arguments.pages, arguments.sections, arguments.keep, not arguments.no_faults)


if __name__ == "__main__":
    sys.exit(main())
