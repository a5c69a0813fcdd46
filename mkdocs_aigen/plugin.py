"""MkDocs events -> calls into the engine. No generation logic lives here.

Why these hooks:

* ``on_startup``: MkDocs keeps a plugin that has it alive for the whole ``mkdocs serve``
  session, so the pool, the client and the cache survive rebuilds.
* ``on_files``: every page's source is known, but nothing is rendered yet: find every
  stub of the site and fail early on a bad one, before anything is spent.
* ``on_nav``: the reading order is known (each prompt names the page's neighbours);
  every section of every page is submitted here, before the first page renders, so a
  page waits only for its own sections while all the others are already in flight.
* ``on_page_markdown``: wait for this page only, and put its sections at the marker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, PrefixedLogger, event_priority
from mkdocs.structure.files import Files
from mkdocs.structure.nav import Navigation
from mkdocs.structure.pages import Page

from mkdocs_aigen.build_messages import PendingPage, fallback_note, page_messages
from mkdocs_aigen.config import AigenConfig
from mkdocs_aigen.jobs import PageJob, PageResult
from mkdocs_aigen.markers import MarkerError, insert_block
from mkdocs_aigen.pagecache import (
    PageStore,
    StoredPage,
    page_key,
    page_store_for,
    served_from_store,
    sources_untouched,
    worth_keeping,
)
from mkdocs_aigen.prompts import TemplateError
from mkdocs_aigen.quick_exit import skip_final_collection
from mkdocs_aigen.report import ReportContext, write_report
from mkdocs_aigen.setup import Setup, SetupError, resolve_setup
from mkdocs_aigen.site import (
    StubPage,
    file_text,
    find_stub,
    may_have_stub,
    nav_neighbours,
    page_jobs,
)
from mkdocs_aigen.stats import BuildStats

if TYPE_CHECKING:
    # Imported when a page needs generating: a fully cached build reads finished pages
    # back and never loads the engine, the pipeline or an SDK.
    from mkdocs_aigen.cache import ResponseCache
    from mkdocs_aigen.engine import Engine
    from mkdocs_aigen.grounding import Grounder
    from mkdocs_aigen.progress import Progress
    from mkdocs_aigen.refresh import Refresh


class _PluginLog(PrefixedLogger):
    """MkDocs' plugin logger (``--strict`` counts its warnings), prefixed ``aigen:`` once.

    Most messages already start with ``aigen:``; MkDocs' own ``get_plugin_logger`` would
    put ``mkdocs_aigen:`` in front of that, and every warning would stutter.
    """

    def process(self, msg: Any, kwargs: Any) -> tuple[str, Any]:
        text = str(msg)
        return (text if text.startswith("aigen: ") else f"aigen: {text}"), kwargs


log = _PluginLog("aigen", logging.getLogger(f"mkdocs.plugins.{__name__}"))


class AigenPlugin(BasePlugin[AigenConfig]):
    """Generates the sections of every page that has an ``aigen`` stub."""

    supports_multiple_instances = False

    def __init__(self) -> None:
        self._serving = False
        self._engine: Engine | None = None
        self._engine_identity: tuple[Any, ...] | None = None
        self._cache: ResponseCache | None = None
        self._setup: Setup | None = None
        self._stub_pages: dict[str, StubPage] = {}
        #: Pages found whole in the page store, by ``src_uri`` (parsed only if their
        #: neighbours changed), with their source text and page-store keys.
        self._stored: dict[str, StoredPage] = {}
        self._sources: dict[str, str] = {}
        self._page_keys: dict[str, str] = {}
        self._pending: dict[str, PendingPage] = {}
        #: Each generated page's built URL, for the report's links.
        self._urls: dict[str, str] = {}
        #: Pages ``AIGEN_REFRESH`` names, to generate again whatever lock and cache hold.
        self._refresh: dict[str, Refresh] = {}
        self._refreshed_once = False
        self._stats = BuildStats()
        #: This build's progress display, made with its first page to generate.
        self._display: Progress | None = None
        #: mkdocs-macros, when it renders pages after this plugin (see ``jinja_guard``).
        self._macros: Any = None
        #: This build's reader of ``sources`` (see ``_build_grounder``).
        self._grounder: Grounder | None = None
        #: Documentation pages looked at in this build (``on_files``, then ``on_nav``).
        self._scanned: set[str] = set()
        #: mkdocs-static-i18n's language of each page of this build, by ``src_uri``.
        self._locales: dict[str, str | None] = {}
        #: Source files of stored pages found untouched (``mkdocs serve`` watches them).
        self._untouched: set[str] = set()
        #: ``mkdocs serve``'s server, and the source files it watches already.
        self._server: Any = None
        self._watched: set[str] = set()
        #: ``mkdocs.yml``'s name, for messages about its options.
        self._config_name = "mkdocs.yml"

    # -- lifecycle -----------------------------------------------------------------------

    def on_startup(self, *, command: str, dirty: bool) -> None:
        """Remember whether this is ``mkdocs serve`` (the instance then lives across builds)."""
        self._serving = command == "serve"

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        """Resolve options, paths and the backend; check templates and the lock early."""
        if not self.config.enabled:
            return None
        self._config_name = Path(config.config_file_path or "mkdocs.yml").name
        try:
            self._setup = resolve_setup(self.config, config, serving=self._serving)
            self._setup.prompts.check()
        except SetupError as error:
            # Name the file to fix; AIGEN_CONCURRENCY and friends name themselves.
            where = "" if error.from_environment else f"{Path(config.config_file_path).name}: "
            raise PluginError(f"aigen: {where}{error}") from None
        except TemplateError as error:
            raise PluginError(f"aigen: {error}") from None
        except Exception as error:
            # The lock file's module is loaded only when a lock is configured.
            from mkdocs_aigen.lockfile import LockError

            if isinstance(error, LockError):
                raise PluginError(f"aigen: {error}") from None
            raise
        self._macros = self._macros_after_us(config)
        self._check_notice(config)
        return None

    # Late, whatever the order in `plugins:`: pages that mkdocs-gen-files and its like
    # generate in their own `on_files` (default priority) can carry stubs too, and
    # mkdocs-static-i18n (-100) has picked this build's language and its pages.
    @event_priority(-110)
    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files | None:
        """Find every stub of the site (and stop on a bad one before anything is spent).

        A page stored whole for exactly its current text is not even parsed: ``on_nav``
        only checks that its neighbours in the nav are still the same.
        """
        if not self.config.enabled:
            return None
        setup = self._setup
        assert setup is not None
        self._stub_pages, self._stored, self._sources, self._page_keys = {}, {}, {}, {}
        self._pending = {}  # under `mkdocs serve`, nothing of the previous build carries over
        self._grounder = None  # every source file is read again, once, each build
        self._locales = {}
        self._untouched = set()  # source files of stored pages, checked by their stamps
        self._scanned = set()
        # Under `mkdocs serve`, only the first build: every save must not pay again.
        self._refresh = {} if self._refreshed_once else self._refresh_pages(files, config)
        self._refreshed_once = self._serving and bool(self._refresh)
        self._scan(files, setup)
        self._start_backend_if_needed()
        return None

    def _scan(self, files: Files, setup: Setup) -> None:
        """Look at each documentation page not looked at yet in this build."""
        store = self._page_store(setup)
        site = setup.pages_identity() if store is not None else ""
        for file in files.documentation_pages():
            src_path = file.src_uri
            if src_path in self._scanned:
                continue
            self._scanned.add(src_path)
            text = file_text(file)
            if not may_have_stub(text):
                continue
            locale = self._locales[src_path] = _i18n_locale(file)
            if store is not None and src_path not in self._refresh:
                key = self._page_keys[src_path] = page_key(site, src_path, text, locale)
                stored = store.get(key)
                if stored is not None and self._sources_unchanged(stored, key, store):
                    self._stored[src_path] = stored
                    self._sources[src_path] = text
                    continue
            self._find_stub(src_path, text)

    # After mkdocs-static-i18n (-100) has made this language's nav: prompts name the
    # neighbours a reader of this language sees.
    @event_priority(-110)
    def on_nav(self, nav: Navigation, *, config: MkDocsConfig, files: Files) -> Navigation | None:
        """Submit every section of every page, then let the pool go, longest first."""
        if not self.config.enabled:
            return None
        setup = self._setup
        assert setup is not None
        # Material's blog keeps its posts out of `files` from its `on_files` to its
        # `on_nav` (both at -50): they are found now.
        self._scan(files, setup)
        for src_path in self._refresh:
            if src_path not in self._stub_pages:
                raise PluginError(f"aigen: AIGEN_REFRESH: '{src_path}' has no aigen stub")
        if not (self._stub_pages or self._stored):
            return None
        titles = {src: page.title for src, page in self._stub_pages.items()}
        titles.update((src, stored.title) for src, stored in self._stored.items())
        neighbours = nav_neighbours(((page.file.src_uri, page.title) for page in nav.pages), titles)
        self._stats = BuildStats()
        self._pending, self._urls = {}, {}
        for src_path, stored in self._stored.items():
            if stored.neighbours != neighbours.get(src_path, (None, None)):
                # Its prompts name its neighbours: a page moved or renamed next to it
                # means new prompts, so it goes the long way.
                self._find_stub(src_path, self._sources[src_path])
                continue
            pending = self._pending[src_path] = PendingPage()
            self._stats.sections_total += stored.sections
            result = served_from_store(stored)
            self._stats.replay(result)
            pending.marked = stored.marked
            pending.finish(result, None)
        jobs = page_jobs(self._stub_pages.values(), neighbours)
        self._stats.sections_total += sum(setup.count_sections(job.stub) for job in jobs)
        store = self._page_store(setup) if setup.offline_reason is None else None
        engine: Engine | None = None
        try:
            for job in jobs:
                pending = self._pending[job.stub.src_path] = PendingPage()
                if engine is None:
                    # Loaded with the first page to generate: stored pages need neither.
                    from mkdocs_aigen.pipeline import PagePipeline
                    from mkdocs_aigen.progress import Progress

                    self._close_display()
                    self._display = Progress(
                        self._stats, interval=self.config.progress_interval, log=log
                    )
                    engine = self._engine_for(setup)
                    # Under `mkdocs serve` the engine outlives a failed build: nothing of
                    # that build (cancelled, a fatal error) may carry into this one.
                    engine.begin_build(setup.answer_sources(self._cache_for(setup)), self._stats)
                    # Each build may spend up to the cap: a fresh budget every time.
                    engine.budget = setup.cap.budget() if setup.cap is not None else None
                pipeline = PagePipeline(
                    job,
                    setup.settings,
                    setup.prompts,
                    self._stats,
                    self._refresh.get(job.stub.src_path),
                )
                key = self._page_keys.get(job.stub.src_path)
                done = pending.finish
                if store is not None and key is not None:
                    done = self._keeping(store, key, job, setup, pending, engine)
                engine.run(pipeline.flow(), done)
        except TemplateError as error:
            if engine is not None:
                engine.cancel()
            raise PluginError(f"aigen: {error}") from None
        if engine is not None:
            engine.open()
        if setup.offline_hint and self._any_missing():
            # Said once for the build, with the fix; the pages then list their sections.
            log.warning(f"aigen: {setup.offline_hint}")
        return None

    def on_page_markdown(
        self, markdown: str, *, page: Page, config: MkDocsConfig, files: Files
    ) -> str | None:
        """Wait for this page's sections only, and put them where the marker stands."""
        pending = self._pending.get(page.file.src_uri)
        if pending is None:
            return None  # no stub: the page is untouched, byte for byte
        try:
            while not pending.done.wait(0.5):
                pass
        except KeyboardInterrupt:
            self._cancel()
            raise
        if pending.error is not None:
            self._cancel()
            if isinstance(pending.error, TemplateError):
                # Checked in on_config, but a template can still fail on real values.
                raise PluginError(f"aigen: {pending.error}") from None
            raise pending.error
        result = pending.result
        assert result is not None
        self._urls[page.file.src_uri] = page.url
        self._report_page(result)
        # Comments that on_page_content turns into ``data-aigen`` wrappers.
        block = pending.marked
        if block is None:
            from mkdocs_aigen.notice import mark_sections

            block = mark_sections(result.block, result.sections)
        macros = self._macros
        if macros is not None:
            from mkdocs_aigen.jinja_guard import macros_delimiters, macros_will_render, shielded

            if macros_will_render(macros, page.file.src_uri, page.meta):
                # Model-written {{ }} and {% %} must reach the page as text, never run.
                block = shielded(block, macros_delimiters(macros))
        try:
            markdown = insert_block(markdown, block, page.file.src_uri)
        except MarkerError as error:
            raise PluginError(f"aigen: {error}") from None
        return self._with_notice(markdown, page, result)

    def on_page_content(
        self, html: str, *, page: Page, config: MkDocsConfig, files: Files
    ) -> str | None:
        """Every generated section becomes ``<div data-aigen="request hash">``."""
        pending = self._pending.get(page.file.src_uri)
        result = pending.result if pending is not None else None
        if result is None:
            return None
        from mkdocs_aigen.notice import wrap_marked

        keys = [s.answer_hash for s in result.sections if s.text is not None]
        return wrap_marked(html, keys)

    def on_post_page(self, output: str, *, page: Page, config: MkDocsConfig) -> str | None:
        """A ``<meta name="generator">`` tag on every page with generated text."""
        pending = self._pending.get(page.file.src_uri)
        result = pending.result if pending is not None else None
        if result is None or not any(s.text is not None for s in result.sections):
            return None
        from mkdocs_aigen.notice import generator_tag, page_models

        setup = self._setup
        assert setup is not None
        # The models that wrote this page: a fallback's text never poses as the configured
        # model's, not even in a meta tag.
        fallback = setup.fallback.model if setup.fallback is not None else ""
        models = page_models(result, setup.settings.model, fallback)
        return generator_tag(output, ", ".join(models))

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        """One summary line, and the JSON report."""
        self._watch_sources()
        if not self.config.enabled or not self._pending:
            return
        self._stats.finished = time.monotonic()
        self._close_display()
        log.info(f"aigen: {self._stats.summary_line()}")
        self._report_cap()
        for line in self._stats.stage_lines():
            log.info(f"aigen: {line}")
        setup = self._setup
        assert setup is not None
        results = [p.result for p in self._pending.values() if p.result is not None]
        note = fallback_note(setup, results)
        if note is not None:
            log.info(note)
        for result in sorted(results, key=lambda r: r.src_path):
            if result.scores:
                scores = ", ".join(f"{name} {score:.1f}" for name, score in result.scores.items())
                again = " (after one regeneration)" if result.regenerated else ""
                log.info(f"aigen: review {result.src_path}: {scores}{again}")
        report_path = Path(config.site_dir) / (self.config.report or "aigen-report.json")
        write_report(
            report_path,
            self._stats,
            results,
            ReportContext.of(setup, self._urls, self._budget_account()),
            Path(config.site_dir),
        )
        if setup.cache_dir is not None and self._stub_pages:
            from mkdocs_aigen.history import History  # pages went the long way

            fresh = [r for r in results if r.src_path in self._stub_pages]
            History(setup.cache_dir, setup.site).record(fresh)

    def on_build_error(self, *, error: Exception) -> None:
        """Cancel queued work; answers already received stay in the cache."""
        self._close_display()
        self._cancel()

    def on_serve(self, server: Any, *, config: MkDocsConfig, builder: Any) -> Any:
        """Rebuild when the lock file, the context file or a cited source changes, not
        only the docs. A rebuild then asks again only for the sections citing the change:
        every other request is the same, and answered from the cache."""
        setup = self._setup
        if setup is not None:
            for path in (setup.lock_path, setup.context_path):
                if path is not None and path.exists():
                    server.watch(str(path))
        self._server = server
        self._watch_sources()
        return server

    def _watch_sources(self) -> None:
        """Watch every source file read so far (the first build's, and any a later build
        cites for the first time)."""
        if self._server is None or self._setup is None:
            return
        read = self._grounder.library.files_read if self._grounder is not None else []
        for path in [*read, *(self._setup.root / name for name in self._untouched)]:
            if str(path) not in self._watched:
                self._watched.add(str(path))
                self._server.watch(str(path))

    def on_shutdown(self) -> None:
        """End of ``build`` or ``serve``: stop the pool, close the cache, and let the
        process end without a last garbage collection."""
        if self._engine is not None:
            self._engine.close(cancel=True)
            self._engine = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        skip_final_collection()

    # -- helpers -------------------------------------------------------------------------

    def _macros_after_us(self, config: MkDocsConfig) -> Any:
        """The mkdocs-macros plugin if its ``on_page_markdown`` runs after ours (both have
        MkDocs' default priority, so the order in ``plugins:`` decides), else ``None``."""
        names = list(config.plugins)
        mine = next((i for i, name in enumerate(names) if config.plugins[name] is self), None)
        if mine is None:
            return None
        for name in names[mine + 1 :]:
            if name.rsplit("/", 1)[-1] == "macros":
                return config.plugins[name]
        return None

    def _start_backend_if_needed(self) -> None:
        """Start building the backend now if some request will surely be sent.

        Importing the SDK takes ~0.5 s (more from a cold disk); started here it overlaps
        the rest of the start-up instead of delaying the first request. "Surely": the stubs
        ask for more sections than the cache and the lock hold answers, so a fully cached
        build never imports it (otherwise the first miss in ``on_nav`` starts it).
        """
        setup = self._setup
        if not self._stub_pages or setup is None or setup.offline_reason is not None:
            return
        if setup.backend_factory is None:
            return
        needed = sum(setup.count_sections(page.stub) for page in self._stub_pages.values())
        held = self._cache_for(setup).count() + (len(setup.lock.entries) if setup.lock else 0)
        if held < needed:
            self._engine_for(setup).start()

    def _find_stub(self, src_path: str, text: str) -> None:
        from mkdocs_aigen.stubs import StubError  # a stored page is never parsed

        warned = False

        def warn(message: str) -> None:
            nonlocal warned
            warned = True
            log.warning(message)

        assert self._setup is not None
        language = self._locales.get(src_path) or self._setup.settings.language
        try:
            page = find_stub(text, src_path, warn, self._build_grounder, language)
        except (StubError, MarkerError) as error:
            raise PluginError(f"aigen: {error}") from None
        if page is not None:
            self._stub_pages[src_path] = page
        if warned:
            # Never stored whole: a stored page is not parsed again, and its warning (which
            # fails a `--strict` build) must come back every time.
            self._page_keys.pop(src_path, None)

    def _build_grounder(self) -> Grounder:
        """This build's :class:`~mkdocs_aigen.grounding.Grounder`, made on first use: a
        site whose stubs cite nothing never loads it."""
        if self._grounder is None:
            assert self._setup is not None
            try:
                self._grounder = self._setup.grounder(log.warning)
            except SetupError as error:
                raise PluginError(f"aigen: {self._config_name}: {error}") from None
        return self._grounder

    def _sources_unchanged(self, stored: StoredPage, key: str, store: PageStore) -> bool:
        """Whether every source file a stored page was written from is as it was."""
        assert self._setup is not None
        if not stored.globs and sources_untouched(self._setup.root, stored.files):
            self._untouched.update(path for path, *_ in stored.files)
            return True  # the usual rebuild: nothing read, nothing imported
        grounder = self._build_grounder()
        if not grounder.fresh(stored.files, stored.globs):
            return False
        # Only touched (a checkout, a formatter that changed nothing): the page stays, and
        # is stored again with the new stamps so the next build needs one stat per file.
        stamps = [(path, grounder.library.file_stamp(path)) for path, *_ in stored.files]
        files = tuple(
            (path, digest, *stamp) if stamp is not None else (path, digest, size, mtime)
            for (path, digest, size, mtime), (_, stamp) in zip(stored.files, stamps, strict=True)
        )
        store.put(key, stored._replace(files=files))
        return True

    @staticmethod
    def _page_store(setup: Setup) -> PageStore | None:
        return page_store_for(setup.cache_dir, locked=setup.lock is not None)

    @staticmethod
    def _keeping(
        store: PageStore,
        key: str,
        job: PageJob,
        setup: Setup,
        pending: PendingPage,
        engine: Engine,
    ) -> Callable[..., None]:
        """A page's done-callback that also stores a clean result whole (online builds
        only: offline ones skip the review, and must not stand in for an online page)."""

        def done(result: Any, error: BaseException | None) -> None:
            # ``finish`` whatever happens while storing: a page left pending would hang
            # the build in ``on_page_markdown``.
            try:
                # Not a page the spending cap cut short (its polish or review was
                # skipped without a warning): it must be finished by a later build.
                capped = engine.budget is not None and engine.budget.reached
                clean = isinstance(result, PageResult) and worth_keeping(result)
                if error is None and clean and not capped:
                    neighbours = (job.nav_previous, job.nav_next)
                    sections = setup.count_sections(job.stub)
                    grounding = job.grounding
                    files = grounding.files if grounding is not None else ()
                    globs = grounding.globs if grounding is not None else ()
                    from mkdocs_aigen.notice import mark_sections

                    marked = mark_sections(result.block, result.sections)
                    page = StoredPage(
                        job.title, neighbours, sections, result, setup.site, files, globs, marked
                    )
                    store.put(key, page)
                    pending.marked = marked  # on_page_markdown needs it too
            finally:
                pending.finish(result, error)

        return done

    def _cache_for(self, setup: Setup) -> ResponseCache:
        # Under `mkdocs serve` the handle is kept while the directory stays the same.
        if self._cache is not None and self._cache.directory == setup.cache_dir:
            return self._cache
        if self._engine is not None:
            self._engine.close(cancel=False)  # it writes to the old cache
            self._engine = None
        if self._cache is not None:
            self._cache.close()
        from mkdocs_aigen.cache import ResponseCache  # a fully cached build needs none

        self._cache = ResponseCache(setup.cache_dir, log.warning)
        return self._cache

    def _engine_for(self, setup: Setup) -> Engine:
        # Under `mkdocs serve` the engine (threads, HTTP connections) is kept while the
        # settings that shape it stay the same.
        cache = self._cache_for(setup)
        if self._engine is not None and self._engine_identity == setup.engine_identity:
            return self._engine
        if self._engine is not None:
            self._engine.close(cancel=False)
        from mkdocs_aigen.engine import Engine

        self._engine = Engine(
            concurrency=setup.concurrency,
            answers=setup.answer_sources(cache),
            stats=self._stats,
            backend_factory=setup.backend_factory,
            limiter=setup.make_limiter,
            max_retries=self.config.max_retries,
            timeout=setup.timeout,
            on_progress=self._progress,
            longest_first=setup.max_parallel != 1,
        )
        self._engine_identity = setup.engine_identity
        return self._engine

    def _progress(self) -> None:
        # Called by the workers after each answer; the display decides what to show.
        display = self._display
        if display is not None:
            display.update()

    @staticmethod
    def _refresh_pages(files: Files, config: MkDocsConfig) -> dict[str, Refresh]:
        """``AIGEN_REFRESH=docs/page.md[,docs/other.md]``: pages to generate afresh."""
        value = os.environ.get("AIGEN_REFRESH", "").strip()
        if not value:
            return {}
        from mkdocs_aigen.refresh import RefreshError, refresh_from_environment

        pages = [f.src_uri for f in files.documentation_pages() if may_have_stub(file_text(f))]
        root = Path(config.config_file_path or ".").resolve().parent
        try:
            wanted = refresh_from_environment(value, pages, Path(config.docs_dir), root)
        except RefreshError as error:
            raise PluginError(f"aigen: AIGEN_REFRESH: {error}") from None
        return {refresh.page: refresh for refresh in wanted}

    def _budget_account(self) -> dict[str, Any] | None:
        engine = self._engine
        budget = engine.budget if engine is not None else None
        return budget.account() if budget is not None else None

    def _report_cap(self) -> None:
        """One error line when the spending cap stopped the build (``--strict`` fails)."""
        engine = self._engine
        budget = engine.budget if engine is not None else None
        if budget is None or not budget.reached:
            return
        capped = [
            f"{p.result.src_path}: '{' > '.join(s.path)}'"
            for p in self._pending.values()
            if p.result is not None
            for s in p.result.failed
            if s.source == "capped"
        ]
        log.error(f"aigen: {budget.stop_message(capped)}")

    def _check_notice(self, config: MkDocsConfig) -> None:
        """A broken notice template fails the build now, naming the option."""
        from mkdocs_aigen.notice import template_problem

        problem = template_problem(self.config.notice.template)
        if problem is not None:
            where = Path(config.config_file_path).name
            raise PluginError(f"aigen: {where}: 'notice.template': {problem}")

    def _with_notice(self, markdown: str, page: Page, result: PageResult) -> str:
        from mkdocs_aigen.notice import NoticeError, with_notice

        setup = self._setup
        assert setup is not None
        options = self.config.notice
        fallback = setup.fallback.model if setup.fallback is not None else ""
        try:
            return with_notice(
                markdown,
                result,
                page.meta,
                enabled=options.enabled,
                position=options.position,
                admonition=options.admonition,
                template=options.template,
                models=(setup.settings.model, fallback),
            )
        except NoticeError as error:
            raise PluginError(f"aigen: 'notice.template': {error}") from None

    def _report_page(self, result: PageResult) -> None:
        setup = self._setup
        assert setup is not None
        engine = self._engine
        if result.failed and engine is not None and engine.fatal is not None:
            for warning in result.warnings:
                log.warning(f"aigen: {warning}")
            self._cancel()
            raise PluginError(f"aigen: generation stopped: {engine.fatal.message}")
        warnings, error = page_messages(result, setup, fail=self.config.on_error == "fail")
        for warning in warnings:
            log.warning(warning)
        if error is not None:
            self._cancel()
            raise PluginError(error)

    def _any_missing(self) -> bool:
        return any(
            pending.result is not None and any(s.source == "missing" for s in pending.result.failed)
            for pending in self._pending.values()
        )

    def _close_display(self) -> None:
        display, self._display = self._display, None
        if display is not None:
            display.close()

    def _cancel(self) -> None:
        if self._engine is not None:
            self._engine.cancel()


def _i18n_locale(file: Any) -> str | None:
    """The language mkdocs-static-i18n builds ``file`` in this time, if it runs."""
    locale = getattr(file, "locale", None)
    return locale if isinstance(locale, str) and locale else None
