"""The JSON body of one chat completion request, as every OpenAI-compatible server takes it.

One function for every way a request leaves the house (a live request, a batch file line),
so a batch answer and a live answer are answers to the same body.
"""

from __future__ import annotations

import json
from typing import Any

from mkdocs_aigen.backends.schemas import strict_subset
from mkdocs_aigen.requests import ChatRequest


def chat_body(request: ChatRequest) -> dict[str, Any]:
    """The ``/chat/completions`` body for ``request``: model, messages, sampling, schema."""
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
    return body
