"""``mkdocs build`` on the embedded model: no key, no server (the README's first command)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mkdocs_aigen.backends.local import local_backend_available
from tests.conftest import Site, needs

pytestmark = needs(
    None
    if local_backend_available()
    else 'the embedded model is not installed (pip install "mkdocs-aigen[local]")'
)

PAGE = """
---
aigen:
  brief: Introduce a command-line tool that renames photos by the date they were taken.
  words: 25
  outline:
    - What it does
    - title: Installing
      hint: It is installed with pip.
---
# Photo renamer

Hand-written introduction.

<!-- aigen -->
"""


def test_build_with_the_embedded_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AIGEN_OFFLINE", "AIGEN_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.INFO)
    site = Site(tmp_path, {"seed": 3, "timeout": 120})  # provider auto: no key, no base_url
    site.page("photos.md", PAGE)
    site.build(strict=True)
    html = site.html("photos.md")
    assert "Hand-written introduction." in html
    for title in ("What it does", "Installing"):
        assert f">{title}</h2>" in html
    assert "Not generated" not in html
    text = html.split(">What it does</h2>")[1].split(">Installing</h2>")[0]
    assert len(text.split()) >= 5
    messages = [record.getMessage() for record in caplog.records]
    assert any("embedded local model" in m and "demo quality" in m for m in messages)
    report = json.loads((tmp_path / "site" / "aigen-report.json").read_text())
    assert report["stages"]["section"]["requests"] >= 2
    # A rebuild is answered from the cache: the model is not even loaded again.
    site.build(strict=True)
    report = json.loads((tmp_path / "site" / "aigen-report.json").read_text())
    assert report["stages"]["section"]["requests"] == 0
    assert report["stages"]["section"]["cache_hits"] == 2


EXAMPLE_SITE = Path(__file__).resolve().parent.parent / "example_site"


def _example_copy(tmp_path: Path, keep: str) -> Path:
    """A copy of the example site where only the page ``keep`` has its stub, without
    review votes or lock; the nav, and so the page's neighbours, stay the same."""
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE_SITE, root, ignore=shutil.ignore_patterns("site", ".cache", "*.lock"))
    for page in (root / "docs").rglob("*.md"):
        if page.name != keep:
            page.write_text("# Hand-written\n", encoding="utf-8")
    config = yaml.safe_load((root / "mkdocs.yml").read_text(encoding="utf-8"))
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "aigen" in plugin:
            plugin["aigen"].pop("review", None)
            plugin["aigen"].pop("lock", None)
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


def _build_on_the_local_model(root: Path) -> str:
    """``mkdocs build`` of ``root`` with no key in the environment; its output."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AIGEN_OFFLINE", "AIGEN_CONCURRENCY")
    }
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(root / "mkdocs.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "embedded local model" in output
    return output


def test_example_page_builds_without_a_warning(tmp_path: Path) -> None:
    """The README's first command prints no warning: the example's pages on the local model.

    A trimmed copy (only the retries page with a stub, no review votes) keeps this quick;
    the full example site is the manual check.
    """
    output = _build_on_the_local_model(_example_copy(tmp_path, "retries.md"))
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    assert warnings == [], output


def test_example_grounded_page_writes_from_its_source_file(tmp_path: Path) -> None:
    """The example's configuration page cites ``src/lumen/config.py``: even the embedded
    135M model then uses names that only that file has (not the site's context)."""
    root = _example_copy(tmp_path, "configuration.md")
    page = root / "docs" / "guides" / "configuration.md"
    text = page.read_text(encoding="utf-8")
    head, _, rest = text.partition("  outline:\n")
    # Two sections of the outline keep the test quick.
    page.write_text(
        head + "  outline:\n    - Overview\n    - The config file\n---" + rest.split("---", 1)[1]
    )
    _build_on_the_local_model(root)
    html = (root / "site" / "guides" / "configuration" / "index.html").read_text(encoding="utf-8")
    generated = html.split("most deployments only set the database URL.", 1)[1]
    source_only = ("database_url", "backoff_seconds", "log_level", "ENV_PREFIX", "concurrency")
    context = (root / "context.md").read_text(encoding="utf-8")
    assert not any(name in context for name in source_only)
    assert any(name in generated for name in source_only), generated
    assert "Sources: <code>src/lumen/config.py</code>" in generated  # cite: true
