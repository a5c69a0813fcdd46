"""What a page needs, written as flows: expand -> fill -> augment -> polish -> review.

Flows only describe requests and decide what to do with the answers; the engine decides
where answers come from (lock, cache, network) and runs everything concurrently.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from mkdocs_aigen.answers import Outcome
from mkdocs_aigen.assemble import (
    RenderedSection,
    clean_section_text,
    count_words,
    heading_lines,
    placeholder,
    render_sections,
    unwrap_markdown_fence,
)
from mkdocs_aigen.backends.checks import unwrap_json_fence
from mkdocs_aigen.engine import Flow, Fresh, Gather
from mkdocs_aigen.history import section_parts
from mkdocs_aigen.jobs import (
    Expansion,
    PageJob,
    PageResult,
    ReviewSettings,
    SectionResult,
    Settings,
    Stage,
)
from mkdocs_aigen.languages import language_name
from mkdocs_aigen.prompts import Prompts
from mkdocs_aigen.refresh import Refresh
from mkdocs_aigen.requests import ChatRequest, Message, inputs_key
from mkdocs_aigen.stats import BuildStats
from mkdocs_aigen.stubs import OutlineItem

#: Tokens allowed per requested word: English prose runs about 1.3 tokens a word; the
#: rest is headroom for Markdown syntax and code so answers are not cut off.
TOKENS_PER_WORD = 1.5
TOKEN_HEADROOM = 64
#: Prompt lines at least this long are never kept when a model repeats them.
ECHO_MIN_CHARS = 16


class PagePipeline:
    """Builds the flows of one page."""

    def __init__(
        self,
        job: PageJob,
        settings: Settings,
        prompts: Prompts,
        stats: BuildStats,
        refresh: Refresh | None = None,
    ) -> None:
        self.job = job
        #: What of this page to send again whatever the lock and cache hold.
        self.refresh = refresh
        #: ``(stage, path)`` of every request sent fresh because of ``refresh``.
        self.refreshed: list[tuple[str, tuple[str, ...]]] = []
        self.settings = settings
        self.prompts = prompts
        self.stats = stats
        self.result = PageResult(job.stub.src_path, language=job.language)
        self.polish = job.stub.polish if job.stub.polish is not None else settings.polish
        self._plain_outline: str | None = None
        self._group: str | None = None
        #: Proposed children (``sections: auto``) are written from their parent's sources.
        self._parents: dict[str, OutlineItem] = {}

    # -- the page -------------------------------------------------------------------------

    def flow(self) -> Flow:
        """The whole page: every section at once, then polish and review."""
        sections = yield from self._all_sections(feedback=None)
        self.result.sections = sections
        block = yield from self._polished_block(sections)
        review = self.settings.review
        if review is not None and review.criteria and not self.result.failed:
            scores = yield from self._review(block, review)
            low = _low_criteria(scores, review)
            if low and review.regenerate:
                feedback = "; ".join(f"{name} ({scores[name]:.1f}/10)" for name in low)
                self.result.regenerated = True
                self.stats.more_sections(len(sections))
                sections = yield from self._all_sections(feedback=feedback)
                self.result.sections = sections
                block = yield from self._polished_block(sections)
                scores = yield from self._review(block, review)
                low = _low_criteria(scores, review)
            self.result.scores = scores or None
            if low:
                self.result.warnings.append(
                    f"{self.job.stub.src_path}: review scored "
                    + ", ".join(f"{name} {scores[name]:.1f}" for name in low)
                    + f", below min_score {review.min_score:g}"
                )
        self.result.block = block
        return self.result

    def _all_sections(self, feedback: str | None) -> Iterator[Any]:
        stub = self.job.stub
        flows = [
            self._item(item, (item.title,), 2, _neighbours(stub.outline, i), feedback)
            for i, item in enumerate(stub.outline)
        ]
        nested: list[list[SectionResult]] = yield Gather(flows)
        return [section for group in nested for section in _reraise(group)]

    def _item(
        self,
        item: OutlineItem,
        path: tuple[str, ...],
        level: int,
        neighbours: tuple[str | None, str | None],
        feedback: str | None,
        outline_override: str | None = None,
    ) -> Flow:
        """One outline item: its own text and, concurrently, its children's."""
        has_children = bool(item.children) or item.auto is not None
        own = self._section(item, path, level, neighbours, has_children, feedback, outline_override)
        if not has_children:
            # Most items are leaves: no Gather (two more generators and their callbacks),
            # which was a fair part of what a cached section costs.
            own_result = yield from own
            return [own_result]
        if item.auto is not None:
            children: Flow = self._expanded_children(item, path, level, feedback)
        else:
            children = self._children(item.children, path, level, feedback)
        own_result, child_results = yield Gather([own, children])
        return [_reraise(own_result), *_reraise(child_results)]

    def _children(
        self,
        items: Sequence[OutlineItem],
        path: tuple[str, ...],
        level: int,
        feedback: str | None,
        outline_override: str | None = None,
    ) -> Flow:
        flows = [
            self._item(
                child,
                (*path, child.title),
                level + 1,
                _neighbours(items, i),
                feedback,
                outline_override,
            )
            for i, child in enumerate(items)
        ]
        nested = yield Gather(flows)
        return [section for group in nested for section in _reraise(group)]

    # -- one section ----------------------------------------------------------------------

    def _section(
        self,
        item: OutlineItem,
        path: tuple[str, ...],
        level: int,
        neighbours: tuple[str | None, str | None],
        has_children: bool,
        feedback: str | None,
        outline_override: str | None,
    ) -> Flow:
        target = item.words or self.job.stub.words or self.settings.words
        # Rounded first: in binary 100 * 1.1 is 110.00000000000001, whose ceiling is 111.
        asked = math.ceil(round(target * (1 + self.settings.word_compensation), 6))
        variables = {
            **self._page_variables(),
            "outline": outline_override or self._outline_text(),
            "section_path": list(path),
            "level": level,
            "previous_section": neighbours[0],
            "next_section": neighbours[1],
            "has_children": has_children,
            "hint": item.hint,
            "feedback": feedback,
            "words": asked,
            "section_sources": self._item_sources(item) or None,
        }
        request = self._request("section", variables, _max_tokens(asked), path)
        plain_request = request
        if feedback is not None:
            plain = {**variables, "feedback": None}
            plain_request = self._request("section", plain, _max_tokens(asked), path, count=False)
        result = SectionResult(
            path=path,
            level=level,
            key=request.key,
            target=target,
            lock_key=plain_request.key,
            lock_inputs=plain_request.inputs,
            sources=self._provenance(item),
            cite=self._cites(item),
        )
        result.parts = section_parts(
            {**variables, "feedback": None},
            self.settings.model,
            [self.settings.temperature, self.settings.seed, self.settings.extra],
            self.prompts.fingerprint(),
            result.sources,
        )
        outcome: Outcome = yield self._ask(request, path)
        result.source = outcome.source
        result.fallback = outcome.fallback
        result.created = outcome.created
        result.answer_key = outcome.answer_key
        if not outcome.ok:
            result.error = outcome.error
            self._finish(result)
            return result
        text = clean_section_text(outcome.text or "", level, path[-1])
        if outcome.source != "lock":  # an author's text in the lock is taken as written
            text = drop_echoed_lines(text, request)
        elif outcome.original is not None:
            result.edited = self._edited(text, outcome.original, request, level, path[-1], target)
        words: int | None = None
        if outcome.source not in ("lock", "planned"):
            achieved = words = count_words(text)
            if achieved < self.settings.min_ratio * target:
                variables.update(draft=text, achieved=achieved, target=target)
                extend = self._request("augment", variables, _max_tokens(asked), path)
                longer: Outcome = yield self._ask(extend, path)
                result.augmented = True
                if longer.ok:
                    candidate = clean_section_text(longer.text or "", level, path[-1])
                    candidate = drop_echoed_lines(candidate, extend)
                    # Keep the longer of the two: an extension that came back shorter
                    # than the draft is worse than no extension.
                    longer_words = count_words(candidate)
                    if longer_words > achieved:
                        text, words = candidate, longer_words
                        result.fallback = result.fallback or longer.fallback
                        result.created = longer.created or result.created
        result.text = text
        self._finish(result, words)
        return result

    def _edited(
        self,
        locked: str,
        original: str,
        request: ChatRequest,
        level: int,
        title: str,
        target: int,
    ) -> bool | None:
        """Whether the lock's text differs from what the build made of the model's answer
        (``None``: that answer was extended, so the lock holds more than it: can't tell)."""
        made = drop_echoed_lines(clean_section_text(original, level, title), request)
        if count_words(made) < self.settings.min_ratio * target:
            return None
        return " ".join(made.split()) != " ".join(locked.split())

    def _finish(self, result: SectionResult, words: int | None = None) -> None:
        """Count the section in the stats; ``words``: its count, when already known."""
        ratio = None
        if result.text is not None and result.source not in ("lock", "planned"):
            if words is None:
                words = count_words(result.text)
            ratio = words / max(1, result.target)
        result.ratio = ratio
        self.stats.section_finished(
            failed=result.text is None,
            from_store=result.source in ("lock", "cache"),
            ratio=ratio,
            augmented=result.augmented,
        )

    # -- outline expansion ----------------------------------------------------------------

    def _expanded_children(
        self, item: OutlineItem, path: tuple[str, ...], level: int, feedback: str | None
    ) -> Flow:
        count = item.auto or 0
        variables = {
            **self._page_variables(),
            "outline": self._outline_text(),
            "section_path": list(path),
            "count": count,
            "hint": item.hint,
            "section_sources": self._item_sources(item) or None,
        }
        schema = _outline_schema(count)
        request = self._request("expand", variables, 60 + 30 * count, path, schema, "outline")
        outcome: Outcome = yield self._ask(request, path)
        titles, problem = _parse_titles(outcome, count)
        if problem is not None and outcome.source in ("network", "cache"):
            # One retry that shows the model its mistake; cached like everything else,
            # so the outline stays the same on every rebuild.
            retry = _with_correction(request, outcome.text or "", problem)
            self.stats.page_asked(self.result, "expand")
            outcome = yield self._ask(retry, path)
            titles, problem = _parse_titles(outcome, count)
        if titles is None:
            self._finish_missing_children(count)
            return [
                SectionResult(
                    path=(*path, "Subsections"),
                    level=level + 1,
                    key=request.key,
                    target=0,
                    error=f"outline expansion failed: {problem or outcome.error}",
                    source=outcome.source,
                )
            ]
        self.result.expansions.append(
            Expansion(path, request.key, titles, outcome.source, request.inputs)
        )
        children = [
            OutlineItem(title=title, words=item.words, field=f"{item.field}.sections[{i}]")
            for i, title in enumerate(titles)
        ]
        for child in children:
            self._parents[child.field] = self._parents.get(item.field, item)
        outline = self._outline_text(expanded={path: titles})
        nested = yield from self._children(children, path, level, feedback, outline)
        return nested

    def _finish_missing_children(self, count: int) -> None:
        # The site's total counted ``count`` children for this item: all of them are done
        # (and failed), or progress would never reach the total.
        for _ in range(max(1, count)):
            self.stats.section_finished(failed=True, from_store=False, ratio=None)

    # -- polish and review ----------------------------------------------------------------

    def _polished_block(self, sections: list[SectionResult]) -> Iterator[Any]:
        block = self._render(sections)
        self.result.polish_key = None
        self.result.polished = None
        if not self.polish or any(s.text is None for s in sections):
            return block
        variables = {**self._page_variables(), "page_text": block}
        words = count_words(block)
        request = self._request("polish", variables, _max_tokens(words * 1.1), ())
        outcome: Outcome = yield self._ask(request, ())
        self.result.polish_inputs = request.inputs
        if outcome.source == "planned":
            self.result.polish_key = request.key  # what `lock --check` must find
            return block
        if not outcome.ok:
            # A request the spending cap refused is said once for the build, not per page.
            if outcome.error and outcome.source != "capped":
                self.result.warnings.append(
                    f"{self.job.stub.src_path}: polish failed ({outcome.error}); "
                    "kept the unpolished page"
                )
            return block
        polished = unwrap_markdown_fence(outcome.text or "")
        if outcome.source != "lock":
            problem = _polish_problem(block, polished)
            if problem is not None:
                self.result.warnings.append(
                    f"{self.job.stub.src_path}: polished text discarded ({problem}); "
                    "kept the unpolished page"
                )
                return block
        self.result.polish_key = request.key
        self.result.polished = polished
        return sanitize_markdown(polished, self.settings.allow_html) + "\n"

    def _review(self, block: str, review: ReviewSettings) -> Iterator[Any]:
        criteria = dict(review.criteria)
        schema = _review_schema(list(criteria))
        variables = {**self._page_variables(), "page_text": block, "criteria": criteria}
        flows = [
            self._one_vote(
                self._request(
                    "review", variables, 30 + 12 * len(criteria), (), schema, "review", vote
                ),
                list(criteria),
            )
            for vote in range(review.votes)
        ]
        votes: list[dict[str, int] | str | None] = yield Gather(flows)
        valid = [v for v in votes if isinstance(v, dict)]
        if not valid and all(v == "missing" for v in votes):
            return {}  # offline: reviews are not part of the lock, and cost nothing to skip
        if not valid:
            self.result.warnings.append(f"{self.job.stub.src_path}: review got no valid scores")
            return {}
        return {name: sum(v[name] for v in valid) / len(valid) for name in criteria}

    def _one_vote(self, request: ChatRequest, criteria: list[str]) -> Flow:
        outcome: Outcome = yield self._ask(request, ())
        if outcome.source == "planned":
            return dict.fromkeys(criteria, 10)
        if outcome.source in ("missing", "capped"):
            return "missing"
        return _parse_scores(outcome, criteria)

    # -- helpers --------------------------------------------------------------------------

    def _ask(self, request: ChatRequest, path: tuple[str, ...]) -> ChatRequest | Fresh:
        """What to yield for ``request``: itself, or fresh when the author asked for it."""
        refresh = self.refresh
        if refresh is None or not refresh.wants(request.stage, path):
            return request
        self.refreshed.append((request.stage, path))
        return Fresh(request)

    def _render(self, sections: list[SectionResult]) -> str:
        rendered = []
        for section in sections:
            if section.text is None:
                body = placeholder(" > ".join(section.path), section.error or "unknown error")
            else:
                body = sanitize_markdown(section.text, self.settings.allow_html)
                if section.sources and section.cite:
                    body += "\n\n" + self._cite_line(section)
            rendered.append(RenderedSection(section.level, section.title, body))
        return render_sections(rendered)

    # -- sources --------------------------------------------------------------------------

    def _owner(self, item: OutlineItem) -> OutlineItem:
        """The item whose ``sources`` and ``cite`` apply (a proposed child's parent)."""
        return self._parents.get(item.field, item)

    def _item_sources(self, item: OutlineItem) -> tuple[Any, ...]:
        grounding = self.job.grounding
        return grounding.for_item(self._owner(item).field) if grounding is not None else ()

    def _provenance(self, item: OutlineItem) -> tuple[tuple[str, str], ...]:
        grounding = self.job.grounding
        if grounding is None:
            return ()
        texts = (*grounding.page, *grounding.for_item(self._owner(item).field))
        return tuple(dict.fromkeys((t.label, t.digest) for t in texts))

    def _cites(self, item: OutlineItem) -> bool:
        """Whether a "Sources:" line goes under the item: its own ``cite``, else the
        page's, else the site's."""
        choices = (self._owner(item).cite, self.job.stub.cite)
        return next((c for c in choices if c is not None), self.settings.cite)

    def _cite_line(self, section: SectionResult) -> str:
        from mkdocs_aigen.citations import cite_line

        grounding = self.job.grounding
        assert grounding is not None
        texts = {t.label: t for t in (*grounding.page, *grounding.all_items())}
        return cite_line([texts[label] for label, _ in section.sources], self.settings.source_link)

    def _page_variables(self) -> dict[str, Any]:
        stub = self.job.stub
        grounding = self.job.grounding
        return {
            "site_name": self.settings.site_name,
            "site_context": self.settings.site_context,
            "page_title": self.job.title,
            "nav_previous": self.job.nav_previous,
            "nav_next": self.job.nav_next,
            "brief": stub.brief,
            "audience": stub.audience,
            "tone": stub.tone,
            # None, not False or (): a page without sources keeps its inputs key.
            "page_sources": grounding.page or None if grounding is not None else None,
            "grounded": True if grounding is not None else None,
            # None for English: a page that never set a language keeps its keys.
            "language": self.job.language,
            "language_name": language_name(self.job.language) if self.job.language else None,
        }

    def _outline_text(self, expanded: dict[tuple[str, ...], tuple[str, ...]] | None = None) -> str:
        """Titles only, so editing one section's hint or words regenerates that section alone."""
        if expanded is None and self._plain_outline is not None:
            return self._plain_outline  # every section of the page asks for it
        lines: list[str] = []

        def walk(items: Sequence[OutlineItem], path: tuple[str, ...], depth: int) -> None:
            for item in items:
                here = (*path, item.title)
                lines.append(f"{'  ' * depth}- {item.title}")
                if item.auto is not None:
                    titles = (expanded or {}).get(here)
                    if titles is None:
                        lines.append(f"{'  ' * (depth + 1)}- (subsections to be proposed)")
                    else:
                        lines.extend(f"{'  ' * (depth + 1)}- {t}" for t in titles)
                walk(item.children, here, depth + 1)

        walk(self.job.stub.outline, (), 0)
        text = "\n".join(lines)
        if expanded is None:
            self._plain_outline = text
        return text

    def _request(
        self,
        stage: Stage,
        variables: dict[str, Any],
        max_tokens: int,
        path: tuple[str, ...],
        schema: dict[str, Any] | None = None,
        schema_name: str | None = None,
        vote: int | None = None,
        *,
        count: bool = True,
    ) -> ChatRequest:
        if count:
            self.stats.page_asked(self.result, stage)
        messages = self.prompts.messages(stage, variables)
        seed = self.settings.seed
        if vote is not None:
            # Independent votes need distinct requests (or the cache would answer all
            # of them with the first); the vote number rides in the seed.
            seed = (seed or 0) + vote
        label = f"{self.job.stub.src_path}: {' > '.join(path) or stage}"
        schema_json = json.dumps(schema, sort_keys=True) if schema is not None else None
        sampling = [max_tokens, self.settings.temperature, seed, schema_json, self.settings.extra]
        return ChatRequest(
            stage=stage,
            model=self.settings.model,
            messages=messages,
            max_tokens=max(16, int(max_tokens)),
            temperature=self.settings.temperature,
            seed=seed,
            json_schema=schema_json,
            schema_name=schema_name,
            extra=self.settings.extra,
            templates=self.prompts.fingerprint(),
            label=label,
            inputs=inputs_key(stage, self.settings.model, variables, sampling),
            cache_group=self._cache_group(),
        )

    def _cache_group(self) -> str:
        """The page's ``prompt_cache_key``: a short digest (providers cap its length, and
        page paths stay off the wire)."""
        if self._group is None:
            import hashlib

            page = f"{self.settings.site_name}\0{self.job.stub.src_path}"
            self._group = "aigen-" + hashlib.sha256(page.encode("utf-8")).hexdigest()[:24]
        return self._group


def sanitize_markdown(text: str, allow_html: bool) -> str:
    """:func:`mkdocs_aigen.sanitize.sanitize_markdown`, imported on first use: a rebuild
    served from the page cache never needs it."""
    from mkdocs_aigen.sanitize import sanitize_markdown as sanitize

    return sanitize(text, allow_html)


def drop_echoed_lines(text: str, request: ChatRequest) -> str:
    """Remove lines the model copied verbatim from its own prompt.

    Small models (the embedded demo model especially) often start by repeating the
    prompt's ``Page: ...`` and ``Brief: ...`` lines. A whole prompt line of some length
    is never prose worth keeping, whatever the model; short ones (a bare ``- Overview``
    from the outline) may be legitimate, so they stay.
    """
    prompt_lines = {
        line.strip()
        for message in request.messages
        for line in message.content.splitlines()
        if len(line.strip()) >= ECHO_MIN_CHARS
    }
    kept = [line for line in text.split("\n") if line.strip() not in prompt_lines]
    return "\n".join(kept).strip() if len(kept) != text.count("\n") + 1 else text


def _max_tokens(words: float) -> int:
    return math.ceil(words * TOKENS_PER_WORD) + TOKEN_HEADROOM


def _neighbours(items: Sequence[OutlineItem], index: int) -> tuple[str | None, str | None]:
    previous = items[index - 1].title if index > 0 else None
    following = items[index + 1].title if index + 1 < len(items) else None
    return previous, following


def _reraise(value: Any) -> Any:
    """Gathered results carry exceptions as values; a bug in a flow must not be hidden."""
    if isinstance(value, BaseException):
        raise value
    return value


def _low_criteria(scores: dict[str, float], review: ReviewSettings) -> list[str]:
    return [name for name, score in scores.items() if score < review.min_score]


#: Longest proposed title: the outline schema's limit, checked on every answer too
#: (providers' strict modes do not enforce lengths).
TITLE_MAX_CHARS = 60


def _outline_schema(count: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "titles": {
                "type": "array",
                # Bounded titles: small models otherwise ramble past max_tokens and
                # leave the JSON unterminated.
                "items": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX_CHARS},
                "minItems": count,
                "maxItems": count,
            }
        },
        "required": ["titles"],
        "additionalProperties": False,
    }


#: The scale every review criterion is scored on.
SCORE_RANGE = (1, 10)


def _review_schema(criteria: list[str]) -> dict[str, Any]:
    """Every property required and no extra ones (strict mode's rules); the range is the
    contract the local grammar enforces and answers are checked against: providers get
    it in words (``backends.schemas.strict_subset``)."""
    low, high = SCORE_RANGE
    score = {"type": "integer", "minimum": low, "maximum": high}
    return {
        "type": "object",
        "properties": {
            "scores": {
                "type": "object",
                "properties": dict.fromkeys(criteria, score),
                "required": criteria,
                "additionalProperties": False,
            }
        },
        "required": ["scores"],
        "additionalProperties": False,
    }


def _load_json(text: str) -> Any:
    return json.loads(unwrap_json_fence(text))


def _parse_titles(outcome: Outcome, count: int) -> tuple[tuple[str, ...] | None, str | None]:
    """Validated titles, or ``None`` and what was wrong with the answer."""
    if not outcome.ok:
        return None, outcome.error
    try:
        data = _load_json(outcome.text or "")
    except ValueError as error:
        return None, f"the answer is not valid JSON ({error})"
    titles = data.get("titles") if isinstance(data, dict) else None
    if not isinstance(titles, list) or not all(isinstance(t, str) and t.strip() for t in titles):
        return None, 'expected {"titles": [non-empty strings]}'
    # A proposed title becomes a heading: no markup from the model may ride along.
    cleaned = tuple(" ".join(re.sub(r"[<>{}\[\]`*_|#\\]", " ", t).split()) for t in titles)
    if not all(cleaned):
        return None, "titles must contain words"
    if len(cleaned) != count:
        return None, f"expected exactly {count} titles, got {len(cleaned)}"
    if any(len(t) > TITLE_MAX_CHARS for t in titles):
        return None, f"titles must be at most {TITLE_MAX_CHARS} characters"
    if len({t.casefold() for t in cleaned}) != len(cleaned):
        return None, "the titles must be distinct"
    return cleaned, None


def _parse_scores(outcome: Outcome, criteria: list[str]) -> dict[str, int] | None:
    if not outcome.ok:
        return None
    try:
        data = _load_json(outcome.text or "")
    except ValueError:
        return None
    scores = data.get("scores") if isinstance(data, dict) else None
    if not isinstance(scores, dict):
        return None
    parsed: dict[str, int] = {}
    for name in criteria:
        value = scores.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        # Out of range is an invalid vote, never clamped into a passing one (answers from
        # the lock or an older cache were never checked by the backend).
        if not SCORE_RANGE[0] <= value <= SCORE_RANGE[1]:
            return None
        parsed[name] = round(value)
    return parsed


def _with_correction(request: ChatRequest, answer: str, problem: str) -> ChatRequest:
    correction = (
        f"That answer was rejected: {problem}. "
        "Answer again with JSON only, matching the requested shape."
    )
    messages = (*request.messages, Message("assistant", answer), Message("user", correction))
    return replace(request, messages=messages)


def _polish_problem(before: str, after: str) -> str | None:
    """Why a polished page must not replace the original, or ``None``."""
    old_headings, new_headings = heading_lines(before), heading_lines(after)
    missing = [h for h in old_headings if h not in set(new_headings)]
    if missing:
        return f"it lost the heading '{missing[0]}'"
    if old_headings != new_headings:
        return "it reordered or added headings"
    old, new = count_words(before), count_words(after)
    if new < 0.8 * old:
        return f"it shrank from {old} to {new} words"
    return None


def planned_answer(request: ChatRequest) -> str:
    """What ``plan`` pretends a request returned, so flows run to the end without a model."""
    if request.stage == "expand" and request.json_schema:
        count = json.loads(request.json_schema)["properties"]["titles"]["minItems"]
        return json.dumps({"titles": [f"(proposed subsection {i + 1})" for i in range(count)]})
    if request.stage == "polish":
        for message in request.messages:
            if message.role == "user":
                return message.content
    return ""
