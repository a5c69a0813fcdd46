"""``aigen-report.html``: the JSON report as one self-contained page.

No script, no stylesheet or font from elsewhere: the page works from ``file://`` and on a
machine without network. It is written after the build into ``site_dir``, so MkDocs never
sees it as a page: it is in neither the nav nor the search index.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping, Sequence
from typing import Any

from mkdocs_aigen.stats import Attempt, Hit
from mkdocs_aigen.timeline import STAGE_COLOURS, Limits, ideal_makespan, lower_bound, timeline_svg

#: ``html.escape``, remembered: a site's thousands of section rows repeat the same few
#: origins, models, dates and source labels.
escape = functools.lru_cache(maxsize=4096)(html.escape)


def escape_once(text: str) -> str:
    """``html.escape(text)``, for a string met once a build (a section's path): looking
    for what it replaces is cheaper than a miss of :func:`escape`'s cache, and leaves that
    to the repeated ones. (Five searches, not a regular expression: faster, and nothing to
    compile whenever a build loads this module.)"""
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return html.escape(text)
    return text


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1000px;
  color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.failed { color: #b00020; font-weight: 600; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; }
dl.summary dt { color: #555; } dl.summary dd { margin: 0; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
  vertical-align: -1px; }
svg.timeline { display: block; margin: .5em 0; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .bar.error, svg .bar.throttled { fill-opacity: .45; }
svg .mark.throttled { fill: #d62728; } svg .mark.retry { stroke: #d62728; stroke-width: 2; }
svg .wait { stroke: #999; stroke-dasharray: 2 2; }
svg .hit { fill: #2ca02c; } svg .axis, svg .tick { stroke: #555; }
svg .mark-line { stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .mark-line.wall { stroke: #222; } svg .mark-line.ideal { stroke: #2ca02c; }
svg .mark-line.bound { stroke: #d62728; }
svg .mark-label.wall { fill: #222; } svg .mark-label.ideal { fill: #2ca02c; }
svg .mark-label.bound { fill: #d62728; }
details { margin: .3em 0; }
"""


def render_report(report: Mapping[str, Any], links: Mapping[str, str]) -> str:
    """The HTML page of ``report`` (what :func:`mkdocs_aigen.report.report_data` made);
    ``links``: each page's built URL as seen from the report page."""
    return "".join(report_parts(report, links))


def report_parts(report: Mapping[str, Any], links: Mapping[str, str]) -> list[str]:
    """:func:`render_report`'s page in parts of about a page's rows each, to be written one
    after the other: a large site's page whole is a few hundred kB, allocated fresh and
    then copied again to be encoded."""
    timeline = report.get("timeline", {})
    attempts = [Attempt(**a) for a in timeline.get("requests", [])]
    hits = [Hit(**h) for h in timeline.get("hits", [])]
    limits_data = report.get("limits", {})
    limits = Limits(
        concurrency=limits_data.get("concurrency") or 1,
        rpm=limits_data.get("rpm"),
        tpm=limits_data.get("tpm"),
    )
    wall = float(report.get("wall_seconds") or 0.0)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing here may load from elsewhere, and the report is not for search engines.
        '<meta name="robots" content="noindex">',
        "<title>aigen build report</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
        "<h1>aigen build report</h1>",
        _summary(report, attempts, limits, wall),
        "<h2>Stages</h2>",
        _stages(report.get("stages", {})),
        "<h2>Timeline</h2>",
        _legend(),
        timeline_svg(attempts, hits, wall, limits),
        "<h2>Pages</h2>",
    ]
    return [
        *(part + "\n" for part in parts),
        *_pages(report.get("pages", {}), links),
        "\n</body></html>\n",
    ]


def _summary(
    report: Mapping[str, Any], attempts: list[Attempt], limits: Limits, wall: float
) -> str:
    ratio = report.get("mean_word_ratio")
    rate = report.get("augmentation_rate")
    latencies = [a.end - a.start for a in attempts]
    items = [
        ("sections", report.get("sections", 0)),
        ("failed", report.get("sections_failed", 0)),
        ("requests sent", len(attempts)),
        ("wall time", f"{wall:.2f} s"),
        ("lower bound", f"{lower_bound(attempts, limits):.2f} s"),
        ("ideal schedule", f"{ideal_makespan(latencies, limits.concurrency):.2f} s"),
        ("request time", f"{sum(latencies):.2f} s over {limits.concurrency} slots"),
        ("words of target", "–" if ratio is None else f"{ratio:.0%}"),
        ("augmented", f"{report.get('augmented', 0)}" + ("" if rate is None else f" ({rate:.0%})")),
    ]
    budget = report.get("budget")
    if budget:
        cap = []
        if budget.get("budget_usd") is not None:
            cap.append(f"${budget['spent_usd']:.4f} spent of ${budget['budget_usd']:.4f}")
        if budget.get("max_requests") is not None:
            cap.append(f"{budget['requests']} of {budget['max_requests']} requests")
        items.append(("spending cap", ", ".join(cap) + (" (reached)" if budget["reached"] else "")))
    rows = "".join(f"<dt>{escape(name)}</dt><dd>{escape(str(value))}</dd>" for name, value in items)
    return f'<dl class="summary">{rows}</dl>'


_STAGE_COLUMNS = (
    "requests",
    "cache_hits",
    "lock_hits",
    "retries",
    "throttled",
    "failures",
    "prompt_tokens",
    "completion_tokens",
    "latency",
)


def _stages(stages: Mapping[str, Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{name.replace('_', ' ')}</th>" for name in _STAGE_COLUMNS)
    rows = []
    for name, counts in stages.items():
        if not any(counts.get(c) for c in ("requests", "cache_hits", "lock_hits", "failures")):
            continue
        cells = []
        for column in _STAGE_COLUMNS:
            value = counts.get(column, 0)
            cells.append(f"<td>{value:.2f} s</td>" if column == "latency" else f"<td>{value}</td>")
        rows.append(f'<tr class="stage"><td>{escape(name)}</td>{"".join(cells)}</tr>')
    return f'<table class="stages"><tr><th>stage</th>{head}</tr>{"".join(rows)}</table>'


def _legend() -> str:
    stages = "".join(
        f'<span><i style="background:{colour}"></i>{escape(stage)}</span>'
        for stage, colour in STAGE_COLOURS.items()
    )
    return (
        f'<p class="legend">{stages}<br>One row per worker slot, one bar per request. '
        "A red notch: the server answered 429; a red cross: the attempt failed; a dotted "
        "line before a bar: the limiter held the request back. Green ticks on the last "
        "row: answers from the cache or the lock, with no request.</p>"
    )


def _pages(pages: Mapping[str, Mapping[str, Any]], links: Mapping[str, str]) -> list[str]:
    head = (
        "<tr><th>page</th><th>sections</th><th>words / target</th><th>review</th>"
        "<th>failed</th><th>augmented</th><th>generated</th><th>cache</th><th>lock</th>"
        "<th>sources</th></tr>"
    )
    rows = []
    for src, page in pages.items():
        link = links.get(src)
        name = escape(src)
        title = f'<a href="{escape(link)}">{name}</a>' if link else name
        target = page.get("target_words") or 0
        words = f"{page.get('words', 0)} / {target}" if target else "–"
        scores = page.get("scores") or {}
        review = ", ".join(f"{escape(k)} {v:.1f}" for k, v in scores.items()) or "–"
        failed = page.get("failed", [])
        failed_cell = (
            f'<td class="failed" title="{escape("; ".join(failed))}">{len(failed)}</td>'
            if failed
            else "<td>0</td>"
        )
        rows.append(
            f'<tr class="page"><td>{title}</td><td>{page.get("sections", 0)}</td>'
            f"<td>{words}</td><td>{review}</td>{failed_cell}"
            f"<td>{len(page.get('augmented', []))}</td><td>{page.get('generated', 0)}</td>"
            f"<td>{page.get('cache_hits', 0)}</td><td>{page.get('lock_hits', 0)}</td>"
            f"<td>{'<br>'.join(escape(str(s)) for s in page.get('sources', [])) or '–'}</td></tr>"
        )
    details = [_section_details(src, page) for src, page in pages.items()]
    return [f'<table class="pages">{head}', *rows, "</table>", *details]


def _sources_cell(sources: Sequence[Mapping[str, Any]]) -> str:
    """Each cited source with the start of its hash; a dash for an ungrounded section."""
    if not sources:
        return "–"
    return "<br>".join(
        f"{escape(str(s.get('label', '')))} <code>{escape(str(s.get('sha256', ''))[:8])}</code>"
        for s in sources
    )


def _section_details(src: str, page: Mapping[str, Any]) -> str:
    sections = page.get("section_details", [])
    if not sections:
        return ""
    rows = []
    # By identity: the report shares one list among the sections citing the same files
    # (see ``report_data``), so each distinct cell is built once per page. Every list
    # lives as long as ``page``, so no two of them can share an id here.
    cells: dict[int, str] = {}
    for section in sections:
        get = section.get
        words = get("words")
        sources = get("sources") or ()
        cell = cells.get(id(sources))
        if cell is None:
            cell = cells[id(sources)] = _sources_cell(sources)
        # Met once each: a section's path, and its hash, whose hex digits need nothing.
        digest = str(get("hash", ""))[:12]
        rows.append(
            f"<tr><td>{escape_once(get('path', ''))}</td>"
            f"<td>{escape(str(get('origin', '')))}</td>"
            f"<td>{escape(str(get('model', '')))}</td>"
            f"<td>{escape(str(get('provider', '')))}</td>"
            f"<td>{'–' if words is None else words} / {get('target', 0)}</td>"
            f"<td>{escape(str(get('date') or '–'))}</td>"
            f"<td><code>{digest if digest.isalnum() else escape_once(digest)}</code></td>"
            f"<td>{cell}</td></tr>"
        )
    return (
        f"<details><summary>{escape(src)}: sections</summary><table>"
        "<tr><th>section</th><th>origin</th><th>model</th><th>provider</th>"
        "<th>words / target</th><th>answer date</th><th>request hash</th><th>sources</th></tr>"
        f"{''.join(rows)}</table></details>"
    )
