"""``mkdocs_aigen.markdown``: the plugin as a Python-Markdown extension, for Zensical.

Zensical reads ``mkdocs.yml`` or ``zensical.toml`` but never loads MkDocs plugins. It does
render every page through Python-Markdown with the configured ``markdown_extensions``,
and its context extension hands each page's path and front matter to the others. This
extension is a front door onto the same site-wide generation as the plugin and the
command line (:mod:`mkdocs_aigen.siterun`), with the same options, cache, lock, limits
and report:

* on the first page Zensical asks it to convert, it finds every stub of the site (the
  ``docs_dir`` of the config Zensical uses) and submits every section to one pool;
* each page then waits for its own sections only, which a preprocessor puts at the
  marker before any other extension sees the text. Pages without a stub are untouched;
* when the process ends (Zensical has no post-build hook) it waits for what is still in
  flight, logs the summary and writes the report.

Zensical 0.0.73 renders every page of a build in one process, on one thread (measured:
one pid and one thread id for every page), so a process-wide registry is the whole site;
the lock around it only guards against a renderer that calls from several threads.

Loaded by plain ``markdown.Markdown(extensions=["mkdocs_aigen.markdown"])``, there is no
site: a text that starts with a stub in its front matter is generated on its own (as a
page with no nav neighbours), and comes back without its front matter, as MkDocs would
render it.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor
from mkdocs.exceptions import PluginError

from mkdocs_aigen import zensical_config
from mkdocs_aigen.config import AigenConfig

if TYPE_CHECKING:
    from mkdocs_aigen.setup import Setup
    from mkdocs_aigen.siterun import SiteRun

log = logging.getLogger("mkdocs_aigen.markdown")

#: Runs before every other preprocessor (Zensical's macros and snippets run at 35 and
#: 32, whitespace normalisation at 30): they all see the page with its sections in it.
PRIORITY = 100
#: The name of a page converted by plain Python-Markdown, in messages.
PLAIN_PAGE = "<markdown>"


class AigenError(PluginError):
    """A mistake the user can fix: one line naming the file, the field, what is expected.

    A ``PluginError``, so MkDocs (and click) print it without a traceback.
    """


# -- options ------------------------------------------------------------------------------


def validated_options(options: Mapping[str, Any], config_file: Path | None) -> AigenConfig:
    """The extension's options checked by the plugin's own :class:`AigenConfig`, so a
    mistake reads as it does in ``plugins:``; an unknown option is an error here (Zensical
    would otherwise drop it without a word)."""
    config = AigenConfig()
    config.load_dict(dict(options))
    failed, warnings = config.validate()
    where = f"{config_file.name}: " if config_file is not None else ""
    problems = [(key, str(error)) for key, error in failed] + list(warnings)
    if problems:
        key, message = problems[0]
        raise AigenError(
            f"aigen: {where}markdown_extensions: {zensical_config.EXTENSION}: "
            f"option '{key}': {message}"
        )
    # MkDocs does this for a plugin's options; a Config used on its own needs it too.
    config.config_file_path = str(config_file) if config_file is not None else None
    return config


# -- the extension ------------------------------------------------------------------------


class AigenExtension(Extension):
    """Generated sections at each stub page's marker, before other extensions run."""

    def __init__(self, **kwargs: Any) -> None:
        # Markdown's own config mechanism would refuse unknown keys with a bare KeyError;
        # the options are checked by :func:`validated_options` with the plugin's messages.
        super().__init__()
        self.options = kwargs

    def extendMarkdown(self, md: Markdown) -> None:
        """Register the preprocessor ahead of every other."""
        md.registerExtension(self)
        md.preprocessors.register(AigenPreprocessor(md, self.options), "aigen", PRIORITY)


def makeExtension(**kwargs: Any) -> AigenExtension:
    """Python-Markdown's entry point: ``markdown_extensions: [mkdocs_aigen.markdown]``."""
    return AigenExtension(**kwargs)


class AigenPreprocessor(Preprocessor):
    """Puts a stub page's generated sections at its marker."""

    def __init__(self, md: Markdown, options: Mapping[str, Any]) -> None:
        super().__init__(md)
        self.options = dict(options)

    def run(self, lines: list[str]) -> list[str]:
        """The page's lines, with its sections in place when it has a stub."""
        if self.options.get("enabled", True) is False:
            return lines
        page = _zensical_page(self.md)
        zensical = zensical_config.running_config() if page is not None else None
        if page is None or zensical is None:
            return _plain_page(lines, self.options)
        meta = page.meta if isinstance(page.meta, dict) else {}
        site = _site_for(zensical, self.options, str(page.path) if "aigen" in meta else None)
        if "aigen" not in meta:
            return lines  # no stub: untouched
        block = site.block_for(str(page.path))
        if block is None:
            return lines
        macros = _macros_after(self.md, page)
        if macros is not None:
            from mkdocs_aigen.jinja_guard import shielded

            block = shielded(block, macros)
        return _with_block(lines, block, str(page.path))


# -- Zensical -----------------------------------------------------------------------------


def _zensical_page(md: Markdown) -> Any:
    """The page Zensical's context extension is rendering, or ``None``."""
    for processor in md.preprocessors:
        if type(processor).__name__ == "ContextPreprocessor" and hasattr(processor, "page"):
            return processor.page
    return None


def _macros_after(md: Markdown, page: Any) -> Any:
    """The Jinja2 markers of Zensical's macros extension when it renders this page after
    us (model-written ``{{ }}`` must reach the page as text, never run), else ``None``."""
    from mkdocs_aigen.jinja_guard import Delimiters

    if "macros" not in md.preprocessors:
        return None
    macros = md.preprocessors["macros"]
    should_render = getattr(macros, "_should_render", None)
    if callable(should_render) and not should_render(page):
        return None
    config = getattr(macros, "config", None)
    default = Delimiters()

    def marker(name: str, fallback: str) -> str:
        value = getattr(config, f"j2_{name}_string", None)
        return value if isinstance(value, str) and value else fallback

    return Delimiters(
        block_start=marker("block_start", default.block_start),
        block_end=marker("block_end", default.block_end),
        variable_start=marker("variable_start", default.variable_start),
        variable_end=marker("variable_end", default.variable_end),
        comment_start=marker("comment_start", default.comment_start),
    )


class ZensicalSite:
    """One Zensical build's generation: every stub of the site, submitted at once."""

    def __init__(self, zensical: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        from mkdocs_aigen.setup import SetupError, resolve_setup

        self.root = Path(str(zensical.get("root_dir") or ".")).resolve()
        self.config_file = zensical_config.running_config_file(self.root)
        self.options = validated_options(
            zensical_config.with_zensical_defaults(options), self.config_file
        )
        where = self.config_file.name
        try:
            self.config = zensical_config.mkdocs_config(zensical, self.config_file)
            self.setup: Setup = resolve_setup(self.options, self.config, serving=False)
            self.setup.prompts.check()
        except SetupError as error:
            prefix = "" if error.from_environment else f"{where}: "
            raise AigenError(f"aigen: {prefix}{error}") from None
        except Exception as error:
            raise _user_error(error) from None
        if zensical_config.cache_inside_zensical_cache(self.setup.cache_dir, self.root):
            log.warning(
                f"aigen: {where}: 'cache_dir' {self.setup.cache_dir} is inside Zensical's "
                "'.cache' folder, which `zensical build --clean` deletes with every answer "
                "in it; use a folder outside it (the default is "
                f"{zensical_config.ZENSICAL_CACHE_DIR})"
            )
        self.docs_dir = Path(self.config.docs_dir)
        self.results: dict[str, Any] = {}
        self._outside: dict[str, str] = {}
        self._last_progress = time.monotonic()
        self._last_done = -1
        self.sources, self.run = _new_run(self.config, self.setup, self._progress, self.report)
        # Started once ``self.run`` is set: a fully cached site finishes inside ``start``.
        self.run.start()

    def block_for(self, src_path: str) -> str | None:
        """This page's generated Markdown (waiting for its sections only), or ``None``."""
        if src_path not in self.run:
            return None
        try:
            result = self.run.page(src_path)
        except KeyboardInterrupt:
            self.run.engine.cancel()  # the exit then waits only for what is in flight
            raise
        except Exception as error:
            raise _user_error(error) from None
        if src_path not in self.results:
            self.results[src_path] = result
            _say(result, self.setup, self.options, self.run)
        return str(result.block)

    def is_current(self, src_path: str) -> bool:
        """Whether the page's source is still what was scanned (``zensical serve``
        renders again the pages that changed, in the same process)."""
        path = self.docs_dir / src_path
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError:
            return False
        if src_path in self.sources:
            return self.sources[src_path] == text
        # A page Zensical renders but MkDocs' file rules leave out: scanning again would
        # not find it either, so only a change of its text is worth a new scan.
        known = self._outside.get(src_path) == text
        self._outside[src_path] = text
        return known

    def report(self) -> None:
        """The summary lines and the report, once every page's flow has finished (Zensical
        has no post-build event; under ``zensical serve`` this is after each rebuild)."""
        from mkdocs_aigen.build_messages import build_notes
        from mkdocs_aigen.report import ReportContext, write_report

        stats = self.run.stats
        results = self.run.results()
        log.info(f"aigen: {stats.summary_line()}")
        for line in stats.stage_lines():
            log.info(f"aigen: {line}")
        for level, note in build_notes(self.setup, results):
            log.log(level, note)
        site_dir = Path(self.config.site_dir)
        report = site_dir / (self.options.report or "aigen-report.json")
        try:
            budget = self.run.engine.budget
            account = budget.account() if budget is not None else None
            write_report(report, stats, results, ReportContext.of(self.setup, budget=account))
        except OSError as error:
            log.warning(f"aigen: cannot write the report {report}: {error}")

    def finish(self) -> None:
        """At exit: wait for what is in flight (it was paid for), then make Zensical render
        pages with missing sections again next time."""
        results = self.run.close()
        failed = sorted(r.src_path for r in results if r.failed)
        if failed:
            # Zensical keeps a rendered page until its source or the config changes: left
            # there, a placeholder would outlive the failure. Dropped, the page is rendered
            # (and its missing sections asked for) again by the next build.
            forgotten = zensical_config.forget_rendered(self.root, failed)
            if forgotten:
                log.info(
                    f"aigen: {len(forgotten)} page(s) with missing sections will be "
                    "rendered again by the next build"
                )

    def _progress(self) -> None:
        stats = self.run.stats
        now = time.monotonic()
        if now - self._last_progress < float(self.options.progress_interval):
            return
        if stats.sections_done == self._last_done:
            return
        self._last_progress, self._last_done = now, stats.sections_done
        log.info(
            f"aigen: {stats.sections_done}/{stats.sections_total} sections "
            f"({stats.sections_from_store} cached, {stats.sections_failed} failed)"
        )


def _new_run(
    config: Any, setup: Setup, progress: Callable[[], None], report: Callable[[], None]
) -> tuple[dict[str, str], SiteRun]:
    from mkdocs_aigen.site import scan_site
    from mkdocs_aigen.siterun import SiteRun

    try:
        scan = scan_site(
            config, log.warning, setup.lazy_grounder(log.warning), setup.settings.language
        )
    except Exception as error:
        raise _user_error(error) from None
    run = SiteRun(setup, scan.jobs, log.warning, on_progress=progress, on_all_done=report)
    return scan.sources, run


_registry_lock = threading.Lock()
_current: ZensicalSite | None = None
_current_key: tuple[Any, ...] | None = None


def _site_for(
    zensical: dict[str, Any], options: Mapping[str, Any], stub_page: str | None
) -> ZensicalSite:
    """The running build's site, started on its first page; started again when the config
    or the stub page being rendered changed since (``zensical serve`` renders the pages
    that changed again, in the same process)."""
    global _current, _current_key
    with _registry_lock:
        key = (id(zensical), repr(sorted(options.items(), key=lambda item: str(item[0]))))
        site = _current
        if (
            site is not None
            and _current_key == key
            and (stub_page is None or site.is_current(stub_page))
        ):
            return site
        if site is None:
            _install_clean_errors()
            _zensical_logging()
            atexit.register(_finish)
        else:
            site.run.close(cancel=False)
        _current, _current_key = None, None
        site = ZensicalSite(zensical, options)
        if stub_page is not None:
            site.is_current(stub_page)  # remembers a page the scan could not find
        _current, _current_key = site, key
        return site


def _finish() -> None:
    """At exit (Zensical has no post-build hook): wait, summarise, report."""
    site = _current
    if site is not None:
        try:
            site.finish()
        except Exception as error:  # never a traceback at exit
            log.warning(f"aigen: could not finish the report: {error}")


def _zensical_logging() -> None:
    """Zensical sets up no Python logging: info lines would vanish and warnings print bare.
    Messages get MkDocs' look on stderr instead."""
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)-7s -  %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _install_clean_errors() -> None:
    """Show a user mistake as one line, without a traceback.

    Zensical 0.0.73 wraps any exception an extension raises in a ``RuntimeError`` whose
    text holds the original's traceback, and lets it reach the interpreter's top level.
    This hook prints an :class:`AigenError` found in it as click prints errors
    (``Error: ...``, exit status 1) and leaves every other exception to the usual hook.
    """
    previous = sys.excepthook
    marker = f"{AigenError.__name__}: "

    def hook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        text = str(error)
        if isinstance(error, RuntimeError) and marker in text:
            message = text.split(marker, 1)[1].split("\nTraceback", 1)[0].strip()
            print(f"Error: {message}", file=sys.stderr)
            return
        previous(kind, error, trace)

    sys.excepthook = hook


def _user_error(error: BaseException) -> BaseException:
    """A user mistake as an :class:`AigenError` (prefixed like the plugin's messages);
    anything else unchanged."""
    from mkdocs_aigen.lockfile import LockError
    from mkdocs_aigen.markers import MarkerError
    from mkdocs_aigen.prompts import TemplateError
    from mkdocs_aigen.stubs import StubError

    if isinstance(error, AigenError):
        return error
    if isinstance(
        error,
        StubError | MarkerError | TemplateError | LockError | zensical_config.ZensicalConfigError,
    ):
        return AigenError(f"aigen: {error}")
    return error


def _say(result: Any, setup: Setup, options: AigenConfig, run: SiteRun) -> None:
    """The page's warnings, as the plugin logs them; an error stops the build."""
    from mkdocs_aigen.build_messages import page_messages

    if run.engine.fatal is not None:
        run.engine.cancel()
        raise AigenError(f"aigen: generation stopped: {run.engine.fatal.message}")
    warnings, error = page_messages(result, setup, fail=options.on_error == "fail")
    for warning in warnings:
        log.warning(warning)
    if error is not None:
        run.engine.cancel()
        raise AigenError(error)


def _with_block(lines: list[str], block: str, src_path: str) -> list[str]:
    from mkdocs_aigen.markers import insert_block

    try:
        return insert_block("\n".join(lines), block, src_path).split("\n")
    except Exception as error:
        raise _user_error(error) from None


# -- plain Python-Markdown ----------------------------------------------------------------


def _plain_page(lines: list[str], options: Mapping[str, Any]) -> list[str]:
    """A text converted outside Zensical: generated on its own when its front matter has a
    stub (relative paths in the options are taken from the working folder)."""
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.utils import meta as mkdocs_meta

    from mkdocs_aigen.setup import SetupError, resolve_setup
    from mkdocs_aigen.site import find_stub, may_have_stub, page_jobs
    from mkdocs_aigen.siterun import SiteRun

    text = "\n".join(lines)
    if not may_have_stub(text):
        return lines
    try:
        page = find_stub(text, PLAIN_PAGE, log.warning)
    except Exception as error:
        raise _user_error(error) from None
    if page is None:
        return lines
    aigen = validated_options(options, None)
    config = MkDocsConfig(config_file_path=str(Path.cwd() / "mkdocs.yml"))
    config.load_dict({"site_name": ""})
    try:
        setup = resolve_setup(aigen, config, serving=False)
        setup.prompts.check()
    except SetupError as error:
        raise AigenError(f"aigen: {error}") from None
    except Exception as error:
        raise _user_error(error) from None
    run = SiteRun(setup, page_jobs([page], {}), log.warning)
    try:
        run.start()
        result = run.page(PLAIN_PAGE)
        _say(result, setup, aigen, run)
    except Exception as error:
        run.close(cancel=True)
        raise _user_error(error) from None
    run.close()
    body, _ = mkdocs_meta.get_data(text)
    return _with_block(body.split("\n"), result.block, PLAIN_PAGE)
