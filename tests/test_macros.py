"""mkdocs-macros: hand-written ``{{ }}`` still works; model-written Jinja2 never runs.

The real mkdocs-macros plugin, in both orders in ``plugins:``; the real Jinja2 as the
oracle for the shielding itself.
"""

from __future__ import annotations

import html
import importlib.util
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mkdocs_aigen.jinja_guard import Delimiters, shielded
from tests.conftest import Site, needs
from tests.fake_server import FakeOpenAI, RequestRecord

#: What a model might write: expressions, statements, comments, and an attempt to close
#: a raw block early.
HOSTILE = (
    "Use {{ 7 * 7 }} and {% if true %}yes{% endif %} {# hidden #} "
    "{% endraw %}{{ 6 * 6 }}{%- endraw -%} here.\n\n"
    "```jinja\n{{ 5 * 5 }} {% endraw %}{{ 4 * 4 }}\n```\n"
)

PAGE = """
---
aigen:
  brief: Templates in docs.
  words: 30
  outline:
    - Overview
---
# Macros page

Hand-written: {{ 1 + 1 }}.

<!-- aigen -->
"""


def _hostile(body: dict[str, Any], record: RequestRecord) -> str:
    del body, record
    return HOSTILE


@needs(
    None
    if importlib.util.find_spec("mkdocs_macros")
    else "mkdocs-macros (pip install mkdocs-macros-plugin)"
)
@pytest.mark.parametrize("order", ["macros first", "aigen first"])
def test_model_written_jinja_is_text_and_hand_written_macros_run(
    site: Site, server: FakeOpenAI, order: str
) -> None:
    server.responder = _hostile
    site.page("page.md", PAGE)
    site.write_config()
    aigen = {"aigen": site.plugin}
    plugins: list[Any] = ["macros", aigen] if order == "macros first" else [aigen, "macros"]
    site.extra_config["plugins"] = plugins
    site.build(strict=True)
    text = html.unescape(site.html("page.md"))
    assert "Hand-written: 2." in text
    # The generated section only: the theme's own HTML may hold any number.
    section = text.split('id="overview"', 1)[1].split("<footer", 1)[0]
    for evaluated in ("49", "36", "25", "16"):
        assert evaluated not in section
    # The model's text reaches the page as text: in prose and in its code block.
    assert "{{ 7 * 7 }} and {% if true %}yes{% endif %} {# hidden #}" in text
    assert "{% endraw %}{{ 6 * 6 }}{%- endraw -%} here." in text
    assert "{{ 5 * 5 }} {% endraw %}{{ 4 * 4 }}" in text


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.sampled_from(
            ["{", "}", "%", "#", "-", " ", "\n", "endraw", "raw", "x", "'", '"', "{{", "{%"]
        ),
        max_size=30,
    ).map("".join)
)
def test_shielded_text_renders_back_to_itself(text: str) -> None:
    environment = jinja2.Environment(keep_trailing_newline=True)
    assert environment.from_string(shielded(text, Delimiters())).render() == text


def test_custom_delimiters_are_honoured() -> None:
    markers = Delimiters(block_start="[%", block_end="%]", variable_start="[[", variable_end="]]")
    environment = jinja2.Environment(
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        keep_trailing_newline=True,
    )
    text = "[[ secret ]] [% endraw %] {{ plain }}"
    assert environment.from_string(shielded(text, markers)).render() == text


def test_text_without_markers_is_left_alone() -> None:
    assert shielded("Plain prose, 100% safe.", Delimiters()) == "Plain prose, 100% safe."
