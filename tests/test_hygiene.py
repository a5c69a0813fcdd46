"""The suite's own rules: in CI, a test skipped for a missing optional dependency fails.

Shown on a tiny test file run by a real ``pytest`` in a child process, with this suite's
``conftest`` loaded as a plugin, once as CI runs it and once as a developer does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

TINY = """
import pytest

from tests.conftest import missing_dependency, needs


@needs("frobnicator (pip install frob)")
def test_marked() -> None:
    pass


def test_called() -> None:
    missing_dependency("frobnicator")


def test_importorskip() -> None:
    pytest.importorskip("surely_no_such_module_here")


@needs(None)
def test_present() -> None:
    pass


def test_other_skip() -> None:
    pytest.skip("not on this platform")
"""


def _pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (folder / "test_tiny.py").write_text(TINY, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
    if ci is not None:
        env["CI"] = ci
    command = ["-p", "tests.conftest", "-p", "no:cacheprovider", "-q", "-rA", "test_tiny.py"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *command],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=120,
        check=False,
    )


def test_in_ci_a_missing_dependency_fails_the_run(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "true")
    assert result.returncode == 1, result.stdout + result.stderr
    summary = result.stdout.splitlines()[-1]
    # A marked test fails in setup (an error), before its fixtures would load anything.
    assert summary.startswith("2 failed, 1 passed, 1 skipped, 1 error"), result.stdout
    assert "ERROR test_tiny.py::test_marked - " in result.stdout
    for name in ("test_called", "test_importorskip"):
        assert f"FAILED test_tiny.py::{name} - " in result.stdout
    assert "skipped in CI (optional dependency missing: frobnicator (pip install frob))" in (
        result.stdout
    )
    # A skip for any other reason stays a skip.
    assert "SKIPPED [1] test_tiny.py:" in result.stdout
    assert "not on this platform" in result.stdout


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_outside_ci_a_missing_dependency_skips(tmp_path: Path, ci: str | None) -> None:
    result = _pytest(tmp_path, ci)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("1 passed, 4 skipped"), result.stdout
    assert "optional dependency missing: frobnicator (pip install frob)" in result.stdout
