"""Fixtures: a fake OpenAI-compatible server on 127.0.0.1 and throwaway MkDocs sites."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from mkdocs.commands.build import build
from mkdocs.config import load_config

from tests.fake_server import FakeOpenAI

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
