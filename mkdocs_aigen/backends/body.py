"""The JSON body of one chat completion request, as every OpenAI-compatible server takes it.

One function for every way a request leaves the house (a live request, a batch file line),
so a batch answer and a live answer are answers to the same body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mkdocs_aigen.backends.schemas import strict_subset
from mkdocs_aigen.requests import ChatRequest


@dataclass(frozen=True)
class SendOptions:
    """How requests are sent, which never changes an answer (and so no key): the
    processing tier and prompt-cache routing."""

    #: ``flex``, ``priority``...; ``None``: not sent.
    service_tier: str | None = None
    #: Send ``prompt_cache_key`` (the request's page), for providers that route by it.
    prompt_cache_key: bool = False


def chat_body(request: ChatRequest, sending: SendOptions | None = None) -> dict[str, Any]:
    """The ``/chat/completions`` body for ``request``: model, messages, sampling, schema,
    and what ``sending`` adds."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.seed is not None:
        body["seed"] = request.seed
    if request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": request.schema_name or "answer",
                # What every provider's strict mode accepts; check_answer checks the rest
                # of the request's schema on the answer.
                "schema": strict_subset(json.loads(request.json_schema)),
                "strict": True,
            },
        }
    if sending is not None:
        if sending.service_tier is not None:
            body["service_tier"] = sending.service_tier
        if sending.prompt_cache_key and request.cache_group:
            body["prompt_cache_key"] = request.cache_group
    return body
