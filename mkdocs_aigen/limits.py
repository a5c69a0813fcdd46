"""Client-side rate limiting for many threads calling one OpenAI-compatible API.

Providers cap requests per minute (RPM) and tokens per minute (TPM) and enforce the
caps over sub-minute windows, so a pool that fires everything at once collects 429
storms while a timid one leaves capacity unused. :class:`RateLimiter` paces
admission with two small token buckets (about one second of capacity each, so
traffic is spread evenly rather than sent as a burst per minute), caps the number
of requests in flight with an adaptive concurrency limit, and learns from every
response: the real token cost, the ``x-ratelimit-*`` headers, and 429 answers.

Typical use from a worker thread::

    est = limiter.estimate(request.prompt_chars(), request.max_tokens)
    permit = limiter.acquire(est, prompt_chars=request.prompt_chars(),
                             max_tokens=request.max_tokens)
    try:
        completion = backend.complete(request, timeout)
    except BackendError as err:
        if err.kind == "throttled":
            limiter.on_throttled(permit, retry_after=err.retry_after, headers=err.headers)
        raise
    else:
        limiter.on_success(permit, headers=completion.headers,
                           prompt_tokens=completion.prompt_tokens,
                           max_tokens=request.max_tokens)
    finally:
        limiter.release(permit)

Only the standard library is needed; ``tiktoken`` is used for token estimates when it
happens to be installed.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "LimiterClosed",
    "Permit",
    "RateLimiter",
    "estimate_prompt_tokens",
    "parse_reset",
]

# Providers count roughly four characters per token when they pre-charge a request
# against the TPM limit, and so does our fallback estimate.
CHARS_PER_TOKEN = 4

# A duration the way OpenAI (Go's time.Duration) writes it: "1s", "120ms", "6m0s",
# "1h2m3.5s". Longer unit names come first so "ms" is not read as minutes + "s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|μs|ns|d|h|m|s)")
_UNIT_SECONDS = {
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ns": 1e-9,
}

_DIMENSIONS = ("requests", "tokens")

# Longest single sleep of a blocked thread before it re-checks. Waits are computed
# exactly, so this only bounds the damage of a huge retry-after or a clock oddity.
_MAX_WAIT = 60.0


class LimiterClosed(Exception):
    """Raised by :meth:`RateLimiter.acquire` once :meth:`RateLimiter.close` was called."""


@dataclass(eq=False)
class Permit:
    """One admitted request: what it was charged and when.

    Hand it back to :meth:`RateLimiter.on_success` or :meth:`RateLimiter.on_throttled`
    and always to :meth:`RateLimiter.release`. Fields after ``acquired_at`` are the
    limiter's bookkeeping.
    """

    #: Tokens currently charged to the token bucket for this request (the estimate,
    #: later corrected to the real cost by ``on_success``).
    tokens: int
    #: Limiter clock time of admission.
    acquired_at: float
    #: Admission order; tells 429s of requests sent before a reaction from new ones.
    seq: int = 0
    prompt_chars: int | None = None
    max_tokens: int | None = None
    #: Whether the request and token buckets existed (and were charged) at admission.
    metered_requests: bool = False
    metered_tokens: bool = False
    settled: bool = False
    released: bool = False


def parse_reset(value: str) -> float | None:
    """Parse an ``x-ratelimit-reset-*`` or ``retry-after`` duration into seconds.

    Accepts Go-style durations (``"1s"``, ``"120ms"``, ``"6m0s"``, ``"1h2m3.5s"``) and
    plain seconds (``"0.5"``). Returns ``None`` for anything else, including
    negative, non-finite and empty values.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    total = 0.0
    pos = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        return None
    return total


@lru_cache(maxsize=1)
def _tiktoken_encoding() -> Any:
    """The tiktoken encoding, or ``None`` when tiktoken is missing or cannot load.

    ``get_encoding`` may need to download its vocabulary; any failure (offline
    build) quietly falls back to the character estimate, once.
    """
    try:
        import tiktoken
    except ImportError:
        return None
    for name in ("o200k_base", "cl100k_base"):
        try:
            return tiktoken.get_encoding(name)
        except Exception:
            continue
    return None


def estimate_prompt_tokens(text_chars: int, text: str | None = None) -> int:
    """Estimate the prompt tokens of a request.

    With ``text`` and an importable ``tiktoken`` (o200k, else cl100k) the text is
    encoded, which costs roughly a millisecond per few thousand tokens; otherwise
    ``ceil(text_chars / 4)``, which is also how providers pre-charge TPM.
    """
    if text is not None:
        encoding = _tiktoken_encoding()
        if encoding is not None:
            try:
                return len(encoding.encode(text, disallowed_special=()))
            except Exception:
                pass
    return -(-max(0, int(text_chars)) // CHARS_PER_TOKEN)


def _number(value: str | None) -> float | None:
    """A finite, non-negative header number, else ``None``."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The rate-limit related headers with lower-case names (plain dicts keep case)."""
    if not headers:
        return {}
    return {
        key.lower(): value
        for key, value in headers.items()
        if isinstance(key, str) and key[:1] in "xXrR" and isinstance(value, str)
    }


class _Bucket:
    """A token bucket in the provider's units (requests or tokens).

    Capacity is about one second of the per-minute limit, because providers enforce
    limits over short windows: a bucket holding a whole minute would let us burst far
    past what the server's own bucket holds. ``stamp`` may lie in the future, which
    freezes refilling until then (the server told us it is empty until that moment).
    """

    __slots__ = ("base", "capacity", "factor", "level", "margin", "rate", "stamp")

    def __init__(self, per_minute: float, margin: float, now: float, *, full: bool) -> None:
        self.base = per_minute
        self.margin = margin
        self.factor = 1.0
        self.rate = 0.0
        self.capacity = 0.0
        self._configure()
        self.level = self.capacity if full else 0.0
        self.stamp = now

    def _configure(self) -> None:
        per_second = self.base / 60.0 * self.factor
        self.rate = per_second * (1.0 - self.margin)
        self.capacity = max(1.0, per_second) * (1.0 - self.margin)

    @property
    def per_minute(self) -> float:
        """The limit we currently aim for, before the safety margin."""
        return self.base * self.factor

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def delay(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` fits (0.0: now); refills first.

        A request bigger than the whole bucket is admitted once the bucket is full
        and drives the level negative, so the average rate still holds and nothing
        can wait forever.
        """
        self.refill(now)
        need = min(amount, self.capacity)
        short = need - self.level
        # Tolerance for float rounding, so a waiter woken exactly on time is admitted.
        if short <= 1e-9 * max(1.0, self.capacity):
            return 0.0
        frozen = self.stamp - now if self.stamp > now else 0.0
        return frozen + short / self.rate

    def add(self, amount: float, now: float) -> None:
        """Charge (negative) or refund (positive), never above capacity."""
        self.refill(now)
        self.level = min(self.capacity, self.level + amount)

    def set_limit(self, per_minute: float, now: float) -> None:
        """Adopt a new per-minute limit; a fresh limit forgets earlier rate cuts."""
        self.refill(now)
        self.base = per_minute
        self.factor = 1.0
        self._configure()
        self.level = min(self.level, self.capacity)

    def set_factor(self, factor: float, now: float) -> None:
        self.refill(now)
        self.factor = factor
        self._configure()
        self.level = min(self.level, self.capacity)

    def drain_until(self, keep: float, until: float, now: float) -> None:
        """Hold at most ``keep`` and refill nothing before ``until``.

        Mirrors a server that answered 429 with "room for this request at ``until``".
        """
        self.refill(now)
        self.level = min(self.level, keep)
        self.stamp = max(self.stamp, until)


class _Waiter:
    """A thread blocked in ``acquire``; parks on its own condition of the shared lock."""

    __slots__ = ("cond",)

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)


class RateLimiter:
    """Paces requests to stay just under RPM/TPM limits and reacts to throttling.

    Admission needs all of: a free concurrency slot (adaptive limit, never above
    ``concurrency``), no active server-imposed pause, one request in the request
    bucket and the estimated tokens in the token bucket. Unset ``rpm``/``tpm`` means
    no pacing in that dimension until the server reports a limit in its
    ``x-ratelimit-limit-*`` headers (then that limit is adopted).

    All state sits behind one lock. Blocked threads queue first-in first-out and
    each parks on its own ``Condition`` of that lock, so a release wakes exactly the
    thread that can use it: only the head of the queue waits with a timeout (the
    computed time until it could be admitted), the rest sleep until they become head.
    A single shared condition with ``notify_all`` would wake every blocked thread for
    every admission, which at high request rates costs more CPU than the requests.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        rpm: float | None = None,
        tpm: float | None = None,
        safety_margin: float = 0.03,
        clock: Callable[[], float] = time.monotonic,
        default_pause: float = 1.0,
        grow_after_successes: int = 10,
        grow_interval: float = 2.0,
        rate_cut: float = 0.9,
    ) -> None:
        """Create a limiter.

        ``safety_margin`` (fraction) is kept free below every limit, configured or
        adopted. ``clock`` returns seconds (monotonic); tests inject a fake one.
        ``default_pause`` is how long a 429 without any hint pauses admission.
        Concurrency grows back by one after ``grow_after_successes`` successes *and*
        ``grow_interval`` seconds without a 429; ``rate_cut`` multiplies configured
        rates once per throttle event (the same quiet stretches undo it gradually).
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0.0 <= safety_margin < 1.0:
            raise ValueError("safety_margin must be in [0, 1)")
        if not 0.0 < rate_cut <= 1.0:
            raise ValueError("rate_cut must be in (0, 1]")
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None")
        self._lock = threading.Lock()
        self._clock = clock
        self._margin = float(safety_margin)
        self._max_concurrency = int(concurrency)
        self._limit = int(concurrency)
        self._in_flight = 0
        now = clock()
        self._buckets: dict[str, _Bucket | None] = {
            "requests": _Bucket(rpm, self._margin, now, full=True) if rpm else None,
            "tokens": _Bucket(tpm, self._margin, now, full=True) if tpm else None,
        }
        # "Paused until construction time" reads as not paused and needs no None checks.
        self._paused_until = now
        # End of the pause set by 429s alone: a 429 arriving before it belongs to the
        # storm already reacted to (pauses from ``remaining: 0`` do not count here).
        self._throttle_until = now
        self._closed = False
        self._waiters: deque[_Waiter] = deque()
        self._seq = 0
        # Permits with seq >= this were admitted after the last reaction to a 429;
        # 429s of older permits belong to the event we already reacted to.
        self._event_seq = 0
        self._throttle_events = 0
        self._throttled_requests = 0
        self._quiet_successes = 0
        self._last_change = now
        self._default_pause = float(default_pause)
        self._grow_after = max(1, int(grow_after_successes))
        self._grow_interval = float(grow_interval)
        self._rate_cut = float(rate_cut)
        # Running chars-per-token ratio, seeded with the 4 chars/token prior at the
        # weight of one small prompt so the first real answers move it quickly.
        self._ratio_chars = 400
        self._ratio_tokens = 100
        # Smoothed latency (admission to answer) and real tokens per request, for the
        # Little's-law floor under the concurrency limit (see ``on_throttled``).
        self._latency: float | None = None
        self._request_tokens: float | None = None

    # ----------------------------------------------------------------- estimates

    def estimate(self, chars: int, max_tokens: int = 0) -> int:
        """Tokens a request will be charged: prompt estimate plus ``max_tokens``.

        The prompt part uses the chars-per-token ratio learned from answers' usage
        (4 chars per token until then), rounded up.
        """
        with self._lock:
            chars_total, tokens_total = self._ratio_chars, self._ratio_tokens
        prompt = -(-max(0, int(chars)) * tokens_total // chars_total)
        return prompt + max(0, int(max_tokens or 0))

    @property
    def chars_per_token(self) -> float:
        """The learned average characters per prompt token."""
        with self._lock:
            return self._ratio_chars / self._ratio_tokens

    # ----------------------------------------------------------------- admission

    def acquire(
        self,
        estimated_tokens: int,
        timeout: float | None = None,
        *,
        prompt_chars: int | None = None,
        max_tokens: int | None = None,
    ) -> Permit:
        """Block until the request may be sent, charge it, and return its permit.

        Waits for a concurrency slot, the end of any server-imposed pause, one
        request in the request bucket and ``estimated_tokens`` in the token bucket.
        Pass ``prompt_chars`` and ``max_tokens`` so ``on_success`` can learn the
        chars-per-token ratio and correct the charge. Raises :class:`LimiterClosed`
        when the limiter is (or gets) closed, :class:`TimeoutError` after
        ``timeout`` seconds of the limiter's clock.
        """
        tokens = max(0, int(estimated_tokens))
        with self._lock:
            if self._closed:
                raise LimiterClosed("rate limiter closed")
            now = self._clock()
            # Fast path: nobody queued and everything free (with no limits configured
            # this is one lock and a few comparisons).
            if not self._waiters and self._delay(tokens, now) == 0.0:
                return self._admit(tokens, now, prompt_chars, max_tokens)
            deadline = None if timeout is None else now + timeout
            waiter = _Waiter(self._lock)
            self._waiters.append(waiter)
            try:
                while True:
                    if self._closed:
                        raise LimiterClosed("rate limiter closed")
                    now = self._clock()
                    wait: float | None = None
                    if self._waiters[0] is waiter:
                        wait = self._delay(tokens, now)
                        if wait == 0.0:
                            return self._admit(tokens, now, prompt_chars, max_tokens)
                    if deadline is not None:
                        left = deadline - now
                        if left <= 0:
                            raise TimeoutError("timed out waiting for the rate limiter")
                        wait = left if wait is None else min(wait, left)
                    # Head: sleep exactly until it could be admitted (or a release /
                    # refund wakes it). Others: sleep until promoted to head.
                    waiter.cond.wait(_MAX_WAIT if wait is None else min(wait, _MAX_WAIT))
            finally:
                if self._waiters and self._waiters[0] is waiter:
                    self._waiters.popleft()
                else:
                    self._waiters.remove(waiter)
                # The next in line computes its own wait now.
                self._wake_head()

    def try_acquire(
        self,
        estimated_tokens: int,
        *,
        prompt_chars: int | None = None,
        max_tokens: int | None = None,
    ) -> Permit | None:
        """Like :meth:`acquire` but never blocks: a permit, or ``None`` if it would wait.

        Also ``None`` while other threads are queued (they come first).
        """
        tokens = max(0, int(estimated_tokens))
        with self._lock:
            if self._closed:
                raise LimiterClosed("rate limiter closed")
            now = self._clock()
            if self._waiters or self._delay(tokens, now) != 0.0:
                return None
            return self._admit(tokens, now, prompt_chars, max_tokens)

    def time_until_admission(self, estimated_tokens: int = 0) -> float:
        """Seconds until a request of ``estimated_tokens`` could be admitted.

        0.0 means now; ``math.inf`` means it waits for a concurrency slot. Ignores
        threads already queued.
        """
        with self._lock:
            wait = self._delay(max(0, int(estimated_tokens)), self._clock())
        return math.inf if wait is None else wait

    def release(self, permit: Permit) -> None:
        """Free the permit's concurrency slot. Call exactly once, in ``finally``;
        repeated calls are ignored."""
        with self._lock:
            if permit.released:
                return
            permit.released = True
            self._in_flight -= 1
            self._wake_head()

    def close(self) -> None:
        """Wake every waiting thread with :class:`LimiterClosed`; later acquires fail too."""
        with self._lock:
            self._closed = True
            for waiter in self._waiters:
                waiter.cond.notify()

    # ----------------------------------------------------------------- feedback

    def on_success(
        self,
        permit: Permit,
        *,
        headers: Mapping[str, str] | None,
        prompt_tokens: int | None,
        max_tokens: int | None,
    ) -> None:
        """Learn from a successful answer.

        Corrects the token charge to ``prompt_tokens + max_tokens`` (what the server
        charged; ``max_tokens`` defaults to the one given to ``acquire``; ``None`` or 0
        prompt tokens mean usage unknown and keep the estimate), updates the
        chars-per-token ratio, reads ``x-ratelimit-*`` headers (a limit lower than
        ours is adopted with the same safety margin; ``remaining`` 0 pauses admission
        until the server has room again) and counts toward growing concurrency back.
        """
        lowered = _lower_headers(headers)
        with self._lock:
            now = self._clock()
            wake = False
            if not permit.settled:
                permit.settled = True
                wake = self._settle_tokens(permit, prompt_tokens, max_tokens, now)
            self._adopt_limits(lowered, now)
            self._pause_if_exhausted(lowered, permit, now)
            self._latency = _smooth(self._latency, max(0.0, now - permit.acquired_at))
            self._request_tokens = _smooth(self._request_tokens, float(permit.tokens))
            if permit.seq >= self._event_seq:
                self._quiet_successes += 1
            wake = self._maybe_grow(now) or wake
            if wake:
                self._wake_head()

    def on_throttled(
        self,
        permit: Permit,
        *,
        retry_after: float | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        """React to a 429.

        Pauses admission for everyone until ``now + retry_after`` (else the
        ``retry-after-ms``/``retry-after`` header, else the reset header of the
        exhausted limit, else ``default_pause``): exactly as long as the server says.
        The request's charge is refunded, but a bucket the server reports (or may
        be) exhausted is held at "room for this one request when the pause ends", as
        the server's is.

        The first 429 of a request admitted after the previous reaction is a new
        *event*; the other 429s of the same storm only extend the pause. An event
        halves the concurrency limit (min 1) and multiplies the paced rates of the
        exhausted limits by ``rate_cut``. When the headers show the 429 was about a
        rate we pace, the halving stops at the slots that rate needs (rate ×
        latency, Little's law, +25 %; no shrinking before the first answer gives a
        latency): fewer slots could only slow a rate-bound pool below the rate we
        already pace to, without avoiding any 429.
        """
        lowered = _lower_headers(headers)
        with self._lock:
            now = self._clock()
            self._throttled_requests += 1
            self._adopt_limits(lowered, now)
            exhausted, evident = self._exhausted(lowered, permit)
            pause = retry_after if retry_after is not None and retry_after >= 0 else None
            if pause is None:
                pause = parse_retry_after(lowered)
            if pause is None:
                resets = [
                    parse_reset(lowered.get(f"x-ratelimit-reset-{dim}", "")) for dim in exhausted
                ]
                known = [r for r in resets if r is not None]
                pause = max(known) if known else self._default_pause
            until = now + pause
            # New event: the request was admitted after our last reaction and the
            # pause that reaction set is over. A storm of simultaneous 429s is one event.
            new_event = permit.seq >= self._event_seq and now >= self._throttle_until
            self._throttle_until = max(self._throttle_until, until)
            self._paused_until = max(self._paused_until, until)
            for dim in _DIMENSIONS:
                bucket = self._buckets[dim]
                if bucket is None:
                    continue
                metered = permit.metered_requests if dim == "requests" else permit.metered_tokens
                need = 1.0 if dim == "requests" else float(permit.tokens)
                if metered and not permit.settled:
                    bucket.add(need, now)  # the server did not charge a refused request
                if dim in exhausted:
                    bucket.drain_until(min(need, bucket.capacity), self._paused_until, now)
                    if new_event:
                        bucket.set_factor(max(0.05, bucket.factor * self._rate_cut), now)
            permit.settled = True
            if new_event:
                self._throttle_events += 1
                limit = max(1, self._limit // 2)
                if any(self._buckets[dim] is not None for dim in evident):
                    # No answer yet, so no latency to size the floor with: the paced
                    # bucket alone handles a rate 429, keep the slots.
                    needed = self._slots_needed()
                    limit = self._limit if needed is None else max(limit, min(self._limit, needed))
                self._limit = limit
                self._event_seq = self._seq
            self._quiet_successes = 0
            self._last_change = now
            # A refund may let the head of the queue in sooner than it planned.
            self._wake_head()

    # ----------------------------------------------------------------- introspection

    @property
    def current_concurrency(self) -> int:
        """The adaptive concurrency limit now in force (1 .. ``concurrency``)."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Permits acquired and not yet released."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Threads blocked in :meth:`acquire`."""
        return len(self._waiters)

    @property
    def throttle_events(self) -> int:
        """429 events reacted to (a storm of simultaneous 429s counts once)."""
        return self._throttle_events

    @property
    def throttled_requests(self) -> int:
        """Every 429 reported through :meth:`on_throttled`."""
        return self._throttled_requests

    @property
    def paused_until(self) -> float:
        """Clock time before which nothing is admitted (in the past: not paused)."""
        return self._paused_until

    @property
    def rpm(self) -> float | None:
        """Requests per minute being paced for (before the margin), ``None`` if unpaced."""
        bucket = self._buckets["requests"]
        return None if bucket is None else bucket.per_minute

    @property
    def tpm(self) -> float | None:
        """Tokens per minute being paced for (before the margin), ``None`` if unpaced."""
        bucket = self._buckets["tokens"]
        return None if bucket is None else bucket.per_minute

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # ----------------------------------------------------------------- internals (locked)

    def _delay(self, tokens: int, now: float) -> float | None:
        """Seconds until admissible; ``None`` when only a freed slot can help."""
        if self._in_flight >= self._limit:
            return None
        wait = self._paused_until - now if self._paused_until > now else 0.0
        requests = self._buckets["requests"]
        if requests is not None:
            wait = max(wait, requests.delay(1.0, now))
        token_bucket = self._buckets["tokens"]
        if token_bucket is not None:
            wait = max(wait, token_bucket.delay(float(tokens), now))
        return wait

    def _admit(
        self, tokens: int, now: float, prompt_chars: int | None, max_tokens: int | None
    ) -> Permit:
        self._in_flight += 1
        seq = self._seq
        self._seq += 1
        requests = self._buckets["requests"]
        if requests is not None:
            requests.level -= 1.0
        token_bucket = self._buckets["tokens"]
        if token_bucket is not None:
            token_bucket.level -= tokens
        return Permit(
            tokens=tokens,
            acquired_at=now,
            seq=seq,
            prompt_chars=prompt_chars,
            max_tokens=max_tokens,
            metered_requests=requests is not None,
            metered_tokens=token_bucket is not None,
        )

    def _wake_head(self) -> None:
        if self._waiters:
            self._waiters[0].cond.notify()

    def _settle_tokens(
        self, permit: Permit, prompt_tokens: int | None, max_tokens: int | None, now: float
    ) -> bool:
        """Replace the estimate with the real charge; True if tokens were refunded."""
        # No real prompt has zero tokens: 0 is how a missing ``usage`` reads
        # (``Completion.prompt_tokens`` defaults to 0), so the estimate stands.
        if prompt_tokens is None or prompt_tokens <= 0:
            return False
        if permit.prompt_chars:
            self._ratio_chars += int(permit.prompt_chars)
            self._ratio_tokens += int(prompt_tokens)
        completion_budget = max_tokens if max_tokens is not None else permit.max_tokens
        if completion_budget is None:
            return False
        actual = int(prompt_tokens) + max(0, int(completion_budget))
        difference = actual - permit.tokens
        permit.tokens = actual
        bucket = self._buckets["tokens"]
        if bucket is None or not permit.metered_tokens or difference == 0:
            return False
        bucket.add(-difference, now)
        return difference < 0

    def _adopt_limits(self, headers: dict[str, str], now: float) -> None:
        """Adopt a server-reported per-minute limit lower than ours (or our none)."""
        for dim in _DIMENSIONS:
            limit = _number(headers.get(f"x-ratelimit-limit-{dim}"))
            if not limit:
                continue
            bucket = self._buckets[dim]
            if bucket is None:
                # We were not pacing this dimension and have probably been sending
                # unpaced, so assume the server's bucket is empty rather than full.
                self._buckets[dim] = _Bucket(limit, self._margin, now, full=False)
            elif limit < bucket.base:
                bucket.set_limit(limit, now)

    def _exhausted(
        self, headers: dict[str, str], permit: Permit
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Which limits a 429 was about.

        Returns (possibly exhausted, evidently exhausted): a dimension is possibly
        exhausted unless its ``remaining`` header shows room for this request, and
        evidently exhausted when that header shows there was none.
        """
        possible: list[str] = []
        evident: list[str] = []
        for dim in _DIMENSIONS:
            remaining = _number(headers.get(f"x-ratelimit-remaining-{dim}"))
            need = 1 if dim == "requests" else permit.tokens
            if remaining is None:
                possible.append(dim)
            elif remaining < need:
                possible.append(dim)
                evident.append(dim)
        return tuple(possible), tuple(evident)

    def _slots_needed(self) -> int | None:
        """Concurrency the paced rates need (Little's law), ``None`` if unknown yet."""
        if self._latency is None:
            return None
        rate = math.inf
        requests = self._buckets["requests"]
        if requests is not None:
            rate = requests.rate
        token_bucket = self._buckets["tokens"]
        if token_bucket is not None and self._request_tokens:
            rate = min(rate, token_bucket.rate / self._request_tokens)
        if math.isinf(rate):
            return None
        return math.ceil(rate * self._latency * 1.25) + 1

    def _pause_if_exhausted(self, headers: dict[str, str], permit: Permit, now: float) -> None:
        """``remaining`` 0 in a response: hold admission until the server has room.

        The reset header may mean "until the window is full again" (OpenAI), which
        is far longer than needed for one more request, so the pause is capped at the
        time the server needs to refill this request's cost at its reported limit.
        """
        for dim in _DIMENSIONS:
            remaining = _number(headers.get(f"x-ratelimit-remaining-{dim}"))
            if remaining is None or remaining > 0:
                continue
            pause = parse_reset(headers.get(f"x-ratelimit-reset-{dim}", ""))
            limit = _number(headers.get(f"x-ratelimit-limit-{dim}"))
            bucket = self._buckets[dim]
            if not limit and bucket is not None:
                limit = bucket.per_minute
            if limit:
                need = 1.0 if dim == "requests" else max(1.0, float(permit.tokens))
                refill = need / (limit / 60.0)
                pause = refill if pause is None else min(pause, refill)
            if pause is not None:
                self._paused_until = max(self._paused_until, now + pause)

    def _maybe_grow(self, now: float) -> bool:
        """After a quiet stretch, win back half the lost slots and part of the rate cuts.

        Half rather than one: a storm can halve concurrency down to 1, and one slot per
        stretch took about a minute to get back to 32 in the soak benchmark, long after
        the server had recovered. Halving the gap returns in about five stretches while
        a still-overloaded server gets to say so (another 429) on the way up.
        """
        cut = [b for b in self._buckets.values() if b is not None and b.factor < 1.0]
        if self._limit >= self._max_concurrency and not cut:
            return False
        if self._quiet_successes < self._grow_after:
            return False
        if now - self._last_change < self._grow_interval:
            return False
        self._quiet_successes = 0
        self._last_change = now
        if self._limit < self._max_concurrency:
            self._limit += max(1, (self._max_concurrency - self._limit) // 2)
        for bucket in cut:
            factor = bucket.factor + (1.0 - self._rate_cut) / 2
            # Snap to 1 so float residue cannot leave a limit cut for good.
            bucket.set_factor(1.0 if factor > 1.0 - 1e-9 else factor, now)
        return True


def _smooth(average: float | None, sample: float, weight: float = 0.1) -> float:
    """Exponentially weighted moving average; the first sample starts it."""
    return sample if average is None else average + weight * (sample - average)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``retry-after`` (seconds), with
    lower-cased header names; the one place that reads them."""
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    # retry-after may also be an HTTP date; that form is not worth parsing here.
    return _number(headers.get("retry-after"))
