"""Model-written text that a later Jinja2 pass (mkdocs-macros) leaves exactly as it is.

mkdocs-macros renders each page's Markdown as a Jinja2 template in ``on_page_markdown``.
When it runs after this plugin, the generated sections are part of that template, and a
``{{ ... }}`` or ``{% ... %}`` a model wrote would be evaluated: at best a broken page,
at worst a prompt injection calling a macro. Wrapped in a ``raw`` block, the text comes
out of the template as it went in; a closing ``endraw`` inside the text is itself
written through an expression, so it cannot end the block early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Delimiters:
    """The Jinja2 markers the template engine uses (mkdocs-macros lets users change them)."""

    block_start: str = "{%"
    block_end: str = "%}"
    variable_start: str = "{{"
    variable_end: str = "}}"
    comment_start: str = "{#"


def shielded(text: str, markers: Delimiters) -> str:
    """``text`` as a template that renders to exactly ``text``; unchanged when it holds
    nothing a template engine would act on."""
    starts = (markers.block_start, markers.variable_start, markers.comment_start)
    if not any(start in text for start in starts):
        return text
    start, end = markers.block_start, markers.block_end
    closing = re.compile(re.escape(start) + r"-?\s*endraw\b")
    # Close the raw block, print the start marker as a string, open a new raw block.
    literal = f"{start} endraw {end}{markers.variable_start} {start!r} {markers.variable_end}"
    reopen = f"{start} raw {end}"

    def escape(match: re.Match[str]) -> str:
        return literal + reopen + match.group(0)[len(start) :]

    return f"{reopen}{closing.sub(escape, text)}{start} endraw {end}"


def macros_delimiters(plugin: Any) -> Delimiters:
    """The markers a configured mkdocs-macros plugin uses (its ``j2_*`` options)."""
    config = getattr(plugin, "config", {}) or {}
    default = Delimiters()

    def option(name: str, fallback: str) -> str:
        value = config.get(f"j2_{name}_string")
        return value if isinstance(value, str) and value else fallback

    return Delimiters(
        block_start=option("block_start", default.block_start),
        block_end=option("block_end", default.block_end),
        variable_start=option("variable_start", default.variable_start),
        variable_end=option("variable_end", default.variable_end),
        comment_start=option("comment_start", default.comment_start),
    )


def macros_will_render(plugin: Any, src_path: str, meta: dict[str, Any]) -> bool:
    """Whether mkdocs-macros renders this page, by its own rules: ``render_macros: false``
    in the front matter wins; with ``render_by_default: false`` only pages that opt in or
    that its ``force_render_paths`` name are rendered."""
    wanted = meta.get("render_macros")
    if wanted is False:
        return False
    config = getattr(plugin, "config", {}) or {}
    if config.get("render_by_default", True):
        return True
    force = getattr(plugin, "force_page_rendering", None)
    return wanted is True or bool(force(src_path) if callable(force) else False)
