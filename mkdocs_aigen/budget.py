"""Prices, and the spending cap a build may not pass (``budget:``, ``max_requests:``).

The cap is checked before every request is sent, retries included, and counts what is
in flight at its most: a request is sent only if the spend so far, plus the most every
request in flight can still cost, plus the most this one can cost (its prompt estimate
and its whole ``max_tokens``) stays within ``budget``. So a build never passes the cap,
whatever the concurrency; the price is that it may stop a little before it. Spending is
counted from the token counts the provider reports, at the input price (a cached-input
discount the provider may give is not known to the engine, so the spend is an upper bound).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Requests a price table would bill, estimated from characters (about 4 per token).
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    #: Input tokens the provider served from its prompt cache (``None``: same as ``input``).
    cached_input: float | None = None


#: OpenAI's published standard-tier prices (USD per million tokens) as of 2025. Override
#: or extend with ``--prices FILE`` (``plan``) or the ``prices:`` option (``budget:``).
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "o3": Price(2.00, 8.00, 0.50),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "o3-mini": Price(1.10, 4.40, 0.55),
}


class PriceError(ValueError):
    """A prices file that cannot be used, with what is wrong."""


def load_prices(path: Path) -> dict[str, Price]:
    """``model: {input: N, output: N, cached_input: N}`` (USD per million tokens) from a
    YAML file; ``cached_input`` is optional."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise PriceError(f"{path}: cannot be read ({error})") from None
    if not isinstance(data, Mapping):
        raise PriceError(f"{path}: expected model: {{input: N, output: N}} per million tokens")
    return {str(model): _price(path, str(model), entry) for model, entry in data.items()}


def _price(path: Path, model: str, entry: Any) -> Price:
    expected = (
        f"{path}: '{model}': expected {{input: N, output: N}} in USD per million tokens "
        "(cached_input: N optional)"
    )
    if not isinstance(entry, Mapping):
        raise PriceError(expected)
    values: dict[str, float] = {}
    for name in ("input", "output", "cached_input"):
        value = entry.get(name)
        if value is None and name == "cached_input":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise PriceError(expected)
        values[name] = float(value)
    return Price(values["input"], values["output"], values.get("cached_input"))


def cost(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
    """US dollars for one request's tokens."""
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    fresh = max(0, prompt_tokens - cached_tokens)
    return (
        fresh * price.input + cached_tokens * cached_rate + completion_tokens * price.output
    ) / 1_000_000


class BudgetReached(Exception):
    """The cap does not allow one more request."""


class Budget:
    """One build's cap; every method is safe to call from any thread."""

    def __init__(self, *, usd: float | None, max_requests: int | None, price: Price | None) -> None:
        self.usd = usd
        self.max_requests = max_requests
        self.price = price
        self._lock = threading.Lock()
        self.spent = 0.0
        self.requests = 0
        self._reserved = 0.0
        #: Whether a request was refused (so the build says so once).
        self.reached = False

    def admit(self, prompt_chars: int, max_tokens: int) -> float:
        """Reserve room for one request and return what was reserved; raises
        :class:`BudgetReached` when the cap has no room for it."""
        most = 0.0
        if self.usd is not None and self.price is not None:
            most = cost(self.price, -(-prompt_chars // CHARS_PER_TOKEN), max_tokens)
        with self._lock:
            if self.reached:
                # Stopped for good: a smaller request that would still fit is not sent
                # either, so what the build did is easy to say in one line.
                raise BudgetReached(self.describe())
            if self.max_requests is not None and self.requests >= self.max_requests:
                self.reached = True
                raise BudgetReached(self.describe())
            if self.usd is not None and self.spent + self._reserved + most > self.usd + 1e-12:
                self.reached = True
                raise BudgetReached(self.describe())
            self.requests += 1
            self._reserved += most
        return most

    def settle(
        self, reserved: float, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
    ) -> None:
        """The request that reserved ``reserved`` ended, having used these tokens (of the
        prompt's, ``cached_tokens`` at the cached rate)."""
        spent = (
            cost(self.price, prompt_tokens, completion_tokens, cached_tokens) if self.price else 0.0
        )
        with self._lock:
            self._reserved -= reserved
            self.spent += spent

    def account(self) -> dict[str, Any]:
        """What the report says of the cap: spent, sent, the caps, whether it stopped."""
        with self._lock:
            return {
                "spent_usd": round(self.spent, 6),
                "budget_usd": self.usd,
                "requests": self.requests,
                "max_requests": self.max_requests,
                "reached": self.reached,
            }

    def stop_message(self, capped: Sequence[str]) -> str:
        """The one error line of a build the cap stopped; ``capped``: the sections left."""
        named = ", ".join(capped[:5]) + (", ..." if len(capped) > 5 else "")
        return (
            f"spending cap reached, no more requests sent: {self.describe()}; "
            f"{len(capped)} section(s) left as placeholders" + (f" ({named})" if capped else "")
        )

    def describe(self) -> str:
        """``spent $0.0123 of the $0.0100 budget`` and/or ``sent 40 of 40 requests``."""
        parts = []
        if self.usd is not None:
            parts.append(f"spent ${self.spent:.4f} of the ${self.usd:.4f} budget")
        if self.max_requests is not None:
            parts.append(f"sent {self.requests} of max_requests {self.max_requests}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Cap:
    """The cap as configured: each build makes a fresh :class:`Budget` of it."""

    usd: float | None
    max_requests: int | None
    #: The configured model's price; ``None`` when requests cost nothing (the embedded model).
    price: Price | None

    def budget(self) -> Budget:
        """A new build's budget, with nothing spent."""
        return Budget(usd=self.usd, max_requests=self.max_requests, price=self.price)


def resolve_cap(
    usd: float | None,
    max_requests: int | None,
    prices_file: Path | None,
    model: str,
    *,
    free: bool,
) -> Cap | None:
    """The configured cap, or ``None`` without one. ``free``: requests go to the embedded
    model, so only ``max_requests`` can bind. Raises :class:`PriceError` naming the option."""
    if usd is None and max_requests is None:
        return None
    if usd is not None and (isinstance(usd, bool) or usd < 0):
        raise PriceError(f"'budget' must be 0 or more US dollars, found {usd}")
    if max_requests is not None and max_requests < 0:
        raise PriceError(f"'max_requests' must be 0 or more, found {max_requests}")
    prices = dict(DEFAULT_PRICES)
    if prices_file is not None:
        try:
            prices.update(load_prices(prices_file))
        except PriceError as error:
            raise PriceError(f"'prices': {error}") from None
    price = None if free else prices.get(model)
    if usd is not None and price is None and not free:
        raise PriceError(
            f"'budget': no price known for model '{model}'; give one in a YAML file named by "
            "'prices' (model: {input: N, output: N} in USD per million tokens)"
        )
    return Cap(usd=usd, max_requests=max_requests, price=price)
