"""Bad input stops a real build with one readable line, before any request is sent.

Every case goes through MkDocs' own build (``Site.build``) against the fake server: the
message must name the file, the field and what was expected, and the server must not
have seen a single request. A few cases also run the real ``mkdocs build`` command line
to show that what the author sees is that one line, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mkdocs.exceptions import MkDocsException

from mkdocs_aigen.config import AigenConfig
from tests.conftest import Site, warning_messages
from tests.fake_server import FakeOpenAI

STUB = """
---
aigen:
  brief: Explain the widget.
  outline:
    - Overview
    - Usage
---
# Widget

<!-- aigen -->
"""

# A user template that is fine except for what a case changes.
GOOD_SECTION = (
    "{% block system %}You write docs.{% endblock %}\n"
    "{% block user %}Section: {{ section_path | join(' > ') }}\n"
    "Write about {{ words }} words.{% endblock %}\n"
)


def _stub(aigen_yaml: str, body: str = "# Widget\n\n<!-- aigen -->\n") -> str:
    """A page whose front matter is ``aigen:`` followed by ``aigen_yaml`` (indented)."""
    indented = "\n".join(f"  {line}" if line else line for line in aigen_yaml.splitlines())
    return f"---\naigen:\n{indented}\n---\n{body}"


@dataclass(frozen=True)
class Case:
    """One mistake and the fragments its error message must contain."""

    id: str
    expected: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    page: str = STUB
    #: Extra files, relative to the project root (text, or bytes written as they are).
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


CONFIG_CASES = [
    Case(
        "concurrency-zero",
        ("mkdocs.yml", "'concurrency'", "1 or more", "found 0"),
        {"concurrency": 0},
    ),
    Case(
        "concurrency-wrong-type",
        ("mkdocs.yml", "'concurrency'", "Expected type", "int"),
        {"concurrency": "lots"},
    ),
    Case("words-zero", ("mkdocs.yml", "'words'", "positive integer", "found 0"), {"words": 0}),
    Case(
        "words-negative", ("mkdocs.yml", "'words'", "positive integer", "found -1"), {"words": -1}
    ),
    Case("words-wrong-type", ("mkdocs.yml", "'words'", "Expected type", "int"), {"words": "many"}),
    Case("rpm-zero", ("mkdocs.yml", "'rpm'", "positive integer", "found 0"), {"rpm": 0}),
    Case("tpm-negative", ("mkdocs.yml", "'tpm'", "positive integer", "found -5"), {"tpm": -5}),
    Case(
        "max-retries-negative",
        ("mkdocs.yml", "'max_retries'", "0 or more", "found -1"),
        {"max_retries": -1},
    ),
    Case(
        "timeout-zero",
        ("mkdocs.yml", "'timeout'", "positive number of seconds", "found 0"),
        {"timeout": 0},
    ),
    Case(
        "provider-typo",
        ("mkdocs.yml", "'provider'", "Expected one of", "'opnai'"),
        {"provider": "opnai"},
    ),
    Case(
        "on-error-typo",
        ("mkdocs.yml", "'on_error'", "Expected one of", "'stop'"),
        {"on_error": "stop"},
    ),
    Case(
        "context-missing",
        (
            "mkdocs.yml",
            "'context'",
            "facts.md",
            "FileNotFoundError",
            "readable UTF-8 Markdown file",
        ),
        {"context": "facts.md"},
    ),
    Case(
        "context-not-utf8",
        ("mkdocs.yml", "'context'", "facts.md", "UnicodeDecodeError", "readable UTF-8"),
        {"context": "facts.md"},
        files={"facts.md": b"\xff\xfe\x00 not text \xc3"},
    ),
    Case(
        "context-is-a-folder",
        ("mkdocs.yml", "'context'", "facts.md", "IsADirectoryError"),
        {"context": "facts.md"},
        files={"facts.md/keep.txt": "x"},
    ),
    Case(
        "templates-dir-missing",
        ("mkdocs.yml", "'templates_dir'", "prompts", "not a readable folder"),
        {"templates_dir": "prompts"},
    ),
    Case(
        "template-undefined-variable",
        ("section.j2", "'sectoin_path' is undefined", "variables it can use are", "section_path"),
        {"templates_dir": "prompts"},
        files={"prompts/section.j2": GOOD_SECTION.replace("section_path", "sectoin_path")},
    ),
    Case(
        "template-undefined-in-a-branch",
        # Only rendered for a section with a hint; none of these has one, so only the
        # trial render at startup can catch it before the first request.
        ("section.j2", "'hnit' is undefined"),
        {"templates_dir": "prompts"},
        files={
            "prompts/section.j2": GOOD_SECTION.replace(
                "Write about", "{% if hint %}Hint: {{ hnit }}{% endif %}Write about"
            )
        },
    ),
    Case(
        "template-syntax-error",
        ("expand.j2", "syntax error on line 2"),
        {"templates_dir": "prompts"},
        files={
            "prompts/expand.j2": "{% block system %}x{% endblock %}\n"
            "{% block user %}{{ count {% endblock %}\n"
        },
    ),
    Case(
        "template-without-blocks",
        ("polish.j2", "must define the blocks 'system' and 'user'"),
        {"templates_dir": "prompts"},
        files={"prompts/polish.j2": "Polish this.\n"},
    ),
    Case(
        "lock-bad-yaml",
        ("aigen.lock", "invalid YAML on line 3", "starts on line 2"),
        {"lock": "aigen.lock"},
        files={"aigen.lock": "version: 1\npages: [unclosed\n"},
    ),
    Case(
        "lock-wrong-shape",
        ("aigen.lock", "expected a mapping with 'pages'"),
        {"lock": "aigen.lock"},
        files={"aigen.lock": "pages: 3\n"},
    ),
    Case(
        "lock-entry-without-text",
        ("aigen.lock", "pages.index.md.sections[0].text", "expected a string"),
        {"lock": "aigen.lock"},
        files={
            "aigen.lock": "pages:\n  index.md:\n    sections:\n"
            "      - {path: Overview, hash: abc}\n"
        },
    ),
    Case(
        "env-concurrency-not-a-number",
        ("AIGEN_CONCURRENCY", "whole number", "'abc'"),
        env={"AIGEN_CONCURRENCY": "abc"},
    ),
    Case(
        "env-concurrency-zero",
        ("AIGEN_CONCURRENCY", "1 or more", "'0'"),
        env={"AIGEN_CONCURRENCY": "0"},
    ),
    Case(
        "review-criteria-wrong-type",
        ("mkdocs.yml", "'review'", "criteria", "Expected type"),
        {"review": {"criteria": ["accuracy"]}},
    ),
]

STUB_CASES = [
    Case(
        "stub-brief-missing",
        ("index.md", "'aigen.brief'", "missing", "is 'breif' a typo?"),
        page=_stub("breif: Explain.\noutline: [A]"),
    ),
    Case(
        "stub-brief-empty",
        ("index.md", "'aigen.brief'", "non-empty string", "found string ''"),
        page=_stub("brief: ''\noutline: [A]"),
    ),
    Case(
        "stub-outline-empty",
        ("index.md", "'aigen.outline'", "non-empty list", "empty list"),
        page=_stub("brief: b\noutline: []"),
    ),
    Case(
        "stub-outline-missing", ("index.md", "'aigen.outline'", "missing"), page=_stub("brief: b")
    ),
    Case(
        "stub-outline-too-deep",
        (
            "index.md",
            "'aigen.outline[0].A[0].B[0].C[0].D[0].E[0]'",
            "no deeper than ######",
            "level-7",
        ),
        page=_stub("brief: b\noutline: [{A: [{B: [{C: [{D: [{E: [F]}]}]}]}]}]"),
    ),
    Case(
        "stub-duplicate-title",
        ("index.md", "'aigen.outline[2]'", "unique on the page", "'aigen.outline[0]'"),
        page=_stub("brief: b\noutline: [Setup, Usage, setup]"),
    ),
    Case(
        "stub-duplicate-title-nested",
        ("index.md", "'aigen.outline[1].Usage[0]'", "unique on the page"),
        page=_stub("brief: b\noutline: [Setup, {Usage: [Setup]}]"),
    ),
    Case(
        "stub-marker-twice",
        ("index.md", "marker <!-- aigen -->", "2 times", "lines 8 and 10", "keep exactly one"),
        page=_stub("brief: b\noutline: [A]", "# W\n\n<!-- aigen -->\n\n<!-- aigen -->\n"),
    ),
    Case(
        "stub-words-zero",
        ("index.md", "'aigen.words'", "positive integer", "found integer 0"),
        page=_stub("brief: b\nwords: 0\noutline: [A]"),
    ),
    Case(
        "stub-words-negative-on-item",
        ("index.md", "'aigen.outline[0].words'", "positive integer", "found integer -3"),
        page=_stub("brief: b\noutline:\n  - title: A\n    words: -3"),
    ),
    Case(
        "stub-words-string",
        ("index.md", "'aigen.words'", "positive integer", "found string 'lots'"),
        page=_stub("brief: b\nwords: lots\noutline: [A]"),
    ),
    Case(
        "stub-title-not-a-string",
        ("index.md", "'aigen.outline[0]'", "quote it in YAML"),
        page=_stub("brief: b\noutline: [2024, B]"),
    ),
    Case(
        "stub-aigen-not-a-mapping",
        ("index.md", "'aigen'", "a mapping", "found list"),
        page="---\naigen: [a, b]\n---\n# W\n",
    ),
    Case(
        "stub-auto-count-too-big",
        ("index.md", "'aigen.outline[0].A.auto'", "1..12", "50"),
        page=_stub("brief: b\noutline: [{A: {auto: 50}}]"),
    ),
    Case(
        "stub-shorthand-null",
        ("index.md", "'aigen.outline[0].Overview'", "drop the ':'"),
        page=_stub("brief: b\noutline:\n  - Overview:\n  - B"),
    ),
    Case(
        "stub-polish-not-a-boolean",
        ("index.md", "'aigen.polish'", "true or false"),
        page=_stub("brief: b\npolish: maybe\noutline: [A]"),
    ),
    Case(
        "stub-front-matter-tab",
        ("index.md", "'front matter'", "valid YAML", "line 4", "spaces, not tabs"),
        page="---\naigen:\n  brief: b\n\toutline: [A]\n---\n# W\n",
    ),
    Case(
        "stub-front-matter-not-a-mapping",
        ("index.md", "'front matter'", "valid YAML"),
        page="---\naigen: [unclosed\n---\n# W\n",
    ),
]


def _prepare(site: Site, case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    site.plugin.update(case.options)
    site.page("index.md", case.page)
    for name, content in case.files.items():
        path = site.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)


def _error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("case", CONFIG_CASES + STUB_CASES, ids=lambda case: case.id)
def test_bad_input_fails_with_one_readable_line(
    case: Case,
    site: Site,
    server: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)
    _prepare(site, case, monkeypatch)
    with pytest.raises(MkDocsException):
        site.build()
    errors = _error_lines(caplog)
    matching = [line for line in errors if all(part in line for part in case.expected)]
    assert matching, f"no error line has all of {case.expected}; errors: {errors}"
    line = matching[0]
    assert "\n" not in line and "Traceback" not in line
    assert len(line) < 400, line
    # Nothing was spent: the mistake is found before the first request.
    assert server.log == []


def test_cases_have_distinct_ids_and_set_real_options() -> None:
    """Cases are looked up by id below, and an option name misspelt in a case would test
    MkDocs' unknown-option warning instead of the check the case is named after."""
    cases = CONFIG_CASES + STUB_CASES
    ids = [case.id for case in cases]
    assert sorted(ids) == sorted(set(ids)), "duplicate case ids"
    options = set(AigenConfig().keys())
    misspelt = {case.id: sorted(set(case.options) - options) for case in cases}
    assert {case: names for case, names in misspelt.items() if names} == {}


@pytest.mark.parametrize(
    "case_id",
    [
        "template-undefined-variable",
        "stub-outline-too-deep",
        "words-zero",
        "lock-bad-yaml",
        "env-concurrency-not-a-number",
        "provider-typo",
    ],
)
def test_command_line_shows_the_line_without_a_traceback(
    case_id: str, site: Site, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = next(c for c in CONFIG_CASES + STUB_CASES if c.id == case_id)
    _prepare(site, case, monkeypatch)
    result = site.cli("build", env=case.env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert any(all(part in line for part in case.expected) for line in error_lines), result.stderr
    assert server.log == []


@pytest.mark.parametrize(
    ("case_id", "expected"),
    [
        ("stub-outline-too-deep", "'aigen.outline[0].A[0].B[0].C[0].D[0].E[0]'"),
        ("template-undefined-variable", "'sectoin_path' is undefined"),
        ("words-zero", "'words' must be a positive integer"),
    ],
)
def test_aigen_command_line_reports_the_same_line(
    case_id: str,
    expected: str,
    site: Site,
    server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mkdocs_aigen.cli import main

    case = next(c for c in CONFIG_CASES + STUB_CASES if c.id == case_id)
    _prepare(site, case, monkeypatch)
    site.write_config()
    assert main(["-f", str(site.config_file), "plan"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mkdocs-aigen: ") and expected in err
    assert err.count("\n") == 1
    assert server.log == []


# -- warnings, not errors ---------------------------------------------------------------


Check = Callable[[list[str]], bool]


@pytest.mark.parametrize(
    ("options", "page", "expected"),
    [
        pytest.param(
            {"wrods": 10},
            STUB,
            ("'wrods'", "did you mean 'words'?", "mkdocs.yml"),
            id="config-option-typo",
        ),
        pytest.param(
            {"concurency": 2},
            STUB,
            ("'concurency'", "did you mean 'concurrency'?"),
            id="config-option-typo-2",
        ),
        pytest.param(
            {},
            _stub("brief: b\nwrods: 10\noutline: [A]"),
            ("index.md", "'aigen.wrods'", "did you mean 'words'?"),
            id="stub-key-typo",
        ),
        pytest.param(
            {},
            _stub("brief: b\noutline:\n  - title: A\n    hnit: short"),
            ("index.md", "'aigen.outline[0].hnit'", "did you mean 'hint'?"),
            id="stub-item-key-typo",
        ),
    ],
)
def test_unknown_keys_warn_with_a_suggestion_and_the_build_goes_on(
    options: dict[str, Any],
    page: str,
    expected: tuple[str, ...],
    site: Site,
    server: FakeOpenAI,
    warnings: pytest.LogCaptureFixture,
) -> None:
    site.plugin.update(options)
    site.page("index.md", page)
    site.build()
    messages = warning_messages(warnings)
    matching = [m for m in messages if all(part in m for part in expected)]
    assert len(matching) == 1, messages
    assert server.count(outcome="ok") >= 1
    assert (Path(site.root) / "site" / "index.html").exists()
