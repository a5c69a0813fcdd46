"""Answers on disk under the SHA-256 of their request (diskcache, thread and process safe).

Each answer is a JSON string, never a pickle: CI restores cache directories from shared
stores, and a database row that someone planted must not run code when it is read.
:class:`JsonDisk` stores only strings and numbers and refuses pickled rows and keys,
which then read as misses.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CachedAnswer:
    """What a paid-for answer leaves behind."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    stage: str = ""
    label: str = ""
    #: The site that paid for it (its ``mkdocs.yml``): ``cache prune`` leaves other sites'.
    site: str = ""
    #: When it was stored (Unix time), as read back; ``None`` for an answer not yet stored.
    #: Not part of equality: the same answer read back is the same answer.
    created: float | None = field(default=None, compare=False)


def answer_to_json(answer: CachedAnswer) -> str:
    """The JSON record an answer is stored as (a mapping, so later fields can join it)."""
    record = {
        "text": answer.text,
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "model": answer.model,
        "stage": answer.stage,
        "label": answer.label,
        "site": answer.site,
        "created": time.time(),
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def answer_from_json(data: str) -> CachedAnswer | None:
    """The answer in a stored record, or ``None`` for anything that is not one.

    Unknown fields are ignored, so a record written by a newer version still reads.
    """
    try:
        record = json.loads(data)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        return None
    prompt, completion = record.get("prompt_tokens", 0), record.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return CachedAnswer(
        text=record["text"],
        prompt_tokens=prompt,
        completion_tokens=completion,
        model=str(record.get("model", "")),
        stage=str(record.get("stage", "")),
        label=str(record.get("label", "")),
        site=str(record.get("site", "")),
        created=_created(record.get("created")),
    )


def _created(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class RefusedPickle(OSError):
    """A cache row stored as a pickle. An ``OSError``, because diskcache then treats it
    like a row deleted under its feet: a miss."""


@functools.cache
def _json_disk() -> type:
    """:class:`diskcache.Disk` that never unpickles (built on first use: diskcache is
    imported only when a cache is opened)."""
    import diskcache

    class JsonDisk(diskcache.Disk):  # type: ignore[misc]
        """Keys and values as plain strings and numbers; a pickled row is a miss."""

        def put(self, key: Any) -> tuple[Any, bool]:
            if not isinstance(key, (str, bytes, int, float)):
                raise TypeError(f"cache keys are strings, not {type(key).__name__}")
            return super().put(key)  # type: ignore[no-any-return]

        def get(self, key: Any, raw: bool) -> Any:
            # A pickled key (``raw`` false) stays bytes: listing keys must not unpickle.
            if not raw:
                return bytes(key)
            return super().get(key, raw)

        def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
            if not read and not isinstance(value, (str, bytes, int, float)):
                raise TypeError(f"cache values are strings, not {type(value).__name__}")
            return super().store(value, read, key)

        def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
            if mode == diskcache.core.MODE_PICKLE:
                raise RefusedPickle("a pickled cache entry is not read")
            return super().fetch(mode, filename, value, read)

    return JsonDisk


class ResponseCache:
    """A disk cache that degrades to no cache, with one warning, instead of failing a build.

    ``diskcache.Cache`` (not ``FanoutCache``: its ``set`` can drop an entry silently on
    timeout, and a dropped entry is a paid answer lost).
    """

    def __init__(self, directory: Path | None, warn: Callable[[str], None]) -> None:
        self.directory = directory
        self._warn = warn
        self._warned = False
        self._cache: Any = None
        if directory is None:
            return
        try:
            import diskcache

            directory.mkdir(parents=True, exist_ok=True)
            # A generous timeout: two builds sharing the directory wait for each
            # other's writes rather than failing them. Nothing is ever evicted (a paid
            # answer goes only through ``aigen cache prune`` or ``clear``), so no
            # eviction bookkeeping either: without it a write is 4 SQL statements, not 11
            # (0.30 ms of CPU here instead of 0.45, on every generated section).
            self._cache = diskcache.Cache(
                str(directory),
                timeout=60,
                eviction_policy="none",
                cull_limit=0,
                disk=_json_disk(),
            )
        except Exception as error:  # sqlite3 errors, permissions, a file where the dir is
            self._disable(f"cannot open cache directory {directory}: {error}")

    @property
    def enabled(self) -> bool:
        """Whether answers are read from and written to disk."""
        return self._cache is not None

    def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under ``key``, or ``None``."""
        if self._cache is None:
            return None
        try:
            value = self._cache.get(key)
        except Exception as error:
            self._disable(f"cache read failed: {error}")
            return None
        return answer_from_json(value) if isinstance(value, str) else None

    def set(self, key: str, answer: CachedAnswer) -> bool:
        """Store ``answer``; ``False`` if it could not be written (the build goes on)."""
        if self._cache is None:
            return False
        try:
            return bool(self._cache.set(key, answer_to_json(answer)))
        except Exception as error:
            self._disable(f"cache write failed: {error}")
            return False

    def keys(self) -> Iterator[str]:
        """Every key in the cache."""
        if self._cache is None:
            return iter(())
        # A refused (pickled) key comes back as bytes: not one of ours, so not listed.
        return (key for key in self._cache.iterkeys() if isinstance(key, str))

    def __iter__(self) -> Iterator[str]:
        """Every key in the cache (``for key in cache``, as ``cache prune`` does)."""
        return self.keys()

    def delete(self, key: str) -> None:
        """Drop one entry."""
        if self._cache is not None:
            self._cache.delete(key)

    def clear(self) -> int:
        """Drop every entry; returns how many there were."""
        return int(self._cache.clear()) if self._cache is not None else 0

    def count(self) -> int:
        """Answers held (whole pages live in their own files: see ``pagecache``)."""
        return len(self._cache) if self._cache is not None else 0

    def info(self) -> tuple[int, int]:
        """Entries and bytes on disk."""
        if self._cache is None:
            return (0, 0)
        return (self.count(), int(self._cache.volume()))

    def close(self) -> None:
        """Close the database handles."""
        if self._cache is not None:
            self._cache.close()

    def _disable(self, reason: str) -> None:
        self._cache = None
        if not self._warned:
            self._warned = True
            self._warn(f"{reason}; continuing without a cache (answers will not be kept)")
