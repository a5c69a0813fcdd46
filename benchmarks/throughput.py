"""Throughput benchmark: wall time of real MkDocs builds against the physical limit.

Run from the repository root::

    python -m benchmarks.throughput            # every scenario, about 4-5 minutes
    python -m benchmarks.throughput --only a,d  # some of them

Each scenario starts the tests' fake OpenAI-compatible server as a separate process
(``tests/fake_server.py``: it must not compete with the build for the GIL), writes a
generated site of N pages x M sections into a temporary folder, and builds it in a fresh
Python process (``--run-one``), which times itself from just before ``load_config`` to
after ``build()`` and ``on_shutdown``: interpreter start-up counts for neither side.

For every build it prints the wall time, the bound

    T_min = max(max L_i, sum L_i / C, 60 N / R, 60 sum T_i / M)

(L_i: the delay the server chose for request i, T_i: the tokens it charged, i.e. prompt +
``max_tokens``; R and M: the server's real RPM and TPM; C: ``concurrency``), their ratio,
requests answered 429, and the plugin's CPU time per section. Scenarios:

a. N=200 sections, L = 0.5 s +/- 30 %, C = 32, no rate limit; also the sequential build
   (``concurrency: 1``, about 100 s), the speedup, and the *ideal schedule*: the makespan
   of a zero-overhead scheduler that knows every latency in advance (longest first over C
   slots), from the latencies the server recorded.
b. the same with an RPM limit that binds (configured = the server's).
c. the same with a TPM limit that binds (configured = the server's).
d. a fully cached rebuild of 500 sections against a plain ``mkdocs build`` of the same
   site with the text already inlined: the plugin's overhead.
e. the server's RPM lower than the configured one (the user got it wrong): the build must
   still finish, every section present.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "AIGEN_BENCH_KEY"
#: Words per section: the fake server answers with as many, so no section is augmented.
WORDS = 200


# --------------------------------------------------------------------------- sites


def write_site(
    root: Path,
    *,
    pages: int,
    sections: int,
    plugin: dict[str, Any] | None,
    words: int = WORDS,
    inlined: dict[str, str] | None = None,
    hooks: Sequence[str] = (),
) -> Path:
    """A site of ``pages`` pages with ``sections`` outline items each; returns mkdocs.yml.

    ``plugin`` ``None`` leaves the plugin out; ``inlined`` (src path -> Markdown) then
    gives each page's body, as the plugin would have produced it.
    """
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "index.md").write_text(
        "# Home\n\nA hand-written page without a stub.\n", encoding="utf-8"
    )
    for page in range(1, pages + 1):
        name = f"page-{page:03d}.md"
        if inlined is not None:
            text = inlined[name]
        else:
            stub = {
                "brief": f"Explain part {page} of the Foo system to a new operator.",
                "audience": "operators new to Foo",
                "tone": "precise, friendly",
                "words": words,
                "outline": [f"P{page:03d} topic {s:02d}" for s in range(1, sections + 1)],
            }
            front = yaml.safe_dump({"aigen": stub}, sort_keys=False)
            text = (
                f"---\n{front}---\n# Foo part {page}\n\n"
                "Hand-written introduction.\n\n<!-- aigen -->\n\nHand-written closing words.\n"
            )
        (docs / name).write_text(text, encoding="utf-8")
    config: dict[str, Any] = {
        "site_name": "Benchmark Site",
        "site_url": "https://example.test/",
        "docs_dir": "docs",
        "site_dir": "site",
        "plugins": ["search"] if plugin is None else ["search", {"aigen": plugin}],
    }
    if hooks:
        config["hooks"] = list(hooks)
    path = root / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def plugin_options(base_url: str, concurrency: int, **extra: Any) -> dict[str, Any]:
    """The ``aigen`` options every scenario shares."""
    return {
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "model": "bench-model",
        "concurrency": concurrency,
        "words": WORDS,
        "timeout": 60,
        **extra,
    }


def missing_sections(root: Path, pages: int, sections: int) -> int:
    """Sections whose generated text is not in the built HTML."""
    missing = 0
    for page in range(1, pages + 1):
        html = (root / "site" / f"page-{page:03d}" / "index.html").read_text(encoding="utf-8")
        for s in range(1, sections + 1):
            if f"Text for P{page:03d} topic {s:02d}." not in html:
                missing += 1
    return missing


# A hook, added to the cold build of (d) only, that keeps each page's final Markdown (it
# runs after the plugin): the plain site is built from exactly that text.
CAPTURE_HOOK = '''
"""Benchmark helper: write every page's Markdown after the plugin has filled it in."""

import os
from pathlib import Path


def on_page_markdown(markdown, page, config, files):
    target = Path(os.environ["AIGEN_BENCH_CAPTURE"]) / page.file.src_uri
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(markdown, encoding="utf-8")
    return markdown
'''


# --------------------------------------------------------------------------- one build


@dataclass
class BuildResult:
    """What ``--run-one`` measured inside the build process."""

    wall: float
    cpu: float
    start: float
    end: float
    openai_imported: bool
    warnings: int
    returncode: int = 0
    stderr: str = ""


def run_one(config_file: str) -> dict[str, Any]:
    """Build ``config_file`` in this process (the child side of :func:`build`)."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    counter = _WarningCounter()
    logging.getLogger("mkdocs").addHandler(counter)
    logging.getLogger("mkdocs").setLevel(logging.INFO)
    start, cpu = time.monotonic(), time.process_time()
    config = load_config(config_file=config_file)
    config.plugins.on_startup(command="build", dirty=False)
    try:
        mkdocs_build(config)
    finally:
        config.plugins.on_shutdown()
    end, cpu_end = time.monotonic(), time.process_time()
    return {
        "wall": end - start,
        "cpu": cpu_end - cpu,
        "start": start,
        "end": end,
        "openai_imported": "openai" in sys.modules,
        "warnings": counter.count,
    }


class _WarningCounter(logging.Handler):
    """Counts the build's warnings (and shows them on stderr, for the record)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        print(f"  build warning: {record.getMessage()}", file=sys.stderr)


def build(config_file: Path, env: dict[str, str] | None = None) -> BuildResult:
    """Build in a fresh interpreter and return what it measured."""
    environment = {**os.environ, KEY_ENV: "sk-bench-0123456789", **(env or {})}
    environment.pop("AIGEN_CONCURRENCY", None)
    environment.pop("AIGEN_OFFLINE", None)
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--run-one", str(config_file)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    line = next(
        (x for x in process.stdout.splitlines() if x.startswith("RESULT ")),
        None,
    )
    if process.returncode != 0 or line is None:
        raise RuntimeError(
            f"build of {config_file} failed ({process.returncode}):\n{process.stderr[-3000:]}"
        )
    data = json.loads(line[len("RESULT ") :])
    return BuildResult(**data, stderr=process.stderr)


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    """A fake server process and what it was configured with."""

    process: subprocess.Popen[str]
    url: str
    rpm: float | None
    tpm: float | None

    def log(self) -> list[dict[str, Any]]:
        """Every logged request (without bodies)."""
        from tests.fake_server import admin_call

        records: list[dict[str, Any]] = admin_call(self.url, "/_admin/log?bodies=0")["records"]
        return records

    def reset(self) -> None:
        """Clear the log and refill the buckets."""
        from tests.fake_server import admin_call

        admin_call(self.url, "/_admin/reset", {})


@contextmanager
def fake_server(
    *, latency: float, jitter: float, rpm: float | None = None, tpm: float | None = None
) -> Iterator[Server]:
    """The fake server in its own process, stopped afterwards."""
    from tests.fake_server import start_process

    args = ["--latency", str(latency), "--jitter", str(jitter), "--seed", "1"]
    if rpm:
        args += ["--rpm", str(rpm)]
    if tpm:
        args += ["--tpm", str(tpm)]
    process, url = start_process(args)
    try:
        yield Server(process, url, rpm, tpm)
    finally:
        process.terminate()
        process.wait(10)


# --------------------------------------------------------------------------- bounds


@dataclass
class Traffic:
    """What the server saw during one build."""

    answered: list[dict[str, Any]]
    throttled: int
    total: int
    first_start: float | None
    last_end: float | None

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]]) -> Traffic:
        records = list(records)
        answered = [r for r in records if r["status"] == 200]
        starts = [r["start"] for r in records]
        ends = [r["end"] for r in records if r["end"] is not None]
        return cls(
            answered=answered,
            throttled=sum(1 for r in records if r["status"] == 429),
            total=len(records),
            first_start=min(starts) if starts else None,
            last_end=max(ends) if ends else None,
        )

    @property
    def delays(self) -> list[float]:
        """L_i of every answered request."""
        return [float(r["delay"]) for r in self.answered]

    def t_min(self, concurrency: int, rpm: float | None, tpm: float | None) -> float:
        """max(max L_i, sum L_i / C, 60 N / R, 60 sum T_i / M)."""
        delays = self.delays
        bounds = [max(delays, default=0.0), sum(delays) / concurrency]
        if rpm:
            bounds.append(60.0 * len(self.answered) / rpm)
        if tpm:
            bounds.append(60.0 * sum(int(r["charged_tokens"]) for r in self.answered) / tpm)
        return max(bounds)


def ideal_schedule(delays: Sequence[float], slots: int) -> float:
    """Makespan of longest-first list scheduling over ``slots``, every latency known."""
    finish = [0.0] * slots
    for delay in sorted(delays, reverse=True):
        heapq.heapreplace(finish, finish[0] + delay)
    return max(finish)


# --------------------------------------------------------------------------- scenarios


@dataclass
class Row:
    """One line of the table."""

    name: str
    wall: float
    t_min: float | None = None
    ideal: float | None = None
    sequential: float | None = None
    requests: int = 0
    throttled: int = 0
    cpu_per_section_ms: float | None = None
    note: str = ""
    checks: list[tuple[str, bool]] = field(default_factory=list)


LATENCY, JITTER, CONCURRENCY = 0.5, 0.3, 32


def scenario_cold(
    work: Path,
    name: str,
    *,
    pages: int,
    sections: int,
    server_rpm: float | None = None,
    server_tpm: float | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
) -> tuple[Row, Path, Server | None, Traffic]:
    """A cold build (empty cache) of a generated site against a fresh server."""
    root = work / name
    options = plugin_options("", CONCURRENCY)
    with fake_server(latency=LATENCY, jitter=JITTER, rpm=server_rpm, tpm=server_tpm) as server:
        options["base_url"] = server.url
        if rpm:
            options["rpm"] = rpm
        if tpm:
            options["tpm"] = tpm
        config = write_site(root, pages=pages, sections=sections, plugin=options)
        result = build(config)
        traffic = Traffic.of(server.log())
    bound = traffic.t_min(CONCURRENCY, server_rpm, server_tpm)
    row = Row(
        name,
        result.wall,
        t_min=bound,
        requests=traffic.total,
        throttled=traffic.throttled,
    )
    missing = missing_sections(root, pages, sections)
    row.checks.append((f"every section present ({missing} missing)", missing == 0))
    row.note = f"first request {traffic.first_start - result.start:.2f}s after start" if (
        traffic.first_start is not None
    ) else ""
    _ = result
    return row, config, None, traffic


def main(argv: list[str] | None = None) -> int:
    """Command line: run the scenarios, or (``--run-one``) one build in this process."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput")
    parser.add_argument("--only", default="a,b,c,d,e", help="comma-separated scenarios")
    parser.add_argument("--run-one", metavar="MKDOCS_YML", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the generated sites")
    options = parser.parse_args(argv)
    if options.run_one:
        print("RESULT " + json.dumps(run_one(options.run_one)), flush=True)
        return 0
    work = Path(tempfile.mkdtemp(prefix="aigen-bench-"))
    try:
        row, config, _, traffic = scenario_cold(work, "a", pages=20, sections=10)
        print(row, ideal_schedule(traffic.delays, CONCURRENCY))
        cached = build(config)
        print("cached", cached.wall, cached.cpu, cached.openai_imported)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

_ = (statistics, textwrap)
