"""The JSON report and its HTML page, byte for byte: what :func:`write_report` writes (each
page's JSON text made beside its data, shared records, fast paths) against the plain
formulation, ``json.dumps`` of the data and the rows as first written, for any input."""

from __future__ import annotations

import html
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mkdocs_aigen.jobs import PageResult, SectionResult
from mkdocs_aigen.report import (
    ORIGINS,
    ReportContext,
    _iso,
    _link,
    _report,
    _scalar,
    json_parts,
    report_data,
    write_report,
)
from mkdocs_aigen.report_html import _section_details, escape_once, render_report
from mkdocs_aigen.stats import Attempt, BuildStats, Hit

# -- the plain formulation ------------------------------------------------------------------


def _plain_report_data(
    stats: BuildStats, results: list[PageResult], context: ReportContext
) -> dict[str, Any]:
    """The report's data as it was first written: a pass per total, a dict per section."""

    def rounded(value: Any) -> Any:
        return round(value, 4) if isinstance(value, float) else value

    def words(s: SectionResult) -> int | None:
        return None if s.ratio is None else round(s.ratio * max(1, s.target))

    def section(s: SectionResult) -> dict[str, Any]:
        origin = ORIGINS.get(s.source, s.source)
        if s.source == "lock" and s.edited:
            origin = "lock, edited by a person"
        return {
            "path": " > ".join(s.path),
            "hash": s.answer_hash,
            "origin": origin,
            "date": None if s.created is None else _iso(s.created),
            "edited": s.edited,
            "model": context.fallback_model if s.fallback else context.model,
            "provider": context.fallback_provider if s.fallback else context.provider,
            "words": words(s),
            "target": s.target,
            "augmented": s.augmented,
            "error": s.error,
            "sources": [{"label": label, "sha256": digest} for label, digest in s.sources],
        }

    pages = {}
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
            "words": sum(words(s) or 0 for s in measured),
            "target_words": sum(s.target for s in measured),
            "cache_hits": sources["cache"],
            "lock_hits": sources["lock"],
            "generated": sources["network"],
            "sources": list(
                dict.fromkeys(label for s in result.sections for label, _ in s.sources)
            ),
            "section_details": [section(s) for s in result.sections],
        }
    attempts = sorted(stats.attempts, key=lambda a: (a.start, a.slot))
    return {
        **stats.as_dict(),
        "limits": {"concurrency": context.concurrency, "rpm": context.rpm, "tpm": context.tpm},
        "budget": dict(context.budget) if context.budget is not None else None,
        "pages": dict(sorted(pages.items())),
        "timeline": {
            "requests": [{k: rounded(v) for k, v in a._asdict().items()} for a in attempts],
            "hits": [{k: rounded(v) for k, v in h._asdict().items()} for h in stats.hits],
        },
    }


def _plain_sources_cell(sources: list[dict[str, Any]]) -> str:
    if not sources:
        return "–"
    return "<br>".join(
        f"{html.escape(str(s.get('label', '')))} "
        f"<code>{html.escape(str(s.get('sha256', ''))[:8])}</code>"
        for s in sources
    )


def _plain_section_details(src: str, page: dict[str, Any]) -> str:
    """A page's section rows as first written: every field escaped, every cell built."""
    sections = page.get("section_details", [])
    if not sections:
        return ""
    rows = []
    for section in sections:
        words = section.get("words")
        rows.append(
            f"<tr><td>{html.escape(section.get('path', ''))}</td>"
            f"<td>{html.escape(str(section.get('origin', '')))}</td>"
            f"<td>{html.escape(str(section.get('model', '')))}</td>"
            f"<td>{html.escape(str(section.get('provider', '')))}</td>"
            f"<td>{'–' if words is None else words} / {section.get('target', 0)}</td>"
            f"<td>{html.escape(str(section.get('date') or '–'))}</td>"
            f"<td><code>{html.escape(str(section.get('hash', ''))[:12])}</code></td>"
            f"<td>{_plain_sources_cell(section.get('sources') or [])}</td></tr>"
        )
    return (
        f"<details><summary>{html.escape(src)}: sections</summary><table>"
        "<tr><th>section</th><th>origin</th><th>model</th><th>provider</th>"
        "<th>words / target</th><th>answer date</th><th>request hash</th><th>sources</th></tr>"
        f"{''.join(rows)}</table></details>"
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# -- strategies ---------------------------------------------------------------------------

#: Text that JSON and HTML must escape, and text they need not.
_TEXT = st.text(max_size=12) | st.sampled_from(["", "a<b>&'\"", "é–\u2028", "\0aigen"])
_HEX = st.text("0123456789abcdef", min_size=8, max_size=64)
_PAIRS = st.tuples(_TEXT, _TEXT | _HEX)
#: A few source sets per site, so that sections share them (by value and by identity).
_SOURCE_SETS = st.lists(st.tuples(*[_PAIRS] * 2) | st.just(()) | st.tuples(_PAIRS), min_size=1)
_INT = st.integers(-3, 300) | st.integers(-(10**20), 10**20)
#: What a section's flags hold, typed or not: the report writes whatever it is given.
_FLAG = st.none() | st.booleans() | st.sampled_from([0, 1, 1.0, "yes"])


@st.composite
def _sections(draw: st.DrawFn, source_sets: list[tuple[tuple[str, str], ...]]) -> SectionResult:
    sources = draw(st.sampled_from(source_sets))
    if draw(st.booleans()):
        sources = (*sources,)  # equal, and (unless empty) not the same tuple
    return SectionResult(
        path=tuple(draw(st.lists(_TEXT, min_size=1, max_size=3))),
        level=2,
        key=draw(_TEXT | _HEX),
        target=draw(_INT | st.booleans() | st.floats(-10, 1e6)),
        text=draw(st.none() | _TEXT),
        error=draw(st.none() | _TEXT),
        source=draw(st.sampled_from([*ORIGINS, "", "other"]) | _TEXT),
        augmented=draw(_FLAG),
        ratio=draw(st.none() | st.floats(0, 10) | st.integers(0, 3)),
        fallback=draw(st.booleans()),
        answer_key=draw(st.none() | _TEXT | _HEX),
        created=draw(st.none() | st.floats(-2e9, 4e9) | st.integers(0, 2**31)),
        edited=draw(_FLAG),
        sources=sources,
    )


@st.composite
def _site(draw: st.DrawFn) -> tuple[list[PageResult], ReportContext]:
    source_sets = draw(_SOURCE_SETS)
    results = []
    for src in draw(st.lists(st.text(min_size=1, max_size=6), max_size=4, unique=True)):
        sections = draw(st.lists(_sections(source_sets), max_size=6))
        results.append(
            PageResult(
                src,
                sections,
                scores=draw(st.none() | st.dictionaries(_TEXT, st.floats(0, 5), max_size=2)),
                regenerated=draw(st.booleans()),
                polished=draw(st.none() | _TEXT),
                warnings=draw(st.lists(_TEXT, max_size=2)),
                language=draw(st.none() | st.sampled_from(["fr", ""])),
            )
        )
    urls = {
        r.src_path: draw(st.sampled_from(["", "a/", "a/b.html", "../x/", "a//b/"])) for r in results
    }
    context = ReportContext(
        model=draw(_TEXT),
        provider=draw(_TEXT),
        fallback_model=draw(_TEXT),
        fallback_provider=draw(_TEXT),
        urls=urls,
        budget=draw(st.none() | st.just({"reached": False, "requests": 1, "max_requests": 2})),
    )
    return results, context


_SECONDS = st.floats(0, 100) | st.integers(0, 100)


@st.composite
def _stats(draw: st.DrawFn) -> BuildStats:
    stats = BuildStats(started=10.0)
    stats.finished = 12.5  # a fixed wall time, so two calls make the same report
    stages = st.sampled_from(["section", "review", "other"])
    for start, end in draw(st.lists(st.tuples(_SECONDS, _SECONDS), max_size=4)):
        stats.attempts.append(
            Attempt(draw(st.integers(0, 3)), draw(stages), draw(_TEXT), start, end, "ok")
        )
    for at in draw(st.lists(_SECONDS, max_size=6)):
        stats.hits.append(Hit(at, draw(stages), draw(st.sampled_from(["cache", "lock"]))))
    return stats


# -- the properties -----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(site=_site(), stats=_stats())
def test_the_report_is_what_the_plain_formulation_gives(
    site: tuple[list[PageResult], ReportContext], stats: BuildStats
) -> None:
    results, context = site
    plain = _plain_report_data(stats, results, context)
    report, page_texts = _report(stats, results, context)
    assert _dumps(report_data(stats, results, context)) == _dumps(plain)
    # The same data (as JSON tells it: ``==`` takes ``1`` for ``True``), and each page's
    # text made beside it is what the encoder writes for it.
    assert _dumps(report) == _dumps(plain)
    assert page_texts == {src: _dumps(page) for src, page in plain["pages"].items()}
    assert "".join(json_parts(report, page_texts)) == _dumps(plain)
    # The HTML rows: shared cells and fast paths give what escaping every field gives.
    for src, page in report["pages"].items():
        assert _section_details(src, page) == _plain_section_details(src, plain["pages"][src])


@settings(max_examples=50, deadline=None)
@given(site=_site(), stats=_stats())
def test_both_files_are_the_plain_formulations_text(
    site: tuple[list[PageResult], ReportContext], stats: BuildStats
) -> None:
    results, context = site
    plain = _plain_report_data(stats, results, context)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_report(root / "aigen-report.json", stats, results, context, root)
        # Bytes: reading text back would turn a "\r" in a page's name into "\n".
        written = (root / "aigen-report.json").read_bytes()
        page = (root / "aigen-report.html").read_bytes()
    assert written == (_dumps(plain) + "\n").encode()
    links = {src: _link(root, root, url) for src, url in context.urls.items()}
    assert page == render_report(plain, links).encode()


_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**40), 10**40)
    | st.floats()
    | st.text()
    | st.lists(st.integers(), max_size=2)
)


@given(value=_SCALAR)
def test_a_scalar_is_written_as_json_dumps_writes_it(value: Any) -> None:
    assert _scalar(value) == _dumps(value)


@given(text=st.text() | st.text("&<>\"'ab"))
def test_escape_once_is_html_escape(text: str) -> None:
    assert escape_once(text) == html.escape(text)
