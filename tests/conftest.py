"""Fixtures: a fake OpenAI-compatible server on 127.0.0.1 and throwaway MkDocs sites.

Also the rule for optional dependencies: a test that needs one declares it with
:func:`needs` (or calls :func:`missing_dependency`); it is skipped on a developer's
machine without the extra, but in CI (``CI=true``), where every extra is installed, such a
skip means a broken install and fails the run.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from mkdocs.commands.build import build
from mkdocs.config import load_config

from tests.fake_server import FakeOpenAI

#: Every skip for a missing optional dependency starts with this (what CI turns into a
#: failure), as do pytest's own ``importorskip`` skips with theirs.
MISSING_DEPENDENCY = "optional dependency missing: "
_IMPORTORSKIP = "could not import "

#: Child processes (``mkdocs build``, ``zensical build``, the CLI) import the package from
#: this checkout, whichever checkout ``pip install -e`` last pointed the environment at.
REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH")))
)

TEST_KEY_ENV = "AIGEN_TEST_KEY"
TEST_KEY = "sk-test-canary-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    """A fresh fake server per test, stopped afterwards."""
    with FakeOpenAI(latency=0.0, seed=7) as fake:
        yield fake


@dataclass
class Site:
    """A small MkDocs project in a temporary folder, built for real."""

    root: Path
    plugin: dict[str, Any]
    extra_config: dict[str, Any] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        return self.root / "mkdocs.yml"

    @property
    def docs(self) -> Path:
        return self.root / "docs"

    def write_config(self) -> None:
        config = {
            "site_name": "Test Site",
            "site_url": "https://example.test/",
            "docs_dir": "docs",
            "site_dir": "site",
            "plugins": [{"aigen": self.plugin}],
            **self.extra_config,
        }
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    def page(self, name: str, text: str) -> Path:
        path = self.docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def build(self, *, strict: bool = False) -> Any:
        """Build with MkDocs' own API, as ``mkdocs build`` does (startup, build, shutdown)."""
        self.write_config()
        config = load_config(config_file=str(self.config_file), strict=strict)
        config.plugins.on_startup(command="build", dirty=False)
        try:
            build(config)
        finally:
            config.plugins.on_shutdown()
        return config

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ``mkdocs`` command line in a child process."""
        self.write_config()
        environment = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "mkdocs", *args, "-f", str(self.config_file)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )

    def html(self, name: str) -> str:
        """The built HTML of a page, e.g. ``guide.md`` -> ``site/guide/index.html``."""
        stem = name.removesuffix(".md")
        target = "index.html" if stem == "index" else f"{stem}/index.html"
        return (self.root / "site" / target).read_text(encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Site:
    """A site wired to the fake server, with a key in a test-only variable."""
    monkeypatch.setenv(TEST_KEY_ENV, TEST_KEY)
    monkeypatch.delenv("AIGEN_CONCURRENCY", raising=False)
    monkeypatch.delenv("AIGEN_OFFLINE", raising=False)
    plugin = {
        "base_url": server.base_url,
        "api_key_env": TEST_KEY_ENV,
        "model": "test-model",
        "concurrency": 4,
        "words": 40,
        "max_retries": 3,
        "timeout": 10,
    }
    return Site(tmp_path, plugin)


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Captures MkDocs' warnings (the ones ``--strict`` counts)."""
    caplog.set_level(logging.INFO)
    return caplog


def warning_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Warnings logged during the test."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- optional dependencies -------------------------------------------------------------


def in_ci() -> bool:
    """Whether the tests run in CI, where every extra is installed (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def needs(missing: str | None) -> pytest.MarkDecorator:
    """Mark a test (or a module, as ``pytestmark``) that needs an optional dependency.

    ``missing``: what is missing and how to install it, or ``None`` when it is there.
    """
    return pytest.mark.optional_dependency(missing)


def missing_dependency(what: str) -> NoReturn:
    """Skip the running test for want of ``what`` (fails in CI, see the module)."""
    pytest.skip(MISSING_DEPENDENCY + what)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``optional_dependency`` marker that :func:`needs` sets."""
    config.addinivalue_line(
        "markers", "optional_dependency(missing): skip the test when `missing` is not None"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test whose :func:`needs` mark names something missing."""
    for mark in item.iter_markers("optional_dependency"):
        if mark.args and mark.args[0] is not None:
            missing_dependency(str(mark.args[0]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI, a skip for a missing optional dependency is a failure: the extras are
    installed there, so it means the install is broken, not that the test may be left out."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and in_ci() and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    if reason.startswith((MISSING_DEPENDENCY, _IMPORTORSKIP)):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: skipped in CI ({reason}); the install is incomplete"
