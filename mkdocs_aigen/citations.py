"""The "Sources:" line under a grounded section (``cite: true``)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from mkdocs_aigen.sources import SourceText


def cite_line(texts: Iterable[SourceText], link: str | None) -> str:
    """``*Sources: [path](url), ...*``: each file linked into the repository when the site
    names one (``link``, see :func:`mkdocs_aigen.setup.source_link`), else named.

    A file cited several ways (a range and an object of it) is listed once per way, since
    each points at other lines.
    """
    parts = []
    for text in texts:
        name = f"`{text.label}`"
        if link is None or text.path.startswith(("/", "../")):  # not in the repository
            parts.append(name)
            continue
        url = link + quote(text.path)
        if text.lines is not None and "github.com" in link:
            url += f"#L{text.lines[0]}-L{text.lines[1]}"
        parts.append(f"[{name}]({url})")
    return "*Sources: " + ", ".join(parts) + "*"
