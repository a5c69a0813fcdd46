"""The plain data that travels between the engine, the cache and the backends."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from mkdocs_aigen.jobs import CACHE_FORMAT, Stage


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """Everything that decides a model's answer, and nothing else.

    ``label`` is for humans (logs, placeholders) and is left out of the hash,
    so renaming a page file does not cost a request.
    """

    stage: Stage
    model: str
    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float = 0.7
    top_p: float | None = None
    seed: int | None = None
    # A JSON schema (as a canonical JSON string, so the dataclass stays hashable)
    # for structured output; ``None`` for free text.
    json_schema: str | None = None
    schema_name: str | None = None
    # Backend specific sampling options (e.g. ``repeat_penalty`` for llama.cpp).
    extra: tuple[tuple[str, Any], ...] = ()
    # The fingerprint of every template file in use (``Prompts.fingerprint``): a template
    # edit that leaves this request's text as it was (a partial only other stages
    # include, a comment) still makes a new request, as it makes a new page key.
    templates: str = ""
    label: str = field(default="", compare=False)
    #: :func:`inputs_key` of what the prompt was rendered from, without the templates'
    #: wording: the lock finds a reviewed text by it when only the templates changed.
    inputs: str = field(default="", compare=False)
    #: What the requests sharing a prompt prefix have in common (their page), sent as
    #: ``prompt_cache_key`` where enabled; never part of the hash.
    cache_group: str = field(default="", compare=False)

    @cached_property
    def key(self) -> str:
        """The SHA-256 of the whole request: the one place that defines cache identity.

        Computed once: the pipeline, the engine and the lock all ask for it, and a cached
        section's whole budget is a few times the cost of one hash.
        """
        return request_key(self)

    def prompt_chars(self) -> int:
        """Total characters of all messages, for token estimates."""
        return sum(len(m.content) for m in self.messages)


def request_key(request: ChatRequest, *, templates: bool = True) -> str:
    """Hash every field that can change the answer (not the label).

    ``templates=False``: the hash lock files of version 1 used, before the template
    fingerprint joined it; such a lock is still read (see :meth:`LockFile.answer_for`).
    """
    payload = {
        "format": CACHE_FORMAT,
        "stage": request.stage,
        "model": request.model,
        "messages": [[m.role, m.content] for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "json_schema": request.json_schema,
        "schema_name": request.schema_name,
        "extra": [list(item) for item in request.extra],
    }
    if templates:
        payload["templates"] = request.templates
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


#: Values an absent template variable also has (``False`` and ``0`` say something).
_EMPTY: tuple[Any, ...] = (None, "", [], (), {})


def inputs_key(stage: str, model: str, variables: Mapping[str, Any], sampling: Any) -> str:
    """Hash what a request is made from (the stub's fields, the neighbours' titles, the
    model and sampling) but not the wording of the templates that render it.

    A packaged template that changes in an upgrade, or an author's own template, changes
    every :func:`request_key`; a lock entry that a person reviewed must survive that, and
    this is the identity it is found by then (see :meth:`LockFile.answer_for`). Only the
    lock uses it: the cache stays exact, so better templates do reach unlocked sections.
    """
    # An empty variable says what an absent one says; leaving both out means a version that
    # adds an optional variable (a language, sources) keeps the identity of every request
    # that does not use it.
    present = {name: value for name, value in variables.items() if value not in _EMPTY}
    payload = {"stage": stage, "model": model, "variables": present, "sampling": sampling}
    canonical = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Completion:
    """A model's answer with what the engine needs to account for it."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    finish_reason: str | None = None
    #: Prompt tokens the provider served from its prompt cache (billed at a lower rate).
    cached_tokens: int = 0
    #: The endpoint that answered, when several are configured (``endpoints:``).
    endpoint: str | None = None


ErrorKind = Literal["retryable", "throttled", "fatal", "invalid", "truncated"]


class BackendError(Exception):
    """A failed request, classified so the retry policy needs no SDK knowledge.

    kinds:
      ``throttled``  429: pause everyone for ``retry_after`` then retry;
      ``retryable``  408, 409, 5xx, timeouts, dropped connections;
      ``fatal``      401, 403, unknown model: nothing else will work either, stop all work;
      ``invalid``    400 and other answers that a retry cannot fix (this request only);
      ``truncated``  the answer hit ``max_tokens``: the same request would be cut off
                     again, only a larger budget helps (never retried as it is).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.headers: Mapping[str, str] = headers or {}
        #: The endpoint that failed, when several are configured (``endpoints:``).
        self.endpoint: str | None = None

    def __str__(self) -> str:
        return self.message
