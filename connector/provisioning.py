"""The provisioning service: what each SCIM operation does to the store.

Handlers in :mod:`connector.api` parse HTTP and call one method here; this module
knows nothing of Flask. Every method runs in one database transaction, so a
resource change and its journal entries commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import asc, desc, func, select

from connector.scim import render
from connector.scim.errors import InvalidFilter, InvalidValue, NotFound, PreconditionFailed
from connector.scim.filters import compile_filter, parse, strip_core_urn
from connector.scim.patch import apply_patch, parse_operations
from connector.scim.render import Projection
from connector.scim.schema import GROUP, USER, ResourceKind
from connector.scim.values import normalise_resource
from connector.settings import Settings
from connector.store import groups as group_rows
from connector.store import users as user_rows
from connector.store.database import Store
from connector.store.fields import GROUP_FIELDS, GROUP_SORT, USER_FIELDS, USER_SORT
from connector.store.models import GroupRow, UserRow


MAX_START = 2**31  # startIndex beyond this is past every result: an empty page


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Query:
    """A list or search request (RFC 7644 §3.4.2, §3.4.3)."""

    filter: str | None = None
    start_index: int = 1
    count: int | None = None
    sort_by: str | None = None
    sort_order: str | None = None
    attributes: str | None = None
    excluded: str | None = None


@dataclass(frozen=True)
class Page:
    total: int
    start_index: int
    resources: list[dict]


@dataclass(frozen=True)
class Written:
    """A stored resource as answered: its representation and ETag."""

    resource: dict
    etag: str


def check_version(current: str, if_match: str | None) -> None:
    """RFC 7644 §3.14: a write with ``If-Match`` applies only to that version."""
    if if_match is None:
        return
    tags = [t.strip() for t in if_match.split(",")]
    if "*" in tags:
        return
    weakless = {t.removeprefix("W/") for t in tags}
    if current.removeprefix("W/") not in weakless:
        raise PreconditionFailed(f"the resource has version {current}, not {if_match}")


class Provisioning:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # ------------------------------------------------------------------ users

    # Writes render their answer after the commit, so the write lock is held only
    # for the change itself.

    def create_user(self, body: Any, base: str) -> Written:
        data = normalise_resource(USER, body)
        with self.store.write() as session:
            row = user_rows.insert_user(session, data, now())
        return Written(render.resource(USER, row, base), render.etag(row.version))  # a new user is in no group

    def get_user(self, user_id: str, base: str, proj: Projection) -> Written:
        with self.store.read() as session:
            row = user_rows.get_user(session, user_id) if _plausible(user_id) else None
            if row is None:
                raise NotFound(f"User {user_id} not found")
            return self._user_out(session, row, base, proj)

    def replace_user(self, user_id: str, body: Any, base: str, if_match: str | None) -> Written:
        data = normalise_resource(USER, body)
        with self.store.write() as session:
            row = self._locked_user(session, user_id, if_match)
            user_rows.replace_user(session, row, data, now())
        return self._user_after_write(row, base, render.projection(USER, None, None))

    def patch_user(self, user_id: str, body: Any, base: str, if_match: str | None, proj: Projection) -> Written:
        ops = parse_operations(body, self.settings.scim.max_operations)
        with self.store.write() as session:
            row = self._locked_user(session, user_id, if_match)
            result = apply_patch(USER, row.data, ops)
            user_rows.replace_user(session, row, result.data, now())
        return self._user_after_write(row, base, proj)

    def delete_user(self, user_id: str, if_match: str | None) -> None:
        with self.store.write() as session:
            row = self._locked_user(session, user_id, if_match)
            user_rows.delete_user(session, row, now())

    def _locked_user(self, session, user_id: str, if_match: str | None) -> UserRow:
        row = user_rows.get_user(session, user_id, lock=True) if _plausible(user_id) else None
        if row is None:
            raise NotFound(f"User {user_id} not found")
        check_version(render.etag(row.version), if_match)
        return row

    def _user_after_write(self, row: UserRow, base: str, proj: Projection) -> Written:
        if not proj.wants("groups"):
            return self._user_out(None, row, base, proj)
        with self.store.read() as session:
            return self._user_out(session, row, base, proj)

    def _user_out(self, session, row: UserRow, base: str, proj: Projection) -> Written:
        extra = None
        if proj.wants("groups"):
            groups = user_rows.groups_of(session, [row.id])[row.id]
            extra = {"groups": render.user_groups(groups, base)} if groups else None
        full = render.resource(USER, row, base, extra)
        return Written(proj.apply(full), render.etag(row.version))

    # ----------------------------------------------------------------- groups

    def create_group(self, body: Any, base: str) -> Written:
        data = normalise_resource(GROUP, body)
        members = _ids(data.pop("members", None))
        with self.store.write() as session:
            row = group_rows.insert_group(session, data, members, now())
        if not members:
            return Written(render.resource(GROUP, row, base), render.etag(row.version))
        with self.store.read() as session:
            return self._group_out(session, row, base, render.projection(GROUP, None, None))

    def get_group(self, group_id: str, base: str, proj: Projection) -> Written:
        with self.store.read() as session:
            row = group_rows.get_group(session, group_id) if _plausible(group_id) else None
            if row is None:
                raise NotFound(f"Group {group_id} not found")
            return self._group_out(session, row, base, proj)

    def replace_group(self, group_id: str, body: Any, base: str, if_match: str | None) -> Written:
        data = normalise_resource(GROUP, body)
        members = _ids(data.pop("members", None))
        with self.store.write() as session:
            row = self._locked_group(session, group_id, if_match)
            ops = group_rows.replace_members(session, row, members)
            group_rows.update_group(session, row, data, ops, now())
        with self.store.read() as session:
            return self._group_out(session, row, base, render.projection(GROUP, None, None))

    def patch_group(self, group_id: str, body: Any, base: str, if_match: str | None,
                    proj: Projection | None) -> Written | None:
        """Apply a PATCH; returns the resource only when ``proj`` asks for one."""
        ops = parse_operations(body, self.settings.scim.max_operations)
        with self.store.write() as session:
            row = self._locked_group(session, group_id, if_match)
            result = apply_patch(GROUP, row.data, ops)
            group_rows.update_group(session, row, result.data, result.members, now())
        if proj is None:
            return Written({}, render.etag(row.version))
        with self.store.read() as session:
            return self._group_out(session, row, base, proj)

    def delete_group(self, group_id: str, if_match: str | None) -> None:
        with self.store.write() as session:
            row = self._locked_group(session, group_id, if_match)
            group_rows.delete_group(session, row, now())

    def _locked_group(self, session, group_id: str, if_match: str | None) -> GroupRow:
        row = group_rows.get_group(session, group_id, lock=True) if _plausible(group_id) else None
        if row is None:
            raise NotFound(f"Group {group_id} not found")
        check_version(render.etag(row.version), if_match)
        return row

    def _group_out(self, session, row: GroupRow, base: str, proj: Projection) -> Written:
        extra = None
        if proj.wants("members"):
            members = group_rows.members_of(session, [row.id])[row.id]
            extra = {"members": render.group_members(members, base)} if members else None
        return Written(proj.apply(render.resource(GROUP, row, base, extra)), render.etag(row.version))

    # ------------------------------------------------------------------ lists

    def search(self, kinds: tuple[ResourceKind, ...], query: Query, base: str) -> Page:
        """List or search resources of one kind, or of every kind for the root
        ``/.search`` (RFC 7644 §3.4.3): filter in SQL, exact ``totalResults``."""
        scim = self.settings.scim
        node = parse(query.filter, scim.max_filter_length) if query.filter is not None else None
        count = scim.default_page_size if query.count is None else max(0, min(query.count, scim.max_page_size))
        start = min(max(1, query.start_index), MAX_START)
        plans = []
        errors = []
        for kind in kinds:
            model, fields, sorts = _TABLES[kind.name]
            try:
                where = compile_filter(node, fields) if node is not None else None
            except InvalidFilter as exc:
                if len(kinds) == 1:
                    raise
                errors.append(exc)  # root search: this kind cannot match the filter
                continue
            plans.append((kind, model, where, _order(query, sorts, model)))
        if not plans:
            raise errors[0]
        with self.store.read() as session:
            if len(plans) == 1:
                kind, model, where, order = plans[0]
                rows = self._rows(session, model, where, order, start - 1, count)
                if rows and len(rows) < count or (not rows and start == 1 and count):
                    total = start - 1 + len(rows)  # the last page: no COUNT needed
                else:
                    total = self._count(session, model, where)
                return Page(total, start, self._render(session, kind, rows, base, query))
            total, offset, remaining, out = 0, start - 1, count, []
            for kind, model, where, order in plans:
                size = self._count(session, model, where)
                total += size
                if remaining and offset < size:
                    rows = self._rows(session, model, where, order, offset, remaining)
                    out.extend(self._render(session, kind, rows, base, query))
                    remaining -= len(rows)
                offset = max(0, offset - size)
            return Page(total, start, out)

    @staticmethod
    def _rows(session, model, where, order, offset: int, limit: int) -> list:
        if not limit:
            return []
        # Plain rows, not ORM objects: a list only reads and renders them.
        stmt = select(model.id, model.version, model.created, model.last_modified, model.data)
        if where is not None:
            stmt = stmt.where(where)
        return list(session.execute(stmt.order_by(*order).offset(offset).limit(limit)))

    @staticmethod
    def _count(session, model, where) -> int:
        stmt = select(func.count()).select_from(model)
        if where is not None:
            stmt = stmt.where(where)
        return session.scalar(stmt) or 0

    @staticmethod
    def _render(session, kind: ResourceKind, rows: list, base: str, query: Query) -> list[dict]:
        proj = render.projection(kind, query.attributes, query.excluded)
        ids = [r.id for r in rows]
        if kind is USER:
            groups = user_rows.groups_of(session, ids) if proj.wants("groups") else {}
            return [proj.apply(render.resource(kind, r, base, _extra(
                "groups", render.user_groups(groups.get(r.id, []), base)))) for r in rows]
        members = group_rows.members_of(session, ids) if proj.wants("members") else {}
        return [proj.apply(render.resource(kind, r, base, _extra(
            "members", render.group_members(members.get(r.id, []), base)))) for r in rows]


_TABLES = {"User": (UserRow, USER_FIELDS, USER_SORT), "Group": (GroupRow, GROUP_FIELDS, GROUP_SORT)}


def _plausible(resource_id: str) -> bool:
    """Ids are ours (UUIDs): anything longer or with control characters cannot
    exist, and must not reach the database (PostgreSQL refuses NUL in text)."""
    return 0 < len(resource_id) <= 64 and resource_id.isprintable()


def _extra(name: str, value: list) -> dict | None:
    return {name: value} if value else None


def _order(query: Query, sorts: dict, model) -> list:
    descending = (query.sort_order or "ascending").lower() == "descending"
    if query.sort_order and query.sort_order.lower() not in ("ascending", "descending"):
        raise InvalidValue("sortOrder must be 'ascending' or 'descending'")
    if query.sort_by:
        column = sorts.get(strip_core_urn(query.sort_by).lower())
        if column is None:
            raise InvalidValue(f"sorting by '{query.sort_by}' is not supported")
        # RFC 7644 §3.4.2.3: resources without a value sort last ascending, first descending.
        nulls = column.is_(None)
        return [nulls.desc() if descending else nulls.asc(), desc(column) if descending else asc(column), model.id]
    return [model.created, model.id]


def _ids(members: list[dict] | None) -> tuple[str, ...]:
    if not members:
        return ()
    ids = []
    for member in members:
        if not member.get("value"):
            raise InvalidValue("every member needs a 'value' (the member's id)")
        ids.append(member["value"])
    return tuple(dict.fromkeys(ids))

