"""Where Markdown has fenced code and headings, as MkDocs renders it.

One model of the block structure, shared by everything that looks at Markdown lines: the
cleaner of model answers, the polish check, the marker search and the sanitiser. It follows
Python-Markdown with the extensions MkDocs sites enable (``pymdownx.superfences``, ``toc``,
``attr_list``, ``md_in_html``), not CommonMark, where the two differ:

* a fence (three or more backticks or tildes) may be indented, also inside list items; it is
  closed only by the *identical* fence at the opener's indentation (a longer run is content),
  a content line indented less than the opener abandons it, and an opener never closed is
  plain text (:func:`fence_blocks`);
* ``#Title`` is a heading, ``  # Title`` (indented) is not, and a heading may follow a
  paragraph line directly;
* a setext underline (``===``/``---``, any length, at column 0) makes a heading of the first
  line of a block only; ``- item`` and ``1. item`` above one become headings too;
* a block indented by four spaces is code, unless it continues a list, whose content is then
  parsed again one level in (a heading there is found with ``top=False``); superfences puts
  a fenced block inside an indented code block back as plain lines.

Not modelled (treated as text): blockquotes and raw HTML blocks. The tests compare this
module with the real renderer, on fixed cases and on generated documents.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

__all__ = [
    "DEEPEST_LEVEL",
    "FenceBlock",
    "Heading",
    "closes_fence",
    "fence_blocks",
    "fenced_lines",
    "heading_line",
    "headings",
    "is_blank",
    "strict_fence_blocks",
]

#: Python-Markdown expands tabs to this width before it parses blocks.
TAB_LENGTH = 4
#: HTML has headings h1 to h6 only.
DEEPEST_LEVEL = 6

#: Each pattern below is compiled on first use, then kept: compiling all of them took about
#: 1 ms of every build's start, and a cached rebuild of pages without fences needs none.
_compiled = functools.cache(re.compile)

# pymdownx.superfences' opening line: fence, optional language, then ``{attrs}`` or options.
_OPEN = (
    r"(?P<fence>~{3,}|`{3,})"
    r"(?:[ \t]*\.?(?P<lang>[\w#.+-]+)(?=[\t ]|$))?"
    r"(?:[ \t]*\{(?P<attrs>[^\n]*)\}"
    r"|(?P<options>(?:[ \t]*[a-zA-Z][a-zA-Z0-9_]*(?:=(?P<quot>\"|').*?(?P=quot))?(?=[\t ]|$))+)"
    r"|(?P<unrecognized>(?:[ \t]*[^\s]+(?=[\t ]|$))+))?"
    r"[ \t]*"
)
_OPTION_KEY = r"([a-zA-Z][a-zA-Z0-9_]*)(?:=(\"|').*?\2)?"
#: Options superfences accepts on a fence line; any other word makes the line plain text.
_KNOWN_OPTIONS = frozenset({"hl_lines", "linenums", "title"})

# Python-Markdown's HashHeaderProcessor, line by line; trailing hashes close the heading.
_ATX = r"(?P<hashes>#{1,6})(?P<text>(?:\\.|[^\\])*?)#*"
_SETEXT = r"[=-]+[ ]*"
_HR = r"[ ]{0,3}(?:(?:-+[ ]{0,2}){3,}|(?:_+[ ]{0,2}){3,}|(?:\*+[ ]{0,2}){3,})[ ]*"
_LIST_ITEM = r"[ ]{0,3}(?:[*+-]|\d+\.)[ ]+"
_CHILD = r"[ ]{0,3}(?:\d+\.|[*+-])[ ]+(?P<rest>.*)"
_NESTED_ITEM = r"[ ]{4,7}(?:\d+\.|[*+-])[ ]+"


class FenceBlock(NamedTuple):
    """A fenced code block by line index; ``stop`` is ``None`` for one left open at the end."""

    start: int
    stop: int | None
    indent: str
    fence: str
    info: str


class Heading(NamedTuple):
    """A heading: its first line, how many lines it spans (2 for setext), level and text."""

    line: int
    size: int
    level: int
    text: str
    #: Outside any list: the line is the heading itself (a list item's heading is not).
    top: bool = True


def is_blank(line: str) -> bool:
    """Whether ``line`` holds nothing but whitespace."""
    return not line.strip()


def closes_fence(line: str, fence: str) -> bool:
    """Whether ``line`` (indentation aside) is exactly ``fence``, then spaces or tabs."""
    return line.strip(" \t") == fence


def _indent_width(indent: str) -> int:
    return len(indent.expandtabs(TAB_LENGTH))


def _opener(line: str) -> tuple[str, str, str] | None:
    """``(indent, fence, info)`` if superfences opens a fenced block on ``line``."""
    body = line.lstrip(" \t")
    if not body.startswith(("```", "~~~")):
        return None  # what the pattern checks first, without the pattern
    m = _compiled(_OPEN).fullmatch(body)
    if m is None or m.group("unrecognized"):
        return None
    options = m.group("options")
    if options:
        keys = [key for key, _ in _compiled(_OPTION_KEY).findall(options)]
        if any(key not in _KNOWN_OPTIONS for key in keys):
            return None
    fence = m.group("fence")
    return line[: len(line) - len(body)], fence, body[len(fence) :]


def fence_blocks(lines: Sequence[str], *, close_open: bool = False) -> list[FenceBlock]:
    """Fenced code blocks in ``lines`` as ``pymdownx.superfences`` finds them.

    A block opens on a fence line at any indentation and closes on the identical fence at the
    same indentation. A non-blank line indented less than the opener abandons it (the lines
    so far are text again) and so does the end of the text; with ``close_open`` an opener
    still pending at the end is reported with ``stop=None`` instead, for callers that close
    it (a fence left open by a model would otherwise run into the rest of the page once
    closed elsewhere).
    """
    blocks: list[FenceBlock] = []
    current: FenceBlock | None = None
    width = 0
    for i, line in enumerate(lines):
        if current is None:
            found = _opener(line)
            if found is not None:
                indent, fence, info = found
                current = FenceBlock(i, None, indent, fence, info)
                width = _indent_width(indent)
            continue
        if is_blank(line):
            continue
        body = line.lstrip(" \t")
        lead = _indent_width(line[: len(line) - len(body)])
        if lead < width:
            current = None  # not indented enough: superfences gives up on this block
        elif lead == width and closes_fence(body, current.fence):
            blocks.append(
                FenceBlock(current.start, i + 1, current.indent, current.fence, current.info)
            )
            current = None
    if current is not None and close_open:
        blocks.append(current)
    return blocks


def strict_fence_blocks(
    lines: Sequence[str], accept: Callable[[str], bool] | None = None
) -> list[FenceBlock]:
    """Fenced blocks every fence extension agrees on: opener at column 0, identical closer.

    The sanitiser keeps text as written only inside these (``fenced_code`` and superfences
    both read them as code); ``accept`` can demand more of an opening line. An opener
    without its closer is reported with ``stop=None`` and ends the search.
    """
    blocks: list[FenceBlock] = []
    i = 0
    while i < len(lines):
        found = _opener(lines[i]) if lines[i][:1] in "`~" else None
        if found is None or (accept is not None and not accept(lines[i])):
            i += 1
            continue
        _, fence, info = found
        closer = next(
            (j for j in range(i + 1, len(lines)) if _closes_at_column_0(lines[j], fence)), None
        )
        blocks.append(FenceBlock(i, None if closer is None else closer + 1, "", fence, info))
        if closer is None:
            break
        i = closer + 1
    return blocks


def _closes_at_column_0(line: str, fence: str) -> bool:
    expanded = line.expandtabs(TAB_LENGTH)
    return expanded.startswith(fence) and expanded[len(fence) :].strip(" ") == ""


def fenced_lines(lines: Sequence[str], *, close_open: bool = False) -> list[bool]:
    """Per line: does it belong to a fenced code block (fence lines included)?"""
    flags = [False] * len(lines)
    for block in fence_blocks(lines, close_open=close_open):
        for i in range(block.start, len(lines) if block.stop is None else block.stop):
            flags[i] = True
    return flags


# Headings ------------------------------------------------------------------------------------


def headings(lines: Sequence[str], *, close_open: bool = False) -> list[Heading]:
    """The headings Python-Markdown renders from ``lines``, in order.

    Lines inside fenced or indented code are never headings. Headings inside a list item
    are found too, with ``top=False``. ``close_open`` treats a fence left open at the end as
    code to the end (see :func:`fence_blocks`).
    """
    blocks = fence_blocks(lines, close_open=close_open)
    code: set[int] = set()
    inner: set[int] = set()  # fenced lines after the opener: the parser never sees them
    for block in blocks:
        stop = len(lines) if block.stop is None else block.stop
        code.update(range(block.start, stop))
        inner.update(range(block.start + 1, stop))
    # Tabs expand first and whitespace-only lines are empty, as in Python-Markdown; a fenced
    # block is one opaque line (superfences' placeholder) at its opener's indentation.
    rows = [
        (i, "" if is_blank(line) else line.expandtabs(TAB_LENGTH))
        for i, line in enumerate(lines)
        if i not in inner
    ]
    raw = {
        block.start: [
            (i, "" if is_blank(lines[i]) else lines[i].expandtabs(TAB_LENGTH))
            for i in range(block.start, len(lines) if block.stop is None else block.stop)
        ]
        for block in blocks
    }
    found: list[Heading] = []
    _Parser(code, raw, found).parse(rows, top=True, in_item=False, detabbed=False)
    found.sort(key=lambda h: h.line)
    return found


_Row = tuple[int, str]
_INDENT = " " * TAB_LENGTH


def _blocks(rows: list[_Row]) -> list[list[_Row]]:
    """Rows split at empty lines, like Python-Markdown's ``split('\\n\\n')``."""
    out: list[list[_Row]] = []
    current: list[_Row] = []
    for row in rows:
        if row[1] == "":
            if current:
                out.append(current)
            current = []
        else:
            current.append(row)
    if current:
        out.append(current)
    return out


def _dedent(rows: list[_Row]) -> list[_Row]:
    """``looseDetab``: one level of indentation off the rows that have it."""
    return [(i, s[TAB_LENGTH:] if s.startswith(_INDENT) else s) for i, s in rows]


class _Parser:
    """Python-Markdown's block parser, reduced to where headings and code are."""

    def __init__(self, code: set[int], raw: dict[int, list[_Row]], found: list[Heading]) -> None:
        self.code = code  # indices of fenced lines (shrinks when a fence is reverted)
        self.raw = raw  # each fenced block's own lines, by its first line
        self.found = found

    def parse(self, rows: list[_Row], *, top: bool, in_item: bool, detabbed: bool) -> None:
        """Walk the blocks of ``rows`` in Python-Markdown's processor order, noting headings."""
        pending = _blocks(rows)
        after_list = False  # the previous sibling is a list (ListIndentProcessor's test)
        while pending:
            block = pending.pop(0)
            first = block[0][1]
            if first.startswith(_INDENT):
                if (in_item or after_list) and not detabbed:
                    # ListIndentProcessor: the block continues the list item, one level in.
                    self.parse(_dedent(block), top=False, in_item=True, detabbed=True)
                    continue
                # CodeBlockProcessor: leading indented lines are code; the rest is a new block.
                # superfences first puts back every fenced block in it as plain lines.
                block = self._revert_fences(block)
                rest = next(
                    (k for k, (_, s) in enumerate(block) if s and not s.startswith(_INDENT)), None
                )
                after_list = False
                if rest is not None:
                    pending.insert(0, block[rest:])
                continue
            after_list = False
            split = _first_atx(block, self.code, top)
            if split is not None:
                k, heading = split
                if k:  # the lines before it are a block of their own
                    self.parse(block[:k], top=top, in_item=in_item, detabbed=detabbed)
                self.found.append(heading)
                if k + 1 < len(block):
                    pending.insert(0, block[k + 1 :])
                continue
            if (
                len(block) >= 2
                and _compiled(_SETEXT).fullmatch(block[1][1])
                and block[1][0] not in self.code
            ):
                index, line = block[0]
                level = 1 if block[1][1].startswith("=") else 2
                # Over a fenced block the heading holds the code: it has no text of its own.
                text = "" if index in self.code else line.strip()
                self.found.append(Heading(index, 2, level, text, top))
                if len(block) > 2:
                    pending.insert(0, block[2:])
                continue
            rule = next(
                (
                    k
                    for k, (i, s) in enumerate(block)
                    if i not in self.code and _compiled(_HR).fullmatch(s)
                ),
                None,
            )
            if rule is not None:
                if rule:
                    self.parse(block[:rule], top=top, in_item=in_item, detabbed=detabbed)
                if rule + 1 < len(block):
                    pending.insert(0, block[rule + 1 :])
                continue
            if block[0][0] not in self.code and _compiled(_LIST_ITEM).match(first):
                for item in _list_items(block):
                    nested = item[0][1].startswith(_INDENT)
                    rows_ = _dedent(item) if nested else item
                    self.parse(rows_, top=False, in_item=True, detabbed=nested)
                after_list = True
            # Anything else is a paragraph: no heading on its following lines.

    def _revert_fences(self, block: list[_Row]) -> list[_Row]:
        """``revert_greedy_fences``: fenced blocks in an indented block are text again."""
        out: list[_Row] = []
        for index, line in block:
            if index in self.raw and index in self.code:
                rows = self.raw[index]
                self.code.difference_update(i for i, _ in rows)
                out.extend(rows)
            else:
                out.append((index, line))
        return out


def _list_items(block: list[_Row]) -> list[list[_Row]]:
    """``OListProcessor.get_items``: each item's rows, markers removed."""
    items: list[list[_Row]] = []
    for index, line in block:
        m = _compiled(_CHILD).match(line)
        if m:
            items.append([(index, m.group("rest"))])
        elif _compiled(_NESTED_ITEM).match(line) and not items[-1][0][1].startswith(_INDENT):
            items.append([(index, line)])
        else:
            items[-1].append((index, line))
    return items


def _first_atx(block: list[_Row], code: set[int], top: bool) -> tuple[int, Heading] | None:
    """The first ATX heading in ``block`` (``HashHeaderProcessor`` searches the whole block)."""
    for k, (index, line) in enumerate(block):
        if index in code:
            continue
        m = _compiled(_ATX).fullmatch(line)
        if m:
            return k, Heading(index, 1, len(m.group("hashes")), m.group("text").strip(), top)
    return None


# Writing -------------------------------------------------------------------------------------


def heading_line(level: int, title: str) -> str:
    """The Markdown heading of a section, e.g. ``"## Title"``; the one place that decides it.

    Raises:
        ValueError: ``level`` is not 1..6.
    """
    if not 1 <= level <= DEEPEST_LEVEL:
        raise ValueError(f"heading level must be 1..{DEEPEST_LEVEL}, not {level}")
    text = " ".join(title.split())  # a newline would end the heading
    if text.endswith("#"):
        # Python-Markdown strips trailing hashes as a closing sequence ("## C#" -> "C").
        text = text[:-1] + "\\#"
    return f"{'#' * level} {text}".rstrip()
