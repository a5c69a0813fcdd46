"""How lumend reads its configuration: lumen.toml, then LUMEN_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import tomllib

#: Every key of lumen.toml can be overridden by this prefix plus the key in capitals.
ENV_PREFIX = "LUMEN_"


@dataclass
class Config:
    """The settings of one lumend server."""

    #: PostgreSQL connection string; the only setting without a default.
    database_url: str = ""
    #: HTTP port of the API and of the Prometheus metrics on /metrics.
    port: int = 7420
    #: Attempts before a failing job moves to the dead-letter queue.
    max_attempts: int = 5
    #: First retry delay in seconds; each further attempt doubles it.
    backoff_seconds: float = 2.0
    #: Jobs one worker runs at the same time.
    concurrency: int = 16
    log_level: str = "info"


def load(path: str | Path = "lumen.toml") -> Config:
    """Read ``path``, then apply LUMEN_* environment variables on top of it."""
    values = tomllib.loads(Path(path).read_text()) if Path(path).exists() else {}
    config = Config(**values)
    for field in fields(Config):
        raw = os.environ.get(ENV_PREFIX + field.name.upper())
        if raw is not None:
            setattr(config, field.name, type(getattr(config, field.name))(raw))
    if not config.database_url:
        raise ValueError("database_url is required (set LUMEN_DATABASE_URL)")
    return config
