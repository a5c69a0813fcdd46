"""``mkdocs-aigen batch``: the Batch API (the fake server's files and batches) and JSONL
files, in rounds, into the cache the next ``mkdocs build`` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Site
from tests.fake_server import FakeOpenAI, RequestRecord, default_responder
from tests.pages import SMALL
from tests.test_cli import aigen

ROUNDS = """\
---
aigen:
  brief: Recipes for Lumen.
  polish: true
  outline:
    - Basics
    - title: Recipes
      sections: {auto: 2}
---
# Recipes
"""


def _pages(site: Site) -> None:
    site.page("a.md", SMALL.format(brief="Explain A.", title="Page A"))
    site.page("b.md", SMALL.format(brief="Explain B.", title="Page B"))


def _state(site: Site) -> dict[str, object]:
    path = site.root / ".cache" / "plugin" / "aigen" / "batch-state.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_batch_round_trip_leaves_nothing_for_the_build(site: Site, server: FakeOpenAI) -> None:
    _pages(site)
    result = aigen(site, "batch", "run", "--poll", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done after 1 round(s), 6 answers stored, 0 still missing" in result.stdout
    assert len(server.batches.created) == 1
    assert server.count() == 0  # no live request
    site.build()
    assert server.count() == 0  # every section from the cache the batch filled
    assert "Text for One." in site.html("a.md")


def test_outlines_augmentation_and_polish_complete_in_rounds(
    site: Site, server: FakeOpenAI
) -> None:
    def short_basics(body: dict[str, Any], record: RequestRecord) -> str:
        prompt = body["messages"][-1]["content"]
        if "Section: Basics" in prompt and "Extend it" not in prompt:
            return "Too short."  # far below the word target: extended next round
        return default_responder(body, record)

    server.responder = short_basics
    site.page("recipes.md", ROUNDS)
    result = aigen(site, "batch", "run", "--poll", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    # Round 1: the outline and the sections that need none; 2: the proposed
    # subsections and the extension of the short section; 3: the polish of the page.
    assert "done after 3 round(s)" in result.stdout
    stages = [sorted(_stage(line) for line in lines) for lines in _input_files(server)]
    assert stages[0] == ["expand", "section", "section"]
    assert stages[1] == ["augment", "section", "section"]
    assert stages[2] == ["polish"]
    site.build()
    assert server.count() == 0
    assert "Part 1" in site.html("recipes.md")


def test_failed_lines_stay_missing_and_are_asked_again(site: Site, server: FakeOpenAI) -> None:
    _pages(site)
    server.batches.fail_every = 2
    assert aigen(site, "batch", "submit").returncode == 0
    # Each look moves the batch on: in progress, then done, and collected.
    outputs = [aigen(site, "batch", "collect").stdout for _ in range(2)]
    assert outputs[0].startswith("collected: 0 answers stored, 0 missing"), outputs
    assert outputs[1].startswith("collected: 3 answers stored, 3 missing"), outputs
    server.batches.fail_every = 0
    again = aigen(site, "batch", "run", "--poll", "0")
    assert again.returncode == 0, again.stdout
    assert "3 requests in 1 batch(es)" in again.stdout  # only the three that failed
    site.build()
    assert server.count() == 0


def test_an_interrupted_run_resumes_without_a_second_submission(
    site: Site, server: FakeOpenAI
) -> None:
    _pages(site)
    assert aigen(site, "batch", "submit").returncode == 0
    # Interrupted after the batch was created but before its id was saved.
    path = site.root / ".cache" / "plugin" / "aigen" / "batch-state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    state["batches"][0]["id"] = ""
    path.write_text(json.dumps(state), encoding="utf-8")
    again = aigen(site, "batch", "submit")
    assert "nothing to submit" in again.stdout  # its requests are in flight
    result = aigen(site, "batch", "run", "--poll", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(server.batches.created) == 1  # found again by its metadata, not resent
    site.build()
    assert server.count() == 0


def test_a_cut_off_answer_is_asked_again_with_a_larger_budget(
    site: Site, server: FakeOpenAI
) -> None:
    _pages(site)
    assert aigen(site, "batch", "submit").returncode == 0
    first = [json.loads(line) for line in _input_files(server)[0]]
    cut = first[0]["custom_id"]
    server.batches.truncate_ids = {cut}
    result = aigen(site, "batch", "run", "--poll", "0")
    assert result.returncode == 0, result.stdout
    second = [json.loads(line) for line in _input_files(server)[1]]
    assert [line["custom_id"] for line in second] == [cut]  # the same key
    assert second[0]["body"]["max_tokens"] == 2 * first[0]["body"]["max_tokens"]
    site.build()
    assert server.count() == 0


def test_jsonl_files_for_a_batch_runner(site: Site, server: FakeOpenAI, tmp_path: Path) -> None:
    _pages(site)
    requests = tmp_path / "in.jsonl"
    assert aigen(site, "batch", "submit", "--jsonl", str(requests)).returncode == 0
    lines = [json.loads(line) for line in requests.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6 and {line["url"] for line in lines} == {"/v1/chat/completions"}
    # What `vllm run-batch -i in.jsonl -o out.jsonl` writes, in another order.
    results = tmp_path / "out.jsonl"
    answers = [
        {
            "custom_id": line["custom_id"],
            "response": {
                "status_code": 200,
                "body": {
                    "choices": [
                        {
                            "message": {
                                "content": default_responder(line["body"], RequestRecord(0, 0.0))
                            },
                            "finish_reason": "stop",
                        }
                    ]
                },
            },
            "error": None,
        }
        for line in reversed(lines)
    ]
    results.write_text("".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8")
    collected = aigen(site, "batch", "collect", "--jsonl", str(results))
    assert "collected: 6 answers stored, 0 missing" in collected.stdout, collected.stdout
    site.build()
    assert server.count() == 0
    assert "Text for Three." in site.html("b.md")


def _input_files(server: FakeOpenAI) -> list[list[str]]:
    """The input lines of each batch, in creation order."""
    store = server.batches
    return [
        store.files[store.batches[batch]["input_file_id"]][1].decode("utf-8").splitlines()
        for batch in store.created
    ]


def _stage(line: str) -> str:
    body = json.loads(line)["body"]
    prompt = body["messages"][-1]["content"]
    if "response_format" in body:
        return "expand"
    if "Extend it to about" in prompt:
        return "augment"
    return "polish" if "Smooth the transitions" in prompt else "section"


def test_input_files_split_at_the_batch_apis_limits() -> None:
    from mkdocs_aigen.batch.jsonl import MAX_BYTES, MAX_LINES, split

    assert [len(part) for part in split(["{}"] * (MAX_LINES + 1))] == [MAX_LINES, 1]
    big = "x" * (MAX_BYTES // 3)
    assert [len(part) for part in split([big] * 4)] == [2, 2]  # 200 MB holds two and a bit
