"""The Markdown model against the real renderer: Python-Markdown with MkDocs' usual extensions.

Every case renders the text with ``markdown.markdown`` and compares the headings (and code)
the HTML has with what :mod:`mkdocs_aigen.markdown_model` finds.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mkdocs_aigen.markdown_model import fence_blocks, fenced_lines, headings

markdown = pytest.importorskip("markdown")
pytest.importorskip("pymdownx.superfences")

EXTENSIONS = ["toc", "pymdownx.superfences", "attr_list", "md_in_html"]
_H_RE = re.compile(r"<h([1-6])\b[^>]*>(.*?)</h\1>", re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
_CODE_RE = re.compile(r'<div class="highlight">.*?</div>', re.DOTALL)


def rendered_headings(text: str) -> list[tuple[int, str]]:
    """``(level, text)`` of every ``<h1>``..``<h6>`` the renderer writes for ``text``."""
    html = markdown.markdown(text, extensions=EXTENSIONS)
    # A heading can hold a whole code block (setext under a fence): the code is not its text.
    html = _CODE_RE.sub("", html)
    return [(int(level), _TAG_RE.sub("", inner).strip()) for level, inner in _H_RE.findall(html)]


def model_headings(text: str) -> list[tuple[int, str]]:
    lines = text.split("\n")
    return [(h.level, _plain(h.text)) for h in headings(lines)]


def _plain(text: str) -> str:
    # The renderer's text has inline Markdown rendered and attr lists applied; compare the
    # words that are left.
    text = re.sub(r"\s*\{[^}]*\}\s*$", "", text)
    return text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "##X",  # Python-Markdown needs no space after the hashes
        "## X",
        "   ## X",  # indented: a paragraph, not a heading
        "    ## X",  # indented code
        "text\n## X",  # a heading interrupts a paragraph
        "Title\n=====",
        "Title\n---",
        "Title\n===  ",
        "Title\n  ===",  # an indented underline is text
        "- item\n---",  # the list line becomes the heading's text
        "1. item\n---",
        "text\nmore\n---",  # a rule: setext takes the first line of a block only
        "a\nb\n---\nc\n===",  # ... and the text after a rule starts a block
        "## A\nTitle\n---",
        "## X ##",
        "####### X",  # h6 "# X"
        "```\n## X\n```",
        "~~~\n## X\n~~~",
        "````\n```\n## X\n````\n## Y",  # a shorter run inside is content
        "~~~~\n## X\n~~~~~\n## Y",  # a longer run does not close: nothing is code
        "```\n## X",  # unclosed: not code
        "   ```\n## X\n```\n## Y",  # a line indented less abandons the fence
        "  ```\n  ## X\n\n  ```\n## Y",  # indented fence, closed at its indentation
        "```\n## A\n   ```\n## B",  # an indented closer is content, so never closed
        "- item\n\n    ```\n    ## X\n    ```\n## Y",  # a fence in a list item
        "- item\n    ```\n    ## X\n    ```\n## Y",
        "- a\n\n    ## X",  # a heading in a list item's continuation
        "- a\n\n        ## X",  # ... and code one level further in
        "para\n\n    ## X",
        "text\n```\n## X\n```",  # a fence inside a paragraph
        "```python\n## X\n```",
        "``` {.py}\n#a\n```",
        "```foo bar\n## X\n```",  # unknown words: not a fence
        "## A {#id}",
        "\t## X",  # a tab is four spaces: code
    ],
)
def test_headings_match_the_renderer(text: str) -> None:
    assert model_headings(text) == rendered_headings(text)


def test_fence_blocks_follow_superfences() -> None:
    lines = ["```", "## X", "````", "```", "text", "  ~~~", "  a", "", "  ~~~"]
    blocks = fence_blocks(lines)
    assert [(b.start, b.stop) for b in blocks] == [(0, 4), (5, 9)]
    assert fenced_lines(["```", "a"]) == [False, False]
    assert fenced_lines(["```", "a"], close_open=True) == [True, True]


# Documents built from a small alphabet of line kinds ------------------------------------------

_WORDS = st.sampled_from(["Alpha", "beta two", "Gamma"])
_LINE_KINDS = st.one_of(
    st.builds(lambda n, w: "#" * n + " " + w, st.integers(1, 7), _WORDS),  # ATX
    st.builds(lambda n, w: "#" * n + w, st.integers(1, 3), _WORDS),  # ATX without a space
    st.builds(lambda s, w: " " * s + "## " + w, st.integers(1, 4), _WORDS),  # indented ATX
    st.sampled_from(["===", "---", "=====", "-----", "===  "]),  # setext underlines / rules
    st.builds(
        lambda c, n, s, info: " " * s + c * n + info,
        st.sampled_from("`~"),
        st.integers(3, 5),
        st.sampled_from([0, 0, 2, 4]),
        st.sampled_from(["", "", "python", " {.md}"]),
    ),  # fences
    st.builds(lambda s, w: " " * s + w, st.sampled_from([2, 4, 8]), _WORDS),  # indented text
    st.builds(lambda m, w: m + " " + w, st.sampled_from(["-", "*", "1."]), _WORDS),  # list items
    st.just(""),
    st.just(""),
    _WORDS,  # text
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE_KINDS, min_size=1, max_size=12))
def test_generated_documents_match_the_renderer(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert model_headings(text) == rendered_headings(text), text
