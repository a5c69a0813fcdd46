"""The batch state file: what was submitted, so any step can be resumed without sending a
request twice or losing an answer."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Statuses after which a batch's files can be collected.
FINISHED = frozenset({"completed", "expired", "cancelled", "failed"})
#: A request cut off at max_tokens is sent again with a larger budget at most this often.
MAX_ATTEMPTS = 3


@dataclass
class Submitted:
    """One batch (or one JSONL file written for a batch runner)."""

    id: str
    model: str
    keys: list[str]
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    collected: bool = False
    #: Set before the batch is created, and sent as its metadata: a run interrupted
    #: between creating the batch and saving its id finds it again by this.
    token: str = ""


@dataclass
class RequestInfo:
    """What checking and storing an answer needs of its request."""

    stage: str
    model: str
    max_tokens: int
    json_schema: str | None = None
    schema_name: str | None = None
    label: str = ""
    attempts: int = 0
    #: Cut off at max_tokens last time: the next round asks with twice the budget.
    truncated: bool = False


@dataclass
class BatchState:
    """``batch-state.json`` in the cache directory."""

    path: Path
    batches: list[Submitted] = field(default_factory=list)
    requests: dict[str, RequestInfo] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> BatchState:
        """Read ``path``; a missing file is an empty state."""
        if not path.exists():
            return cls(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            path,
            [Submitted(**item) for item in data.get("batches", [])],
            {key: RequestInfo(**info) for key, info in data.get("requests", {}).items()},
        )

    def save(self) -> None:
        """Write atomically: an interrupted save leaves the previous state."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {
            "batches": [asdict(b) for b in self.batches],
            "requests": {key: asdict(info) for key, info in self.requests.items()},
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(temporary, self.path)

    def in_flight(self) -> set[str]:
        """Keys submitted and not collected yet: never submitted again meanwhile."""
        return {key for batch in self.batches if not batch.collected for key in batch.keys}

    def pending(self) -> list[Submitted]:
        """Batches not collected yet."""
        return [batch for batch in self.batches if not batch.collected]
