"""What each section was last written from, so ``mkdocs-aigen plan`` can say why a section
will be asked for again: new, stub edited, source changed, neighbours changed, template
changed or model changed.

A request's hash says only *that* something changed. Each section therefore also carries
its :func:`section_parts`, one short digest per kind of input, and a build records them
per page in the cache directory (``history/``, a few hundred bytes a page). Only
``plan`` reads them back; nothing a build generates depends on them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mkdocs_aigen.jobs import PageResult

#: Template variables about the section's surroundings rather than its own stub.
NEIGHBOUR_VARIABLES = frozenset(
    ("nav_previous", "nav_next", "outline", "previous_section", "next_section")
)
#: Template variables that carry ``sources:`` (their change is named by file instead).
SOURCE_VARIABLES = frozenset(("page_sources", "section_sources", "grounded"))
_EMPTY: tuple[Any, ...] = (None, "", [], (), {})


def section_parts(
    variables: Mapping[str, Any],
    model: str,
    sampling: Any,
    templates: str,
    sources: Iterable[tuple[str, str]],
) -> dict[str, Any]:
    """One digest per kind of input of a section's request, and its sources by label."""
    own = {k: v for k, v in variables.items() if k not in NEIGHBOUR_VARIABLES | SOURCE_VARIABLES}
    around = {k: v for k, v in variables.items() if k in NEIGHBOUR_VARIABLES}
    return {
        "model": _digest([model, sampling]),
        "stub": _digest(own),
        "neighbours": _digest(around),
        "templates": templates[:16],
        "sources": {label: digest[:16] for label, digest in sources},
    }


def reasons(before: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> list[str]:
    """Why a section whose answer is not stored will be asked for, most telling first."""
    if before is None or now is None:
        return ["new"]
    found = []
    if before.get("model") != now.get("model"):
        found.append("model changed")
    if before.get("stub") != now.get("stub"):
        found.append("stub edited")
    old, new = before.get("sources") or {}, now.get("sources") or {}
    for label in sorted(set(old) | set(new)):
        if label not in old:
            found.append(f"source {label} newly cited")
        elif label not in new:
            found.append(f"source {label} no longer cited")
        elif old[label] != new[label]:
            found.append(f"source {label} changed")
    if before.get("neighbours") != now.get("neighbours"):
        found.append("neighbours changed")
    if before.get("templates") != now.get("templates"):
        found.append("template changed")
    return found or ["not in the cache"]


class History:
    """The parts each section of each page was last written from, under ``directory``."""

    def __init__(self, directory: Path | None, site: str) -> None:
        self.directory = directory / "history" if directory is not None else None
        self.site = site

    def read(self, src_path: str) -> dict[str, Any]:
        """Parts by section path (``A > B``); empty when unknown or unreadable."""
        if self.directory is None:
            return {}
        try:
            data = json.loads(self._path(src_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        sections = data.get("sections") if isinstance(data, dict) else None
        return sections if isinstance(sections, dict) else {}

    def record(self, results: Iterable[PageResult]) -> None:
        """Remember what each written section of ``results`` came from (best effort: a
        history that cannot be written only costs ``plan`` its reasons)."""
        if self.directory is None:
            return
        for result in results:
            sections = {
                " > ".join(s.path): s.parts
                for s in result.sections
                if s.text is not None and s.parts is not None
            }
            if not sections:
                continue
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self._path(result.src_path)
                temporary = path.with_suffix(".tmp")
                payload = {"page": result.src_path, "sections": sections}
                temporary.write_text(json.dumps(payload, sort_keys=True), encoding="utf-8")
                os.replace(temporary, path)
            except OSError:
                continue

    def _path(self, src_path: str) -> Path:
        assert self.directory is not None
        name = hashlib.sha256(f"{self.site}\0{src_path}".encode()).hexdigest()[:24]
        return self.directory / f"{name}.json"


def _digest(value: Any) -> str:
    present = value
    if isinstance(value, Mapping):
        present = {k: v for k, v in value.items() if v not in _EMPTY}
    text = json.dumps(present, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
