"""Where generated text goes: the ``<!-- aigen -->`` marker, and the block put there.

Fenced code blocks are recognised leniently (any indentation, ``` or ~~~, closed by a run
at least as long), like CommonMark and pymdownx.superfences: a marker shown inside code is
never acted on, whatever fence extension the site uses.

All a fully cached build needs to put a stored page back (see :mod:`mkdocs_aigen.assemble`
for turning answers into that block).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Where the generated sections go; a page without it gets them after its own text.
MARKER = "<!-- aigen -->"

_FENCE_RE = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)")


class MarkerError(Exception):
    """The page's marker is ambiguous: which file, and what is wrong with it."""

    def __init__(self, src_path: str, message: str) -> None:
        super().__init__(f"{src_path}: {message}")
        self.src_path = src_path
        self.message = message


@dataclass(frozen=True)
class FenceBlock:
    """A fenced code block by line index; ``stop`` is ``None`` while it is still open."""

    start: int
    stop: int | None
    indent: str
    fence: str
    info: str


def fence_blocks(lines: Sequence[str]) -> list[FenceBlock]:
    """Fenced code blocks in ``lines``, the last one possibly left open."""
    blocks: list[FenceBlock] = []
    current: FenceBlock | None = None
    for i, line in enumerate(lines):
        if current is None:
            m = _FENCE_RE.fullmatch(line)
            # CommonMark: a backtick fence's info string has no backtick (```a``` is inline code).
            if m and not (m.group("fence")[0] == "`" and "`" in m.group("info")):
                current = FenceBlock(i, None, m.group("indent"), m.group("fence"), m.group("info"))
        elif closes_fence(line, current.fence):
            blocks.append(
                FenceBlock(current.start, i + 1, current.indent, current.fence, current.info)
            )
            current = None
    if current is not None:
        blocks.append(current)
    return blocks


def closes_fence(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence`` (same character, as many or more)."""
    stripped = line.strip(" \t")
    return len(stripped) >= len(fence) and stripped == fence[0] * len(stripped)


def fenced_lines(lines: Sequence[str]) -> list[bool]:
    """Per line: does it belong to a fenced code block (fence lines included)?"""
    flags = [False] * len(lines)
    for block in fence_blocks(lines):
        for i in range(block.start, len(lines) if block.stop is None else block.stop):
            flags[i] = True
    return flags


def is_blank(line: str) -> bool:
    """Whether ``line`` holds nothing but whitespace."""
    return not line.strip()


# The marker ----------------------------------------------------------------------------------


def find_marker(markdown: str, src_path: str, *, line_offset: int = 0) -> int | None:
    """Index (0-based, lines split at ``\\n``) of the marker line, or ``None`` without one.

    The marker counts only on a line of its own (surrounding whitespace allowed) and outside
    fenced code: a page documenting the plugin shows the marker in code.

    ``line_offset`` is added to the line numbers in the message: the lines of front matter
    above ``markdown``, so the numbers match what an editor shows for the file.

    Raises:
        MarkerError: the marker appears more than once; the message names the lines.
    """
    lines = markdown.split("\n")
    in_fence = fenced_lines(lines)
    found = [i for i, line in enumerate(lines) if line.strip() == MARKER and not in_fence[i]]
    if len(found) > 1:
        numbers = [str(i + 1 + line_offset) for i in found]
        listed = ", ".join(numbers[:-1]) + " and " + numbers[-1]
        raise MarkerError(
            src_path,
            f"the marker {MARKER} appears {len(found)} times, on lines {listed}; "
            "keep exactly one (or show it inside a code block)",
        )
    return found[0] if found else None


def insert_block(markdown: str, block: str, src_path: str) -> str:
    """Put a rendered block where the marker stands, or after the body.

    The rules of :func:`assemble`, for a block rendered earlier (and maybe polished whole).
    """
    index = find_marker(markdown, src_path)
    if index is None:
        if not block:
            return markdown
        lines = markdown.split("\n")
        if not markdown.strip():
            return markdown + block.rstrip("\n") + "\n"
        # The last line of the page (after its final newline, if any) must be blank.
        if not is_blank(lines[-1]):
            separator = "\n\n"
        elif len(lines) > 1 and not is_blank(lines[-2]):
            separator = "\n"
        else:
            separator = ""
        return markdown + separator + block.rstrip("\n") + "\n"
    lines = markdown.split("\n")
    before = "".join(line + "\n" for line in lines[:index])
    after = "\n".join(lines[index + 1 :])
    if not block:
        return before + after
    if before and not is_blank(lines[index - 1]):
        before += "\n"
    if not after or is_blank(lines[index + 1]):
        block = block.rstrip("\n") + "\n"  # the page supplies the blank line, or ends here
    return before + block + after
