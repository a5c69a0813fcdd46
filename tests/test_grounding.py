"""Grounded generation: sections written from the project's own files, against the fake
server and the real ``mkdocs build``."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mkdocs.exceptions import Abort

import mkdocs_aigen
from tests.conftest import Site, warning_messages
from tests.fake_server import FakeOpenAI, message_text
from tests.test_cli import aigen

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
    # Touched, not changed (a checkout does this): still nothing sent, and the stored page
    # takes the new stamp, so the next build needs one stat per file again.
    touched = cli.stat().st_mtime_ns + 5_000_000_000
    os.utime(cli, ns=(touched, touched))
    grounded.build()
    assert server.count("section") == first
    store = grounded.root / ".cache" / "plugin" / "aigen" / "pages"
    stamps = [
        entry[3]
        for page in store.glob("*.page")  # one line of JSON, then the block
        for entry in json.loads(page.read_bytes().partition(b"\n")[0]).get("files", [])
        if entry[0] == "src/lumen/cli.py"
    ]
    assert stamps == [touched]
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
    assert report["pages"]["guide.md"]["sources"] == [
        "src/lumen/config.py::Config",
        "src/lumen/config.py:defaults",
        "src/lumen/cli.py",
    ]
    assert report["pages"]["about.md"]["sources"] == []
    # The report page shows them per page and per section, with the start of each hash.
    page = (grounded.root / "site" / "aigen-report.html").read_text(encoding="utf-8")
    digest = sections["Command line"]["sources"][1]["sha256"]
    assert f"src/lumen/cli.py <code>{digest[:8]}</code>" in page
    assert "<th>sources</th>" in page


# -- bad input, before anything is spent ------------------------------------------------------


def _bad_files(root: Path) -> None:
    (root / "src" / "logo.bin").write_bytes(b"\x89PNG\0\0data")
    (root / "src" / "huge.txt").write_text("x" * 1_100_000, encoding="utf-8")
    (root / "src" / "outside.py").symlink_to("/etc/hostname")


BAD_SOURCES = [
    ("src/nope.py", "an existing file; 'src/nope.py' does not exist"),
    ("src/**/*.rs", "a glob that matches files; 'src/**/*.rs' matches none"),
    ("src/lumen/cli.py:2-99", "a line range within src/lumen/cli.py's 6 lines, found 2-99"),
    ("src/lumen/cli.py:5-2", "a line range START-END with 1 <= START <= END, found 5-2"),
    (
        "src/lumen/config.py:nosuch",
        "[end:nosuch]' in src/lumen/config.py (sections there: defaults)",
    ),
    ("src/lumen/config.py::Nope", "'Nope' is not (it has: Config, unrelated)"),
    ("src/lumen/config.py::Config.save", "'Config.save' is not"),
    (
        "lumen.nope:Thing",
        "a module found under the project folder or its src/ folder: 'lumen.nope'",
    ),
    ("src/logo.bin", "a text file; src/logo.bin is binary"),
    ("src/huge.txt", "a source file of at most 1000 kB; src/huge.txt has 1100 kB"),
    ("../../etc/passwd", "a path inside the project folder ('../../etc/passwd' leads outside it"),
    ("/etc/passwd", "a path relative to the project folder, found the absolute path '/etc/passwd'"),
    ("src/outside.py", "a path inside the project folder ('src/outside.py' leads outside it"),
    ("src", "a file; 'src' is a directory (a glob reads a folder)"),
    ("{source: src/lumen/cli.py, cod: true}", "unknown keys: cod"),
]


@pytest.mark.parametrize(("entry", "expected"), BAD_SOURCES, ids=[e for e, _ in BAD_SOURCES])
def test_a_bad_source_stops_the_build_naming_file_and_field(
    grounded: Site,
    server: FakeOpenAI,
    warnings: pytest.LogCaptureFixture,
    entry: str,
    expected: str,
) -> None:
    _bad_files(grounded.root)
    grounded.page(
        "guide.md",
        GUIDE.replace("sources: [src/lumen/cli.py]", f"sources: [{entry}]"),
    )
    with pytest.raises(Abort):
        grounded.build()
    [message] = [m for m in warning_messages(warnings) if m.startswith("aigen:")]
    assert message.startswith("aigen: guide.md: 'aigen.outline[1].sources[0]': "), message
    assert expected in message
    assert "Traceback" not in message
    assert server.count() == 0  # nothing spent


def test_a_bad_site_wide_source_names_the_option(
    grounded: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    grounded.plugin["sources"] = ["src/lumen/missing.py"]
    with pytest.raises(Abort):
        grounded.build()
    assert [m for m in warning_messages(warnings) if m.startswith("aigen:")] == [
        "aigen: mkdocs.yml: 'sources[0]' (src/lumen/missing.py): an existing file; "
        "'src/lumen/missing.py' does not exist"
    ]
    assert server.count() == 0


def test_sources_root_widens_where_sources_may_be_read(site: Site, server: FakeOpenAI) -> None:
    _project(site)  # the repository: src/ next to the docs project's folder
    docs_site = Site(site.root / "website", dict(site.plugin))
    docs_site.page(
        "guide.md",
        GUIDE.replace("src/lumen/", "../src/lumen/").replace(
            "../src/lumen/cli.py]", "../src/lumen/cli.py:1-3]"
        ),
    )
    with pytest.raises(Abort):
        docs_site.build()
    docs_site.plugin["sources_root"] = ".."
    docs_site.build()
    prompts = _section_prompts(server)
    assert '--- ../src/lumen/cli.py:1-3\n"""The lumen command line."""' in prompts["Command line"]


# -- drift in CI ------------------------------------------------------------------------------


def test_lock_check_names_each_section_whose_source_changed(
    grounded: Site, server: FakeOpenAI
) -> None:
    grounded.plugin["lock"] = "aigen.lock"
    assert aigen(grounded, "lock").returncode == 0
    lock = (grounded.root / "aigen.lock").read_text(encoding="utf-8")
    assert "sources:\n" in lock and "src/lumen/cli.py: " in lock  # provenance, with hashes
    assert aigen(grounded, "lock", "--check").returncode == 0
    cli = grounded.root / "src" / "lumen" / "cli.py"
    cli.write_text(CLI_PY.replace("lumen check", "lumen doctor"), encoding="utf-8")
    grounded.page("about.md", PLAIN.replace("Why lumen exists.", "Why lumen exists at all."))
    check = aigen(grounded, "lock", "--check")
    assert check.returncode == 1
    problems = [line for line in check.stdout.splitlines() if line.endswith(("changed", ")"))]
    assert problems == [
        "about.md: 'Motivation': stale (its stub changed)",
        "guide.md: 'Command line': source src/lumen/cli.py changed",
    ]
    # `plan` gives the same reasons, from what the last run recorded.
    plan = json.loads(aigen(grounded, "plan", "--json").stdout)
    reasons = {
        (page["page"], section["path"]): section.get("reasons")
        for page in plan["pages"]
        for section in page["sections"]
    }
    assert reasons[("guide.md", "Command line")] == ["source src/lumen/cli.py changed"]
    assert reasons[("about.md", "Motivation")] == ["stub edited"]
    assert reasons[("guide.md", "The config file")] is None  # locked, and still in use


def test_plan_names_model_and_neighbour_changes(grounded: Site, server: FakeOpenAI) -> None:
    grounded.build()
    grounded.page("guide.md", GUIDE.replace("- Troubleshooting", "- Troubleshooting\n    - FAQ"))
    grounded.plugin["model"] = "test-model-2"
    plan = json.loads(aigen(grounded, "plan", "--json").stdout)
    reasons = {
        (page["page"], section["path"]): section.get("reasons")
        for page in plan["pages"]
        for section in page["sections"]
    }
    assert reasons[("guide.md", "FAQ")] == ["new"]
    assert reasons[("guide.md", "Troubleshooting")] == ["model changed", "neighbours changed"]
    assert reasons[("about.md", "Motivation")] == ["model changed"]
    # Back to the model of the last build, with a reworded section template.
    templates = grounded.root / "templates"
    templates.mkdir()
    packaged = Path(mkdocs_aigen.__file__).parent / "templates" / "section.j2"
    (templates / "section.j2").write_text(
        packaged.read_text(encoding="utf-8") + "Be brief.\n", encoding="utf-8"
    )
    grounded.plugin.update(model="test-model", templates_dir=str(templates))
    plan = json.loads(aigen(grounded, "plan", "--json").stdout)
    motivation = plan["pages"][0]["sections"][0]
    assert (plan["pages"][0]["page"], motivation["path"]) == ("about.md", "Motivation")
    assert motivation["reasons"] == ["template changed"]


# -- budget, globs, objects by module name ----------------------------------------------------


def test_the_largest_sources_are_trimmed_to_the_budget_with_one_warning_each(
    grounded: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    big = grounded.root / "src" / "lumen" / "big.py"
    big.write_text("".join(f"VALUE_{i} = {i}\n" for i in range(400)), encoding="utf-8")
    grounded.plugin["sources_max_tokens"] = 300
    grounded.page("guide.md", GUIDE.replace("[src/lumen/config.py::Config]", "[src/lumen/*.py]"))
    grounded.build()
    trims = [m for m in warning_messages(warnings) if "trimmed" in m]
    assert len(trims) == 1, trims  # one warning, for the one file that did not fit
    whole = len(big.read_text(encoding="utf-8")) // 4
    assert re.fullmatch(
        rf"aigen: guide\.md: source src/lumen/big\.py trimmed to about \d+ of {whole} tokens "
        r"to fit sources_max_tokens \(300 here\); cite a part of it instead",
        trims[0],
    ), trims
    prompt = _section_prompts(server)["Troubleshooting"]
    assert "VALUE_10 = 10" in prompt and "VALUE_399" not in prompt
    assert "[... trimmed to fit sources_max_tokens]" in prompt
    # The small files of the glob stay whole.
    assert 'def main(argv: list[str] | None = None) -> int:\n    """Run' in prompt
    assert "--- src/lumen/__init__.py" in prompt


def test_an_object_by_module_name_is_read_without_importing_it(
    grounded: Site, server: FakeOpenAI
) -> None:
    # Importing this module would fail: griffe reads it statically.
    (grounded.root / "src" / "lumen" / "config.py").write_text(
        "import no_such_package\n" + CONFIG_PY, encoding="utf-8"
    )
    grounded.page(
        "guide.md",
        GUIDE.replace("[src/lumen/config.py::Config]", "['lumen.config:Config.load']"),
    )
    grounded.build()
    prompt = _section_prompts(server)["Troubleshooting"]
    assert "--- lumen.config:Config.load\ndef load(path: str, *, strict: bool = False)" in prompt


# -- mkdocs serve -------------------------------------------------------------------------------


def test_serve_watches_cited_sources_and_regenerates_only_their_sections(
    grounded: Site, server: FakeOpenAI
) -> None:
    """The real ``mkdocs serve``: saving a cited file rebuilds, and only the section that
    cites it is asked for again."""
    grounded.write_config()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "serve", "-f", str(grounded.config_file), "-a", address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    serving, rebuilt = threading.Event(), threading.Event()
    lines: list[str] = []

    def follow() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            # Ready once serving: the watchers start after the first build.
            if "Serving on" in line:
                serving.set()
            elif serving.is_set() and "Documentation built" in line:
                rebuilt.set()

    threading.Thread(target=follow, daemon=True).start()
    try:
        assert serving.wait(timeout=60), "".join(lines)
        first = server.count("section")
        assert first == 4
        cli = grounded.root / "src" / "lumen" / "cli.py"
        cli.write_text(CLI_PY.replace("lumen check", "lumen doctor"), encoding="utf-8")
        assert rebuilt.wait(timeout=60), "".join(lines)  # the save alone rebuilt the site
        again = [_prompt(r) for r in server.records("section")[first:]]
        assert len(again) == 1 and "Section: Command line" in again[0], again
        assert "lumen doctor" in again[0]
    finally:
        process.terminate()
        process.wait(timeout=30)
