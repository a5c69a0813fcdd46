"""The steps of ``mkdocs-aigen batch``: submit, status, collect, cancel and run."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mkdocs_aigen.backends.checks import check_answer
from mkdocs_aigen.batch import jsonl
from mkdocs_aigen.batch.planner import next_round
from mkdocs_aigen.batch.state import FINISHED, MAX_ATTEMPTS, BatchState, RequestInfo, Submitted
from mkdocs_aigen.cache import CachedAnswer, ResponseCache
from mkdocs_aigen.requests import BackendError, ChatRequest, Message

if TYPE_CHECKING:
    from mkdocs_aigen.cli import Project

log = logging.getLogger("mkdocs_aigen.batch")
#: ``id`` of a batch written to a file for a batch runner instead of uploaded.
FILE_BATCH = "file:"


@dataclass
class Collected:
    """What one ``collect`` stored and what stays missing."""

    stored: int = 0
    failed: int = 0
    truncated: int = 0


def state_for(project: Project) -> BatchState:
    """The project's state file, in its cache directory."""
    cache_dir = project.setup.cache_dir
    if cache_dir is None:
        raise ValueError("the batch command needs the cache: remove `cache: false`")
    return BatchState.load(cache_dir / "batch-state.json")


def submit(
    project: Project, state: BatchState, client: Any | None, jsonl_path: Path | None = None
) -> list[Submitted]:
    """Send this round: one batch per model (split at the Batch API's file limits), or
    with ``jsonl_path`` one file for a batch runner. Returns what was submitted."""
    busy = state.in_flight()
    requests = [r for r in next_round(project) if r.key not in busy]
    requests = [r for r in requests if _attempts_left(state, r)]
    by_model: dict[str, list[ChatRequest]] = {}
    for request in requests:
        by_model.setdefault(request.model, []).append(request)
    made = []
    for model, group in by_model.items():
        lines = [jsonl.request_line(_as_sent(state, r), r.key) for r in group]
        for part in jsonl.split(lines):
            keys = [_key_of(line) for line in part]
            for key in keys:
                request = next(r for r in group if r.key == key)
                info = state.requests.get(key) or _info(request)
                info.attempts += 1
                state.requests[key] = info
            batch = Submitted(id="", model=model, keys=keys, token=secrets.token_hex(8))
            if jsonl_path is not None:
                target = jsonl_path if len(made) == 0 else _numbered(jsonl_path, len(made))
                target.write_text("".join(line + "\n" for line in part), encoding="utf-8")
                batch.id, batch.status = FILE_BATCH + str(target), "written"
            state.batches.append(batch)
            state.save()  # the keys are in flight before anything leaves
            if client is not None and jsonl_path is None:
                _create(client, batch, part)
                state.save()
            made.append(batch)
    return made


def status(state: BatchState, client: Any | None) -> list[Submitted]:
    """Refresh every uncollected batch from the server (files stay as written)."""
    for batch in state.pending():
        if client is None or batch.id.startswith(FILE_BATCH):
            continue
        if not batch.id:
            _adopt(client, batch)
            if not batch.id:
                continue
        remote = client.batches.retrieve(batch.id)
        batch.status = str(remote.status)
        batch.output_file_id = remote.output_file_id
        batch.error_file_id = remote.error_file_id
    state.save()
    return state.pending()


def collect(
    project: Project, state: BatchState, client: Any | None, results: Path | None = None
) -> Collected:
    """Store every good answer of finished batches (or of a results file) in the cache,
    exactly as a live answer is stored; failed and expired lines stay missing."""
    setup = project.setup
    cache = ResponseCache(setup.cache_dir, log.warning)
    done = Collected()
    try:
        if results is not None:
            texts = [results.read_text(encoding="utf-8")]
            batches = [b for b in state.pending() if b.id.startswith(FILE_BATCH)]
        else:
            batches = [b for b in status(state, client) if b.status in FINISHED]
            texts = [
                client.files.content(file_id).text
                for batch in batches
                for file_id in (batch.output_file_id, batch.error_file_id)
                if file_id
            ]
        answered: set[str] = set()
        for text in texts:
            for result in jsonl.read_results(text):
                if _store(state, cache, result, done, setup.site):
                    answered.add(result.custom_id)
        for batch in batches:
            # Error lines, lines an expired batch never ran, cut-off answers: missing,
            # and asked for again in the next round.
            done.failed += sum(1 for key in batch.keys if key not in answered)
            batch.collected = True
        state.save()
    finally:
        cache.close()
    return done


def cancel(state: BatchState, client: Any | None) -> int:
    """Cancel every batch still running; their keys may be submitted again."""
    count = 0
    for batch in state.pending():
        if client is not None and batch.id and not batch.id.startswith(FILE_BATCH):
            client.batches.cancel(batch.id)
        batch.collected = True
        count += 1
    state.save()
    return count


def run(
    project_loader: Callable[[], Project],
    state: BatchState,
    client: Any,
    poll: float,
    say: Callable[[str], None],
) -> Collected:
    """Submit, wait and collect until a round has nothing left to send."""
    total = Collected()
    rounds = 1 if state.pending() else 0  # resumed in the middle of a round
    while True:
        if not state.pending():
            project = project_loader()
            made = submit(project, state, client)
            if not made:
                # What is still asked for now failed too often to be sent again.
                total.failed = len(next_round(project))
                say(
                    f"batch: done after {rounds} round(s), {total.stored} answers stored, "
                    f"{total.failed} still missing"
                )
                return total
            rounds += 1
            count = sum(len(b.keys) for b in made)
            say(f"batch: round {rounds}: {count} requests in {len(made)} batch(es)")
        pending = status(state, client)
        if any(b.status in FINISHED for b in pending):
            got = collect(project_loader(), state, client)
            total.stored += got.stored
            total.failed += got.failed
            total.truncated += got.truncated
            say(
                f"batch: round {rounds}: {got.stored} stored, {got.failed} missing, "
                f"{got.truncated} cut off"
            )
            continue
        states = ", ".join(sorted({b.status for b in pending}))
        say(f"batch: round {rounds}: waiting ({states})")
        time.sleep(poll)


# -- helpers -------------------------------------------------------------------------------


def _as_sent(state: BatchState, request: ChatRequest) -> ChatRequest:
    """The request, or after a cut-off answer the same with twice the budget and a new
    seed; it stays under the original key (the cache keeps its answer there)."""
    info = state.requests.get(request.key)
    if info is None or not info.truncated:
        return request
    seed = (request.seed or 0) + info.attempts
    return replace(request, max_tokens=request.max_tokens * 2**info.attempts, seed=seed)


def _attempts_left(state: BatchState, request: ChatRequest) -> bool:
    info = state.requests.get(request.key)
    return info is None or info.attempts < MAX_ATTEMPTS


def _info(request: ChatRequest) -> RequestInfo:
    return RequestInfo(
        stage=request.stage,
        model=request.model,
        max_tokens=request.max_tokens,
        json_schema=request.json_schema,
        schema_name=request.schema_name,
        label=request.label,
    )


def _key_of(line: str) -> str:
    import json

    return str(json.loads(line)["custom_id"])


def _numbered(path: Path, index: int) -> Path:
    return path.with_name(f"{path.stem}-{index + 1}{path.suffix}")


def _create(client: Any, batch: Submitted, lines: list[str]) -> None:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    upload = client.files.create(file=(f"aigen-{batch.token}.jsonl", data), purpose="batch")
    remote = client.batches.create(
        input_file_id=upload.id,
        endpoint=jsonl.ENDPOINT,
        completion_window="24h",
        metadata={"aigen": batch.token},
    )
    batch.id, batch.status = remote.id, str(remote.status)


def _adopt(client: Any, batch: Submitted) -> None:
    """A batch whose creation was interrupted before its id was saved: find it by its
    token, or (never created) create it now."""
    for remote in client.batches.list(limit=100):
        if (remote.metadata or {}).get("aigen") == batch.token:
            batch.id, batch.status = remote.id, str(remote.status)
            return


def _store(
    state: BatchState, cache: ResponseCache, result: jsonl.Result, done: Collected, site: str
) -> bool:
    """Check one line's answer as a live answer is checked; keep it if it is good."""
    info = state.requests.get(result.custom_id)
    if info is None or result.body is None:
        return False  # an unknown line, or an error line
    choices = result.body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    probe = ChatRequest(
        stage=info.stage,  # type: ignore[arg-type]
        model=info.model,
        messages=(Message("user", ""),),
        max_tokens=info.max_tokens,
        json_schema=info.json_schema,
        schema_name=info.schema_name,
    )
    try:
        text = check_answer(probe, message.get("content"), choice.get("finish_reason"))
    except BackendError as error:
        if error.kind == "truncated":
            info.truncated = True
            done.truncated += 1
        return False
    usage = result.body.get("usage") if isinstance(result.body.get("usage"), dict) else {}
    cache.set(
        result.custom_id,
        CachedAnswer(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=info.model,
            stage=info.stage,
            label=info.label,
            site=site,
        ),
    )
    info.truncated = False
    done.stored += 1
    return True
