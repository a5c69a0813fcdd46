"""Labels on AI-written text: the page notice, ``data-aigen`` on every generated section,
and a ``<meta name="generator">`` tag on every generated page.

How a section gets its attribute with any Markdown configuration: Python-Markdown keeps an
HTML comment that stands alone between blank lines as it is, whatever extensions are on
(``attr_list`` and ``md_in_html`` are not in MkDocs' defaults). So :func:`mark_sections`
puts a comment before each generated section's heading, and :func:`wrap_marked` turns the
HTML from each one to the next into ``<div class="aigen-section" data-aigen="HASH">…</div>``.
A closing comment stands only where generated text ends without another section starting
(before a failed section's placeholder, at the end of the block): Python-Markdown parses
each comment as a block of its own and puts it back afterwards, so one per section, not a
pair. The comments are siblings at the top level of the page, so the divs nest correctly;
a page whose comments are not the ones its sections call for keeps its HTML without divs
rather than get broken or misattributed markup.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from mkdocs_aigen.jobs import PageResult, SectionResult
from mkdocs_aigen.markdown_model import heading_line, headings

#: The page notice's default text (Jinja2; Markdown once rendered). Variables: ``model``,
#: ``models`` (all that wrote the page), ``date`` (of the newest answer, ``YYYY-MM-DD``),
#: ``edited`` (a person edited some of it in the lock), ``sections``, ``page``.
DEFAULT_NOTICE = (
    "Parts of this page were written by an AI model ({{ models | join(', ') }})"
    "{% if date %}, last generated on {{ date }}{% endif %}."
    "{% if edited %} A person reviewed and edited some of that text.{% endif %}"
)

_START = "<!-- aigen-section {key} -->"
_END = "<!-- /aigen-section -->"
_START_RE = re.compile(r"<!-- aigen-section ([0-9a-f]{8,64}) -->")
_END_TEXT = "<!-- /aigen-section -->"
_MARK_RE = re.compile(f"({_START_RE.pattern}|{re.escape(_END_TEXT)})")
_ATX_H1 = re.compile(r"^#\s")
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)


def mark_sections(block: str, sections: Sequence[SectionResult]) -> str:
    """``block`` with a comment before each generated section and one where generated text
    stops (failed sections stay unmarked: a placeholder is not AI-written text)."""
    lines = block.split("\n")
    if "```" in block or "~~~" in block:
        # A heading's line may stand inside fenced code: ask the Markdown model.
        found = [(h.line, h.level) for h in headings(lines)]
    else:
        # No fence: an ATX line at column 0 is a heading wherever it stands (a cached
        # build marks every page, and this is 5x cheaper than the full model).
        found = [(i, len(line) - len(line.lstrip("#"))) for i, line in enumerate(lines)]
        found = [(i, level) for i, level in found if 1 <= level <= 6]
    starts: list[tuple[int, SectionResult]] = []
    position = 0
    for section in sections:
        wanted = _norm(heading_line(section.level, section.title))
        while position < len(found):
            line, level = found[position]
            position += 1
            if level == section.level and _norm(lines[line]) == wanted:
                starts.append((line, section))
                break
        else:
            return block  # the headings are not what was generated: leave it unmarked
    out: list[str] = []
    previous = 0
    open_section = False
    for line, section in starts:
        out.extend(lines[previous:line])
        if open_section and section.text is None:
            # The next start would end the open section; a placeholder starts nothing.
            out.extend(_close(out))
            open_section = False
        if section.text is not None:
            out.extend(["", _START.format(key=section.answer_hash), ""])
            open_section = True
        previous = line
    out.extend(lines[previous:])
    if open_section:
        out.extend(_close(out))
    return "\n".join(out)


def _close(out: list[str]) -> list[str]:
    while out and not out[-1].strip():
        out.pop()
    return ["", _END, ""]


def _norm(line: str) -> str:
    return " ".join(line.split())


def wrap_marked(html: str, keys: Sequence[str]) -> str:
    """Each section that :func:`mark_sections` marked as a ``div`` with ``data-aigen``;
    ``keys``: the answer hashes of the page's generated sections, in order. Comments that
    do not start exactly those sections (a model that wrote one into its text) leave the
    page without divs."""
    if "aigen-section" not in html:
        return html
    # [text, marker, key or None (an end), text, marker, key or None, text, ...]
    tokens = _MARK_RE.split(html)
    out = [tokens[0]]
    started = 0
    open_section = False
    for index in range(1, len(tokens), 3):
        key = tokens[index + 1]
        if key is not None:
            if started == len(keys) or key != keys[started]:
                return _unmarked(html)
            started += 1
            out.append("</div>" if open_section else "")
            out.append(f'<div class="aigen-section" data-aigen="{key}">')
            open_section = True
        elif open_section:
            out.append("</div>")
            open_section = False
        else:
            return _unmarked(html)  # an end with nothing open
        out.append(tokens[index + 2])
    if open_section or started != len(keys):
        return _unmarked(html)
    return "".join(out)


def _unmarked(html: str) -> str:
    return _START_RE.sub("", html).replace(_END_TEXT, "")


def generator_tag(html: str, model: str) -> str:
    """``html`` with ``<meta name="generator" content="mkdocs-aigen; model …">`` in its head."""
    from mkdocs_aigen import __version__

    tag = f'<meta name="generator" content="mkdocs-aigen {__version__}; model {escape(model)}">'
    # Themes write "</head>": finding it is one C call; the pattern (any case or
    # spacing) would scan the whole page in the regular expression engine.
    end = html.find("</head>")
    if end < 0:
        match = _HEAD_END.search(html)
        if match is None:
            return html
        end = match.start()
    return f"{html[:end]}{tag}\n{html[end:]}"


def page_models(result: PageResult, model: str, fallback_model: str) -> list[str]:
    """The models that wrote the page's generated sections: the configured ``model``, the
    ``fallback_model``, or both (the configured one for a page without any)."""
    return _models([s for s in result.sections if s.text is not None], model, fallback_model)


def _models(written: list[SectionResult], model: str, fallback_model: str) -> list[str]:
    models = []
    if any(not s.fallback for s in written):
        models.append(model)
    if any(s.fallback for s in written):
        models.append(fallback_model)
    return models or [model]


def notice_variables(result: PageResult, model: str, fallback_model: str) -> dict[str, Any]:
    """What the notice template may use, from the page's sections."""
    written = [s for s in result.sections if s.text is not None]
    models = _models(written, model, fallback_model)
    dates = [s.created for s in written if s.created is not None]
    date = time.strftime("%Y-%m-%d", time.gmtime(max(dates))) if dates else ""
    return {
        "model": models[0],
        "models": models,
        "date": date,
        "edited": any(s.edited for s in written),
        "sections": len(written),
        "page": result.src_path,
    }


class NoticeError(ValueError):
    """A notice template that cannot be rendered, with why and what it may use."""


def template_problem(template: str | None) -> str | None:
    """Why ``template`` is not valid Jinja2 (``None``: it is, or there is none)."""
    if template is None:
        return None
    from jinja2 import Environment, TemplateSyntaxError

    try:
        Environment().parse(template)
    except TemplateSyntaxError as error:
        return f"not a valid Jinja2 template (line {error.lineno}: {error.message})"
    return None


def with_notice(
    markdown: str,
    result: PageResult,
    meta: Mapping[str, Any],
    *,
    enabled: bool,
    position: str,
    admonition: str | None,
    template: str | None,
    models: tuple[str, str],
) -> str:
    """``markdown`` with the page's notice, if it has one: the page's ``aigen: notice``
    wins over ``enabled``; a page without generated text gets none. ``models``: the
    configured model and the fallback's (``""`` without one)."""
    stub = meta.get("aigen")
    wanted = stub.get("notice") if isinstance(stub, Mapping) else None
    if not (wanted if isinstance(wanted, bool) else enabled):
        return markdown
    if not any(s.text is not None for s in result.sections):
        return markdown
    from jinja2 import TemplateError

    variables = notice_variables(result, *models)
    try:
        text = render_notice(template or DEFAULT_NOTICE, variables)
    except TemplateError as error:
        raise NoticeError(f"{error} (variables: {', '.join(variables)})") from None
    return place_notice(markdown, text, position=position, admonition=admonition)


def render_notice(template: str, variables: dict[str, Any]) -> str:
    """The notice's Markdown text from its Jinja2 ``template``."""
    return _compiled(template).render(**variables).strip()


@functools.lru_cache(maxsize=8)
def _compiled(template: str) -> Any:
    """``template`` compiled once a process: every page of a build renders the same one,
    and compiling it costs many times what rendering does."""
    from jinja2 import Environment, StrictUndefined

    # Markdown, not HTML: nothing to escape; a misspelt variable is an error, not "".
    environment = Environment(undefined=StrictUndefined, autoescape=False)
    return environment.from_string(template)


def place_notice(markdown: str, notice: str, *, position: str, admonition: str | None) -> str:
    """``markdown`` with ``notice`` at the top (under a leading ``# Title``) or the bottom,
    as a paragraph or as an admonition of type ``admonition`` (``note``, ``info``...)."""
    if admonition:
        body = "\n".join(f"    {line}" if line.strip() else "" for line in notice.split("\n"))
        block = f'!!! {admonition} "About this page"\n\n{body}\n'
    else:
        block = f"{notice}\n"
    if position == "bottom":
        return f"{markdown.rstrip()}\n\n{block}"
    lines = markdown.split("\n")
    if lines and _ATX_H1.match(lines[0]):
        return "\n".join([lines[0], "", block, *lines[1:]])
    return f"{block}\n{markdown}"
