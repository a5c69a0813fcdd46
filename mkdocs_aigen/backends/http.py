"""The live request path without the openai SDK: one POST per answer.

A docs build needs one endpoint of the API: JSON in, JSON out, the key in a header,
status codes mapped to the engine's error kinds. The SDK costs about 0.4-0.6 s of CPU
to import and build before the first request can leave, and about 1.9 ms of CPU per
request; this client sends over the standard library's ``http.client``
(:mod:`mkdocs_aigen.backends.transport` says why not the SDK's ``httpx2``). The SDK
stays for what needs it: the files and batches APIs (``mkdocs-aigen batch``).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from mkdocs_aigen import __version__
from mkdocs_aigen.backends.body import SendOptions, chat_body
from mkdocs_aigen.backends.reply import completion_from, error_message, status_error
from mkdocs_aigen.backends.transport import Transport, TransportError
from mkdocs_aigen.requests import BackendError, ChatRequest, Completion
from mkdocs_aigen.scrub import remember_secret, scrub

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class HTTPBackend:
    """Any OpenAI-compatible ``/chat/completions`` endpoint; each worker thread sends on
    a kept-alive connection of its own."""

    name = "openai"
    max_parallel: int | None = None

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        key_env: str | None = None,
        sending: SendOptions | None = None,
    ) -> None:
        # First of all: a server's error text may quote the key it was given.
        remember_secret(api_key)
        self._key_env = key_env
        self._sending = sending
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"mkdocs-aigen/{__version__}",
        }
        host = urlsplit(base).hostname or ""
        if host.endswith(".azure.com"):
            headers["api-key"] = api_key  # Azure OpenAI's own header, on its v1 endpoint too
        else:
            headers["Authorization"] = f"Bearer {api_key}"
        try:
            self._transport = Transport(base + "/chat/completions", headers)
        except ValueError as error:
            raise BackendError("fatal", f"base_url: {error}") from None

    def complete(self, request: ChatRequest, timeout: float) -> Completion:
        """Send one chat completion and classify any failure."""
        body = json.dumps(chat_body(request, self._sending), ensure_ascii=False).encode("utf-8")
        started = time.monotonic()
        try:
            # The stage header lets logs and test servers tell the stages apart; providers
            # ignore it.
            reply = self._transport.post(body, {"X-Aigen-Stage": request.stage}, timeout)
        except TransportError as error:
            if error.timed_out:
                raise BackendError("retryable", "the request timed out") from None
            raise BackendError("retryable", f"connection failed: {scrub(str(error))}") from None
        latency = time.monotonic() - started
        try:
            data: Any = json.loads(reply.body)
        except ValueError:
            data = None
        if reply.status >= 400:
            message = error_message(data, reply.reason or "error")
            raise status_error(reply.status, reply.headers, data, message, self._key_env)
        if data is None:
            raise BackendError("retryable", "the answer is not valid JSON")
        return completion_from(data, request, latency, reply.headers)

    def close(self) -> None:
        """Close every worker's connection."""
        self._transport.close()
