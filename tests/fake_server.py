"""A fake OpenAI-compatible HTTP server for the test suite and the benchmarks.

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` like a real provider would,
with the failure modes a real provider has: latency with jitter, rate limits enforced
over sub-minute windows (429 with ``retry-after``), 500s, connections dropped mid-response,
requests slow enough to hit client timeouts, a wrong API key (401), an unknown model
(404) and the whole server going away for a while (connection refused).

Everything is standard library, one thread per connection (the openai SDK keeps
connections alive, so that is one thread per client worker), and every wait is an
``Event.wait`` so the server costs no CPU while requests "think" and ``stop()`` returns
at once even with requests sleeping.

In process::

    with FakeOpenAI(latency=0.05, jitter=0.3, seed=1) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        ...
        server.count(stage="section", status=200), server.max_in_flight

As a separate process (what the benchmarks do, so the server does not compete with the
client for the GIL)::

    python -m tests.fake_server --port 0 --latency 0.5 --jitter 0.3 --rpm 1200
    # prints "READY http://127.0.0.1:PORT/v1", then serves until SIGTERM / SIGINT

and drive it through ``/_admin/log``, ``/_admin/config``, ``/_admin/reset`` and
``/_admin/fault`` (see :func:`admin_call` and :func:`start_process`).

Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Generic, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

from tests.fake_batches import FakeBatches

HOST = "127.0.0.1"
#: ``max_tokens`` charged to the token bucket when the request names none.
DEFAULT_MAX_TOKENS = 256
#: Words in a default reply when the prompt asks for no length.
DEFAULT_WORDS = 60
#: ``titles`` in a default ``outline`` answer when the schema sets no ``minItems``.
DEFAULT_OUTLINE_ITEMS = 3
#: Every criterion of a default ``review`` answer gets this score.
DEFAULT_REVIEW_SCORE = 8

_WORDS_PATTERN = re.compile(r"about (\d+) words")
_COUNT_PATTERN = re.compile(r"exactly (\d+) subsection titles")
# Deterministic filler for default replies. No digits and no "about": a reply fed back
# into a later prompt (augment's draft, polish's page) must not look like a word target.
_FILLER_TEXT = (
    "the plugin reads each outline stub and writes the section text from it while the "
    "cache keeps every answer so a second build sends no request at all and the site "
    "stays fast even when many pages change together in one commit"
)
_FILLER = tuple(_FILLER_TEXT.split())


# --------------------------------------------------------------------------- records


@dataclass
class RequestRecord:
    """One request to an API endpoint (admin endpoints are not logged).

    ``start``/``end`` are ``time.monotonic()`` of the server process; on Linux that clock
    is system-wide, so a benchmark in another process can compare them with its own.
    ``status`` is what the server sent (or tried to send); ``None`` when it deliberately
    sent no complete response (``dropped``, ``aborted``).

    ``outcome`` is one of: ``ok``; ``400`` (bad JSON); ``401``; ``404`` (unknown model or
    path); ``429`` (a rate-limit bucket had no room); ``storm`` (a 429 injected by
    :meth:`FakeOpenAI.storm`); the status as a string for an injected failure or a
    responder's non-200 :class:`Reply` (``500``, ``503``...); ``error`` (the responder
    raised: answered 500); ``dropped``; ``aborted`` (cut off by ``stop()``/``down_for()``);
    one of :data:`BAD_REPLIES` (a 200 spoiled by :meth:`FakeOpenAI.bad_next`);
    ``client_gone`` (writing the answer failed; best effort, the kernel usually accepts
    the write even when the client already left).
    """

    index: int
    start: float
    end: float | None = None
    status: int | None = None
    stage: str | None = None
    model: str | None = None
    body: dict[str, Any] | None = None
    #: ``ceil(characters of all message contents / 4)``.
    prompt_tokens: int = 0
    #: What the token bucket was charged: ``prompt_tokens + max_tokens`` (0 if not admitted).
    charged_tokens: int = 0
    completion_tokens: int = 0
    #: ``usage.prompt_tokens_details.cached_tokens`` of the answer (a shared prefix).
    cached_tokens: int = 0
    response_text: str | None = None
    outcome: str = "pending"
    #: The delay chosen on arrival (latency ± jitter, ``slow_seconds`` or ``Reply.delay``);
    #: reproducible from the seed, unlike ``latency_slept``, which is measured.
    delay: float = 0.0
    latency_slept: float = 0.0
    #: Seconds announced in ``retry-after`` on a 429.
    retry_after: float | None = None
    path: str = ""
    #: Request headers, lower-cased, with ``authorization`` redacted.
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from arrival to the end of the answer, once finished."""
        return None if self.end is None else self.end - self.start

    def to_json(self, *, include_body: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (what ``/_admin/log`` returns)."""
        data = asdict(self)
        if not include_body:
            data["body"] = None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestRecord:
        """Rebuild a record fetched from ``/_admin/log`` (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Reply:
    """What a responder may return instead of a plain string.

    ``status`` other than 200 sends an OpenAI-style error whose message is ``content``.
    ``delay`` replaces the server's latency (and jitter) for this request.
    ``headers`` are added to the response.
    ``content=None`` sends ``"content": null``; ``refusal`` fills ``message.refusal``;
    ``no_choices`` sends a 200 whose ``choices`` list is empty.
    """

    content: str | None = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float | None = None
    finish_reason: str | None = "stop"
    refusal: str | None = None
    no_choices: bool = False


#: What :meth:`FakeOpenAI.bad_next` can answer instead of a normal reply.
BAD_REPLIES = ("length", "content_filter", "refusal", "null", "empty", "no_choices")
#: The refusal text of a ``refusal`` bad reply.
REFUSAL_TEXT = "I'm sorry, but I cannot help with that request."


def bad_reply(kind: str, good: Reply) -> Reply:
    """``good`` spoiled the way a real provider spoils answers (see :data:`BAD_REPLIES`).

    ``length`` keeps the first half of the words, as an answer cut off at ``max_tokens``
    does; ``content_filter`` keeps a few words, then stops.
    """
    words = (good.content or "").split()
    if kind == "length":
        return replace(
            good, content=" ".join(words[: max(1, len(words) // 2)]), finish_reason="length"
        )
    if kind == "content_filter":
        return replace(good, content=" ".join(words[:3]), finish_reason="content_filter")
    if kind == "refusal":
        return replace(good, content=None, refusal=REFUSAL_TEXT, finish_reason="stop")
    if kind == "null":
        return replace(good, content=None, finish_reason="stop")
    if kind == "empty":
        return replace(good, content="  \n", finish_reason="stop")
    if kind == "no_choices":
        return replace(good, no_choices=True)
    raise ValueError(f"unknown bad reply {kind!r}; known: {', '.join(BAD_REPLIES)}")


Responder = Callable[[dict[str, Any], RequestRecord], "str | Reply"]


# --------------------------------------------------------------------------- default replies


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one chat message: a string, or the text parts of a content list."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    """``ceil(total characters of all message contents / 4)``: the usual rough estimate."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    chars = sum(len(message_text(m)) for m in messages if isinstance(m, Mapping))
    return math.ceil(chars / 4)


def count_completion_tokens(text: str) -> int:
    """``ceil(words × 1.3)``: English averages about 1.3 tokens a word."""
    return math.ceil(len(text.split()) * 1.3)


def requested_max_tokens(body: Mapping[str, Any]) -> int:
    """``max_completion_tokens`` (newer name) or ``max_tokens``, else 256."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return DEFAULT_MAX_TOKENS


def default_responder(body: dict[str, Any], record: RequestRecord) -> str:
    """Plausible, deterministic content for the plugin's prompts.

    Structured output (``response_format.type == "json_schema"``): schema ``outline``
    gives ``{"titles": ["Part 1", ...]}`` with ``minItems`` titles, else as many as the
    prompt's ``exactly N subsection titles`` asks for (default 3), schema
    ``review`` gives a score of 8 for every criterion in the schema, anything else ``{}``.

    Free text: ``"Text for <Section: line>."`` padded with filler to the *last*
    ``about N words`` of the last user message (the last one because augment's prompt
    states the current target before the length it asks for), 60 words by default.
    """
    del record  # part of the responder signature; the default needs only the body
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            return json.dumps(_structured_answer(spec, _last_user_text(body)))
        if kind == "json_object":
            return "{}"

    prompt = _last_user_text(body)
    section = None
    for line in prompt.splitlines():
        if line.startswith("Section:"):
            section = line[len("Section:") :].strip()
            break
    targets = _WORDS_PATTERN.findall(prompt)
    words = int(targets[-1]) if targets else DEFAULT_WORDS
    return filler_text(f"Text for {section}." if section else "Text for request.", words)


def filler_text(head: str, words: int) -> str:
    """``head`` followed by deterministic filler so the reply has ``words`` words in all."""
    missing = words - len(head.split())
    if missing <= 0:
        return head
    # Start the filler at a head-dependent place so sections do not all read the same.
    offset = sum(map(ord, head)) % len(_FILLER)
    filler = [_FILLER[(offset + i) % len(_FILLER)] for i in range(missing)]
    return f"{head} {' '.join(filler)}."


def _structured_answer(spec: Any, prompt: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        return {}
    schema = spec.get("schema")
    properties = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
    name = spec.get("name")
    if name == "outline":
        titles = properties.get("titles", {}) if isinstance(properties, Mapping) else {}
        count = titles.get("minItems") if isinstance(titles, Mapping) else None
        if count is None:
            # Strict-mode schemas carry no item counts: read the prompt, as a model would.
            asked = _COUNT_PATTERN.search(prompt)
            count = int(asked.group(1)) if asked else DEFAULT_OUTLINE_ITEMS
        if not isinstance(count, int) or count < 0:
            count = DEFAULT_OUTLINE_ITEMS
        return {"titles": [f"Part {i}" for i in range(1, count + 1)]}
    if name == "review":
        scores = properties.get("scores", {}) if isinstance(properties, Mapping) else {}
        criteria = scores.get("properties", {}) if isinstance(scores, Mapping) else {}
        names = criteria if isinstance(criteria, Mapping) else {}
        return {"scores": dict.fromkeys(names, DEFAULT_REVIEW_SCORE)}
    return {}


def _last_user_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message_text(message)
    return ""


# --------------------------------------------------------------------------- rate limits


class TokenBucket:
    """A continuously refilled bucket; ``now`` is always passed in so it is testable.

    A cost larger than the whole capacity (say rpm 30 with a 1 s burst: capacity 0.5
    requests) is admitted when the bucket is full and leaves it in debt, so the long-run
    rate still holds instead of such a request never fitting.
    """

    def __init__(self, per_minute: float, burst_seconds: float, now: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = self.rate * burst_seconds
        self.level = self.capacity
        self._stamp = now

    def refill(self, now: float) -> None:
        """Add what flowed in since the last call."""
        if now > self._stamp:
            self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
            self._stamp = now

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` fits (0: it fits now). Does not charge."""
        self.refill(now)
        need = min(cost, self.capacity)
        # The tolerance keeps float rounding from bouncing a client that waited exactly.
        if self.level >= need - 1e-9:
            return 0.0
        return (need - self.level) / self.rate

    def take(self, cost: float, now: float) -> None:
        """Charge ``cost`` (call after :meth:`wait_for` returned 0)."""
        self.refill(now)
        self.level -= cost

    def remaining(self) -> int:
        """Whole units left in the bucket (what ``x-ratelimit-remaining-*`` reports)."""
        return max(0, math.floor(self.level + 1e-9))

    def reset_after(self) -> float:
        """Seconds until the bucket is full again (``x-ratelimit-reset-*``)."""
        return max(0.0, (self.capacity - self.level) / self.rate)

    def reconfigure(self, per_minute: float, burst_seconds: float, now: float) -> None:
        """Change the limit at runtime, keeping what is left (clamped to the new capacity)."""
        self.refill(now)
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = self.rate * burst_seconds
        self.level = min(self.level, self.capacity)


def format_reset(seconds: float) -> str:
    """OpenAI's duration format for ``x-ratelimit-reset-*``: ``120ms``, ``1s``, ``6m0s``."""
    millis = math.ceil(seconds * 1000 - 1e-6)
    if millis <= 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _number_text(value: float) -> str:
    """``1.0`` -> ``"1"``, ``0.25`` -> ``"0.25"`` (header values)."""
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Everything that can be changed at runtime. Frozen: a request takes one snapshot
    at arrival, so a change mid-request never gives it half old, half new settings."""

    latency: float = 0.0
    jitter: float = 0.0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 30.0
    rpm: float | None = None
    tpm: float | None = None
    burst_seconds: float = 1.0
    required_key: str | None = None
    models: frozenset[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (``models`` as a sorted list)."""
        data = asdict(self)
        data["models"] = sorted(self.models) if self.models is not None else None
        return data


SETTING_NAMES = tuple(f.name for f in fields(Settings))
_RATES = ("fail_rate", "drop_rate", "slow_rate")
_DURATIONS = ("latency", "jitter", "slow_seconds")


def _normalise(name: str, value: Any) -> Any:
    """Validate one setting; raise ValueError with a readable message."""
    if name in _RATES:
        number = float(value)
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        return number
    if name in _DURATIONS:
        number = float(value)
        if number < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return number
    if name == "burst_seconds":
        number = float(value)
        if number <= 0:
            raise ValueError(f"burst_seconds must be > 0, got {value!r}")
        return number
    if name in ("rpm", "tpm"):
        if value is None:
            return None
        number = float(value)
        if number < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return number or None  # 0 means "no limit", like None
    if name == "required_key":
        return str(value) if value else None
    if name == "models":
        if value is None:
            return None
        if isinstance(value, str):
            value = [m for m in value.split(",") if m.strip()]
        return frozenset(str(m).strip() for m in cast("Iterable[Any]", value))
    raise ValueError(f"unknown setting {name!r}; known: {', '.join(SETTING_NAMES)}, seed")


T = TypeVar("T")


class _Setting(Generic[T]):
    """``server.latency = 0.2`` goes through :meth:`FakeOpenAI.configure` (validated,
    locked); reading gives the current value."""

    name: str

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: FakeOpenAI | None, objtype: type | None = None) -> T:
        if obj is None:
            return cast("T", self)
        return cast("T", getattr(obj.settings, self.name))

    def __set__(self, obj: FakeOpenAI, value: T) -> None:
        obj.configure(**{self.name: value})


# --------------------------------------------------------------------------- the server


# Marks the threads answering a chat request (see FakeOpenAI._settle).
_handling = threading.local()


@dataclass
class _Arrival:
    """What a request decides under the lock as it arrives."""

    record: RequestRecord
    settings: Settings
    draws: tuple[float, float, float, float]  # jitter, fail, drop, slow
    wake: threading.Event


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 with controllable latency and faults.

    Settings (keyword arguments, attributes, :meth:`configure` or ``POST /_admin/config``):
    ``latency``, ``jitter``, ``fail_rate``, ``drop_rate``, ``slow_rate``, ``slow_seconds``,
    ``rpm``, ``tpm``, ``burst_seconds``, ``required_key``, ``models``; ``seed`` re-seeds
    the random source.

    Order of checks for a chat completion: bad JSON (400), API key (401), model (404),
    storm (429), rate-limit buckets (429): all answered at once, like a gateway would.
    An admitted request then picks its delay (``slow_seconds`` for a slow one, else
    ``latency`` ± ``jitter``), asks the responder, sleeps, and only then fails
    (``fail_next``/``fail_rate``) or drops (``drop_next``/``drop_rate``) if chosen, the way
    an upstream fails after working on a request for a while.
    """

    latency: _Setting[float] = _Setting()
    jitter: _Setting[float] = _Setting()
    fail_rate: _Setting[float] = _Setting()
    drop_rate: _Setting[float] = _Setting()
    slow_rate: _Setting[float] = _Setting()
    slow_seconds: _Setting[float] = _Setting()
    rpm: _Setting[float | None] = _Setting()
    tpm: _Setting[float | None] = _Setting()
    burst_seconds: _Setting[float] = _Setting()
    required_key: _Setting[str | None] = _Setting()
    models: _Setting[frozenset[str] | None] = _Setting()

    def __init__(
        self,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        seed: int | None = None,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        slow_rate: float = 0.0,
        slow_seconds: float = 30.0,
        rpm: float | None = None,
        tpm: float | None = None,
        burst_seconds: float = 1.0,
        required_key: str | None = None,
        models: Iterable[str] | None = None,
        port: int = 0,
        responder: Responder | None = None,
    ) -> None:
        self._lock = threading.Lock()
        # Notified when the last request in flight is logged (see _settle).
        self._idle = threading.Condition(self._lock)
        self._settings = Settings()
        self._seed = seed
        self._rng = random.Random(seed)
        self._requests_bucket: TokenBucket | None = None
        self._tokens_bucket: TokenBucket | None = None
        self.configure(
            latency=latency,
            jitter=jitter,
            fail_rate=fail_rate,
            drop_rate=drop_rate,
            slow_rate=slow_rate,
            slow_seconds=slow_seconds,
            rpm=rpm,
            tpm=tpm,
            burst_seconds=burst_seconds,
            required_key=required_key,
            models=models,
        )
        #: ``(body, record) -> str | Reply``; replace it at any time.
        self.responder: Responder = responder or default_responder
        #: ``/v1/files`` and ``/v1/batches`` (see :mod:`tests.fake_batches`).
        self.batches = FakeBatches(answer=self._batch_answer)
        self._port = port
        self._log: list[RequestRecord] = []
        self._next_index = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._storms: deque[float] = deque()
        self._unavailable = 0
        #: Prompts seen so far, for ``usage.prompt_tokens_details.cached_tokens``.
        self._prompts: deque[str] = deque(maxlen=256)
        self._failures: deque[int] = deque()
        self._drops = 0
        self._bad: deque[str] = deque()
        # Set to wake every sleeping request at once (stop, down); replaced after a down.
        self._wake = threading.Event()
        self._connections: set[socket.socket] = set()
        # Lifecycle: serialised so stop/down/up never interleave.
        self._life = threading.Condition(threading.Lock())
        self._httpd: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._serving = False
        self._stopped = False
        self._down_until = 0.0
        self._reopen_thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeOpenAI:
        """Bind 127.0.0.1 (port 0 picks a free one) and serve in a daemon thread.

        Idempotent while running; a stopped server cannot start again (make a new one).
        """
        with self._life:
            if self._stopped:
                raise RuntimeError("this server was stopped; create a new FakeOpenAI")
            if self._httpd is not None:
                return self
            self._httpd = _Server((HOST, self._port), _Handler, fake=self)
            self._port = self._httpd.server_address[1]
            self._serve()
        return self

    def stop(self) -> None:
        """Stop serving and cut every connection; sleeping requests wake and give up."""
        with self._life:
            if self._httpd is None or self._stopped:
                return
            self._stopped = True
            self._life.notify_all()  # a pending reopen after down_for gives up
            self._unserve()
            self._httpd.server_close()
            self._cut_connections()
        reopen = self._reopen_thread
        if reopen is not None and reopen is not threading.current_thread():
            reopen.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def down_for(self, seconds: float) -> None:
        """Refuse connections for ``seconds``, then serve again on the same port.

        Closes the listening socket (new connections get "connection refused") and cuts
        open keep-alive connections and requests in progress, like a crashed server;
        a later ``down_for`` while down extends the outage. Returns once the port is closed.
        """
        self._down(seconds, spare=None)

    def _down(self, seconds: float, spare: socket.socket | None) -> None:
        """:meth:`down_for`, sparing one connection (the admin request asking for it)."""
        with self._life:
            if self._httpd is None or self._stopped:
                raise RuntimeError("the server is not running")
            self._down_until = max(self._down_until, time.monotonic() + seconds)
            if self._serving:
                self._unserve()
                self._httpd.socket.close()
                self._cut_connections(spare)
            if self._reopen_thread is None or not self._reopen_thread.is_alive():
                self._reopen_thread = threading.Thread(
                    target=self._reopen_when_due, name="fake-openai-reopen", daemon=True
                )
                self._reopen_thread.start()
            else:
                self._life.notify_all()

    def up(self) -> None:
        """End a :meth:`down_for` outage now."""
        with self._life:
            self._down_until = 0.0
            self._life.notify_all()
        thread = self._reopen_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    @property
    def is_down(self) -> bool:
        """True during a :meth:`down_for` outage."""
        return self._httpd is not None and not self._stopped and not self._serving

    def _reopen_when_due(self) -> None:
        with self._life:
            while not self._stopped:
                remaining = self._down_until - time.monotonic()
                if remaining <= 0:
                    break
                self._life.wait(remaining)
            if self._stopped or self._httpd is None:
                return
            # Re-bind the same port; SO_REUSEADDR (allow_reuse_address) lets it through
            # the TIME_WAIT of the connections we just cut. Retry briefly in the unlikely
            # case another process grabbed the port meanwhile.
            httpd = self._httpd
            for _attempt in range(50):
                try:
                    httpd.socket = socket.socket(httpd.address_family, httpd.socket_type)
                    httpd.server_bind()
                    httpd.server_activate()
                    break
                except OSError:
                    httpd.socket.close()
                    self._life.wait(0.1)
                    if self._stopped:
                        return
            else:
                return
            self._serve()

    def _serve(self) -> None:
        """Start the accept loop (holding ``_life``)."""
        assert self._httpd is not None
        self._wake = threading.Event()
        self._serve_thread = threading.Thread(
            # A short poll interval only bounds how long shutdown()/down_for() wait.
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai-accept",
            daemon=True,
        )
        self._serve_thread.start()
        self._serving = True

    def _unserve(self) -> None:
        """Stop the accept loop and wake sleepers (holding ``_life``)."""
        assert self._httpd is not None
        if self._serving:
            self._httpd.shutdown()
            if self._serve_thread is not None:
                # Joined before the socket is closed: a loop that had not started yet
                # would otherwise select() on a closed socket.
                self._serve_thread.join()
            self._serving = False
        self._wake.set()

    def _cut_connections(self, spare: socket.socket | None = None) -> None:
        with self._lock:
            connections = [c for c in self._connections if c is not spare]
        for connection in connections:
            # shutdown() (not close()) from another thread: the handler thread still owns
            # the socket object and closes it itself once its read returns EOF.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._settle()

    def _settle(self, timeout: float = 2.0) -> None:
        """Wait until the requests just cut off are logged.

        They wake at once (their sleep is an Event that is now set), but log from their
        own threads; waiting here means that after ``stop()`` or ``down_for()`` returns,
        ``log`` is complete. Bounded, in case a responder is stuck in user code, and a
        request whose own responder called us does not wait for itself.
        """
        own = 1 if getattr(_handling, "chat", False) else 0
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight <= own, timeout=timeout)

    def _track(self, connection: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # ----------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (admin endpoints live here)."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``openai.OpenAI(base_url=...)``."""
        return f"{self.root_url}/v1"

    # ----------------------------------------------------------------- settings

    @property
    def settings(self) -> Settings:
        """The current settings (an immutable snapshot)."""
        return self._settings

    def configure(self, **changes: Any) -> Settings:
        """Change any settings (and ``seed``) atomically; all are validated first."""
        seed_given = "seed" in changes
        seed = changes.pop("seed", None)
        values = {name: _normalise(name, value) for name, value in changes.items()}
        if seed_given and seed is not None and not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        with self._lock:
            new = replace(self._settings, **values)
            now = time.monotonic()
            self._requests_bucket = _updated_bucket(
                self._requests_bucket, new.rpm, new.burst_seconds, now
            )
            self._tokens_bucket = _updated_bucket(
                self._tokens_bucket, new.tpm, new.burst_seconds, now
            )
            self._settings = new
            if seed_given:
                self._seed = seed
                self._rng.seed(seed)
            return new

    def config_json(self) -> dict[str, Any]:
        """Settings plus ``seed`` as JSON (what ``/_admin/config`` returns)."""
        data = self._settings.to_json()
        data["seed"] = self._seed
        return data

    # ----------------------------------------------------------------- faults

    def storm(self, count: int, retry_after: float = 1.0) -> None:
        """The next ``count`` requests get 429 with ``retry-after: retry_after``."""
        with self._lock:
            self._storms.extend([float(retry_after)] * count)

    def _batch_answer(self, body: dict[str, Any]) -> str:
        """A batch line's answer: what the responder gives a live request."""
        answer = self.responder(body, RequestRecord(index=-1, start=time.monotonic()))
        return answer.content or "" if isinstance(answer, Reply) else str(answer)

    def unavailable_next(self, count: int) -> None:
        """The next ``count`` requests get flex processing's 429 "Resource Unavailable"
        (no ``retry-after``): the service has no capacity, no limit was reached."""
        with self._lock:
            self._unavailable += int(count)

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next ``count`` admitted requests fail with ``status`` after their latency."""
        with self._lock:
            self._failures.extend([int(status)] * count)

    def drop_next(self, count: int) -> None:
        """The next ``count`` admitted requests lose their connection mid-response."""
        with self._lock:
            self._drops += count

    def bad_next(self, count: int, kind: str) -> None:
        """The next ``count`` successful answers come back spoiled as ``kind`` (one of
        :data:`BAD_REPLIES`): a 200 that is cut off, filtered, refused, null, blank or
        has no choices. Their ``outcome`` in the log is ``kind``."""
        if kind not in BAD_REPLIES:
            raise ValueError(f"unknown bad reply {kind!r}; known: {', '.join(BAD_REPLIES)}")
        with self._lock:
            self._bad.extend([kind] * int(count))

    def _take_bad(self) -> str | None:
        with self._lock:
            return self._bad.popleft() if self._bad else None

    # ----------------------------------------------------------------- log

    @property
    def log(self) -> list[RequestRecord]:
        """Finished requests in arrival order (a copy)."""
        with self._lock:
            records = list(self._log)
        records.sort(key=lambda r: r.index)
        return records

    def records(
        self,
        stage: str | None = None,
        status: int | None = None,
        *,
        outcome: str | None = None,
    ) -> list[RequestRecord]:
        """Finished requests, filtered by any of stage, status and outcome (None: any)."""
        return [
            r
            for r in self.log
            if (stage is None or r.stage == stage)
            and (status is None or r.status == status)
            and (outcome is None or r.outcome == outcome)
        ]

    def count(
        self,
        stage: str | None = None,
        status: int | None = None,
        *,
        outcome: str | None = None,
    ) -> int:
        """How many finished requests match (see :meth:`records`)."""
        return len(self.records(stage, status, outcome=outcome))

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Most requests handled at once since start or the last :meth:`reset`."""
        return self._max_in_flight

    def reset(self) -> None:
        """Clear the log, counters and pending faults; refill the buckets; re-seed.

        After a reset the same sequence of requests gets the same delays and faults.
        """
        with self._lock:
            self._log.clear()
            self._next_index = 0
            self._max_in_flight = self._in_flight
            self._storms.clear()
            self._unavailable = 0
            self._prompts.clear()
            self._failures.clear()
            self._drops = 0
            self._bad.clear()
            self._rng.seed(self._seed)
            now = time.monotonic()
            settings = self._settings
            self._requests_bucket = _updated_bucket(None, settings.rpm, settings.burst_seconds, now)
            self._tokens_bucket = _updated_bucket(None, settings.tpm, settings.burst_seconds, now)

    def log_json(self, *, since: int = 0, include_body: bool = True) -> dict[str, Any]:
        """What ``GET /_admin/log`` returns."""
        return {
            "records": [r.to_json(include_body=include_body) for r in self.log if r.index >= since],
            "max_in_flight": self._max_in_flight,
            "in_flight": self._in_flight,
        }

    # ----------------------------------------------------------------- request bookkeeping

    def _arrive(self, path: str, headers: dict[str, str]) -> _Arrival:
        with self._lock:
            record = RequestRecord(
                index=self._next_index,
                start=time.monotonic(),
                stage=headers.get("x-aigen-stage"),
                path=path,
                headers=headers,
            )
            self._next_index += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            # Four draws for every request, used or not, so the sequence of delays and
            # faults depends only on the seed and the order of arrival.
            rng = self._rng
            draws = (rng.random(), rng.random(), rng.random(), rng.random())
            return _Arrival(record, self._settings, draws, self._wake)

    def _depart(self, record: RequestRecord) -> None:
        """Log a request as answered (called just before the answer is written)."""
        record.end = time.monotonic()
        with self._lock:
            self._in_flight -= 1
            self._log.append(record)
            if self._in_flight == 0:
                self._idle.notify_all()

    def _take_unavailable(self) -> bool:
        with self._lock:
            if self._unavailable <= 0:
                return False
            self._unavailable -= 1
            return True

    def cached_prompt_tokens(self, prompt: str) -> int:
        """Tokens of ``prompt`` a provider's prompt cache would serve, as OpenAI counts
        them: the longest prefix shared with an earlier prompt, in blocks of 128 tokens,
        once it reaches 1024 tokens (4 characters a token, like ``prompt_tokens``)."""
        with self._lock:
            earlier = list(self._prompts)
            self._prompts.append(prompt)
        # Character by character is what is wanted here: a prompt cache matches text.
        prefixes = (os.path.commonprefix([prompt, seen]) for seen in earlier)  # noqa: RUF071
        shared = max((len(prefix) for prefix in prefixes), default=0)
        tokens = shared // 4
        return 0 if tokens < 1024 else tokens - tokens % 128

    def _take_storm(self) -> float | None:
        with self._lock:
            return self._storms.popleft() if self._storms else None

    def _admit(self, cost: int) -> tuple[float, str, dict[str, str]]:
        """Charge both buckets, or neither: ``(wait, limited_by, headers)``.

        ``wait`` is 0 when admitted, else the seconds until this request would fit.
        """
        with self._lock:
            now = time.monotonic()
            wait, limited_by = 0.0, ""
            for kind, bucket, amount in (
                ("requests", self._requests_bucket, 1),
                ("tokens", self._tokens_bucket, cost),
            ):
                if bucket is not None:
                    needed = bucket.wait_for(amount, now)
                    if needed > wait:
                        wait, limited_by = needed, kind
            if wait == 0.0:
                if self._requests_bucket is not None:
                    self._requests_bucket.take(1, now)
                if self._tokens_bucket is not None:
                    self._tokens_bucket.take(cost, now)
            return wait, limited_by, self._limit_headers_locked(now)

    def _limit_headers(self) -> dict[str, str]:
        with self._lock:
            return self._limit_headers_locked(time.monotonic())

    def _limit_headers_locked(self, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for kind, bucket in (("requests", self._requests_bucket), ("tokens", self._tokens_bucket)):
            if bucket is None:
                continue
            bucket.refill(now)
            headers[f"x-ratelimit-limit-{kind}"] = _number_text(bucket.per_minute)
            headers[f"x-ratelimit-remaining-{kind}"] = str(bucket.remaining())
            headers[f"x-ratelimit-reset-{kind}"] = format_reset(bucket.reset_after())
        return headers

    def _plan_fault(self, settings: Settings, draws: tuple[float, ...]) -> tuple[bool, int | None]:
        """``(drop, fail_status)`` for an admitted request; explicit helpers come first."""
        _jitter, fail_draw, drop_draw, _slow = draws
        with self._lock:
            if self._drops:
                self._drops -= 1
                return True, None
            if self._failures:
                return False, self._failures.popleft()
        if drop_draw < settings.drop_rate:
            return True, None
        if fail_draw < settings.fail_rate:
            return False, 500
        return False, None


def _updated_bucket(
    bucket: TokenBucket | None, per_minute: float | None, burst_seconds: float, now: float
) -> TokenBucket | None:
    if not per_minute:
        return None
    if bucket is None:
        return TokenBucket(per_minute, burst_seconds, now)  # a new limit starts full
    bucket.reconfigure(per_minute, burst_seconds, now)
    return bucket


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Handler threads may sleep for a long time; never join them on close.
    block_on_close = False
    # SO_REUSEADDR: re-binding the same port after down_for() must not hit TIME_WAIT.
    allow_reuse_address = True
    # The default backlog of 5 overflows when 30 client threads connect at once, and an
    # overflowed SYN costs the client a 1 s retransmit: a benchmark artefact.
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        fake: FakeOpenAI,
    ) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can take
        # seconds in a sandbox; we know the name already.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients vanishing (timeouts, cut connections) are normal here; print real bugs.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the openai SDK reuses connections
    server_version = "fake-openai/1.0"
    sys_version = ""
    # Each response is one write; without this a split write could wait for a
    # delayed ACK (40 ms) on some stacks.
    disable_nagle_algorithm = True
    server: _Server
    # The chat request being answered: logged just *before* its answer is written, so a
    # client that has its answer always finds the request in ``server.log``.
    _open_record: RequestRecord | None = None

    # ---------------------------------------------------------------- plumbing

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.fake._track(self.connection, add=False)
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default one-line-per-request stderr log."""

    def _close_record(self) -> None:
        if self._open_record is not None:
            self.server.fake._depart(self._open_record)
            self._open_record = None

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            if self.command == "POST":
                # No length (chunked is not supported): we cannot find the next request.
                self.close_connection = True
            return b""
        try:
            return self.rfile.read(int(length))
        except ValueError:
            self.close_connection = True
            return b""

    def _send(
        self,
        status: int,
        payload: bytes,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Status line, headers and body in one write."""
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(payload)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._close_record()
        self.wfile.write(head + payload)

    def _send_any(self, status: int, data: Any) -> None:
        """Bytes as they are (a file's content), anything else as JSON."""
        if isinstance(data, bytes):
            self._send(status, data, None)
        else:
            self._send_json(status, data)

    def _send_json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), headers)

    def _send_error(
        self,
        status: int,
        message: str,
        error_type: str,
        code: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        error = {"message": message, "type": error_type, "param": None, "code": code}
        self._send_json(status, {"error": error}, headers)

    def _drop(self) -> None:
        """Send a status line and part of the headers, then reset the connection."""
        self.close_connection = True
        self._close_record()
        try:
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4"
            )
            # Linger 0: close() sends RST instead of FIN, an abrupt end like a crashed
            # proxy. The rfile keeps a reference to the socket; closing it first makes
            # close() release the descriptor now rather than at the end of the handler.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass

    # ---------------------------------------------------------------- routes

    def do_GET(self) -> None:
        path = urlsplit(self.path)
        raw = self._read_body()
        fake = self.server.fake
        if path.path.startswith(("/v1/files", "/v1/batches")):
            fake.batches.handle("GET", path.path, raw, self.headers, self._send_any)
        elif path.path == "/_admin/log":
            query = parse_qs(path.query)
            since = int(query.get("since", ["0"])[0])
            bodies = query.get("bodies", ["1"])[0] not in ("0", "false", "no")
            self._send_json(200, fake.log_json(since=since, include_body=bodies))
        elif path.path == "/_admin/config":
            self._send_json(200, fake.config_json())
        elif path.path.rstrip("/") == "/v1/models":
            if not self._authorised(fake.settings):
                return
            names = sorted(fake.settings.models or {"fake-model"})
            data = [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, f"Unknown path {path.path}", "invalid_request_error", None)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        raw = self._read_body()
        if path == "/v1/chat/completions":
            self._chat(raw)
        elif path.startswith(("/v1/files", "/v1/batches")):
            self.server.fake.batches.handle("POST", path, raw, self.headers, self._send_any)
        elif path.startswith("/_admin/"):
            self._admin(path, raw)
        else:
            self._send_error(404, f"Unknown path {path}", "invalid_request_error", None)

    def _admin(self, path: str, raw: bytes) -> None:
        fake = self.server.fake
        try:
            payload = json.loads(raw or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            if path == "/_admin/config":
                fake.configure(**payload)
                self._send_json(200, fake.config_json())
            elif path == "/_admin/reset":
                fake.reset()
                self._send_json(200, {"ok": True})
            elif path == "/_admin/fault":
                self._fault(payload)
            else:
                self._send_error(404, f"Unknown path {path}", "invalid_request_error", None)
        except (ValueError, TypeError) as error:
            self._send_error(400, str(error), "invalid_request_error", None)

    def _fault(self, payload: dict[str, Any]) -> None:
        """``{"storm": {"count", "retry_after"}, "fail_next": {"count", "status"},
        "drop_next": n, "bad_next": {"count", "kind"}, "down_for": seconds}``, any
        combination."""
        fake = self.server.fake
        unknown = set(payload) - {"storm", "fail_next", "drop_next", "bad_next", "down_for"}
        if unknown:
            raise ValueError(f"unknown faults: {', '.join(sorted(unknown))}")
        if "storm" in payload:
            fake.storm(**payload["storm"])
        if "fail_next" in payload:
            fake.fail_next(**payload["fail_next"])
        if "drop_next" in payload:
            fake.drop_next(int(payload["drop_next"]))
        if "bad_next" in payload:
            fake.bad_next(**payload["bad_next"])
        down = payload.get("down_for")
        if down is not None:
            # Down before answering, so the caller's next request surely finds it down;
            # this connection is spared for the answer, then closed.
            fake._down(float(down), spare=self.connection)
            self.close_connection = True
        self._send_json(200, {"ok": True})

    # ---------------------------------------------------------------- chat completions

    def _authorised(self, settings: Settings, record: RequestRecord | None = None) -> bool:
        """Check the bearer key; answer 401 (never quoting the key) when it is wrong."""
        if settings.required_key is None:
            return True
        header = self.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if given == settings.required_key:
            return True
        message = (
            "Incorrect API key provided."
            if given
            else "You didn't provide an API key. Provide it as 'Authorization: Bearer KEY'."
        )
        if record is not None:
            record.status, record.outcome = 401, "401"
        self._send_error(401, message, "invalid_request_error", "invalid_api_key")
        return False

    def _chat(self, raw: bytes) -> None:
        fake = self.server.fake
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = "Bearer ***"
        arrival = fake._arrive("/v1/chat/completions", headers)
        self._open_record = arrival.record
        _handling.chat = True
        try:
            self._answer_chat(raw, arrival)
        except OSError:
            # Writing failed: the client left (timeout) or the connection was cut.
            if arrival.record.outcome not in ("dropped", "aborted"):
                arrival.record.outcome = "client_gone"
            self.close_connection = True
        finally:
            _handling.chat = False
            self._close_record()  # when no answer was written (aborted, write failed)

    def _answer_chat(self, raw: bytes, arrival: _Arrival) -> None:
        fake = self.server.fake
        record, settings = arrival.record, arrival.settings
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            record.status, record.outcome = 400, "400"
            message = "We could not parse the JSON body of your request."
            self._send_error(400, message, "invalid_request_error", None, fake._limit_headers())
            return
        record.body = body
        model = body.get("model")
        record.model = model if isinstance(model, str) else None
        record.prompt_tokens = count_prompt_tokens(body)

        if not self._authorised(settings, record):
            return
        if settings.models is not None and record.model not in settings.models:
            record.status, record.outcome = 404, "404"
            self._send_error(
                404,
                f"The model `{record.model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
                fake._limit_headers(),
            )
            return

        if fake._take_unavailable():
            record.status, record.outcome = 429, "unavailable"
            self._send_error(
                429,
                "Resource Unavailable: flex processing has no capacity right now.",
                "invalid_request_error",
                "resource_unavailable",
            )
            return
        storm = fake._take_storm()
        if storm is not None:
            self._too_many(record, storm, "storm", fake._limit_headers(), None)
            return
        cost = record.prompt_tokens + requested_max_tokens(body)
        wait, limited_by, limit_headers = fake._admit(cost)
        if wait > 0:
            self._too_many(record, wait, "429", limit_headers, limited_by)
            return
        record.charged_tokens = cost

        jitter_draw, _fail, _drop, slow_draw = arrival.draws
        if slow_draw < settings.slow_rate:
            delay = settings.slow_seconds
        else:
            spread = settings.jitter * (2.0 * jitter_draw - 1.0)
            delay = max(0.0, settings.latency * (1.0 + spread))
        drop, fail_status = fake._plan_fault(settings, arrival.draws)

        try:
            answer = fake.responder(body, record)
        except Exception as error:
            record.status, record.outcome = 500, "error"
            message = f"responder failed: {type(error).__name__}: {error}"
            self._send_error(500, message, "server_error", None, limit_headers)
            return
        reply = answer if isinstance(answer, Reply) else Reply(content=str(answer))
        if reply.delay is not None:
            delay = max(0.0, reply.delay)
        record.delay = delay

        if delay > 0:
            started = time.monotonic()
            interrupted = arrival.wake.wait(delay)
            record.latency_slept = time.monotonic() - started
            if interrupted:  # stop() or down_for(): the server "crashed" mid-request
                record.outcome = "aborted"
                self.close_connection = True
                return

        if drop:
            record.outcome = "dropped"
            self._drop()
            return
        if fail_status is not None:
            record.status, record.outcome = fail_status, str(fail_status)
            self._send_error(
                fail_status,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
                limit_headers,
            )
            return
        headers = {**limit_headers, "x-request-id": f"req_fake_{record.index}", **reply.headers}
        if reply.status != 200:
            record.status, record.outcome = reply.status, str(reply.status)
            error_type = "server_error" if reply.status >= 500 else "invalid_request_error"
            self._send_error(reply.status, reply.content or "", error_type, None, headers)
            return
        bad = fake._take_bad()
        if bad is not None:
            reply = bad_reply(bad, reply)
        self._complete(record, body, reply, headers)
        if bad is not None:
            record.outcome = bad

    def _too_many(
        self,
        record: RequestRecord,
        wait: float,
        outcome: str,
        headers: dict[str, str],
        limited_by: str | None,
    ) -> None:
        # Round up to the millisecond: a client that waits exactly what it is told must
        # find room, never be bounced again by a rounding error.
        millis = math.ceil(wait * 1000 - 1e-6)
        record.status, record.outcome, record.retry_after = 429, outcome, millis / 1000
        headers = {
            **headers,
            "retry-after": _number_text(millis / 1000),
            "retry-after-ms": str(millis),
        }
        if limited_by:
            message = (
                f"Rate limit reached for {limited_by} per min. "
                f"Please try again in {format_reset(wait)}."
            )
        else:
            message = "Rate limit reached (simulated storm). Please try again later."
            limited_by = "requests"
        self._send_error(429, message, limited_by, "rate_limit_exceeded", headers)

    def _complete(
        self, record: RequestRecord, body: dict[str, Any], reply: Reply, headers: dict[str, str]
    ) -> None:
        content = reply.content
        record.completion_tokens = count_completion_tokens(content or "")
        prompt = "".join(message_text(m) for m in body.get("messages") or [])
        record.cached_tokens = self.server.fake.cached_prompt_tokens(prompt)
        usage = {
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "total_tokens": record.prompt_tokens + record.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": record.cached_tokens},
        }
        common = {
            "id": f"chatcmpl-fake{record.index}",
            "created": int(time.time()),
            "model": record.model,
            "system_fingerprint": "fp_fake",
        }
        record.status, record.outcome, record.response_text = 200, "ok", content
        if body.get("stream"):
            # One content chunk is enough for a client; Content-Length keeps it simple.
            options = body.get("stream_options")
            include_usage = isinstance(options, Mapping) and options.get("include_usage")
            chunks: list[dict[str, Any]] = [
                {
                    **common,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": content},
                            "finish_reason": None,
                        }
                    ],
                },
                {
                    **common,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}],
                },
            ]
            if reply.no_choices:
                chunks = [{**chunk, "choices": []} for chunk in chunks]
            if include_usage:
                chunks.append(
                    {**common, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                )
            events = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks)
            payload = (events + "data: [DONE]\n\n").encode("utf-8")
            self._send(200, payload, headers, content_type="text/event-stream")
            return
        completion = {
            **common,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": reply.refusal},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ]
            if not reply.no_choices
            else [],
            "usage": usage,
        }
        self._send_json(200, completion, headers)


# --------------------------------------------------------------------------- other processes


def admin_call(
    url: str, path: str, payload: Mapping[str, Any] | None = None, timeout: float = 10.0
) -> Any:
    """Call an admin endpoint of a server in another process; returns the decoded JSON.

    ``url`` may be the base URL (``.../v1``) or the root; ``payload`` makes it a POST.
    Example: ``admin_call(url, "/_admin/fault", {"storm": {"count": 5}})``.
    """
    root = url.rstrip("/").removesuffix("/v1")
    if not root.startswith(f"http://{HOST}:"):
        raise ValueError("the fake server only runs on 127.0.0.1")
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        root + path,
        data=data,
        method="GET" if data is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def start_process(
    args: Iterable[str] = (), *, ready_timeout: float = 20.0
) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m tests.fake_server ARGS`` and wait for READY: ``(process, base_url)``.

    The caller owns the process: ``process.terminate(); process.wait()``.
    """
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_server", *args],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    # readline() blocks; a timer kills a child that never gets ready instead of hanging.
    timer = threading.Timer(ready_timeout, process.kill)
    timer.start()
    try:
        line = process.stdout.readline()
    finally:
        timer.cancel()
    if not line.startswith("READY "):
        process.kill()
        process.wait()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return process, line.split(maxsplit=1)[1].strip()


def main(argv: list[str] | None = None) -> int:
    """CLI: serve until SIGTERM/SIGINT; prints ``READY <base_url>`` once listening."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_server", description="Fake OpenAI-compatible server."
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--jitter", type=float, default=0.0, help="fraction of latency, ±")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--slow-rate", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    parser.add_argument("--rpm", type=float, default=0.0, help="requests per minute, 0: none")
    parser.add_argument("--tpm", type=float, default=0.0, help="tokens per minute, 0: none")
    parser.add_argument("--burst-seconds", type=float, default=1.0)
    parser.add_argument("--required-key", default=None)
    parser.add_argument("--models", default=None, help="comma-separated model names")
    options = parser.parse_args(argv)

    server = FakeOpenAI(
        port=options.port,
        latency=options.latency,
        jitter=options.jitter,
        seed=options.seed,
        fail_rate=options.fail_rate,
        drop_rate=options.drop_rate,
        slow_rate=options.slow_rate,
        slow_seconds=options.slow_seconds,
        rpm=options.rpm,
        tpm=options.tpm,
        burst_seconds=options.burst_seconds,
        required_key=options.required_key,
        models=_normalise("models", options.models),
    )
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(f"READY {server.base_url}", flush=True)
    # A timeout so the main thread returns to the interpreter (and runs the signal
    # handler) even if a wait were not interruptible; once a second costs nothing.
    while not done.wait(1.0):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
