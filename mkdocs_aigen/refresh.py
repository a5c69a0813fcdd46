"""What to generate again on purpose, bypassing the lock and the cache.

``mkdocs-aigen regenerate PAGE [--section "A > B"] [--stage section|polish|review]`` and
``AIGEN_REFRESH=docs/page.md mkdocs build`` both name a page, and maybe one section or one
stage of it. Every other request of the build is answered as usual; requests that depend
on the new text (the page's polish and review, when a section changed) are new requests,
and so are sent anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: What ``--stage`` accepts, and the request stages each one means.
STAGE_CHOICES: dict[str, tuple[str, ...]] = {
    "section": ("section", "augment", "expand"),
    "polish": ("polish",),
    "review": ("review",),
}
#: Stages of the whole page rather than of one section.
_PAGE_STAGES = ("polish", "review")


class RefreshError(ValueError):
    """A page or section to regenerate that does not exist, with what does."""


@dataclass(frozen=True)
class Refresh:
    """The part of one page to generate again."""

    #: The page's ``src_uri`` (``guides/setup.md``).
    page: str
    #: A section's heading path; ``None``: every section.
    section: tuple[str, ...] | None = None
    #: One of :data:`STAGE_CHOICES`; ``None``: every stage (with ``section``: its own).
    stage: str | None = None

    def wants(self, stage: str, path: tuple[str, ...]) -> bool:
        """Whether the request of ``stage`` for ``path`` (``()`` for the page) is fresh."""
        if self.stage is not None and stage not in STAGE_CHOICES[self.stage]:
            return False
        if stage in _PAGE_STAGES:
            # With a section named, the page's polish and review go again only when asked.
            return self.section is None or self.stage is not None
        return self.section is None or path == self.section


def parse_section(text: str) -> tuple[str, ...]:
    """``"Heading > Sub"`` -> ``("Heading", "Sub")``."""
    path = tuple(part.strip() for part in text.split(">"))
    if not all(path):
        raise RefreshError(f"--section '{text}': expected headings joined by ' > '")
    return path


def page_uri(name: str, pages: Iterable[str], docs_dir: Path, root: Path) -> str:
    """The ``src_uri`` of the stub page ``name`` names: relative to ``docs_dir``
    (``page.md``), to the project (``docs/page.md``) or to the working directory."""
    known = sorted(pages)
    candidates = [name.replace("\\", "/").removeprefix("./")]
    for base in (root, Path.cwd()):
        path = (base / name).resolve()
        try:
            candidates.append(path.relative_to(docs_dir.resolve()).as_posix())
        except ValueError:
            continue
    for candidate in candidates:
        if candidate in known:
            return candidate
    listed = ", ".join(known) or "none"
    raise RefreshError(
        f"'{name}' is not a page with an aigen stub (pages with stubs, relative to "
        f"{docs_dir.name}/: {listed})"
    )


def refresh_from_environment(
    value: str, pages: Iterable[str], docs_dir: Path, root: Path
) -> list[Refresh]:
    """``AIGEN_REFRESH``: pages separated by commas, each regenerated whole."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    return [Refresh(page_uri(name, pages, docs_dir, root)) for name in names]
