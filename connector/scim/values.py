"""Normalisation of client-sent values into the stored representation.

Incoming resources are coerced against the attribute definitions in
:mod:`connector.scim.schema`: attribute names take their canonical case
(Entra sends ``"UserName"``), booleans may arrive as strings (Entra sends
``active: "False"`` by default), ``null`` means absent, read-only attributes and
client-sent ``meta`` are ignored, and unknown extension URNs are dropped
(Entra's older payloads carry a malformed ``…:enterprise:2.0User``). Unknown
sub-attributes of a complex value are dropped with a logged warning (Entra sends
a member as ``{"displayName": …, "value": …}``); an unknown attribute is a 400.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidSyntax, InvalidValue, TooMany
from .schema import Attr, ResourceKind, Schema, Type

log = logging.getLogger(__name__)

_TRUE = {"true": True, "false": False}
MAX_STRING = 65536
_BY_ID = {"manager", "members"}  # complex attributes that are references by id


def coerce_boolean(value: Any, where: str) -> bool:
    """A JSON boolean, or the strings ``"True"``/``"False"`` in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return _TRUE[value.strip().lower()]
    raise InvalidValue(f"'{where}' must be a boolean, got {_show(value)}")


def parse_datetime(value: str) -> datetime:
    """ISO 8601 / xsd:dateTime, 'Z' accepted; a date alone means midnight UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce_simple(attr: Attr, value: Any, where: str) -> Any:
    """Coerce one non-complex value to the attribute's type."""
    kind = attr.type
    if kind is Type.BOOLEAN:
        return coerce_boolean(value, where)
    if kind is Type.INTEGER:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise InvalidValue(f"'{where}' must be an integer, got {_show(value)}")
        try:
            return int(value)
        except ValueError:
            raise InvalidValue(f"'{where}' must be an integer, got {_show(value)}") from None
    if kind is Type.DECIMAL:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidValue(f"'{where}' must be a number, got {_show(value)}")
        return value
    if not isinstance(value, str):
        raise InvalidValue(f"'{where}' must be a {kind.value} (a JSON string), got {_show(value)}")
    text = value
    if len(text) > MAX_STRING:
        raise InvalidValue(f"'{where}' is longer than {MAX_STRING} characters")
    if "\x00" in text:
        raise InvalidValue(f"'{where}' contains a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidValue(f"'{where}' contains an unpaired UTF-16 surrogate") from None
    if kind is Type.DATETIME:
        try:
            return parse_datetime(text).isoformat().replace("+00:00", "Z")
        except ValueError:
            raise InvalidValue(f"'{where}' must be an xsd:dateTime, got {_show(value)}") from None
    if kind is Type.BINARY:
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidValue(f"'{where}' must be base64-encoded binary") from None
    return text


def _complex(attr: Attr, value: Any, where: str) -> tuple[dict | None, list[str]]:
    """A complex value and the names of the unknown sub-attributes it dropped."""
    by_id = attr.name in _BY_ID
    if by_id and isinstance(value, str):
        value = {"value": value}
    if not isinstance(value, dict):
        raise InvalidValue(f"'{where}' must be a complex value (a JSON object), got {_show(value)}")
    out: dict = {}
    unknown: list[str] = []
    for key, item in value.items():
        sub = attr.child(key)
        if sub is None:
            # Entra sends a member as {"displayName": …, "value": …}; Group has
            # no members.displayName (RFC 7643 §2.4 and §4.2 give it display).
            # Only the sub-attribute is dropped, not the request: refusing it
            # would refuse the membership the value carries. An unknown
            # attribute (not sub-attribute) still gets a 400.
            unknown.append(key)
            continue
        if item is None or sub.mutability == "readOnly":
            continue
        out[sub.name] = coerce_simple(sub, item, f"{where}.{sub.name}")
    if by_id and not out.get("value"):
        raise InvalidValue(f"'{where}' needs a 'value' (the id it refers to)")
    return out or None, unknown


def _warn_unknown(where: str, names: list[str]) -> None:
    if names:
        shown = ", ".join(sorted({_show(n) for n in names})[:10])
        log.warning("'%s': ignored sub-attributes the schema does not define: %s", where, shown)


def coerce_complex(attr: Attr, value: Any, where: str) -> dict | None:
    """A complex value: a JSON object whose keys are sub-attributes.

    A bare string is taken as the ``value`` sub-attribute of a manager or a group
    member (some clients send those as a plain id); both need a ``value``.
    Unknown sub-attributes are dropped and logged.
    """
    out, unknown = _complex(attr, value, where)
    _warn_unknown(where, unknown)
    return out


def unwrap_single(attr: Attr, value: Any, where: str) -> Any:
    """Entra sends the single-valued manager as ``[{"value": …}]``: a list of at
    most one value is taken as the value for it, and only for it."""
    if not isinstance(value, list):
        return value
    if attr.name not in _BY_ID:
        raise InvalidValue(f"'{where}' is single-valued, got a list")
    if len(value) > 1:
        raise InvalidValue(f"'{where}' is single-valued, got a list of {len(value)}")
    return value[0] if value else None


def coerce_value(attr: Attr, value: Any, where: str) -> Any:
    """Coerce the whole value of ``attr``; ``None`` means the attribute is absent."""
    if value is None:
        return None
    if attr.multi:
        items = value if isinstance(value, list) else [value]
        out = []
        unknown: list[str] = []
        for index, item in enumerate(items):
            if item is None:
                continue
            here = f"{where}[{index}]"
            if attr.type is Type.COMPLEX:
                coerced, dropped = _complex(attr, item, here)
                unknown.extend(dropped)
            else:
                coerced = coerce_simple(attr, item, here)
            if coerced is not None:
                out.append(coerced)
        if attr.type is Type.COMPLEX and sum(1 for i in out if i.get("primary") is True) > 1:
            raise InvalidValue(f"'{where}' has more than one value with primary true (RFC 7643 §2.4)")
        _warn_unknown(where, unknown)  # once for the attribute, not once per member
        if attr.name not in _BY_ID:
            # RFC 7643 §2.4: the same value is held once, whether sent once or twice.
            # Members and managers are ids, made unique exactly where they are looked up.
            out = list(unique_values(attr, out).values())
        return out or None
    value = unwrap_single(attr, value, where)
    if value is None:
        return None
    if attr.type is Type.COMPLEX:
        return coerce_complex(attr, value, where)
    return coerce_simple(attr, value, where)


def value_key(attr: Attr, item: Any) -> Hashable:
    """The identity of one value of the multi-valued ``attr``, as a hashable key.

    RFC 7644 §3.5.2.1: a value already present is not added twice. Two values are
    the same when they differ only in ``primary`` (a flag on a value, RFC 7643
    §2.4, which would otherwise let the same email be stored twice, once primary),
    in the order of their keys, or in the case of a string sub-attribute the schema
    says is not ``caseExact`` (RFC 7643 §2.1), so ``{"value": "A@x.org", "type":
    "Work"}`` is ``{"type": "work", "value": "a@x.org"}``. Binary values and
    references are case exact whatever the schema says (RFC 7643 §2.3.6, §2.3.7):
    two certificates differing in case are two certificates. Keys let duplicates be
    found with a set, in time linear in the values, not quadratic.
    """
    if attr.type is Type.COMPLEX and isinstance(item, dict):
        return frozenset((key, _scalar_key(attr.child(key), sub)) for key, sub in item.items() if key != "primary")
    return _scalar_key(attr, item)


def _scalar_key(attr: Attr | None, value: Any) -> Hashable:
    if isinstance(value, str) and attr is not None and attr.type is Type.STRING and not attr.case_exact:
        return value.casefold()
    if isinstance(value, (dict, list)):  # not in a normalised value; kept hashable anyway
        return repr(value)
    return (type(value).__name__, value)  # True is not 1


def unique_values(attr: Attr, items: list, key_of: Callable[[Attr, Any], Hashable] = value_key) -> dict:
    """The first of each set of equal values (:func:`value_key`), by key, in order.

    A later equal value sent with ``primary: true`` makes the kept one primary.
    """
    unique: dict = {}
    for item in items:
        key = key_of(attr, item)
        kept = unique.setdefault(key, item)
        if (
            kept is not item
            and isinstance(item, dict)
            and item.get("primary") is True
            and kept.get("primary") is not True
        ):
            unique[key] = {**kept, "primary": True}
    return unique


def check_count(attr: Attr, count: int, before: int, limit: int, where: str) -> None:
    """Refuse a write that leaves ``attr`` with more than ``limit`` values.

    An attribute already over the limit (stored before the limit was lowered) may
    keep what it has, so an unrelated update — an offboarding ``active: false`` —
    is never refused for it; it may not grow.

    :raises TooMany: RFC 7644 §3.12 defines ``tooMany`` for more than the server
        is willing to process; the service answers it, as for ``max_operations``,
        to every request beyond a configured size.
    """
    if count > limit and count > before:
        raise TooMany(f"'{where}' may hold at most {limit} values; this request gives it {count}")


def check_counts(kind: ResourceKind, data: dict, before: dict | None, limit: int) -> None:
    """:func:`check_count` for every multi-valued attribute of a whole resource."""
    for schema in (kind.core,) + kind.extensions:
        section = data if schema is kind.core else data.get(schema.id) or {}
        old = (before or {}) if schema is kind.core else (before or {}).get(schema.id) or {}
        for attr in schema.attributes:
            values = section.get(attr.name)
            if attr.multi and isinstance(values, list):
                where = attr.name if schema is kind.core else f"{schema.id}:{attr.name}"
                check_count(attr, len(values), len(old.get(attr.name) or []), limit, where)


def _normalise_object(schema: Schema, body: dict, out: dict, where: str) -> None:
    for key, value in body.items():
        if key.lower() == "schemas":
            continue  # some clients repeat "schemas" inside an extension object
        attr = schema.attr(key)
        if attr is None:
            raise InvalidValue(f"unknown attribute '{where}{key}' for schema {schema.id}")
        if attr.mutability == "readOnly":
            continue
        if attr.mutability == "writeOnly" and attr.returned == "never":
            # Passwords are accepted and never stored: the connector does not
            # authenticate anyone, so it keeps no secret it does not need.
            continue
        coerced = coerce_value(attr, value, f"{where}{attr.name}")
        if coerced is not None:
            out[attr.name] = coerced


def normalise_resource(kind: ResourceKind, body: Any) -> dict:
    """Turn a client's resource body into the stored representation.

    :returns: a dict with canonical attribute names, extension data under the full
        URN, ``schemas`` listing exactly the schemas present, and no ``id``/``meta``.
    :raises ScimError: when the body is not an object or a value has the wrong type.
    """
    if not isinstance(body, dict):
        raise InvalidSyntax("the request body must be a JSON object")
    core: dict = {}
    out: dict = {}
    extensions: dict = {}
    for key, value in body.items():
        lower = key.lower()
        if lower in ("schemas", "id", "meta"):
            continue
        if lower == "externalid":
            if value is not None:
                out["externalId"] = coerce_simple(Attr("externalId"), value, "externalId")
            continue
        if ":" in key:
            ext = kind.extension(key)
            if ext is None:
                continue  # unknown or malformed extension URN: ignored, not fatal
            if value is None:
                continue
            if not isinstance(value, dict):
                raise InvalidValue(f"'{key}' must be an object of extension attributes")
            section: dict = {}
            _normalise_object(ext, value, section, f"{ext.id}:")
            if section:
                extensions[ext.id] = section
            continue
        core[key] = value
    _normalise_object(kind.core, core, out, "")
    out.update(extensions)
    return finish(kind, out)


def finish(kind: ResourceKind, data: dict) -> dict:
    """Recompute ``schemas`` from the extensions present and check required attributes."""
    for attr in kind.core.attributes:
        if attr.required and data.get(attr.name) in (None, ""):
            raise InvalidValue(f"'{attr.name}' is required")
    for ext in kind.extensions:
        if ext.id in data and not data[ext.id]:
            del data[ext.id]
    data["schemas"] = [kind.core.id] + [e.id for e in kind.extensions if e.id in data]
    return data
