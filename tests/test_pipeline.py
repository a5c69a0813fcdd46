"""The generation pipeline end to end: real ``mkdocs build``, real openai SDK, the fake server.

Each feature of the pipeline (outline expansion, shared context, word targets with
augmentation, the cohesion pass, scored review, per-stage metrics, template overrides)
is shown by what the server received and what the built site contains. Ordering and
concurrency are asserted from the server's log, never from wall-clock thresholds.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from html import escape
from typing import Any

import pytest
from mkdocs.exceptions import Abort

from tests.conftest import Site, warning_messages
from tests.fake_server import (
    FakeOpenAI,
    Reply,
    RequestRecord,
    default_responder,
    filler_text,
    message_text,
)

# --------------------------------------------------------------------------- helpers


def last_user(body: dict[str, Any]) -> str:
    """The last user message of a request (where the stage's instructions are)."""
    users = [m for m in body["messages"] if m.get("role") == "user"]
    return message_text(users[-1])


def all_text(record: RequestRecord) -> str:
    """Every message of a request, joined."""
    assert record.body is not None
    return "\n".join(message_text(m) for m in record.body["messages"])


def section_of(record: RequestRecord) -> str | None:
    """The ``Section:`` line of a section or augment request."""
    assert record.body is not None
    match = re.search(r"^Section: (.+)$", last_user(record.body), re.M)
    return match.group(1) if match else None


def stage_of(body: dict[str, Any]) -> str:
    """The stage a request belongs to, read from the request itself (what it asks for)."""
    response_format = body.get("response_format") or {}
    name = (response_format.get("json_schema") or {}).get("name")
    if name == "outline":
        return "expand"
    if name == "review":
        return "review"
    prompt = last_user(body)
    if "Draft:\n" in prompt:
        return "augment"
    if "Smooth the transitions" in prompt:
        return "polish"
    return "section"


def polish_page_text(body: dict[str, Any]) -> str:
    """The page text a polish request carries (after its instructions)."""
    prompt = last_user(body)
    marker = "Return the whole text as Markdown, nothing else.\n\n"
    assert marker in prompt
    return prompt.split(marker, 1)[1]


def polishing(transform: Any = None, delay: float | None = None) -> Any:
    """A responder that answers polish requests with ``transform(page text)`` (default: the
    page unchanged) and everything else as the default responder does."""

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if stage_of(body) != "polish":
            return default_responder(body, record)
        text = polish_page_text(body)
        return Reply(transform(text) if transform else text, delay=delay)

    return responder


def report(site: Site) -> dict[str, Any]:
    """The JSON report of the last build."""
    path = site.root / "site" / "aigen-report.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def stub_page(outline: str, *, title: str = "Guide", extra: str = "", words: int = 30) -> str:
    """A page whose front matter is an ``aigen`` stub with ``outline`` (YAML, indented 4)."""
    return (
        f"---\ntitle: {title}\naigen:\n  brief: Explain {title}.\n  words: {words}\n"
        f"{extra}  outline:\n{outline}---\n# {title}\n\n<!-- aigen -->\n"
    )


# --------------------------------------------------------------------------- 1. expansion

AUTO_PAGE = stub_page(
    "    - Overview\n"
    "    - title: Recipes\n"
    "      hint: Patterns per job type.\n"
    "      sections: {auto: 3}\n"
    "    - Summary\n"
)


def test_expansion_runs_first_and_its_children_follow_it(site: Site, server: FakeOpenAI) -> None:
    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        answer = default_responder(body, record)
        if stage_of(body) == "expand":
            # Slow expansion: every other section is generating meanwhile.
            return Reply(json.dumps({"titles": ["Fast lane", "Slow lane", "Bulk lane"]}), delay=0.3)
        return answer

    server.responder = responder
    site.plugin["concurrency"] = 8
    site.page("guide.md", AUTO_PAGE)
    site.build()

    expands = server.records(stage="expand")
    assert len(expands) == 1
    expand = expands[0]
    assert expand.body is not None
    assert expand.body["response_format"]["type"] == "json_schema"
    assert expand.body["response_format"]["json_schema"]["name"] == "outline"
    assert 'the section "Recipes"' in last_user(expand.body)
    assert "Hint: Patterns per job type." in last_user(expand.body)

    sections = server.records(stage="section")
    by_path = {section_of(r): r for r in sections}
    children = ["Recipes > Fast lane", "Recipes > Slow lane", "Recipes > Bulk lane"]
    others = ["Overview", "Recipes", "Summary"]
    assert sorted(by_path) == sorted(children + others)
    assert expand.end is not None
    for path in children:
        # Submitted from the expansion's answer: they reach the server after it ended.
        assert by_path[path].start > expand.end, path
        assert by_path[path].index > expand.index
    for path in others:
        # Not waiting for the expansion: already at the server before it answered.
        assert by_path[path].start < expand.end, path
    # Children's prompts carry the proposed outline, not the placeholder line.
    child_prompt = last_user(by_path["Recipes > Slow lane"].body or {})
    assert "  - Fast lane\n" in child_prompt and "to be proposed" not in child_prompt
    assert "Previous section: Fast lane" in child_prompt
    assert "Next section: Bulk lane" in child_prompt

    html = site.html("guide.md")
    positions = [
        html.find(needle)
        for needle in (
            ">Recipes</h2>",
            escape("Text for Recipes.", quote=False),
            ">Fast lane</h3>",
            escape("Text for Recipes > Fast lane.", quote=False),
            ">Slow lane</h3>",
            escape("Text for Recipes > Slow lane.", quote=False),
            ">Bulk lane</h3>",
            escape("Text for Recipes > Bulk lane.", quote=False),
            ">Summary</h2>",
        )
    ]
    assert -1 not in positions and positions == sorted(positions)

    # Rebuild: the expansion comes from the cache like everything else.
    first_html = html
    requests_before = len(server.log)
    site.build()
    assert len(server.log) == requests_before
    assert site.html("guide.md") == first_html
    assert report(site)["stages"]["expand"]["cache_hits"] == 1


def test_bare_auto_asks_for_the_default_count(site: Site, server: FakeOpenAI) -> None:
    site.page("guide.md", stub_page("    - Intro\n    - Parts: auto\n"))
    site.build()
    expand = server.records(stage="expand")[0]
    assert expand.body is not None
    schema = expand.body["response_format"]["json_schema"]["schema"]
    # Strict mode's subset: the count is said in words, and checked on the answer.
    assert "minItems" not in schema["properties"]["titles"]
    assert "exactly 4 items" in schema["properties"]["titles"]["description"]
    assert "Propose exactly 4 subsection titles" in last_user(expand.body)
    html = site.html("guide.md")
    for number in range(1, 5):
        assert f">Part {number}</h3>" in html
    assert server.count(stage="section") == 2 + 4


def _expand_answers(*answers: str) -> Any:
    """A responder whose successive expansion answers are ``answers``."""
    queue = list(answers)
    lock = threading.Lock()

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if stage_of(body) == "expand":
            with lock:
                return queue.pop(0)
        return default_responder(body, record)

    return responder


def test_invalid_expansion_is_retried_once_with_the_error(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    server.responder = _expand_answers(
        "Here are some titles: Fast, Slow", '{"titles": ["Fast lane", "Slow lane", "Bulk lane"]}'
    )
    site.page("guide.md", AUTO_PAGE)
    site.build()
    expands = server.records(stage="expand")
    assert len(expands) == 2
    retry = expands[1].body
    assert retry is not None
    # The retry is the same conversation plus the rejected answer and the problem.
    assert retry["messages"][:2] == (expands[0].body or {})["messages"]
    assert retry["messages"][2] == {
        "role": "assistant",
        "content": "Here are some titles: Fast, Slow",
    }
    correction = last_user(retry)
    assert "not valid JSON" in correction
    assert "Expecting value" in correction  # the parser's own error text
    html = site.html("guide.md")
    assert ">Slow lane</h3>" in html
    assert "Not generated" not in html
    assert not [m for m in warning_messages(warnings) if "aigen" in m]
    assert server.count(stage="section") == 6


def test_expansion_still_invalid_after_retry_is_a_placeholder_and_warning(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    server.responder = _expand_answers('{"titles": ["Only one"]}', '{"titles": "nope"}')
    site.page("guide.md", AUTO_PAGE)
    site.build()
    expands = server.records(stage="expand")
    assert len(expands) == 2  # exactly one retry
    assert "expected exactly 3 titles, got 1" in last_user(expands[1].body or {})
    html = site.html("guide.md")
    assert "Not generated" in html
    assert "Text for Recipes." in html  # the parent's own text is unaffected
    assert "Text for Summary." in html
    messages = warning_messages(warnings)
    assert any("Recipes" in m and "outline expansion failed" in m for m in messages), messages
    assert server.count(stage="section") == 3
    data = report(site)
    # The three proposed subsections count as failed, so progress reaches the total.
    assert (data["sections"], data["sections_done"], data["sections_failed"]) == (6, 6, 3)
    with pytest.raises(Abort):
        site.build(strict=True)  # cached invalid answers: the same warning, strict fails
    assert server.count(stage="expand") == 2


# --------------------------------------------------------------------------- 2. shared context

CONTEXT = "Lumen Queue stores jobs in SQLite. The CLI is called `lumen`. Never say 'simply'."


def _three_pages(site: Site, *, polish: bool = False) -> None:
    extra = "  polish: true\n" if polish else ""
    outline = "    - Overview\n    - Details: [First, Second]\n"
    site.page("intro.md", stub_page(outline, title="Intro", extra=extra))
    site.page("guide.md", stub_page(outline, title="Guide", extra=extra))
    site.page("ops.md", stub_page(outline, title="Ops", extra=extra))
    site.extra_config = {
        "nav": [
            {"Welcome": "intro.md"},
            {"The guide": "guide.md"},
            {"Running it": "ops.md"},
        ]
    }


@pytest.mark.parametrize("inline", [False, True], ids=["file", "inline"])
def test_context_goes_into_every_prompt(site: Site, server: FakeOpenAI, inline: bool) -> None:
    if inline:
        site.plugin["context"] = CONTEXT
    else:
        (site.root / "context.md").write_text(CONTEXT + "\n", encoding="utf-8")
        site.plugin["context"] = "context.md"
    site.plugin["review"] = {"criteria": {"clarity": "Easy to follow."}, "votes": 2}
    server.responder = polishing()
    _three_pages(site, polish=True)
    site.page("guide.md", AUTO_PAGE)
    site.extra_config["nav"] = [{"Welcome": "intro.md"}, {"The guide": "guide.md"}, "ops.md"]
    site.build()
    stages = Counter(r.stage for r in server.log)
    # Every kind of request of a page carries the context.
    assert {"expand", "section", "polish", "review"} <= set(stages)
    for record in server.log:
        assert CONTEXT in all_text(record), (record.stage, section_of(record))


def test_nav_neighbours_go_into_every_prompt_of_a_page(site: Site, server: FakeOpenAI) -> None:
    server.responder = polishing()
    _three_pages(site, polish=True)
    site.build()
    expected = {
        "Intro": (None, "The guide"),
        "Guide": ("Welcome", "Running it"),
        "Ops": ("The guide", None),
    }
    seen: Counter[str] = Counter()
    for record in server.log:
        prompt = last_user(record.body or {})
        page = re.search(r"^Page: (.+)$", prompt, re.M)
        assert page is not None
        previous, following = expected[page.group(1)]
        seen[page.group(1)] += 1
        if previous is None:
            assert "Previous page in the docs" not in prompt
        else:
            assert f"Previous page in the docs: {previous}\n" in prompt
        if following is None:
            assert "Next page in the docs" not in prompt
        else:
            assert f"Next page in the docs: {following}\n" in prompt
    # 4 sections and a polish per page.
    assert seen == {"Intro": 5, "Guide": 5, "Ops": 5}


def test_changing_the_context_regenerates_everything(site: Site, server: FakeOpenAI) -> None:
    context = site.root / "context.md"
    context.write_text(CONTEXT, encoding="utf-8")
    site.plugin["context"] = "context.md"
    site.page("guide.md", AUTO_PAGE)
    site.build()
    first = len(server.log)
    assert first == 1 + 6  # an expansion and six sections
    site.build()
    assert len(server.log) == first
    context.write_text(CONTEXT + " Queues are FIFO.", encoding="utf-8")
    site.build()
    again = server.log[first:]
    assert len(again) == first  # every key changed, nothing came from the cache
    assert Counter(r.stage for r in again) == {"expand": 1, "section": 6}
    assert all("Queues are FIFO." in all_text(r) for r in again)
    assert report(site)["stages"]["section"]["cache_hits"] == 0


# --------------------------------------------------------------------------- 3. word targets

WORDS_PAGE = stub_page(
    "    - Overview\n    - title: Short one\n      words: 100\n    - Closing\n", words=100
)


def _short_section(section: str, draft_words: int, augment_words: int | None = None) -> Any:
    """Default answers, except ``section``'s: ``draft_words`` words, and its augmentation
    ``augment_words`` words (default: what the prompt asks for)."""

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        stage = stage_of(body)
        if f"Section: {section}\n" in last_user(body):
            if stage == "section":
                return filler_text(f"Draft of {section}.", draft_words)
            if stage == "augment" and augment_words is not None:
                return filler_text(f"Longer {section}.", augment_words)
        return default_responder(body, record)

    return responder


def test_prompt_asks_for_target_plus_compensation(site: Site, server: FakeOpenAI) -> None:
    site.page(
        "guide.md", WORDS_PAGE.replace("words: 100\n    - Closing", "words: 60\n    - Closing")
    )
    site.build()
    asked = {section_of(r): last_user(r.body or {}) for r in server.records(stage="section")}
    assert "Write about 115 words" in asked["Overview"]  # 100 * 1.15
    assert "Write about 69 words" in asked["Short one"]  # 60 * 1.15
    site.plugin["word_compensation"] = 0.3
    site.build()
    asked = {section_of(r): last_user(r.body or {}) for r in server.records(stage="section")[3:]}
    assert "Write about 130 words" in asked["Overview"]
    assert server.count(stage="augment") == 0


@pytest.mark.parametrize(
    ("compensation", "asked"), [(0.1, 110), (0.15, 115), (0.125, 113), (0, 100)]
)
def test_compensated_target_is_not_thrown_off_by_float_error(
    site: Site, server: FakeOpenAI, compensation: float, asked: int
) -> None:
    site.plugin["word_compensation"] = compensation
    site.page("guide.md", stub_page("    - Overview\n", words=100))
    site.build()
    assert f"Write about {asked} words" in last_user(server.log[0].body or {})


def test_short_section_gets_exactly_one_augmentation(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    server.responder = _short_section("Short one", 40)  # 40 < 0.8 * 100
    site.page("guide.md", WORDS_PAGE)
    site.build()
    augments = server.records(stage="augment")
    assert len(augments) == 1
    prompt = last_user(augments[0].body or {})
    assert "Section: Short one\n" in prompt
    assert "The draft below has 40 words; the target is about 100 words." in prompt
    assert "Extend it to about 115 words" in prompt
    assert "Draft:\nDraft of Short one." in prompt
    html = site.html("guide.md")
    assert "Longer" not in html and "Text for Short one." in html  # the extension is used
    assert "Draft of Short one." not in html
    data = report(site)
    assert data["augmented"] == 1
    assert data["pages"]["guide.md"]["augmented"] == ["Short one"]
    assert data["augmentation_rate"] == pytest.approx(1 / 3)
    assert data["mean_word_ratio"] == pytest.approx(1.15)  # 115 of 100 words, every section
    summary = [r.getMessage() for r in warnings.records if "augmented" in r.getMessage()]
    assert len(summary) == 1
    assert "words 115% of target, augmented 1 (33% of generated)" in summary[0]
    # Cached rebuild: same text, the same numbers, no request.
    site.build()
    assert server.count(stage="augment") == 1 and len(server.log) == 4
    assert report(site)["augmentation_rate"] == pytest.approx(1 / 3)


def test_augmentation_still_short_is_kept_without_a_second_one(
    site: Site, server: FakeOpenAI
) -> None:
    server.responder = _short_section("Short one", 20, augment_words=50)
    site.page("guide.md", WORDS_PAGE)
    site.build()
    assert server.count(stage="augment") == 1
    assert server.count(stage="section") == 3
    html = site.html("guide.md")
    assert "Longer Short one." in html and "Draft of Short one." not in html
    data = report(site)
    assert data["augmented"] == 1
    # (115 + 50 + 115) / 300
    assert data["mean_word_ratio"] == pytest.approx((1.15 + 0.5 + 1.15) / 3)


def test_augmentation_shorter_than_the_draft_is_discarded(site: Site, server: FakeOpenAI) -> None:
    server.responder = _short_section("Short one", 30, augment_words=10)
    site.page("guide.md", WORDS_PAGE)
    site.build()
    assert server.count(stage="augment") == 1
    html = site.html("guide.md")
    assert "Draft of Short one." in html and "Longer Short one." not in html


def test_section_at_min_ratio_is_not_augmented(site: Site, server: FakeOpenAI) -> None:
    server.responder = _short_section("Short one", 80)  # exactly 0.8 * 100
    site.plugin["min_ratio"] = 0.8
    site.page("guide.md", WORDS_PAGE)
    site.build()
    assert server.count(stage="augment") == 0
    assert report(site)["augmented"] == 0


# --------------------------------------------------------------------------- 4. polish


def _polish_page(extra: str = "  polish: true\n", title: str = "Guide") -> str:
    return stub_page(
        "    - Overview\n    - Details: [First, Second]\n    - Closing\n", extra=extra, title=title
    )


def test_polish_replaces_the_page_with_the_polished_text(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    server.responder = polishing(lambda text: text.replace("Text for", "POLISHED text for"))
    site.page("guide.md", _polish_page())
    site.page("plain.md", _polish_page(extra="", title="Plain"))  # polish is off here
    site.build()
    polishes = server.records(stage="polish")
    assert len(polishes) == 1
    assert polishes[0].body is not None
    page_text = polish_page_text(polishes[0].body)
    # One request with the whole assembled page, after all of its sections.
    assert page_text.startswith("## Overview\n")
    for heading in ("## Overview", "## Details", "### First", "### Second", "## Closing"):
        assert f"{heading}\n" in page_text
    guide_sections = [
        r for r in server.records(stage="section") if "Page: Guide\n" in last_user(r.body or {})
    ]
    assert len(guide_sections) == 5
    assert all(r.end is not None and r.end < polishes[0].start for r in guide_sections)
    html = site.html("guide.md")
    assert html.count("POLISHED text for") == 5
    assert ">Second</h3>" in html
    assert "POLISHED" not in site.html("plain.md")
    assert report(site)["pages"]["guide.md"]["polished"] is True
    assert report(site)["pages"]["plain.md"]["polished"] is False
    assert not [m for m in warning_messages(warnings) if "aigen" in m]


def test_site_wide_polish_and_page_opt_out(site: Site, server: FakeOpenAI) -> None:
    server.responder = polishing(lambda text: text + "\n\nPOLISHED")
    site.plugin["polish"] = True
    site.page("guide.md", _polish_page(extra=""))
    site.page("rough.md", _polish_page(extra="  polish: false\n"))
    site.build()
    assert server.count(stage="polish") == 1
    assert "POLISHED" in site.html("guide.md")
    assert "POLISHED" not in site.html("rough.md")


def test_pages_polish_in_parallel(site: Site, server: FakeOpenAI) -> None:
    # Each polish answer waits until all three polish requests are at the server: a
    # build that polished one page at a time would break the barrier (and fail the test).
    barrier = threading.Barrier(3, timeout=10)

    def together(text: str) -> str:
        barrier.wait()
        return text + "\n\nPOLISHED"

    server.responder = polishing(together, delay=0.05)
    site.plugin["concurrency"] = 8
    _three_pages(site, polish=True)
    site.build()
    polishes = server.records(stage="polish")
    assert len(polishes) == 3
    assert all(r.outcome == "ok" for r in polishes)
    latest_start = max(r.start for r in polishes)
    assert all(r.end is not None and r.end > latest_start for r in polishes)
    for page in ("intro.md", "guide.md", "ops.md"):
        assert "POLISHED" in site.html(page)


def _drop_heading(text: str) -> str:
    return text.replace("### Second\n", "").replace("Text for", "POLISHED text for")


def _shrink(text: str) -> str:
    # Headings intact, but every paragraph cut to its first sentence.
    lines = [
        line.split(".")[0] + ". POLISHED" if line and line[0] != "#" else line
        for line in text.splitlines()
    ]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("transform", "problem"),
    [
        (_drop_heading, "it lost the heading '### Second'"),
        (_shrink, "it shrank from"),
        (lambda text: text.replace("## Closing", "## Closing words"), "lost the heading"),
        (lambda text: text + "\n\n## Extra\n\nPOLISHED", "reordered or added headings"),
    ],
    ids=["lost-heading", "shrank", "renamed-heading", "added-heading"],
)
def test_bad_polish_is_discarded_with_a_warning(
    site: Site,
    server: FakeOpenAI,
    warnings: pytest.LogCaptureFixture,
    transform: Any,
    problem: str,
) -> None:
    server.responder = polishing(transform)
    site.page("guide.md", _polish_page())
    site.build()
    assert server.count(stage="polish") == 1
    html = site.html("guide.md")
    assert "POLISHED" not in html
    assert ">Second</h3>" in html and "Text for Details &gt; Second." in html
    messages = [m for m in warning_messages(warnings) if "polished text discarded" in m]
    assert len(messages) == 1 and problem in messages[0], messages
    assert "kept the unpolished page" in messages[0]
    assert report(site)["pages"]["guide.md"]["polished"] is False
    with pytest.raises(Abort):
        site.build(strict=True)  # from the cache: the same warning
    assert server.count(stage="polish") == 1


def test_polish_failure_keeps_the_page(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if stage_of(body) == "polish":
            return Reply("no polish today", status=400)
        return default_responder(body, record)

    server.responder = responder
    site.page("guide.md", _polish_page())
    site.build()
    assert "Text for Closing." in site.html("guide.md")
    assert any("polish failed" in m for m in warning_messages(warnings))


def test_polish_wrapped_in_a_fence_is_unwrapped(site: Site, server: FakeOpenAI) -> None:
    server.responder = polishing(lambda text: f"```markdown\n{text}\n\nPOLISHED\n```")
    site.page("guide.md", _polish_page())
    site.build()
    html = site.html("guide.md")
    assert "POLISHED" in html and "<pre>" not in html


# --------------------------------------------------------------------------- 5. review

POLISH_FREE_PAGE = stub_page("    - Overview\n    - Details: [First, Second]\n")


CRITERIA = {"accuracy": "Facts agree with the brief.", "clarity": "A newcomer can follow it."}


def _reviewing(scores: Any, barrier: threading.Barrier | None = None) -> Any:
    """Default answers; a review vote gets ``scores(vote, body)`` (a dict of criteria)."""

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if stage_of(body) != "review":
            return default_responder(body, record)
        if barrier is not None:
            barrier.wait()
        vote = body.get("seed", 0)
        return json.dumps({"scores": scores(vote, body)})

    return responder


def test_votes_are_averaged_into_the_report(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    # All three votes of a page must be at the server together to be answered.
    barrier = threading.Barrier(3, timeout=10)
    server.responder = _reviewing(
        lambda vote, body: {"accuracy": [4, 6, 8][vote], "clarity": [9, 9, 10][vote]}, barrier
    )
    site.plugin["review"] = {"criteria": CRITERIA, "votes": 3, "min_score": 6}
    site.page("guide.md", POLISH_FREE_PAGE)
    site.build(strict=True)  # 6.0 is not below min_score 6
    reviews = server.records(stage="review")
    assert len(reviews) == 3
    assert sorted(r.body["seed"] for r in reviews if r.body) == [0, 1, 2]
    first = reviews[0].body or {}
    assert first["response_format"]["json_schema"]["name"] == "review"
    schema = first["response_format"]["json_schema"]["schema"]
    score = schema["properties"]["scores"]["properties"]["accuracy"]
    assert score == {"type": "integer", "description": "(at least 1, at most 10)"}
    prompt = last_user(first)
    assert "- accuracy: Facts agree with the brief.\n" in prompt
    assert "Text for Details > Second." in prompt  # the assembled page is what is scored
    scores = report(site)["pages"]["guide.md"]["scores"]
    assert scores == {"accuracy": 6.0, "clarity": pytest.approx(28 / 3)}
    assert report(site)["pages"]["guide.md"]["regenerated"] is False
    lines = [r.getMessage() for r in warnings.records if "review" in r.getMessage()]
    assert any("guide.md" in m and "accuracy 6.0" in m and "clarity 9.3" in m for m in lines)


def test_low_score_is_a_warning_and_fails_strict(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    server.responder = _reviewing(lambda vote, body: {"accuracy": 5, "clarity": 8})
    site.plugin["review"] = {"criteria": CRITERIA, "votes": 2, "min_score": 6}
    site.page("guide.md", POLISH_FREE_PAGE)
    site.page("other.md", POLISH_FREE_PAGE.replace("title: Guide", "title: Other"))
    site.build()
    messages = [m for m in warning_messages(warnings) if "review scored" in m]
    assert len(messages) == 2
    assert any(
        m.endswith("aigen: guide.md: review scored accuracy 5.0, below min_score 6")
        for m in messages
    ), messages
    assert server.count(stage="section") == 8  # no regeneration unless asked
    assert report(site)["pages"]["other.md"]["scores"] == {"accuracy": 5.0, "clarity": 8.0}
    with pytest.raises(Abort, match="strict mode"):
        site.build(strict=True)
    assert server.count(stage="review") == 4  # the strict build was answered from the cache


def test_low_score_regenerates_once_with_feedback(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    reviewing = _reviewing(lambda vote, body: {"accuracy": 3 + vote, "clarity": 9})

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        answer = reviewing(body, record)
        if stage_of(body) == "section" and "Improve on:" in last_user(body):
            return f"Revised. {answer}"  # a new page, so its review is a new request
        return answer

    server.responder = responder
    site.plugin["review"] = {
        "criteria": CRITERIA,
        "votes": 2,
        "min_score": 6,
        "regenerate": True,
    }
    site.page("guide.md", POLISH_FREE_PAGE)
    site.build()
    sections = server.records(stage="section")
    assert len(sections) == 8  # every section twice, never a third time
    first, second = sections[:4], sections[4:]
    feedback = "Improve on: accuracy (3.5/10)"
    assert all(feedback not in last_user(r.body or {}) for r in first)
    assert all(feedback in last_user(r.body or {}) for r in second)
    assert Counter(section_of(r) for r in second) == Counter(section_of(r) for r in first)
    last_first = max(r.end or 0 for r in first)
    assert all(r.start > last_first for r in second)
    # The regenerated page is reviewed again; still low -> a warning, no third round.
    assert server.count(stage="review") == 4
    page = report(site)["pages"]["guide.md"]
    assert page["regenerated"] is True
    assert page["scores"] == {"accuracy": 3.5, "clarity": 9.0}
    # The second round is counted as work done, never past the total.
    assert (report(site)["sections"], report(site)["sections_done"]) == (8, 8)
    assert any("review scored accuracy 3.5" in m for m in warning_messages(warnings))
    assert "Revised. Text for Details &gt; First." in site.html("guide.md")
    # Rebuild: all from the cache, the same outcome.
    site.build()
    assert len(server.log) == 12
    assert report(site)["pages"]["guide.md"]["regenerated"] is True


def test_regenerated_page_that_passes_has_no_warning(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    def scores(vote: int, body: dict[str, Any]) -> dict[str, int]:
        improved = "REGENERATED" in last_user(body)
        return {"accuracy": 8 if improved else 2, "clarity": 8}

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if stage_of(body) == "section" and "Improve on:" in last_user(body):
            return f"REGENERATED {section_of(record)}."
        return _reviewing(scores)(body, record)

    server.responder = responder
    site.plugin["words"] = 2
    site.plugin["review"] = {"criteria": CRITERIA, "votes": 3, "regenerate": True}
    site.page("guide.md", POLISH_FREE_PAGE.replace("  words: 30\n", ""))
    site.build(strict=True)
    assert server.count(stage="section") == 8
    html = site.html("guide.md")
    assert "REGENERATED Details &gt; Second." in html
    assert report(site)["pages"]["guide.md"]["scores"] == {"accuracy": 8.0, "clarity": 8.0}


def test_invalid_votes_are_ignored_and_no_valid_vote_warns(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    def scores(vote: int, body: dict[str, Any]) -> Any:
        return {"accuracy": 7, "clarity": 7} if vote == 0 else {"accuracy": "great"}

    server.responder = _reviewing(scores)
    site.plugin["review"] = {"criteria": CRITERIA, "votes": 3}
    site.page("guide.md", POLISH_FREE_PAGE)
    site.build(strict=True)
    assert report(site)["pages"]["guide.md"]["scores"] == {"accuracy": 7.0, "clarity": 7.0}

    server.responder = _reviewing(lambda vote, body: {})
    site.plugin["review"]["votes"] = 2
    site.plugin["review"]["min_score"] = 5  # a new request: the cache does not answer
    site.page("guide.md", POLISH_FREE_PAGE.replace("Explain Guide", "Explain the guide"))
    site.build()
    assert any("review got no valid scores" in m for m in warning_messages(warnings))


# --------------------------------------------------------------------------- 6. metrics

METRICS_PAGE = stub_page(
    "    - Overview\n"
    "    - title: Short one\n"
    "      words: 100\n"
    "    - title: Recipes\n"
    "      sections: {auto: 2}\n",
    extra="  polish: true\n",
)


def test_report_counts_match_what_the_server_saw(
    site: Site, server: FakeOpenAI, warnings: pytest.LogCaptureFixture
) -> None:
    short = _short_section("Short one", 20)

    def responder(body: dict[str, Any], record: RequestRecord) -> str | Reply:
        if stage_of(body) == "polish":
            return polishing()(body, record)
        if stage_of(body) == "review":
            return _reviewing(lambda vote, body: {"accuracy": 7, "clarity": 7})(body, record)
        return short(body, record)

    server.responder = responder
    server.storm(4, retry_after=0.05)
    site.plugin["concurrency"] = 8
    site.plugin["review"] = {"criteria": CRITERIA, "votes": 3}
    site.page("guide.md", METRICS_PAGE)
    site.page("other.md", METRICS_PAGE.replace("title: Guide", "title: Other"))
    site.build(strict=True)

    stages = report(site)["stages"]
    seen = Counter(r.stage for r in server.log)
    # 2 pages x (1 expand, 5 sections, 1 augment, 1 polish, 3 votes) + 4 stormed attempts.
    assert sum(seen.values()) == 2 * 11 + 4
    assert server.count(outcome="storm") == 4
    for stage in ("expand", "section", "augment", "polish", "review"):
        records = server.records(stage=stage)
        ok = [r for r in records if r.outcome == "ok"]
        numbers = stages[stage]
        assert numbers["requests"] == len(records), stage
        assert numbers["retries"] == len(records) - len(ok), stage
        assert numbers["failures"] == 0
        assert numbers["cache_hits"] == 0
        assert numbers["prompt_tokens"] == sum(r.prompt_tokens for r in ok), stage
        assert numbers["completion_tokens"] == sum(r.completion_tokens for r in ok), stage
        # The client's time includes the server's.
        assert numbers["latency"] >= sum(r.latency_slept for r in ok)
    assert [stages[s]["requests"] - stages[s]["retries"] for s in stages] == [2, 10, 2, 2, 6]
    assert sum(stages[s]["retries"] for s in stages) == 4
    data = report(site)
    assert data["sections"] == 10 and data["sections_failed"] == 0
    assert data["augmented"] == 2 and data["augmentation_rate"] == pytest.approx(2 / 10)
    # The summary has a line per active stage with the same numbers.
    lines = [r.getMessage() for r in warnings.records]
    polish = stages["polish"]
    assert any(
        f"polish: {polish['requests']} requests, 0 cache hits" in m
        and f"tokens {polish['prompt_tokens']} prompt + {polish['completion_tokens']} completion"
        in m
        for m in lines
    ), lines

    # Cached rebuild: every distinct request is a cache hit, nothing is sent or counted.
    before = len(server.log)
    site.build(strict=True)
    assert len(server.log) == before
    stages = report(site)["stages"]
    assert {s: stages[s]["cache_hits"] for s in stages} == {
        "expand": 2,
        "section": 10,
        "augment": 2,
        "polish": 2,
        "review": 6,
    }
    assert all(stages[s]["requests"] == 0 and stages[s]["prompt_tokens"] == 0 for s in stages)


# --------------------------------------------------------------------------- templates

CUSTOM_SECTION = """\
{% block system %}
House style: Oxford commas, no exclamation marks.
{% endblock %}
{% block user %}
{% include "_page.j2" %}
CUSTOM-SECTION-TEMPLATE for {{ section_path | join(" / ") }}.
Section: {{ section_path | join(" > ") }}
Write about {{ words }} words.
{% endblock %}
"""


def test_templates_dir_overrides_one_stage(site: Site, server: FakeOpenAI) -> None:
    templates = site.root / "prompts"
    templates.mkdir()
    (templates / "section.j2").write_text(CUSTOM_SECTION, encoding="utf-8")
    site.plugin["templates_dir"] = "prompts"
    site.page("guide.md", AUTO_PAGE)
    site.build()
    sections = server.records(stage="section")
    assert len(sections) == 6
    for record in sections:
        body = record.body or {}
        assert body["messages"][0]["content"] == "House style: Oxford commas, no exclamation marks."
        assert f"CUSTOM-SECTION-TEMPLATE for {section_of(record).replace(' > ', ' / ')}." in (
            last_user(body)
        )
        assert "Brief: Explain Guide." in last_user(body)  # the packaged include still works
    # Other stages keep the packaged wording.
    expand = server.records(stage="expand")[0]
    assert "CUSTOM" not in all_text(expand) and "Propose exactly 3" in all_text(expand)
    assert "Text for Recipes &gt; Part 2." in site.html("guide.md")


def test_lines_copied_from_the_prompt_are_dropped() -> None:
    from mkdocs_aigen.pipeline import drop_echoed_lines
    from mkdocs_aigen.requests import ChatRequest, Message

    request = ChatRequest(
        stage="section",
        model="m",
        messages=(
            Message("system", "You are a technical writer."),
            Message("user", "Page: Getting started\nBrief: Install Foo on a laptop.\n- Usage"),
        ),
        max_tokens=10,
    )
    answer = "Page: Getting started\nBrief: Install Foo on a laptop.\n- Usage\n\nFoo installs fast."
    assert drop_echoed_lines(answer, request) == "- Usage\n\nFoo installs fast."
    untouched = "Foo installs fast.\n\nIt needs Python."
    assert drop_echoed_lines(untouched, request) == untouched
