"""The HTML report: a real build against the fake server, the page parsed as HTML and its
timeline as XML, compared with what the server saw."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mkdocs_aigen.stats import Attempt
from mkdocs_aigen.timeline import Limits, ideal_makespan, lower_bound
from tests.conftest import Site
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE

SVG = "{http://www.w3.org/2000/svg}"

#: Attributes through which a page would load something.
_LOADING = {"src", "href", "srcset", "data", "poster", "action", "xlink:href"}


class _Page(HTMLParser):
    """Tags, attributes and text of the report, and the inline SVG's source."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _report(site: Site) -> tuple[str, _Page, ET.Element, dict[str, Any]]:
    html = (site.root / "site" / "aigen-report.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    page.close()
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    svg = ET.fromstring(html[start:end])  # well-formed XML, or this raises
    data = json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))
    return html, page, svg, data


def _bars(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{SVG}rect") if "bar" in r.get("class", "").split()]


def test_report_page_has_one_bar_per_request_the_server_answered(
    site: Site, server: FakeOpenAI
) -> None:
    server.configure(latency=0.05)
    site.plugin["concurrency"] = 3
    site.plugin["review"] = {"criteria": {"clarity": "easy to follow"}, "votes": 2}
    site.page("guide.md", GUIDE)
    site.page("other.md", GUIDE.replace("Configuring Foo", "Other page"))
    site.extra_config = {"plugins": ["search", {"aigen": site.plugin}]}
    site.build()
    html, page, svg, data = _report(site)
    # Out of the nav and the search index: MkDocs never sees it as a page.
    index = (site.root / "site" / "search" / "search_index.json").read_text(encoding="utf-8")
    assert "aigen-report" not in index and "aigen build report" not in index
    assert "Other page" in index  # the index is real and has the pages
    assert "aigen-report" not in site.html("guide.md")

    bars = _bars(svg)
    assert len(bars) == len(server.log) == 2 * 7 + 2 * 2
    stages = sorted(b.get("data-stage") for b in bars)
    assert stages == sorted(r.stage for r in server.log)
    # One row per worker slot: three slots, so three rows of bars.
    assert {b.get("data-slot") for b in bars} == {"0", "1", "2"}
    # Every bar has a tooltip naming its request.
    assert all(b.find(f"{SVG}title") is not None for b in bars)
    # Wall time, the ideal schedule and the bound are marked on the axis.
    marks = {
        line.get("class"): float(line.get("data-seconds", "nan"))
        for line in svg.iter(f"{SVG}line")
        if "mark-line" in line.get("class", "")
    }
    assert set(marks) == {"mark-line wall", "mark-line ideal", "mark-line bound"}
    # The bound holds for any schedule, the one that ran and longest-first alike.
    assert marks["mark-line bound"] <= marks["mark-line ideal"]
    assert marks["mark-line bound"] <= marks["mark-line wall"] + 1e-3
    # The same requests are in the JSON, from the engine's own clock.
    requests = data["timeline"]["requests"]
    assert len(requests) == len(server.log)
    assert all(0 <= r["start"] <= r["end"] <= data["wall_seconds"] for r in requests)

    # Self-contained: nothing loaded from anywhere, no script.
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe", "img"), tag
        for name, value in attrs.items():
            if name in _LOADING and tag != "a":
                raise AssertionError(f"<{tag} {name}={value}> loads a resource")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html

    # The per-page table links each page to its built URL, which exists.
    links = {attrs["href"] for tag, attrs in page.tags if tag == "a"}
    assert links == {"guide/index.html", "other/index.html"}
    for link in links:
        assert (site.root / "site" / str(link)).is_file()
    assert data["pages"]["guide.md"]["url"] == "guide/"
    text = " ".join(page.text)
    assert "clarity" in text


def test_retries_and_429s_are_marked_and_cache_hits_kept_apart(
    site: Site, server: FakeOpenAI
) -> None:
    site.page("guide.md", GUIDE)
    server.storm(2, retry_after=0.05)
    server.fail_next(1, status=500)
    site.build()
    _, _, svg, _ = _report(site)
    bars = _bars(svg)
    assert len(bars) == len(server.log) == 10
    marks = [p.get("class") for p in svg.iter(f"{SVG}path")]
    assert marks.count("mark throttled") == 2
    assert marks.count("mark retry") == 1
    assert [b.get("class") for b in bars].count("bar ok") == 7

    # A rebuild from the cache: no bar, the hits on their own row.
    site.page("guide.md", GUIDE.replace("Never put tokens", "Never, ever put tokens"))
    site.build()
    _, _, svg, data = _report(site)
    assert len(_bars(svg)) == 1 == len(server.log) - 10
    hits = [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "hit"]
    assert sum(int(h.get("data-count", "0")) for h in hits) == 6
    details = data["pages"]["guide.md"]["section_details"]
    assert sorted(d["origin"] for d in details) == ["cache"] * 6 + ["fresh request"]
    assert {d["model"] for d in details} == {"test-model"}
    assert {d["provider"] for d in details} == {"openai"}


def test_lower_bound_and_ideal_schedule() -> None:
    def attempt(start: float, end: float, tokens: int = 0) -> Attempt:
        return Attempt(0, "section", "", start, end, "ok", tokens=tokens)

    attempts = [attempt(0, 3), attempt(0, 1), attempt(1, 2), attempt(2, 3)]
    # max L = 3, sum L / 2 = 3; longest first on 2 slots: {3}, {1, 1, 1}.
    assert lower_bound(attempts, Limits(concurrency=2)) == 3
    assert ideal_makespan([3, 1, 1, 1], 2) == 3
    assert ideal_makespan([2, 2, 2], 2) == 4
    assert ideal_makespan([], 4) == 0
    # 4 requests at 60 per minute take at least 4 s; 400 tokens at 1200 a minute 20 s.
    assert lower_bound(attempts, Limits(concurrency=8, rpm=60)) == 4
    tokens = [attempt(0, 1, tokens=100) for _ in range(4)]
    assert lower_bound(tokens, Limits(concurrency=8, tpm=1200)) == 20


def test_report_path_option_puts_the_page_beside_the_json(site: Site, server: FakeOpenAI) -> None:
    site.plugin["report"] = "reports/build.json"
    site.page("guide.md", GUIDE)
    site.build()
    html = (site.root / "site" / "reports" / "build.html").read_text(encoding="utf-8")
    assert 'href="../guide/index.html"' in html
    assert not Path(site.root / "site" / "aigen-report.html").exists()


def test_each_section_row_names_its_own_sources() -> None:
    """Sections citing the same files share one cell; the others keep their own."""
    from mkdocs_aigen.jobs import PageResult, SectionResult
    from mkdocs_aigen.report import ReportContext, report_data
    from mkdocs_aigen.report_html import render_report
    from mkdocs_aigen.stats import BuildStats

    config = (("src/config.py", "a" * 64),)
    both = (("src/config.py", "a" * 64), ("src/cli.py", "b" * 64))

    def section(title: str, sources: tuple[tuple[str, str], ...]) -> SectionResult:
        return SectionResult(
            path=(title,), level=2, key=title * 8, target=10, text="x", sources=sources
        )

    titles = ["One", "Two", "Three", "Four"]
    cited = [config, both, config, ()]
    result = PageResult("guide.md", [section(t, c) for t, c in zip(titles, cited, strict=True)])
    data = report_data(BuildStats(), [result], ReportContext())
    records = [s["sources"] for s in data["pages"]["guide.md"]["section_details"]]
    assert records == [[{"label": label, "sha256": digest} for label, digest in c] for c in cited]
    html = render_report(data, {})
    rows = {
        title: html[html.index(f"<tr><td>{title}</td>") :].split("</tr>")[0] for title in titles
    }
    assert "src/config.py <code>aaaaaaaa</code></td>" in rows["One"]
    assert "src/cli.py" not in rows["One"] and "src/cli.py" not in rows["Three"]
    assert "src/config.py <code>aaaaaaaa</code><br>src/cli.py <code>bbbbbbbb</code>" in rows["Two"]
    assert rows["Three"].endswith("<td>src/config.py <code>aaaaaaaa</code></td>")
    assert rows["Four"].endswith("<td>–</td>")


def test_a_page_read_back_whole_reports_cache_hits_not_requests(
    site: Site, server: FakeOpenAI
) -> None:
    """A rebuild that serves the page from the page store sends nothing, and its report
    says so page by page and section by section, as its stages do."""
    site.page("guide.md", GUIDE)
    site.build()
    _, _, _, first = _report(site)
    sent = len(server.log)
    written = first["pages"]["guide.md"]
    assert written["generated"] == written["sections"] > 0
    assert {d["origin"] for d in written["section_details"]} == {"fresh request"}

    site.build()
    assert len(server.log) == sent
    html, _, _, second = _report(site)
    served = second["pages"]["guide.md"]
    assert served["generated"] == 0
    assert served["cache_hits"] == served["sections"] == written["sections"]
    assert second["stages"]["section"]["requests"] == 0
    assert {d["origin"] for d in served["section_details"]} == {"cache"}
    # Each answer keeps the date it was paid for.
    assert [d["date"] for d in served["section_details"]] == [
        d["date"] for d in written["section_details"]
    ]
    assert "fresh request" not in html


def test_report_dates_are_utc_seconds_as_gmtime_formats_them() -> None:
    import time

    from mkdocs_aigen.report import _iso

    # Memoised by whole second: a fraction, a negative time and the same second twice
    # read exactly as ``time.gmtime`` puts them (it floors, where ``int`` truncates).
    for stamp in (0.0, 0.999, -1.5, 1796367205.775715, 1796367205.1):
        expected = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(stamp))
        assert _iso(stamp) == expected


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    report=st.dictionaries(st.text(max_size=8), _JSON, max_size=4),
    pages=st.none() | st.dictionaries(st.text(max_size=12), _JSON, max_size=5),
)
def test_the_json_report_written_in_parts_is_what_json_dumps_writes(
    report: dict[str, Any], pages: dict[str, Any] | None
) -> None:
    from mkdocs_aigen.report import json_parts

    if pages is not None:
        report["pages"] = pages
    assert "".join(json_parts(report)) == json.dumps(report, separators=(",", ":"))


def test_both_report_files_hold_exactly_the_report(tmp_path: Path) -> None:
    from mkdocs_aigen.jobs import PageResult, SectionResult
    from mkdocs_aigen.report import ReportContext, report_data, write_report
    from mkdocs_aigen.report_html import render_report
    from mkdocs_aigen.stats import BuildStats

    stats = BuildStats(started=10.0)
    stats.finished = 12.5  # a fixed wall time, so two calls make the same report
    results = [
        PageResult(
            f"page{n}.md",
            [SectionResult(path=(f"S{n}",), level=2, key="k" * 64, target=5, text="<b>x</b>")],
        )
        for n in range(3)
    ]
    context = ReportContext(model="m", urls={f"page{n}.md": f"page{n}/" for n in range(3)})
    write_report(tmp_path / "aigen-report.json", stats, results, context, tmp_path)
    data = report_data(stats, results, context)
    written = (tmp_path / "aigen-report.json").read_text(encoding="utf-8")
    assert written == json.dumps(data, separators=(",", ":")) + "\n"
    links = {f"page{n}.md": f"page{n}/index.html" for n in range(3)}
    assert (tmp_path / "aigen-report.html").read_text(encoding="utf-8") == render_report(
        data, links
    )
