"""``service_tier``: passed through; under flex a longer default timeout, and a 429
"resource unavailable" retried with backoff instead of pausing everyone as a rate limit."""

from __future__ import annotations

import json

import pytest
from mkdocs.config import load_config

from mkdocs_aigen.setup import DEFAULT_TIMEOUT, FLEX_TIMEOUT, resolve_setup
from tests.conftest import Site
from tests.fake_server import FakeOpenAI

GUIDE = """\
---
aigen:
  brief: Explain Lumen.
  outline: [One, Two, Three, Four]
---
# Guide
"""


def test_flex_is_sent_and_resource_unavailable_is_retried_not_throttled(
    site: Site, server: FakeOpenAI
) -> None:
    site.plugin["service_tier"] = "flex"
    site.page("guide.md", GUIDE)
    server.unavailable_next(2)
    site.build()
    assert {r.body["service_tier"] for r in server.records()} == {"flex"}  # type: ignore[index]
    assert server.count(outcome="unavailable") == 2
    assert server.count("section", 200) == 4  # every section, after two retries
    report = json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))
    section = report["stages"]["section"]
    assert (section["retries"], section["throttled"], section["failures"]) == (2, 0, 0)
    assert "Resource Unavailable" not in site.html("guide.md")


def test_a_rate_limit_429_is_still_a_rate_limit(site: Site, server: FakeOpenAI) -> None:
    site.plugin["service_tier"] = "flex"
    site.page("guide.md", GUIDE)
    server.storm(1, retry_after=0.01)
    site.build()
    report = json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))
    assert report["stages"]["section"]["throttled"] == 1


def test_no_tier_sends_no_field(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", GUIDE)
    site.build()
    assert not any("service_tier" in r.body for r in server.records())  # type: ignore[operator]


@pytest.mark.parametrize(
    ("options", "timeout"),
    [
        ({}, DEFAULT_TIMEOUT),
        ({"service_tier": "flex"}, FLEX_TIMEOUT),
        ({"service_tier": "flex", "timeout": 60}, 60.0),
        ({"service_tier": "priority"}, DEFAULT_TIMEOUT),
    ],
)
def test_flex_waits_longer_unless_told(
    site: Site, options: dict[str, object], timeout: float
) -> None:
    site.plugin.pop("timeout")
    site.plugin.update(options)
    site.page("guide.md", GUIDE)
    site.write_config()
    config = load_config(config_file=str(site.config_file))
    setup = resolve_setup(config.plugins["aigen"].config, config, serving=False)  # type: ignore[attr-defined]
    assert setup.timeout == timeout
