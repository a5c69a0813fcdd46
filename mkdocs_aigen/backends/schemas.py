"""Structured output: the subset every provider accepts in strict mode, and the checks
that subset cannot express.

A request carries its schema as the contract, constraints included (``minimum``,
``maxItems``...): the local model's grammar enforces them, and :func:`schema_problem`
checks every answer against them. Providers get :func:`strict_subset`: in strict mode
OpenAI, Azure, Anthropic and Gemini each accept only part of JSON Schema, and the part all
of them accept has no length, count, range, pattern or format keywords. Those are stated
in the property's ``description`` instead, so the model still reads them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

#: Keywords providers' strict modes reject (some of them, some of the time), and how to
#: say each in a description.
CONSTRAINTS: dict[str, Callable[[Any], str]] = {
    "minimum": lambda v: f"at least {v}",
    "maximum": lambda v: f"at most {v}",
    "exclusiveMinimum": lambda v: f"more than {v}",
    "exclusiveMaximum": lambda v: f"less than {v}",
    "multipleOf": lambda v: f"a multiple of {v}",
    "minLength": lambda v: f"at least {v} characters",
    "maxLength": lambda v: f"at most {v} characters",
    "pattern": lambda v: f"matching the pattern {v}",
    "format": lambda v: f"in {v} format",
    "minItems": lambda v: f"at least {v} items",
    "maxItems": lambda v: f"at most {v} items",
}


def strict_subset(schema: Any) -> Any:
    """``schema`` without :data:`CONSTRAINTS`, each one said in words in ``description``.

    Leaves ``required`` and ``additionalProperties`` as they are: the schemas the
    pipeline builds already list every property and forbid extra ones (a unit test
    walks them), and quietly changing that here would change what an answer means.
    """
    if isinstance(schema, list):
        return [strict_subset(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept = {k: strict_subset(v) for k, v in schema.items() if k not in CONSTRAINTS}
    words = _constraint_words(schema)
    if words:
        described = kept.get("description")
        prefix = f"{described} " if isinstance(described, str) and described else ""
        kept["description"] = f"{prefix}({words})"
    return kept


def _constraint_words(schema: dict[str, Any]) -> str:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None and low == high:
        # "at least 4 items, at most 4 items" reads worse than the plain truth.
        rest = {k: v for k, v in schema.items() if k not in ("minItems", "maxItems")}
        return ", ".join(filter(None, [f"exactly {low} items", _constraint_words(rest)]))
    return ", ".join(say(schema[key]) for key, say in CONSTRAINTS.items() if key in schema)


def schema_problem(value: Any, schema: Any, where: str = "answer") -> str | None:
    """What keeps ``value`` from matching ``schema`` (the keywords the pipeline uses:
    types, ``enum``, ``required``, ``additionalProperties``, ``properties``, ``items``
    and :data:`CONSTRAINTS` but ``format``), or ``None`` when it matches."""
    if not isinstance(schema, dict):
        return None
    problem = _type_problem(value, schema.get("type"), where)
    if problem is None and "enum" in schema and value not in schema["enum"]:
        problem = f"{where} must be one of {schema['enum']}, not {value!r}"
    if problem is None:
        problem = _bounds_problem(value, schema, where)
    if problem is None and isinstance(value, dict):
        problem = _object_problem(value, schema, where)
    if problem is None and isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problem = schema_problem(item, schema["items"], f"{where}[{index}]")
            if problem is not None:
                break
    return problem


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _type_problem(value: Any, expected: Any, where: str) -> str | None:
    names = expected if isinstance(expected, list) else [expected] if expected else []
    if not names or any(_TYPES.get(name, lambda v: True)(value) for name in names):
        return None
    return f"{where} must be of type {' or '.join(names)}, not {type(value).__name__}"


def _bounds_problem(value: Any, schema: dict[str, Any], where: str) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return f"{where} must be a finite number"
        checks = (
            ("minimum", lambda bound: value >= bound),
            ("maximum", lambda bound: value <= bound),
            ("exclusiveMinimum", lambda bound: value > bound),
            ("exclusiveMaximum", lambda bound: value < bound),
        )
    elif isinstance(value, str):
        checks = (
            ("minLength", lambda bound: len(value) >= bound),
            ("maxLength", lambda bound: len(value) <= bound),
            ("pattern", lambda bound: re.search(bound, value) is not None),
        )
    elif isinstance(value, list):
        checks = (
            ("minItems", lambda bound: len(value) >= bound),
            ("maxItems", lambda bound: len(value) <= bound),
        )
    else:
        return None
    for keyword, holds in checks:
        bound = schema.get(keyword)
        if bound is not None and not holds(bound):
            return f"{where} must be {CONSTRAINTS[keyword](bound)}, not {_short(value)}"
    return None


def _object_problem(value: dict[str, Any], schema: dict[str, Any], where: str) -> str | None:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    for name in schema.get("required", ()):
        if name not in value:
            return f"{where} lacks {name!r}"
    if schema.get("additionalProperties") is False:
        extra = sorted(set(value) - set(properties))
        if extra:
            return f"{where} has unexpected {extra[0]!r}"
    for name, sub in properties.items():
        if name in value:
            problem = schema_problem(value[name], sub, f"{where}.{name}")
            if problem is not None:
                return problem
    return None


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, list) else f"{len(value)} items"
    return text if len(text) <= 40 else text[:37] + "..."
