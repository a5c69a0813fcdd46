"""Whole pages on disk, so a cached rebuild costs one small file read per page.

A page's generated block depends on:

* its source text (the stub and the title) and its path;
* the site-wide settings (model, words, sampling, context, polish, review...);
* the prompt templates;
* the plugin's version and the formats of cached answers and stored pages;
* its nav neighbours, which are only known in ``on_nav``;
* the answers already cached for its requests.

A finished page is stored whole under a hash of everything but the last two, all known
in ``on_files`` before any YAML is parsed, together with the neighbours it was written
for, which ``on_nav`` compares. A rebuild with nothing changed then parses no stub,
renders no prompt, hashes no request and cleans no answer, and does not even open the
answers' database: one ``pages/<key>.page`` per page instead.

Pages are one line of JSON followed by the page's block as it stands and as the page
shows it (with its sections marked), never pickles: cache directories are restored from
shared stores in CI, and reading a planted file must not run code. A file that is not a
page is a miss. The blocks are outside the JSON because every cached rebuild reads every
page, and decoding kilobytes of Markdown through JSON's escapes (a ``\n`` a line) costs
more than the rest of the page; the sections' texts are spans of the block (see
:func:`mkdocs_aigen.jobs.page_result_to_data`).

The answers stay in the cache under their own keys, so ``plan``, ``lock`` and a page
whose text changed still find them one by one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from mkdocs_aigen import __version__
from mkdocs_aigen.jobs import (
    CACHE_FORMAT,
    DataError,
    PageResult,
    Settings,
    page_result_from_data,
    page_result_to_data,
)

#: Bump when anything that shapes a stored page changes: PageResult, StoredPage, how
#: sections are assembled and cleaned after they leave the answers' cache, or how they are
#: marked (:func:`mkdocs_aigen.notice.mark_sections`).
PAGE_FORMAT = 7  # 7: the block after the JSON line, texts as spans of it
_SUFFIX = ".page"
#: Pages earlier versions wrote (pickles, then JSON): never read, only removed with the
#: leftovers.
_LEGACY_SUFFIXES = (".pickle", ".json")
#: What an interrupted ``put`` can leave behind.
_TEMPORARY = ".tmp"


class StoredPage(NamedTuple):
    """A finished page and what it was written for."""

    #: The title the page's own prompts used (front matter, first heading or file name).
    title: str
    #: Previous and next page titles in the nav when it was written.
    neighbours: tuple[str | None, str | None]
    #: Outline items it asked for, for the build's section counters.
    sections: int
    result: PageResult
    #: The site that wrote it (its ``mkdocs.yml``): ``cache prune`` leaves other sites'.
    site: str = ""
    #: ``(path, digest, size, mtime_ns)`` of each source file it was written from, and
    #: what each glob of its sources matched: used only while all of them are unchanged.
    files: tuple[tuple[str, str, int, int], ...] = ()
    globs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Its block with the comments that mark each generated section
    #: (:func:`mkdocs_aigen.notice.mark_sections`), as ``on_page_markdown`` inserts it:
    #: kept, so a cached rebuild does not look for every page's headings again.
    marked: str = ""


def page_to_data(page: StoredPage) -> dict[str, Any]:
    """``page`` as JSON-ready data (a mapping: later versions may add fields)."""
    return {
        "title": page.title,
        "neighbours": list(page.neighbours),
        "sections": page.sections,
        "result": page_result_to_data(page.result),
        "site": page.site,
        "files": [list(pair) for pair in page.files],
        "globs": [[pattern, list(found)] for pattern, found in page.globs],
        "marked": page.marked,
    }


def page_from_data(data: Any) -> StoredPage:
    """The page :func:`page_to_data` wrote; :class:`DataError` for anything else."""
    if not isinstance(data, dict):
        raise DataError("page: expected a mapping")
    title, neighbours, sections = data.get("title"), data.get("neighbours"), data.get("sections")
    if not isinstance(title, str):
        raise DataError("title: expected str")
    if not (
        isinstance(neighbours, list)
        and len(neighbours) == 2
        and all(n is None or isinstance(n, str) for n in neighbours)
    ):
        raise DataError("neighbours: expected two titles or nulls")
    if not isinstance(sections, int) or isinstance(sections, bool):
        raise DataError("sections: expected int")
    site, marked = data.get("site", ""), data.get("marked", "")
    if not isinstance(site, str) or not isinstance(marked, str):
        raise DataError("site, marked: expected str")
    result = page_result_from_data(data.get("result"))
    files = data.get("files", [])
    globs = data.get("globs", [])
    if not _stamps(files) or not _pairs(globs, list):
        raise DataError("files, globs: expected [path, digest, size, mtime] and [pattern, matches]")
    return StoredPage(
        title,
        (neighbours[0], neighbours[1]),
        sections,
        result,
        site,
        tuple((path, digest, size, mtime) for path, digest, size, mtime in files),
        tuple((pattern, tuple(str(m) for m in found)) for pattern, found in globs),
        marked,
    )


def served_from_store(page: StoredPage) -> PageResult:
    """The page's result as a build that reads it back serves it: no answer in it was
    requested by this build, so each section that was a fresh request when the page was
    written is a cache hit now. The report's pages and sections then say what its stages
    say, and never that this build paid for them. (The result was read for this build
    alone, so it is changed in place.)"""
    for section in page.result.sections:
        if section.source == "network":
            section.source = "cache"
    return page.result


def _stamps(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, list)
        and len(item) == 4
        and isinstance(item[0], str)
        and isinstance(item[1], str)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in item[2:])
        for item in value
    )


def sources_untouched(root: Path, files: Iterable[tuple[str, str, int, int]]) -> bool:
    """Whether every source file of a stored page has the size and modification time it
    had when read: one ``stat`` each, as ``git status`` and ``make`` do, so a fully cached
    rebuild of a grounded site opens none of them. ``False`` means "look closer" (the
    content may still be the same), not "changed"."""
    for path, _, size, mtime in files:
        try:
            status = os.stat(os.path.join(root, path))  # not pathlib: a stat per cited file
        except OSError:
            return False
        if status.st_size != size or status.st_mtime_ns != mtime:
            return False
    return True


def _pairs(value: Any, second: type) -> bool:
    return isinstance(value, list) and all(
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], second)
        for pair in value
    )


def site_identity(settings: Settings, templates: str, fallback: object = None) -> str:
    """The hash of everything site-wide that decides a page's requests, computed once a
    build; ``templates`` fingerprints the prompt templates in use, ``fallback`` is the
    backend the environment fell back to (``None`` for the configured one)."""
    # Settings and Fallback are NamedTuples of strings, numbers and tuples: their reprs
    # are stable.
    return _digest(PAGE_FORMAT, CACHE_FORMAT, __version__, templates, settings, fallback)


def page_key(site: str, src_path: str, text: str, locale: str | None = None) -> str:
    """The key of a page's source ``text`` under the :func:`site_identity` ``site``;
    ``locale``: the language mkdocs-static-i18n builds it in (one file can be built in
    several, each written in its own)."""
    if locale:
        return _digest(site, src_path, text, locale)
    return _digest(site, src_path, text)


def _digest(*parts: object) -> str:
    digest = hashlib.sha256()
    # Each part goes in with its length, so no two different inputs run together.
    for part in parts:
        encoded = (part if isinstance(part, str) else repr(part)).encode("utf-8")
        digest.update(b"%d:" % len(encoded))
        digest.update(encoded)
    return digest.hexdigest()


def page_store_for(cache_dir: Path | None, *, locked: bool) -> PageStore | None:
    """The store a build reads and writes whole pages in, or ``None`` when it has none.

    With a lock file in play its entries (and an author's edits to them) decide the
    text, so pages go through the lock one section at a time; with ``cache: false``
    nothing is kept at all.
    """
    if cache_dir is None or locked:
        return None
    return PageStore(cache_dir)


def worth_keeping(result: PageResult) -> bool:
    """Only clean pages are stored whole: a failed section or a warning must come back
    (and be retried) on the next build."""
    return not result.failed and not result.warnings


class PageStore:
    """One file per page in ``<cache dir>/pages``, written atomically (a temporary file
    renamed into place), so concurrent builds and an interrupted one never leave half a
    page. Any trouble reading counts as a miss: the page is then assembled again from
    the answers' cache."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.directory = cache_dir / "pages" if cache_dir is not None else None

    def get(self, key: str) -> StoredPage | None:
        """The page stored under ``key``, or ``None``."""
        if self.directory is None:
            return None
        try:
            # Not pathlib: a cached rebuild reads every page through here.
            with open(os.path.join(self.directory, key + _SUFFIX), "rb") as file:
                data = file.read()
        except OSError:
            return None
        header, newline, texts = data.partition(b"\n")
        try:
            record = json.loads(header)
            if not newline or type(record) is not dict or type(record.get("result")) is not dict:
                return None
            cut = record.pop("block_bytes", None)
            if type(cut) is not int or not 0 <= cut <= len(texts):
                return None
            record["result"]["block"] = texts[:cut].decode("utf-8")
            record["marked"] = texts[cut:].decode("utf-8")
            return page_from_data(record)
        except (ValueError, RecursionError):  # a truncated file, another shape, not JSON
            return None

    def put(self, key: str, page: StoredPage) -> None:
        """Store ``page``; a failure only costs the next build some time."""
        if self.directory is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=_TEMPORARY)
        except OSError:
            return
        try:
            data = page_to_data(page)
            block = data["result"].pop("block").encode("utf-8")
            marked = data.pop("marked").encode("utf-8")
            data["block_bytes"] = len(block)
            # ASCII with escapes: the file is for this store, not for people, and
            # ``json.loads`` reads pure-ASCII strings about a third faster. JSON escapes
            # every newline, so the first one in the file ends the header.
            header = json.dumps(data, separators=(",", ":"))
            with os.fdopen(handle, "wb") as file:
                file.write(header.encode("ascii") + b"\n" + block + marked)
            os.replace(temporary, self.directory / f"{key}{_SUFFIX}")
        except Exception:  # a full disk, or a value JSON cannot hold: the page is just not kept
            Path(temporary).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[str]:
        """The keys of every stored page."""
        if self.directory is None or not self.directory.is_dir():
            return iter(())
        return (path.stem for path in self.directory.glob(f"*{_SUFFIX}"))

    def delete(self, key: str) -> None:
        """Drop one page."""
        if self.directory is not None:
            (self.directory / f"{key}{_SUFFIX}").unlink(missing_ok=True)

    def clear(self) -> int:
        """Drop every page, and what interrupted writes left; returns how many pages."""
        keys = list(self)
        for key in keys:
            self.delete(key)
        self.remove_leftovers()
        return len(keys)

    def remove_leftovers(self) -> None:
        """Delete temporary files that a build killed in the middle of ``put`` left, and
        pages in earlier versions' formats (never read: see the module's docstring)."""
        if self.directory is not None and self.directory.is_dir():
            for suffix in (_TEMPORARY, *_LEGACY_SUFFIXES):
                for path in self.directory.glob(f"*{suffix}"):
                    path.unlink(missing_ok=True)

    def size(self) -> int:
        """Bytes on disk of every stored page."""
        if self.directory is None or not self.directory.is_dir():
            return 0
        return sum(path.stat().st_size for path in self.directory.glob(f"*{_SUFFIX}"))
