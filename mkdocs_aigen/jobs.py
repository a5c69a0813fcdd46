"""What one page asks for and what it got back: the data the plugin, the pipeline, the
page cache, the lock and the report share.

Kept apart from :mod:`mkdocs_aigen.pipeline` so that a fully cached build, which only
reads finished pages back, never imports the generation machinery.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mkdocs_aigen.requests import ChatRequest
    from mkdocs_aigen.stubs import PageStub

Stage = Literal["expand", "section", "augment", "polish", "review"]
STAGES: tuple[Stage, ...] = ("expand", "section", "augment", "polish", "review")

#: Part of every request's hash and of every stored page's key. Bump it when the meaning
#: of a cached answer changes without the request changing (for example a new way of
#: cleaning output that is applied before caching). Here rather than in
#: :mod:`mkdocs_aigen.requests` because the page store needs it on the cached path.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class ReviewSettings:
    """``review:`` as the pipeline needs it."""

    criteria: tuple[tuple[str, str], ...]
    votes: int = 3
    min_score: float = 6.0
    regenerate: bool = False


@dataclass(frozen=True)
class Settings:
    """Site-wide generation settings, resolved from the config."""

    site_name: str
    model: str
    words: int = 200
    word_compensation: float = 0.15
    min_ratio: float = 0.8
    temperature: float = 0.7
    seed: int | None = None
    site_context: str = ""
    polish: bool = False
    review: ReviewSettings | None = None
    allow_html: bool = False
    #: Backend specific sampling options, part of every request (and so of its hash).
    extra: tuple[tuple[str, Any], ...] = ()
    #: The smallest token budget of any request: a small local model often writes far
    #: past the words it was asked for, and a cut-off answer is never kept.
    min_tokens: int = 0


@dataclass(frozen=True)
class Fallback:
    """The backend the environment resolved instead of the configured one.

    Requests keep the configured identity everywhere; only a request that has to be
    *sent* becomes the fallback's own request, with its model and sampling, and so its
    own key.
    """

    #: Backend name, for messages (``local``).
    name: str
    #: The fallback's model (the GGUF file's name for the embedded model).
    model: str
    temperature: float
    extra: tuple[tuple[str, Any], ...] = ()
    #: See :attr:`Settings.min_tokens`.
    min_tokens: int = 0

    def adapt(self, request: ChatRequest) -> ChatRequest:
        """The request the fallback is really asked, under its own key."""
        return replace(
            request,
            model=self.model,
            temperature=self.temperature,
            extra=self.extra,
            max_tokens=max(request.max_tokens, self.min_tokens),
        )


@dataclass(frozen=True)
class PageJob:
    """One page to generate, with what it knows of its neighbours."""

    stub: PageStub
    title: str
    nav_previous: str | None = None
    nav_next: str | None = None


@dataclass
class SectionResult:
    """A section's final text (before the page-wide polish), or why it has none."""

    path: tuple[str, ...]
    level: int
    key: str
    target: int
    text: str | None = None
    error: str | None = None
    source: str = ""
    augmented: bool = False
    #: The hash the lock file knows this section by: the request without review feedback,
    #: so a regenerated section is still found by its stub.
    lock_key: str = ""
    #: Achieved / target words, for answers measured in this build (not locked ones).
    ratio: float | None = None
    #: Some of its text was written by the fallback backend, not the configured model.
    fallback: bool = False

    @property
    def title(self) -> str:
        """The section's own heading."""
        return self.path[-1]


@dataclass
class Expansion:
    """Titles the model proposed for a ``sections: auto`` item."""

    path: tuple[str, ...]
    key: str
    titles: tuple[str, ...]
    source: str


@dataclass
class PageResult:
    """Everything generated for one page."""

    src_path: str
    sections: list[SectionResult] = field(default_factory=list)
    expansions: list[Expansion] = field(default_factory=list)
    block: str = ""
    polish_key: str | None = None
    polished: str | None = None
    scores: dict[str, float] | None = None
    regenerated: bool = False
    warnings: list[str] = field(default_factory=list)
    #: Requests the page asked for, by stage (whatever answered them).
    asked: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> list[SectionResult]:
        """Sections without text."""
        return [s for s in self.sections if s.text is None]
