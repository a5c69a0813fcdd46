"""What one page asks for and what it got back: the data the plugin, the pipeline, the
page cache, the lock and the report share.

Kept apart from :mod:`mkdocs_aigen.pipeline` so that a fully cached build, which only
reads finished pages back, never imports the generation machinery.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from mkdocs_aigen.records import Record

if TYPE_CHECKING:
    from mkdocs_aigen.grounding import Grounding
    from mkdocs_aigen.requests import ChatRequest
    from mkdocs_aigen.stubs import PageStub

_T = TypeVar("_T")

Stage = Literal["expand", "section", "augment", "polish", "review"]
STAGES: tuple[Stage, ...] = ("expand", "section", "augment", "polish", "review")

#: Part of every request's hash and of every stored page's key. Bump it when the meaning
#: of a cached answer changes without the request changing (for example a new way of
#: cleaning output that is applied before caching). Here rather than in
#: :mod:`mkdocs_aigen.requests` because the page store needs it on the cached path.
CACHE_FORMAT = 1


# Immutable records here and in the other modules every build loads (stats, pagecache,
# report, site, timeline, markdown_model) are NamedTuples, not frozen dataclasses: Python
# 3.11 compiles each dataclass's generated methods from source when the module loads,
# about 0.5 ms a class on the development machine against about 0.15 ms for a NamedTuple,
# and a fully cached rebuild pays that on every build (callgrind, one build each: about
# 37 M instructions fewer for the 13 classes in scenario d, 0.8 % of the build). The
# mutable ones (the results below, ``Setup``) are :class:`~mkdocs_aigen.records.Record`s.
class ReviewSettings(NamedTuple):
    """``review:`` as the pipeline needs it."""

    criteria: tuple[tuple[str, str], ...]
    votes: int = 3
    min_score: float = 6.0
    regenerate: bool = False


class Settings(NamedTuple):
    """Site-wide generation settings, resolved from the config."""

    site_name: str
    model: str
    words: int = 200
    word_compensation: float = 0.15
    min_ratio: float = 0.8
    temperature: float = 0.7
    seed: int | None = None
    site_context: str = ""
    polish: bool = False
    review: ReviewSettings | None = None
    allow_html: bool = False
    #: Backend specific sampling options, part of every request (and so of its hash).
    extra: tuple[tuple[str, Any], ...] = ()
    #: The site's ``sources`` entries as written (their files are read per build).
    sources: tuple[str, ...] = ()
    sources_max_tokens: int = 2000
    #: A "Sources:" line under each grounded section (a page or item ``cite`` wins).
    cite: bool = False
    #: Where a cited file is linked: this URL followed by its path; ``None``: named only.
    source_link: str | None = None
    #: The theme's language, for pages that name none (``None``: English).
    language: str | None = None


class Fallback(NamedTuple):
    """The backend the environment resolved instead of the configured one.

    Requests keep the configured identity everywhere; only a request that has to be
    *sent* becomes the fallback's own request, with its model and sampling, and so its
    own key.
    """

    #: Backend name, for messages (``local``).
    name: str
    #: The fallback's model (the GGUF file's name for the embedded model).
    model: str
    temperature: float
    extra: tuple[tuple[str, Any], ...] = ()

    def adapt(self, request: ChatRequest) -> ChatRequest:
        """The request the fallback is really asked, under its own key."""
        return replace(request, model=self.model, temperature=self.temperature, extra=self.extra)


class PageJob(NamedTuple):
    """One page to generate, with what it knows of its neighbours."""

    stub: PageStub
    title: str
    nav_previous: str | None = None
    nav_next: str | None = None
    #: The page's resolved ``sources`` (``None``: nothing on it cites a source).
    grounding: Grounding | None = None
    #: The language to write in, e.g. ``fr`` (``None``: English, the templates' own).
    language: str | None = None


class SectionResult(Record):
    """A section's final text (before the page-wide polish), or why it has none."""

    __slots__ = (  # noqa: RUF023 (in __init__'s order: the repr shows them so)
        "path",
        "level",
        "key",
        "target",
        "text",
        "error",
        "source",
        "augmented",
        "lock_key",
        "lock_inputs",
        "ratio",
        "fallback",
        "answer_key",
        "created",
        "edited",
        "sources",
        "cite",
        "parts",
    )
    path: tuple[str, ...]
    level: int
    key: str
    target: int
    text: str | None
    error: str | None
    source: str
    augmented: bool
    #: The hash the lock file knows this section by: the request without review feedback,
    #: so a regenerated section is still found by its stub.
    lock_key: str
    #: What the lock finds it by when only the templates changed (:func:`inputs_key`).
    lock_inputs: str
    #: Achieved / target words, for answers measured in this build (not locked ones).
    ratio: float | None
    #: Some of its text was written by the fallback backend, not the configured model.
    fallback: bool
    #: The key its answer is kept under, when not ``key`` (the fallback's own request).
    answer_key: str | None
    #: When its newest answer was received (Unix time), if known.
    created: float | None
    #: From the lock: ``True`` when a person edited the model's text there, ``False`` when
    #: it is the model's, ``None`` when that cannot be told (no cached answer to compare).
    edited: bool | None
    #: ``(label, digest)`` of every source it was written from (the lock and report show
    #: them, and ``lock --check`` names the one that changed).
    sources: tuple[tuple[str, str], ...]
    #: A "Sources:" line goes under it (rendered into the page's block, not stored).
    cite: bool
    #: What it was asked from, part by part (:func:`mkdocs_aigen.history.section_parts`),
    #: for ``plan``'s reasons; not stored with the page.
    parts: dict[str, Any] | None

    def __init__(
        self,
        path: tuple[str, ...],
        level: int,
        key: str,
        target: int,
        text: str | None = None,
        error: str | None = None,
        source: str = "",
        augmented: bool = False,
        lock_key: str = "",
        lock_inputs: str = "",
        ratio: float | None = None,
        fallback: bool = False,
        answer_key: str | None = None,
        created: float | None = None,
        edited: bool | None = None,
        sources: tuple[tuple[str, str], ...] = (),
        cite: bool = False,
        parts: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.level = level
        self.key = key
        self.target = target
        self.text = text
        self.error = error
        self.source = source
        self.augmented = augmented
        self.lock_key = lock_key
        self.lock_inputs = lock_inputs
        self.ratio = ratio
        self.fallback = fallback
        self.answer_key = answer_key
        self.created = created
        self.edited = edited
        self.sources = sources
        self.cite = cite
        self.parts = parts

    @property
    def title(self) -> str:
        """The section's own heading."""
        return self.path[-1]

    @property
    def answer_hash(self) -> str:
        """The request hash its text is known by: its own, or the fallback's that wrote it."""
        return self.answer_key or self.key


class Expansion(Record):
    """Titles the model proposed for a ``sections: auto`` item."""

    __slots__ = ("path", "key", "titles", "source", "inputs")  # noqa: RUF023 (as above)
    path: tuple[str, ...]
    key: str
    titles: tuple[str, ...]
    source: str
    #: What the lock finds it by when only the templates changed (:func:`inputs_key`).
    inputs: str

    def __init__(
        self,
        path: tuple[str, ...],
        key: str,
        titles: tuple[str, ...],
        source: str,
        inputs: str = "",
    ) -> None:
        self.path = path
        self.key = key
        self.titles = titles
        self.source = source
        self.inputs = inputs


class PageResult(Record):
    """Everything generated for one page."""

    __slots__ = (  # noqa: RUF023 (as above)
        "src_path",
        "sections",
        "expansions",
        "block",
        "polish_key",
        "polish_inputs",
        "polished",
        "scores",
        "regenerated",
        "warnings",
        "asked",
        "language",
    )
    src_path: str
    sections: list[SectionResult]
    expansions: list[Expansion]
    block: str
    polish_key: str | None
    #: What the lock finds the polished page by when only the templates changed.
    polish_inputs: str
    polished: str | None
    scores: dict[str, float] | None
    regenerated: bool
    warnings: list[str]
    #: Requests the page asked for, by stage (whatever answered them).
    asked: Counter[str]
    #: The language it is written in (``None``: English, the templates' own).
    language: str | None

    def __init__(
        self,
        src_path: str,
        sections: list[SectionResult] | None = None,
        expansions: list[Expansion] | None = None,
        block: str = "",
        polish_key: str | None = None,
        polish_inputs: str = "",
        polished: str | None = None,
        scores: dict[str, float] | None = None,
        regenerated: bool = False,
        warnings: list[str] | None = None,
        asked: Counter[str] | None = None,
        language: str | None = None,
    ) -> None:
        self.src_path = src_path
        # A fresh list or counter per result when none is given, as a dataclass field's
        # default_factory makes.
        self.sections = [] if sections is None else sections
        self.expansions = [] if expansions is None else expansions
        self.block = block
        self.polish_key = polish_key
        self.polish_inputs = polish_inputs
        self.polished = polished
        self.scores = scores
        self.regenerated = regenerated
        self.warnings = [] if warnings is None else warnings
        self.asked = Counter() if asked is None else asked
        self.language = language

    @property
    def failed(self) -> list[SectionResult]:
        """Sections without text."""
        return [s for s in self.sections if s.text is None]


# -- plain data for the page store ---------------------------------------------------------
# Stored pages are JSON, not pickles (a cache directory restored from a shared store must
# not run code), and written field by field so that reading one back checks every type.
# Readers ignore fields they do not know: a record written by a newer version still reads.


class DataError(ValueError):
    """Stored data that is not the shape this version writes."""


#: The fields of a stored section, in the order its record lists them.
SECTION_RECORD = (
    "path",
    "level",
    "key",
    "target",
    "text",  # or [start, end]: its span of the page's block
    "error",
    "source",
    "augmented",
    "lock_key",  # null: the same as ``key``
    "lock_inputs",
    "ratio",
    "fallback",
    "answer_key",
    "created",
    "edited",
    "cited",  # null, or the index of its sources among the page's ``cited`` lists
)


def page_result_to_data(result: PageResult) -> dict[str, Any]:
    """``result`` as JSON-ready data (see :func:`page_result_from_data`).

    Compact, because every cached rebuild decodes every page. Each section is a list of
    its fields in :data:`SECTION_RECORD`'s order, not a mapping (no names to scan and no
    dictionary to build per section; a later version appends fields, which this one
    ignores). A text that stands verbatim in the page's block (assembly copies most
    sections unchanged) is stored as its span there, a ``lock_key`` only when it differs
    from the ``key``, and sources as an index into the page's ``cited`` lists (sections
    mostly cite the same files).
    """
    block = result.block
    cited: dict[tuple[tuple[str, str], ...], int] = {}
    sections = []
    searched_from = 0
    for s in result.sections:
        text: str | list[int] | None = s.text
        start = block.find(s.text, searched_from) if s.text else -1
        if start >= 0:
            searched_from = start + len(s.text or "")
            text = [start, searched_from]
        sections.append(
            [
                list(s.path),
                s.level,
                s.key,
                s.target,
                text,
                s.error,
                s.source,
                s.augmented,
                None if s.lock_key == s.key else s.lock_key,
                s.lock_inputs,
                s.ratio,
                s.fallback,
                s.answer_key,
                s.created,
                s.edited,
                cited.setdefault(s.sources, len(cited)) if s.sources else None,
            ]
        )
    return {
        "src_path": result.src_path,
        "cited": [[list(pair) for pair in sources] for sources in cited],
        "sections": sections,
        "expansions": [
            {
                "path": list(e.path),
                "key": e.key,
                "titles": list(e.titles),
                "source": e.source,
                "inputs": e.inputs,
            }
            for e in result.expansions
        ],
        "block": block,
        "polish_key": result.polish_key,
        "polish_inputs": result.polish_inputs,
        "polished": result.polished,
        "scores": result.scores,
        "regenerated": result.regenerated,
        "warnings": list(result.warnings),
        "asked": dict(result.asked),
        "language": result.language,
    }


def page_result_from_data(data: Any) -> PageResult:
    """The :class:`PageResult` that :func:`page_result_to_data` wrote.

    Raises :class:`DataError` when a field is missing or has the wrong type.
    """
    record = _mapping(data, "page")
    scores = record.get("scores")
    if scores is not None:
        scores = {
            _typed(name, str, "scores"): float(_number(value, "scores"))
            for name, value in _mapping(scores, "scores").items()
        }
    asked = _mapping(record.get("asked", {}), "asked")
    block = _typed(record.get("block", ""), str, "block")
    cited = tuple(_pairs(item, "cited") for item in _list(record.get("cited", []), "cited"))
    return PageResult(
        src_path=_typed(record.get("src_path"), str, "src_path"),
        sections=[
            _section(item, block, cited) for item in _list(record.get("sections", []), "sections")
        ],
        expansions=[_expansion(item) for item in _list(record.get("expansions", []), "expansions")],
        block=block,
        polish_key=_optional(record.get("polish_key"), str, "polish_key"),
        polish_inputs=_typed(record.get("polish_inputs", ""), str, "polish_inputs"),
        polished=_optional(record.get("polished"), str, "polished"),
        scores=scores,
        regenerated=_typed(record.get("regenerated", False), bool, "regenerated"),
        warnings=[
            _typed(w, str, "warnings") for w in _list(record.get("warnings", []), "warnings")
        ],
        asked=Counter({_typed(k, str, "asked"): _typed(v, int, "asked") for k, v in asked.items()}),
        language=_optional(record.get("language"), str, "language"),
    )


def _section(
    data: Any, block: str, cited: tuple[tuple[tuple[str, str], ...], ...]
) -> SectionResult:
    """A stored section. Every cached rebuild reads every section back, so the usual,
    well-formed record is checked in one expression; anything else goes the long way,
    which names the field that is wrong."""
    if type(data) is list and len(data) >= _FIELDS:
        (
            path,
            level,
            key,
            target,
            text,
            error,
            source,
            augmented,
            lock_key,
            lock_inputs,
            ratio,
            fallback,
            answer_key,
            created,
            edited,
            index,
        ) = data[:_FIELDS]
        if type(text) is list:
            text = _span(text, block)
            if text is None:
                return _section_checked(data, block, cited)  # which names the bad span
        if (
            type(path) is list
            and all(type(title) is str for title in path)
            and type(level) is int
            and type(key) is str
            and type(target) is int
            and (text is None or type(text) is str)
            and (error is None or type(error) is str)
            and type(source) is str
            and type(augmented) is bool
            and (lock_key is None or type(lock_key) is str)
            and type(lock_inputs) is str
            and (ratio is None or type(ratio) in (int, float))
            and type(fallback) is bool
            and (answer_key is None or type(answer_key) is str)
            and (created is None or type(created) in (int, float))
            and (edited is None or type(edited) is bool)
            and (index is None or (type(index) is int and 0 <= index < len(cited)))
        ):
            return SectionResult(  # positional, in the class's field order: the fastest call
                tuple(path),
                level,
                key,
                target,
                text,
                error,
                source,
                augmented,
                key if lock_key is None else lock_key,
                lock_inputs,
                None if ratio is None else float(ratio),
                fallback,
                answer_key,
                None if created is None else float(created),
                edited,
                () if index is None else cited[index],
            )
    return _section_checked(data, block, cited)


_FIELDS = len(SECTION_RECORD)


def _span(value: list[Any], block: str) -> str | None:
    """The text a ``[start, end]`` span of ``block`` holds; ``None`` for anything else
    (which the caller then refuses, naming the field)."""
    if len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        start, end = value
        if 0 <= start <= end <= len(block):
            return block[start:end]
    return None


def _section_checked(
    data: Any, block: str, cited: tuple[tuple[tuple[str, str], ...], ...]
) -> SectionResult:
    if not (isinstance(data, list) and len(data) >= _FIELDS):
        raise DataError(f"sections: expected a list of {_FIELDS} fields")
    record = dict(zip(SECTION_RECORD, data, strict=False))
    text = record["text"]
    if isinstance(text, list):
        text = _span(text, block)
        if text is None:
            raise DataError("sections.text: expected text, or [start, end] within the block")
    key = _typed(record["key"], str, "sections.key")
    index = record["cited"]
    if index is not None and not (type(index) is int and 0 <= index < len(cited)):
        raise DataError("sections.cited: expected the index of one of the page's cited lists")
    ratio, lock_key = record["ratio"], record["lock_key"]
    return SectionResult(
        path=_strings(record["path"], "sections.path"),
        level=_typed(record["level"], int, "sections.level"),
        key=key,
        target=_typed(record["target"], int, "sections.target"),
        text=_optional(text, str, "sections.text"),
        error=_optional(record["error"], str, "sections.error"),
        source=_typed(record["source"], str, "sections.source"),
        augmented=_typed(record["augmented"], bool, "sections.augmented"),
        lock_key=key if lock_key is None else _typed(lock_key, str, "sections.lock_key"),
        lock_inputs=_typed(record["lock_inputs"], str, "sections.lock_inputs"),
        ratio=None if ratio is None else float(_number(ratio, "sections.ratio")),
        fallback=_typed(record["fallback"], bool, "sections.fallback"),
        answer_key=_optional(record["answer_key"], str, "sections.answer_key"),
        created=_optional_number(record["created"], "sections.created"),
        edited=_optional(record["edited"], bool, "sections.edited"),
        sources=() if index is None else cited[index],
    )


def _expansion(data: Any) -> Expansion:
    record = _mapping(data, "expansions")
    return Expansion(
        path=_strings(record.get("path"), "expansions.path"),
        key=_typed(record.get("key"), str, "expansions.key"),
        titles=_strings(record.get("titles"), "expansions.titles"),
        source=_typed(record.get("source", ""), str, "expansions.source"),
        inputs=_typed(record.get("inputs", ""), str, "expansions.inputs"),
    )


def _typed(value: Any, kind: type[_T], where: str) -> _T:
    # ``bool`` is an ``int`` in Python; a stored count of ``true`` is still wrong.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataError(f"{where}: expected {kind.__name__}")
    return value


def _optional(value: Any, kind: type[_T], where: str) -> _T | None:
    return None if value is None else _typed(value, kind, where)


def _number(value: Any, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: expected a number")
    return value


def _optional_number(value: Any, where: str) -> float | None:
    return None if value is None else float(_number(value, where))


def _mapping(value: Any, where: str) -> dict[str, Any]:
    return _typed(value, dict, where)


def _list(value: Any, where: str) -> list[Any]:
    return _typed(value, list, where)


def _pairs(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    # One pass with no calls per item: a grounded page has a few sources per section,
    # and reading the page back is on every cached rebuild's path.
    if isinstance(value, list) and all(
        type(pair) is list and len(pair) == 2 and type(pair[0]) is str and type(pair[1]) is str
        for pair in value
    ):
        return tuple((pair[0], pair[1]) for pair in value)
    raise DataError(f"{where}: expected [label, digest] pairs")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_typed(item, str, where) for item in _list(value, where))
