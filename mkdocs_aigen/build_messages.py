"""What a build says about its pages, and how a page waits for its flow: shared by the
MkDocs plugin and the front doors without MkDocs events (:mod:`mkdocs_aigen.siterun`).

Light on purpose: the plugin imports it on the cached path, which never starts an engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mkdocs_aigen.jobs import PageResult

if TYPE_CHECKING:
    from mkdocs_aigen.setup import Setup


class PendingPage:
    """A page's flow result, waited for by the page's render step (``SiteRun.page``,
    the plugin's ``on_page_markdown``)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: PageResult | None = None
        self.error: BaseException | None = None
        #: The result's block with its sections marked, when known before the page is
        #: rendered (a page read back from the store).
        self.marked: str | None = None

    def finish(self, result: Any, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self.done.set()


def page_messages(result: PageResult, setup: Setup, *, fail: bool) -> tuple[list[str], str | None]:
    """What a build says of one page, as the plugin says it: ``(warnings, error)``.

    ``error`` stops the build: a section failed with ``on_error: fail`` (``fail``). Missing
    sections (offline, no key) are one warning naming them all.
    """
    warnings = [f"aigen: {warning}" for warning in result.warnings]
    failed = result.failed
    missing = [s for s in failed if s.source == "missing"]
    # Sections the spending cap stopped are one error for the whole build, said at its end.
    broken = [s for s in failed if s.source not in ("missing", "capped")]
    if missing:
        names = ", ".join(f"'{' > '.join(s.path)}'" for s in missing)
        warnings.append(
            f"aigen: {result.src_path}: {len(missing)} section(s) not generated "
            f"({setup.offline_reason}): {names}"
        )
    for section in broken:
        message = (
            f"aigen: {result.src_path}: section '{' > '.join(section.path)}' "
            f"failed: {section.error}"
        )
        if fail:
            return warnings, message
        warnings.append(message)
    return warnings, None


def build_notes(setup: Setup, results: Iterable[PageResult]) -> list[tuple[int, str]]:
    """What a build says once at its end, as the plugin says it, with its logging level:
    why sections are missing (a warning, with the fix), and how much the fallback model
    wrote."""
    results = list(results)
    notes: list[tuple[int, str]] = []
    missing = any(s.source == "missing" for r in results for s in r.failed)
    if setup.offline_hint and missing:
        notes.append((logging.WARNING, f"aigen: {setup.offline_hint}"))
    fallback = fallback_note(setup, results)
    if fallback is not None:
        notes.append((logging.INFO, fallback))
    return notes


def fallback_note(setup: Setup, results: Iterable[PageResult]) -> str | None:
    """How much of the site the fallback model wrote, and what that means; ``None`` when
    it wrote nothing."""
    fallback = setup.fallback
    if fallback is None:
        return None
    sections = [s for r in results for s in r.sections if s.text is not None]
    written = sum(1 for s in sections if s.fallback)
    if not written:
        return None
    return (
        f"aigen: {written} of {len(sections)} sections written by the fallback model "
        f"{fallback.model} ({fallback.name}), not {setup.settings.model}: cached apart "
        "from its answers and never locked; a build with an API key replaces them"
    )
