"""Outline stubs: a page's ``aigen`` front matter, validated into plain dataclasses.

This module knows nothing of MkDocs' build, the engine or the backends.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``sections: auto`` without a count asks the model for this many subsections.
DEFAULT_AUTO_SECTIONS = 4
#: Top-level outline items are ``##``; HTML has no heading below ``######``.
TOP_LEVEL = 2
DEEPEST_LEVEL = 6


@dataclass(frozen=True)
class OutlineItem:
    """One section of a page: a heading, its own generated text, maybe children."""

    title: str
    #: Word target for this section; ``None`` inherits the page's, then the site's.
    words: int | None = None
    hint: str | None = None
    children: tuple[OutlineItem, ...] = ()
    #: ``sections: auto`` (or ``{auto: N}``): the model proposes this many children.
    auto: int | None = None
    #: Where the item was written, e.g. ``aigen.outline[1].sections[0]`` (for messages).
    field: str = ""


@dataclass(frozen=True)
class PageStub:
    """A page's validated ``aigen`` front matter."""

    src_path: str
    brief: str
    outline: tuple[OutlineItem, ...]
    title: str | None = None
    audience: str | None = None
    tone: str | None = None
    words: int | None = None
    #: ``None`` inherits the site's ``polish`` option.
    polish: bool | None = None


class StubError(Exception):
    """A mistake in a stub: which file, which field, what was expected."""

    def __init__(self, src_path: str, field: str, expected: str) -> None:
        super().__init__(f"{src_path}: '{field}': {expected}")
        self.src_path = src_path
        self.field = field
        self.expected = expected
