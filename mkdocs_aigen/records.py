"""Mutable records without the code ``dataclasses`` writes and compiles at import."""

from __future__ import annotations

from typing import Any


class Record:
    """Equality and a ``repr`` from ``__slots__``, as a dataclass has them.

    ``@dataclass`` writes ``__init__``, ``__repr__`` and ``__eq__`` as source text and
    compiles them each time its module is imported: about 4 M instructions (0.5 ms on the
    development machine) for an 18-field class, paid by every build, cached or not. The
    mutable records every build loads therefore write their ``__init__`` by hand, list
    their fields in ``__slots__`` (in ``__init__``'s order), and take the rest from here.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    # Mutable, so unhashable, as a dataclass with ``eq=True`` is.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)
