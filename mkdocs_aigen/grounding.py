"""What each page and section is written from: the site's, the page's and each outline
item's ``sources:``, resolved and fitted to the prompt budget.

A :class:`Grounder` lives for one build. It resolves the site's sources once, each page's
when its stub is read (so a missing file stops the build before anything is spent), and
trims what does not fit ``sources_max_tokens``, largest first, with one warning per file.

The page's part (site and page sources) is fitted on its own, so every request of a page
carries the same page prefix, which providers' prompt caches and llama.cpp's prefix reuse
depend on; each item's own sources get what the page left of the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mkdocs_aigen.sources import SourceError, SourceLibrary, SourceSpec, SourceText

if TYPE_CHECKING:
    from mkdocs_aigen.stubs import PageStub

#: An item's own sources keep at least this many tokens, however much the page took.
MIN_ITEM_TOKENS = 256
#: The same estimate providers pre-charge TPM with (``limits.CHARS_PER_TOKEN``), without
#: importing the limiter on a build that sends nothing.
CHARS_PER_TOKEN = 4
TRIMMED = "\n[... trimmed to fit sources_max_tokens]"


class GroundingError(Exception):
    """A source of the site's options that cannot be used (the field and what to fix)."""


@dataclass(frozen=True)
class Grounding:
    """A page's resolved sources."""

    #: The site's and the page's sources, as every request of the page shows them.
    page: tuple[SourceText, ...] = ()
    #: Each outline item's own sources, by the item's field (``aigen.outline[1]``).
    items: Mapping[str, tuple[SourceText, ...]] = field(default_factory=dict)
    #: ``(path, digest, size, mtime_ns)`` of every file the page's sources were read
    #: from, and the files each glob matched: a stored page is used while all of them
    #: are unchanged.
    files: tuple[tuple[str, str, int, int], ...] = ()
    globs: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def for_item(self, item_field: str) -> tuple[SourceText, ...]:
        """The item's own sources (not the page's)."""
        return self.items.get(item_field, ())

    def all_items(self) -> tuple[SourceText, ...]:
        """Every item's own sources."""
        return tuple(text for texts in self.items.values() for text in texts)


class Grounder:
    """Resolves ``sources:`` for one build (see the module docstring)."""

    def __init__(
        self,
        library: SourceLibrary,
        site_specs: Sequence[SourceSpec],
        max_tokens: int,
        warn: Callable[[str], None],
    ) -> None:
        self.library = library
        self.max_tokens = max_tokens
        self.warn = warn
        self._warned: set[str] = set()
        texts: list[SourceText] = []
        for index, spec in enumerate(site_specs):
            try:
                texts.extend(library.resolve(spec))
            except SourceError as error:
                raise GroundingError(f"'sources[{index}]' ({spec.written}): {error}") from None
        self.site = _unique(texts)
        self._site_specs = tuple(site_specs)

    def ground(self, stub: PageStub, fail: Callable[[str, str], Exception]) -> Grounding | None:
        """The page's grounding, ``None`` when nothing on it or in the site cites a source.

        ``fail(field, expected)`` builds the error for a source that cannot be used.
        """
        from mkdocs_aigen.stubs import iter_items

        page = list(self.site)
        specs: list[SourceSpec] = list(self._site_specs)
        for index, spec in enumerate(stub.sources):
            page.extend(self._resolve(spec, f"aigen.sources[{index}]", fail))
            specs.append(spec)
        items: dict[str, tuple[SourceText, ...]] = {}
        for item, _, _ in iter_items(stub.outline):
            own: list[SourceText] = []
            for index, spec in enumerate(item.sources):
                own.extend(self._resolve(spec, f"{item.field}.sources[{index}]", fail))
                specs.append(spec)
            if own:
                items[item.field] = _unique(own)
        if not page and not items:
            return None
        page_texts = self._fit(_unique(page), self.max_tokens, stub.src_path)
        left = max(MIN_ITEM_TOKENS, self.max_tokens - _tokens(page_texts))
        items = {name: self._fit(texts, left, stub.src_path) for name, texts in items.items()}
        return Grounding(
            page=page_texts,
            items=items,
            files=self._files(specs),
            globs=tuple((s.path, self.library.glob(s.path)) for s in specs if s.kind == "glob"),
        )

    def fresh(
        self,
        files: Iterable[tuple[str, str, int, int]],
        globs: Iterable[tuple[str, Sequence[str]]],
    ) -> bool:
        """Whether files and globs recorded with a stored page are as they were (by
        content: a file only touched is unchanged)."""
        for path, digest, _, _ in files:
            if self.library.file_digest(path) != digest:
                return False
        return all(self.library.glob(pattern) == tuple(found) for pattern, found in globs)

    def _resolve(
        self, spec: SourceSpec, where: str, fail: Callable[[str, str], Exception]
    ) -> tuple[SourceText, ...]:
        try:
            return self.library.resolve(spec)
        except SourceError as error:
            raise fail(where, str(error)) from None

    def _files(self, specs: Iterable[SourceSpec]) -> tuple[tuple[str, str, int, int], ...]:
        paths: dict[str, tuple[str, str, int, int]] = {}
        for spec in specs:
            for text in self.library.resolve(spec):
                digest = self.library.file_digest(text.path)
                stamp = self.library.file_stamp(text.path)
                if digest is not None and stamp is not None:
                    paths[text.path] = (text.path, digest, *stamp)
        return tuple(sorted(paths.values()))

    def _fit(
        self, texts: tuple[SourceText, ...], budget: int, src_path: str
    ) -> tuple[SourceText, ...]:
        """Trim the largest texts first until all of them fit ``budget`` tokens."""
        limit = budget * CHARS_PER_TOKEN
        sizes = [len(t.text) for t in texts]
        if sum(sizes) <= limit:
            return texts
        cap = _water_level(sizes, limit)
        fitted = []
        for text in texts:
            if len(text.text) <= cap:
                fitted.append(text)
                continue
            cut = text.text[: max(0, cap - len(TRIMMED))]
            cut = cut[: cut.rfind("\n")] if "\n" in cut else cut  # whole lines only
            fitted.append(replace(text, text=cut + TRIMMED, trimmed=True))
            if text.label not in self._warned:
                self._warned.add(text.label)
                self.warn(
                    f"aigen: {src_path}: source {text.label} trimmed to about "
                    f"{cap // CHARS_PER_TOKEN} of {len(text.text) // CHARS_PER_TOKEN} tokens "
                    f"to fit sources_max_tokens ({budget} here); cite a part of it instead"
                )
        return tuple(fitted)


def _unique(texts: Iterable[SourceText]) -> tuple[SourceText, ...]:
    seen: dict[str, SourceText] = {}
    for text in texts:
        seen.setdefault(text.label, text)
    return tuple(seen.values())


def _tokens(texts: Iterable[SourceText]) -> int:
    return sum(len(t.text) for t in texts) // CHARS_PER_TOKEN


def _water_level(sizes: Sequence[int], limit: int) -> int:
    """The largest cap with ``sum(min(size, cap)) <= limit``: small texts stay whole."""
    remaining = limit
    ordered = sorted(sizes)
    for index, size in enumerate(ordered):
        share = remaining // (len(ordered) - index)
        if size > share:
            return share
        remaining -= size
    return max(ordered, default=0)
