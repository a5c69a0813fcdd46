"""Build the example site against the fake server and photograph its report page.

    python -m benchmarks.report_screenshot [--out assets/aigen-report.png]

The example site is copied to a temporary folder and pointed at the fake
OpenAI-compatible server of the test suite (0.4 s ± 0.2 s per answer, two 429s and
one 500 injected), so the picture shows every kind of mark without an API key. The page
is then taken with headless Chromium (Debian's ``chromium`` package) from ``file://``,
which also shows that it needs no network.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from mkdocs_aigen.stats import Attempt
from mkdocs_aigen.timeline import Limits, ideal_makespan, lower_bound
from tests.fake_server import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "assets" / "aigen-report.png"))
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    arguments = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as temporary,
        FakeOpenAI(latency=0.4, jitter=0.2, seed=7) as server,
    ):
        site = Path(temporary) / "example_site"
        shutil.copytree(
            ROOT / "example_site", site, ignore=shutil.ignore_patterns("site", ".cache")
        )
        config_file = site / "mkdocs.yml"
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        for plugin in config["plugins"]:
            if isinstance(plugin, dict) and "aigen" in plugin:
                plugin["aigen"].update(
                    base_url=server.base_url, api_key_env="AIGEN_DEMO_KEY", concurrency=4
                )
                plugin["aigen"].pop("lock", None)
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        server.storm(2, retry_after=0.3)
        server.fail_next(1, status=500)
        env = {**os.environ, "AIGEN_DEMO_KEY": "sk-demo"}
        subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "-f", str(config_file)], check=True, env=env
        )
        report = site / "site" / "aigen-report.html"
        out = Path(arguments.out).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                arguments.browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1040,1000",
                f"--screenshot={out}",
                report.as_uri(),
            ],
            check=True,
        )
        data = json.loads((site / "site" / "aigen-report.json").read_text(encoding="utf-8"))
        requests = data["timeline"]["requests"]
        held = sum(r["waited"] for r in requests)
        attempts = [Attempt(**r) for r in requests]
        limits = Limits(concurrency=data["limits"]["concurrency"])
        ideal = ideal_makespan([a.end - a.start for a in attempts], limits.concurrency)
        print(
            f"{len(server.log)} requests; wall {data['wall_seconds']:.2f}s; first request at "
            f"{min(r['start'] for r in requests):.2f}s; held back by the limiter {held:.2f}s "
            f"in all; ideal {ideal:.2f}s, bound {lower_bound(attempts, limits):.2f}s; "
            f"screenshot: {out}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
