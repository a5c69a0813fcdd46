"""OpenAI's Files and Batch APIs, faked for :mod:`tests.fake_server`.

``/v1/files`` (upload, retrieve, content) and ``/v1/batches`` (create, retrieve, list,
cancel). A batch moves one state per retrieve, so tests need no clock: ``validating``,
then ``in_progress`` (as many retrieves as ``steps``), then ``completed``, when every
line is answered by the server's responder into an output file, or failed into an error
file. Switches: ``fail_ids`` and ``fail_every`` fail lines, ``truncate_ids`` cuts
these answers off at ``max_tokens`` once, ``expire_next`` ends the next batch ``expired`` with half
of its lines answered.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

Send = Callable[[int, Any], None]


@dataclass
class FakeBatches:
    """The files and batches one fake server holds."""

    #: ``(body, record) -> str`` answers a line, as the server answers a live request.
    answer: Callable[[dict[str, Any]], str]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Batch ids in the order they were created (tests count duplicate submissions).
    created: list[str] = field(default_factory=list)
    fail_ids: set[str] = field(default_factory=set)
    fail_every: int = 0
    truncate_ids: set[str] = field(default_factory=set)
    expire_next: bool = False
    steps: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _remaining: dict[str, int] = field(default_factory=dict)

    # -- routes ----------------------------------------------------------------------

    def handle(self, method: str, path: str, raw: bytes, headers: Any, send: Send) -> None:
        """Answer one request under ``/v1/files`` or ``/v1/batches``."""
        parts = [p for p in path.split("/") if p][1:]  # drop "v1"
        with self._lock:
            if parts == ["files"] and method == "POST":
                send(200, self._upload(raw, headers.get("Content-Type", "")))
            elif parts[:1] == ["files"] and len(parts) == 3 and parts[2] == "content":
                send(200, self.files[parts[1]][1]) if parts[1] in self.files else _missing(send)
            elif parts[:1] == ["files"] and len(parts) == 2:
                send(200, self._file(parts[1])) if parts[1] in self.files else _missing(send)
            elif parts == ["batches"] and method == "POST":
                send(200, self._create(json.loads(raw)))
            elif parts == ["batches"]:
                data = [self.batches[i] for i in reversed(self.created)]
                send(200, {"object": "list", "data": data, "has_more": False})
            elif len(parts) == 2 and parts[1] in self.batches:
                send(200, self._advance(parts[1]))
            elif len(parts) == 3 and parts[2] == "cancel" and parts[1] in self.batches:
                batch = self.batches[parts[1]]
                if batch["status"] in ("validating", "in_progress"):
                    batch["status"] = "cancelling"
                send(200, batch)
            else:
                _missing(send)

    # -- files -----------------------------------------------------------------------

    def _upload(self, raw: bytes, content_type: str) -> dict[str, Any]:
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        name, data = "upload.jsonl", b""
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                name = part.get_filename() or name
                data = part.get_payload(decode=True) or b""
        return self._store(name, data)

    def _store(self, name: str, data: bytes) -> dict[str, Any]:
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = (name, data)
        return self._file(file_id)

    def _file(self, file_id: str) -> dict[str, Any]:
        name, data = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": "batch",
            "status": "processed",
        }

    # -- batches ---------------------------------------------------------------------

    def _create(self, payload: dict[str, Any]) -> dict[str, Any]:
        batch_id = f"batch_{len(self.batches) + 1}"
        lines = self.files[payload["input_file_id"]][1].decode("utf-8").splitlines()
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": payload.get("endpoint"),
            "errors": None,
            "input_file_id": payload["input_file_id"],
            "completion_window": payload.get("completion_window", "24h"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": payload.get("metadata") or None,
        }
        self.batches[batch_id] = batch
        self.created.append(batch_id)
        self._remaining[batch_id] = self.steps
        return batch

    def _advance(self, batch_id: str) -> dict[str, Any]:
        """One state further: validating, in_progress (``steps`` times), then done."""
        batch = self.batches[batch_id]
        status = batch["status"]
        if status == "validating":
            batch["status"] = "in_progress"
        elif status == "cancelling":
            batch["status"] = "cancelled"
        elif status == "in_progress":
            self._remaining[batch_id] -= 1
            if self._remaining[batch_id] <= 0:
                expire, self.expire_next = self.expire_next, False
                self._run(batch, expire)
        return batch

    def _run(self, batch: dict[str, Any], expire: bool) -> None:
        lines = self.files[batch["input_file_id"]][1].decode("utf-8").splitlines()
        if expire:
            lines = lines[: len(lines) // 2]
        output, errors = [], []
        for number, line in enumerate(lines, 1):
            item = json.loads(line)
            custom_id = item["custom_id"]
            failed = custom_id in self.fail_ids or (
                self.fail_every and number % self.fail_every == 0
            )
            if failed:
                errors.append(
                    {
                        "id": f"batch_req_{number}",
                        "custom_id": custom_id,
                        "response": None,
                        "error": {"code": "server_error", "message": "simulated line failure"},
                    }
                )
                continue
            output.append(
                {
                    "id": f"batch_req_{number}",
                    "custom_id": custom_id,
                    "response": {
                        "status_code": 200,
                        "request_id": f"req_{number}",
                        "body": self._completion(item["body"], custom_id, number),
                    },
                    "error": None,
                }
            )
        if output:
            batch["output_file_id"] = self._store("output.jsonl", _jsonl(output))["id"]
        if errors:
            batch["error_file_id"] = self._store("errors.jsonl", _jsonl(errors))["id"]
        batch["request_counts"] = {
            "total": batch["request_counts"]["total"],
            "completed": len(output),
            "failed": len(errors),
        }
        batch["status"] = "expired" if expire else "completed"

    def _completion(self, body: dict[str, Any], custom_id: str, number: int) -> dict[str, Any]:
        text = self.answer(body)
        truncated = custom_id in self.truncate_ids
        self.truncate_ids.discard(custom_id)  # once: a larger budget then suffices
        return {
            "id": f"chatcmpl-batch{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if truncated else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": sum(len(str(m.get("content", ""))) for m in body["messages"]) // 4,
                "completion_tokens": len(text.split()),
                "total_tokens": 0,
            },
        }


def _jsonl(items: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")


def _missing(send: Send) -> None:
    send(404, {"error": {"message": "No such object", "type": "invalid_request_error"}})
