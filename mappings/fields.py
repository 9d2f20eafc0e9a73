"""Field types shared by the mapping file and the person facts."""

from __future__ import annotations

import reprlib
from datetime import date
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxdict = 4
_SHORT.maxlevel = 2


def shown(value: object) -> str:
    """``repr(value)`` cut short, for error messages: never renders a huge value whole
    (a mapping file or a request may hold one), and costs the same for any size."""
    return _SHORT.repr(value)


class FrozenModel(BaseModel):
    """Immutable, and a typo in a key is an error rather than silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """An instance made of ``values``, unchecked: every field, in field order, each
        already of its type (a converter that checked them itself). Only for models
        without aliases or ``model_post_init`` (the facts' models).

        What ``model_construct`` builds, in a quarter of its time: that one looks up
        aliases and defaults field by field — the cost of a person's facts, paid for
        everyone a run or a what-if decides. The attributes set are those
        ``model_construct`` sets (tests/mappings/test_facts.py holds the two equal)."""
        model = cls.__new__(cls)
        _set(model, "__dict__", values)
        _set(model, "__pydantic_fields_set__", set(values))
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model


_set = object.__setattr__  # a frozen model refuses its own __setattr__


def parse_iso_date(value: object) -> date:
    """Read a calendar date written exactly ``YYYY-MM-DD``.

    ``date.fromisoformat`` alone would also take ``20250915`` and ``2025-W38-1``;
    the facts format promises one spelling, so anything else is refused. A ``date``
    passes through (YAML reads unquoted ``2025-12-25`` as one), a ``datetime`` does not.

    :raises ValueError: naming the offending value.
    """
    if type(value) is date:
        return value
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        digits = value[:4] + value[5:7] + value[8:]
        if digits.isascii() and digits.isdigit():
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
    raise ValueError(f"invalid date {shown(value)}, expected YYYY-MM-DD")


#: A date given as ``YYYY-MM-DD`` (or as a ``date``).
IsoDate = Annotated[date, BeforeValidator(parse_iso_date)]


def describe_errors(exc: ValidationError) -> list[str]:
    """Each pydantic error as ``key.path[0]: problem``, the way people read keys."""
    return [_describe(error) for error in exc.errors()]


def _describe(error: ErrorDetails) -> str:
    parts: list[str] = []
    for item in error["loc"]:
        if item == "[key]":
            return f"{''.join(parts)}: key must be a string (in YAML, quote codes such as '0123')"
        parts.append(f"[{item}]" if isinstance(item, int) else f"{'.' if parts else ''}{item}")
    kind = error["type"]
    if kind == "extra_forbidden":
        problem = "unknown field"
    elif kind == "missing":
        problem = "missing field"
    elif kind == "value_error":
        problem = str(error.get("ctx", {}).get("error", error["msg"]))
    elif kind in {"json_invalid", "model_type", "dict_type"}:
        problem = error["msg"]
    else:
        problem = f"{error['msg']}, got {shown(error['input'])}"
    return f"{''.join(parts)}: {problem}" if parts else problem
