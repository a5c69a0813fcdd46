"""The small protocol every backend implements."""

from __future__ import annotations

from typing import Protocol

from mkdocs_aigen.requests import ChatRequest, Completion


class Backend(Protocol):
    """Sends one request and returns one completion.

    Implementations raise :class:`~mkdocs_aigen.requests.BackendError` for every
    failure, classified by kind, and never retry on their own: the engine owns
    retries (one policy, one place). ``complete`` is called from many threads at once.
    """

    #: Short name for logs, e.g. ``"openai"`` or ``"local"``.
    name: str
    #: How many requests this backend can usefully run at once (``None``: no limit
    #: of its own). The in-process local model runs one generation at a time.
    max_parallel: int | None

    def complete(self, request: ChatRequest, timeout: float) -> Completion:
        """Send ``request`` and wait at most ``timeout`` seconds for the answer."""
        ...

    def close(self) -> None:
        """Release connections or model memory."""
        ...
