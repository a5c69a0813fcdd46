"""Keeps secrets out of every message the plugin writes.

Keys come in any shape (``sk-...``, hex, JWTs, base64 with ``/+=``, a plain word), so the
exact values in use are remembered and replaced wherever they turn up; the patterns
catch keys in the usual provider shapes that were never configured here (a gateway
quoting another key back, say).

Process-wide on purpose: the backend learns the key, while the messages that quote it
are built in the backend, the engine, the pipeline and the CLI; one registry lets every
one of them scrub without a key being passed around.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"

#: Keys in the shapes providers use, configured here or not.
_KEY_PATTERN = re.compile(r"\b(sk|sess|key)-[A-Za-z0-9_\-]{8,}")

#: Shorter values are not remembered: masking every "unused" (the placeholder key sent to
#: servers that need none) or "abc" in every message would make messages unreadable,
#: and no provider issues keys that short.
MIN_SECRET_LENGTH = 8


class _Secrets:
    """The remembered values in every form they may be quoted in, longest first."""

    lock = threading.Lock()
    # Replaced, never mutated: readers take the current tuple without the lock.
    forms: tuple[str, ...] = ()


def remember_secret(value: str | None) -> None:
    """Scrub ``value`` (and its URL-encoded forms) from every later :func:`scrub` call."""
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    new = {value, quote(value, safe=""), quote_plus(value)}
    with _Secrets.lock:
        # Longest first, so a form that contains another is replaced whole.
        forms = set(_Secrets.forms) | new
        _Secrets.forms = tuple(sorted(forms, key=len, reverse=True))


def forget_secrets() -> None:
    """Forget every remembered value (for tests)."""
    with _Secrets.lock:
        _Secrets.forms = ()


def scrub(text: str) -> str:
    """``text`` with every remembered secret and every key-shaped word replaced by ``***``."""
    for form in _Secrets.forms:
        if form in text:
            text = text.replace(form, MASK)
    return _KEY_PATTERN.sub(MASK, text)
