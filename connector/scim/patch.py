"""PATCH (RFC 7644 §3.5.2) applied to a stored representation, purely.

Accepts what Entra really sends (``../shared/docs/entra-scim.md``): capitalised
ops (``"Replace"``), string booleans, no-path values whose keys are dotted or
full-URN paths, filtered paths whose entry does not exist yet (created, not
``noTarget``), both member-remove forms, bare-string members, and noise keys such
as ``"name": "addMember"`` or a top-level ``"id"``.

Group members never pass through here as data: changes to ``members`` come out as
:class:`MemberOp` s, so the store applies them row by row and a PATCH costs as
much as the members it changes, not as much as the group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import InvalidFilter, InvalidPath, InvalidSyntax, InvalidValue, Mutability, NoTarget, TooMany
from .filters import Compare, Logical, Node, Not, ValuePath
from .paths import ExtensionPath, Path, parse_path
from .schema import Attr, ResourceKind, Type, Urn
from .values import (
    check_count,
    coerce_complex,
    coerce_simple,
    coerce_value,
    finish,
    unique_values,
    unwrap_single,
    value_key,
)


class Op(StrEnum):
    ADD = "add"
    REPLACE = "replace"
    REMOVE = "remove"


class MemberAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    REMOVE_WHERE = "remove_where"
    REMOVE_ALL = "remove_all"
    REPLACE = "replace"  # the members become exactly ``ids``


@dataclass(frozen=True)
class MemberOp:
    action: MemberAction
    ids: tuple[str, ...] = ()
    where: Node | None = None


@dataclass
class PatchResult:
    data: dict
    members: list[MemberOp] = field(default_factory=list)


#: Most (value × filter comparison) evaluations of value filters in one PATCH:
#: 443 operations each filtering 500 emails with 100 comparisons fit in 1 MB and
#: were 22 million (36 s). Entra sends a few operations on attributes of a few
#: values, a few hundred evaluations; this allows a thousand times that (~0.3 s).
MAX_FILTER_WORK = 200_000


class _Keys:
    """:func:`value_key` of each complex value met in one PATCH, computed once.

    A PATCH of many operations on one attribute would otherwise key every stored
    value again for each operation. Values are never changed in place here (a
    change makes a new dict), so a value's key never goes stale; the value is held
    with its key so its ``id`` is not reused.
    """

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, Any]] = {}

    def of(self, attr: Attr, item: Any) -> Any:
        if not isinstance(item, dict):
            return value_key(attr, item)
        hit = self._seen.get(id(item))
        if hit is None or hit[0] is not item:
            hit = self._seen[id(item)] = (item, value_key(attr, item))
        return hit[1]


@dataclass
class _Run(PatchResult):
    """A PATCH being applied: the result so far and what bounds its cost."""

    before: dict = field(default_factory=dict)  # the stored representation
    max_values: int = 0  # most values a multi-valued attribute may grow to
    keys: _Keys = field(default_factory=_Keys)
    filter_work: int = 0  # value filter evaluations so far (MAX_FILTER_WORK)

    def charge(self, path: Path, values: int) -> None:
        """Count a value filter about to be evaluated on ``values`` values.

        :raises TooMany: the PATCH's filters would exceed :data:`MAX_FILTER_WORK`."""
        self.filter_work += values * _comparisons(path.filter)
        if self.filter_work > MAX_FILTER_WORK:
            raise TooMany(
                f"the value filters of this PATCH would be evaluated more than {MAX_FILTER_WORK} "
                f"times (values × comparisons); send fewer operations"
            )


def parse_operations(body: Any, max_operations: int) -> list[tuple[Op, Any, Any]]:
    """Validate a PatchOp body into (op, path, value) triples."""
    if not isinstance(body, dict):
        raise InvalidSyntax("the PATCH body must be a JSON object")
    schemas = body.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list)
        or not any(isinstance(s, str) and s.lower() == Urn.PATCH.value.lower() for s in schemas)
    ):
        raise InvalidSyntax(f"'schemas' must contain {Urn.PATCH.value}")
    ops = next((v for k, v in body.items() if k.lower() == "operations"), None)
    if not isinstance(ops, list) or not ops:
        raise InvalidSyntax("'Operations' must be a non-empty list")
    if len(ops) > max_operations:
        raise TooMany(f"at most {max_operations} operations are accepted in one PATCH")
    out = []
    for index, raw in enumerate(ops):
        if not isinstance(raw, dict):
            raise InvalidSyntax(f"Operations[{index}] must be an object")
        lowered = {k.lower(): v for k, v in raw.items() if isinstance(k, str)}
        name = lowered.get("op")
        if not isinstance(name, str) or name.lower() not in Op.__members__.values():
            raise InvalidSyntax(f"Operations[{index}].op must be add, replace or remove, got {name!r}")
        op = Op(name.lower())
        if "path" in lowered and lowered["path"] is not None and not isinstance(lowered["path"], str):
            raise InvalidPath(f"Operations[{index}].path must be a string")
        path = lowered.get("path")
        if isinstance(path, str) and not path.strip():
            raise InvalidPath(f"Operations[{index}].path is empty")
        if op is not Op.REMOVE and "value" not in lowered:
            raise InvalidValue(f"Operations[{index}] ({op}) needs a 'value'")
        out.append((op, path, lowered.get("value")))
    return out


def apply_patch(
    kind: ResourceKind, data: dict, operations: list[tuple[Op, Any, Any]], *, max_values: int
) -> PatchResult:
    """Apply operations to a copy of ``data`` (the stored representation).

    Each operation costs time linear in the values it sends and the values of the
    attribute it changes, and no operation may leave a multi-valued attribute with
    more than ``max_values`` values, so a whole PATCH costs at most
    ``operations × max_values`` plus its size, never its size squared.

    :returns: the new representation and, for groups, the member operations.
    :raises TooMany: an attribute would grow past ``max_values`` values.
    :raises ScimError: on a bad path, a bad value or a read-only target.
    """
    run = _Run(_clone(data), before=data, max_values=max_values)
    for op, path_text, value in operations:
        if path_text is None:
            _apply_no_path(kind, run, op, value)
        else:
            _apply_path(kind, run, op, parse_path(kind, path_text), value)
    finish(kind, run.data)
    return PatchResult(run.data, run.members)


def _clone(value: Any) -> Any:
    """A deep copy of JSON data (what the store holds): dicts, lists and scalars
    only, so several times cheaper than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _apply_no_path(kind: ResourceKind, run: _Run, op: Op, value: Any) -> None:
    if op is Op.REMOVE:
        raise NoTarget("'remove' needs a 'path' (RFC 7644 §3.5.2.2)")
    if not isinstance(value, dict):
        raise InvalidValue(f"'{op}' without a path needs an object value")
    for key, item in value.items():
        if not isinstance(key, str) or key.lower() in ("schemas", "id", "meta"):
            continue
        ext = kind.extension(key)
        if ext is not None:
            if item is None:
                continue
            if not isinstance(item, dict):
                raise InvalidValue(f"'{key}' must be an object of extension attributes")
            for sub_key, sub_item in item.items():
                if sub_key.lower() == "schemas":
                    continue
                _apply_path(kind, run, op, parse_path(kind, f"{ext.id}:{sub_key}"), sub_item)
            continue
        if ":" in key and key.lower().startswith("urn:") and not _known_prefix(kind, key):
            continue  # unknown extension URN: ignored, not fatal
        _apply_path(kind, run, op, parse_path(kind, key), item)


def _known_prefix(kind: ResourceKind, key: str) -> bool:
    lower = key.lower()
    return any(lower.startswith(s.lower() + ":") for s in kind.schema_ids)


def _container(data: dict, path: Path, create: bool) -> dict | None:
    if not path.extension:
        return data
    section = data.get(path.schema.id)
    if section is None and create:
        section = data[path.schema.id] = {}
    return section


def _apply_path(kind: ResourceKind, run: _Run, op: Op, path: Path | ExtensionPath, value: Any) -> None:
    if isinstance(path, ExtensionPath):
        if op is Op.REMOVE:
            run.data.pop(path.schema.id, None)
            return
        if not isinstance(value, dict):
            raise InvalidValue(f"'{path.schema.id}' must be an object of extension attributes")
        for key, item in value.items():
            if key.lower() != "schemas":
                _apply_path(kind, run, op, parse_path(kind, f"{path.schema.id}:{key}"), item)
        return
    attr = path.attr
    if attr.mutability == "readOnly" or (path.sub is not None and path.sub.mutability == "readOnly"):
        raise Mutability(f"'{path.text}' is read-only")
    if kind.name == "Group" and attr.name == "members":
        _member_op(run, op, path, value)
        return
    if attr.mutability == "writeOnly" and attr.returned == "never":
        return  # passwords are accepted and never stored
    container = _container(run.data, path, create=op is not Op.REMOVE)
    if container is None:
        return
    if op is Op.REMOVE:
        _remove(run, container, path, value)
    elif attr.multi:
        _set_multi(run, container, path, op, value)
        before = _container(run.before, path, create=False) or {}
        check_count(
            attr, len(container.get(attr.name) or []), len(before.get(attr.name) or []), run.max_values, path.text
        )
    else:
        _set_single(container, path, op, value)
    if path.extension and not container:
        run.data.pop(path.schema.id, None)


def _set_single(container: dict, path: Path, op: Op, value: Any) -> None:
    attr, where = path.attr, path.text
    if path.sub is not None:
        sub_value = coerce_value(path.sub, value, where)
        current = container.get(attr.name) or {}
        if sub_value is None:
            current.pop(path.sub.name, None)
        else:
            current[path.sub.name] = sub_value
        _store(container, attr.name, current or None)
        return
    if attr.type is Type.COMPLEX:
        value = unwrap_single(attr, value, where)
        coerced = coerce_complex(attr, value, where) if value is not None else None
        merged = dict(container.get(attr.name) or {})
        merged.update(coerced or {})
        _store(container, attr.name, merged or None)
        return
    _store(container, attr.name, coerce_value(attr, value, where))


def _store(container: dict, name: str, value: Any) -> None:
    if value is None or value == [] or value == {}:
        container.pop(name, None)
    else:
        container[name] = value


def _set_multi(run: _Run, container: dict, path: Path, op: Op, value: Any) -> None:
    attr, where = path.attr, path.text
    items: list = list(container.get(attr.name) or [])
    if path.filter is None:
        if path.sub is None:
            new = coerce_value(attr, value, where) or []
            # RFC 7644 §3.5.2.1/§3.5.2.3: a value already present is not added twice —
            # neither one stored nor one sent earlier in the same list. The first of
            # equal values is kept; a set of their keys keeps this linear.
            unique = unique_values(attr, new if op is Op.REPLACE else items + new, run.keys.of)
            # The values sent, as kept: a sent value equal to a stored one (say, in
            # another case) is the stored one, whose primary the sent one sets.
            sent = [unique[run.keys.of(attr, item)] for item in new]
            _store(container, attr.name, _one_primary(list(unique.values()), sent))
            return
        # ``emails.value``: the sub-attribute of every value (creating one if none).
        sub_value = coerce_simple(path.sub, value, where)
        items = [dict(i, **{path.sub.name: sub_value}) for i in items] or [{path.sub.name: sub_value}]
        _store(container, attr.name, items)
        return
    run.charge(path, len(items))
    matched = [i for i, item in enumerate(items) if matches(path.filter, item, attr)]
    if path.sub is not None:
        patch = {path.sub.name: coerce_simple(path.sub, value, where)}
    else:
        patch = coerce_complex(attr, value, where) or {}
    if not matched:
        # Entra: add/replace on ``emails[type eq "work"].value`` creates the entry.
        seed = _seed_from_filter(path.filter, attr)
        if seed is None:
            raise NoTarget(f"no value matches '{where}' and the filter cannot create one")
        items.append({**seed, **patch})
    for i in matched:
        items[i] = {**items[i], **patch}
    changed = [items[i] for i in matched] or [items[-1]]
    _store(container, attr.name, _one_primary(items, changed))


def _one_primary(items: list, changed: list) -> list:
    """RFC 7644 §3.5.2: setting primary true on a value clears it on the others."""
    if any(isinstance(c, dict) and c.get("primary") is True for c in changed):
        keep = next(c for c in reversed(changed) if isinstance(c, dict) and c.get("primary") is True)
        for index, item in enumerate(items):
            if isinstance(item, dict) and item is not keep and item.get("primary") is True and item != keep:
                items[index] = {**item, "primary": False}  # a new value: _Keys never goes stale
    return items


def _seed_from_filter(node: Node, attr: Attr) -> dict | None:
    """The sub-attribute values an ``eq``/``and`` filter pins down."""
    if isinstance(node, Compare) and node.op == "eq":
        sub = attr.child(node.path.rpartition(".")[2])
        if sub is None:
            return None
        return {sub.name: coerce_simple(sub, node.value, f"{attr.name}.{sub.name}")}
    if isinstance(node, Logical) and node.op == "and":
        left, right = _seed_from_filter(node.left, attr), _seed_from_filter(node.right, attr)
        return None if left is None or right is None else {**left, **right}
    return None


def _remove(run: _Run, container: dict, path: Path, value: Any) -> None:
    attr = path.attr
    if not attr.multi:
        if path.sub is not None:
            current = dict(container.get(attr.name) or {})
            current.pop(path.sub.name, None)
            _store(container, attr.name, current or None)
        else:
            container.pop(attr.name, None)
        return
    items = list(container.get(attr.name) or [])
    if path.filter is None:
        if path.sub is None:
            if value is None:
                container.pop(attr.name, None)
                return
            # Entra's default form: remove only the listed values, never the whole list.
            # A listed value with a ``value`` removes every value with that ``value``
            # (whatever its type or primary); one without removes its equals.
            doomed = coerce_value(attr, value, path.text) or []
            keys = {_removal_key(run.keys, attr, d) for d in doomed}
            items = [i for i in items if _removal_key(run.keys, attr, i) not in keys]
        else:
            items = [{k: v for k, v in i.items() if k != path.sub.name} for i in items]
    elif path.sub is None:
        run.charge(path, len(items))
        items = [i for i in items if not matches(path.filter, i, attr)]
    else:
        run.charge(path, len(items))
        items = [
            {k: v for k, v in i.items() if k != path.sub.name} if matches(path.filter, i, attr) else i for i in items
        ]
    _store(container, attr.name, [i for i in items if i != {}])


def _removal_key(keys: _Keys, attr: Attr, item: Any) -> Any:
    if isinstance(item, dict) and "value" in item:
        return ("value", value_key(attr, {"value": item["value"]}))
    return ("item", keys.of(attr, item))


def _comparisons(node: Node | None) -> int:
    """The comparisons (attribute operator value) a filter evaluates per value, at most."""
    if isinstance(node, Logical):
        return _comparisons(node.left) + _comparisons(node.right)
    if isinstance(node, Not):
        return _comparisons(node.inner)
    return 1


def _member_op(result: PatchResult, op: Op, path: Path, value: Any) -> None:
    if path.sub is not None:
        raise InvalidPath(f"'{path.text}': member sub-attributes cannot be changed")
    if op is Op.REMOVE:
        if path.filter is not None:
            result.members.append(MemberOp(MemberAction.REMOVE_WHERE, where=path.filter))
        elif value is None:
            result.members.append(MemberOp(MemberAction.REMOVE_ALL))
        else:
            result.members.append(MemberOp(MemberAction.REMOVE, ids=_member_ids(path.attr, value)))
        return
    if path.filter is not None:
        raise InvalidPath(f"'{op}' cannot target members through a filter")
    ids = _member_ids(path.attr, value)
    if op is Op.REPLACE:
        # Not "remove all, then add": a member the replace keeps must keep its
        # membership's start date, which dates the approval it stands for.
        result.members.append(MemberOp(MemberAction.REPLACE, ids=ids))
    elif ids:
        result.members.append(MemberOp(MemberAction.ADD, ids=ids))


def _member_ids(attr: Attr, value: Any) -> tuple[str, ...]:
    members = coerce_value(attr, value, "members") or []
    ids = []
    for member in members:
        member_id = member.get("value")
        if not member_id:
            raise InvalidValue("every member needs a 'value' (the member's id)")
        ids.append(member_id)
    return tuple(dict.fromkeys(ids))


def matches(node: Node, item: Any, attr: Attr) -> bool:
    """Evaluate a value filter on one value of a multi-valued attribute."""
    if isinstance(node, Logical):
        left = matches(node.left, item, attr)
        return (
            (left and matches(node.right, item, attr))
            if node.op == "and"
            else (left or matches(node.right, item, attr))
        )
    if isinstance(node, Not):
        return not matches(node.inner, item, attr)
    if isinstance(node, ValuePath):
        raise InvalidPath("value paths cannot be nested")
    name = node.path.rpartition(".")[2]
    sub = attr.child(name) if attr.type is Type.COMPLEX else None
    if attr.type is Type.COMPLEX and sub is None:
        raise InvalidPath(f"'{attr.name}' has no sub-attribute '{name}'")
    actual = item.get(sub.name) if sub is not None else item
    return _compare(actual, node.op, node.value, sub.case_exact if sub else attr.case_exact)


def _compare(actual: Any, op: str, expected: Any, case_exact: bool) -> bool:
    if op == "pr":
        return actual not in (None, "", [], {})
    if actual is None:
        return op == "ne" and expected is not None
    if isinstance(actual, str) and isinstance(expected, str) and not case_exact:
        actual, expected = actual.lower(), expected.lower()
    if isinstance(actual, bool) and isinstance(expected, str):
        expected = {"true": True, "false": False}.get(expected.lower(), expected)
    try:
        if op == "eq":
            return actual == expected
        if op == "ne":
            return actual != expected
        if op == "co":
            return str(expected) in str(actual)
        if op == "sw":
            return str(actual).startswith(str(expected))
        if op == "ew":
            return str(actual).endswith(str(expected))
        if op == "gt":
            return actual > expected
        if op == "ge":
            return actual >= expected
        if op == "lt":
            return actual < expected
        if op == "le":
            return actual <= expected
    except TypeError:
        raise InvalidFilter(f"cannot compare {actual!r} with {expected!r}") from None
    raise InvalidPath(f"unknown operator '{op}'")


__all__ = ["MemberAction", "MemberOp", "Op", "PatchResult", "apply_patch", "matches", "parse_operations"]
