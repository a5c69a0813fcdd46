"""Batch API JSONL: one request per line, keyed by the request hash, and its results."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mkdocs_aigen.backends.body import chat_body
from mkdocs_aigen.requests import ChatRequest

#: The Batch API's limits for one input file.
MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024
ENDPOINT = "/v1/chat/completions"


def request_line(request: ChatRequest, custom_id: str) -> str:
    """One JSONL line: the body a live request would send, under ``custom_id``."""
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": chat_body(request)}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def split(lines: Iterable[str]) -> list[list[str]]:
    """Lines grouped into files of at most :data:`MAX_LINES` lines and :data:`MAX_BYTES`."""
    files: list[list[str]] = [[]]
    size = 0
    for line in lines:
        length = len(line.encode("utf-8")) + 1
        if files[-1] and (len(files[-1]) >= MAX_LINES or size + length > MAX_BYTES):
            files.append([])
            size = 0
        files[-1].append(line)
        size += length
    return [group for group in files if group]


@dataclass(frozen=True)
class Result:
    """One line of an output or error file."""

    custom_id: str
    #: The chat completion's body, when the line has one with status 200.
    body: dict[str, Any] | None
    #: Why the line has no answer.
    error: str | None = None


def read_results(text: str) -> Iterator[Result]:
    """The lines of an output or error file, matched by ``custom_id`` (never by order)."""
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            yield Result(f"<line {number}>", None, "not valid JSON")
            continue
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str):
            continue
        response = item.get("response")
        error = item.get("error")
        if isinstance(response, dict) and response.get("status_code") == 200:
            body = response.get("body")
            if isinstance(body, dict):
                yield Result(custom_id, body)
                continue
        if isinstance(error, dict):
            message = str(error.get("message") or error.get("code") or "failed")
        elif isinstance(response, dict):
            message = f"HTTP {response.get('status_code')}"
        else:
            message = "no response"
        yield Result(custom_id, None, message)
