"""The report written next to the built site: ``aigen-report.json`` and its HTML page."""

from __future__ import annotations

import functools
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from mkdocs_aigen.jobs import PageResult, SectionResult
from mkdocs_aigen.stats import BuildStats

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
    report = report_data(stats, results, context)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Compact JSON: a tool reads it (the HTML page beside it is for people), and indenting
    # it was the slowest part of a cached rebuild's report. Both files are written in parts
    # of about a page each, never as one string: on a large site each is a few hundred kB
    # that would be allocated fresh (and faulted in page by page), then copied again to be
    # encoded, on every build.
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json_parts(report))
        out.write("\n")
    # Loaded here: writing HTML is the report's business only, never a page's.
    from mkdocs_aigen.report_html import report_parts

    html_path = path.with_suffix(".html")
    root = site_dir or path.parent
    links = {src: _link(html_path.parent, root, url) for src, url in context.urls.items()}
    with open(html_path, "w", encoding="utf-8") as out:
        out.writelines(report_parts(report, links))


def json_parts(report: Mapping[str, Any]) -> Iterator[str]:
    """``report`` as the compact JSON text ``json.dumps`` writes, in parts: one per page
    under ``pages`` (where a site's size is), one per other top-level entry."""
    for index, (key, value) in enumerate(report.items()):
        yield ("{" if index == 0 else ",") + _json(key) + ":"
        if key == "pages" and isinstance(value, Mapping) and value:
            for number, (src, page) in enumerate(value.items()):
                yield ("{" if number == 0 else ",") + _json(src) + ":" + _json(page)
            yield "}"
        else:
            yield _json(value)
    yield "}" if report else "{}"


def _json(value: Any) -> str:
    # No cycle check: the report is plain data built right here, and the check costs a
    # dictionary operation per list and mapping (there is one per section).
    return json.dumps(value, separators=(",", ":"), check_circular=False)


def report_data(
    stats: BuildStats, results: Iterable[PageResult], context: ReportContext
) -> dict[str, Any]:
    """Everything the JSON report holds."""
    pages = {}
    # Sections of a page mostly cite the same files: one list of records per distinct
    # set, which the HTML page then renders once (a grounded site has thousands).
    cited: dict[tuple[tuple[str, str], ...], list[dict[str, str]]] = {}
    for result in results:
        sources = Counter(s.source for s in result.sections)
        measured = [s for s in result.sections if s.ratio is not None]
        pages[result.src_path] = {
            "url": context.urls.get(result.src_path),
            "language": result.language or "en",
            "sections": len(result.sections),
            "failed": [" > ".join(s.path) for s in result.failed],
            "augmented": [" > ".join(s.path) for s in result.sections if s.augmented],
            "scores": result.scores,
            "regenerated": result.regenerated,
            "polished": result.polished is not None,
            "warnings": list(result.warnings),
            "words": sum(_words(s) or 0 for s in measured),
            "target_words": sum(s.target for s in measured),
            "cache_hits": sources["cache"],
            "lock_hits": sources["lock"],
            "generated": sources["network"],
            "sources": list(
                dict.fromkeys(label for s in result.sections for label, _ in s.sources)
            ),
            "section_details": [_section(s, context, cited) for s in result.sections],
        }
    attempts = sorted(stats.attempts, key=lambda a: (a.start, a.slot))
    return {
        **stats.as_dict(),
        "limits": {"concurrency": context.concurrency, "rpm": context.rpm, "tpm": context.tpm},
        "budget": dict(context.budget) if context.budget is not None else None,
        "pages": dict(sorted(pages.items())),
        "timeline": {
            "requests": [{k: _rounded(v) for k, v in a._asdict().items()} for a in attempts],
            "hits": [{k: _rounded(v) for k, v in h._asdict().items()} for h in stats.hits],
        },
    }


def _section(
    section: SectionResult,
    context: ReportContext,
    cited: dict[tuple[tuple[str, str], ...], list[dict[str, str]]],
) -> dict[str, Any]:
    fallback = section.fallback
    origin = ORIGINS.get(section.source, section.source)
    if section.source == "lock" and section.edited:
        origin = "lock, edited by a person"
    created = section.created
    return {
        "path": " > ".join(section.path),
        "hash": section.answer_hash,
        "origin": origin,
        "date": None if created is None else _iso(created),
        "edited": section.edited,
        "model": context.fallback_model if fallback else context.model,
        "provider": context.fallback_provider if fallback else context.provider,
        "words": _words(section),
        "target": section.target,
        "augmented": section.augmented,
        "error": section.error,
        "sources": _cited(section.sources, cited),
    }


def _cited(
    sources: tuple[tuple[str, str], ...],
    cited: dict[tuple[tuple[str, str], ...], list[dict[str, str]]],
) -> list[dict[str, str]]:
    """The JSON records of ``sources``, the same list for every section that cites them."""
    records = cited.get(sources)
    if records is None:
        records = cited[sources] = [{"label": label, "sha256": digest} for label, digest in sources]
    return records


def _words(section: SectionResult) -> int | None:
    return None if section.ratio is None else round(section.ratio * max(1, section.target))


def _iso(timestamp: float) -> str:
    return _iso_second(int(timestamp // 1))  # gmtime floors, int() truncates


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    # time, not datetime: already loaded, and the report is written on every build. Cached:
    # a page's answers mostly arrived within the same second.
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(second))


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _link(html_dir: Path, site_dir: Path, url: str) -> str:
    """``url`` (relative to the site) as seen from the report page; a directory URL gets
    its ``index.html``, so the link works from ``file://`` too."""
    if url == "" or url.endswith("/"):
        url += "index.html"
    target = os.path.normpath(os.path.join(site_dir, url))
    return os.path.relpath(target, html_dir).replace(os.sep, "/")
