"""Grounded generation: sections written from the project's own files, against the fake
server and the real ``mkdocs build``."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Site
from tests.fake_server import FakeOpenAI, message_text

CONFIG_PY = '''\
"""Configuration of lumen."""

from dataclasses import dataclass


@dataclass
class Config:
    """What lumen reads from lumen.toml."""

    port: int = 8080
    # --8<-- [start:defaults]
    theme: str = "dark"
    workers: int = 4
    # --8<-- [end:defaults]

    def load(self, path: str, *, strict: bool = False) -> "Config":
        """Read ``path`` and return the merged configuration."""
        return self


def unrelated(x: int) -> int:
    return x + 1
'''

CLI_PY = '''\
"""The lumen command line."""


def main(argv: list[str] | None = None) -> int:
    """Run ``lumen serve`` or ``lumen check``."""
    return 0
'''


def _project(site: Site) -> None:
    src = site.root / "src" / "lumen"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text('"""lumen."""\n', encoding="utf-8")
    (src / "config.py").write_text(CONFIG_PY, encoding="utf-8")
    (src / "cli.py").write_text(CLI_PY, encoding="utf-8")


GUIDE = """\
---
aigen:
  brief: How lumen is configured.
  sources: [src/lumen/config.py::Config]
  outline:
    - title: The config file
      sources: ["src/lumen/config.py:defaults"]
    - title: Command line
      sources: [src/lumen/cli.py]
    - Troubleshooting
---
# Configuration
"""

PLAIN = """\
---
aigen:
  brief: Why lumen exists.
  outline: [Motivation]
---
# About
"""


def _prompt(record: object) -> str:
    body = record.body  # type: ignore[attr-defined]
    return "\n".join(message_text(m) for m in body["messages"])


def _section_prompts(server: FakeOpenAI) -> dict[str, str]:
    """The last section request's prompt per section title (from ``Section: ...``)."""
    found = {}
    for record in server.records("section"):
        prompt = _prompt(record)
        title = prompt.split("\nSection: ", 1)[1].split("\n", 1)[0]
        found[title] = prompt
    return found


@pytest.fixture
def grounded(site: Site) -> Site:
    _project(site)
    site.page("guide.md", GUIDE)
    site.page("about.md", PLAIN)
    return site


def test_the_prompt_holds_the_cited_text_labelled_with_its_source(
    grounded: Site, server: FakeOpenAI
) -> None:
    grounded.build()
    prompts = _section_prompts(server)
    assert set(prompts) == {"The config file", "Command line", "Troubleshooting", "Motivation"}
    config = prompts["The config file"]
    # The page's object source: signature and docstring, labelled with the object.
    assert "--- src/lumen/config.py::Config" in config
    assert "def load(path: str, *, strict: bool = False) -> Config" in config
    assert "What lumen reads from lumen.toml." in config
    # The item's snippet section, without its markers.
    assert "--- src/lumen/config.py:defaults" in config
    assert 'theme: str = "dark"' in config and "--8<--" not in config
    assert "Stay within what the sources" in config
    # An item's sources are its own: the other sections do not carry them.
    assert "src/lumen/config.py:defaults" not in prompts["Command line"]
    assert "def main(argv: list[str] | None = None) -> int" in prompts["Command line"]
    assert "src/lumen/config.py::Config" in prompts["Troubleshooting"]
    # A page that cites nothing is asked as before.
    assert "Sources" not in prompts["Motivation"]
    assert "Stay within" not in prompts["Motivation"]


def test_every_request_of_a_page_shares_the_page_prefix(grounded: Site, server: FakeOpenAI) -> None:
    grounded.build()
    prompts = [
        record.body["messages"]
        for record in server.records("section")
        if "Page: Configuration" in message_text(record.body["messages"][-1])
    ]
    assert len(prompts) == 3
    systems = {message_text(m[0]) for m in prompts}
    assert len(systems) == 1
    users = [message_text(m[-1]) for m in prompts]
    prefix = users[0].split("\nOutline of this page:")[0]
    assert "--- end of src/lumen/config.py::Config" in prefix
    assert all(user.startswith(prefix + "\nOutline of this page:") for user in users)


def test_editing_a_source_regenerates_exactly_the_sections_that_cite_it(
    grounded: Site, server: FakeOpenAI
) -> None:
    grounded.build()
    first = server.count("section")
    grounded.build()
    assert server.count("section") == first  # nothing changed: nothing sent
    cli = grounded.root / "src" / "lumen" / "cli.py"
    cli.write_text(CLI_PY.replace("lumen check", "lumen doctor"), encoding="utf-8")
    grounded.build()
    again = [_prompt(r) for r in server.records("section")[first:]]
    assert len(again) == 1 and "lumen doctor" in again[0]
    assert "Section: Command line" in again[0]
    assert "lumen doctor" in grounded.html("guide.md") or server.count("section") == first + 1


def test_a_symbol_survives_reformatting_of_unrelated_code(
    grounded: Site, server: FakeOpenAI
) -> None:
    grounded.page("guide.md", GUIDE.replace("sources: [src/lumen/config.py::Config]\n", ""))
    grounded.page(
        "guide.md",
        GUIDE.replace(
            "sources: [src/lumen/config.py::Config]",
            "sources: ['src/lumen/config.py::Config.load']",
        ).replace('sources: ["src/lumen/config.py:defaults"]', "hint: the file"),
    )
    grounded.build()
    first = server.count()
    path = grounded.root / "src" / "lumen" / "config.py"
    path.write_text(
        CONFIG_PY.replace(
            "def unrelated(x: int) -> int:\n    return x + 1", "def unrelated(x):\n    return x+2"
        ),
        encoding="utf-8",
    )
    grounded.build()
    assert server.count() == first  # griffe's view of Config.load is unchanged
    path.write_text(CONFIG_PY.replace("Read ``path``", "Read ``path`` strictly"), encoding="utf-8")
    grounded.build()
    assert server.count() == first + 3  # every section of the page cites Config.load


def test_cite_links_each_file_into_the_repository(grounded: Site, server: FakeOpenAI) -> None:
    grounded.plugin["cite"] = True
    grounded.extra_config.update(
        repo_url="https://github.com/acme/lumen", edit_uri="edit/main/docs/"
    )
    grounded.build()
    html = grounded.html("guide.md")
    assert "Sources:" in html
    assert 'href="https://github.com/acme/lumen/blob/main/src/lumen/cli.py"' in html
    assert "https://github.com/acme/lumen/blob/main/src/lumen/config.py#L" in html
    assert "Sources:" not in grounded.html("about.md")  # it cites nothing


def test_the_report_lists_each_sections_sources_with_their_hashes(
    grounded: Site, server: FakeOpenAI
) -> None:
    grounded.build()
    report = json.loads((grounded.root / "site" / "aigen-report.json").read_text())
    sections = {s["path"]: s for s in report["pages"]["guide.md"]["section_details"]}
    labels = [s["label"] for s in sections["Command line"]["sources"]]
    assert labels == ["src/lumen/config.py::Config", "src/lumen/cli.py"]
    assert all(len(s["sha256"]) == 64 for s in sections["Command line"]["sources"])
