"""The JSON report written next to the built site."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from mkdocs_aigen.jobs import PageResult
from mkdocs_aigen.stats import BuildStats


def write_report(path: Path, stats: BuildStats, results: Iterable[PageResult]) -> None:
    """Per-stage counters, per-page scores, failures and warnings."""
    pages = {}
    for result in results:
        pages[result.src_path] = {
            "sections": len(result.sections),
            "failed": [" > ".join(s.path) for s in result.failed],
            "augmented": [" > ".join(s.path) for s in result.sections if s.augmented],
            "scores": result.scores,
            "regenerated": result.regenerated,
            "polished": result.polished is not None,
            "warnings": list(result.warnings),
        }
    report = {**stats.as_dict(), "pages": dict(sorted(pages.items()))}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
