"""The generated sites the benchmarks build: pages of plain outlines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_stub_site(
    root: Path, *, pages: int, sections: int, aigen: dict[str, Any], name: str
) -> Path:
    """``pages`` stub pages (``p000.md``...) of ``sections`` sections ``Topic P-I`` each,
    with ``aigen`` as the plugin's options; returns the mkdocs.yml path."""
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for page in range(pages):
        titles = "\n".join(f"    - Topic {page}-{i}" for i in range(sections))
        (docs / f"p{page:03d}.md").write_text(
            f"---\ntitle: Page {page}\naigen:\n  brief: Page {page} of the {name} benchmark.\n"
            f"  outline:\n{titles}\n---\n# Page {page}\n\n<!-- aigen -->\n",
            encoding="utf-8",
        )
    config = {
        "site_name": f"{name} benchmark",
        "docs_dir": "docs",
        "site_dir": "site",
        "plugins": [{"aigen": aigen}],
    }
    path = root / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
