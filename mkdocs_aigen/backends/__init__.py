"""Backends turn a :class:`~mkdocs_aigen.requests.ChatRequest` into a Completion."""
