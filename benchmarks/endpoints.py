"""Endpoints benchmark: one site through three fake servers of different latency and
limits (``endpoints:``), against the bound their combined capacity allows.

Run from the repository root::

    python -m benchmarks.endpoints

Each fake server runs in its own process. Endpoint i, with concurrency C_i, latency L_i
and a request limit R_i per minute, answers at most ``min(C_i / L_i, R_i / 60)`` requests
a second; the bound for N requests is ``max(max L_i, N / sum of those)``. A build is a
whole ``mkdocs build`` process: its wall time is compared with a cached build's plus the
bound; the median ratio of three such runs must be <= 1.15. The last run takes one server
out halfway (every answer a 503 from then on): no section may be lost. Exits 1 if a
check fails.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "AIGEN_ENDPOINTS_KEY"
PAGES, SECTIONS = 30, 10


@dataclass(frozen=True)
class Spec:
    """One fake server: its latency, concurrency and request limit."""

    latency: float
    concurrency: int
    rpm: int | None = None

    def rate(self) -> float:
        """Requests per second it can answer."""
        rate = self.concurrency / self.latency
        return min(rate, self.rpm / 60) if self.rpm else rate


SPECS = (Spec(0.3, 8), Spec(0.5, 16), Spec(0.8, 16, rpm=900))


def write_site(root: Path, urls: list[str]) -> Path:
    """``PAGES`` pages of ``SECTIONS`` sections, generated through ``urls``."""
    from benchmarks.sites import write_stub_site

    endpoints = [
        {
            "base_url": url,
            "concurrency": spec.concurrency,
            **({"rpm": spec.rpm} if spec.rpm else {}),
        }
        for url, spec in zip(urls, SPECS, strict=True)
    ]
    options = {
        "api_key_env": KEY_ENV,
        "model": "bench-model",
        "words": 40,
        "max_retries": 8,
        "endpoints": endpoints,
    }
    return write_stub_site(root, pages=PAGES, sections=SECTIONS, aigen=options, name="endpoints")


def build(config: Path) -> float:
    """Wall seconds of one whole ``mkdocs build`` process."""
    env = {**os.environ, KEY_ENV: "sk-bench", "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return wall


def missing(root: Path) -> int:
    """Sections whose text is not in the built pages."""
    lost = 0
    for page in range(PAGES):
        html = (root / "site" / f"p{page:03d}" / "index.html").read_text(encoding="utf-8")
        lost += sum(1 for i in range(SECTIONS) if f"Text for Topic {page}-{i}." not in html)
    return lost


def run(kill_one: bool) -> tuple[float, float, float, int, list[int]]:
    """One cold and one cached build: cold wall, cached wall, bound, lost, per server."""
    from tests.fake_server import admin_call, start_process

    servers = [
        start_process(["--latency", str(s.latency), "--jitter", "0.2", "--seed", str(n)])
        for n, s in enumerate(SPECS)
    ]
    try:
        urls = [url for _, url in servers]
        with tempfile.TemporaryDirectory(prefix="aigen-endpoints-") as work:
            config = write_site(Path(work), urls)
            stop = threading.Event()
            if kill_one:
                # Halfway through the requests, the fastest server starts failing.
                threading.Thread(target=_kill_halfway, args=(urls, stop), daemon=True).start()
            cold = build(config)
            stop.set()
            cached = build(config)
            lost = missing(Path(work))
        served = [len(admin_call(url, "/_admin/log?bodies=0")["records"]) for url in urls]
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(10)
    total = PAGES * SECTIONS
    specs = SPECS[1:] if kill_one else SPECS
    bound = max(*(s.latency for s in SPECS), total / sum(s.rate() for s in specs))
    return cold, cached, bound, lost, served


def _kill_halfway(urls: list[str], stop: threading.Event) -> None:
    from tests.fake_server import admin_call

    total = PAGES * SECTIONS
    while not stop.is_set():
        answered = sum(len(admin_call(url, "/_admin/log?bodies=0")["records"]) for url in urls)
        if answered >= total // 2:
            admin_call(urls[0], "/_admin/fault", {"fail_next": {"count": 100_000, "status": 503}})
            return
        time.sleep(0.05)


def main() -> int:
    """Both runs, one table, the verdicts."""
    sys.path.insert(0, str(ROOT))
    print(
        f"{PAGES * SECTIONS} sections; endpoints (latency s, concurrency, rpm): "
        + ", ".join(f"({s.latency}, {s.concurrency}, {s.rpm or '-'})" for s in SPECS)
    )
    print(
        "| run | cold s | cached s | bound s | cold / (cached + bound) | lost | served per server |"
    )
    print("|---|---|---|---|---|---|---|")
    ok = True
    ratios = []
    for name, kill in [*((f"all three ({n})", False) for n in (1, 2, 3)), ("one dies", True)]:
        cold, cached, bound, lost, served = run(kill)
        ratio = cold / (cached + bound)
        if not kill:
            ratios.append(ratio)
        print(
            f"| {name} | {cold:.2f} | {cached:.2f} | {bound:.2f} | {ratio:.3f} | {lost} "
            f"| {' / '.join(map(str, served))} |"
        )
        ok = ok and lost == 0
    median = statistics.median(ratios)
    ok = ok and median <= 1.15
    print(
        f"all three: median ratio {median:.3f} <= 1.15 ({'met' if median <= 1.15 else 'NOT MET'})"
        "; one dies halfway: bound of the two servers left for every request (loose), "
        "0 lost required in every run"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
