"""Whole pages from the cache, so a cached rebuild costs one lookup per page.

A page's generated block is a function of its job (stub, title, nav neighbours), the
site settings, the templates and the answers already cached for its requests. Keyed by
a hash of the first three, a finished page can be stored whole; a rebuild with nothing
changed then skips rendering prompts, hashing requests and cleaning answers for every
section (about 140 us a section measured here, against a plain build's few hundred).
The answers stay in the cache under their own keys, so ``plan``, ``lock`` and a page
whose key changed still find them one by one.
"""

from __future__ import annotations

import hashlib

from mkdocs_aigen import __version__
from mkdocs_aigen.jobs import PageJob, PageResult, Settings

#: Bump when PageResult or the assembly changes shape.
PAGE_FORMAT = 2
#: Whole pages share the answers' cache; their keys say which they are.
PAGE_PREFIX = "page:"


def page_key(job: PageJob, settings: Settings, templates: str) -> str:
    """The hash of everything that decides a page's requests; ``templates`` fingerprints
    the prompt templates in use."""
    # Frozen dataclasses of strings, numbers and tuples: their repr is deterministic.
    identity = f"{PAGE_FORMAT}|{__version__}|{templates}|{job!r}|{settings!r}"
    return PAGE_PREFIX + hashlib.sha256(identity.encode("utf-8")).hexdigest()


def worth_keeping(result: PageResult) -> bool:
    """Only clean pages are stored whole: a failed section or a warning must come back
    (and be retried) on the next build."""
    return not result.failed and not result.warnings
