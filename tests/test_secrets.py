"""The API key's value is scrubbed from every message, whatever its shape (issue 12, item 8).

Patterns only catch ``sk-``-like keys; hex keys, JWTs, base64 keys with ``/+=`` and plain
words get through them. The value the backend was configured with is remembered and
masked wherever it turns up, in the URL-encoded forms a server may quote it in too, and
the engine's own exception texts go through the same scrubber.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from mkdocs_aigen.answers import AnswerSources, Outcome
from mkdocs_aigen.backends.base import Backend
from mkdocs_aigen.backends.openai_backend import OpenAIBackend
from mkdocs_aigen.cache import ResponseCache
from mkdocs_aigen.engine import Engine
from mkdocs_aigen.requests import ChatRequest, Completion, Message
from mkdocs_aigen.scrub import forget_secrets, remember_secret, scrub
from mkdocs_aigen.stats import BuildStats
from tests.conftest import TEST_KEY_ENV, Site, warning_messages
from tests.fake_server import FakeOpenAI, Reply, RequestRecord, default_responder

KEYS = {
    "openai": "sk-proj-Zx81kQ2mW9vB4nT6yH3jL0pR",
    "hex": "3f9a1c0b7e2d4a6f8b1c",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhaWdlbiJ9.c2lnbmF0dXJlLXZhbHVl",
    "base64": "Ab/Cd+Ef=Gh/Ij+Kl==",
    "word": "hunter2hunter2",
}

PAGE = """
---
aigen:
  brief: Explain the gadget.
  outline:
    - Overview
    - Leaky
    - Crashy
    - Encoded
---
# Gadget

<!-- aigen -->
"""


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    yield
    forget_secrets()


def forms(key: str) -> set[str]:
    """Every way the key may be written down."""
    return {key, quote(key, safe=""), quote_plus(key)}


def leaks(key: str, texts: dict[str, str]) -> list[str]:
    return [name for name, text in texts.items() if any(form in text for form in forms(key))]


def echoing(key: str) -> Any:
    """Errors that quote the key back: raw in a 400 and a 500, URL-encoded in a 400."""

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        prompt = body["messages"][-1]["content"]
        if "Section: Leaky" in prompt:
            return Reply(f"Invalid request from 'Authorization: Bearer {key}'", status=400)
        if "Section: Crashy" in prompt:
            return Reply(f"upstream crashed while handling key {key}", status=500)
        if "Section: Encoded" in prompt:
            return Reply(f"bad redirect to /login?api_key={quote(key, safe='')}", status=400)
        return default_responder(body, record)

    return responder


@pytest.mark.parametrize("shape", KEYS)
def test_a_key_of_any_shape_appears_in_no_output(
    site: Site,
    server: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    shape: str,
) -> None:
    key = KEYS[shape]
    monkeypatch.setenv(TEST_KEY_ENV, key)
    caplog.set_level(logging.DEBUG)
    server.configure(required_key=key)  # only the real key gets past the server's check
    server.responder = echoing(key)
    site.plugin.update(max_retries=1, concurrency=2)
    site.page("index.md", PAGE)
    site.build()
    # The build met the key-quoting errors and reported them, masked.
    assert {200, 400, 500} <= {r.status for r in server.log}
    messages = warning_messages(caplog)
    assert any("Leaky" in m and "***" in m for m in messages), messages
    assert any("Encoded" in m and "api_key=***" in m for m in messages), messages
    result = site.cli("build", "--verbose")
    assert result.returncode == 0, result.stderr

    texts = {
        "logs": caplog.text,
        "log records": "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records),
        "stdout": result.stdout,
        "stderr": result.stderr,
    }
    files = {
        str(path.relative_to(site.root)): path for path in site.root.rglob("*") if path.is_file()
    }
    # Site pages, the report and the cache directory are all in the scan.
    assert {"site/index.html", "site/aigen-report.json"} <= set(files)
    assert any(name.startswith(".cache/plugin/aigen/") for name in files)
    # Keys are ASCII: latin-1 turns any file's bytes into text without losing one.
    texts.update({name: path.read_bytes().decode("latin-1") for name, path in files.items()})
    assert leaks(key, texts) == []
    assert 401 not in {r.status for r in server.log}


# --------------------------------------------------------------------------- engine texts


def request() -> ChatRequest:
    return ChatRequest(
        stage="section", model="m", messages=(Message("user", "Write."),), max_tokens=20
    )


def run_one(tmp_path: Path, factory: Any) -> Outcome:
    engine = Engine(
        concurrency=1,
        answers=AnswerSources(ResponseCache(tmp_path / "cache", lambda message: None)),
        stats=BuildStats(),
        backend_factory=factory,
        max_retries=0,
    )
    outcomes: list[Outcome] = []
    finished = threading.Event()

    def flow(req: ChatRequest):  # type: ignore[no-untyped-def]
        outcome = yield req
        return outcome

    def done(result: Outcome, error: BaseException | None) -> None:
        outcomes.append(result)
        finished.set()

    try:
        engine.run(flow(request()), done)
        engine.open()
        assert finished.wait(30)
    finally:
        engine.close()
    return outcomes[0]


@pytest.mark.parametrize("shape", KEYS)
def test_engine_exception_texts_are_scrubbed(
    tmp_path: Path, server: FakeOpenAI, shape: str
) -> None:
    key = KEYS[shape]

    def openai_backend() -> OpenAIBackend:
        return OpenAIBackend(api_key=key, base_url=server.base_url, timeout=5)

    def cannot_start() -> Backend:
        openai_backend().close()  # the configured backend learned the key ...
        raise RuntimeError(f"credentials rejected: {key}")  # ... then its start failed

    outcome = run_one(tmp_path / "start", cannot_start)
    assert "cannot start the backend" in (outcome.error or "")
    assert leaks(key, {"error": outcome.error or ""}) == []
    assert "***" in (outcome.error or "")

    class Broken:
        """A backend with a bug that puts the key into an exception text."""

        name = "broken"
        max_parallel = None

        def __init__(self) -> None:
            self.inner = openai_backend()

        def complete(self, request: ChatRequest, timeout: float) -> Completion:
            raise ValueError(f"header Authorization: Bearer {quote_plus(key)} is malformed")

        def close(self) -> None:
            self.inner.close()

    outcome = run_one(tmp_path / "bug", Broken)
    assert "internal error" in (outcome.error or "")
    assert leaks(key, {"error": outcome.error or ""}) == []


# --------------------------------------------------------------------------- the scrubber


@pytest.mark.parametrize("shape", KEYS)
def test_scrub_masks_the_value_and_its_encoded_forms(shape: str) -> None:
    key = KEYS[shape]
    remember_secret(key)
    for form in forms(key):
        assert scrub(f"before {form} after") == "before *** after"


def test_scrub_leaves_short_values_and_plain_text_alone() -> None:
    remember_secret("unused")  # the placeholder sent to servers that need no key
    assert scrub("unused parameter") == "unused parameter"
    assert scrub("key-abcdefgh12345 and sk-somethingsecret1") == "*** and ***"
