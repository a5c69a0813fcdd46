"""Answers on disk under the SHA-256 of their request (diskcache, thread and process safe)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
                str(directory), timeout=60, eviction_policy="none", cull_limit=0
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
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            return None
        return CachedAnswer(
            text=value["text"],
            prompt_tokens=int(value.get("prompt_tokens", 0)),
            completion_tokens=int(value.get("completion_tokens", 0)),
            model=str(value.get("model", "")),
            stage=str(value.get("stage", "")),
            label=str(value.get("label", "")),
            site=str(value.get("site", "")),
        )

    def set(self, key: str, answer: CachedAnswer) -> bool:
        """Store ``answer``; ``False`` if it could not be written (the build goes on)."""
        if self._cache is None:
            return False
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
        try:
            return bool(self._cache.set(key, record))
        except Exception as error:
            self._disable(f"cache write failed: {error}")
            return False

    def get_object(self, key: str) -> object | None:
        """A stored Python object (a whole page), or ``None``."""
        if self._cache is None:
            return None
        try:
            return self._cache.get(key)
        except Exception:  # an entry pickled by another version of the plugin
            return None

    def set_object(self, key: str, value: object) -> None:
        """Store a Python object; a failure only costs the next build some time."""
        if self._cache is None:
            return
        try:
            self._cache.set(key, value)
        except Exception as error:
            self._disable(f"cache write failed: {error}")

    def keys(self) -> Iterator[str]:
        """Every key in the cache."""
        if self._cache is None:
            return iter(())
        return (str(key) for key in self._cache.iterkeys())

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
        """Entries held (answers and whole pages)."""
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
