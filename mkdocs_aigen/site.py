"""Finding the stubs of a site and what each page knows of its neighbours.

Shared by the plugin (in ``on_files``/``on_nav``) and the command line, which loads the
config and the nav without running a build.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NamedTuple

from mkdocs.utils import meta as mkdocs_meta

from mkdocs_aigen.jobs import PageJob
from mkdocs_aigen.markers import find_marker

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import File

    from mkdocs_aigen.grounding import Grounder, Grounding
    from mkdocs_aigen.stubs import PageStub

_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


class StubPage(NamedTuple):
    """A documentation page that carries an ``aigen`` stub."""

    src_path: str
    stub: PageStub
    title: str
    grounding: Grounding | None = None
    #: The language it is written in (``None``: English, the templates' own).
    language: str | None = None


def may_have_stub(text: str) -> bool:
    """Whether a page's source can carry a stub at all: a substring test that spares the
    vast majority of pages, which never mention the key, any parsing or hashing."""
    return "aigen" in text


def find_stub(
    text: str,
    src_path: str,
    warn: Callable[[str], None],
    grounder: Callable[[], Grounder] | None = None,
    language: str | None = None,
) -> StubPage | None:
    """Parse one page's source; ``None`` for pages without a stub (the vast majority).

    ``grounder`` gives the build's :class:`~mkdocs_aigen.grounding.Grounder`, which reads
    the page's ``sources`` (a bad one raises :class:`~mkdocs_aigen.stubs.StubError`).
    ``language`` is the page's unless its stub names one: mkdocs-static-i18n's locale for
    it, else the theme's language.
    """
    if not may_have_stub(text):
        return None
    # Imported here: a rebuild that finds every page in the page store parses no stub.
    from mkdocs_aigen.stubs import StubError, parse_stub, read_front_matter

    body, meta = mkdocs_meta.get_data(text)
    if "aigen" not in meta:
        if not meta and text.startswith("---") and re.search(r"^aigen\s*:", text, re.M):
            # MkDocs drops front matter that is not valid YAML without a word; for a page
            # that meant to carry a stub that would silently skip it, so say what is wrong.
            read_front_matter(text, src_path)
        return None
    stub = parse_stub(meta, src_path, warn)
    if stub is None:
        return None
    # A marker written twice is an error before any request; its line numbers count the
    # front matter too, as an editor does.
    find_marker(body, src_path, line_offset=text.count("\n") - body.count("\n"))
    grounding = None
    if grounder is not None:

        def fail(field: str, expected: str) -> Exception:
            return StubError(src_path, field, expected)

        grounding = grounder().ground(stub, fail)
    from mkdocs_aigen.languages import page_language

    written_in = page_language(stub.language, language, None)
    return StubPage(src_path, stub, page_title(stub, body, src_path), grounding, written_in)


def page_title(stub: PageStub, body: str, src_path: str) -> str:
    """The title MkDocs would show: front matter, else the first ``#`` heading, else the
    file name."""
    if stub.title:
        return stub.title
    match = _H1.search(body)
    if match:
        return match.group(1).strip()
    return _title_from_path(src_path)


def _title_from_path(src_path: str) -> str:
    # `index.fr.md` (mkdocs-static-i18n's suffix structure) is an `index` page too.
    stem = PurePosixPath(src_path).stem.split(".")[0]
    if stem in ("index", "README"):
        stem = PurePosixPath(src_path).parent.name or "Home"
    return stem.replace("-", " ").replace("_", " ").capitalize()


def nav_neighbours(
    nav_pages: Iterable[tuple[str, str | None]], titles: Mapping[str, str]
) -> dict[str, tuple[str | None, str | None]]:
    """The previous and next page titles of every page in the nav (``None`` at either end),
    from ``(src_path, nav title or None)`` in nav order and the stub pages' own ``titles``.

    Both the plugin and the command line name neighbours this way, so their prompts (and
    so their request hashes) agree. A page without a title of either kind is named after
    its file.
    """
    order = [
        (src_path, nav_title or titles.get(src_path) or _title_from_path(src_path))
        for src_path, nav_title in nav_pages
    ]
    neighbours: dict[str, tuple[str | None, str | None]] = {}
    for index, (src_path, _) in enumerate(order):
        previous = order[index - 1][1] if index > 0 else None
        following = order[index + 1][1] if index + 1 < len(order) else None
        neighbours[src_path] = (previous, following)
    return neighbours


def page_jobs(
    stub_pages: Iterable[StubPage], neighbours: Mapping[str, tuple[str | None, str | None]]
) -> list[PageJob]:
    """Attach the previous and next page titles of the nav (:func:`nav_neighbours`) to each
    stub page; a page outside the nav has none."""
    jobs = []
    for page in stub_pages:
        previous, following = neighbours.get(page.src_path, (None, None))
        jobs.append(
            PageJob(page.stub, page.title, previous, following, page.grounding, page.language)
        )
    return jobs


class SiteScan(NamedTuple):
    """Every stub of a site, found the way a build finds them, without building."""

    jobs: list[PageJob]
    #: The source text of every stub page, by ``src_uri``.
    sources: dict[str, str]
    #: Every file of ``docs_dir`` MkDocs would use (``exclude_docs`` applied).
    files: list[Path]


def file_text(file: File) -> str:
    """A documentation file's Markdown source.

    MkDocs 1.6 holds it as ``content_string`` (and a generated file may exist only in
    memory); MkDocs 1.5 has no such attribute, only the file on disk.
    """
    try:
        return file.content_string
    except AttributeError:
        return Path(file.abs_src_path).read_text(encoding="utf-8-sig")


def scan_site(
    config: MkDocsConfig,
    warn: Callable[[str], None],
    grounder: Callable[[], Grounder] | None = None,
    language: str | None = None,
) -> SiteScan:
    """The stub pages of ``config``'s ``docs_dir`` as jobs, with their nav neighbours.

    The command line and the Markdown extension (for Zensical) both start here, so they
    name the same neighbours, and so send the same requests, as the plugin. Raises
    :class:`~mkdocs_aigen.stubs.StubError` or :class:`~mkdocs_aigen.markers.MarkerError`
    for a bad stub.
    """
    from mkdocs.structure.files import get_files
    from mkdocs.structure.nav import get_navigation

    files = get_files(config)
    stub_pages: dict[str, StubPage] = {}
    sources: dict[str, str] = {}
    for file in files.documentation_pages():
        text = file_text(file)
        page = find_stub(text, file.src_uri, warn, grounder, language)
        if page is not None:
            stub_pages[file.src_uri] = page
            sources[file.src_uri] = text
    nav = get_navigation(files, config)
    titles = {src: page.title for src, page in stub_pages.items()}
    neighbours = nav_neighbours(((p.file.src_uri, p.title) for p in nav.pages), titles)
    return SiteScan(
        page_jobs(stub_pages.values(), neighbours),
        sources,
        [Path(file.abs_src_path) for file in files if file.abs_src_path],
    )
