"""Stored rows to SCIM representations, and ``attributes``/``excludedAttributes``
projection (RFC 7644 §3.4.2.5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidPath
from .schema import ResourceKind

_ALWAYS = ("schemas", "id", "meta")


def etag(version: int) -> str:
    return f'W/"{version}"'


def _time(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # Naive: SQLite hands back naive datetimes; they are stored in UTC.
    return value.isoformat(timespec="milliseconds") + "Z"


def resource(kind: ResourceKind, row: Any, base: str, extra: dict | None = None) -> dict:
    """The full representation of a stored row (``extra`` adds groups or members)."""
    data = row.data
    out: dict = {"schemas": data["schemas"], "id": row.id}
    for key, value in data.items():
        if key != "schemas":
            out[key] = value
    if extra:
        out.update(extra)
    location = f"{base}{kind.endpoint}/{row.id}"
    out["meta"] = {
        "resourceType": kind.name,
        "created": _time(row.created),
        "lastModified": _time(row.last_modified),
        "version": etag(row.version),
        "location": location,
    }
    return out


def group_members(members: list[tuple[str, str]], base: str) -> list[dict]:
    ref = {"User": f"{base}/Users/", "Group": f"{base}/Groups/"}
    return [{"value": m, "$ref": ref[t] + m, "type": t} for m, t in members]


def user_groups(groups: list[tuple[str, str]], base: str) -> list[dict]:
    return [{"value": g, "$ref": f"{base}/Groups/{g}", "display": name, "type": "direct"} for g, name in groups]


@dataclass(frozen=True)
class Projection:
    """Which attributes to return. Paths are lower-cased ``(container, attr, sub)``
    where container is ``""`` for the core schema or the extension URN."""

    include: frozenset[tuple[str, str, str]] | None
    exclude: frozenset[tuple[str, str, str]]

    def wants(self, attr: str, container: str = "") -> bool:
        """Whether any part of ``attr`` will be returned (to skip loading it)."""
        attr = attr.lower()
        if self.include is not None:
            return any(c == container and (a == attr or a == "") for c, a, _ in self.include)
        return (container, attr, "") not in self.exclude and (container, "", "") not in self.exclude

    def apply(self, full: dict) -> dict:
        if self.include is None and not self.exclude:
            return full
        out: dict = {}
        for key, value in full.items():
            if key in _ALWAYS:
                out[key] = value
                continue
            if ":" in key and isinstance(value, dict):
                section = self._section(key.lower(), value)
                if section:
                    out[key] = section
                continue
            kept = self._attr("", key, value)
            if kept is not None:
                out[key] = kept
        return out

    def _section(self, urn: str, value: dict) -> dict:
        return {k: v for k, v in ((k, self._attr(urn, k, v)) for k, v in value.items()) if v is not None}

    def _attr(self, container: str, name: str, value: Any) -> Any:
        lower = name.lower()
        if self.include is not None:
            if (container, "", "") in self.include or (container, lower, "") in self.include:
                return value
            subs = {s for c, a, s in self.include if c == container and a == lower and s}
            return _only_subs(value, subs) if subs else None
        if (container, lower, "") in self.exclude or (container, "", "") in self.exclude:
            return None
        subs = {s for c, a, s in self.exclude if c == container and a == lower and s}
        return _without_subs(value, subs) if subs else value


def _only_subs(value: Any, subs: set[str]) -> Any:
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if k.lower() in subs}
        return kept or None
    if isinstance(value, list):
        kept_values = [x for x in (_only_subs(v, subs) for v in value) if x]
        return kept_values or None
    return None


def _without_subs(value: Any, subs: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() not in subs} or None
    if isinstance(value, list):
        return [x for x in (_without_subs(v, subs) for v in value) if x] or None
    return value


def _parse_list(kind: ResourceKind, text: str | None) -> frozenset[tuple[str, str, str]] | None:
    if text is None:
        return None
    items = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        items.append(_parse_one(kind, part))
    return frozenset(items)


def _parse_one(kind: ResourceKind, path: str) -> tuple[str, str, str]:
    lower = path.lower()
    for schema_id in kind.schema_ids:
        sid = schema_id.lower()
        if lower == sid:
            return ("" if schema_id == kind.core.id else sid, "", "")
        if lower.startswith(sid + ":"):
            rest = lower[len(sid) + 1 :]
            container = "" if schema_id == kind.core.id else sid
            attr, _, sub = rest.partition(".")
            return (container, attr, sub)
    if lower.startswith("urn:"):
        raise InvalidPath(f"'{path}' names a schema this resource does not have")
    attr, _, sub = lower.partition(".")
    return ("", attr, sub)


def projection(kind: ResourceKind, attributes: str | None, excluded: str | None) -> Projection:
    """Build a projection from the query parameters (comma-separated paths)."""
    include = _parse_list(kind, attributes)
    if include is not None and not include:
        include = None
    return Projection(include, _parse_list(kind, excluded) or frozenset())
