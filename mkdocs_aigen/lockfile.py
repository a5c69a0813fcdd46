"""The lock file: generated text in a reviewable, diff-friendly YAML file.

One entry per section (page, heading path, request hash, inputs hash, model, text), one per
outline expansion and one per polished page. A build reads it before the cache; an entry is
used while its hash matches the request the current stub makes, or, when the templates
changed (an upgrade of mkdocs-aigen, an edited ``templates_dir``), while its inputs hash
matches what the request is made from. So an author's edit to a section's text is kept
until that section's stub changes, and nothing but the stub decides that.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mkdocs_aigen.jobs import PageResult

if TYPE_CHECKING:
    from mkdocs_aigen.requests import ChatRequest

#: 2: request hashes include the template fingerprint. Version 1 entries are still found
#: (under the hash they were written with) until ``mkdocs-aigen lock`` re-keys them.
LOCK_VERSION = 2
HEADER = (
    "# mkdocs-aigen lock file: generated text, reviewed like code.\n"
    "# Edit a section's text to change it; the edit is kept until the section's stub changes.\n"
    "# Refresh with `mkdocs-aigen lock`; `mkdocs-aigen lock --check` fails when it is stale.\n"
)


class LockError(Exception):
    """A lock file that cannot be read, with where and why."""


@dataclass
class LockEntry:
    """One stored answer."""

    page: str
    kind: str  # "section", "outline" or "polish"
    path: str
    hash: str
    text: str
    model: str = ""
    #: :func:`inputs_key` of the request (empty in entries written before it existed).
    inputs: str = ""
    #: Label -> SHA-256 of each source the section was written from (``sources:``).
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class LockFile:
    """Answers by request hash, and where each belongs."""

    path: Path | None = None
    entries: dict[str, LockEntry] = field(default_factory=dict)
    #: The format the file was written in (a new lock is written in the current one).
    version: int = LOCK_VERSION
    _by_inputs: dict[str, LockEntry] | None = field(default=None, repr=False, compare=False)

    def answer(self, key: str) -> str | None:
        """The locked answer for a request hash."""
        entry = self.entries.get(key)
        return entry.text if entry is not None else None

    def answer_for(self, request: ChatRequest) -> tuple[str, str] | None:
        """``(hash, text)`` of the entry for ``request`` (the engine's first stop).

        A lock written by an older version, or with other templates, knows the request by
        the hash of its time: its entries, and whatever a person reviewed in them, stay in
        use after an upgrade, found by what the request is made from.
        """
        text = self.answer(request.key)
        if text is not None:
            return request.key, text
        if request.inputs:
            if self._by_inputs is None:  # built on the first miss only
                self._by_inputs = {e.inputs: e for e in self.entries.values() if e.inputs}
            entry = self._by_inputs.get(request.inputs)
            if entry is not None:
                return entry.hash, entry.text
        if self.version < LOCK_VERSION:
            from mkdocs_aigen.requests import request_key  # asked only on a miss

            legacy = request_key(request, templates=False)
            text = self.answer(legacy)
            if text is not None:
                return legacy, text
        return None

    def by_place(self) -> dict[tuple[str, str, str], LockEntry]:
        """Entries by ``(page, kind, path)``, to tell a stale entry from a missing one."""
        return {(e.page, e.kind, e.path): e for e in self.entries.values()}

    @classmethod
    def load(cls, path: Path) -> LockFile:
        """Read ``path``; a missing file is an empty lock."""
        if not path.exists():
            return cls(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise LockError(f"lock file {path}: cannot be read ({_one_line(error)})") from None
        if not isinstance(data, dict) or not isinstance(data.get("pages", {}), dict):
            raise LockError(f"lock file {path}: expected a mapping with 'pages'")
        version = data.get("version", 1)
        lock = cls(path, version=version if isinstance(version, int) else 1)
        for page, body in (data.get("pages") or {}).items():
            for entry in _entries(path, str(page), body):
                lock.entries[entry.hash] = entry
        return lock

    @classmethod
    def from_results(
        cls, results: Iterable[PageResult], model: str, *, skip: Collection[str] = ()
    ) -> LockFile:
        """What a build produced, as a lock. Failed sections are left out, and so is
        whatever a fallback backend wrote: sections marked so, and outlines and polished
        pages whose request hash is in ``skip``."""
        lock = cls()
        for result in results:
            for section in result.sections:
                if section.text is None or section.target == 0 or section.fallback:
                    continue
                lock.add(
                    LockEntry(
                        result.src_path,
                        "section",
                        " > ".join(section.path),
                        section.lock_key,
                        section.text,
                        model,
                        section.lock_inputs,
                        dict(section.sources),
                    )
                )
            for expansion in result.expansions:
                if expansion.key in skip:
                    continue
                lock.add(
                    LockEntry(
                        result.src_path,
                        "outline",
                        " > ".join(expansion.path),
                        expansion.key,
                        json.dumps({"titles": list(expansion.titles)}, ensure_ascii=False),
                        model,
                        expansion.inputs,
                    )
                )
            if result.polish_key and result.polished is not None and result.polish_key not in skip:
                lock.add(
                    LockEntry(
                        result.src_path,
                        "polish",
                        "",
                        result.polish_key,
                        result.polished,
                        model,
                        result.polish_inputs,
                    )
                )
        return lock

    def add(self, entry: LockEntry) -> None:
        """Add or replace the entry under its hash."""
        self.entries[entry.hash] = entry
        self._by_inputs = None

    def dump(self) -> str:
        """Stable YAML: pages and entries sorted, multi-line text as literal blocks."""
        pages: dict[str, dict[str, Any]] = {}
        order = {"section": 0, "outline": 1, "polish": 2}
        # Pages alphabetically; within a page, sections in outline order (the order the
        # build produced them), so a reviewer reads the page as it will appear.
        entries = sorted(self.entries.values(), key=lambda e: (e.page, order[e.kind]))
        for entry in entries:
            page = pages.setdefault(entry.page, {})
            if entry.kind == "section":
                page.setdefault("sections", []).append(
                    {
                        "path": entry.path,
                        "hash": entry.hash,
                        **_inputs(entry),
                        "model": entry.model,
                        **({"sources": dict(entry.sources)} if entry.sources else {}),
                        "text": _Literal(entry.text),
                    }
                )
            elif entry.kind == "outline":
                titles = json.loads(entry.text)["titles"]
                page.setdefault("outlines", []).append(
                    {
                        "path": entry.path,
                        "hash": entry.hash,
                        **_inputs(entry),
                        "model": entry.model,
                        "titles": titles,
                    }
                )
            else:
                page["polish"] = {
                    "hash": entry.hash,
                    **_inputs(entry),
                    "model": entry.model,
                    "text": _Literal(entry.text),
                }
        body = yaml.dump(
            {"version": LOCK_VERSION, "pages": pages},
            Dumper=_Dumper,
            sort_keys=False,
            allow_unicode=True,
            width=100,
            default_flow_style=False,
        )
        return HEADER + body

    def write(self, path: Path) -> None:
        """Write atomically, so an interrupted write never leaves half a lock."""
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(self.dump(), encoding="utf-8")
        temporary.replace(path)


def _entries(path: Path, page: str, body: Any) -> Iterable[LockEntry]:
    if not isinstance(body, dict):
        raise LockError(f"lock file {path}: pages.{page}: expected a mapping")
    for index, item in enumerate(body.get("sections") or []):
        where = f"pages.{page}.sections[{index}]"
        yield LockEntry(
            page,
            "section",
            _str(item, "path", where, path),
            _str(item, "hash", where, path),
            _str(item, "text", where, path),
            str(item.get("model", "")),
            _optional_str(item, "inputs", where, path),
            _sources(item, where, path),
        )
    for index, item in enumerate(body.get("outlines") or []):
        where = f"pages.{page}.outlines[{index}]"
        titles = item.get("titles") if isinstance(item, dict) else None
        if not isinstance(titles, list) or not all(isinstance(t, str) for t in titles):
            raise LockError(f"lock file {path}: {where}.titles: expected a list of strings")
        yield LockEntry(
            page,
            "outline",
            _str(item, "path", where, path),
            _str(item, "hash", where, path),
            json.dumps({"titles": titles}, ensure_ascii=False),
            str(item.get("model", "")),
            _optional_str(item, "inputs", where, path),
        )
    polish = body.get("polish")
    if polish is not None:
        where = f"pages.{page}.polish"
        yield LockEntry(
            page,
            "polish",
            "",
            _str(polish, "hash", where, path),
            _str(polish, "text", where, path),
            str(polish.get("model", "")),
            _optional_str(polish, "inputs", where, path),
        )


def _one_line(error: Exception) -> str:
    """PyYAML's errors span several lines with carets; a build error is one line."""
    mark = getattr(error, "problem_mark", None)
    if isinstance(error, yaml.MarkedYAMLError) and mark is not None:
        text = f"invalid YAML on line {mark.line + 1}: {error.problem or 'syntax error'}"
        if error.context and error.context_mark is not None:
            # An unclosed bracket fails at the end of the file; where it opened is what helps.
            text += f", {error.context} that starts on line {error.context_mark.line + 1}"
        return text
    return " ".join(str(error).split())


def _str(item: Any, key: str, where: str, path: Path) -> str:
    value = item.get(key) if isinstance(item, dict) else None
    if not isinstance(value, str):
        raise LockError(f"lock file {path}: {where}.{key}: expected a string")
    return value


def _optional_str(item: dict[str, Any], key: str, where: str, path: Path) -> str:
    return _str(item, key, where, path) if key in item else ""


def _sources(item: dict[str, Any], where: str, path: Path) -> dict[str, str]:
    value = item.get("sources", {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise LockError(f"lock file {path}: {where}.sources: expected a mapping of path: sha256")
    return dict(value)


def _inputs(entry: LockEntry) -> dict[str, str]:
    """The ``inputs`` line, left out when unknown (an entry read from an older lock)."""
    return {"inputs": entry.inputs} if entry.inputs else {}


class _Literal(str):
    """Text written as a YAML literal block (``|``) when that keeps it byte for byte, so a
    diff shows changed lines; otherwise as a double-quoted string with escapes."""


class _Dumper(yaml.SafeDumper):
    def choose_scalar_style(self) -> str:
        # PyYAML refuses block style for any text with a tab, which would quote every
        # code sample indented with tabs; ``_block_safe`` has the exact rule instead.
        if self.event.style == "|" and not self.flow_level and not self.simple_key_context:
            return "|"
        return str(super().choose_scalar_style())


def _block_safe(text: str) -> bool:
    r"""Whether a literal block scalar reads back as exactly ``text``.

    Not when it has whitespace at the end of a line (a Markdown hard break: editors and
    the eye lose it), a line break other than ``\n`` (YAML reads ``\r\n``, ``\r`` and
    ``\x85`` back as ``\n``), or a character YAML cannot carry unescaped.
    """
    if not text or text[-1] in " \t" or " \n" in text or "\t\n" in text:
        return False
    return all(ch == "\n" or _printable(ch) for ch in text)


def _printable(ch: str) -> bool:
    # YAML's printable set, less the line separators and the byte-order mark; a tab is
    # content inside a block (only indentation must be spaces).
    return (
        ch == "\t"
        or "\x20" <= ch <= "\x7e"
        or "\xa0" <= ch <= "\ud7ff"
        or ("\ue000" <= ch <= "\ufffd" and ch != "\ufeff")
        or "\U00010000" <= ch < "\U0010ffff"
    )


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    text = str(value)
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if _block_safe(text) else '"'
    )


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # PyYAML writes these unescaped in plain and single-quoted strings, and reads them
    # back as line breaks (or drops the byte-order mark): only double quotes escape them.
    style = '"' if any(ch in _SEPARATORS for ch in value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SEPARATORS = frozenset("\r\x85\u2028\u2029\ufeff")

_Dumper.add_representer(_Literal, _literal)
_Dumper.add_representer(str, _string)
