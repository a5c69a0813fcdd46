"""Which answers are kept: the one rule every backend applies before returning text.

An answer the engine receives is cached (and may be locked) for good, so anything but a
normal, complete answer becomes a :class:`~mkdocs_aigen.requests.BackendError` here:

* cut off at the token limit (``finish_reason`` ``length``): kind ``truncated``, so the
  engine can ask once more with a larger budget instead of retrying the same request;
* a refusal, a content filter, any other finish reason that is not a normal stop, no
  text, blank text, or structured output that is not valid JSON matching the request's
  schema: kind ``retryable``, retried like a transient fault and, if it persists, a
  placeholder whose warning names the reason.

Normal stops are ``stop`` and the names OpenAI-compatible servers use for the same
thing (``eos``, ``eos_token``, ``stop_sequence``, ``end_turn``), or no reason at all
(some servers omit it) when there is text. ``tool_calls``/``function_call`` are not:
no request offers tools, so such an answer is not the prose or JSON that was asked for.
"""

from __future__ import annotations

import json
from typing import Any

from mkdocs_aigen.backends.schemas import schema_problem
from mkdocs_aigen.requests import BackendError, ChatRequest

NORMAL_STOPS = frozenset({"stop", "eos", "eos_token", "stop_sequence", "end_turn"})
#: ``length`` is OpenAI's and llama.cpp's; ``max_tokens`` Anthropic's name for it.
TRUNCATED = frozenset({"length", "max_tokens"})
#: Flows that show the model its own invalid answer and ask again (the outline
#: expansion): they need that answer back rather than a plain retry of the request.
SELF_REPAIRING_SCHEMAS = frozenset({"outline"})
#: Characters of a refusal quoted in the warning.
REFUSAL_CHARS = 80


def check_answer(request: ChatRequest, text: Any, finish_reason: Any, refusal: Any = None) -> str:
    """``text`` if it is a complete, usable answer to ``request``; else raise BackendError."""
    if isinstance(refusal, str) and refusal.strip():
        raise BackendError("retryable", f"the model refused: {_shorten(refusal)}")
    if finish_reason in TRUNCATED:
        raise BackendError(
            "truncated",
            f"the answer was cut off at max_tokens={request.max_tokens} "
            f"(finish_reason: {finish_reason})",
        )
    if finish_reason is not None and finish_reason not in NORMAL_STOPS:
        raise BackendError("retryable", f"the model stopped: {finish_reason}")
    if not isinstance(text, str):
        raise BackendError("retryable", "the answer has no text (content: null)")
    if not text.strip():
        raise BackendError("retryable", "empty answer")
    if request.json_schema is not None and request.schema_name not in SELF_REPAIRING_SCHEMAS:
        problem = structured_problem(text, request.json_schema)
        if problem is not None:
            raise BackendError("retryable", f"invalid structured answer: {problem}")
    return text


def structured_problem(text: str, schema_text: str) -> str | None:
    """Why ``text`` is not JSON matching the schema, or ``None``."""
    try:
        value = json.loads(unwrap_json_fence(text))
    except ValueError as error:
        return f"not valid JSON ({error})"
    return schema_problem(value, json.loads(schema_text))


def unwrap_json_fence(text: str) -> str:
    """JSON some servers wrap in a ```json fence despite the schema."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and stripped.count("```") == 2:
        first_newline = stripped.find("\n")
        if first_newline != -1:
            return stripped[first_newline + 1 : -3].strip()
    return stripped


def _shorten(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= REFUSAL_CHARS else line[: REFUSAL_CHARS - 3] + "..."
