"""Material's blog, installed for real: a stub in a post fills the post page, the blog
index's excerpt and Material's search index."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Site
from tests.fake_server import FakeOpenAI

pytest.importorskip("material")

POST = """\
---
date: 2024-01-31
aigen:
  brief: Announce Lumen 2.0 to its users.
  outline:
    - What is new
    - How to upgrade
---
# Lumen 2.0 is out

Hand-written opening line.

<!-- aigen -->

<!-- more -->

Hand-written closing line, after the excerpt.
"""


@pytest.mark.parametrize("order", ["blog-first", "aigen-first"])
def test_a_stub_in_a_post_fills_the_post_its_excerpt_and_the_search_index(
    site: Site, server: FakeOpenAI, order: str
) -> None:
    aigen = {"aigen": site.plugin}
    plugins: list[object] = ["search", "blog", aigen]
    if order == "aigen-first":
        plugins = ["search", aigen, "blog"]
    site.extra_config.update(theme={"name": "material"}, plugins=plugins)
    site.page("index.md", "# Home\n")
    site.page("blog/index.md", "# Blog\n")
    site.page("blog/posts/lumen-2.md", POST)
    # A draft: Material's blog leaves it out of a build, so nothing is spent on it.
    site.page(
        "blog/posts/draft.md",
        POST.replace("date: 2024-01-31", "date: 2024-02-01\ndraft: true").replace(
            "- How to upgrade", "- Unannounced plans"
        ),
    )
    result = site.cli("build")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert not [line for line in warnings if "aigen" in line], result.stderr
    answers = [r.response_text for r in server.records("section")]
    assert len(answers) == 2, result.stderr
    assert not any("Unannounced" in json.dumps(r.body) for r in server.records())
    first_words = [text.split(".")[0] for text in answers if text]
    post = site.root / "site" / "blog" / "2024" / "01" / "31" / "lumen-20-is-out" / "index.html"
    html = post.read_text(encoding="utf-8")
    assert "What is new" in html and "How to upgrade" in html
    assert all(words in html for words in first_words)
    # The blog index shows the excerpt: everything before `<!-- more -->`.
    index = (site.root / "site" / "blog" / "index.html").read_text(encoding="utf-8")
    assert "What is new" in index and all(words in index for words in first_words)
    assert "Hand-written closing line" not in index
    # Material's search index holds the generated text.
    search = json.loads((site.root / "site" / "search" / "search_index.json").read_text())
    indexed = " ".join(doc["text"] for doc in search["docs"])
    assert all(words in indexed for words in first_words)
    again = site.cli("build")
    assert again.returncode == 0, again.stderr
    assert server.count("section") == 2
