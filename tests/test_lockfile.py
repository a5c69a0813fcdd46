"""The lock file keeps every text byte for byte, and ordinary prose stays reviewable."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import mkdocs_aigen
from mkdocs_aigen.lockfile import LOCK_VERSION, LockEntry, LockFile
from mkdocs_aigen.requests import inputs_key
from tests.conftest import Site
from tests.fake_server import FakeOpenAI
from tests.test_cli import aigen

#: Pieces that have broken YAML round trips somewhere: Markdown hard breaks, tabs, form
#: feeds, every line separator YAML knows, a byte-order mark, and lock or YAML syntax.
AWKWARD = (
    "  \n",
    " ",
    "\t",
    "\n",
    "\n\n",
    "\f",
    "\v",
    "\r",
    "\r\n",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\x00",
    "\x7f",
    "\U0001f600",
    "\U0010fffd",
    "---",
    "...",
    "- ",
    "? ",
    ": ",
    "#",
    "|",
    "|+",
    ">-",
    "&a *a",
    "!!python/object",
    "'",
    '"',
    "\\",
    "{[",
    "%YAML 1.1",
    "null",
    "yes",
    "0x1F",
    "1e3",
    "~",
    "```\n",
    "    code",
)

#: Any Unicode text without lone surrogates (UTF-8 cannot hold those), built from the
#: awkward pieces and arbitrary characters, so that both are tried together.
TEXTS = st.lists(
    st.one_of(
        st.sampled_from(AWKWARD),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    ),
    max_size=12,
).map("".join)


#: The same examples on every run, and no example database left in the working tree.
DETERMINISTIC: dict[str, Any] = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
}


def _round_trip(lock: LockFile, tmp_path: Path) -> LockFile:
    path = tmp_path / "aigen.lock"
    lock.write(path)
    return LockFile.load(path)


def _lock(page: str, path: str, model: str, text: str, titles: list[str]) -> LockFile:
    lock = LockFile()
    lock.add(LockEntry(page, "section", path, "h1", text, model, inputs="i1"))
    lock.add(LockEntry(page, "section", text, "h2", path, model))  # from an older lock
    lock.add(LockEntry(page, "polish", "", "h3", text, model, inputs="i3"))
    titles_json = json.dumps({"titles": titles}, ensure_ascii=False)
    lock.add(LockEntry(page, "outline", path, "h4", titles_json, model, inputs="i4"))
    return lock


@settings(max_examples=300, **DETERMINISTIC)
@given(text=TEXTS)
@example(text="Line with a hard break  \nnext line")
@example(text="\tindented with a tab\n\tand again")
@example(text="\n\nleading blank lines")
@example(text="  leading spaces\nthen none")
@example(text="no final newline")
@example(text="trailing blank lines\n\n\n")
@example(text="whitespace lines at the end\n  \n\t")
@example(text="crlf\r\nlone cr\rform feed\f")
@example(text="\u2028\u2029\x85")
@example(text="pages:\n  a.md:\n    sections:\n    - path: X\n      hash: y\n")
@example(text="")
def test_any_text_survives_the_lock_byte_for_byte(text: str) -> None:
    lock = LockFile()
    lock.add(LockEntry("a.md", "section", "A", "h1", text, "m"))
    lock.add(LockEntry("a.md", "polish", "", "h2", text, "m"))
    loaded = _reload(lock)
    assert loaded.entries == lock.entries


@settings(max_examples=150, **DETERMINISTIC)
@given(
    page=TEXTS.filter(bool),
    path=TEXTS,
    model=TEXTS,
    text=TEXTS,
    titles=st.lists(TEXTS, max_size=3),
)
def test_every_field_survives_the_lock(
    page: str, path: str, model: str, text: str, titles: list[str]
) -> None:
    lock = _lock(page, path, model, text, titles)
    loaded = _reload(lock)
    assert loaded.entries == lock.entries


def _reload(lock: LockFile) -> LockFile:
    """Write ``lock`` to a file and read it back (Hypothesis runs a test's body many
    times, so a fresh folder each time rather than ``tmp_path``)."""
    with tempfile.TemporaryDirectory(prefix="aigen-lock-") as folder:
        path = Path(folder) / "aigen.lock"
        lock.write(path)
        return LockFile.load(path)


PROSE = """\
Foo reads `foo.toml` at start-up.

- one item
- another: with a colon

```toml
[server]
port = 8080
```
"""


@pytest.mark.parametrize("text", [PROSE, PROSE.rstrip("\n"), "\tgo code\n\tindented\n"])
def test_ordinary_text_is_a_literal_block(text: str, tmp_path: Path) -> None:
    lock = LockFile()
    lock.add(LockEntry("a.md", "section", "A", "h1", text, "m"))
    dumped = lock.dump()
    # Each line of the text appears as it is, indented: a diff shows changed lines.
    for line in text.splitlines():
        assert any(row.endswith(line) and row.startswith(" ") for row in dumped.splitlines())
    assert "text: |" in dumped
    assert _round_trip(lock, tmp_path).entries == lock.entries


def test_a_hard_break_is_quoted_rather_than_lost(tmp_path: Path) -> None:
    lock = LockFile()
    lock.add(LockEntry("a.md", "section", "A", "h1", "Two spaces  \nthen a line.\n", "m"))
    dumped = lock.dump()
    assert yaml.safe_load(dumped)["pages"]["a.md"]["sections"][0]["text"].startswith(
        "Two spaces  \n"
    )
    assert '"Two spaces  \\nthen a line.\\n"' in dumped
    assert _round_trip(lock, tmp_path).entries == lock.entries


# -- a lock written by version 0.1.0 (lock format 1) ---------------------------------------

#: ``tests/data/lock_v1``: GUIDE's page and the lock that mkdocs-aigen 0.1.0 (commit
#: 2aecf5f) wrote for it with the ``site`` fixture's options, one section reviewed by hand.
LOCK_V1 = Path(__file__).parent / "data" / "lock_v1"
REVIEWED = "Reviewed by a person: tokens live in the vault, never in foo.toml."


def test_a_lock_written_by_the_previous_version_keeps_every_reviewed_text(
    site: Site, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.docs.mkdir(parents=True)
    shutil.copy(LOCK_V1 / "guide.md", site.docs / "guide.md")
    shutil.copy(LOCK_V1 / "aigen.lock", site.root / "aigen.lock")
    site.plugin["lock"] = "aigen.lock"
    monkeypatch.setenv("AIGEN_OFFLINE", "1")
    site.build()
    html = site.html("guide.md")
    assert REVIEWED in html
    assert "Not generated" not in html
    check = aigen(site, "lock", "--check")
    assert check.returncode == 0, check.stdout
    assert "written in format 1" in check.stdout

    monkeypatch.delenv("AIGEN_OFFLINE")
    rewritten = aigen(site, "lock")
    assert rewritten.returncode == 0, rewritten.stdout + rewritten.stderr
    assert server.count() == 0  # every text came from the old lock
    lock = yaml.safe_load((site.root / "aigen.lock").read_text(encoding="utf-8"))
    assert lock["version"] == LOCK_VERSION
    old = yaml.safe_load((LOCK_V1 / "aigen.lock").read_text(encoding="utf-8"))
    texts = {e["path"]: e["text"] for e in lock["pages"]["guide.md"]["sections"]}
    old_texts = {e["path"]: e["text"] for e in old["pages"]["guide.md"]["sections"]}
    assert texts == old_texts  # re-keyed, not one byte of text changed
    site.build()
    assert site.html("guide.md") == html
    assert server.count() == 0


def test_reviewed_text_survives_a_template_change_until_its_stub_changes(
    site: Site, server: FakeOpenAI, tmp_path: Path
) -> None:
    """An upgrade that rewords a packaged template changes every request hash; the lock
    still finds each reviewed text by what its request is made from, and only a stub
    edit replaces one."""
    site.docs.mkdir(parents=True)
    shutil.copy(LOCK_V1 / "guide.md", site.docs / "guide.md")
    site.plugin["lock"] = "aigen.lock"
    assert aigen(site, "lock").returncode == 0
    first = server.count()
    lock_file = site.root / "aigen.lock"
    data = yaml.safe_load(lock_file.read_text(encoding="utf-8"))
    sections = data["pages"]["guide.md"]["sections"]
    reviewed = next(s for s in sections if s["path"].endswith("Secrets"))
    reviewed["text"] = REVIEWED
    lock_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    # The same section template, reworded: what a packaged template change in an upgrade
    # does to the request hashes (the fingerprint covers every template file).
    templates = tmp_path / "templates"
    templates.mkdir()
    packaged = Path(mkdocs_aigen.__file__).parent / "templates" / "section.j2"
    (templates / "section.j2").write_text(
        packaged.read_text(encoding="utf-8").replace(
            "{% block user %}", "{% block user %}Note.", 1
        ),
        encoding="utf-8",
    )
    site.plugin["templates_dir"] = str(templates)
    site.build()
    assert server.count() == first  # nothing re-sent: every text came from the lock
    assert REVIEWED in site.html("guide.md")
    check = aigen(site, "lock", "--check")
    assert check.returncode == 0, check.stdout
    assert "written with other templates" in check.stdout

    rewritten = aigen(site, "lock")
    assert rewritten.returncode == 0, rewritten.stdout + rewritten.stderr
    assert server.count() == first
    after = yaml.safe_load(lock_file.read_text(encoding="utf-8"))["pages"]["guide.md"]["sections"]
    assert {s["path"]: s["text"] for s in after} == {s["path"]: s["text"] for s in sections}
    assert {s["hash"] for s in after}.isdisjoint({s["hash"] for s in sections})  # re-keyed
    assert "written with other templates" not in aigen(site, "lock", "--check").stdout

    # A stub edit is what replaces a reviewed text: only that section is asked again.
    page = site.docs / "guide.md"
    page.write_text(
        page.read_text(encoding="utf-8").replace("Never put tokens", "Never store tokens"),
        encoding="utf-8",
    )
    site.build()
    assert server.count() == first + 1
    assert REVIEWED not in site.html("guide.md")


def test_an_empty_new_variable_keeps_every_inputs_key() -> None:
    """A version that adds an optional template variable (a language, sources) must not
    orphan the lock entries of requests that leave it empty."""
    variables = {"brief": "Configure Foo.", "has_children": False, "level": 0}
    before = inputs_key("section", "m", variables, [100, 0.7])
    for empty in (None, "", [], {}):
        assert inputs_key("section", "m", {**variables, "language": empty}, [100, 0.7]) == before
    assert inputs_key("section", "m", {**variables, "language": "fr"}, [100, 0.7]) != before
    assert inputs_key("section", "m", {**variables, "has_children": True}, [100, 0.7]) != before
    assert inputs_key("section", "m", {**variables, "level": 1}, [100, 0.7]) != before
    assert inputs_key("section", "m2", variables, [100, 0.7]) != before
    assert inputs_key("section", "m", variables, [100, 0.2]) != before
