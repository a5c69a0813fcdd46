"""The report written next to the built site: ``aigen-report.json`` and its HTML page."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from json.encoder import encode_basestring_ascii
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from mkdocs_aigen.jobs import PageResult
from mkdocs_aigen.stats import Attempt, BuildStats, Hit

if TYPE_CHECKING:
    from mkdocs_aigen.setup import Setup

#: What the report calls each answer source.
ORIGINS = {
    "lock": "lock",
    "cache": "cache",
    "network": "fresh request",
    "missing": "missing",
    "failed": "failed",
}


class ReportContext(NamedTuple):
    """What the report needs besides the counters: who answered and what bound the build."""

    model: str = ""
    #: The configured backend's name (``openai``, ``local``).
    provider: str = ""
    #: The fallback's model and backend name, for sections it wrote.
    fallback_model: str = ""
    fallback_provider: str = ""
    concurrency: int = 1
    rpm: int | None = None
    tpm: int | None = None
    #: Each page's built URL relative to ``site_dir`` (``guide/`` or ``guide.html``).
    urls: Mapping[str, str] = MappingProxyType({})
    #: The spending cap's account (see :meth:`mkdocs_aigen.budget.Budget.account`), if any.
    budget: Mapping[str, Any] | None = None

    @classmethod
    def of(
        cls,
        setup: Setup,
        urls: Mapping[str, str] | None = None,
        budget: Mapping[str, Any] | None = None,
    ) -> ReportContext:
        """The context of a build (or a command) run with ``setup``."""
        fallback = setup.fallback
        return cls(
            model=setup.settings.model,
            provider=setup.backend_name,
            fallback_model=fallback.model if fallback else "",
            fallback_provider=fallback.name if fallback else "",
            # The slots that really run at once (the embedded model runs one).
            concurrency=min(setup.concurrency, setup.max_parallel or setup.concurrency),
            rpm=setup.rpm,
            tpm=setup.tpm,
            urls=dict(urls or {}),
            budget=budget,
        )


def write_report(
    path: Path,
    stats: BuildStats,
    results: Iterable[PageResult],
    context: ReportContext | None = None,
    site_dir: Path | None = None,
) -> None:
    """Per-stage counters, per-page scores, failures, warnings and per-section provenance
    as JSON at ``path``, and the same as a self-contained HTML page beside it (its links
    lead to the pages built in ``site_dir``, by default the report's folder)."""
    context = context or ReportContext()
    report, page_texts = _report(stats, results, context)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Compact JSON: a tool reads it (the HTML page beside it is for people), and indenting
    # it was the slowest part of a cached rebuild's report. Both files are written in parts
    # of about a page each, never as one string: on a large site each is a few hundred kB
    # that would be allocated fresh (and faulted in page by page), then copied again to be
    # encoded, on every build.
    # A buffer of several parts: with the default 8 kB one, nearly every part was a
    # system call of its own, and the calls, not the bytes, were most of the writing.
    with open(path, "w", encoding="utf-8", buffering=_BUFFER) as out:
        out.writelines(json_parts(report, page_texts))
        out.write("\n")
    # Loaded here: writing HTML is the report's business only, never a page's.
    from mkdocs_aigen.report_html import report_parts

    html_path = path.with_suffix(".html")
    root = site_dir or path.parent
    links = {src: _link(html_path.parent, root, url) for src, url in context.urls.items()}
    with open(html_path, "w", encoding="utf-8", buffering=_BUFFER) as out:
        out.writelines(report_parts(report, links))


#: Bytes each report file is written in (see :func:`write_report`).
_BUFFER = 1 << 16


def json_parts(
    report: Mapping[str, Any], page_texts: Mapping[str, str] | None = None
) -> Iterator[str]:
    """``report`` as the compact JSON text ``json.dumps`` writes, in parts: one per page
    under ``pages`` (where a site's size is), one per other top-level entry.

    ``page_texts``: the JSON text of pages of ``report``, by source path, where
    :func:`_report` made it already (it is not checked).
    """
    texts = page_texts or {}
    for index, (key, value) in enumerate(report.items()):
        yield ("{" if index == 0 else ",") + _json(key) + ":"
        if key == "pages" and isinstance(value, Mapping) and value:
            for number, (src, page) in enumerate(value.items()):
                text = texts.get(src)
                yield ("{" if number == 0 else ",") + _json(src) + ":"
                yield _json(page) if text is None else text
            yield "}"
        else:
            yield _json(value)
    yield "}" if report else "{}"


#: ``json.dumps(value, separators=(",", ":"))``: what ``json.dumps`` does, less making an
#: encoder for each call (a few per page). No cycle check: the report is plain data built
#: right here, and the check costs a dictionary operation per list and mapping (there is
#: one per section).
_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


#: A string's JSON text: what the encoder writes for one, in or out of a container.
_string = encode_basestring_ascii


def _scalar(value: Any) -> str:
    """``_json(value)``, sooner for what a section's record holds: a string, ``None``,
    ``True``, ``False`` or an ``int`` (the encoder is set up anew for each other call)."""
    if type(value) is str:
        return _string(value)
    if value is None:
        return "null"
    if type(value) is int:
        return repr(value)  # int.__repr__, what the encoder writes for one
    if value is True:
        return "true"
    if value is False:
        return "false"
    return _json(value)


def report_data(
    stats: BuildStats, results: Iterable[PageResult], context: ReportContext
) -> dict[str, Any]:
    """Everything the JSON report holds."""
    return _report(stats, results, context)[0]


#: Records of sources cited, with their JSON text, by the ``(label, digest)`` pairs.
_Cited = dict[tuple[tuple[str, str], ...], tuple[list[dict[str, str]], str]]


def _report(
    stats: BuildStats, results: Iterable[PageResult], context: ReportContext
) -> tuple[dict[str, Any], dict[str, str]]:
    """:func:`report_data`, and the JSON text of each of its pages by source path.

    Each page's text is written in the same pass as its data: encoding the data afterwards
    was most of the report's cost, a section's record at a time (a dozen fields, among
    them the list of files it cites, which the sections of a page mostly share).
    """
    # Sections of a page mostly cite the same files: one list of records per distinct
    # set, which the HTML page then renders once (a grounded site has thousands).
    cited: _Cited = {}
    answerers = (
        _answerer(context.model, context.provider),
        _answerer(context.fallback_model, context.fallback_provider),
    )
    pages = {}
    texts = {}
    for result in results:
        pages[result.src_path], texts[result.src_path] = _page(result, context, answerers, cited)
    attempts = sorted(stats.attempts, key=lambda a: (a.start, a.slot))
    report = {
        **stats.as_dict(),
        "limits": {"concurrency": context.concurrency, "rpm": context.rpm, "tpm": context.tpm},
        "budget": dict(context.budget) if context.budget is not None else None,
        "pages": dict(sorted(pages.items())),
        "timeline": {
            "requests": _records(attempts),
            "hits": _records(stats.hits),
        },
    }
    return report, texts


#: Who wrote a section: its model and provider, and their JSON text in its record
#: (``"model":…,"provider":…``). A plain tuple: a class more would be made at every
#: build's start.
_Answerer = tuple[str, str, str]


def _answerer(model: str, provider: str) -> _Answerer:
    return model, provider, f'"model":{_json(model)},"provider":{_json(provider)}'


def _page(
    result: PageResult,
    context: ReportContext,
    answerers: tuple[_Answerer, _Answerer],
    cited: _Cited,
) -> tuple[dict[str, Any], str]:
    """A page's entry in the report (its totals and a record per section) and its JSON
    text, which is what ``_json`` writes for the entry.

    One pass over the sections: a section's path and words go both into the page's totals
    and into its own record, and the report is written on every build.
    """
    own, fallback = answerers
    failed: list[str] = []
    augmented: list[str] = []
    words: list[int] = []
    targets: list[int] = []
    hits = {"cache": 0, "lock": 0, "network": 0}
    labels: dict[str, None] = {}
    details: list[dict[str, Any]] = []
    details_text: list[str] = []
    sources: tuple[tuple[str, str], ...] | None = None
    records: list[dict[str, str]] = []
    records_text = ""
    for section in result.sections:
        path = " > ".join(section.path)
        if section.text is None:
            failed.append(path)
        if section.augmented:
            augmented.append(path)
        source = section.source
        if source in hits:
            hits[source] += 1
        origin = ORIGINS.get(source, source)
        if source == "lock" and section.edited:
            origin = "lock, edited by a person"
        ratio = section.ratio
        target = section.target
        # What ``max(1, target)`` gives, less a call.
        section_words = None if ratio is None else round(ratio * (target if target > 1 else 1))
        if section_words is not None:
            words.append(section_words)
            targets.append(target)
        # Consecutive sections mostly cite the same files (often the very same tuple): no
        # lookup for them, which would hash every pair again, and no label is new.
        if sources is None or (section.sources is not sources and section.sources != sources):
            sources = section.sources
            records, records_text = _cited(sources, cited)
            labels.update(dict.fromkeys(label for label, _ in sources))
        created = section.created
        date = None if created is None else _iso(created)
        digest = section.answer_key or section.key
        edited = section.edited
        model, provider, answerer_text = fallback if section.fallback else own
        details.append(
            {
                "path": path,
                "hash": digest,
                "origin": origin,
                "date": date,
                "edited": edited,
                "model": model,
                "provider": provider,
                "words": section_words,
                "target": target,
                "augmented": section.augmented,
                "error": section.error,
                "sources": records,
            }
        )
        # What ``_json`` writes for that record: the same keys in the same order, each
        # value as the encoder writes it (tests hold the two to be the same).
        details_text.append(
            f'{{"path":{_string(path)},"hash":{_scalar(digest)},'
            f'"origin":{_scalar(origin)},"date":{_scalar(date)},'
            f'"edited":{_scalar(edited)},{answerer_text},'
            f'"words":{_scalar(section_words)},"target":{_scalar(target)},'
            f'"augmented":{_scalar(section.augmented)},"error":{_scalar(section.error)},'
            f'"sources":{records_text}}}'
        )
    page = {
        "url": context.urls.get(result.src_path),
        "language": result.language or "en",
        "sections": len(result.sections),
        "failed": failed,
        "augmented": augmented,
        "scores": result.scores,
        "regenerated": result.regenerated,
        "polished": result.polished is not None,
        "warnings": list(result.warnings),
        # sum(), as before: in the same order, so even float targets add up the same.
        "words": sum(words),
        "target_words": sum(targets),
        "cache_hits": hits["cache"],
        "lock_hits": hits["lock"],
        "generated": hits["network"],
        "sources": list(labels),
    }
    # The sections last: the text of the rest, its closing brace replaced by theirs.
    text = f'{_json(page)[:-1]},"section_details":[{",".join(details_text)}]}}'
    page["section_details"] = details
    return page, text


def _cited(sources: tuple[tuple[str, str], ...], cited: _Cited) -> tuple[list[dict[str, str]], str]:
    """The JSON records of ``sources`` (the same list for every section that cites them)
    and their text."""
    found = cited.get(sources)
    if found is None:
        records = [{"label": label, "sha256": digest} for label, digest in sources]
        found = cited[sources] = (records, _json(records))
    return found


def _iso(timestamp: float) -> str:
    return _iso_second(int(timestamp // 1))  # gmtime floors, int() truncates


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    # time, not datetime: already loaded, and the report is written on every build. Cached:
    # a page's answers mostly arrived within the same second.
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(second))


def _records(rows: Iterable[Attempt | Hit]) -> list[dict[str, Any]]:
    """Each row's fields by name, floats to 4 places: ``_asdict()``, less a call a row (a
    cached rebuild has a hit per section)."""
    return [
        {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in zip(row._fields, row, strict=True)
        }
        for row in rows
    ]


def _link(html_dir: Path, site_dir: Path, url: str) -> str:
    """``url`` (relative to the site) as seen from the report page; a directory URL gets
    its ``index.html``, so the link works from ``file://`` too."""
    if url == "" or url.endswith("/"):
        url += "index.html"
    target = os.path.normpath(os.path.join(site_dir, url))
    return os.path.relpath(target, html_dir).replace(os.sep, "/")
