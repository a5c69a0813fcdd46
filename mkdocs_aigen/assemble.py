"""Putting generated sections into a page's Markdown.

Pure text functions: cleaning one model answer into a section body, writing a section's
heading, a visible placeholder for a section that failed, and splicing the rendered sections
into the page where the author put the marker. The page text the author wrote is never
rewritten. This module knows nothing of MkDocs, the engine or the backends.

Headings and fenced code are found by :mod:`mkdocs_aigen.markdown_model`, as Python-Markdown
renders them: a heading shown inside code is never acted on.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mkdocs_aigen.markdown_model import (
    DEEPEST_LEVEL,
    closes_fence,
    fence_blocks,
    fenced_lines,
    heading_line,
    headings,
    is_blank,
)
from mkdocs_aigen.markers import MARKER, MarkerError, find_marker, insert_block

__all__ = [
    "MARKER",
    "MarkerError",
    "RenderedSection",
    "clean_section_text",
    "count_words",
    "find_marker",
    "heading_line",
    "insert_block",
    "placeholder",
]

#: Server error text is cut to this many characters in a placeholder.
_MAX_ERROR_CHARS = 300

#: A model wrapping its whole answer in a Markdown code block.
_WRAPPER_RE = re.compile(r"(?P<fence>`{3,}|~{3,})[ \t]*(?:markdown|md)?[ \t]*", re.IGNORECASE)
# Markdown that carries no words, for count_words.
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_IMAGE_RE = re.compile(r"!\[[^\]]*\]\((?:[^()]|\([^()]*\))*\)")
_INLINE_LINK_RE = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)")
_REF_LABEL_RE = re.compile(r"\]\[[^\]]*\]")
_REF_DEF_RE = re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*\S+.*$", re.MULTILINE)
_TAG_RE = re.compile(r"</?[A-Za-z][^<>]*>|<[A-Za-z][\w+.-]*:[^<>\s]*>")
_BARE_URL_RE = re.compile(r"(?:https?|ftp)://\S+|www\.\S+", re.IGNORECASE)
_ATTR_LIST_RE = re.compile(r"\{:?[ \t]*[#.:][^}\n]*\}")
_BLOCK_MARK_RE = re.compile(r"^[ \t>]*(?:[-*+]|\d+[.)]|[!?]{3}\+?[ \t]+[\w-]+)[ \t]+", re.MULTILINE)
#: A letter or digit: ``[^\W_]`` matches exactly the characters of ``str.isalnum``.
_ALNUM_RE = re.compile(r"[^\W_]")
#: What a list, quote or admonition marker (``_BLOCK_MARK_RE``) starts with, besides digits.
_BLOCK_START = frozenset("-*+!?")

#: Characters written as entities in a placeholder: Markdown syntax of the base language and
#: of common extensions (tilde, caret, mark, keys, emoji, math, magiclink), plus HTML.
_PLACEHOLDER_SPECIAL = frozenset("\\`*_{}[]<>&!#|~^=+:$@")


@dataclass(frozen=True)
class RenderedSection:
    """One generated section, ready to be written into the page."""

    #: Markdown heading level, 2..6.
    level: int
    title: str
    #: Cleaned Markdown body without its own heading (see :func:`clean_section_text`).
    body: str


# Cleaning a model's answer -------------------------------------------------------------------


def clean_section_text(text: str, level: int, title: str) -> str:
    """Turn a model's answer for a section at ``level`` into the section's body.

    * strips surrounding whitespace and one code fence wrapped around the whole answer
      (```` ```markdown ````, ```` ```md ````, bare ```` ``` ````), never a fence that is only
      part of the text;
    * drops a heading that opens the answer at ``level`` or above (the model repeating the
      section's heading, whatever its wording), or deeper when it repeats ``title``;
    * demotes any other heading at ``level`` or above to ``level + 1`` (at most 6), setext
      headings (``===``/``---`` underlines) included, so it stays inside the section; deeper
      headings are kept;
    * closes a fenced code block left open and collapses runs of blank lines to one.

    Nothing inside fenced code is changed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    lines = _unwrap_fence(text.split("\n"))
    blocks = fence_blocks(lines, close_open=True)
    if blocks and blocks[-1].stop is None:
        lines.append(blocks[-1].indent + blocks[-1].fence)
    lines = _fix_headings(lines, level, title)
    lines = _collapse_blank_lines(lines)
    return "\n".join(lines).strip()


def _unwrap_fence(lines: list[str]) -> list[str]:
    """Remove one fence around the whole answer, if that is certainly what it is."""
    if len(lines) < 2:
        return lines
    m = _WRAPPER_RE.fullmatch(lines[0].strip())
    if m is None or not closes_fence(lines[-1], m.group("fence")):
        return lines
    fence = m.group("fence")
    inner = lines[1:-1]
    blocks = fence_blocks(inner, close_open=True)
    if blocks and blocks[-1].stop is None:
        return lines  # e.g. "```md\nA\n```\ntext\n```md\nB\n```": two blocks, not one wrapper
    for block in blocks:
        # A bare inner fence that could close the outer one makes the reading ambiguous:
        # "```\ncode\n```\ntext\n```\ncode\n```" is two code blocks with text between.
        if block.fence[0] == fence[0] and len(block.fence) >= len(fence) and not block.info.strip():
            return lines
    return "\n".join(inner).strip().split("\n")


def unwrap_markdown_fence(text: str) -> str:
    """``text`` without one ```markdown fence around the whole of it (see ``_unwrap_fence``)."""
    return "\n".join(_unwrap_fence(text.strip().split("\n"))).strip()


def _fix_headings(lines: list[str], level: int, title: str) -> list[str]:
    """Drop the opening repeat of the section heading; demote headings that would escape."""
    demoted = "#" * min(level + 1, DEEPEST_LEVEL)
    # Headings inside a list item stay where they are: rewriting the line would lose the item.
    found = {h.line: h for h in headings(lines, close_open=True) if h.top}
    out: list[str] = []
    i = 0
    while i < len(lines):
        heading = found.get(i)
        if heading is None:
            out.append(lines[i])
            i += 1
            continue
        if i == 0 and (heading.level <= level or _same_title(heading.text, title)):
            i += heading.size  # the model's copy of the section heading
            continue
        if heading.level <= level:
            out.append(f"{demoted} {heading.text}".rstrip())
        else:
            out.extend(lines[i : i + heading.size])
        i += heading.size
    return out


def _same_title(text: str, title: str) -> bool:
    """Whether a heading's text is, give or take wording and markup, the section title."""
    a, b = _normalise_title(text), _normalise_title(title)
    if a == b:
        return True
    import difflib  # only a reworded title pays for it; a cached build never does

    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def _normalise_title(text: str) -> str:
    text = re.sub(r"#+\s*$", "", text)  # closing hashes of an ATX heading
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def _collapse_blank_lines(lines: list[str]) -> list[str]:
    """Runs of blank lines outside fenced code become a single empty line."""
    in_fence = fenced_lines(lines)
    out: list[str] = []
    for line, fenced in zip(lines, in_fence, strict=True):
        if fenced or not is_blank(line):
            out.append(line)
        elif not out or out[-1] != "":
            out.append("")
    return out


# Writing sections ----------------------------------------------------------------------------


def placeholder(title: str, error: str) -> str:
    """Visible Markdown standing in for a section that could not be generated.

    A one-line blockquote, so it reads the same with or without the ``admonition``
    extension. ``title`` and ``error`` (which comes from a server) are flattened to one line,
    the error is shortened, and every Markdown or HTML special character is written as an
    entity so neither can inject markup.
    """
    name = _one_line(title) or "untitled section"
    reason = _one_line(error) or "unknown error"
    if len(reason) > _MAX_ERROR_CHARS:
        reason = reason[: _MAX_ERROR_CHARS - 1].rstrip() + "…"
    return (
        f"> **Not generated: {_escape_inline(name)}{_full_stop(name)}** "
        f"{_escape_inline(reason)}{_full_stop(reason)} "
        "The build reported this section as a warning; rebuild to retry."
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _full_stop(text: str) -> str:
    return "" if text.endswith((".", "!", "?", "…")) else "."


def _escape_inline(text: str) -> str:
    """Entities for specials: unlike backslashes they work for every extension's syntax."""
    return "".join(f"&#{ord(ch)};" if ch in _PLACEHOLDER_SPECIAL else ch for ch in text)


def _render(section: RenderedSection) -> str:
    # Imported here: a page served whole from the page cache is never rendered again.
    from mkdocs_aigen.sanitize import close_open_fences

    heading = heading_line(section.level, section.title)
    # Close an open fence so it cannot run into the next section or the author's text.
    body = close_open_fences(_trim_blank_lines(section.body))
    return f"{heading}\n\n{body}\n\n" if body else f"{heading}\n\n"


def _trim_blank_lines(text: str) -> str:
    """Drop blank lines around ``text`` but keep the first line's indentation."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and is_blank(lines[0]):
        lines.pop(0)
    while lines and is_blank(lines[-1]):
        lines.pop()
    return "\n".join(line.rstrip() if is_blank(line) else line for line in lines).rstrip()


# Counting words ------------------------------------------------------------------------------


def count_words(text: str) -> int:
    """Words of prose in Markdown ``text``.

    Fenced code, HTML comments and tags, images, link URLs and reference definitions, bare
    URLs, attribute lists and list/quote/admonition markers do not count; a link counts its
    text. A word is a whitespace-separated token with at least one letter or digit, so
    Markdown punctuation (``##``, ``|``, ``---``, ``**``) never counts.
    """
    # Each scan below runs only when the text holds what it looks for: on plain prose they
    # cost more than the rest together, and a cached rebuild counts every section. One
    # character first: finding it is ~20x cheaper than finding a longer string.
    prose = text.replace("\r\n", "\n").replace("\r", "\n")
    if ("`" in prose or "~" in prose) and ("```" in prose or "~~~" in prose):
        lines = prose.split("\n")
        in_fence = fenced_lines(lines)
        prose = "\n".join(line for line, fenced in zip(lines, in_fence, strict=True) if not fenced)
    if "<" in prose and "<!--" in prose:
        prose = _COMMENT_RE.sub(" ", prose)
    if "]" in prose:
        if "]:" in prose:
            prose = _REF_DEF_RE.sub(" ", prose)
        if "![" in prose:
            prose = _IMAGE_RE.sub(" ", prose)
        if "](" in prose:
            prose = _INLINE_LINK_RE.sub(r" \1 ", prose)
        if "][" in prose:
            prose = _REF_LABEL_RE.sub("] ", prose)
    if "<" in prose:
        prose = _TAG_RE.sub(" ", prose)
    if "://" in prose or "www." in prose.lower():
        prose = _BARE_URL_RE.sub(" ", prose)
    if "{" in prose:
        prose = _ATTR_LIST_RE.sub(" ", prose)
    if any(_may_open_block(line) for line in prose.split("\n")):
        prose = _BLOCK_MARK_RE.sub(" ", prose)
    prose = html.unescape(prose)
    # Tokens with a letter or digit; ``isalnum`` (one C call) settles nearly every token,
    # the regex only the rest (the old per-character test was most of a cached section).
    tokens = prose.split()
    return len(tokens) - sum(
        1 for token in tokens if not token.isalnum() and _ALNUM_RE.search(token) is None
    )


def _may_open_block(line: str) -> bool:
    """Whether ``_BLOCK_MARK_RE`` could match at the start of ``line``."""
    first = line.lstrip(" \t>")[:1]
    return first in _BLOCK_START or first.isdecimal()


# Blocks: the plugin's unit of assembly ----------------------------------------------------------


def render_sections(sections: Sequence[RenderedSection]) -> str:
    """The generated block of a page: each section's heading and body, in order."""
    return "".join(_render(section) for section in sections)


def heading_lines(text: str) -> list[str]:
    """Every heading of ``text`` as Python-Markdown renders it, normalised (for polish checks)."""
    lines = text.replace("\r\n", "\n").split("\n")
    return [f"{'#' * h.level} {' '.join(h.text.split())}" for h in headings(lines)]
