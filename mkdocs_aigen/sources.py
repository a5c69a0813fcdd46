"""``sources:``: the project's own files, line ranges, snippet sections and Python objects
that a section is written from.

Two halves. :func:`parse_source` turns what an author wrote (``src/app/config.py:10-40``)
into a :class:`SourceSpec` without touching the disk. A :class:`SourceLibrary`, one per
build, resolves specs into :class:`SourceText` (label, text, digest): it reads and hashes
each file once however many sections cite it, never reads outside its root, and refuses
what cannot be a source (binary, too large, missing) with a :class:`SourceError` saying
what was expected, before a single request is sent.

Python objects are read statically with griffe, so the user's code is never imported.
An object's text is its signature and docstring (its code too when asked): reformatting
unrelated code in the same file changes neither the text nor its digest, so nothing is
regenerated for it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

#: A source file larger than this is refused: it would not fit a prompt anyway, and it is
#: most likely a data file or a build artefact cited by mistake.
MAX_SOURCE_BYTES = 1_000_000

Kind = Literal["file", "glob", "lines", "section", "symbol", "module"]

_LINES_RE = re.compile(r"(?P<path>.+):(?P<start>\d+)-(?P<end>\d+)\Z")
_NAMED_RE = re.compile(r"(?P<path>.+):(?P<name>[A-Za-z_][\w.-]*)\Z")
_DOTTED_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
_GLOB_CHARS = frozenset("*?[")
# pymdownx.snippets' section markers, after any comment leader: `# --8<-- [start:name]`.
_MARKER_RE = re.compile(r"-{1,}8<-{1,}\s*\[(?P<edge>start|end):(?P<name>[\w-]+)\]")


class SourceError(Exception):
    """A source that cannot be used; the message says what was expected."""


@dataclass(frozen=True)
class SourceSpec:
    """One ``sources:`` entry as written, parsed but not yet read."""

    #: The entry exactly as written (messages, the lock, provenance).
    written: str
    kind: Kind
    #: A path or glob relative to the project, or a dotted module name (``module``).
    path: str
    start: int = 0
    end: int = 0
    #: The snippet section's name, or the object's dotted path inside its module.
    name: str = ""
    #: For objects: include their code, not only signature and docstring.
    code: bool = False


@dataclass(frozen=True)
class SourceText:
    """A resolved source: what the prompt shows under ``label``."""

    #: ``src/app/config.py``, ``src/app/config.py:10-40``, ``src/app/config.py::Config``.
    label: str
    #: The file it comes from, relative to the project (for links).
    path: str
    text: str
    #: SHA-256 of ``text``: what a request, the lock and the report know it by.
    digest: str
    #: First and last line in the file, when known (for links).
    lines: tuple[int, int] | None = None
    #: Cut to fit the prompt budget (``digest`` is still the whole text's).
    trimmed: bool = False

    def __str__(self) -> str:
        # What :func:`mkdocs_aigen.requests.inputs_key` hashes (its JSON ``default=str``):
        # the identity of the text, not the text, so keys stay cheap for large sources.
        cut = f"[:{len(self.text)}]" if self.trimmed else ""
        return f"{self.label}@{self.digest}{cut}"


def parse_source(raw: Any) -> SourceSpec:
    """Parse one entry: a string, or ``{source: <string>, code: true}``.

    Raises :class:`SourceError` with what was expected; no file is read.
    """
    code = False
    if isinstance(raw, Mapping):
        unknown = sorted(str(key) for key in raw if key not in ("source", "code"))
        if "source" not in raw or unknown:
            raise SourceError(
                "a string, or a mapping with 'source' (and optional 'code: true')"
                + (f"; unknown keys: {', '.join(unknown)}" if unknown else "")
            )
        code = raw.get("code", False)
        if not isinstance(code, bool):
            raise SourceError("'code' must be true or false")
        raw = raw["source"]
    if not isinstance(raw, str) or not raw.strip():
        raise SourceError(
            "a path, glob, 'path:START-END', 'path:section', 'path.py::Object' "
            "or 'package.module:Object'"
        )
    written = raw.strip()
    if "::" in written:
        path, _, name = written.partition("::")
        if not path or not _DOTTED_RE.match(name):
            raise SourceError("'path/to/module.py::Object.member', with a dotted object name")
        return SourceSpec(written, "symbol", path, name=name, code=code)
    lines = _LINES_RE.match(written)
    if lines is not None:
        start, end = int(lines["start"]), int(lines["end"])
        if start < 1 or end < start:
            raise SourceError(f"a line range START-END with 1 <= START <= END, found {start}-{end}")
        return SourceSpec(written, "lines", lines["path"], start=start, end=end)
    named = _NAMED_RE.match(written)
    if named is not None:
        # `path:name` is a snippet section of a file; `package.module:Object` an object
        # found by module name. A path has a slash or a file suffix that is not a module.
        left = named["path"]
        if _DOTTED_RE.match(left) and Path(left).suffix.lower() not in _FILE_SUFFIXES:
            return SourceSpec(written, "module", left, name=named["name"], code=code)
        return SourceSpec(written, "section", left, name=named["name"])
    kind: Kind = "glob" if _GLOB_CHARS & set(written) else "file"
    return SourceSpec(written, kind, written)


# Suffixes that make `left:name` a file's snippet section rather than `package.module:Obj`
# (a module named `py` or `md` is not worth the ambiguity).
_FILE_SUFFIXES = frozenset(
    [
        ".py",
        ".md",
        ".txt",
        ".toml",
        ".yml",
        ".yaml",
        ".json",
        ".cfg",
        ".ini",
        ".js",
        ".ts",
        ".rs",
        ".go",
        ".java",
        ".c",
        ".h",
        ".cpp",
        ".sh",
        ".rst",
        ".html",
        ".css",
        ".sql",
    ]
)


@dataclass(frozen=True)
class _File:
    text: str
    digest: str
    #: ``(size, mtime_ns)`` when read: a stored page checks these first, with one ``stat``.
    stamp: tuple[int, int] = (0, 0)


class SourceLibrary:
    """Resolves specs for one build; each file is read and hashed once.

    ``root`` is the project (the directory of ``mkdocs.yml``): relative paths start
    there. ``allowed`` is the directory no source may leave (``sources_root``), ``root``
    unless widened.
    """

    def __init__(self, root: Path, allowed: Path | None = None) -> None:
        self.root = root.resolve()
        self.allowed = (allowed or root).resolve()
        self._files: dict[str, _File | SourceError] = {}
        self._globs: dict[str, tuple[str, ...]] = {}
        self._resolved: dict[SourceSpec, tuple[SourceText, ...]] = {}

    # -- what a page's freshness is checked against ----------------------------------------

    def file_digest(self, path: str) -> str | None:
        """The digest of a project file's bytes as text, ``None`` when it cannot be read."""
        try:
            return self._file(path).digest
        except SourceError:
            return None

    def file_stamp(self, path: str) -> tuple[int, int] | None:
        """``(size, mtime_ns)`` of a file as it was read, ``None`` when it cannot be read."""
        try:
            return self._file(path).stamp
        except SourceError:
            return None

    def glob(self, pattern: str) -> tuple[str, ...]:
        """The files ``pattern`` matches today, relative to the project, sorted."""
        found = self._globs.get(pattern)
        if found is None:
            import glob as globbing  # only sites that cite globs pay for it

            matches = globbing.glob(pattern, root_dir=self.root, recursive=True)
            found = tuple(
                sorted(
                    Path(m).as_posix()
                    for m in matches
                    if (self.root / m).is_file() and not _hidden(m)
                )
            )
            self._globs[pattern] = found
        return found

    @property
    def files_read(self) -> list[Path]:
        """Every file read so far (``mkdocs serve`` watches them)."""
        return [self.root / path for path in self._files]

    # -- resolution ------------------------------------------------------------------------

    def resolve(self, spec: SourceSpec) -> tuple[SourceText, ...]:
        """The texts ``spec`` stands for (a glob: one per file)."""
        done = self._resolved.get(spec)
        if done is None:
            done = self._resolved[spec] = self._resolve(spec)
        return done

    def _resolve(self, spec: SourceSpec) -> tuple[SourceText, ...]:
        if spec.kind == "glob":
            matches = self.glob(spec.path)
            if not matches:
                raise SourceError(f"a glob that matches files; '{spec.path}' matches none")
            return tuple(self._whole(path) for path in matches)
        if spec.kind == "module":
            if (self.root / spec.path).is_file():  # `Makefile:build`: a file after all
                return (self._section(self._relative(spec.path), spec),)
            return (self._module_object(spec),)
        path = self._relative(spec.path)
        if spec.kind == "file":
            return (self._whole(path),)
        if spec.kind == "lines":
            return (self._lines(path, spec),)
        if spec.kind == "section":
            return (self._section(path, spec),)
        return (self._file_object(path, spec),)

    def _whole(self, path: str) -> SourceText:
        file = self._file(path)
        return SourceText(path, path, file.text, file.digest)

    def _lines(self, path: str, spec: SourceSpec) -> SourceText:
        lines = self._file(path).text.splitlines()
        if spec.end > len(lines):
            raise SourceError(
                f"a line range within {path}'s {len(lines)} lines, found {spec.start}-{spec.end}"
            )
        text = "\n".join(lines[spec.start - 1 : spec.end])
        return _text(f"{path}:{spec.start}-{spec.end}", path, text, (spec.start, spec.end))

    def _section(self, path: str, spec: SourceSpec) -> SourceText:
        lines = self._file(path).text.splitlines()
        start = end = None
        names: list[str] = []
        for number, line in enumerate(lines, 1):
            for marker in _MARKER_RE.finditer(line):
                if marker["edge"] == "start":
                    names.append(marker["name"])
                if marker["name"] != spec.name:
                    continue
                if marker["edge"] == "start" and start is None:
                    start = number
                elif marker["edge"] == "end" and start is not None and end is None:
                    end = number
        if start is None or end is None:
            known = ", ".join(dict.fromkeys(names)) or "none"
            raise SourceError(
                f"a section marked '--8<-- [start:{spec.name}]' ... '[end:{spec.name}]' "
                f"in {path} (sections there: {known})"
            )
        text = "\n".join(lines[start : end - 1])
        return _text(f"{path}:{spec.name}", path, text, (start + 1, end - 1))

    def _file_object(self, path: str, spec: SourceSpec) -> SourceText:
        if not path.endswith(".py"):
            raise SourceError(f"a Python file before '::', found '{path}'")
        griffe = _griffe()
        file = self._file(path)
        module_name = Path(path).stem
        try:
            module = griffe.visit(module_name, self.root / path, code=file.text)
        except SyntaxError as error:
            raise SourceError(f"a Python file griffe can parse ({path}: {error.msg})") from None
        return _object_text(module, spec, path, f"{path}::{spec.name}", file.text)

    def _module_object(self, spec: SourceSpec) -> SourceText:
        griffe = _griffe()
        search = [str(p) for p in (self.root / "src", self.root) if p.is_dir()]
        try:
            module = griffe.load(
                spec.path,
                search_paths=search,
                allow_inspection=False,  # never import the user's code
                resolve_aliases=False,
            )
        # griffe raises ImportError, KeyError or its own errors for what it cannot find.
        except Exception as error:
            raise SourceError(
                f"a module found under {self._shown(self.root)} or its src/ folder: "
                f"'{spec.path}' ({type(error).__name__})"
            ) from None
        filepath = getattr(module, "filepath", None)
        if not isinstance(filepath, Path):
            raise SourceError(f"a module in a single file: '{spec.path}'")
        path = self._relative(str(filepath))
        file = self._file(path)
        return _object_text(module, spec, path, spec.written, file.text)

    # -- reading ---------------------------------------------------------------------------

    def _relative(self, written: str) -> str:
        """The project-relative POSIX path of ``written``, inside the allowed root."""
        path = Path(written)
        if path.is_absolute() and not str(written).startswith(str(self.root)):
            raise SourceError(
                f"a path relative to {self._shown(self.root)}, found the absolute path '{written}'"
            )
        full = (self.root / path).resolve()  # follows symlinks: where it really points
        if not full.is_relative_to(self.allowed):
            raise SourceError(
                f"a path inside {self._shown(self.allowed)} ('{written}' leads outside it; "
                "the 'sources_root' option widens it)"
            )
        if not full.exists():
            raise SourceError(f"an existing file; '{written}' does not exist")
        if not full.is_file():
            raise SourceError(f"a file; '{written}' is a directory (a glob reads a folder)")
        try:
            return full.relative_to(self.root).as_posix()
        except ValueError:  # inside a widened sources_root but outside the project
            return Path(os.path.relpath(full, self.root)).as_posix()

    def _file(self, path: str) -> _File:
        cached = self._files.get(path)
        if cached is None:
            cached = self._files[path] = self._read(path)
        if isinstance(cached, SourceError):
            raise cached
        return cached

    def _read(self, path: str) -> _File | SourceError:
        full = self.root / path
        try:
            status = full.stat()
            size = status.st_size
            if size > MAX_SOURCE_BYTES:
                return SourceError(
                    f"a source file of at most {MAX_SOURCE_BYTES // 1000} kB; {path} has "
                    f"{size // 1000} kB (cite a line range or a section of it)"
                )
            data = full.read_bytes()
        except OSError as error:
            return SourceError(f"a readable file; {path}: {error.strerror or error}")
        if b"\0" in data:
            return SourceError(f"a text file; {path} is binary")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return SourceError(f"a UTF-8 text file; {path} is not")
        text = text.replace("\r\n", "\n")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return _File(text, digest, (size, status.st_mtime_ns))

    def _shown(self, path: Path) -> str:
        return "the project folder" if path == self.root else str(path)


def resolve_all(library: SourceLibrary, specs: Iterable[SourceSpec]) -> tuple[SourceText, ...]:
    """Every text of ``specs``, in order, each label once."""
    seen: dict[str, SourceText] = {}
    for spec in specs:
        for text in library.resolve(spec):
            seen.setdefault(text.label, text)
    return tuple(seen.values())


def _text(label: str, path: str, text: str, lines: tuple[int, int] | None = None) -> SourceText:
    return SourceText(label, path, text, hashlib.sha256(text.encode("utf-8")).hexdigest(), lines)


def _hidden(path: str) -> bool:
    # `**` would otherwise walk into .git, .venv and caches.
    return any(part.startswith(".") or part == "__pycache__" for part in Path(path).parts)


def _griffe() -> Any:
    try:
        import griffe
    except ImportError:  # pragma: no cover - griffe is a core dependency
        raise SourceError("griffe installed, to read Python objects") from None
    return griffe


def _object_text(module: Any, spec: SourceSpec, path: str, label: str, source: str) -> SourceText:
    """A Python object as the prompt shows it: signature and docstring (and code)."""
    try:
        obj = module[spec.name]
    except (KeyError, ValueError, AttributeError):
        members = ", ".join(
            sorted(
                name
                for name, member in module.members.items()
                if not name.startswith("_") and not member.is_alias  # not what it imports
            )
        )
        raise SourceError(
            f"an object defined in {path}; '{spec.name}' is not (it has: {members or 'nothing'})"
        ) from None
    parts = [_signature(obj)]
    if obj.docstring is not None:
        parts.append(_indent(f'"""{obj.docstring.value}"""'))
    if obj.kind.value == "class" and not spec.code:
        for member in obj.members.values():
            if member.name.startswith("_") and member.name != "__init__":
                continue
            if member.is_alias:
                continue
            line = _indent(_signature(member))
            if member.docstring is not None:
                line += f"\n{_indent(_indent(member.docstring.value.splitlines()[0]))}"
            parts.append(line)
    lines = None
    if obj.lineno is not None and obj.endlineno is not None:
        lines = (obj.lineno, obj.endlineno)
        if spec.code:
            parts.append("\n".join(source.splitlines()[obj.lineno - 1 : obj.endlineno]))
    return _text(label, path, "\n".join(parts), lines)


def _signature(obj: Any) -> str:
    kind = obj.kind.value
    if kind == "function":
        return f"def {obj.signature()}"
    if kind == "class":
        bases = ", ".join(str(base) for base in obj.bases)
        return f"class {obj.name}" + (f"({bases})" if bases else "")
    if kind == "attribute":
        annotation = f": {obj.annotation}" if obj.annotation is not None else ""
        value = f" = {obj.value}" if obj.value is not None else ""
        return f"{obj.name}{annotation}{value}"
    return f"{kind} {obj.path}"


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else line for line in text.splitlines())
