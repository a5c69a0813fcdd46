"""``mkdocs-aigen``: plan, cache and lock, without running the MkDocs build.

It loads the config and the nav the way MkDocs does and reuses the plugin's stub parser,
prompts, cache and engine, so what it predicts is what the next build does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError

from mkdocs_aigen.answers import AnswerSources
from mkdocs_aigen.budget import DEFAULT_PRICES, Price, PriceError, cost, load_prices
from mkdocs_aigen.cache import CachedAnswer, ResponseCache
from mkdocs_aigen.config import AigenConfig
from mkdocs_aigen.engine import Engine
from mkdocs_aigen.history import History, reasons
from mkdocs_aigen.jobs import PageJob, PageResult, SectionResult
from mkdocs_aigen.limits import estimate_prompt_tokens
from mkdocs_aigen.lockfile import LOCK_VERSION, LockEntry, LockFile
from mkdocs_aigen.pagecache import PageStore, StoredPage, page_key, page_store_for
from mkdocs_aigen.pipeline import PagePipeline, planned_answer
from mkdocs_aigen.report import ReportContext, write_report
from mkdocs_aigen.requests import ChatRequest
from mkdocs_aigen.setup import Setup, SetupError, resolve_setup
from mkdocs_aigen.site import scan_site
from mkdocs_aigen.stats import BuildStats

log = logging.getLogger("mkdocs_aigen.cli")


class CliError(Exception):
    """A problem the user can fix, printed without a traceback."""


@dataclass
class Project:
    """A loaded MkDocs project and what the plugin makes of it."""

    setup: Setup
    jobs: list[PageJob]
    config_file: Path
    #: The source text of every stub page, by ``src_uri`` (the page store's keys).
    sources: dict[str, str]
    docs_dir: Path
    #: Every file of ``docs_dir`` MkDocs would use (``exclude_docs`` applied).
    files: list[Path]


def load_project(config_file: str | None) -> Project:
    """Load the site's config, its ``aigen`` options, stubs and nav, without building.

    ``mkdocs.yml`` with the ``aigen`` plugin is read by MkDocs; a Zensical site (a
    ``zensical.toml``, or an ``mkdocs.yml`` that lists ``mkdocs_aigen.markdown`` under
    ``markdown_extensions`` instead) the way the Markdown extension reads it under Zensical.
    """
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort, ConfigurationError

    from mkdocs_aigen import zensical_config

    path = _default_config_file() if config_file is None else Path(config_file)
    if path is not None and path.suffix == ".toml":
        return _zensical_project(path)
    # An invalid option makes MkDocs log it and raise Abort, a SystemExit with code 1:
    # caught too, so a config mistake exits 2 like every other user mistake.
    try:
        config = load_config(config_file=str(path) if path is not None else None)
    except (ConfigurationError, Abort, OSError) as error:
        raise CliError(f"cannot load the MkDocs config: {error}") from None
    plugin = config.plugins.get("aigen")
    if plugin is None:
        if zensical_config.extension_options(config.markdown_extensions, config.mdx_configs):
            return _zensical_project(Path(config.config_file_path))
        raise CliError(f"{config.config_file_path}: the 'aigen' plugin is not configured")
    return project_from(config, plugin.config)  # type: ignore[attr-defined]


def _default_config_file() -> Path | None:
    """``None`` (MkDocs' own ``mkdocs.yml``), or ``zensical.toml`` when it is the only one."""
    if any(Path(name).is_file() for name in ("mkdocs.yml", "mkdocs.yaml")):
        return None
    return Path("zensical.toml") if Path("zensical.toml").is_file() else None


def _zensical_project(path: Path) -> Project:
    from mkdocs_aigen import zensical_config
    from mkdocs_aigen.markdown import validated_options

    try:
        zensical = zensical_config.load(path)
        options = zensical_config.extension_options(
            zensical.get("markdown_extensions"), zensical.get("mdx_configs")
        )
        if options is None:
            raise CliError(
                f"{path}: neither the 'aigen' plugin nor the '{zensical_config.EXTENSION}' "
                "Markdown extension is configured"
            )
        config = zensical_config.mkdocs_config(zensical, path.resolve())
        aigen = validated_options(zensical_config.with_zensical_defaults(options), path.resolve())
    except zensical_config.ZensicalConfigError as error:
        raise CliError(str(error)) from None
    except PluginError as error:
        raise CliError(str(error).removeprefix("aigen: ")) from None
    return project_from(config, aigen)


def project_from(config: MkDocsConfig, options: AigenConfig) -> Project:
    """The project of a loaded config and its validated ``aigen`` options."""
    from mkdocs_aigen.assemble import MarkerError
    from mkdocs_aigen.lockfile import LockError
    from mkdocs_aigen.prompts import TemplateError
    from mkdocs_aigen.stubs import StubError

    try:
        setup = resolve_setup(options, config, serving=False)
        setup.prompts.check()
        scan = scan_site(
            config, log.warning, setup.lazy_grounder(log.warning), setup.settings.language
        )
    except (SetupError, TemplateError, LockError, StubError, MarkerError) as error:
        raise CliError(str(error)) from None
    return Project(
        setup,
        scan.jobs,
        Path(config.config_file_path),
        scan.sources,
        Path(config.docs_dir),
        scan.files,
    )


def run_pipelines(project: Project, engine: Engine) -> list[PageResult]:
    """Run every page's flow on ``engine`` and wait for all of them."""
    results: list[PageResult] = []
    errors: list[BaseException] = []
    remaining = threading.Semaphore(0)
    for job in project.jobs:
        pipeline = PagePipeline(job, project.setup.settings, project.setup.prompts, engine.stats)

        def done(result: Any, error: BaseException | None) -> None:
            if error is not None:
                errors.append(error)
            else:
                results.append(result)
            remaining.release()

        engine.run(pipeline.flow(), done)
    engine.open()
    for _ in project.jobs:
        remaining.acquire()
    if errors:
        raise errors[0]
    return sorted(results, key=lambda r: r.src_path)


def planning_engine(project: Project, *, use_cache: bool, use_lock: bool = True) -> Engine:
    """An engine that never sends: misses are recorded and answered with stand-ins."""
    setup = project.setup
    cache = ResponseCache(setup.cache_dir if use_cache else None, log.warning)
    return Engine(
        concurrency=1,
        answers=setup.answer_sources(cache, planning=planned_answer, use_lock=use_lock),
        stats=BuildStats(),
        backend_factory=None,
    )


# -- plan ------------------------------------------------------------------------------


def estimate_tokens(request: ChatRequest) -> tuple[int, int]:
    """Prompt tokens (a character estimate) and completion tokens (what is asked for)."""
    prompt = estimate_prompt_tokens(request.prompt_chars())
    return prompt, request.max_tokens


def command_plan(project: Project, arguments: argparse.Namespace) -> int:
    """Print what the next build will take from the lock, the cache and the network."""
    engine = planning_engine(project, use_cache=True)
    results = run_pipelines(project, engine)
    prices = dict(DEFAULT_PRICES)
    if arguments.prices:
        prices.update(_load_prices(Path(arguments.prices)))
    model = project.setup.settings.model
    planned = engine.answers.requests_planned
    per_stage: Counter[str] = Counter(r.stage for r in planned)
    prompt_tokens = completion_tokens = 0
    for request in planned:
        prompt, completion = estimate_tokens(request)
        prompt_tokens += prompt
        completion_tokens += completion
    cached_tokens = likely_cached_tokens(planned)
    price = prices.get(model)
    spend = None if price is None else cost(price, prompt_tokens, completion_tokens, cached_tokens)
    history = History(project.setup.cache_dir, project.setup.site)
    pages = []
    for result in results:
        before = history.read(result.src_path)
        sections = []
        for section in result.sections:
            path = " > ".join(section.path)
            entry = {"path": path, "status": _status(section.source, fallback=section.fallback)}
            if entry["status"] == "generate":
                entry["reasons"] = reasons(before.get(path), section.parts)
            sections.append(entry)
        language = result.language or "en"
        pages.append({"page": result.src_path, "language": language, "sections": sections})
    summary = {
        "model": model,
        "requests": len(planned),
        "requests_by_stage": dict(sorted(per_stage.items())),
        "sections": sum(len(p["sections"]) for p in pages),
        "locked": sum(1 for p in pages for s in p["sections"] if s["status"] == "locked"),
        "cached": sum(1 for p in pages for s in p["sections"] if s["status"] == "cached"),
        "fallback": sum(1 for p in pages for s in p["sections"] if s["status"] == "fallback"),
        "to_generate": sum(1 for p in pages for s in p["sections"] if s["status"] == "generate"),
        "prompt_tokens": prompt_tokens,
        "prompt_tokens_likely_cached": cached_tokens,
        "completion_tokens_max": completion_tokens,
        "estimated_cost_usd": round(spend, 4) if spend is not None else None,
        "cap": _cap_forecast(project, len(planned), prompt_tokens, completion_tokens),
        "pages": pages,
    }
    if arguments.json:
        print(json.dumps(summary, indent=2))
        return 0
    for page in pages:
        print(page["page"] if page["language"] == "en" else f"{page['page']} ({page['language']})")
        for section in page["sections"]:
            why = f" ({', '.join(section['reasons'])})" if section.get("reasons") else ""
            print(f"  {section['status']:<9} {section['path']}{why}")
    stages = ", ".join(f"{n} {s}" for s, n in summary["requests_by_stage"].items()) or "none"
    fallback = f", {summary['fallback']} by the fallback model" if summary["fallback"] else ""
    print(
        f"\n{summary['sections']} sections: {summary['locked']} locked, "
        f"{summary['cached']} cached{fallback}, {summary['to_generate']} to generate"
    )
    print(f"requests to send: {summary['requests']} ({stages})")
    cached = f" ({cached_tokens} likely cached)" if cached_tokens else ""
    print(
        f"estimated tokens: {prompt_tokens} prompt{cached} + up to {completion_tokens} completion"
    )
    if spend is not None:
        print(f"estimated cost: at most ${spend:.4f} with {model}")
    else:
        print(f"estimated cost: no price for '{model}' (add it with --prices)")
    print("(augmentation of short answers can add requests; it depends on what the model writes)")
    if summary["cap"] is not None:
        print(summary["cap"]["message"])
    return 0


#: OpenAI's prompt cache: prefixes of at least this many tokens, counted in blocks.
CACHE_MIN_TOKENS, CACHE_BLOCK_TOKENS = 1024, 128


def likely_cached_tokens(requests: Sequence[ChatRequest]) -> int:
    """Prompt tokens a provider's prompt cache would likely serve: after the first request
    of each page, the prefix all of that page's requests share (when long enough)."""
    import os

    groups: dict[str, list[str]] = {}
    for request in requests:
        text = "".join(m.content for m in request.messages)
        groups.setdefault(request.cache_group or request.key, []).append(text)
    total = 0
    for texts in groups.values():
        if len(texts) < 2:
            continue
        shared = estimate_prompt_tokens(len(os.path.commonprefix(texts)))  # noqa: RUF071
        if shared >= CACHE_MIN_TOKENS:
            total += (len(texts) - 1) * (shared - shared % CACHE_BLOCK_TOKENS)
    return total


def _cap_forecast(
    project: Project, requests: int, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any] | None:
    """Whether the next build would reach the spending cap (``budget:``, ``max_requests:``)."""
    cap = project.setup.cap
    if cap is None:
        return None
    reasons = []
    if cap.max_requests is not None and requests > cap.max_requests:
        reasons.append(f"{requests} requests to send, max_requests {cap.max_requests}")
    if cap.usd is not None and cap.price is not None:
        # Priced as the build will (the `prices:` option included), counting every
        # max_tokens, as the engine's cap does before each send.
        most = cost(cap.price, prompt_tokens, completion_tokens)
        if most > cap.usd:
            reasons.append(f"up to ${most:.4f}, budget ${cap.usd:.4f}")
    if reasons:
        message = (
            f"spending cap: the next build would reach it ({'; '.join(reasons)}): "
            "what does not fit stays a placeholder and the build logs an error"
        )
    else:
        message = "spending cap: the next build stays within it"
    return {
        "budget_usd": cap.usd,
        "max_requests": cap.max_requests,
        "would_reach": bool(reasons),
        "message": message,
    }


def _status(source: str, *, fallback: bool = False) -> str:
    if fallback:
        return "fallback"  # cached, but written by the fallback: a key would replace it
    return {"lock": "locked", "cache": "cached", "planned": "generate"}.get(source, source)


def _load_prices(path: Path) -> dict[str, Price]:
    try:
        return load_prices(path)
    except PriceError as error:
        raise CliError(f"--prices {error}") from None


# -- cache -----------------------------------------------------------------------------


def command_cache(project: Project, arguments: argparse.Namespace) -> int:
    """``cache info | clear | prune``."""
    cache_dir = project.setup.cache_dir
    if cache_dir is None:
        raise CliError("the cache is turned off (cache: false)")
    cache = ResponseCache(cache_dir, log.warning)
    store = PageStore(cache_dir)
    try:
        if arguments.action == "info":
            entries, size = cache.info()
            pages = sum(1 for _ in store)
            size += store.size()
            print(f"{cache_dir}: {entries} answers, {pages} whole pages, {size / 1e6:.1f} MB")
        elif arguments.action == "clear":
            removed = cache.clear() + store.clear()
            print(f"removed {removed} entries from {cache_dir}")
        else:
            _prune(project, cache, store, everything=arguments.all, dry_run=arguments.dry_run)
    finally:
        cache.close()
    return 0


def _prune(
    project: Project,
    cache: ResponseCache,
    store: PageStore,
    *,
    everything: bool,
    dry_run: bool,
) -> None:
    """Remove what the current stubs no longer use: this site's entries only, unless
    ``everything``. What they would use under the configured provider, and what the
    fallback wrote for them, always stays."""
    setup = project.setup
    engine = planning_engine(project, use_cache=True, use_lock=False)
    run_pipelines(project, engine)
    used = engine.answers.keys_seen
    engine.answers.cache.close()
    others = 0

    def stale(keys: set[str], wanted: set[str], read: Callable[[str], Any]) -> list[str]:
        nonlocal others
        found = []
        for key in sorted(keys - wanted):
            entry = read(key)
            # Another site's entry, or one from an older version that names no site: kept,
            # because nothing here can tell whether that site still needs it.
            if not everything and (entry is None or entry.site != setup.site):
                others += 1
                continue
            found.append(key)
            if dry_run:
                print(f"would remove {key[:12]} {_describe(entry)}")
        return found

    answer_keys, page_keys = set(cache), set(store)
    pages = current_page_keys(project)
    stale_answers = stale(answer_keys, used, cache.get)
    stale_pages = stale(page_keys, pages, store.get)
    removed = len(stale_answers) + len(stale_pages)
    kept = f"kept {len(used & answer_keys) + len(pages & page_keys)} this site uses"
    if others:
        kept += f" and {others} of other sites or older versions (`--all` removes them)"
    if dry_run:
        print(f"would remove {removed} entries; {kept}")
        return
    for key in stale_answers:
        cache.delete(key)
    for key in stale_pages:
        store.delete(key)
    store.remove_leftovers()
    print(f"removed {removed} entries no current stub needs; {kept}")


def _describe(entry: CachedAnswer | StoredPage | None) -> str:
    """What ``prune --dry-run`` says of an entry it would remove."""
    if isinstance(entry, CachedAnswer):
        return f"answer: {entry.stage} {entry.label}"
    if isinstance(entry, StoredPage):
        return f"page: {entry.result.src_path}"
    return "(unreadable)"


def current_page_keys(project: Project) -> set[str]:
    """The whole-page entries the next build will look for (none with a lock file), and
    those a build with the configured provider would, where this shell falls back."""
    setup = project.setup
    if page_store_for(setup.cache_dir, locked=setup.lock is not None) is None:
        return set()
    sites = {setup.pages_identity(), setup.pages_identity(configured=True)}
    return {
        page_key(site, src_path, text)
        for site in sites
        for src_path, text in project.sources.items()
    }


# -- lock ------------------------------------------------------------------------------


def generate(project: Project, answers: AnswerSources) -> tuple[BuildStats, list[PageResult]]:
    """Every page's flow on one sending pool, as a build runs them (the same
    :class:`~mkdocs_aigen.siterun.SiteRun` as the Markdown extension); what was asked."""
    from mkdocs_aigen.siterun import SiteRun

    run = SiteRun(project.setup, project.jobs, log.warning, answers=answers)
    try:
        run.start()
    finally:
        results = run.close()  # every page waited for; answers paid for are cached
    errors = run.errors()
    if errors:
        raise errors[0]
    History(project.setup.cache_dir, project.setup.site).record(results)
    return run.stats, results


def command_lock(project: Project, arguments: argparse.Namespace) -> int:
    """Write the lock file, or with ``--check`` report whether it is stale."""
    setup = project.setup
    if setup.lock_path is None:
        raise CliError("no lock file is configured: add `lock: aigen.lock` to the aigen options")
    if arguments.check:
        return _check_lock(project)
    answers = setup.answer_sources(ResponseCache(setup.cache_dir, log.warning))
    stats, results = generate(project, answers)
    failed = [(r.src_path, s) for r in results for s in r.failed]
    # A fallback's text never goes into the lock: the lock is what the configured model
    # wrote (or what a person reviewed), and a later build would take it as such.
    lock = LockFile.from_results(results, setup.settings.model, skip=answers.fallback_keys)
    lock.write(setup.lock_path)
    print(f"wrote {setup.lock_path}: {len(lock.entries)} entries ({stats.summary_line()})")
    for page, section in failed:
        print(f"  not locked: {page}: {' > '.join(section.path)}: {section.error}")
    fallback = [(r.src_path, s) for r in results for s in r.sections if s.text and s.fallback]
    for page, section in fallback:
        assert setup.fallback is not None
        print(
            f"  not locked: {page}: {' > '.join(section.path)}: written by the fallback "
            f"model {setup.fallback.model}, not {setup.settings.model} (set an API key, or "
            "`provider: local` to lock the embedded model's text on purpose)"
        )
    return 1 if failed or fallback else 0


def _stale_reasons(known: LockEntry | None, section: SectionResult) -> list[str]:
    """Why a section's lock entry no longer matches: each source that changed (drift of
    the code it documents), else an edited stub; ``missing`` when it has none."""
    if known is None:
        return ["missing"]
    now = dict(section.sources)
    changed = [label for label, digest in known.sources.items() if now.get(label) != digest]
    if known.sources or now:
        changed += [label for label in now if label not in known.sources]
    if changed:
        return [
            f"source {label} {'changed' if label in now else 'no longer cited'}"
            if label in known.sources
            else f"source {label} newly cited"
            for label in changed
        ]
    return ["stale (its stub changed)"]


def _check_lock(project: Project) -> int:
    setup = project.setup
    lock = setup.lock or LockFile()
    engine = planning_engine(project, use_cache=False)
    results = run_pipelines(project, engine)
    places = lock.by_place()
    problems: list[str] = []
    for result in results:
        for section in result.sections:
            if section.source != "lock":
                path = " > ".join(section.path)
                known = places.get((result.src_path, "section", path))
                for why in _stale_reasons(known, section):
                    problems.append(f"{result.src_path}: '{path}': {why}")
        # A polished page found in the lock (under any version's hash) has its text.
        if result.polish_key and result.polished is None:
            problems.append(f"{result.src_path}: polished page: missing or stale")
    used = engine.answers.keys_seen
    unused = [e for e in lock.entries.values() if e.hash not in used]
    # Found by what the request is made from, not its hash: the templates changed since.
    rekey = [
        s
        for r in results
        for s in r.sections
        if s.source == "lock" and s.lock_key not in lock.entries and lock.version == LOCK_VERSION
    ]
    for problem in problems:
        print(problem)
    if unused:
        print(f"{len(unused)} lock entries are no longer used by any stub")
    if problems:
        print(f"the lock is stale: {len(problems)} problem(s); run `mkdocs-aigen lock`")
        return 1
    if lock.version < LOCK_VERSION:
        print(
            f"the lock was written in format {lock.version}; its entries are still used, and "
            "`mkdocs-aigen lock` rewrites it in the current format, keeping every text"
        )
    if rekey:
        print(
            f"{len(rekey)} locked section(s) were written with other templates (an upgrade or "
            "an edited `templates_dir`); their texts are in use, and `mkdocs-aigen lock` "
            "re-keys them, keeping every text"
        )
    print(f"the lock is up to date ({len(lock.entries)} entries)")
    return 0


# -- render ----------------------------------------------------------------------------


def command_render(project: Project, arguments: argparse.Namespace) -> int:
    """Write every page of ``docs_dir`` to ``--out``, stub pages with their sections."""
    from mkdocs_aigen.render import differences, planned_files, rendered_page, write_files

    setup = project.setup
    root = project.config_file.parent
    out = (root / arguments.out).resolve() if arguments.out else root / ".aigen" / "docs"
    docs_dir = project.docs_dir.resolve()
    if out == docs_dir or docs_dir in out.parents:
        raise CliError(f"--out {out}: must be outside docs_dir ({docs_dir})")
    answers = setup.answer_sources(ResponseCache(setup.cache_dir, log.warning))
    if arguments.check:
        answers.offline_reason = "render --check sends nothing"
    stats, results = generate(project, answers)
    rendered = {
        r.src_path: rendered_page(project.sources[r.src_path], r.block, r.src_path) for r in results
    }
    files = planned_files(docs_dir, project.files, rendered)
    failed = [(r.src_path, s) for r in results for s in r.failed]
    if arguments.check:
        stale = differences(out, files)
        for change in stale:
            print(f"{change.path}: {change.why}")
        for page, section in failed:
            print(f"{page}: {' > '.join(section.path)}: not in the lock or cache")
        if stale or failed:
            print(f"{out} is out of date: run `mkdocs-aigen render`")
            return 1
        print(f"{out} is up to date ({len(files)} files)")
        return 0
    changed = write_files(out, files)
    write_report(out.parent / "aigen-report.json", stats, results, ReportContext.of(setup))
    print(f"rendered {len(files)} files into {out}, {changed} changed ({stats.summary_line()})")
    for page, section in failed:
        print(f"  not generated: {page}: {' > '.join(section.path)}: {section.error}")
    return 1 if failed else 0


# -- regenerate ------------------------------------------------------------------------


def command_batch(project: Project, arguments: argparse.Namespace) -> int:
    """``mkdocs-aigen batch ACTION``: see :mod:`mkdocs_aigen.batch`."""
    from mkdocs_aigen.batch import runner

    try:
        state = runner.state_for(project)
    except ValueError as error:
        raise CliError(str(error)) from None
    path = Path(arguments.jsonl) if arguments.jsonl else None
    action = arguments.action
    client = None if path is not None else _batch_client(project)
    if action == "submit":
        made = runner.submit(project, state, client, path)
        for batch in made:
            print(
                f"submitted {batch.id or '(pending)'}: {len(batch.keys)} requests ({batch.model})"
            )
        if not made:
            print("nothing to submit: every request of this round is cached, locked or in flight")
        return 0
    if action == "status":
        pending = runner.status(state, client)
        for batch in pending:
            print(f"{batch.id}: {batch.status}, {len(batch.keys)} requests ({batch.model})")
        print(f"{len(pending)} batch(es) not collected")
        return 0
    if action == "collect":
        got = runner.collect(project, state, client, path)
        print(
            f"collected: {got.stored} answers stored, {got.failed} missing "
            f"({got.truncated} cut off at max_tokens, asked again with more next round)"
        )
        return 0
    if action == "cancel":
        print(f"cancelled {runner.cancel(state, client)} batch(es)")
        return 0
    if client is None:
        raise CliError("batch run uploads to the Batch API: --jsonl is for submit and collect")
    config_file = str(project.config_file)
    got = runner.run(lambda: load_project(config_file), state, client, arguments.poll, print)
    return 0 if got.failed == 0 else 1


def _batch_client(project: Project) -> Any:
    """The SDK's client, for its files and batches APIs."""
    setup = project.setup
    api_key = os.environ.get(setup.api_key_env, "").strip()
    if not api_key and not setup.base_url:
        raise CliError(
            f"no API key in ${setup.api_key_env}: the Batch API needs one "
            "(or use --jsonl for a batch runner of your own)"
        )
    import openai

    return openai.OpenAI(api_key=api_key or "unused", base_url=setup.base_url, max_retries=3)


def command_regenerate(project: Project, arguments: argparse.Namespace) -> int:
    """Send one page's (or one section's, or one stage's) requests again, whatever the
    lock and the cache hold; update both; print a unified diff of the generated text."""
    from mkdocs_aigen.refresh import Refresh, RefreshError, page_uri, parse_section
    from mkdocs_aigen.regenerate import relock, unified

    setup = project.setup
    if setup.offline_reason is not None:
        raise CliError(f"cannot regenerate: nothing may be sent ({setup.offline_reason})")
    try:
        pages = [job.stub.src_path for job in project.jobs]
        src = page_uri(arguments.page, pages, project.docs_dir, project.config_file.parent)
        section = parse_section(arguments.section) if arguments.section else None
    except RefreshError as error:
        raise CliError(str(error)) from None
    job = next(job for job in project.jobs if job.stub.src_path == src)
    if section is not None:
        _check_section(job, section)
    single = replace(project, jobs=[job])
    # Before: what the lock and the cache give now, without sending anything.
    planner = planning_engine(single, use_cache=True)
    try:
        (before,) = run_pipelines(single, planner)
    finally:
        planner.answers.cache.close()
    answers = setup.answer_sources(ResponseCache(setup.cache_dir, log.warning))
    stats = BuildStats()
    engine = Engine(
        concurrency=setup.concurrency,
        answers=answers,
        stats=stats,
        backend_factory=setup.backend_factory,
        limiter=setup.make_limiter,
        max_retries=setup.max_retries,
        timeout=setup.timeout,
    )
    engine.budget = setup.cap.budget() if setup.cap is not None else None
    pipeline = PagePipeline(
        job, setup.settings, setup.prompts, stats, Refresh(src, section, arguments.stage)
    )
    finished = threading.Event()
    outcome: list[Any] = [None, None]

    def done(result: Any, error: BaseException | None) -> None:
        outcome[:] = [result, error]
        finished.set()

    try:
        engine.run(pipeline.flow(), done)
        engine.open()
        finished.wait()
    finally:
        engine.close(cancel=False)
        answers.cache.close()
    if outcome[1] is not None:
        raise outcome[1]
    after: PageResult = outcome[0]
    if not pipeline.refreshed:
        what = f"stage '{arguments.stage}'" if arguments.stage else "request"
        raise CliError(f"{src}: no {what} to regenerate (is that stage configured?)")
    stats.finished = time.monotonic()
    diff = unified(before.block, after.block, src)
    print(diff if diff else f"{src}: the new text is the same as before", end="")
    if setup.lock_path is not None and not any(s.fallback for s in after.sections):
        lock = LockFile.load(setup.lock_path)
        updated, written = relock(
            lock, after, pipeline.refreshed, setup.settings.model, skip=answers.fallback_keys
        )
        updated.write(setup.lock_path)
        print(f"updated {len(written)} entries of {setup.lock_path.name}")
    print(f"regenerated {src}: {stats.summary_line()}")
    for failed in after.failed:
        print(f"  not generated: {' > '.join(failed.path)}: {failed.error}")
    return 1 if after.failed else 0


def _check_section(job: PageJob, section: tuple[str, ...]) -> None:
    from mkdocs_aigen.stubs import iter_items

    paths = [path for _, path, _ in iter_items(job.stub.outline)]
    auto = [path for item, path, _ in iter_items(job.stub.outline) if item.auto is not None]
    # Children of a `sections: auto` item are known only once proposed.
    if section in paths or any(section[: len(a)] == a and len(section) > len(a) for a in auto):
        return
    listed = "; ".join(" > ".join(path) for path in paths)
    raise CliError(f"{job.stub.src_path}: no section '{' > '.join(section)}' (sections: {listed})")


# -- entry point -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``mkdocs-aigen`` argument parser.

    ``-f/--config-file`` is accepted before or after any subcommand, as ``mkdocs build -f``
    users expect: every parser shares it through a parent whose default is *suppressed*,
    so a subcommand that does not see the option leaves the value given earlier alone.
    """
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "-f",
        "--config-file",
        default=argparse.SUPPRESS,
        help="path to mkdocs.yml (default: ./mkdocs.yml)",
    )
    parser = argparse.ArgumentParser(
        prog="mkdocs-aigen",
        description="Plan, cache and lock generated documentation.",
        parents=[config],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group: Any, name: str, summary: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, parents=[config], help=summary, description=summary
        )
        return sub

    plan = command(commands, "plan", "what the next build will generate; sends nothing")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--prices", help="YAML file: model: {input: N, output: N} USD per 1M tokens")
    cache = command(commands, "cache", "inspect or clean the response cache")
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(actions, "info", "entries and size of the cache")
    command(actions, "clear", "remove every cached answer and page")
    prune = command(actions, "prune", "remove this site's answers and pages no current stub needs")
    prune.add_argument(
        "--all",
        action="store_true",
        help="also remove entries of other sites sharing the cache directory, and those of "
        "older versions",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="list what would be removed; remove nothing"
    )
    lock = command(commands, "lock", "write or refresh the lock file")
    render = command(
        commands,
        "render",
        "write docs_dir as plain Markdown, generated sections in place, for any site generator",
    )
    render.add_argument("--out", help="output folder (default: .aigen/docs next to mkdocs.yml)")
    render.add_argument(
        "--check",
        action="store_true",
        help="send nothing, write nothing; exit 1 if the output folder is out of date",
    )
    lock.add_argument("--check", action="store_true", help="exit 1 if the lock is stale")
    regenerate = command(
        commands,
        "regenerate",
        "send a page's requests again, bypassing lock and cache; update both; print the diff",
    )
    regenerate.add_argument("page", help="the page, e.g. docs/guide.md or guide.md")
    regenerate.add_argument("--section", help='only this section, e.g. "Setup > Secrets"')
    regenerate.add_argument(
        "--stage", choices=("section", "polish", "review"), help="only this stage's requests"
    )
    batch = command(
        commands,
        "batch",
        "generate through the Batch API (half price, up to 24 h) or a JSONL batch file",
    )
    batch.add_argument("action", choices=("submit", "status", "collect", "cancel", "run"))
    batch.add_argument(
        "--jsonl",
        help="submit: write the requests to this file instead of uploading them; "
        "collect: read the answers from this results file",
    )
    batch.add_argument(
        "--poll", type=float, default=60.0, help="run: seconds between status checks"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user mistakes print one line and exit 2."""
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    commands = {
        "plan": command_plan,
        "cache": command_cache,
        "lock": command_lock,
        "render": command_render,
        "regenerate": command_regenerate,
        "batch": command_batch,
    }
    try:
        project = load_project(getattr(arguments, "config_file", None))
        return commands[arguments.command](project, arguments)
    except CliError as error:
        print(f"mkdocs-aigen: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
