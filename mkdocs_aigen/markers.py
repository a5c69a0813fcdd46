"""Where generated text goes: the ``<!-- aigen -->`` marker, and the block put there.

Fenced code blocks are the ones :mod:`mkdocs_aigen.markdown_model` finds (what
pymdownx.superfences renders as code): a marker shown inside code is never acted on.

All a fully cached build needs to put a stored page back (see :mod:`mkdocs_aigen.assemble`
for turning answers into that block).
"""

from __future__ import annotations

from mkdocs_aigen.markdown_model import (
    FenceBlock,
    closes_fence,
    fence_blocks,
    fenced_lines,
    is_blank,
)

__all__ = [
    "MARKER",
    "FenceBlock",
    "MarkerError",
    "closes_fence",
    "fence_blocks",
    "fenced_lines",
    "find_marker",
    "insert_block",
    "is_blank",
]

#: Where the generated sections go; a page without it gets them after its own text.
MARKER = "<!-- aigen -->"


class MarkerError(Exception):
    """The page's marker is ambiguous: which file, and what is wrong with it."""

    def __init__(self, src_path: str, message: str) -> None:
        super().__init__(f"{src_path}: {message}")
        self.src_path = src_path
        self.message = message


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

    The marker line is replaced by the block; without a marker it follows the page's own
    text after one blank line. What the author wrote before and after is kept byte for byte,
    a blank line is added between it and the block where missing. With an empty block the
    marker line is removed (a page without one comes back unchanged).

    Raises:
        MarkerError: the page has more than one marker.
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
