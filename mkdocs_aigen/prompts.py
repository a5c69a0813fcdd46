"""Jinja2 templates -> chat messages. All prompt wording lives in ``templates/``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from mkdocs_aigen.requests import Message

PACKAGED_TEMPLATES = Path(__file__).parent / "templates"

#: One template per stage; each defines the blocks ``system`` and ``user``.
TEMPLATE_NAMES = ("section", "expand", "augment", "polish", "review")


class TemplateError(Exception):
    """A template that is missing or fails to render, with the template's name."""


class Prompts:
    """Renders the stage templates, the user's ``templates_dir`` taking precedence."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        search = [str(templates_dir)] if templates_dir else []
        search.append(str(PACKAGED_TEMPLATES))
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            # A misspelt variable in a user's template must fail loudly, not vanish.
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates: dict[str, jinja2.Template] = {}

    def check(self) -> None:
        """Load every template once, so a syntax error shows before any request."""
        for name in TEMPLATE_NAMES:
            self._template(name)

    def messages(self, stage: str, variables: Mapping[str, Any]) -> tuple[Message, ...]:
        """Render ``stage``'s template into a system and a user message."""
        template = self._template(stage)
        try:
            context = template.new_context(dict(variables))
            system = "".join(template.blocks["system"](context)).strip()
            user = "".join(template.blocks["user"](context)).strip()
        except KeyError as error:
            raise TemplateError(
                f"template '{stage}.j2' must define the blocks 'system' and 'user' "
                f"(missing {error})"
            ) from None
        except jinja2.TemplateError as error:
            raise TemplateError(f"template '{stage}.j2' failed to render: {error}") from None
        return (Message("system", system), Message("user", user))

    def _template(self, stage: str) -> jinja2.Template:
        cached = self._templates.get(stage)
        if cached is not None:
            return cached
        try:
            template = self._env.get_template(f"{stage}.j2")
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(
                f"template '{stage}.j2' has a syntax error on line {error.lineno}: {error.message}"
            ) from None
        except jinja2.TemplateNotFound:
            raise TemplateError(f"template '{stage}.j2' was not found") from None
        self._templates[stage] = template
        return template
