"""The ``mkdocs-aigen`` command line: plan, cache, lock, and the lock file it writes.

Every command runs in a child process, as a user or CI runs it; builds are real MkDocs
builds against the fake server on 127.0.0.1, and "sends no request" is what the server
saw.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TEST_KEY_ENV, Site, warning_messages
from tests.fake_server import FakeOpenAI, RequestRecord, default_responder
from tests.pages import GUIDE, SECRETS_HINT

# Polished, with an outline the model proposes: 1 expand + 5 sections + 1 polish.
TOUR = """
---
title: A tour
aigen:
  brief: A short tour of Foo.
  words: 30
  polish: true
  outline:
    - Why Foo
    - title: Features
      sections: {auto: 2}
    - title: Next steps
      hint: Point to the configuration guide.
---
# A tour

<!-- aigen -->
"""
TOUR_HINT = "Point to the configuration guide."

# Added to an existing page later (see test_plan_matches_the_next_build).
EXTRAS = """
---
aigen:
  brief: Extra recipes.
  words: 30
  polish: true
  outline:
    - Intro
    - title: Recipes
      sections: {auto: 3}
---
# Extras
"""

PAGES = ("guide.md", "tour.md")


def polishing_responder(body: dict[str, Any], record: RequestRecord) -> str:
    """The default answers, a section's hint echoed (so a new hint gives new text, as a
    real model's would), and a polish that keeps every heading and marks each section."""
    prompt = body["messages"][-1]["content"]
    if record.stage == "polish":
        page_text = prompt.split("nothing else.\n\n", 1)[1]
        return page_text.replace("Text for ", "Polished text for ")
    text = default_responder(body, record)
    hint = re.search(r"^Hint: (.+)$", prompt, re.MULTILINE)
    return f"{text} {hint.group(1)}" if hint and record.stage == "section" else text


@pytest.fixture
def lsite(site: Site, server: FakeOpenAI) -> Site:
    """The guide and the polished tour, with a lock file configured."""
    server.responder = polishing_responder
    site.plugin["lock"] = "aigen.lock"
    site.page("guide.md", GUIDE)
    site.page("tour.md", TOUR)
    return site


def aigen(
    site: Site, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m mkdocs_aigen.cli -f mkdocs.yml ARGS`` in a child process."""
    site.write_config()
    return subprocess.run(
        [sys.executable, "-m", "mkdocs_aigen.cli", "-f", str(site.config_file), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def _by_stage(records: list[RequestRecord]) -> dict[str, int]:
    return dict(sorted(Counter(str(r.stage) for r in records).items()))


# -- lock ---------------------------------------------------------------------------------


def test_lock_then_offline_build_from_it_is_byte_identical(
    lsite: Site,
    server: FakeOpenAI,
    warnings: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = lsite
    site.build()
    assert _by_stage(server.log) == {"expand": 1, "polish": 1, "section": 12}
    online = {name: site.html(name) for name in PAGES}
    assert "Polished text for Features &gt; Part 2." in online["tour.md"]
    sent = server.count()

    # Everything is cached: writing the lock sends nothing.
    entry_point = shutil.which("mkdocs-aigen")
    assert entry_point is not None, "the mkdocs-aigen console script is not installed"
    result = subprocess.run(
        [entry_point, "-f", str(site.config_file), "lock"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert server.count() == sent
    lock_path = site.root / "aigen.lock"
    assert result.stdout.startswith(
        f"wrote {lock_path}: 14 entries (12 sections, 14 cache/lock hits, 0 requests,"
    )
    first = lock_path.read_bytes()

    # Human-readable YAML: comments that say what to do, one entry per section with
    # its keys in a fixed order, outlines and the polished page too.
    text = first.decode("utf-8")
    assert text.startswith("# mkdocs-aigen lock file")
    data = yaml.safe_load(text)
    assert data["version"] == 2
    assert list(data["pages"]) == ["guide.md", "tour.md"]
    guide = data["pages"]["guide.md"]
    assert len(guide["sections"]) == 7
    for entry in guide["sections"]:
        assert list(entry) == ["path", "hash", "inputs", "model", "text"]
        assert re.fullmatch(r"[0-9a-f]{64}", entry["hash"])
        assert re.fullmatch(r"[0-9a-f]{64}", entry["inputs"])
        assert entry["model"] == "test-model"
    secrets = next(e for e in guide["sections"] if e["path"] == "The config file > Secrets")
    assert secrets["text"].startswith("Text for The config file > Secrets.")
    tour = data["pages"]["tour.md"]
    # Outline order, so a reviewer reads the page as it will appear.
    assert [e["path"] for e in tour["sections"]] == [
        "Why Foo",
        "Features",
        "Features > Part 1",
        "Features > Part 2",
        "Next steps",
    ]
    [outline] = tour["outlines"]
    assert list(outline) == ["path", "hash", "inputs", "model", "titles"]
    assert (outline["path"], outline["titles"]) == ("Features", ["Part 1", "Part 2"])
    assert "Polished text for Why Foo." in tour["polish"]["text"]
    assert "text: |" in text  # literal blocks: a diff shows changed lines, not one long one

    # Writing it again gives the same bytes.
    assert aigen(site, "lock").returncode == 0
    assert lock_path.read_bytes() == first
    check = aigen(site, "lock", "--check")
    assert check.returncode == 0, check.stdout
    assert "the lock is up to date (14 entries)" in check.stdout

    # CI on a fork: no cache, AIGEN_OFFLINE=1, only the lock. Same bytes, no request.
    shutil.rmtree(site.root / ".cache")
    plan = json.loads(aigen(site, "plan", "--json").stdout)
    assert (plan["requests"], plan["locked"], plan["cached"]) == (0, 12, 0)
    monkeypatch.setenv("AIGEN_OFFLINE", "1")
    warnings.clear()
    site.build(strict=True)
    assert server.count() == sent
    assert {name: site.html(name) for name in PAGES} == online
    assert warning_messages(warnings) == []

    # The same without AIGEN_OFFLINE but with no API key at all: still nothing missing,
    # so nothing to say.
    monkeypatch.delenv("AIGEN_OFFLINE")
    monkeypatch.delenv(TEST_KEY_ENV)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    site.plugin.pop("base_url")
    site.plugin["provider"] = "openai"
    site.build(strict=True)
    assert server.count() == sent
    assert {name: site.html(name) for name in PAGES} == online


def _entry_span(lines: list[str], path: str) -> tuple[int, int]:
    """Line range of one section entry (``- path: ...`` up to the next entry or key)."""
    start = lines.index(f"    - path: {path}")
    end = start + 1
    while end < len(lines) and lines[end].startswith("      "):
        end += 1
    return start, end


def test_lock_check_and_the_diff_of_one_stub_change(lsite: Site, server: FakeOpenAI) -> None:
    site = lsite
    site.build()
    assert aigen(site, "lock").returncode == 0
    lock_path = site.root / "aigen.lock"
    before = lock_path.read_text(encoding="utf-8")
    assert aigen(site, "lock", "--check").returncode == 0
    sent = server.count()

    _edit(site.docs / "guide.md", SECRETS_HINT, "Tokens never go in foo.toml; use the vault.")
    check = aigen(site, "lock", "--check")
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        "guide.md: 'The config file > Secrets': stale (its stub changed)",
        "1 lock entries are no longer used by any stub",
        "the lock is stale: 1 problem(s); run `mkdocs-aigen lock`",
    ]
    assert server.count() == sent  # --check sends nothing

    refreshed = aigen(site, "lock")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    assert server.count() == sent + 1  # only the changed section is generated
    after = lock_path.read_text(encoding="utf-8")
    assert aigen(site, "lock", "--check").returncode == 0

    # The diff touches that section's entry only: its hash and its text.
    old_lines, new_lines = before.splitlines(), after.splitlines()
    old_span, new_span = (
        _entry_span(old_lines, "The config file > Secrets"),
        _entry_span(new_lines, "The config file > Secrets"),
    )
    assert old_lines[: old_span[0]] == new_lines[: new_span[0]]
    assert old_lines[old_span[1] :] == new_lines[new_span[1] :]
    changed = [
        line
        for line in difflib.unified_diff(old_lines, new_lines, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    # One hash line and one inputs line out, one of each in; the rest is the section's text.
    for key in ("      hash: ", "      inputs: "):
        assert [line[0] for line in changed if line[1:].startswith(key)] == ["-", "+"]
    text_line = "        Text for The config file > Secrets."
    keys = ("      hash: ", "      inputs: ", text_line)
    assert all(line[1:].startswith(keys) for line in changed), changed


def test_lock_with_a_failed_section_says_so_and_exits_1(lsite: Site, server: FakeOpenAI) -> None:
    site = lsite
    site.build()
    _edit(site.docs / "guide.md", SECRETS_HINT, "Tokens never go in foo.toml.")
    result = aigen(site, "lock", env={"AIGEN_OFFLINE": "1"})
    assert result.returncode == 1
    assert "not locked: guide.md: The config file > Secrets: offline mode" in result.stdout
    written = yaml.safe_load((site.root / "aigen.lock").read_text(encoding="utf-8"))
    paths = [e["path"] for e in written["pages"]["guide.md"]["sections"]]
    assert "The config file > Secrets" not in paths and len(paths) == 6


def test_author_edit_of_a_polished_page_goes_in_its_polish_entry(
    lsite: Site,
    server: FakeOpenAI,
    warnings: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A polished page shows its ``polish`` text: that is the entry an author edits."""
    site = lsite
    site.build()
    assert aigen(site, "lock").returncode == 0
    sent = server.count()
    lock_path = site.root / "aigen.lock"
    text = lock_path.read_text(encoding="utf-8")
    polished = "        Polished text for Why Foo."
    assert text.count(polished) == 1
    lock_path.write_text(text.replace(polished, "        Hand-polished: why Foo."), "utf-8")

    monkeypatch.setenv("AIGEN_OFFLINE", "1")
    warnings.clear()
    site.build(strict=True)
    assert server.count() == sent
    html = site.html("tour.md")
    assert "Hand-polished: why Foo." in html
    assert "Polished text for Why Foo." not in html
    assert "Polished text for Next steps." in html
    assert warning_messages(warnings) == []
    assert aigen(site, "lock", "--check").returncode == 0


# -- plan ---------------------------------------------------------------------------------


def test_plan_matches_the_next_build(site: Site, server: FakeOpenAI, tmp_path: Path) -> None:
    server.responder = polishing_responder
    site.page("guide.md", GUIDE)
    site.page("tour.md", TOUR)
    # In the nav from the start: a page added to the nav changes its neighbours' prompts.
    site.page("extras.md", "# Extras\n\nTo be written.\n")
    site.build()
    sent = server.count()

    # Some cached, some new: one edited hint per page (the tour is polished, so its
    # polish follows), and a new stub with an auto expansion and polish.
    _edit(site.docs / "guide.md", SECRETS_HINT, "Tokens never go in foo.toml.")
    _edit(site.docs / "tour.md", TOUR_HINT, "Point to the guide and the FAQ.")
    site.page("extras.md", EXTRAS)

    result = aigen(site, "plan", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert server.count() == sent  # planning sends nothing
    assert plan["requests"] == 10
    assert plan["requests_by_stage"] == {"expand": 1, "polish": 2, "section": 7}
    assert (plan["sections"], plan["locked"], plan["cached"], plan["to_generate"]) == (
        17,
        0,
        10,
        7,
    )
    statuses = {
        (page["page"], section["path"]): section["status"]
        for page in plan["pages"]
        for section in page["sections"]
    }
    assert statuses[("guide.md", "Overview")] == "cached"
    assert statuses[("guide.md", "The config file > Secrets")] == "generate"
    assert statuses[("tour.md", "Next steps")] == "generate"
    assert statuses[("tour.md", "Features > Part 1")] == "cached"
    assert statuses[("extras.md", "Recipes")] == "generate"
    # Why each section is asked for again, from what the last build recorded.
    why = {
        (page["page"], section["path"]): section.get("reasons")
        for page in plan["pages"]
        for section in page["sections"]
    }
    assert why[("guide.md", "The config file > Secrets")] == ["stub edited"]
    assert why[("tour.md", "Next steps")] == ["stub edited"]
    assert why[("extras.md", "Recipes")] == ["new"]
    assert why[("guide.md", "Overview")] is None  # cached: nothing to explain
    assert plan["prompt_tokens"] > 0 and plan["completion_tokens_max"] > 0
    assert plan["estimated_cost_usd"] is None  # no price for test-model

    # The human-readable plan, with a price table for the test model.
    prices = tmp_path / "prices.yaml"
    prices.write_text("test-model: {input: 1.0, output: 4.0}\n", encoding="utf-8")
    text = aigen(site, "plan", "--prices", str(prices))
    assert text.returncode == 0, text.stderr
    cost = (plan["prompt_tokens"] * 1.0 + plan["completion_tokens_max"] * 4.0) / 1e6
    lines = text.stdout.splitlines()
    assert "  cached    Overview" in lines
    assert "  generate  The config file > Secrets (stub edited)" in lines
    assert "17 sections: 0 locked, 10 cached, 7 to generate" in lines
    assert "requests to send: 10 (1 expand, 2 polish, 7 section)" in lines
    assert (
        f"estimated tokens: {plan['prompt_tokens']} prompt + up to "
        f"{plan['completion_tokens_max']} completion"
    ) in lines
    assert f"estimated cost: at most ${cost:.4f} with test-model" in lines
    assert server.count() == sent

    # What the plan said is what the build sends.
    site.build()
    new = server.log[sent:]
    assert len(new) == plan["requests"]
    assert _by_stage(new) == plan["requests_by_stage"]
    assert json.loads(aigen(site, "plan", "--json").stdout)["requests"] == 0


# -- cache --------------------------------------------------------------------------------


def test_cache_info_prune_and_clear(site: Site, server: FakeOpenAI) -> None:
    server.responder = polishing_responder
    guide = site.page("guide.md", GUIDE)
    site.build()
    assert server.count() == 7
    info = aigen(site, "cache", "info")
    assert info.returncode == 0
    # Seven answers, and the finished page stored whole for the next rebuild.
    assert ": 7 answers, 1 whole pages, " in info.stdout

    _edit(guide, SECRETS_HINT, "Tokens never go in foo.toml.")
    site.build()
    assert server.count() == 8
    assert ": 8 answers, 2 whole pages, " in aigen(site, "cache", "info").stdout

    prune = aigen(site, "cache", "prune")
    assert prune.returncode == 0, prune.stderr
    # The old answer and the old page go; the current page and its answers stay.
    assert prune.stdout.strip() == "removed 2 entries no current stub needs; kept 8 this site uses"
    assert ": 7 answers, 1 whole pages, " in aigen(site, "cache", "info").stdout
    site.build()
    assert server.count() == 8  # prune kept everything the site needs

    clear = aigen(site, "cache", "clear")
    assert clear.returncode == 0
    assert clear.stdout.startswith("removed 8 entries from ")
    assert ": 0 answers, 0 whole pages, " in aigen(site, "cache", "info").stdout
    assert json.loads(aigen(site, "plan", "--json").stdout)["to_generate"] == 7
    assert server.count() == 8


# -- errors -------------------------------------------------------------------------------


def _one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mkdocs-aigen: ")
    assert expected in lines[0]


def test_config_without_the_plugin(site: Site) -> None:
    site.page("guide.md", GUIDE)
    site.extra_config = {"plugins": ["search"]}
    _one_line_error(aigen(site, "plan"), "the 'aigen' plugin is not configured")


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "mkdocs.yml"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs_aigen.cli", "-f", str(missing), "lock", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    _one_line_error(result, f"Config file '{missing}' does not exist")


def test_usage_errors_exit_2(site: Site, tmp_path: Path) -> None:
    site.page("guide.md", GUIDE)
    _one_line_error(aigen(site, "lock", "--check"), "no lock file is configured")
    prices = tmp_path / "prices.yaml"
    prices.write_text("test-model: 3\n", encoding="utf-8")
    _one_line_error(aigen(site, "plan", "--prices", str(prices)), "'test-model': expected")
    site.page("bad.md", "---\naigen:\n  brief: x\n  words: -3\n  outline: [A]\n---\n# Bad\n")
    _one_line_error(aigen(site, "plan"), "bad.md: 'aigen.words'")


def test_invalid_option_exits_2_after_mkdocs_names_it(site: Site) -> None:
    site.page("guide.md", GUIDE)
    site.plugin["concurrency"] = "many"
    result = aigen(site, "plan")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert "option 'concurrency': Expected type" in lines[0]
    assert (
        lines[-1]
        == "mkdocs-aigen: cannot load the MkDocs config: Aborted with a configuration error!"
    )


# -- MkDocs' habits -----------------------------------------------------------------------


def _aigen_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real console script, run from ``folder`` with ``args`` exactly as given."""
    entry_point = shutil.which("mkdocs-aigen")
    assert entry_point is not None, "the mkdocs-aigen console script is not installed"
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [entry_point, *args],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
        check=False,
    )


def test_config_file_goes_before_or_after_the_command(
    lsite: Site, server: FakeOpenAI, tmp_path: Path
) -> None:
    site = lsite
    site.build()
    sent = server.count()
    config = str(site.config_file)
    # A folder without mkdocs.yml: only the option given can find the site.
    elsewhere = tmp_path / "elsewhere"

    written = _aigen_in(elsewhere, "lock", "-f", config)
    assert written.returncode == 0, written.stderr
    assert written.stdout.startswith(f"wrote {site.root / 'aigen.lock'}: 14 entries")
    for args in (
        ("lock", "--check", "--config-file", config),
        ("--config-file", config, "lock", "--check"),
        ("lock", "-f", config, "--check"),
    ):
        check = _aigen_in(elsewhere, *args)
        assert check.returncode == 0, (args, check.stderr)
        assert check.stdout == "the lock is up to date (14 entries)\n", args
    plan = _aigen_in(elsewhere, "plan", "--json", "-f", config)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["to_generate"] == 0
    infos = [
        _aigen_in(elsewhere, *args)
        for args in (("cache", "info", "-f", config), ("cache", "-f", config, "info"))
    ]
    assert [info.returncode for info in infos] == [0, 0], [info.stderr for info in infos]
    assert infos[0].stdout == infos[1].stdout
    assert ": 14 answers, 0 whole pages, " in infos[0].stdout
    prune = _aigen_in(elsewhere, "cache", "prune", "--config-file", config)
    assert prune.returncode == 0, prune.stderr
    assert prune.stdout.startswith("removed 0 entries no current stub needs")
    assert server.count() == sent  # none of them sent anything


def test_every_command_has_help(tmp_path: Path) -> None:
    for command in (
        (),
        ("plan",),
        ("cache",),
        *(("cache", a) for a in ("info", "clear", "prune")),
        ("lock",),
    ):
        result = _aigen_in(tmp_path, *command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert result.stderr == ""
        assert result.stdout.startswith(f"usage: {' '.join(('mkdocs-aigen', *command))} [-h]")
        # Every command takes the config file, wherever it stands.
        assert "-f CONFIG_FILE, --config-file CONFIG_FILE" in result.stdout, command
