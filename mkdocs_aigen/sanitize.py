"""Make model-written Markdown safe to publish.

A model's answer is untrusted input: it may carry raw HTML on its own or because a stub (or a
page it was shown) smuggled a prompt injection into it. MkDocs renders Markdown with
Python-Markdown, which passes raw HTML straight through, so :func:`sanitize_markdown` rewrites
the few constructs that can turn into live HTML, script or dangerous attributes:

* ``<`` outside code becomes ``&lt;`` (raw HTML, HTML blocks, comments, ``md_in_html``);
* ``{`` that could open an ``attr_list`` becomes ``&#123;`` (``{: onclick=... }``);
* attributes on a fenced code block's opening line are reduced to classes, ids and a few
  harmless options (``fenced_code`` copies the rest onto ``<code>`` when ``attr_list`` is on);
* links, images, reference definitions and autolinks whose URL is ``javascript:``,
  ``vbscript:`` or ``data:`` get ``#`` as their URL, however the scheme is disguised.

Code is left as written wherever Python-Markdown is certain to treat it as code. The module
mirrors Python-Markdown's own rules for that (its ``fenced_code`` regular expression, its
backtick pattern), and where the two could disagree it picks the reading that cannot produce
live HTML: text it is unsure about is escaped, which at worst shows ``&lt;`` inside code.

The output must be placed at the start of a line (column 0), outside any list, blockquote or
admonition, because Python-Markdown only recognises fenced code blocks at column 0.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from mkdocs_aigen.markdown_model import strict_fence_blocks

__all__ = ["close_open_fences", "is_dangerous_url", "sanitize_markdown"]

#: Python-Markdown expands tabs to this width before it looks for fences.
_TAB_LENGTH = 4

# Python-Markdown's ``FencedBlockPreprocessor.FENCED_BLOCK_RE``, opening line only, used with
# ``fullmatch`` on one tab-expanded line (its ``\n`` becomes the end of the line).
_PM_FENCE_OPEN_RE = re.compile(
    r"(?P<fence>~{3,}|`{3,})[ ]*"
    r"(?:(?:\{(?P<attrs>.*)\})"
    r"|(?:\.?(?P<lang>[\w#.+-]*)[ ]*)?"
    r"(?:hl_lines=(?P<quot>\"|')(?P<hl_lines>.*?)(?P=quot)[ ]*)?)"
)

# The token patterns of ``markdown.extensions.attr_list``'s scanner, in its order.
_ATTR_TOKEN_RES = (
    re.compile(r'[^ =}]+=".*?"'),
    re.compile(r"[^ =}]+='.*?'"),
    re.compile(r"[^ =}]+=[^ =}]+"),
    re.compile(r"[^ =}]+"),
    re.compile(r" "),
)
#: Fence attributes kept as written: ``.class`` and ``#id`` ...
_SAFE_ATTR_WORD_RE = re.compile(r"[.#][^\s{}=\"'<>`]+")
#: ... and ``key="value"`` options that cannot run anything.
_SAFE_ATTR_KEYS = frozenset({"hl_lines", "linenums", "linenostart", "title"})
_SAFE_ATTR_VALUE_RE = re.compile(r"[^\"'{}<>`\n]*")

# pymdownx.snippets includes local files and also runs inside fenced code; a model has no
# business including files from the build machine.
_SNIPPET_LINE_RE = re.compile(r"^([ \t]*)(-+8<-+)")

#: Control characters have no place in prose; STX/ETX are Python-Markdown's placeholders.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_DANGEROUS_SCHEME_RE = re.compile(r"(?:javascript|vbscript|data):")
#: Inline link/image destinations open right after ``](`` (no space allowed between).
_LINK_OPEN_RE = re.compile(r"\]\(")
#: A link destination as written without surprises: ``<...>`` or a run with balanced parens.
_DEST_TOKEN_RE = re.compile(r"(?:<[^<>\n]*>|(?:[^\s()<>]|\([^\s()<>]*\))+)(?=[\s)]|\Z)")
#: Reference definitions (Python-Markdown also accepts the URL on the next line).
_REF_DEF_COLON_RE = re.compile(r"\]:")
_REF_DEF_URL_RE = re.compile(r"[ \t]*(?:\n[ \t]*)?(?P<url>\S+)")
_AUTOLINK_RE = re.compile(r"<(?P<url>[^<>\s]+)>")

# ``<`` is kept only for autolinks Python-Markdown turns into plain http(s)/ftp/mailto links,
# and for the ``<code>`` this module writes itself (so a second pass changes nothing).
_SAFE_ANGLE_RE = re.compile(
    r"<code>(?:&#[0-9]{1,7};|[^\x00-\x1f!-/:-@\[-`{-~\x7f])*</code>"
    r"|<(?i:https?|ftps?)://[^\s<>\"'`\\{}|^]+>"
    r"|<(?:(?i:mailto):)?[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+>"
)
_ANGLE_RE = re.compile(_SAFE_ANGLE_RE.pattern + r"|<[^<>]*>|<")

#: ASCII punctuation; inside a rewritten code span every one of them becomes an entity.
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def sanitize_markdown(text: str, allow_html: bool = False) -> str:
    """Return ``text`` with everything that could become live HTML or script neutralised.

    With ``allow_html=False`` (the default) raw HTML, ``attr_list`` attributes and
    ``javascript:``/``vbscript:``/``data:`` URLs are all neutralised; benign Markdown (headings,
    lists, tables, emphasis, code, https links) comes back unchanged. With ``allow_html=True``
    only the dangerous URLs in Markdown links are neutralised.

    In both modes line endings become ``\\n`` and a fenced code block left open is closed, so
    that the text cannot swallow whatever follows it on the page. Applying the function twice
    gives the same result as applying it once.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not allow_html:
        text = _CONTROL_RE.sub("", text)
    lines = text.split("\n")
    pieces: list[str] = []
    pos = 0
    for fence in _find_fences(lines):
        if fence.start > pos:
            pieces.append(_sanitize_prose("\n".join(lines[pos : fence.start]), allow_html))
        pieces.append(_sanitize_fence(lines, fence, allow_html))
        pos = fence.stop
    if pos < len(lines):
        pieces.append(_sanitize_prose("\n".join(lines[pos:]), allow_html))
    return "\n".join(pieces)


def close_open_fences(text: str) -> str:
    """Return ``text`` with a closing line added if a fenced code block is left open.

    Uses Python-Markdown's rules (fences at column 0, closed by the identical fence). Without
    this, an unclosed fence in one generated section would pair with a fence further down the
    page and turn the text in between inside out.
    """
    lines = text.split("\n")
    fences = _find_fences(lines)
    if not fences or not fences[-1].appended:
        return text
    fence = fences[-1]
    return "\n".join([*lines[: fence.stop], fence.fence, *lines[fence.stop :]])


def is_dangerous_url(url: str) -> bool:
    """Whether ``url`` uses a ``javascript:``, ``vbscript:`` or ``data:`` scheme.

    Decodes what a browser or Markdown would decode first (HTML entities, percent-encoding,
    backslash escapes, whitespace and control characters, full-width letters), so disguises
    such as ``java&#115;cript:``, ``&#32;javascript:`` or ``JaVa\\tScRiPt:`` are caught. Errs on
    the side of ``True``: a harmless URL that merely looks odd loses nothing worth keeping.
    """
    decoded = url
    for _ in range(8):  # entities and percent-escapes can be nested
        step = unquote(html.unescape(decoded))
        if step == decoded:
            break
        decoded = step
    decoded = unicodedata.normalize("NFKC", decoded)
    kept = "".join(ch for ch in decoded if not _ignored_in_url(ch))
    return _DANGEROUS_SCHEME_RE.match(kept.lower()) is not None


def _ignored_in_url(ch: str) -> bool:
    """Characters dropped before the scheme check: ignored by browsers or by Markdown syntax."""
    if ch.isspace() or ch in "\\`<>\"'":
        return True
    return unicodedata.category(ch) in {"Cc", "Cf", "Zs", "Zl", "Zp"}


# Fenced code blocks --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fence:
    """A fenced code block as Python-Markdown's ``fenced_code`` sees it, by line index."""

    start: int  # the opening line
    stop: int  # one past the last line of the block (closer included unless ``appended``)
    fence: str  # the run of backticks or tildes that opens (and must close) the block
    appended: bool  # no closer in the text: sanitising adds one after ``stop``


def _find_fences(lines: list[str]) -> list[_Fence]:
    """Locate fenced code blocks where every fence extension sees them.

    The blocks of :func:`~mkdocs_aigen.markdown_model.strict_fence_blocks` whose opener
    ``fenced_code`` also accepts. An opener without a closer is not a fence to
    Python-Markdown, but left like that it could pair with a fence elsewhere on the page, so
    it is reported as running to the end of the text and the callers add the missing closer.
    """
    fences: list[_Fence] = []
    for block in strict_fence_blocks(lines, accept=lambda line: _fence_opener(line) is not None):
        fence = _fence_opener(lines[block.start]) or block.fence
        if block.stop is not None:
            fences.append(_Fence(block.start, block.stop, fence, appended=False))
            continue
        # Keep a final newline outside the block: the closer goes before it.
        i = block.start
        stop = len(lines) - 1 if len(lines) - 1 > i and lines[-1] == "" else len(lines)
        fences.append(_Fence(i, stop, fence, appended=True))
    return fences


def _fence_opener(line: str) -> str | None:
    """The fence string if ``line`` opens a ``fenced_code`` block, else ``None``."""
    m = _PM_FENCE_OPEN_RE.fullmatch(line.expandtabs(_TAB_LENGTH))
    if m is None:
        return None
    attrs = m.group("attrs")
    if attrs and _parse_attrs(attrs) is None:
        return None  # fenced_code skips an opener whose attribute list does not parse
    return m.group("fence")


def _parse_attrs(attrs: str) -> list[str] | None:
    """Split ``{...}`` contents like ``attr_list`` does; ``None`` when it would reject them."""
    tokens: list[str] = []
    i = 0
    while i < len(attrs):
        for token_re in _ATTR_TOKEN_RES:
            m = token_re.match(attrs, i)
            if m:
                if m.group(0) != " ":
                    tokens.append(m.group(0))
                i = m.end()
                break
        else:
            # attr_list drops unparsable text, but a '}' in it makes the whole list invalid.
            return None if "}" in attrs[i:] else tokens
    return tokens


def _sanitize_fence(lines: list[str], fence: _Fence, allow_html: bool) -> str:
    """A fenced block is code: only the opener's attributes and snippet lines are touched."""
    block = lines[fence.start : fence.stop]
    if not allow_html:
        block = [_safe_opener(block[0]), *(_neutralise_snippet(line) for line in block[1:])]
    if fence.appended:
        block.append(fence.fence)
    return "\n".join(block)


def _safe_opener(line: str) -> str:
    """Reduce ``{...}`` on an opening fence to attributes that cannot run script."""
    m = _PM_FENCE_OPEN_RE.fullmatch(line.expandtabs(_TAB_LENGTH))
    if m is None or not m.group("attrs"):
        return line  # a bare language name is put in a class attribute, escaped
    tokens = _parse_attrs(m.group("attrs")) or []
    kept = [token for token in tokens if _is_safe_attr(token)]
    if len(kept) == len(tokens):
        return line
    return m.group("fence") + ("{" + " ".join(kept) + "}" if kept else "")


def _is_safe_attr(token: str) -> bool:
    if "=" not in token:
        return _SAFE_ATTR_WORD_RE.fullmatch(token) is not None
    key, value = token.split("=", 1)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    safe_key = key in _SAFE_ATTR_KEYS or re.fullmatch(r"data-[\w-]+", key) is not None
    return safe_key and _SAFE_ATTR_VALUE_RE.fullmatch(value) is not None


def _neutralise_snippet(line: str) -> str:
    """Escape a pymdownx.snippets include line (``;`` is snippets' own escape)."""
    return _SNIPPET_LINE_RE.sub(r"\1;\2", line, count=1)


# Prose ---------------------------------------------------------------------------------------


def _sanitize_prose(text: str, allow_html: bool) -> str:
    """Sanitise text that holds no fenced code block."""
    # Links first, over everything including code spans: Python-Markdown takes a link's URL
    # from the text of a code span inside it, e.g. [x](`javascript:...`).
    text = _neutralise_reference_definitions(text)
    text = _neutralise_inline_links(text)
    lines = text.split("\n")
    scans = [_code_spans(line) for line in lines]
    if allow_html:
        return "\n".join(
            _neutralise_autolinks(line, spans)
            for line, (spans, _) in zip(lines, scans, strict=True)
        )
    confident = _confident_lines(lines, [paired for _, paired in scans])
    return "\n".join(
        _escape_line(line, spans, sure)
        for line, (spans, _), sure in zip(lines, scans, confident, strict=True)
    )


def _neutralise_reference_definitions(text: str) -> str:
    """``[id]: javascript:...`` -> ``[id]: #``; any ``]:`` is checked, definition or not.

    Every ``]:`` is looked at on its own, even one inside the URL of an earlier one:
    Python-Markdown rejects ``[a]: \\n[b]: javascript:...`` as a definition of ``a`` (its URL
    would be ``[b]:``) and then accepts the definition of ``b``.
    """
    out: list[str] = []
    done = 0
    for m in _REF_DEF_COLON_RE.finditer(text):
        if m.start() < done:
            continue  # inside a URL already replaced
        url = _REF_DEF_URL_RE.match(text, m.end())
        if url is not None and is_dangerous_url(url.group("url")):
            out.append(text[done : url.start("url")] + "#")
            done = url.end()
    out.append(text[done:])
    return "".join(out)


def _neutralise_inline_links(text: str) -> str:
    """``[x](javascript:...)`` and ``![x](data:...)`` -> URL ``#``."""
    out: list[str] = []
    done = 0
    for m in _LINK_OPEN_RE.finditer(text):
        if m.start() < done:
            continue  # inside a destination already replaced
        dest = m.end()
        while dest < len(text) and text[dest].isspace():  # Markdown allows space, even a newline
            dest += 1
        # The scheme, if any, ends before the first ')' (a '(' cannot be part of a scheme).
        paren = text.find(")", dest)
        if not is_dangerous_url(text[dest : paren if paren != -1 else len(text)]):
            continue
        token = _DEST_TOKEN_RE.match(text, dest)
        if token is not None:
            out.append(text[done:dest] + "#")
            done = token.end()
        else:
            # Too odd to delimit: make the URL start with '#', a same-page fragment, instead.
            at = dest + 1 if text.startswith("<", dest) else dest
            out.append(text[done:at] + "#")
            done = at
    out.append(text[done:])
    return "".join(out)


def _code_spans(line: str) -> tuple[list[tuple[int, int, int]], bool]:
    """Code spans on one line as ``(start, end, backticks)``, and whether every run paired.

    Follows Python-Markdown's backtick pattern: a run of n backticks opens a span unless an odd
    number of backslashes escapes its first backtick, and closes at the next run of exactly n.
    Spans are looked for within the line only; a span Python-Markdown would continue onto the
    next line shows up here as an unpaired run.
    """
    spans: list[tuple[int, int, int]] = []
    paired = True
    i = 0
    while True:
        start = line.find("`", i)
        if start == -1:
            return spans, paired
        end = start
        while end < len(line) and line[end] == "`":
            end += 1
        if _backslashes_before(line, start) % 2:
            start += 1  # the escaped backtick is literal; the rest of the run may still open
        size = end - start
        close = _find_run(line, end, size) if size else None
        if close is None:
            paired = paired and size == 0
            i = end
        else:
            spans.append((start, close + size, size))
            i = close + size


def _find_run(line: str, pos: int, size: int) -> int | None:
    """Start of the next run of exactly ``size`` backticks at or after ``pos``."""
    while True:
        start = line.find("`", pos)
        if start == -1:
            return None
        end = start
        while end < len(line) and line[end] == "`":
            end += 1
        if end - start == size:
            return start
        pos = end


def _backslashes_before(line: str, pos: int) -> int:
    count = 0
    while pos - count > 0 and line[pos - count - 1] == "\\":
        count += 1
    return count


def _confident_lines(lines: list[str], paired: list[bool]) -> list[bool]:
    """Per line: are its code spans certainly the ones Python-Markdown will see?

    Python-Markdown looks for code spans across all lines of a paragraph, and where a
    paragraph ends depends on block syntax. If every backtick run in a group of lines (up to a
    blank line, which always ends a paragraph) pairs up within its own line, no span can cross
    a line however the group is split, so the per-line spans are exactly Python-Markdown's.
    """
    confident = [False] * len(lines)
    start = 0
    for i in range(len(lines) + 1):
        if i == len(lines) or not lines[i].strip(" \t"):
            group_ok = all(paired[start:i])
            for j in range(start, i):
                confident[j] = group_ok
            start = i + 1
    return confident


def _escape_line(line: str, spans: list[tuple[int, int, int]], confident: bool) -> str:
    """Escape one line of prose, keeping code spans that are certainly code as written."""
    last_brace = line.rfind("}")
    out: list[str] = []
    pos = 0
    for start, end, size in spans:
        out.append(_escape_text(line, pos, start, last_brace))
        content = line[start + size : end - size]
        # A table splits cells at '|', even inside what looks like a code span.
        if _is_inert(content) or (confident and "|" not in content):
            out.append(line[start:end])
        else:
            # Not sure Python-Markdown sees a code span here: write the <code> element
            # ourselves with every special character as an entity, which reads the same
            # whether or not it ends up inside code.
            out.append("<code>" + _entities(content.strip()) + "</code>")
        pos = end
    out.append(_escape_text(line, pos, len(line), last_brace))
    return "".join(out)


def _is_inert(content: str) -> bool:
    """Code-span text that is harmless even if Python-Markdown reads it as prose."""
    return "<" not in content and re.search(r"\{[^}]*=", content) is None


def _entities(text: str) -> str:
    return "".join(f"&#{ord(ch)};" if ch in _ASCII_PUNCTUATION else ch for ch in text)


def _escape_text(line: str, start: int, end: int, last_brace: int) -> str:
    """Escape ``line[start:end]`` (no code in it): attribute lists, then ``<``."""
    text = line[start:end]
    if last_brace < start or "{" not in text:
        # Nearly every line of prose: no '{' that a '}' later on the line could close, so
        # skip the character loop (it was most of a cached section's cost).
        return _ANGLE_RE.sub(_escape_angle, text) if "<" in text else text
    chars: list[str] = []
    for i in range(start, end):
        ch = line[i]
        # attr_list needs '{' ... '}' on one line; '\{' is already literal to Markdown.
        if ch == "{" and i < last_brace and _backslashes_before(line, i) % 2 == 0:
            chars.append("&#123;")
        else:
            chars.append(ch)
    return _ANGLE_RE.sub(_escape_angle, "".join(chars))


def _escape_angle(m: re.Match[str]) -> str:
    token = m.group(0)
    if _SAFE_ANGLE_RE.fullmatch(token):
        return token
    return token.replace("<", "&lt;").replace(">", "&gt;")


def _neutralise_autolinks(line: str, spans: list[tuple[int, int, int]]) -> str:
    """With raw HTML allowed, still defuse ``<javascript:...>`` outside code spans."""

    def escape(part: str) -> str:
        return _AUTOLINK_RE.sub(
            lambda m: (
                "&lt;" + m.group("url") + "&gt;" if is_dangerous_url(m.group("url")) else m.group(0)
            ),
            part,
        )

    out: list[str] = []
    pos = 0
    for start, end, _ in spans:
        out.append(escape(line[pos:start]))
        out.append(line[start:end])
        pos = end
    out.append(escape(line[pos:]))
    return "".join(out)
