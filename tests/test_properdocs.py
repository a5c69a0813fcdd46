"""ProperDocs, the maintained MkDocs 1.x fork: its own CLI builds and serves our stubs.

ProperDocs loads plugins from ``properdocs.plugins`` (and ``mkdocs.plugins``) and
redirects ``mkdocs.*`` imports to its own modules, so the same plugin class runs on its
classes. These tests run the real ``properdocs`` command in child processes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points

import yaml

from tests.conftest import Site, needs
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE
from tests.test_incremental import GUIDE_SECTIONS, _free_port, serve_regenerates_one_section

pytestmark = needs(
    None
    if importlib.util.find_spec("properdocs")
    and importlib.util.find_spec("properdocs_theme_mkdocs")
    else "ProperDocs (pip install properdocs properdocs-theme-mkdocs)"
)


#: Every section of ``GUIDE``, as the fake server writes it ("Text for <path>.").
GUIDE_PATHS = (
    "Overview",
    "The config file",
    "The config file > Environment variables",
    "The config file > Secrets",
    "Troubleshooting",
    "Troubleshooting > Logs",
    "Troubleshooting > Common errors",
)


def _properdocs_site(site: Site) -> None:
    """The site's config as ``properdocs.yml`` (its own file name), with its theme."""
    site.extra_config["theme"] = {"name": "mkdocs"}
    site.write_config()
    site.config_file.rename(site.root / "properdocs.yml")


def _properdocs(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("properdocs")
    command = [executable] if executable else [sys.executable, "-m", "properdocs"]
    return subprocess.run(
        [*command, *args],
        cwd=site.root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "AIGEN_OFFLINE": ""},
    )


def test_the_plugin_is_registered_for_properdocs() -> None:
    found = [e.value for e in entry_points(group="properdocs.plugins") if e.name == "aigen"]
    assert found == ["mkdocs_aigen.plugin:AigenPlugin"]


def test_properdocs_build_generates_every_section_once(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", GUIDE)
    _properdocs_site(site)
    first = _properdocs(site, "build", "--strict")
    assert first.returncode == 0, first.stderr
    html = (site.root / "site" / "guide" / "index.html").read_text(encoding="utf-8")
    for path in GUIDE_PATHS:
        assert f"Text for {path.replace('>', '&gt;')}." in html, path
    assert "Not generated" not in html
    assert server.count() == GUIDE_SECTIONS
    again = _properdocs(site, "build", "--strict")
    assert again.returncode == 0, again.stderr
    assert server.count() == GUIDE_SECTIONS  # a rebuild sends nothing
    assert "aigen:" in again.stderr


def test_properdocs_serve_regenerates_one_edited_section(site: Site, server: FakeOpenAI) -> None:
    guide = site.page("guide.md", GUIDE)
    _properdocs_site(site)
    config = yaml.safe_load((site.root / "properdocs.yml").read_text(encoding="utf-8"))
    assert config["plugins"][0]["aigen"]["base_url"] == server.base_url
    port = _free_port()
    executable = shutil.which("properdocs")
    command = [executable] if executable else [sys.executable, "-m", "properdocs"]
    log_path = site.root / "serve.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [*command, "serve", "-a", f"127.0.0.1:{port}"],
            cwd=site.root,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "AIGEN_OFFLINE": ""},
        )
        try:
            serve_regenerates_one_section(
                log_path, guide, f"http://127.0.0.1:{port}/guide/", server
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    output = log_path.read_text(encoding="utf-8")
    assert "Traceback" not in output
