"""The ``endpoints:`` option: several OpenAI-compatible endpoints, validated, and the
backend that spreads requests over them (:mod:`mkdocs_aigen.backends.endpoints`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mkdocs_aigen.backends.body import SendOptions
    from mkdocs_aigen.backends.endpoints import EndpointPool

_KEYS = ("base_url", "api_key_env", "model", "rpm", "tpm", "concurrency")


class EndpointError(Exception):
    """An ``endpoints`` entry that cannot work: the field and what is expected."""


@dataclass(frozen=True)
class EndpointSpec:
    """One validated ``endpoints`` entry."""

    base_url: str
    api_key_env: str
    #: What this server calls the configured model.
    model: str
    concurrency: int
    rpm: int | None = None
    tpm: int | None = None


def parse_endpoints(
    value: Any, *, model: str, api_key_env: str, concurrency: int
) -> tuple[EndpointSpec, ...]:
    """Validate ``endpoints``; entries inherit ``model``, ``api_key_env`` and
    ``concurrency`` from the top-level options."""
    if not isinstance(value, list):
        raise EndpointError("'endpoints': expected a list of {base_url: ..., ...} mappings")
    specs = []
    for index, raw in enumerate(value):
        where = f"'endpoints[{index}]"
        if not isinstance(raw, Mapping):
            raise EndpointError(f"{where}': expected a mapping with at least 'base_url'")
        unknown = sorted(str(k) for k in raw if k not in _KEYS)
        if unknown:
            raise EndpointError(
                f"{where}': unknown keys {', '.join(unknown)}; known: {', '.join(_KEYS)}"
            )
        base_url = raw.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise EndpointError(f"{where}.base_url': expected an http(s) URL, found {base_url!r}")
        numbers: dict[str, int | None] = {}
        for name in ("rpm", "tpm", "concurrency"):
            number = raw.get(name)
            if number is not None and (
                isinstance(number, bool) or not isinstance(number, int) or number < 1
            ):
                raise EndpointError(
                    f"{where}.{name}': expected a positive integer, found {number!r}"
                )
            numbers[name] = number
        texts = {}
        for name, default in (("model", model), ("api_key_env", api_key_env)):
            text = raw.get(name, default)
            if not isinstance(text, str) or not text.strip():
                raise EndpointError(f"{where}.{name}': expected a non-empty string")
            texts[name] = text.strip()
        specs.append(
            EndpointSpec(
                base_url=base_url.rstrip("/"),
                api_key_env=texts["api_key_env"],
                model=texts["model"],
                concurrency=numbers["concurrency"] or concurrency,
                rpm=numbers["rpm"],
                tpm=numbers["tpm"],
            )
        )
    return tuple(specs)


def make_pool(specs: tuple[EndpointSpec, ...], sending: SendOptions) -> EndpointPool:
    """One client and one limiter per endpoint, as one backend."""
    from mkdocs_aigen.backends.endpoints import Endpoint, EndpointPool
    from mkdocs_aigen.backends.http import HTTPBackend
    from mkdocs_aigen.limits import RateLimiter

    endpoints = []
    for number, spec in enumerate(specs, 1):
        key = os.environ.get(spec.api_key_env, "").strip()
        backend = HTTPBackend(
            api_key=key or "unused",
            base_url=spec.base_url,
            key_env=spec.api_key_env,
            sending=sending,
        )
        limiter = RateLimiter(concurrency=spec.concurrency, rpm=spec.rpm, tpm=spec.tpm)
        endpoints.append(Endpoint(f"{number}: {spec.base_url}", spec.model, backend, limiter))
    return EndpointPool(endpoints)
