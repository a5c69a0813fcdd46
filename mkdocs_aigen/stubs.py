"""Outline stubs: a page's ``aigen`` front matter, validated into plain dataclasses.

This module knows nothing of MkDocs' build, the engine or the backends.

Every mistake an author can make in a stub becomes a :class:`StubError` that names
the file, the field (``aigen.outline[1].sections[0].words``) and what was expected,
so a build fails with one readable line instead of a traceback or, worse, a page
silently generated from half a stub.  Unknown keys are only warned about: a typo
must not break a build, but it must not go unnoticed either.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from mkdocs.utils import meta as mkdocs_meta

if TYPE_CHECKING:
    from mkdocs_aigen.sources import SourceSpec

#: ``sections: auto`` without a count asks the model for this many subsections.
DEFAULT_AUTO_SECTIONS = 4
#: Top-level outline items are ``##``; HTML has no heading below ``######``.
TOP_LEVEL = 2
DEEPEST_LEVEL = 6
#: ``sections: {auto: N}`` accepts ``1 <= N <= MAX_AUTO_SECTIONS``.
MAX_AUTO_SECTIONS = 12
#: Upper bound for ``words``: beyond this a "section" is a page, and a typo
#: (``words: 15000``) would quietly cost a lot of tokens.
MAX_WORDS = 5000


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
    #: What this section alone is written from, on top of its page's sources.
    sources: tuple[SourceSpec, ...] = ()
    #: ``None`` inherits the page's ``cite``.
    cite: bool | None = None


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
    #: ``None`` inherits the site's ``notice.enabled``.
    notice: bool | None = None
    #: What every section of the page is written from, on top of the site's sources.
    sources: tuple[SourceSpec, ...] = ()
    #: ``None`` inherits the site's ``cite``.
    cite: bool | None = None
    #: The language to write in (``fr``, ``pt-BR``); ``None``: mkdocs-static-i18n's locale
    #: for the page, else the theme's language.
    language: str | None = None


class StubError(Exception):
    """A mistake in a stub: which file, which field, what was expected."""

    def __init__(self, src_path: str, field: str, expected: str) -> None:
        super().__init__(f"{src_path}: '{field}': {expected}")
        self.src_path = src_path
        self.field = field
        self.expected = expected


_PAGE_KEYS = (
    "brief",
    "audience",
    "tone",
    "words",
    "polish",
    "notice",
    "sources",
    "cite",
    "language",
    "outline",
)
_ITEM_KEYS = ("title", "words", "hint", "sources", "cite", "sections")
_AUTO = "auto"
_WORDS_EXPECTED = f"a positive integer (1..{MAX_WORDS})"
# Sentinel for "the key is absent", as opposed to present with a null value.
_MISSING: Any = object()
# YAML's own names for Python types, because authors write YAML, not Python.
_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: bool is a subclass of int
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "list"),
    (Mapping, "mapping"),
    (datetime.date, "date"),
)
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


# --------------------------------------------------------------------------- public API


def parse_stub(
    meta: Mapping[str, Any], src_path: str, warn: Callable[[str], None]
) -> PageStub | None:
    """Validate a page's front matter; ``None`` if it has no ``aigen`` key.

    Raises :class:`StubError` for the first mistake found; calls ``warn`` once per
    unknown key (with a close-match suggestion when there is one).
    """
    if "aigen" not in meta:
        return None
    return _StubParser(src_path, warn).page(meta)


def read_front_matter(text: str, src_path: str) -> tuple[str, dict[str, Any]]:
    """Split Markdown into ``(body, meta)`` exactly as MkDocs does, but loudly.

    ``mkdocs.utils.meta.get_data`` (MkDocs 1.6) swallows every YAML error and every
    non-mapping front matter: it returns ``{}`` and leaves the ``---`` block in the
    body, so a stub with one bad indent would just vanish.  Those two cases become a
    :class:`StubError` here.  An empty ``---`` block is not an error (MkDocs keeps it
    in the body, so do we).  Line numbers count from the first line of the file.
    """
    # MkDocs reads files as ``utf-8-sig`` in text mode; do the same normalising so
    # a BOM or CRLF line endings from the caller do not hide the front matter.
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    body, meta = mkdocs_meta.get_data(text)
    if meta:
        return body, meta
    # Reuse MkDocs' own regex and loader so we complain about exactly the blocks
    # MkDocs would have tried (and failed) to read.
    match = mkdocs_meta.YAML_RE.match(text)
    if match is None:
        return body, meta
    data = _load_yaml(match.group(1), src_path)
    if data is None or isinstance(data, dict):
        return body, meta
    raise StubError(
        src_path, "front matter", f"a mapping of 'key: value' lines, found {_describe(data)}"
    )


def iter_items(
    outline: Iterable[OutlineItem],
) -> Iterator[tuple[OutlineItem, tuple[str, ...], int]]:
    """Yield ``(item, heading path, heading level)`` depth-first, in document order.

    The path holds the titles from the top-level item down to the item itself;
    top-level items are level :data:`TOP_LEVEL`.
    """
    yield from _walk(outline, (), TOP_LEVEL)


# --------------------------------------------------------------------------- front matter


# ``YAML_RE`` captures from the line after the opening ``---``: YAML's 0-based
# line 0 is the file's line 2.
_FIRST_YAML_LINE = 2


def _load_yaml(source: str, src_path: str) -> Any:
    """Load the front matter block with MkDocs' loader, turning failures into StubError."""
    try:
        return yaml.load(source, mkdocs_meta.SafeLoader)  # a SafeLoader: no arbitrary objects
    # Not only YAMLError: the timestamp constructor raises ValueError on
    # ``date: 2024-13-45``, and MkDocs swallows that too.
    except Exception as exc:
        problem = _yaml_problem(exc, source)
        raise StubError(src_path, "front matter", f"valid YAML ({problem})") from exc


def _yaml_problem(exc: Exception, source: str) -> str:
    """``line N: problem`` for a YAML error, in file line numbers."""
    mark = getattr(exc, "problem_mark", None)
    if not isinstance(exc, yaml.MarkedYAMLError) or mark is None:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = f"line {mark.line + _FIRST_YAML_LINE}: {exc.problem or 'invalid YAML'}"
    if exc.context and exc.context_mark is not None:
        # E.g. an unclosed quote fails at the end of the block; the start is what helps.
        text += f", {exc.context} that starts on line {exc.context_mark.line + _FIRST_YAML_LINE}"
    # The two classic front matter slips, which PyYAML reports cryptically.
    if exc.problem and "mapping values are not allowed" in exc.problem:
        text += "; check the indentation, and quote values that contain ': '"
    lines = source.splitlines()
    if mark.line < len(lines) and "\t" in lines[mark.line]:
        text += "; YAML indents with spaces, not tabs"
    return text


# --------------------------------------------------------------------------- outline walking


def _walk(
    items: Iterable[OutlineItem], parents: tuple[str, ...], level: int
) -> Iterator[tuple[OutlineItem, tuple[str, ...], int]]:
    """Recursive helper of :func:`iter_items`."""
    for item in items:
        path = (*parents, item.title)
        yield item, path, level
        yield from _walk(item.children, path, level + 1)


# --------------------------------------------------------------------------- validation


class _StubParser:
    """Validates one page's ``aigen`` mapping; remembers titles to catch duplicates."""

    def __init__(self, src_path: str, warn: Callable[[str], None]) -> None:
        self.src_path = src_path
        self.warn = warn
        # Normalised title -> field of its first use.  Page-wide, because anchors
        # and the lock file key sections by title, whatever their depth.
        self.titles: dict[str, str] = {}

    def fail(self, field: str, expected: str, found: Any = _MISSING) -> StubError:
        """Build (not raise: callers ``raise`` so type checkers see the flow) a StubError."""
        if found is not _MISSING:
            expected = f"{expected}, found {_describe(found)}"
        return StubError(self.src_path, field, expected)

    # -- page level ----------------------------------------------------------------------

    def page(self, meta: Mapping[str, Any]) -> PageStub:
        """Validate ``meta['aigen']`` into a :class:`PageStub`."""
        raw = meta["aigen"]
        if not isinstance(raw, Mapping):
            raise self.fail("aigen", "a mapping with at least 'brief' and 'outline'", raw)
        self.warn_unknown(raw, _PAGE_KEYS, "aigen")
        brief = self.brief(raw)
        title = meta.get("title")
        return PageStub(
            src_path=self.src_path,
            brief=brief,
            audience=self.optional_str(raw.get("audience"), "aigen.audience"),
            tone=self.optional_str(raw.get("tone"), "aigen.tone"),
            words=self.words(raw.get("words"), "aigen.words"),
            polish=self.polish(raw.get("polish")),
            notice=self.flag(raw.get("notice"), "aigen.notice"),
            sources=self.sources(raw.get("sources"), "aigen.sources"),
            cite=self.flag(raw.get("cite"), "aigen.cite"),
            language=self.language(raw.get("language")),
            outline=self.outline(raw),
            title=(title.strip() or None) if isinstance(title, str) else None,
        )

    def brief(self, raw: Mapping[Any, Any]) -> str:
        """The required, non-empty ``brief``."""
        expected = "a non-empty string saying what the page is for"
        if "brief" not in raw:
            raise self.fail("aigen.brief", f"{expected} (missing{_typo_hint(raw, 'brief')})")
        value = raw["brief"]
        if not isinstance(value, str):
            raise self.fail("aigen.brief", expected, value)
        if not value.strip():
            raise self.fail("aigen.brief", expected, value)
        return value.strip()

    def polish(self, value: Any) -> bool | None:
        """Optional per-page cohesion pass; null means "inherit the site's"."""
        if value is None or isinstance(value, bool):
            return value
        raise self.fail("aigen.polish", "true or false", value)

    def flag(self, value: Any, field: str) -> bool | None:
        """An optional true/false; null means "inherit the site's"."""
        if value is None or isinstance(value, bool):
            return value
        raise self.fail(field, "true or false", value)

    def outline(self, raw: Mapping[Any, Any]) -> tuple[OutlineItem, ...]:
        """The required, non-empty top-level item list."""
        if "outline" not in raw:
            raise self.fail(
                "aigen.outline",
                f"a non-empty list of section titles (missing{_typo_hint(raw, 'outline')})",
            )
        return self.item_list(raw["outline"], "aigen.outline", TOP_LEVEL)

    # -- items ---------------------------------------------------------------------------

    def item_list(self, value: Any, field: str, level: int) -> tuple[OutlineItem, ...]:
        """A non-empty list of items, all at heading ``level``."""
        if not isinstance(value, list):
            raise self.fail(field, "a non-empty list of section titles", value)
        if not value:
            raise self.fail(
                field, "a non-empty list of section titles (remove it if unused)", value
            )
        return tuple(self.item(raw, f"{field}[{i}]", level) for i, raw in enumerate(value))

    def item(self, raw: Any, field: str, level: int) -> OutlineItem:
        """One outline item: a plain title, a mapping with ``title``, or the shorthand."""
        if isinstance(raw, Mapping):
            if "title" in raw:
                return self.full_item(raw, field, level)
            return self.shorthand_item(raw, field, level)
        # Anything else must be a plain title; ``title()`` explains non-strings.
        title = self.title(raw, field, level)
        return OutlineItem(title=title, field=field)

    def full_item(self, raw: Mapping[Any, Any], field: str, level: int) -> OutlineItem:
        """``{title: ..., words: ..., hint: ..., sections: ...}``."""
        self.warn_unknown(raw, _ITEM_KEYS, field)
        title = self.title(raw["title"], f"{field}.title", level)
        words = self.words(raw.get("words"), f"{field}.words")
        hint = self.optional_str(raw.get("hint"), f"{field}.hint")
        sources = self.sources(raw.get("sources"), f"{field}.sources")
        cite = self.flag(raw.get("cite"), f"{field}.cite")
        children: tuple[OutlineItem, ...] = ()
        auto = None
        if "sections" in raw:
            children, auto = self.sections(raw["sections"], f"{field}.sections", level)
        return OutlineItem(
            title=title,
            words=words,
            hint=hint,
            children=children,
            auto=auto,
            field=field,
            sources=sources,
            cite=cite,
        )

    def shorthand_item(self, raw: Mapping[Any, Any], field: str, level: int) -> OutlineItem:
        """``{Title: [children]}`` or ``{Title: auto}``: a one-key mapping without ``title``."""
        keys = list(raw)
        # A lone known key (``- hint: ...``) is an item that lost its title, not a
        # section called "hint".
        if len(keys) != 1 or keys[0] in _ITEM_KEYS:
            found = ", ".join(f"'{k}'" for k in keys) or "none"
            raise self.fail(
                field,
                "a 'title' key, or a one-key shorthand 'Title: [subsections]' or 'Title: auto' "
                f"(found keys {found}{_typo_hint(raw, 'title')})",
            )
        key = keys[0]
        title = self.title(key, field, level)
        child_field = _key_path(field, key)
        value = raw[key]
        if not (isinstance(value, list | Mapping) or value == _AUTO):
            # ``- Overview:`` (null) and ``- Note: see X`` are the usual causes.
            raise self.fail(
                child_field,
                "a list of subsections or 'auto' after the shorthand title "
                "(for a plain title drop the ':'; quote titles that contain ': ')",
                value,
            )
        children, auto = self.sections(value, child_field, level)
        return OutlineItem(title=title, children=children, auto=auto, field=field)

    def sections(
        self, value: Any, field: str, level: int
    ) -> tuple[tuple[OutlineItem, ...], int | None]:
        """``(children, auto)`` from a list of items, ``auto`` or ``{auto: N}``.

        ``level`` is the parent's heading level: children are one deeper.
        """
        if isinstance(value, list):
            return self.item_list(value, field, level + 1), None
        if value == _AUTO:
            return (), self.auto_level(DEFAULT_AUTO_SECTIONS, field, level)
        if isinstance(value, Mapping) and list(value) == [_AUTO]:
            return (), self.auto_level(self.auto_count(value[_AUTO], field), field, level)
        raise self.fail(
            field,
            f"a non-empty list of subsections, 'auto' or {{auto: N}} (N in 1..{MAX_AUTO_SECTIONS})",
            value,
        )

    def auto_count(self, value: Any, field: str) -> int:
        """N in ``{auto: N}``."""
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and 1 <= value <= MAX_AUTO_SECTIONS
        ):
            return value
        raise self.fail(
            f"{field}.auto", f"an integer number of subsections in 1..{MAX_AUTO_SECTIONS}", value
        )

    def auto_level(self, count: int, field: str, level: int) -> int:
        """Check that generated children (one level down) still fit in ``######``."""
        if level + 1 > DEEPEST_LEVEL:
            raise self.fail(
                field,
                f"no 'auto' subsections below a level-{level} heading: they would be "
                f"level {level + 1}, deeper than {'#' * DEEPEST_LEVEL} (level {DEEPEST_LEVEL})",
            )
        return count

    # -- scalars -------------------------------------------------------------------------

    def title(self, value: Any, field: str, level: int) -> str:
        """A stripped, one-line, non-empty, page-unique title that fits the heading depth."""
        if not isinstance(value, str):
            # YAML turns unquoted ``42``, ``yes`` or ``2024-01-01`` into non-strings.
            scalar = isinstance(value, int | float | datetime.date)
            hint = " (quote it in YAML)" if scalar else ""
            raise self.fail(field, f"a non-empty string title{hint}", value)
        title = value.strip()
        if not title:
            raise self.fail(field, "a non-empty string title", value)
        if "\n" in title or "\r" in title:
            raise self.fail(field, "a title on one line, without line breaks", value)
        if level > DEEPEST_LEVEL:
            raise self.fail(
                field,
                f"an outline no deeper than {'#' * DEEPEST_LEVEL} (level {DEEPEST_LEVEL}): "
                f"'{title}' would be a level-{level} heading",
            )
        self.claim_title(title, field)
        return title

    def claim_title(self, title: str, field: str) -> None:
        """Record ``title``; fail if the page already used it (ignoring case and spacing)."""
        key = " ".join(title.split()).casefold()
        first = self.titles.get(key)
        if first is not None:
            raise self.fail(
                field,
                f"a title unique on the page (compared ignoring case): '{title}' "
                f"is already used by '{first}'",
            )
        self.titles[key] = field

    def words(self, value: Any, field: str) -> int | None:
        """Optional word target: a positive int up to :data:`MAX_WORDS` (not a bool)."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_WORDS:
            return value
        raise self.fail(field, _WORDS_EXPECTED, value)

    def language(self, value: Any) -> str | None:
        """An optional language code such as ``fr`` or ``pt-BR``."""
        if value is None:
            return None
        from mkdocs_aigen.languages import LANGUAGE_RE  # pages that name a language only

        if isinstance(value, str) and LANGUAGE_RE.match(value.strip()):
            return value.strip()
        raise self.fail("aigen.language", "a language code such as 'fr', 'de' or 'pt-BR'", value)

    def sources(self, value: Any, field: str) -> tuple[SourceSpec, ...]:
        """An optional list of source entries, checked for form only (files are read when
        the page is grounded, see :mod:`mkdocs_aigen.grounding`)."""
        if value is None:
            return ()
        if isinstance(value, str | Mapping):
            value = [value]  # one source needs no list
        if not isinstance(value, list):
            raise self.fail(field, "a list of sources (paths, globs, ranges or objects)", value)
        from mkdocs_aigen.sources import SourceError, parse_source  # stubs with sources only

        specs = []
        for index, raw in enumerate(value):
            try:
                specs.append(parse_source(raw))
            except SourceError as error:
                raise self.fail(f"{field}[{index}]", str(error), raw) from None
        return tuple(specs)

    def optional_str(self, value: Any, field: str) -> str | None:
        """An optional free-text setting; blank counts as unset."""
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(field, "a string", value)
        return value.strip() or None

    def warn_unknown(self, raw: Mapping[Any, Any], known: tuple[str, ...], base: str) -> None:
        """Warn (not fail) about each key not in ``known``, suggesting the closest one."""
        for key in raw:
            if key in known:
                continue
            match = _closest(str(key), known)
            advice = f"did you mean '{match[0]}'?" if match else f"known keys: {', '.join(known)}"
            self.warn(f"{self.src_path}: '{base}.{key}' is not a known key; {advice}")


# --------------------------------------------------------------------------- helpers


def _describe(value: Any) -> str:
    """``integer 0``, ``string 'many'``, ``list``, ``null``: what the author wrote."""
    if value is None:
        return "null"
    name = next((n for t, n in _TYPE_NAMES if isinstance(value, t)), type(value).__name__)
    if isinstance(value, str | int | float | datetime.date):
        text = repr(value) if isinstance(value, str) else str(value)
        if isinstance(value, bool):
            text = text.lower()  # YAML spelling
        return f"{name} {text[:60]}{'...' if len(text) > 60 else ''}"
    if isinstance(value, list | Mapping) and not value:
        return f"empty {name}"
    return name


def _typo_hint(raw: Mapping[Any, Any], wanted: str) -> str:
    """``; is 'breif' a typo?`` when a present key is close to a missing required one."""
    match = _closest(wanted, [str(k) for k in raw])
    return f"; is '{match[0]}' a typo?" if match else ""


def _closest(word: str, candidates: Iterable[str]) -> list[str]:
    """The closest of ``candidates`` to ``word`` (at most one), for did-you-mean hints."""
    import difflib  # only a mistake pays for loading it

    return difflib.get_close_matches(word, list(candidates), n=1)


def _key_path(base: str, key: str) -> str:
    """Field path through a mapping key: ``a.b`` or ``a["Two words"]``."""
    return f"{base}.{key}" if _IDENTIFIER_RE.match(key) else f'{base}["{key}"]'
