"""Jinja2 templates -> chat messages. All prompt wording lives in ``templates/``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
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
        self._custom = bool(templates_dir)
        search.append(str(PACKAGED_TEMPLATES))
        self._search = [Path(folder) for folder in search]
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            # A misspelt variable in a user's template must fail loudly, not vanish.
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates cannot change during a build (``mkdocs serve`` makes a new
            # ``Prompts`` per build): no stat() of every included file per prompt.
            auto_reload=False,
        )
        self._templates: dict[str, jinja2.Template] = {}
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """A hash of every template file that can be rendered, for the page key and every
        request's hash (computed once: ``mkdocs serve`` makes a new ``Prompts`` per build).

        Every file under every template folder counts, subfolders included (a stage
        template may include, import or extend any of them), each by its path relative
        to its folder and its content; a file the user's ``templates_dir`` overrides
        counts as the user's version only, since Jinja2 never loads the packaged one.
        Absolute paths stay out, so the hash is the same on every machine.
        """
        if self._fingerprint is None:
            self._fingerprint = templates_fingerprint(self._search)
        return self._fingerprint

    def check(self) -> None:
        """Load and trial-render every template, so a syntax error or a misspelt variable
        shows before any request is sent, not halfway through a build."""
        if not self._custom:
            # Only the packaged templates, which the test suite checks: compiling and trial-
            # rendering all five would cost every build ~10 ms (a cached build uses one).
            return
        for name in TEMPLATE_NAMES:
            self._template(name)
            # Twice: optional values set (every ``{% if %}`` branch taken) and unset
            # (every ``{% else %}``), so StrictUndefined sees each variable the template uses.
            for present in (True, False):
                try:
                    self.messages(name, _sample_variables(name, present))
                except TemplateError as error:
                    if "is undefined" not in str(error):
                        raise
                    known = ", ".join(sorted(_sample_variables(name, True)))
                    raise TemplateError(f"{error}; the variables it can use are: {known}") from None

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
        # Imported here: a fully cached build fingerprints the templates but renders none.
        from mkdocs_aigen.requests import Message

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


def templates_fingerprint(folders: list[Path]) -> str:
    """The hash of the files Jinja2 would load from ``folders`` (the first folder with a
    given relative path wins, as in :class:`jinja2.FileSystemLoader`)."""
    effective: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            relative = path.relative_to(folder)
            # Editor and tool droppings (``.git``, ``__pycache__``) are not templates.
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            if path.is_file():
                effective.setdefault(relative.as_posix(), path)
    digest = hashlib.sha256()
    for name in sorted(effective):
        content = effective[name].read_bytes()
        # Lengths first, so no two different sets of files run together.
        digest.update(b"%d:%s%d:" % (len(name.encode()), name.encode(), len(content)))
        digest.update(content)
    return digest.hexdigest()


# What the pipeline passes to each stage's template (see ``pipeline.PagePipeline``), with
# stand-in values, for :meth:`Prompts.check`. Keep in step with the pipeline's variables.
_PAGE_VARIABLES = (
    "site_name",
    "site_context",
    "page_title",
    "nav_previous",
    "nav_next",
    "brief",
    "audience",
    "tone",
    "page_sources",
    "grounded",
    "language",
    "language_name",
)
_SECTION_VARIABLES = (
    "outline",
    "section_path",
    "level",
    "previous_section",
    "next_section",
    "has_children",
    "hint",
    "feedback",
    "words",
    "section_sources",
)
_STAGE_VARIABLES: dict[str, tuple[str, ...]] = {
    "section": _SECTION_VARIABLES,
    # An extension request carries the section's own variables and its draft.
    "augment": (*_SECTION_VARIABLES, "draft", "achieved", "target"),
    "expand": ("outline", "section_path", "count", "hint", "section_sources"),
    "polish": ("page_text",),
    "review": ("page_text", "criteria"),
}
#: Always given a value by the pipeline; every other variable may be empty or ``None``.
_REQUIRED = frozenset(
    {
        "site_name",
        "page_title",
        "brief",
        "outline",
        "section_path",
        "level",
        "words",
        "draft",
        "achieved",
        "target",
        "count",
        "page_text",
        "criteria",
    }
)
_SAMPLES: dict[str, Any] = {
    "section_path": ["Sample section"],
    "level": 2,
    "words": 100,
    "achieved": 50,
    "target": 100,
    "count": 3,
    "has_children": True,
    "criteria": {"clarity": "sample criterion"},
    "grounded": True,
    "language": "fr",
    "language_name": "French",
    "page_sources": [{"label": "src/sample.py", "text": "sample page source"}],
    "section_sources": [{"label": "src/sample.py:1-2", "text": "sample section source"}],
}


def _sample_variables(stage: str, present: bool) -> dict[str, Any]:
    """Stand-in variables for ``stage``; ``present=False`` leaves the optional ones empty."""
    variables: dict[str, Any] = {}
    for name in (*_PAGE_VARIABLES, *_STAGE_VARIABLES.get(stage, ())):
        if present or name in _REQUIRED:
            variables[name] = _SAMPLES.get(name, f"sample {name}")
        else:
            variables[name] = False if name == "has_children" else None
    return variables
