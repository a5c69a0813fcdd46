"""Zensical: the ``mkdocs_aigen.markdown`` extension under the real ``zensical build``.

Every build runs ``python -m zensical build`` in a child process against the fake server
started here; what was sent is what the server saw. The config helpers and the extension
under plain Python-Markdown get plain tests too.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import markdown
import pytest
import yaml

from mkdocs_aigen import zensical_config
from mkdocs_aigen.cache import ResponseCache
from mkdocs_aigen.markdown import AigenError, validated_options
from tests.conftest import TEST_KEY, TEST_KEY_ENV, needs
from tests.fake_server import FakeOpenAI, Reply, RequestRecord, default_responder
from tests.pages import GUIDE, SECRETS_HINT
from tests.test_incremental import GUIDE_SECTIONS, _edit, _free_port, _get, _wait_for

if sys.version_info < (3, 11):
    # The [test] extra installs Zensical on Python 3.11+ only (the only release pip
    # serves here, 0.0.73, is tested there); on 3.10 these are not a missing dependency.
    zensical_needed = pytest.mark.skip(reason="zensical is tested on Python 3.11+")
else:
    zensical_needed = needs(
        None if importlib.util.find_spec("zensical") else "zensical (pip install zensical)"
    )

PLAIN = "# Plain page\n\nNothing generated here.\n"
#: Every heading of a built GUIDE page, in order: its title, then each section at its level.
GUIDE_HEADINGS = [
    (1, "{title}"),
    (2, "Overview"),
    (2, "The config file"),
    (3, "Environment variables"),
    (3, "Secrets"),
    (2, "Troubleshooting"),
    (3, "Logs"),
    (3, "Common errors"),
]


class ZensicalSite:
    """A Zensical project in a temporary folder, built by the real ``zensical`` CLI."""

    def __init__(self, root: Path, options: dict[str, Any], style: str) -> None:
        self.root = root
        self.options = options
        self.style = style
        self.docs = root / "docs"
        #: More top-level settings (``plugins``...) for ``mkdocs.yml``, and as TOML text.
        self.extra: dict[str, Any] = {}
        self.extra_toml = ""

    @property
    def config_file(self) -> Path:
        return self.root / ("zensical.toml" if self.style == "toml" else "mkdocs.yml")

    def write_config(self) -> None:
        if self.style == "toml":
            lines = [
                "[project]",
                'site_name = "Zensical Site"',
                "",
                (f'[project.markdown_extensions."{zensical_config.EXTENSION}"]'),
            ]
            lines += [f"{key} = {json.dumps(value)}" for key, value in self.options.items()]
            lines += ["", self.extra_toml]
            self.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
            return
        config = {
            "site_name": "Zensical Site",
            "markdown_extensions": [{zensical_config.EXTENSION: self.options}],
            **self.extra,
        }
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    def page(self, name: str, text: str) -> Path:
        path = self.docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python -m zensical ARGS`` (or another module) in the project folder."""
        self.write_config()
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=120,
            check=False,
        )

    def build(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run("zensical", "build", "-f", self.config_file.name, *args, env=env)

    def html(self, name: str) -> str:
        stem = name.removesuffix(".md")
        target = "index.html" if stem == "index" else f"{stem}/index.html"
        return html.unescape((self.root / "site" / target).read_text(encoding="utf-8"))


@pytest.fixture(params=["yml", "toml"])
def zsite(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> ZensicalSite:
    """A Zensical site wired to the fake server, in both config styles."""
    monkeypatch.setenv(TEST_KEY_ENV, TEST_KEY)
    for name in ("AIGEN_CONCURRENCY", "AIGEN_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    options = {
        "base_url": server.base_url,
        "api_key_env": TEST_KEY_ENV,
        "model": "test-model",
        "concurrency": 4,
        "words": 40,
        "max_retries": 3,
        "timeout": 10,
    }
    return ZensicalSite(tmp_path, options, request.param)


def _guide_site(zsite: ZensicalSite) -> None:
    zsite.page("index.md", PLAIN)
    zsite.page("guide.md", GUIDE)
    zsite.page("more/other.md", GUIDE.replace("Configuring Foo", "Running Foo"))


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def _headings(page: str) -> list[tuple[int, str]]:
    """The headings of the page's content, as (level, text)."""
    found = re.findall(r'<h([1-6]) id="[^"]*">([^<]*)', page)
    return [(int(level), text.strip()) for level, text in found]


def _section_prompts(server: FakeOpenAI) -> Counter[str]:
    def prompt(record: RequestRecord) -> str:
        assert record.body is not None
        return json.dumps(record.body["messages"], sort_keys=True)

    return Counter(prompt(r) for r in server.records(stage="section"))


# -- builds -------------------------------------------------------------------------------


@zensical_needed
def test_every_section_is_built_once_in_one_pool_and_a_rebuild_sends_nothing(
    zsite: ZensicalSite, server: FakeOpenAI
) -> None:
    _guide_site(zsite)
    # Long enough that requests of different pages overlap if, and only if, they are
    # submitted together: Zensical renders its pages one after another on one thread.
    server.configure(latency=0.3)
    first = zsite.build()
    _ok(first)
    for page, title in (("guide.md", "Configuring Foo"), ("more/other.md", "Running Foo")):
        text = zsite.html(page)
        expected = [(level, name.format(title=title)) for level, name in GUIDE_HEADINGS]
        assert _headings(text) == expected, page
        assert "Text for The config file > Secrets." in text
        assert "Hand-written text stays exactly where it is." in text
        assert "More hand-written text." in text
        assert title in text
    assert "Nothing generated here." in zsite.html("index.md")
    prompts = _section_prompts(server)
    assert sum(prompts.values()) == 2 * GUIDE_SECTIONS
    assert set(prompts.values()) == {1}  # each request exactly once
    assert server.count() == 2 * GUIDE_SECTIONS
    assert server.max_in_flight > 1  # one pool for the whole site
    assert f"aigen: {2 * GUIDE_SECTIONS} sections, 0 cache/lock hits, " in first.stderr
    report = json.loads((zsite.root / "site" / "aigen-report.json").read_text("utf-8"))
    assert sorted(report["pages"]) == ["guide.md", "more/other.md"]
    assert report["stages"]["section"]["requests"] == 2 * GUIDE_SECTIONS

    again = zsite.build()  # Zensical's own cache: nothing to render, nothing to send
    _ok(again)
    assert server.count() == 2 * GUIDE_SECTIONS
    clean = zsite.build("--clean")  # every page rendered again, from our cache
    _ok(clean)
    assert server.count() == 2 * GUIDE_SECTIONS
    assert f"{2 * GUIDE_SECTIONS} cache/lock hits, 0 requests" in clean.stderr
    assert "Text for The config file > Secrets." in zsite.html("guide.md")
    # The answers outlive `--clean`, which deletes Zensical's .cache folder whole.
    assert (zsite.root / zensical_config.ZENSICAL_CACHE_DIR).is_dir()
    assert not (zsite.root / ".cache" / "plugin").exists()


@zensical_needed
def test_a_lock_written_by_the_command_line_is_used_offline(
    zsite: ZensicalSite, server: FakeOpenAI
) -> None:
    _guide_site(zsite)
    zsite.options["lock"] = "aigen.lock"
    # No -f: mkdocs.yml, else zensical.toml, is found as `zensical build` finds it.
    locked = zsite.run("mkdocs_aigen.cli", "lock")
    assert locked.returncode == 0, locked.stdout + locked.stderr
    assert server.count() == 2 * GUIDE_SECTIONS
    lock = zsite.root / "aigen.lock"
    text = lock.read_text("utf-8")
    assert "Text for Troubleshooting > Logs." in text
    lock.write_text(
        text.replace("Text for Troubleshooting > Logs.", "Reviewed by a person."), encoding="utf-8"
    )
    # A fresh cache too: only the lock can answer.
    zsite.options["cache"] = False
    built = zsite.build(env={"AIGEN_OFFLINE": "1"})
    _ok(built)
    assert server.count() == 2 * GUIDE_SECTIONS  # nothing sent
    assert "Reviewed by a person." in zsite.html("guide.md")
    assert "Reviewed by a person." in zsite.html("more/other.md")
    assert "0 requests" in built.stderr and "Not generated" not in zsite.html("guide.md")


@zensical_needed
@pytest.mark.parametrize("zsite", ["yml"], indirect=True)
def test_mkdocs_build_and_zensical_build_share_answers(
    zsite: ZensicalSite, server: FakeOpenAI
) -> None:
    """One mkdocs.yml for both tools: the plugin for MkDocs, the extension for Zensical
    (which skips the plugin), one cache. Prompts name nav neighbours, so an explicit nav
    with its own titles shows both tools compute the same requests."""
    _guide_site(zsite)
    zsite.options["cache_dir"] = ".aigen/cache"
    zsite.extra = {
        "nav": [{"Start": "index.md"}, {"The guide": "guide.md"}, "more/other.md"],
        "plugins": [{"aigen": zsite.options}],
    }
    built = zsite.run("mkdocs", "build")
    assert built.returncode == 0, built.stderr
    assert server.count() == 2 * GUIDE_SECTIONS
    assert any("Start" in json.dumps(r.body) for r in server.records(stage="section"))
    _ok(zsite.build())
    assert server.count() == 2 * GUIDE_SECTIONS  # every answer came from MkDocs' build
    assert "Text for The config file > Secrets." in zsite.html("guide.md")


@zensical_needed
def test_a_bad_stub_is_one_line_naming_file_and_field(
    zsite: ZensicalSite, server: FakeOpenAI
) -> None:
    zsite.page("index.md", PLAIN)
    zsite.page("guide.md", GUIDE)
    zsite.page(
        "bad.md",
        "---\naigen:\n  brief: x\n  outline:\n    - title: A\n      words: 0\n---\n# Bad\n",
    )
    result = zsite.build()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert (
        "Error: aigen: bad.md: 'aigen.outline[0].words': a positive integer (1..5000), "
        "found integer 0"
    ) in result.stderr
    assert server.count() == 0  # found before anything is spent


@zensical_needed
def test_an_unknown_option_is_one_error_naming_it(zsite: ZensicalSite, server: FakeOpenAI) -> None:
    zsite.page("guide.md", GUIDE)
    zsite.options["wrods"] = 40
    result = zsite.build()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert f"markdown_extensions: {zensical_config.EXTENSION}: option 'wrods'" in result.stderr
    assert "did you mean 'words'?" in result.stderr
    assert server.count() == 0


@zensical_needed
def test_on_error_fail_stops_the_build_in_one_line_and_a_cache_in_dot_cache_is_warned(
    zsite: ZensicalSite, server: FakeOpenAI
) -> None:
    zsite.page("guide.md", GUIDE)
    zsite.options.update(on_error="fail", cache_dir=".cache/plugin/aigen")

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if "Section: Troubleshooting > Logs" in json.dumps(body):
            return Reply("the model is not available", status=400)
        return default_responder(body, record)

    server.responder = responder
    result = zsite.build()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert "Error: aigen: guide.md: section 'Troubleshooting > Logs' failed: " in result.stderr
    assert "is inside Zensical's '.cache' folder, which `zensical build --clean` deletes" in (
        result.stderr
    )
    # What was paid for before the failure stopped the build is kept.
    cache = ResponseCache((zsite.root / ".cache" / "plugin" / "aigen").resolve(), print)
    try:
        assert cache.count() == server.count(status=200) > 0
    finally:
        cache.close()


@zensical_needed
def test_a_failed_section_is_a_placeholder_and_the_next_build_asks_again(
    zsite: ZensicalSite, server: FakeOpenAI
) -> None:
    zsite.page("index.md", PLAIN)
    zsite.page("guide.md", GUIDE)
    broken = {"on": True}

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if broken["on"] and "Section: Troubleshooting > Logs" in json.dumps(body):
            return Reply("the model is not available", status=400)
        return default_responder(body, record)

    server.responder = responder
    first = zsite.build()
    _ok(first)
    assert "Not generated: Troubleshooting > Logs." in zsite.html("guide.md")
    assert "aigen: guide.md: section 'Troubleshooting > Logs' failed" in first.stderr
    assert "Text for Troubleshooting > Common errors." in zsite.html("guide.md")
    sent = server.count()

    broken["on"] = False
    # No --clean and no edit: Zensical would serve its stored page, placeholder and all,
    # had the extension not dropped it.
    second = zsite.build()
    _ok(second)
    assert server.count() == sent + 1
    assert "Text for Troubleshooting > Logs." in zsite.html("guide.md")
    assert "Not generated" not in zsite.html("guide.md")


@zensical_needed
def test_model_written_jinja_is_text_under_zensicals_macros(
    zsite: ZensicalSite, server: FakeOpenAI
) -> None:
    from tests.test_macros import HOSTILE, PAGE

    server.responder = lambda body, record: HOSTILE
    zsite.page("page.md", PAGE)
    # Zensical maps the plugin to its own macros extension.
    zsite.extra = {"plugins": ["macros"]}
    zsite.extra_toml = "[project.plugins.macros]"
    result = zsite.build()
    _ok(result)
    text = zsite.html("page.md")
    assert "Hand-written: 2." in text  # the macros extension did run
    section = text.split('id="overview"', 1)[1].split("<footer", 1)[0]
    for evaluated in ("49", "36", "25", "16"):
        assert evaluated not in section
    assert "{{ 7 * 7 }} and {% if true %}yes{% endif %} {# hidden #}" in text
    assert "{% endraw %}{{ 6 * 6 }}{%- endraw -%} here." in text
    # Zensical highlights the code block: compare its text without the markup.
    assert "{{ 5 * 5 }} {% endraw %}{{ 4 * 4 }}" in re.sub(r"<[^>]+>", "", section)


@zensical_needed
def test_without_a_key_sections_are_missing_with_the_fix_and_a_key_fills_them_later(
    zsite: ZensicalSite, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    zsite.page("guide.md", GUIDE)
    del zsite.options["base_url"]  # from OPENAI_BASE_URL, so the config stays the same
    zsite.options["provider"] = "openai"
    monkeypatch.delenv(TEST_KEY_ENV)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    first = zsite.build()
    _ok(first)
    assert f"no API key: set the environment variable {TEST_KEY_ENV}" in first.stderr
    assert f"aigen: guide.md: {GUIDE_SECTIONS} section(s) not generated" in first.stderr
    assert "Not generated: Overview." in zsite.html("guide.md")
    assert server.count() == 0

    second = zsite.build(env={TEST_KEY_ENV: TEST_KEY, "OPENAI_BASE_URL": server.base_url})
    _ok(second)
    assert server.count() == GUIDE_SECTIONS
    assert "Not generated" not in zsite.html("guide.md")
    assert TEST_KEY not in first.stderr + second.stderr + first.stdout + second.stdout


@zensical_needed
@pytest.mark.parametrize("zsite", ["yml"], indirect=True)
def test_zensical_serve_sends_only_the_edited_section(
    zsite: ZensicalSite, server: FakeOpenAI
) -> None:
    guide = zsite.page("guide.md", GUIDE)
    zsite.page("index.md", PLAIN)

    def responder(body: dict[str, Any], record: RequestRecord) -> str:
        vault = "the vault" in json.dumps(body)
        return default_responder(body, record) + (" Vault hint seen." if vault else "")

    server.responder = responder
    zsite.write_config()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/guide/"
    log_path = zsite.root / "serve.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "zensical", "serve", "-a", f"127.0.0.1:{port}"],
            cwd=zsite.root,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            page = _wait_for(lambda: _get(url), "the first build")
            assert "Text for The config file &gt; Secrets." in page
            assert server.count() == GUIDE_SECTIONS
            _edit(guide, SECRETS_HINT, "Tokens live in the vault.")
            _wait_for(lambda: "Vault hint seen." in (_get(url) or ""), "the rebuild")
            assert server.count() == GUIDE_SECTIONS + 1
            # Written after each rebuild's sections are done: there is no post-build event.
            report = zsite.root / "site" / "aigen-report.json"
            _wait_for(lambda: '"requests":1,' in report.read_text("utf-8"), "the report")
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    output = log_path.read_text(encoding="utf-8")
    assert "Traceback" not in output, output


# -- plain Python-Markdown ------------------------------------------------------------------


def test_plain_markdown_generates_a_text_with_a_stub(
    tmp_path: Path, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(TEST_KEY_ENV, TEST_KEY)
    monkeypatch.delenv("AIGEN_OFFLINE", raising=False)
    options = {
        "base_url": server.base_url,
        "api_key_env": TEST_KEY_ENV,
        "model": "test-model",
        "words": 40,
        "max_retries": 0,
    }
    md = markdown.Markdown(
        extensions=[zensical_config.EXTENSION],
        extension_configs={zensical_config.EXTENSION: options},
    )
    out = md.convert(GUIDE.lstrip("\n"))
    assert "<p>Text for The config file &gt; Secrets." in out
    assert "aigen" not in out and "brief" not in out  # the front matter is gone
    assert "Hand-written text stays exactly where it is." in out
    assert server.count() == GUIDE_SECTIONS
    # Untouched without a stub, byte for byte as Python-Markdown alone renders it.
    for text in (PLAIN, "---\ntitle: x\n---\n# T\n", "# T\n\naigen: not front matter\n"):
        assert md.reset().convert(text) == markdown.markdown(text)
    assert server.count() == GUIDE_SECTIONS
    again = markdown.Markdown(
        extensions=[zensical_config.EXTENSION],
        extension_configs={zensical_config.EXTENSION: options},
    ).convert(GUIDE.lstrip("\n"))
    assert again == out and server.count() == GUIDE_SECTIONS  # the cache answered


def test_plain_markdown_reports_a_bad_stub_as_a_plugin_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = "---\naigen:\n  outline: [A]\n---\n# Bad\n"
    with pytest.raises(AigenError, match=r"^aigen: <markdown>: 'aigen.brief'"):
        markdown.markdown(bad, extensions=[zensical_config.EXTENSION])


# -- options and config -------------------------------------------------------------------


def test_options_are_checked_by_the_plugins_config() -> None:
    config_file = Path("/site/zensical.toml")
    assert validated_options({"words": 120}, config_file).words == 120
    with pytest.raises(AigenError) as error:
        validated_options({"words": "many"}, config_file)
    assert str(error.value).startswith(
        f"aigen: zensical.toml: markdown_extensions: {zensical_config.EXTENSION}: option 'words': "
    )
    with pytest.raises(AigenError, match="option 'api_key': 'api_key' is ignored"):
        validated_options({"api_key": "sk-secret-value"}, config_file)
    with pytest.raises(AigenError) as secret:
        validated_options({"api_key": "sk-secret-value"}, config_file)
    assert "sk-secret-value" not in str(secret.value)


@pytest.mark.parametrize(
    ("extensions", "configs", "expected"),
    [
        (
            ["toc", zensical_config.EXTENSION],
            {zensical_config.EXTENSION: {"words": 9}},
            {"words": 9},
        ),
        ([{zensical_config.EXTENSION: {"words": 9}}], None, {"words": 9}),
        ([zensical_config.EXTENSION], None, {}),
        ({zensical_config.EXTENSION: None}, None, {}),
        (["toc", {"admonition": {}}], {"toc": {}}, None),
        (None, None, None),
    ],
)
def test_extension_options_in_every_form(extensions: Any, configs: Any, expected: Any) -> None:
    assert zensical_config.extension_options(extensions, configs) == expected


def test_zensical_nav_goes_back_to_mkdocs_shape() -> None:
    nav = [
        {"title": None, "url": "index.md", "children": []},
        {"title": "Guide", "url": "guide.md", "children": []},
        {
            "title": "More",
            "url": None,
            "children": [{"title": None, "url": "more/a.md", "children": []}],
        },
    ]
    assert zensical_config.mkdocs_nav(nav) == [
        "index.md",
        {"Guide": "guide.md"},
        {"More": ["more/a.md"]},
    ]
    assert zensical_config.mkdocs_nav([]) is None


def test_the_default_cache_is_outside_zensicals_cache(tmp_path: Path) -> None:
    assert zensical_config.with_zensical_defaults({})["cache_dir"] == ".aigen/cache"
    assert zensical_config.with_zensical_defaults({"cache_dir": "x"})["cache_dir"] == "x"
    inside = zensical_config.cache_inside_zensical_cache
    assert inside((tmp_path / ".cache" / "plugin" / "aigen").resolve(), tmp_path)
    assert not inside((tmp_path / ".aigen" / "cache").resolve(), tmp_path)
    assert not inside(None, tmp_path)


def test_the_running_config_file(tmp_path: Path) -> None:
    find = zensical_config.running_config_file
    assert (
        find(tmp_path, ["zensical", "build", "-f", str(tmp_path / "a.yml")]) == tmp_path / "a.yml"
    )
    assert find(tmp_path, ["zensical", "build", f"--config-file={tmp_path / 'b.toml'}"]) == (
        tmp_path / "b.toml"
    )
    (tmp_path / "mkdocs.yml").write_text("site_name: x\n", encoding="utf-8")
    assert find(tmp_path, ["zensical", "build"]) == (tmp_path / "mkdocs.yml").resolve()
    (tmp_path / "zensical.toml").write_text("", encoding="utf-8")
    assert find(tmp_path, ["zensical", "build"]) == (tmp_path / "zensical.toml").resolve()


def test_forget_rendered_removes_only_zensicals_pages_of_those_paths(tmp_path: Path) -> None:
    cache = tmp_path / ".cache"
    (cache / "plugin" / "aigen").mkdir(parents=True)
    answer = cache / "plugin" / "aigen" / "123"
    answer.write_text("{}", encoding="utf-8")

    def page(name: str, source: str) -> Path:
        path = cache / name
        data = {"data": {"route": {"source": source}, "markdown": {}}, "hash": "1"}
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    failed, kept = page("111", "guide.md"), page("222", "other.md")
    not_ours = cache / "333"
    not_ours.write_text("not json", encoding="utf-8")
    named = cache / "mkdocstrings.json"
    named.write_text(json.dumps({"data": {"route": {"source": "guide.md"}}}), encoding="utf-8")
    assert zensical_config.forget_rendered(tmp_path, ["guide.md"]) == ["guide.md"]
    assert not failed.exists()
    assert kept.exists() and not_ours.exists() and named.exists() and answer.exists()
    assert zensical_config.forget_rendered(tmp_path / "nowhere", ["guide.md"]) == []
