"""Tests for mkdocs_aigen.assemble: cleaning model answers and splicing sections into pages."""

from __future__ import annotations

from html.parser import HTMLParser

import markdown
import pytest

from mkdocs_aigen.assemble import (
    MARKER,
    MarkerError,
    RenderedSection,
    clean_section_text,
    count_words,
    find_marker,
    heading_line,
    insert_block,
    placeholder,
    render_sections,
)


def assemble(page: str, sections: list[RenderedSection], src_path: str) -> str:
    """What the plugin does with a page's sections: render them, put them at the marker."""
    return insert_block(page, render_sections(sections), src_path)


# ---------------------------------------------------------------------------------------------
# find_marker


def test_find_marker_returns_line_index() -> None:
    assert find_marker(f"# Page\n\nIntro\n\n{MARKER}\n\nOutro\n", "p.md") == 4


def test_find_marker_absent() -> None:
    assert find_marker("# Page\n\nNo marker here.\n", "p.md") is None
    assert find_marker("", "p.md") is None


def test_find_marker_allows_surrounding_whitespace() -> None:
    assert find_marker(f"Intro\n   {MARKER}\t\n", "p.md") == 1


def test_marker_inside_a_line_does_not_count() -> None:
    assert find_marker(f"Put {MARKER} on a line of its own.\n", "p.md") is None


@pytest.mark.parametrize(
    "page",
    [
        f"# Usage\n\n```markdown\n{MARKER}\n```\n",
        f"# Usage\n\n~~~\n{MARKER}\n~~~\n",
        f"# Usage\n\n1. Add:\n\n    ```md\n    {MARKER}\n    ```\n",
        f"# Usage\n\n````\n```\n{MARKER}\n```\n````\n",
    ],
    ids=["backticks", "tildes", "indented", "nested"],
)
def test_marker_in_fenced_code_is_ignored(page: str) -> None:
    assert find_marker(page, "usage.md") is None


def test_marker_after_a_fence_never_closed_counts() -> None:
    # superfences renders an opener without its closer as text, so the marker below it is a
    # hidden HTML comment on the page: the author's marker, not code.
    assert find_marker(f"# Usage\n\n```\nnever closed\n{MARKER}\n", "usage.md") == 4


def test_marker_in_code_and_outside_it() -> None:
    page = f"```\n{MARKER}\n```\n\n{MARKER}\n"
    assert find_marker(page, "p.md") == 4


def test_marker_twice_names_both_lines() -> None:
    page = f"# Page\n\n{MARKER}\n\ntext\n\n{MARKER}\n"
    with pytest.raises(MarkerError) as caught:
        find_marker(page, "guide/page.md")
    message = str(caught.value)
    assert message.startswith("guide/page.md: ")
    assert "lines 3 and 7" in message
    assert caught.value.src_path == "guide/page.md"


def test_marker_three_times_names_all_lines() -> None:
    with pytest.raises(MarkerError, match="lines 1, 2 and 3"):
        find_marker(f"{MARKER}\n{MARKER}\n{MARKER}\n", "p.md")


# ---------------------------------------------------------------------------------------------
# assemble

SECTIONS = [
    RenderedSection(2, "Overview", "What it does."),
    RenderedSection(3, "Details", "More text.\n\n- a\n- b"),
]
SECTIONS_TEXT = "## Overview\n\nWhat it does.\n\n### Details\n\nMore text.\n\n- a\n- b\n"


def test_marker_is_replaced_in_place() -> None:
    page = f"# Title\n\nIntro.\n\n{MARKER}\n\nOutro.\n"
    assert assemble(page, SECTIONS, "p.md") == f"# Title\n\nIntro.\n\n{SECTIONS_TEXT}\nOutro.\n"


def test_hand_written_text_is_kept_byte_for_byte() -> None:
    before = "# Title  \n\n<div markdown>\nIntro\twith\ttabs  \n</div>\n\n\n"
    after = "\n\nOutro with trailing spaces   \n\n\n<!-- note -->"
    result = assemble(before + MARKER + "\n" + after, SECTIONS, "p.md")
    assert result.startswith(before)
    assert result.endswith(after)
    assert result == before + SECTIONS_TEXT + after


def test_blank_lines_are_added_around_sections_when_missing() -> None:
    page = f"Intro.\n{MARKER}\nOutro.\n"
    assert assemble(page, SECTIONS, "p.md") == f"Intro.\n\n{SECTIONS_TEXT}\nOutro.\n"


def test_marker_on_the_last_line() -> None:
    assert assemble(f"Intro.\n\n{MARKER}", SECTIONS, "p.md") == f"Intro.\n\n{SECTIONS_TEXT}"
    assert assemble(f"Intro.\n\n{MARKER}\n", SECTIONS, "p.md") == f"Intro.\n\n{SECTIONS_TEXT}"


def test_marker_on_the_first_line() -> None:
    assert assemble(f"{MARKER}\n\nOutro.\n", SECTIONS, "p.md") == f"{SECTIONS_TEXT}\nOutro.\n"


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("# Title\n\nIntro.", f"# Title\n\nIntro.\n\n{SECTIONS_TEXT}"),
        ("# Title\n\nIntro.\n", f"# Title\n\nIntro.\n\n{SECTIONS_TEXT}"),
        ("# Title\n\nIntro.\n\n", f"# Title\n\nIntro.\n\n{SECTIONS_TEXT}"),
        ("", SECTIONS_TEXT),
    ],
    ids=["no-newline", "newline", "blank-line", "empty"],
)
def test_no_marker_appends_after_the_body(page: str, expected: str) -> None:
    result = assemble(page, SECTIONS, "p.md")
    assert result == expected
    assert result.startswith(page)


def test_marker_in_code_is_not_replaced() -> None:
    page = f"# Usage\n\n```\n{MARKER}\n```\n"
    result = assemble(page, SECTIONS, "usage.md")
    assert result == page + "\n" + SECTIONS_TEXT


def test_section_with_empty_body_is_just_its_heading() -> None:
    sections = [RenderedSection(2, "Empty", "  \n"), RenderedSection(2, "Full", "Text.")]
    assert assemble(MARKER, sections, "p.md") == "## Empty\n\n## Full\n\nText.\n"


def test_sections_keep_the_given_order() -> None:
    sections = [RenderedSection(2, t, "x") for t in ("B", "A", "C")]
    result = assemble(MARKER, sections, "p.md")
    assert result.index("## B") < result.index("## A") < result.index("## C")


def test_no_sections() -> None:
    assert assemble(f"Intro.\n{MARKER}\nOutro.\n", [], "p.md") == "Intro.\nOutro.\n"
    assert assemble("Intro.\n", [], "p.md") == "Intro.\n"


def test_open_fence_in_a_body_cannot_swallow_the_page() -> None:
    sections = [RenderedSection(2, "Code", "```python\nprint(1)")]
    result = assemble(f"{MARKER}\n\nOutro.\n", sections, "p.md")
    assert result == "## Code\n\n```python\nprint(1)\n```\n\nOutro.\n"


def test_assemble_rejects_two_markers() -> None:
    with pytest.raises(MarkerError):
        assemble(f"{MARKER}\n{MARKER}\n", SECTIONS, "p.md")


# ---------------------------------------------------------------------------------------------
# heading_line


def test_heading_line() -> None:
    assert heading_line(2, "Overview") == "## Overview"
    assert heading_line(6, "  Deep\n title ") == "###### Deep title"


def test_heading_line_keeps_a_trailing_hash() -> None:
    assert heading_line(2, "Using C#") == "## Using C\\#"
    assert "Using C#</h2>" in markdown.markdown(heading_line(2, "Using C#"))


@pytest.mark.parametrize("level", [0, 7])
def test_heading_line_rejects_bad_levels(level: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.6"):
        heading_line(level, "x")


# ---------------------------------------------------------------------------------------------
# clean_section_text


def test_clean_strips_whitespace() -> None:
    assert clean_section_text("\n\n  Text.  \n\n", 2, "T") == "Text."


@pytest.mark.parametrize(
    "answer",
    [
        "```markdown\nSome *text*.\n\n- item\n```",
        "```md\nSome *text*.\n\n- item\n```",
        "```Markdown\nSome *text*.\n\n- item\n```",
        "```\nSome *text*.\n\n- item\n```",
        "~~~md\nSome *text*.\n\n- item\n~~~",
        "  ```markdown\nSome *text*.\n\n- item\n```  ",
    ],
)
def test_wrapping_fence_is_removed(answer: str) -> None:
    assert clean_section_text(answer, 2, "T") == "Some *text*.\n\n- item"


def test_wrapping_fence_with_code_inside_is_removed() -> None:
    answer = "```markdown\nRun this:\n\n```python\nprint(1)\n```\n\nDone.\n```"
    assert clean_section_text(answer, 2, "T") == "Run this:\n\n```python\nprint(1)\n```\n\nDone."


@pytest.mark.parametrize(
    "answer",
    [
        "Intro.\n\n```md\n# Example\n```",
        "```python\nprint(1)\n```",
        "```md\nA\n```\n\nText between.\n\n```md\nB\n```",
        "```\na = 1\n```\nText between.\n```\nb = 2\n```",
    ],
    ids=["fence-after-text", "code-language", "two-md-blocks", "two-bare-blocks"],
)
def test_fence_that_is_only_part_of_the_text_is_kept(answer: str) -> None:
    assert clean_section_text(answer, 2, "T") == answer


@pytest.mark.parametrize(
    "answer",
    [
        "## Overview\n\nText.",
        "# Overview\n\nText.",
        "## An overview of the plugin\n\nText.",
        "## Overview ##\n\nText.",
        "##Overview\n\nText.",
        "Overview\n========\n\nText.",
        "Overview\n--------\n\nText.",
        "### Overview\n\nText.",
    ],
)
def test_own_heading_is_dropped(answer: str) -> None:
    assert clean_section_text(answer, 2, "Overview") == "Text."


def test_only_one_leading_heading_is_dropped() -> None:
    answer = "## Overview\n## Overview again\n\nText."
    assert clean_section_text(answer, 2, "Overview") == "### Overview again\n\nText."


def test_deeper_leading_heading_with_other_text_is_kept() -> None:
    answer = "### Prerequisites\n\nText."
    assert clean_section_text(answer, 2, "Installation") == answer


def test_inner_heading_at_section_level_is_demoted() -> None:
    answer = "Intro.\n\n## Inner\n\nText.\n\n# Top\n\nMore."
    expected = "Intro.\n\n### Inner\n\nText.\n\n### Top\n\nMore."
    assert clean_section_text(answer, 2, "Section") == expected


def test_deeper_heading_is_kept() -> None:
    answer = "Intro.\n\n### Deeper\n\n#### Deepest\n\nText."
    assert clean_section_text(answer, 2, "Section") == answer


def test_demotion_follows_the_section_level() -> None:
    answer = "Intro.\n\n### Same\n\n#### Deeper"
    assert clean_section_text(answer, 3, "S") == "Intro.\n\n#### Same\n\n#### Deeper"
    assert clean_section_text("Intro.\n\n## X", 6, "S") == "Intro.\n\n###### X"


def test_setext_headings_are_demoted() -> None:
    answer = "Intro.\n\nInner\n=====\n\nText.\n\nOther\n-----\n\nMore."
    expected = "Intro.\n\n### Inner\n\nText.\n\n### Other\n\nMore."
    assert clean_section_text(answer, 2, "Section") == expected


def test_thematic_break_is_not_a_heading() -> None:
    answer = "Intro.\n\n---\n\nText.\nmore\n---"
    assert clean_section_text(answer, 2, "Section") == answer


def test_list_line_over_an_underline_is_a_heading() -> None:
    # Python-Markdown reads the setext heading before the list: <h2>- item</h2>.
    answer = "Intro.\n\n- item\n---"
    assert clean_section_text(answer, 2, "Section") == "Intro.\n\n### - item"


def test_headings_in_fenced_code_are_untouched() -> None:
    answer = "Intro.\n\n```bash\n# comment\n## another\n```\n\n~~~md\nTitle\n=====\n~~~"
    assert clean_section_text(answer, 2, "Section") == answer


def test_blank_lines_are_collapsed_outside_code() -> None:
    answer = "A.\n\n\n\nB.\n\n\n\n\nC.\n\n```\nx\n\n\n\ny\n```"
    assert clean_section_text(answer, 2, "S") == "A.\n\nB.\n\nC.\n\n```\nx\n\n\n\ny\n```"


def test_open_fence_is_closed() -> None:
    assert clean_section_text("Run:\n\n```bash\nmake", 2, "S") == "Run:\n\n```bash\nmake\n```"


def test_crlf_answers_are_normalised() -> None:
    assert clean_section_text("## S\r\n\r\nA.\r\n## B\r\n", 2, "S") == "A.\n### B"


# ---------------------------------------------------------------------------------------------
# placeholder


class _TagNames(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html_text: str) -> _TagNames:
    parser = _TagNames()
    parser.feed(html_text)
    return parser


def test_placeholder_content() -> None:
    text = placeholder("Overview", "Server said no")
    assert text == (
        "> **Not generated: Overview.** Server said no. "
        "The build reported this section as a warning; rebuild to retry."
    )


@pytest.mark.parametrize("extensions", [[], ["admonition", "attr_list", "md_in_html", "tables"]])
def test_placeholder_escapes_title_and_error(extensions: list[str]) -> None:
    title = "Use *this* <b>now</b> [x](y) `c` {: onclick=x }"
    error = '<script>alert(1)</script> 503: "_busy_" ~~gone~~ &amp; [link](javascript:x)'
    html_text = markdown.markdown(placeholder(title, error), extensions=extensions)
    parsed = _parse(html_text)
    # Only the blockquote, its paragraph and the bold lead-in are markup.
    assert parsed.tags == ["blockquote", "p", "strong"]
    shown = "".join(parsed.text)
    assert f"Not generated: {title}." in shown
    assert f"{error}." in shown


def test_placeholder_flattens_and_shortens_the_error() -> None:
    text = placeholder("T", "line one\nline two\n\n" + "x" * 1000)
    assert "\n" not in text
    assert "line one line two" in text
    assert len(text) < 500
    assert "…" in text


def test_placeholder_does_not_double_the_full_stop() -> None:
    text = placeholder("Why?", "Timed out.")
    assert "Why?**" in text
    assert "Timed out. The build" in text


def test_placeholder_without_error_text() -> None:
    assert "unknown error." in placeholder("T", "   ")


def test_placeholder_reads_as_a_blockquote_in_a_page() -> None:
    section = RenderedSection(2, "Overview", placeholder("Overview", "boom"))
    html_text = markdown.markdown(assemble(MARKER, [section], "p.md"))
    assert html_text.startswith("<h2>Overview</h2>\n<blockquote>\n<p><strong>Not generated")


# ---------------------------------------------------------------------------------------------
# count_words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("One two three.", 3),
        ("## Heading words\n\nBody text here.", 5),
        ("Some **bold** and _em_ and `code`.", 6),
        ("See [the docs](https://example.com/a/very/long/path?q=1) now.", 4),
        ("![an image](https://example.com/x.png) caption", 1),
        ("Visit https://example.com/x today.", 2),
        ("<https://example.com> and <user@example.com>", 1),
        ("[ref text][id]\n\n[id]: https://example.com", 2),
        ("Text.\n\n```python\nnot = counted + at_all\n```\n\n~~~\nnor this\n~~~", 1),
        ("- one\n- two\n1. three\n> four", 4),
        ("| a | b |\n|---|---|\n| c | d |", 4),
        ("---\n***\n## \n|", 0),
        ("It's mkdocs-aigen, e.g. v1.6 &amp; more", 5),
        ('!!! note "Read me"\n    Body.', 3),
        ("<!-- hidden words --> shown <b>bold</b>", 2),
        ("Title {: #id .cls }", 1),
        ("", 0),
    ],
)
def test_count_words(text: str, words: int) -> None:
    assert count_words(text) == words


# ---------------------------------------------------------------------------------------------
# The cleaner and the polish check read headings as Python-Markdown renders them


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # Indented by 1-3 spaces: Python-Markdown renders a paragraph, so nothing to demote.
        ("Intro.\n\n   ## Not a heading", "Intro.\n\n   ## Not a heading"),
        # A fence indented more than the next line is abandoned: "## X" is a real heading.
        ("Intro.\n\n  ```\n## X\n  ```", "Intro.\n\n  ```\n### X\n  ```\n  ```"),
        # "##X" is a heading to Python-Markdown.
        ("Intro.\n\n##X", "Intro.\n\n### X"),
        # A longer run does not close a superfences block: the heading after it is real.
        (
            "Intro.\n\n~~~~\ncode\n~~~~~\n\n## Y\n\n~~~~",
            "Intro.\n\n~~~~\ncode\n~~~~~\n\n## Y\n\n~~~~",
        ),
    ],
    ids=["indented-atx", "abandoned-fence", "no-space", "longer-closer-open"],
)
def test_cleaner_follows_the_renderer(answer: str, expected: str) -> None:
    assert clean_section_text(answer, 2, "Section") == expected


def test_heading_lines_sees_what_the_renderer_sees() -> None:
    from mkdocs_aigen.assemble import heading_lines

    text = "##X\n\nTitle\n=====\n\n   ## not one\n\n```\n## code\n```\n\n- a\n\n    ## In item"
    assert heading_lines(text) == ["## X", "# Title", "## In item"]


def test_polish_check_accepts_the_same_headings_written_differently() -> None:
    from mkdocs_aigen.pipeline import _polish_problem

    before = "## Setup\n\nText.\n\n## Usage\n\nMore."
    assert _polish_problem(before, "Setup\n-----\n\nBetter text.\n\n##Usage\n\nMore.") is None
    assert _polish_problem(before, "## Setup\n\nText.\n\n   ## Usage\n\nMore.") is not None
