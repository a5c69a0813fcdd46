"""Which requests a batch round sends: exactly those the next build would send whose
inputs are all known now."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from mkdocs_aigen.answers import AnswerSources
from mkdocs_aigen.cache import ResponseCache
from mkdocs_aigen.requests import ChatRequest

if TYPE_CHECKING:
    from mkdocs_aigen.cli import Project

#: Stands in for answers not known yet. A request whose prompt shows it was built on one
#: (a polish of stand-in sections, the children of a stand-in outline) waits for a
#: later round.
PENDING = "AIGEN-BATCH-PENDING"

log = logging.getLogger("mkdocs_aigen.batch")


def stand_in(request: ChatRequest) -> str:
    """A placeholder answer that marks everything built on it."""
    if request.stage == "expand" and request.json_schema:
        count = json.loads(request.json_schema)["properties"]["titles"]["minItems"]
        return json.dumps({"titles": [f"{PENDING} {i + 1}" for i in range(count)]})
    return f"{PENDING} text."


def next_round(project: Project) -> list[ChatRequest]:
    """The requests of this round, each once, in the order the pages ask for them."""
    from mkdocs_aigen.cli import run_pipelines  # the command line's own way to run pages
    from mkdocs_aigen.engine import Engine
    from mkdocs_aigen.stats import BuildStats

    setup = project.setup
    # The configured model's requests only: a fallback has no place in a batch.
    answers = AnswerSources(
        ResponseCache(setup.cache_dir, log.warning),
        lock=setup.lock,
        planning=stand_in,
        site=setup.site,
    )
    engine = Engine(concurrency=1, answers=answers, stats=BuildStats(), backend_factory=None)
    run_pipelines(project, engine)
    ready: dict[str, ChatRequest] = {}
    for request in answers.requests_planned:
        if any(PENDING in message.content for message in request.messages):
            continue
        ready.setdefault(request.key, request)
    return list(ready.values())
