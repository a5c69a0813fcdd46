"""``mkdocs-aigen regenerate``: what changes in the lock, and the diff it prints.

The command itself (loading the project, running the engine) lives in :mod:`mkdocs_aigen.cli`
with the other commands; this module holds the two decisions of its own.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from mkdocs_aigen.jobs import PageResult
from mkdocs_aigen.lockfile import LockEntry, LockFile

#: The lock's kind of entry for each stage a refresh can send.
_KINDS = {"section": "section", "augment": "section", "expand": "outline", "polish": "polish"}


def relock(
    lock: LockFile,
    result: PageResult,
    refreshed: Iterable[tuple[str, tuple[str, ...]]],
    model: str,
    *,
    skip: Collection[str] = (),
) -> tuple[LockFile, list[LockEntry]]:
    """``lock`` with the entries of what was regenerated replaced, in place, by the new text.

    Every other entry stays exactly as it was, a person's edits included. The page's
    polish entry is replaced too when the polished page changed (it is the polish of the
    new sections). Returns the new lock and the entries written.
    """
    fresh = LockFile.from_results([result], model, skip=skip)
    wanted = {(_KINDS[stage], " > ".join(path)) for stage, path in refreshed if stage in _KINDS}
    if result.polish_key and result.polish_key not in lock.entries:
        wanted.add(("polish", ""))
    replacements = {
        (e.page, e.kind, e.path): e for e in fresh.entries.values() if (e.kind, e.path) in wanted
    }
    updated = LockFile(lock.path, version=lock.version)
    placed: set[tuple[str, str, str]] = set()
    for entry in lock.entries.values():
        place = (entry.page, entry.kind, entry.path)
        new = replacements.get(place)
        if new is None:
            updated.add(entry)
        elif place not in placed:
            updated.add(new)  # where the old one stood: the file keeps its order
            placed.add(place)
    for place, new in replacements.items():
        if place not in placed:
            updated.add(new)
    return updated, list(replacements.values())


def unified(old: str, new: str, name: str) -> str:
    """A unified diff of a page's generated text before and after (empty: no change)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{name}",
        tofile=f"b/{name}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
