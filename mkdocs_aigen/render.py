"""``mkdocs-aigen render``: the site's pages as plain Markdown, for any site generator.

Every file of ``docs_dir`` goes to an output folder. A stub page gets its generated
sections at its marker and loses the ``aigen`` key of its front matter; every other file
is copied byte for byte. The text comes from the same lock, cache and engine as a build,
so a render followed by a build (or the other way round) pays for nothing twice.
"""

from __future__ import annotations

import filecmp
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mkdocs_aigen.markers import insert_block

#: The front matter MkDocs reads: a ``---`` line, YAML, a ``---`` or ``...`` line.
_FRONT_MATTER = re.compile(r"\A(---[ \t]*\r?\n)(.*?\r?\n)((?:---|\.\.\.)[ \t]*(?:\r?\n|\Z))", re.S)
#: A top-level key: the line starts with something other than space, ``#`` or ``-``.
_TOP_LEVEL_KEY = re.compile(r"^[^\s#-][^:\n]*:", re.M)


def without_stub(text: str) -> tuple[str, str]:
    """``(front matter without its aigen key, body)``; the front matter is ``""`` when
    nothing else was in it. Other keys keep their exact text: comments and quoting too."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return "", text
    opening, yaml_text, closing = match.groups()
    body = text[match.end() :]
    keys = list(_TOP_LEVEL_KEY.finditer(yaml_text))
    kept = yaml_text
    for index, key in enumerate(keys):
        if key.group(0).rstrip(":").strip().strip("'\"") == "aigen":
            end = keys[index + 1].start() if index + 1 < len(keys) else len(yaml_text)
            kept = yaml_text[: key.start()] + yaml_text[end:]
            break
    if not kept.strip():
        return "", body
    return opening + kept + closing, body


def rendered_page(text: str, block: str, src_path: str) -> str:
    """A stub page as plain Markdown: its block at the marker, its stub gone."""
    front_matter, body = without_stub(text)
    return front_matter + insert_block(body, block, src_path)


@dataclass(frozen=True)
class Difference:
    """One way the output folder differs from what a render writes."""

    path: str
    why: str


#: What an output file holds: a rendered page's bytes, or the docs file to copy as it is
#: (a path, so a site with large images is compared and copied without holding them).
Content = bytes | Path


def planned_files(
    docs_dir: Path, sources: Iterable[Path], rendered: Mapping[str, str]
) -> dict[str, Content]:
    """Every output file (relative path -> content): the rendered stub pages, the rest as is."""
    files: dict[str, Content] = {}
    for path in sources:
        relative = path.relative_to(docs_dir).as_posix()
        text = rendered.get(relative)
        files[relative] = text.encode("utf-8") if text is not None else path
    return files


def differences(out: Path, files: Mapping[str, Content]) -> list[Difference]:
    """What ``out`` lacks, holds in another version, or holds that a render would not write."""
    found: list[Difference] = []
    for relative, content in sorted(files.items()):
        target = out / relative
        if not target.is_file():
            found.append(Difference(relative, "missing"))
        elif not _same(target, content):
            found.append(Difference(relative, "out of date"))
    if out.is_dir():
        for path in sorted(out.rglob("*")):
            relative = path.relative_to(out).as_posix()
            if path.is_file() and relative not in files:
                found.append(Difference(relative, "no longer in docs_dir"))
    return found


def _same(target: Path, content: Content) -> bool:
    if isinstance(content, Path):
        # Sizes first, then the bytes in chunks: never both files whole in memory.
        return filecmp.cmp(target, content, shallow=False)
    return target.stat().st_size == len(content) and target.read_bytes() == content


def write_files(out: Path, files: Mapping[str, Content]) -> int:
    """Make ``out`` hold exactly ``files``; returns how many were written or removed."""
    changes = differences(out, files)
    for change in changes:
        target = out / change.path
        if change.why == "no longer in docs_dir":
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        content = files[change.path]
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
    # Folders a removed page leaves empty go too, so the output mirrors docs_dir.
    if out.is_dir():
        for folder in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                shutil.rmtree(folder)
    return len(changes)
