"""JSON text for responses and the store's JSON columns, written with orjson
(several times faster than the standard library), which falls back to the
standard library for what orjson refuses (an unpaired surrogate in an error
detail, integers beyond 64 bits), so the output is the same JSON (a float NaN or
infinity, which JSON cannot hold and SCIM data never has, is written as null).

Reading stays with the standard library: orjson reads an integer beyond 64 bits
as a float, which would change a value rather than its speed.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS  # int keys become strings, as json.dumps does


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dumps_utf8(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes; text that cannot be UTF-8 (an unpaired
    surrogate quoted back in an error detail) is escaped instead."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        pass
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")
