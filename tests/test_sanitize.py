"""Tests for mkdocs_aigen.sanitize: model output must not become live HTML or script.

Every malicious input is sanitised and then rendered with the real ``markdown`` package (the
renderer MkDocs uses), and the resulting HTML is parsed to check tags and attributes.
"""

from __future__ import annotations

import random
import re
from html.parser import HTMLParser

import markdown
import pytest

from mkdocs_aigen.sanitize import close_open_fences, is_dangerous_url, sanitize_markdown

#: The extensions named in the plugin's brief; attr_list and md_in_html widen the attack surface.
BRIEF_EXTENSIONS = ["fenced_code", "attr_list", "admonition", "md_in_html"]
#: What MkDocs adds by default.
MKDOCS_EXTENSIONS = [*BRIEF_EXTENSIONS, "toc", "tables"]

#: Everything Python-Markdown itself emits with those extensions; any other tag came from raw HTML.
MARKDOWN_TAGS = frozenset(
    {"p", "a", "img", "code", "pre", "em", "strong", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol"}
    | {"li", "blockquote", "hr", "br", "div", "span", "table", "thead", "tbody", "tr", "th", "td"}
)
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "poster", "data"})
DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "data:")

# ---------------------------------------------------------------------------------------------
# The HTML checker


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # attribute values come back entity-decoded
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _browser_url(value: str) -> str:
    """What a browser makes of an attribute URL: tabs/newlines dropped, ends stripped."""
    value = re.sub(r"[\t\n\r]", "", value)
    return value.strip("".join(chr(c) for c in range(0x21))).lower()


def assert_harmless(html_text: str) -> None:
    """No script, no raw HTML tag, no event handler, no dangerous URL."""
    assert "<script" not in html_text.lower()
    for tag_text in re.findall(r"<[^>]*>", html_text):
        unquoted = re.sub(r"\"[^\"]*\"|'[^']*'", "", tag_text)  # values may mention on...=
        assert re.search(r"\son\w+\s*=", unquoted, re.IGNORECASE) is None, tag_text
    collector = _TagCollector()
    collector.feed(html_text)
    collector.close()
    for tag, attrs in collector.tags:
        assert tag in MARKDOWN_TAGS, f"raw HTML tag <{tag}> in {html_text!r}"
        for name, value in attrs:
            assert not name.lower().startswith("on"), f"event handler {name} in {html_text!r}"
            if name.lower() in URL_ATTRIBUTES and value is not None:
                url = _browser_url(value)
                assert not url.startswith(DANGEROUS_SCHEMES), f"{name}={value!r}"


def render(text: str, extensions: list[str]) -> tuple[str, list[str]]:
    """HTML of ``text`` and the names the table of contents would show (raw, not escaped)."""
    md = markdown.Markdown(extensions=extensions)
    html_text = md.convert(text)
    names: list[str] = []

    def walk(tokens: list[dict[str, object]]) -> None:
        for token in tokens:
            names.append(str(token["name"]))
            walk(token["children"])  # type: ignore[arg-type]

    walk(getattr(md, "toc_tokens", []))
    return html_text, names


def text_of(html_text: str) -> str:
    """Visible text of an HTML fragment."""
    parts: list[str] = []

    class Text(HTMLParser):
        def handle_data(self, data: str) -> None:
            parts.append(data)

    Text(convert_charrefs=True).feed(html_text)
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Malicious inputs

MALICIOUS = [
    # raw HTML
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "Text <img src=x onerror=alert(1)> more",
    '<div onclick="alert(1)">click</div>',
    "<svg/onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">x</a>',
    "<details open ontoggle=alert(1)>",
    "<style>body{display:none}</style>",
    "<!-- c --><script>alert(1)</script>",
    "<<script>script>alert(1)<</script>/script>",
    "<scr<script>ipt>alert(1)</script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "\x02",
    "x\x0260\x03script>alert(1)",
    '<div markdown="1">\n*x* <script>alert(1)</script>\n</div>',
    '!!! note "<img src=x onerror=alert(1)>"\n    body <script>alert(1)</script>',
    "| <img src=x onerror=alert(1)> | b |\n|---|---|\n| c | d |",
    "- item <img src=x onerror=alert(1)>",
    "Heading\n=======\n\n<img src=x onerror=alert(1)>",
    "## <img src=x onerror=alert(1)>",
    "## &lt;img src=x onerror=alert(1)&gt;",
    "## ![<img src=x onerror=alert(1)>](https://example.com/a.png)",
    # links and images with dangerous schemes
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](java&#115;cript:alert(1))",
    "[x](&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](&#0000000000000106;avascript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](&Tab;javascript:alert(1))",
    "[x](&#32;javascript:alert(1))",
    "[x](java%73cript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](\njavascript:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](`javascript:alert(1)`)",
    "[`code`](javascript:alert(1))",
    '[x](javascript:alert(1) "title")',
    "[x](javascript:alert((1)))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml,<svg onload=alert(1)>)",
    "[x](https://ok){: href=javascript:alert(1) }",
    # reference definitions
    "[x][r]\n\n[r]: javascript:alert(1)",
    "[x][r]\n\n[r]:\n    javascript:alert(1)",
    "[x][r]\n\n[r]: <javascript:alert(1)>",
    '[x][r]\n\n   [r]: java&#115;cript:alert(1) "t"',
    "[x][r]\n\n[r]: &#32;javascript:alert(1)",
    "[x][R]\n\n[r]: JAVASCRIPT:alert(1)",
    "> [x][r]\n>\n> [r]: javascript:alert(1)",
    "- [x][r]\n\n    [r]: javascript:alert(1)",
    "[x][]\n\n[x]: vbscript:msgbox(1)",
    "[x][r]\n\n[r]: \n[r]: javascript:alert(1)",  # the first definition fails, the second holds
    "[x][r]\n\n[q]:\n[r]: data:text/html,x",
    # autolinks
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<https://example.com/onmouseover=alert(1)>",
    '<https://example.com" onmouseover="alert(1)>',
    "[<https://x.com/onmouseover=alert(1)>](https://ok)",
    # attr_list injection
    'Paragraph\n{: onclick="alert(1)" }',
    "Paragraph\n{ onclick=alert(1) }",
    '## Heading {: onclick="alert(1)" }',
    "## Heading { onclick=alert(1) }",
    "## Heading {: data-toc-label='<img src=x onerror=alert(1)>' }",
    "*em*{ onmouseover=alert(1) }",
    "[link](https://ok){: onclick=alert(1) }",
    "`code`{: onclick=alert(1) }",
    "| a |\n|---|\n| cell { onclick=alert(1) } |",
    "- item\n{: onclick=alert(1) }",
    "Line  \n{: onclick=alert(1) }",
    # fenced code
    '```{.python onclick="alert(1)"}\nprint(1)\n```',
    "```{ onclick=alert(1) }\nx\n```",
    "~~~{.sh #id style=x onmouseover=alert(1)}\nx\n~~~",
    "```{x}y}\n<script>alert(1)</script>\n```",
    "~~~\n<script>alert(1)</script>",
    "````\n<script>alert(1)</script>\n```",
    "  ```\n<script>alert(1)</script>\n  ```",
    '```python title="x"\n<script>alert(1)</script>\n```',
    "```\na\n```\n<img src=x onerror=alert(1)>\n```\nb\n```",
    "> ```\n> <script>alert(1)</script>\n> ```",
    # code spans that might not be code spans
    "`x` <script>alert(1)</script> `y`",
    "\\`<script>alert(1)</script>\\`",
    "`foo\nbar` <img src=x onerror=alert(1)> `x`",
    "`foo\n# `a` <img src=x onerror=alert(1)> `b`",
    "``a` <img src=x onerror=alert(1)>`",
    "\\\\`<img src=x onerror=alert(1)>`",
    "| `<img src=x onerror=alert(1)> | b` |\n|---|---|\n| c | d |",
    "`a\n\n<img src=x onerror=alert(1)>`",
]


@pytest.mark.parametrize(
    "extensions", [BRIEF_EXTENSIONS, MKDOCS_EXTENSIONS], ids=["brief", "mkdocs"]
)
@pytest.mark.parametrize("text", MALICIOUS)
def test_malicious_input_renders_harmless(text: str, extensions: list[str]) -> None:
    html_text, toc_names = render(sanitize_markdown(text), extensions)
    assert_harmless(html_text)
    # MkDocs' themes print TOC names unescaped: entities must stay entities there.
    for name in toc_names:
        assert "<" not in name


def test_the_checker_catches_unsanitised_input() -> None:
    """The harness is only worth something if the raw inputs fail it."""
    failing = 0
    for text in MALICIOUS:
        try:
            assert_harmless(render(text, MKDOCS_EXTENSIONS)[0])
        except AssertionError:
            failing += 1
    assert failing >= 50


# Disguises of a dangerous URL, in every place Markdown takes a URL.
DISGUISES = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java&#115;cript:alert(1)",
    "java&#x73;cript:alert(1)",
    "&#106;avascript:alert(1)",
    "javascript&#58;alert(1)",
    "javascript&colon;alert(1)",
    "&NewLine;javascript:alert(1)",
    "java%73cript:alert(1)",
    "%6A%61%76%61%73%63%72%69%70%74:alert(1)",
    "java&amp;#115;cript:alert(1)",
    "ｊａｖａｓｃｒｉｐｔ:alert(1)",
    "vbscript:msgbox(1)",
    "VBScript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "DATA:text/html;base64,PHNjcmlwdD4=",
]
FORMS = [
    "[x]({url})",
    "![x]({url})",
    "[x](<{url}>)",
    '[x]({url} "title")',
    "[x](\n  {url})",
    "[x][r]\n\n[r]: {url}",
    "[x][r]\n\n[r]:\n  {url}",
    "[x][r]\n\n[r]: <{url}>",
    "<{url}>",
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("url", DISGUISES)
@pytest.mark.parametrize("allow_html", [False, True])
def test_dangerous_urls_are_neutralised_in_every_form(
    form: str, url: str, allow_html: bool
) -> None:
    text = form.format(url=url)
    sanitized = sanitize_markdown(text, allow_html=allow_html)
    html_text, _ = render(sanitized, MKDOCS_EXTENSIONS)
    if allow_html:
        # Raw HTML is allowed, so only the URLs of Markdown links are checked.
        collector = _TagCollector()
        collector.feed(html_text)
        for _, attrs in collector.tags:
            for name, value in attrs:
                if name in URL_ATTRIBUTES and value is not None:
                    assert not _browser_url(value).startswith(DANGEROUS_SCHEMES)
    else:
        assert_harmless(html_text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[x](javascript:alert(1))", "[x](#)"),
        ("[x](java&#115;cript:alert(1))", "[x](#)"),
        ('[x](JaVaScRiPt:alert(1) "t")', '[x](# "t")'),
        ("![img](data:image/png;base64,AAAA)", "![img](#)"),
        ("[x](<javascript:alert(1)>)", "[x](#)"),
        ("[r]: javascript:alert(1)", "[r]: #"),
        ('[r]: vbscript:msgbox(1) "t"', '[r]: # "t"'),
    ],
)
def test_dangerous_url_becomes_hash(text: str, expected: str) -> None:
    assert sanitize_markdown(text) == expected
    assert sanitize_markdown(text, allow_html=True) == expected


def test_script_is_shown_as_text() -> None:
    html_text, _ = render(sanitize_markdown("<script>alert(1)</script>"), MKDOCS_EXTENSIONS)
    assert text_of(html_text) == "<script>alert(1)</script>"
    html_text, _ = render(sanitize_markdown("a <img src=x onerror=alert(1)> b"), MKDOCS_EXTENSIONS)
    assert text_of(html_text) == "a <img src=x onerror=alert(1)> b"


@pytest.mark.parametrize(
    "text",
    [
        'Paragraph\n{: onclick="alert(1)" }',
        '## Heading {: onclick="alert(1)" }',
        "## Heading { onclick=alert(1) }",
        "*em*{ onmouseover=alert(1) }",
    ],
)
def test_attr_list_is_shown_not_applied(text: str) -> None:
    html_text, _ = render(sanitize_markdown(text), MKDOCS_EXTENSIONS)
    assert_harmless(html_text)
    assert "onclick" in text_of(html_text) or "onmouseover" in text_of(html_text)


def test_fence_attributes_keep_class_and_id_only() -> None:
    text = '```{.python #ex onclick="alert(1)" hl_lines="1"}\nprint(1)\n```'
    assert sanitize_markdown(text) == '```{.python #ex hl_lines="1"}\nprint(1)\n```'
    html_text, _ = render(sanitize_markdown(text), MKDOCS_EXTENSIONS)
    assert 'class="language-python"' in html_text
    assert "onclick" not in html_text
    # With raw HTML allowed the fence is left alone.
    assert sanitize_markdown(text, allow_html=True) == text


def test_unclosed_fence_is_closed() -> None:
    assert sanitize_markdown("```py\n<b>\n") == "```py\n<b>\n```\n"
    assert sanitize_markdown("text\n~~~\ncode") == "text\n~~~\ncode\n~~~"


def test_unclosed_fence_cannot_capture_the_next_section() -> None:
    """Two sections assembled one after the other keep their code and prose apart."""
    first = sanitize_markdown("```\n<b>")
    second = sanitize_markdown("```html\n<p>shown as code</p>\n```\n\n<script>alert(1)</script>")
    html_text, _ = render(first + "\n\n## Next\n\n" + second, MKDOCS_EXTENSIONS)
    assert_harmless(html_text)
    assert "&lt;p&gt;shown as code&lt;/p&gt;" in html_text


def test_snippet_includes_are_escaped() -> None:
    assert sanitize_markdown('```\n--8<-- ".env"\n```') == '```\n;--8<-- ".env"\n```'
    assert "8<" not in sanitize_markdown('--8<-- ".env"').replace("8&lt;", "")


# ---------------------------------------------------------------------------------------------
# Benign Markdown

BENIGN = [
    "# Title\n\nSome *emphasis*, **strong** and `code`.",
    "- one\n- two\n    - nested\n\n1. first\n2. second",
    "| Name | Value |\n|------|------:|\n| a    | 1     |\n| b    | 2     |",
    "See [the docs](https://example.com/docs?a=1&b=2#part) and ![logo](https://example.com/l.png).",
    '[ref link][docs]\n\n[docs]: https://example.com/docs "Docs"',
    "An autolink: <https://example.com/path>, a mail: <user@example.com>.",
    "> A quote\n> over two lines.",
    "```python\nif a < b and c > d:\n    print({'k': 1})\n```",
    '~~~html\n<div class="x">{{ page.title }}</div>\n~~~',
    '```{.python hl_lines="2"}\nx = 1\ny = 2\n```',
    "Use `<div>` or `List<T>` and `{key=value}`; compare with `a|b`.",
    '!!! note "Heads up"\n    Indented admonition text.',
    "Prices: 3 > 2 and 1 -> 2, a & b.",
    "Escaped \\{braces\\} stay as they are.",  # ('\\<' is no escape: Python-Markdown keeps a tag)
    "Term with trailing spaces  \nnext line",
    "",
]


@pytest.mark.parametrize("text", BENIGN)
def test_benign_markdown_is_unchanged(text: str) -> None:
    assert sanitize_markdown(text) == text
    assert sanitize_markdown(text, allow_html=True) == text


@pytest.mark.parametrize("text", MALICIOUS + BENIGN)
def test_sanitising_twice_changes_nothing(text: str) -> None:
    once = sanitize_markdown(text)
    assert sanitize_markdown(once) == once


def test_uncertain_code_span_is_rewritten_but_renders_the_same() -> None:
    # The unpaired ``` makes it unclear which backticks pair, so the span is written as HTML.
    text = "Use `<div>` here ``` odd"
    sanitized = sanitize_markdown(text)
    assert sanitized == "Use <code>&#60;div&#62;</code> here ``` odd"
    assert render(sanitized, MKDOCS_EXTENSIONS)[0] == render(text, MKDOCS_EXTENSIONS)[0].replace(
        "&lt;div&gt;", "&#60;div&#62;"
    )


def test_line_endings_and_control_characters() -> None:
    assert sanitize_markdown("a\r\nb\rc") == "a\nb\nc"
    assert sanitize_markdown("a\x00b\x02c\td") == "abc\td"
    assert sanitize_markdown("a\x00b", allow_html=True) == "a\x00b"


# ---------------------------------------------------------------------------------------------
# allow_html=True


def test_allow_html_keeps_raw_html() -> None:
    text = '<div class="note">Hi <b>there</b></div>\n\n<img src="https://example.com/x.png">'
    assert sanitize_markdown(text, allow_html=True) == text


def test_allow_html_still_neutralises_markdown_links() -> None:
    assert sanitize_markdown("[x](javascript:alert(1))", allow_html=True) == "[x](#)"
    assert sanitize_markdown("<javascript:alert(1)>", allow_html=True) == (
        "&lt;javascript:alert(1)&gt;"
    )
    assert sanitize_markdown("`<javascript:alert(1)>`", allow_html=True) == (
        "`<javascript:alert(1)>`"
    )
    assert sanitize_markdown("{: onclick=x }", allow_html=True) == "{: onclick=x }"


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.mark.parametrize("url", [*DISGUISES, "\x01javascript:x", "java\nscript:x", "data:,"])
def test_is_dangerous_url_sees_through_disguises(url: str) -> None:
    assert is_dangerous_url(url)


@pytest.mark.parametrize(
    "url",
    ["https://example.com", "mailto:a@b.c", "#section", "../page.md", "javascripts/app.js", ""],
)
def test_is_dangerous_url_accepts_ordinary_urls(url: str) -> None:
    assert not is_dangerous_url(url)


def test_close_open_fences() -> None:
    assert close_open_fences("a\n```py\ncode") == "a\n```py\ncode\n```"
    assert close_open_fences("```py\ncode\n") == "```py\ncode\n```\n"
    assert close_open_fences("```\ncode\n```") == "```\ncode\n```"
    # Only column-0 fences count for Python-Markdown; an indented one is left alone.
    assert close_open_fences("  ```\ncode") == "  ```\ncode"


# ---------------------------------------------------------------------------------------------
# Random documents: the hand-written table above cannot think of every combination.

_FUZZ_PREFIXES = ["", "", "# ", "## ", "- ", "1. ", "> ", "    ", "| ", "!!! note\n    ", "T\n-\n"]
_FUZZ_ATOMS = [
    "`", "``", "```", "\\`", "\\\\", "<", "<img src=x onerror=alert(1)>", "<script>", "</b>",
    "{", "}", "{: onclick=alert(1) }", "[x](", "](", "]:", "[r]", "\n[r]: ", "javascript:alert(1)",
    "java&#115;cript:", "&#32;", "data:", "|", "*", "x", " ", "\n", "\n\n", "<!--", "-->",
    "<https://a.com/x>", '<div markdown="1">', "\n```\n", "\n~~~\n", "\n```{.py onclick=x}\n",
]  # fmt: skip


def _random_document(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(1, 6)):
        atoms = "".join(rng.choice(_FUZZ_ATOMS) for _ in range(rng.randint(1, 8)))
        lines.append(rng.choice(_FUZZ_PREFIXES) + atoms)
    return "\n".join(lines)


@pytest.mark.parametrize("seed", range(4))
def test_random_documents_render_harmless(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        text = _random_document(rng)
        sanitized = sanitize_markdown(text)
        html_text, toc_names = render(sanitized, MKDOCS_EXTENSIONS)
        assert_harmless(html_text)
        assert all("<" not in name for name in toc_names)
        assert sanitize_markdown(sanitized) == sanitized
