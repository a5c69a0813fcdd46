"""Batch benchmark: a 2000-section site through ``mkdocs-aigen batch submit`` and
``collect`` against the fake server's Batch API, then a build from the cache.

Run from the repository root::

    python -m benchmarks.batch                 # 200 pages x 10 sections
    python -m benchmarks.batch --pages 20      # a smaller run

The fake server runs as a separate process (``tests.fake_server``). Each command is a
whole process, as a user runs it, timed with ``/usr/bin/time``: wall time, CPU time
(user + system) and peak memory (maximum resident set). The build afterwards must send
no request and have every section. Exits 1 if it does not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "AIGEN_BATCH_KEY"


def write_site(root: Path, *, pages: int, sections: int, base_url: str) -> Path:
    """``pages`` stub pages of ``sections`` sections each; returns the mkdocs.yml path."""
    from benchmarks.sites import write_stub_site

    options = {"base_url": base_url, "api_key_env": KEY_ENV, "model": "bench-model", "words": 60}
    return write_stub_site(root, pages=pages, sections=sections, aigen=options, name="batch")


def timed(arguments: list[str], env: dict[str, str]) -> tuple[dict[str, float], str]:
    """Run a whole command under ``/usr/bin/time``: wall s, CPU s, peak MB; its output."""
    marker = "AIGEN-TIME"
    result = subprocess.run(
        ["/usr/bin/time", "-f", f"{marker} %e %U %S %M", *arguments],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    line = next(line for line in result.stderr.splitlines() if line.startswith(marker))
    wall, user, system, peak_kb = (float(x) for x in line.split()[1:])
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} failed:\n{result.stdout}{result.stderr}")
    figures = {"wall": wall, "cpu": user + system, "peak_mb": peak_kb / 1024}
    return figures, result.stdout


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch")
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--sections", type=int, default=10)
    options = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.fake_server import start_process

    server, base_url = start_process(["--latency", "0"])
    try:
        with tempfile.TemporaryDirectory(prefix="aigen-batch-") as work:
            config = write_site(
                Path(work), pages=options.pages, sections=options.sections, base_url=base_url
            )
            env = {**os.environ, KEY_ENV: "sk-bench", "PYTHONPATH": str(ROOT)}
            cli = [sys.executable, "-m", "mkdocs_aigen.cli", "-f", str(config), "batch"]
            rows = []
            figures, _ = timed([*cli, "submit"], env)
            rows.append(("batch submit", figures))
            # The fake batch moves on one state per look: in progress, then done.
            timed([*cli, "status"], env)
            figures, out = timed([*cli, "collect"], env)
            rows.append(("batch collect", figures))
            figures, _ = timed(
                [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(config)], env
            )
            rows.append(("mkdocs build (from the cache)", figures))
            live = _live_requests(base_url)
    finally:
        server.terminate()
        server.wait()
    total = options.pages * options.sections
    print(f"{total} sections ({options.pages} pages x {options.sections}); {out.strip()}")
    print("| command | wall s | CPU s | CPU per section | peak MB |")
    print("|---|---|---|---|---|")
    for name, f in rows:
        per = f["cpu"] / total * 1000
        print(f"| {name} | {f['wall']:.2f} | {f['cpu']:.2f} | {per:.2f} ms | {f['peak_mb']:.0f} |")
    stored = f"collected: {total} answers stored, 0 missing" in out
    print(f"live requests during the build: {live} (must be 0); every answer stored: {stored}")
    return 0 if live == 0 and stored else 1


def _live_requests(base_url: str) -> int:
    """Chat completions the server answered (the batch's lines are not requests)."""
    admin = base_url.removesuffix("/v1") + "/_admin/log?bodies=0"
    with urllib.request.urlopen(admin, timeout=10) as response:
        log = json.loads(response.read())
    return len(log["records"])


if __name__ == "__main__":
    sys.exit(main())
