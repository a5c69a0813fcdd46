"""Table-driven tests for outline stub parsing and front matter reading."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml
from mkdocs.utils.meta import get_data

from mkdocs_aigen.stubs import (
    DEFAULT_AUTO_SECTIONS,
    OutlineItem,
    PageStub,
    StubError,
    iter_items,
    parse_stub,
    read_front_matter,
)

SRC = "docs/guide/page.md"

EXAMPLE = """\
---
title: Configuring Foo
aigen:
  brief: Explain how to configure Foo for a first deployment.
  audience: platform engineers new to Foo
  tone: precise, friendly
  words: 150
  polish: true
  outline:
    - Overview
    - title: The config file
      words: 300
      hint: Show a minimal foo.toml and explain each key.
      sections:
        - Environment variables
        - title: Secrets
          hint: Never put tokens in foo.toml.
    - Troubleshooting: [Logs, Common errors]
    - title: Recipes
      sections: auto
    - title: FAQ
      sections: {auto: 5}
    - Glossary: auto
---
# Configuring Foo

Body text.
"""


def load(text: str) -> dict[str, Any]:
    """Front matter written as YAML text, the way authors write it."""
    return yaml.safe_load(textwrap.dedent(text))


def parse(text: str, warnings: list[str] | None = None) -> PageStub | None:
    """parse_stub on YAML text, collecting warnings."""
    sink = warnings if warnings is not None else []
    return parse_stub(load(text), SRC, sink.append)


def stub_with_outline(outline_yaml: str) -> str:
    """A valid page stub around an outline fragment (indented under ``outline:``)."""
    body = textwrap.indent(textwrap.dedent(outline_yaml), "    ")
    return f"aigen:\n  brief: A page.\n  outline:\n{body}"


def nested(depth: int, leaf: str = "") -> str:
    """An outline ``depth`` items deep (levels 2..depth+1), ``leaf`` added to the last."""
    lines = []
    for i in range(depth):
        pad = "  " * (2 * i)
        lines.append(f"{pad}- title: Level {i + 2}")
        if i < depth - 1:
            lines.append(f"{pad}  sections:")
    if leaf:
        lines.append("  " * (2 * depth - 1) + leaf)
    return "\n".join(lines) + "\n"


# (id, front matter YAML, field, phrase the message must contain)
BAD_STUBS: list[tuple[str, str, str, str]] = [
    ("aigen-string", "aigen: write something", "aigen", "a mapping"),
    ("aigen-null", "aigen:", "aigen", "found null"),
    ("aigen-list", "aigen: [brief, outline]", "aigen", "a mapping"),
    ("brief-missing", "aigen: {outline: [A]}", "aigen.brief", "non-empty string"),
    ("brief-typo", "aigen: {breif: x, outline: [A]}", "aigen.brief", "is 'breif' a typo"),
    ("brief-blank", "aigen: {brief: '   ', outline: [A]}", "aigen.brief", "non-empty string"),
    ("brief-number", "aigen: {brief: 42, outline: [A]}", "aigen.brief", "found integer 42"),
    ("brief-null", "aigen: {brief: null, outline: [A]}", "aigen.brief", "found null"),
    (
        "audience-list",
        "aigen: {brief: b, audience: [a, b], outline: [A]}",
        "aigen.audience",
        "a string, found list",
    ),
    ("tone-number", "aigen: {brief: b, tone: 3, outline: [A]}", "aigen.tone", "a string"),
    ("words-zero", "aigen: {brief: b, words: 0, outline: [A]}", "aigen.words", "positive integer"),
    (
        "words-negative",
        "aigen: {brief: b, words: -5, outline: [A]}",
        "aigen.words",
        "found integer -5",
    ),
    (
        "words-text",
        "aigen: {brief: b, words: many, outline: [A]}",
        "aigen.words",
        "found string 'many'",
    ),
    (
        "words-float",
        "aigen: {brief: b, words: 2.5, outline: [A]}",
        "aigen.words",
        "found number 2.5",
    ),
    (
        "words-bool",
        "aigen: {brief: b, words: true, outline: [A]}",
        "aigen.words",
        "found boolean true",
    ),
    ("words-huge", "aigen: {brief: b, words: 6000, outline: [A]}", "aigen.words", "1..5000"),
    (
        "polish-string",
        "aigen: {brief: b, polish: 'yes', outline: [A]}",
        "aigen.polish",
        "true or false",
    ),
    (
        "polish-number",
        "aigen: {brief: b, polish: 1, outline: [A]}",
        "aigen.polish",
        "true or false",
    ),
    ("outline-missing", "aigen: {brief: b}", "aigen.outline", "non-empty list"),
    ("outline-typo", "aigen: {brief: b, outlne: [A]}", "aigen.outline", "is 'outlne' a typo"),
    (
        "outline-string",
        "aigen: {brief: b, outline: Overview}",
        "aigen.outline",
        "found string 'Overview'",
    ),
    ("outline-empty", "aigen: {brief: b, outline: []}", "aigen.outline", "non-empty list"),
    ("outline-mapping", "aigen: {brief: b, outline: {title: A}}", "aigen.outline", "found mapping"),
    ("item-number", stub_with_outline("- Overview\n- 42\n"), "aigen.outline[1]", "quote it"),
    ("item-null", stub_with_outline("- Overview\n-\n"), "aigen.outline[1]", "found null"),
    ("item-blank", stub_with_outline("- '   '\n"), "aigen.outline[0]", "non-empty string title"),
    ("item-list", stub_with_outline("- [A, B]\n"), "aigen.outline[0]", "title, found list"),
    ("item-bool", stub_with_outline("- yes\n"), "aigen.outline[0]", "found boolean true"),
    (
        "title-newline",
        stub_with_outline('- "Part one\\nPart two"\n'),
        "aigen.outline[0]",
        "one line",
    ),
    (
        "title-block-newline",
        stub_with_outline("- title: |\n    One\n    Two\n"),
        "aigen.outline[0].title",
        "one line",
    ),
    (
        "title-null",
        stub_with_outline("- title:\n  words: 10\n"),
        "aigen.outline[0].title",
        "non-empty string title",
    ),
    (
        "title-number",
        stub_with_outline("- title: 3.5\n"),
        "aigen.outline[0].title",
        "found number 3.5",
    ),
    (
        "no-title-two-keys",
        stub_with_outline("- words: 10\n  hint: h\n"),
        "aigen.outline[0]",
        "a 'title' key",
    ),
    (
        "no-title-lone-known-key",
        stub_with_outline("- hint: Explain it\n"),
        "aigen.outline[0]",
        "a 'title' key",
    ),
    (
        "no-title-typo",
        stub_with_outline("- tilte: Setup\n  words: 10\n"),
        "aigen.outline[0]",
        "is 'tilte' a typo",
    ),
    (
        "shorthand-null",
        stub_with_outline("- Overview:\n"),
        "aigen.outline[0].Overview",
        "for a plain title drop the ':'",
    ),
    (
        "shorthand-colon-text",
        stub_with_outline("- Note: see the FAQ\n"),
        "aigen.outline[0].Note",
        "quote titles that contain ': '",
    ),
    (
        "shorthand-number",
        stub_with_outline("- Limits: 5\n"),
        "aigen.outline[0].Limits",
        "found integer 5",
    ),
    (
        "shorthand-empty",
        stub_with_outline("- Limits: []\n"),
        "aigen.outline[0].Limits",
        "non-empty list",
    ),
    (
        "shorthand-title-number",
        stub_with_outline("- 42: [A]\n"),
        "aigen.outline[0]",
        "found integer 42",
    ),
    (
        "shorthand-spaced-child",
        stub_with_outline("- Common errors: [X, 7]\n"),
        'aigen.outline[0]["Common errors"][1]',
        "quote it",
    ),
    (
        "sections-text",
        stub_with_outline("- title: A\n  sections: many\n"),
        "aigen.outline[0].sections",
        "'auto' or {auto: N}",
    ),
    (
        "sections-empty",
        stub_with_outline("- title: A\n  sections: []\n"),
        "aigen.outline[0].sections",
        "non-empty list",
    ),
    (
        "sections-null",
        stub_with_outline("- title: A\n  sections:\n"),
        "aigen.outline[0].sections",
        "found null",
    ),
    (
        "sections-other-mapping",
        stub_with_outline("- title: A\n  sections: {auto: 3, x: 1}\n"),
        "aigen.outline[0].sections",
        "{auto: N}",
    ),
    (
        "auto-zero",
        stub_with_outline("- title: A\n  sections: {auto: 0}\n"),
        "aigen.outline[0].sections.auto",
        "1..12",
    ),
    (
        "auto-too-many",
        stub_with_outline("- title: A\n  sections: {auto: 13}\n"),
        "aigen.outline[0].sections.auto",
        "found integer 13",
    ),
    (
        "auto-text",
        stub_with_outline("- title: A\n  sections: {auto: '5'}\n"),
        "aigen.outline[0].sections.auto",
        "integer number of subsections",
    ),
    (
        "auto-bool",
        stub_with_outline("- title: A\n  sections: {auto: true}\n"),
        "aigen.outline[0].sections.auto",
        "found boolean true",
    ),
    (
        "hint-number",
        stub_with_outline("- title: A\n  hint: 12\n"),
        "aigen.outline[0].hint",
        "a string",
    ),
    (
        "nested-words",
        stub_with_outline("- title: A\n  sections:\n    - title: B\n      words: 0\n"),
        "aigen.outline[0].sections[0].words",
        "positive integer",
    ),
    (
        "too-deep",
        stub_with_outline(nested(6)),
        "aigen.outline[0]" + ".sections[0]" * 5 + ".title",
        "'Level 7' would be a level-7 heading",
    ),
    (
        "auto-too-deep",
        stub_with_outline(nested(5, "sections: auto")),
        "aigen.outline[0]" + ".sections[0]" * 4 + ".sections",
        "deeper than ######",
    ),
    (
        "duplicate-top",
        stub_with_outline("- Overview\n- ' overview '\n"),
        "aigen.outline[1]",
        "already used by 'aigen.outline[0]'",
    ),
    (
        "duplicate-nested",
        stub_with_outline("- title: Setup\n  sections: [Install, SETUP]\n"),
        "aigen.outline[0].sections[1]",
        "already used by 'aigen.outline[0].title'",
    ),
    (
        "duplicate-shorthand",
        stub_with_outline("- Troubleshooting: [Logs]\n- title: logs\n"),
        "aigen.outline[1].title",
        "already used by 'aigen.outline[0].Troubleshooting[0]'",
    ),
    (
        "duplicate-spacing",
        stub_with_outline("- Common errors\n- Common   Errors\n"),
        "aigen.outline[1]",
        "unique on the page",
    ),
]


@pytest.mark.parametrize(
    ("text", "field", "phrase"),
    [case[1:] for case in BAD_STUBS],
    ids=[case[0] for case in BAD_STUBS],
)
def test_bad_stub_raises(text: str, field: str, phrase: str) -> None:
    with pytest.raises(StubError) as info:
        parse(text)
    message = str(info.value)
    assert info.value.src_path == SRC
    assert info.value.field == field
    assert SRC in message
    assert f"'{field}'" in message
    assert phrase in message


# (id, markdown file, phrase the message must contain)
BAD_FRONT_MATTER: list[tuple[str, str, str]] = [
    (
        "unquoted-colon",
        "---\ntitle: x\naigen:\n  brief: Do this: that\n---\nBody\n",
        "line 4: mapping values are not allowed",
    ),
    ("bad-indent", "---\ntitle: x\n  aigen: y\n---\nBody\n", "line 3"),
    ("unclosed-quote", "---\ntitle: 'Foo\n---\nBody\n", "starts on line 2"),
    ("tab-indent", "---\naigen:\n\tbrief: x\n---\nBody\n", "spaces, not tabs"),
    ("bad-date", "---\ndate: 2024-13-45\n---\nBody\n", "valid YAML"),
    ("list", "---\n- a\n- b\n---\nBody\n", "a mapping of 'key: value' lines, found list"),
    ("scalar", "---\njust text\n---\nBody\n", "found string 'just text'"),
]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [case[1:] for case in BAD_FRONT_MATTER],
    ids=[case[0] for case in BAD_FRONT_MATTER],
)
def test_bad_front_matter_raises(text: str, phrase: str) -> None:
    with pytest.raises(StubError) as info:
        read_front_matter(text, SRC)
    message = str(info.value)
    assert info.value.field == "front matter"
    assert SRC in message
    assert "'front matter'" in message
    assert phrase in message


def test_bad_yaml_names_the_file_line() -> None:
    text = "---\ntitle: ok\naigen:\n  brief: fine\n  outline: [A\n---\nBody\n"
    with pytest.raises(StubError) as info:
        read_front_matter(text, SRC)
    assert info.value.expected.startswith("valid YAML (line ")
    # MkDocs alone would have dropped it without a word.
    assert get_data(text)[1] == {}


def test_example_parses_to_the_right_tree() -> None:
    body, meta = read_front_matter(EXAMPLE, SRC)
    assert body.startswith("# Configuring Foo")
    warnings: list[str] = []
    stub = parse_stub(meta, SRC, warnings.append)
    assert warnings == []
    assert stub == PageStub(
        src_path=SRC,
        title="Configuring Foo",
        brief="Explain how to configure Foo for a first deployment.",
        audience="platform engineers new to Foo",
        tone="precise, friendly",
        words=150,
        polish=True,
        outline=(
            OutlineItem("Overview", field="aigen.outline[0]"),
            OutlineItem(
                "The config file",
                words=300,
                hint="Show a minimal foo.toml and explain each key.",
                children=(
                    OutlineItem("Environment variables", field="aigen.outline[1].sections[0]"),
                    OutlineItem(
                        "Secrets",
                        hint="Never put tokens in foo.toml.",
                        field="aigen.outline[1].sections[1]",
                    ),
                ),
                field="aigen.outline[1]",
            ),
            OutlineItem(
                "Troubleshooting",
                children=(
                    OutlineItem("Logs", field="aigen.outline[2].Troubleshooting[0]"),
                    OutlineItem("Common errors", field="aigen.outline[2].Troubleshooting[1]"),
                ),
                field="aigen.outline[2]",
            ),
            OutlineItem("Recipes", auto=DEFAULT_AUTO_SECTIONS, field="aigen.outline[3]"),
            OutlineItem("FAQ", auto=5, field="aigen.outline[4]"),
            OutlineItem("Glossary", auto=DEFAULT_AUTO_SECTIONS, field="aigen.outline[5]"),
        ),
    )


def test_iter_items_document_order_levels_and_paths() -> None:
    stub = parse_stub(read_front_matter(EXAMPLE, SRC)[1], SRC, lambda _: None)
    assert stub is not None
    walked = [(item.title, path, level) for item, path, level in iter_items(stub.outline)]
    assert walked == [
        ("Overview", ("Overview",), 2),
        ("The config file", ("The config file",), 2),
        ("Environment variables", ("The config file", "Environment variables"), 3),
        ("Secrets", ("The config file", "Secrets"), 3),
        ("Troubleshooting", ("Troubleshooting",), 2),
        ("Logs", ("Troubleshooting", "Logs"), 3),
        ("Common errors", ("Troubleshooting", "Common errors"), 3),
        ("Recipes", ("Recipes",), 2),
        ("FAQ", ("FAQ",), 2),
        ("Glossary", ("Glossary",), 2),
    ]


def test_page_without_aigen_is_none() -> None:
    assert parse("title: Plain page\n") is None
    assert parse_stub({}, SRC, lambda _: None) is None


def test_unknown_keys_warn_with_suggestion() -> None:
    warnings: list[str] = []
    stub = parse(
        """\
        aigen:
          brief: b
          tonne: dry
          colour: blue
          outline:
            - Overview
            - title: Setup
              wrods: 200
        """,
        warnings,
    )
    assert stub is not None
    assert warnings == [
        f"{SRC}: 'aigen.tonne' is not a known key; did you mean 'tone'?",
        f"{SRC}: 'aigen.colour' is not a known key; "
        "known keys: brief, audience, tone, words, polish, notice, sources, cite, language, "
        "outline",
        f"{SRC}: 'aigen.outline[1].wrods' is not a known key; did you mean 'words'?",
    ]
    assert stub.tone is None
    assert stub.outline[1].words is None


def test_titles_and_strings_are_stripped_and_blank_optionals_unset() -> None:
    stub = parse(
        """\
        aigen:
          brief: "  Say hi.  "
          audience: "   "
          tone: null
          words: null
          polish: null
          outline:
            - "  Hello  "
            - title: "  World "
              hint: "  "
        """
    )
    assert stub is not None
    assert (stub.brief, stub.audience, stub.tone, stub.words, stub.polish) == (
        "Say hi.",
        None,
        None,
        None,
        None,
    )
    assert [item.title for item in stub.outline] == ["Hello", "World"]
    assert stub.outline[1].hint is None


def test_deepest_allowed_levels() -> None:
    # Level 6 is the last heading level; auto children at level 6 need a level-5 parent.
    stub = parse(stub_with_outline(nested(5) + "- title: Auto parent\n  sections: auto\n"))
    assert stub is not None
    levels = [(item.title, level) for item, _, level in iter_items(stub.outline)]
    assert levels[-2:] == [("Level 6", 6), ("Auto parent", 2)]
    deep_auto = parse(stub_with_outline(nested(4, "sections: {auto: 2}")))
    assert deep_auto is not None
    assert [item.auto for item, _, _ in iter_items(deep_auto.outline)][-1] == 2


def test_shorthand_accepts_auto_count() -> None:
    stub = parse(stub_with_outline("- FAQ: {auto: 3}\n"))
    assert stub is not None
    assert stub.outline[0] == OutlineItem("FAQ", auto=3, field="aigen.outline[0]")


def test_recursive_yaml_alias_terminates() -> None:
    text = "aigen:\n  brief: b\n  outline: &o\n    - title: Loop\n      sections: *o\n"
    with pytest.raises(StubError, match="already used"):
        parse(text)


@pytest.mark.parametrize(
    "text",
    [
        EXAMPLE,
        "# No front matter\n\nBody\n",
        "---\ntitle: Only a title\n---\n\nBody\n",
        "title: MultiMarkdown\nauthor: me\n\nBody\n",
        "---\n\n---\nBody after an empty block\n",
        "---\n{}\n---\nBody\n",
    ],
    ids=["example", "none", "yaml", "multimarkdown", "empty-block", "empty-mapping"],
)
def test_read_front_matter_matches_mkdocs_on_good_input(text: str) -> None:
    assert read_front_matter(text, SRC) == get_data(text)


def test_read_front_matter_normalises_crlf_and_bom() -> None:
    body, meta = read_front_matter("\ufeff" + EXAMPLE.replace("\n", "\r\n"), SRC)
    assert (body, meta) == get_data(EXAMPLE)
