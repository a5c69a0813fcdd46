"""Prompt caching: a page's requests share their start, `prompt_cache_key` routes them
together, and the cached prompt tokens the provider reports are counted and priced."""

from __future__ import annotations

import json

from tests.conftest import Site
from tests.fake_server import FakeOpenAI, message_text
from tests.pages import SMALL
from tests.test_cli import aigen

#: Long enough (about 1500 tokens) for a provider's prompt cache, which starts at 1024.
CONTEXT = "\n".join(f"- Fact {n}: Lumen keeps job {n} for {n} days." for n in range(150))


def _site(site: Site) -> None:
    site.plugin["context"] = CONTEXT
    site.page("a.md", SMALL.format(brief="Explain A.", title="Page A"))
    site.page("b.md", SMALL.format(brief="Explain B.", title="Page B"))


def _by_page(server: FakeOpenAI) -> dict[str, list[dict[str, object]]]:
    pages: dict[str, list[dict[str, object]]] = {}
    for record in server.records("section"):
        user = message_text(record.body["messages"][-1])
        title = user.split("Page: ", 1)[1].split("\n", 1)[0]
        pages.setdefault(title, []).append(record.body)
    return pages


def test_every_section_of_a_page_shares_the_page_prefix(site: Site, server: FakeOpenAI) -> None:
    _site(site)
    site.build()
    for bodies in _by_page(server).values():
        assert len(bodies) == 3
        texts = ["\n".join(message_text(m) for m in b["messages"]) for b in bodies]  # type: ignore[union-attr]
        # System text, site context, page context and outline, then the section's part.
        prefix = texts[0].split("\nSection: ", 1)[0]
        assert CONTEXT in prefix and "Outline of this page:" in prefix
        assert all(text.startswith(prefix + "\nSection: ") for text in texts)


def test_cached_prompt_tokens_are_counted_per_stage(site: Site, server: FakeOpenAI) -> None:
    _site(site)
    result = site.cli("build")
    assert result.returncode == 0, result.stderr
    report = json.loads((site.root / "site" / "aigen-report.json").read_text(encoding="utf-8"))
    # What the server said it served from its cache is what the report counts.
    served = sum(r.cached_tokens for r in server.records("section"))
    assert served > 0
    assert report["stages"]["section"]["cached_tokens"] == served
    line = next(line for line in result.stderr.splitlines() if "aigen: section:" in line)
    assert f"({report['stages']['section']['cached_tokens']} cached)" in line


def test_prompt_cache_key_is_per_page_and_opt_in_off_openai(site: Site, server: FakeOpenAI) -> None:
    _site(site)
    site.build()
    assert not any("prompt_cache_key" in r.body for r in server.records())  # type: ignore[operator]
    site.plugin["prompt_cache_key"] = True
    site.plugin["seed"] = 1  # new requests
    site.build()
    keys = {
        title: {b["prompt_cache_key"] for b in bodies if "prompt_cache_key" in b}
        for title, bodies in _by_page(server).items()
    }
    assert all(len(found) == 1 for found in keys.values()), keys
    assert keys["Page A"] != keys["Page B"]
    # The key routes requests; it never changes an answer's identity.
    site.plugin["prompt_cache_key"] = False
    before = server.count()
    site.build()
    assert server.count() == before


def test_plan_prices_the_shared_prefix_at_the_cached_rate(site: Site, server: FakeOpenAI) -> None:
    _site(site)
    prices = site.root / "prices.yml"
    prices.write_text(
        "test-model: {input: 2.0, output: 8.0, cached_input: 0.5}\n", encoding="utf-8"
    )
    plan = json.loads(aigen(site, "plan", "--json", "--prices", str(prices)).stdout)
    cached = plan["prompt_tokens_likely_cached"]
    # Two pages of three requests: the second and third of each reuse the page's prefix.
    assert cached > 0 and cached % 128 == 0
    expected = (
        (plan["prompt_tokens"] - cached) * 2.0 + cached * 0.5 + plan["completion_tokens_max"] * 8.0
    ) / 1e6
    assert plan["estimated_cost_usd"] == round(expected, 4)
