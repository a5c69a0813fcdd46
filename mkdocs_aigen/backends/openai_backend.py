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
from mkdocs_aigen.backends.checks import check_answer
from mkdocs_aigen.limits import parse_retry_after
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
            headers={k.lower(): v for k, v in raw.headers.items()},
            finish_reason=finish if isinstance(finish, str) else None,
            cached_tokens=_cached_tokens(usage),
        )

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
            status = error.status_code
            headers = {k.lower(): v for k, v in error.response.headers.items()}
            message = f"HTTP {status}: {scrub(_error_message(error))}"
            retry_after = parse_retry_after(headers)
            if status == 429 and _resource_unavailable(error):
                # Flex processing's "no capacity right now": not the account's rate limit,
                # so it must not slow every other request down; retried with backoff.
                kind = "retryable"
            elif status == 429:
                kind = "throttled"
            elif status in (408, 409) or status >= 500:
                kind = "retryable"
            elif status in (401, 403):
                kind = "fatal"
                where = f"${self._key_env}, " if self._key_env else ""
                message += f" (check the API key in {where}the variable named by `api_key_env`)"
            elif status == 404:
                kind = "fatal"
                message += " (check `model` and `base_url`)"
            else:
                kind = "invalid"
            return BackendError(
                kind, message, status=status, retry_after=retry_after, headers=headers
            )
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


def _resource_unavailable(error: Any) -> bool:
    """Whether a 429 says the service has no capacity (flex), not that a limit was hit."""
    body = getattr(error, "body", None)
    inner = body.get("error", body) if isinstance(body, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    text = f"{code} {_error_message(error)}".lower().replace("_", " ")
    return "resource unavailable" in text


def _error_message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return str(getattr(error, "message", "") or error)
