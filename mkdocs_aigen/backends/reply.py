"""A chat completion's JSON body read into a :class:`Completion`, and an error status
read into a :class:`BackendError`: the same rules for every client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mkdocs_aigen.backends.checks import check_answer
from mkdocs_aigen.limits import parse_retry_after
from mkdocs_aigen.requests import BackendError, ChatRequest, Completion, ErrorKind
from mkdocs_aigen.scrub import scrub


def completion_from(
    data: Any, request: ChatRequest, latency: float, headers: Mapping[str, str]
) -> Completion:
    """The answer in ``data`` if it is a complete, usable one; else BackendError."""
    choice = _first_choice(data)
    if not choice:
        raise BackendError("retryable", "the answer has no choices")
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    finish = choice.get("finish_reason")
    text = check_answer(request, message.get("content"), finish, message.get("refusal"))
    usage = data.get("usage") if isinstance(data, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    return Completion(
        text=text,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        latency=latency,
        headers=headers,
        finish_reason=finish if isinstance(finish, str) else None,
        cached_tokens=_cached_tokens(usage),
    )


def status_error(
    status: int, headers: Mapping[str, str], body: Any, message: str, key_env: str | None
) -> BackendError:
    """The :class:`BackendError` for an HTTP error status; ``message`` is the server's
    own words (scrubbed here), ``body`` its decoded JSON when it had one."""
    text = f"HTTP {status}: {scrub(message)}"
    kind: ErrorKind
    if status == 429 and _resource_unavailable(body, message):
        # Flex processing's "no capacity right now": not the account's rate limit, so it
        # must not slow every other request down; retried with backoff.
        kind = "retryable"
    elif status == 429:
        kind = "throttled"
    elif status in (408, 409) or status >= 500:
        kind = "retryable"
    elif status in (401, 403):
        kind = "fatal"
        where = f"${key_env}, " if key_env else ""
        text += f" (check the API key in {where}the variable named by `api_key_env`)"
    elif status == 404:
        kind = "fatal"
        text += " (check `model` and `base_url`)"
    else:
        kind = "invalid"
    return BackendError(
        kind, text, status=status, retry_after=parse_retry_after(headers), headers=headers
    )


def error_message(body: Any, fallback: str) -> str:
    """The message of an OpenAI-style error body, else ``fallback``."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return fallback


def _first_choice(data: Any) -> dict[str, Any]:
    """The first choice of a chat completion body, ``{}`` when there is none."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _count(value: Any) -> int:
    """A token count from ``usage``; 0 when missing or not a number."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _cached_tokens(usage: dict[str, Any]) -> int:
    """``usage.prompt_tokens_details.cached_tokens``: prompt tokens read from the cache."""
    details = usage.get("prompt_tokens_details")
    return _count(details.get("cached_tokens")) if isinstance(details, dict) else 0


def _resource_unavailable(body: Any, message: str) -> bool:
    """Whether a 429 says the service has no capacity (flex), not that a limit was hit."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    text = f"{code} {message}".lower().replace("_", " ")
    return "resource unavailable" in text
