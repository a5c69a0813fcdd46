"""The live request path without the openai SDK: one POST per answer.

A docs build needs one endpoint of the API: JSON in, JSON out, the key in a header,
status codes mapped to the engine's error kinds. The SDK costs about 0.4-0.6 s of CPU
to import and build before the first request can leave, and about 1.9 ms of CPU per
request; this client uses the HTTP library the SDK itself is built on (``httpx2``, a
dependency of ``openai``), loaded only when a request is sent. The SDK stays for what
needs it: the files and batches APIs (``mkdocs-aigen batch``).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from mkdocs_aigen import __version__
from mkdocs_aigen.backends.body import SendOptions, chat_body
from mkdocs_aigen.backends.reply import completion_from, error_message, status_error
from mkdocs_aigen.requests import BackendError, ChatRequest, Completion
from mkdocs_aigen.scrub import remember_secret, scrub

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class HTTPBackend:
    """Any OpenAI-compatible ``/chat/completions`` endpoint, over one pooled client
    shared by every worker thread."""

    name = "openai"
    max_parallel: int | None = None

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        timeout: float,
        key_env: str | None = None,
        sending: SendOptions | None = None,
        connections: int = 256,
    ) -> None:
        # First of all: a server's error text may quote the key it was given.
        remember_secret(api_key)
        import httpx2  # only builds that send requests pay for it

        self._httpx = httpx2
        self._key_env = key_env
        self._sending = sending
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._url = base + "/chat/completions"
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
        self._client = httpx2.Client(
            headers=headers,
            timeout=timeout,
            limits=httpx2.Limits(
                max_connections=connections, max_keepalive_connections=connections
            ),
        )

    def complete(self, request: ChatRequest, timeout: float) -> Completion:
        """Send one chat completion and classify any failure."""
        body = json.dumps(chat_body(request, self._sending), ensure_ascii=False).encode("utf-8")
        started = time.monotonic()
        httpx = self._httpx
        try:
            response = self._client.post(
                self._url,
                content=body,
                # Lets logs and test servers tell the stages apart; ignored by providers.
                headers={"X-Aigen-Stage": request.stage},
                timeout=timeout,
            )
            content = response.content
        except httpx.TimeoutException:
            raise BackendError("retryable", "the request timed out") from None
        except httpx.HTTPError as error:
            raise BackendError("retryable", f"connection failed: {scrub(str(error))}") from None
        latency = time.monotonic() - started
        headers = {k.lower(): v for k, v in response.headers.items()}
        try:
            data: Any = json.loads(content)
        except ValueError:
            data = None
        if response.status_code >= 400:
            message = error_message(data, response.reason_phrase or "error")
            raise status_error(response.status_code, headers, data, message, self._key_env)
        if data is None:
            raise BackendError("retryable", "the answer is not valid JSON")
        return completion_from(data, request, latency, headers)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
