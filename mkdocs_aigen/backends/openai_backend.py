"""Any OpenAI-compatible chat completions endpoint, through the official SDK."""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from mkdocs_aigen.backends.body import SendOptions, chat_body
from mkdocs_aigen.backends.reply import completion_from, error_message, status_error
from mkdocs_aigen.requests import BackendError, ChatRequest, Completion
from mkdocs_aigen.scrub import remember_secret, scrub


@contextlib.contextmanager
def _gc_paused() -> Iterator[bool]:
    """No cyclic garbage collection while the SDK is imported; yields whether the objects
    alive afterwards were frozen (to be unfrozen by :meth:`OpenAIBackend.close`).

    The import creates some 10^5 long-lived objects; the collections they trigger, during
    the import and again in the first collections after it, scan all of them (and all of
    MkDocs): 60-130 ms, on the path to the first request. Nothing the import allocates is
    garbage, so nothing is lost by not looking; ``gc.freeze()`` then keeps later
    collections from scanning them again. Frozen only if nothing else froze objects.
    """
    enabled = gc.isenabled()
    freeze = gc.get_freeze_count() == 0
    gc.disable()
    try:
        yield freeze
        if freeze:
            gc.freeze()
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _trio_hidden() -> Iterator[None]:
    """Hide trio, if installed and not imported yet, while the SDK's HTTP library loads.

    httpcore (httpcore2 under openai 3) imports trio whenever it is installed (40-80 ms of
    CPU here, on the path to the first request), only to run its *async* connection pool
    under trio; the client built here is synchronous. Afterwards ``import trio`` works as
    before: only httpcore's async classes, which no docs build uses, go without trio
    support in this process. While the SDK loads (in the engine's start-up thread), an
    ``import trio`` elsewhere would fail; MkDocs and its plugins do not import trio.
    """
    if "trio" in sys.modules:
        yield
        return
    sys.modules["trio"] = None  # type: ignore[assignment]  # "import trio" raises ImportError
    try:
        yield
    finally:
        if "trio" in sys.modules and sys.modules["trio"] is None:
            del sys.modules["trio"]


class OpenAIBackend:
    """One shared ``openai.OpenAI`` client for the whole pool.

    Measured here: one sync client across a thread pool stays within a few percent of the
    ideal wall time up to 64 threads, where ``AsyncOpenAI`` on 2 cores was 20-40 % slower.
    """

    name = "openai"
    max_parallel: int | None = None

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        timeout: float,
        key_env: str | None = None,
        http_client: Any = None,
        sending: SendOptions | None = None,
    ) -> None:
        """Import the SDK and build its client; ``http_client`` (an ``httpx``/``httpx2``
        ``Client``, as the SDK's own parameter of that name takes) replaces the SDK's
        default one: the benchmark hands it an in-memory transport to measure the SDK
        without a network."""
        # First of all: SDK and server error texts sometimes quote the key they were
        # given, and even a failed import below becomes a message.
        remember_secret(api_key)
        self._sending = sending
        with _gc_paused() as self._frozen, _trio_hidden():
            import openai  # slow to import: only builds that send requests pay for it

            self._openai = openai
            #: The variable the key came from, named in a 401/403 (the key itself never is).
            self._key_env = key_env
            self._client = openai.OpenAI(
                api_key=api_key,
                base_url=base_url,
                # The engine retries with one policy (tenacity + the shared rate limiter);
                # the SDK's own two retries would multiply the attempts.
                max_retries=0,
                timeout=timeout,
                **({"http_client": http_client} if http_client is not None else {}),
            )
            # ``client.post(..., cast_to=<Response>)`` returns the raw response: the class
            # of the SDK's own HTTP library, ``httpx2`` since openai 3, ``httpx`` before.
            self._response_class = http_response_class()

    def complete(self, request: ChatRequest, timeout: float) -> Completion:
        """Send one chat completion and classify any failure."""
        # ``client.post`` is the SDK's documented way to send a request it has no typed
        # method for; here it skips what ``chat.completions.create`` adds on top: walking
        # every named parameter against its TypedDict annotations and wrapping the raw
        # response, about 0.4 ms of CPU a request (a fifth of the request path). Auth,
        # base URL, headers, timeouts and status errors are the SDK's as before.
        body = chat_body(request, self._sending)
        options: dict[str, Any] = {
            "timeout": timeout,
            # Lets logs and test servers tell the stages apart; ignored by providers.
            "headers": {"X-Aigen-Stage": request.stage},
        }
        started = time.monotonic()
        try:
            raw = self._client.post(
                "/chat/completions", cast_to=self._response_class, body=body, options=options
            )
            # Read as plain JSON: building the SDK's pydantic models costs more than the
            # four fields we use.
            data = json.loads(raw.content)
        except self._openai.APIError as error:
            raise self._classify(error) from None
        except ValueError:
            raise BackendError("retryable", "the answer is not valid JSON") from None
        latency = time.monotonic() - started
        headers = {k.lower(): v for k, v in raw.headers.items()}
        return completion_from(data, request, latency, headers)

    def close(self) -> None:
        """Close the connection pool; let the collector see the frozen objects again."""
        self._client.close()
        if self._frozen:
            self._frozen = False
            gc.unfreeze()

    def _classify(self, error: Exception) -> BackendError:
        openai = self._openai
        if isinstance(error, openai.APITimeoutError):
            return BackendError("retryable", "the request timed out")
        if isinstance(error, openai.APIConnectionError):
            return BackendError("retryable", f"connection failed: {scrub(str(error))}")
        if isinstance(error, openai.APIStatusError):
            headers = {k.lower(): v for k, v in error.response.headers.items()}
            body = getattr(error, "body", None)
            message = error_message(body, str(getattr(error, "message", "") or error))
            return status_error(error.status_code, headers, body, message, self._key_env)
        return BackendError("retryable", scrub(str(error)))


def http_response_class() -> type:
    """``Response`` of the HTTP library the installed SDK is built on.

    Read off the SDK's public ``DefaultHttpxClient``, a subclass of that library's
    ``Client``: both libraries may be installed side by side, and only the SDK knows
    which one it uses.
    """
    import openai

    for base in getattr(openai, "DefaultHttpxClient", type).__mro__:
        if base.__name__ == "Client" and not base.__module__.startswith("openai"):
            library = importlib.import_module(base.__module__.partition(".")[0])
            return library.Response  # type: ignore[no-any-return]
    try:  # an older SDK without DefaultHttpxClient
        import httpx2
    except ImportError:
        import httpx

        return httpx.Response
    return httpx2.Response
