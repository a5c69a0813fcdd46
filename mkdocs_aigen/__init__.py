"""mkdocs-aigen: outline stubs in front matter become generated, cached documentation."""

from __future__ import annotations

__version__ = "0.1.0"
