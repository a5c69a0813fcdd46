"""Progress display: plain log lines off a terminal; a bar redrawn in place on one.

Both run the real ``mkdocs build`` command line against the fake server; the terminal
case gives the child a pseudo-terminal (``pty``) as its stderr and reads what it wrote.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time

from mkdocs_aigen.progress import progress_text
from mkdocs_aigen.stats import BuildStats
from tests.conftest import TEST_KEY_ENV, Site
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE

_PROGRESS_LINE = re.compile(r"aigen: (\d+)/(\d+) sections \((\d+) cached, (\d+) failed\)$")


def _site(site: Site, server: FakeOpenAI) -> None:
    server.configure(latency=0.1)
    site.plugin["concurrency"] = 2
    site.plugin["progress_interval"] = 0
    for number in range(2):
        site.page(f"page{number}.md", GUIDE)


def test_off_a_terminal_progress_is_log_lines_only(site: Site, server: FakeOpenAI) -> None:
    _site(site, server)
    result = site.cli("build")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr
    counts = [
        (int(m[1]), int(m[2]))
        for line in result.stderr.splitlines()
        if (m := _PROGRESS_LINE.search(line))
    ]
    assert len(counts) >= 2
    assert all(total == 14 for _, total in counts)
    done = [d for d, _ in counts]
    assert done == sorted(done) and done[-1] == 14
    assert len(server.log) == 14


def test_on_a_terminal_a_bar_redraws_in_place_and_log_lines_stay_whole(
    site: Site, server: FakeOpenAI
) -> None:
    _site(site, server)
    site.write_config()
    controller, terminal = pty.openpty()
    env = {**os.environ, TEST_KEY_ENV: "sk-test", "TERM": "xterm"}
    child = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(site.config_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert child.wait(timeout=60) == 0
    text = output.decode("utf-8", "replace")
    # The bar: drawn after a wipe, never followed by a newline of its own.
    bars = re.findall(r"\r\x1b\[Kaigen: \[[#-]{24}\] (\d+)/14 sections, (\d+) cached", text)
    assert bars, text
    assert int(bars[-1][0]) >= 1
    # Every log line starts clean: whatever bar stood before it was wiped first.
    for line in text.replace("\r\n", "\n").split("\n"):
        cleaned = line.rsplit("\r\x1b[K", 1)[-1]
        if "INFO" in cleaned or "WARNING" in cleaned:
            assert cleaned.lstrip().startswith(("INFO", "WARNING")), repr(line)
    # The summary line comes after the last bar has been wiped.
    before = text[: text.index("aigen: 14 sections,")].rsplit("\n", 1)[-1]
    assert "aigen: [" in before  # the bar stood on this line...
    assert before.rsplit("\r\x1b[K", 1)[-1].startswith("INFO")  # ...and was wiped first
    # Off the terminal's periodic lines: the bar replaces them.
    assert not _PROGRESS_LINE.search(text.replace("\r\x1b[K", "\n"))


def test_progress_text_counts_and_eta() -> None:
    stats = BuildStats(started=100.0)
    stats.sections_total = 10
    stats.sections_done = 4
    stats.sections_from_store = 2
    stats.add("section", requests=3)
    text = progress_text(stats, now=104.0)
    # 2 generated in 4 s, 6 to go: 12 s.
    assert text == (
        "[##########--------------] 4/10 sections, 2 cached, 0 failed, 3 in flight, ETA 12s"
    )
