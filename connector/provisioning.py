"""The provisioning service: what each SCIM operation does to the store.

Handlers in :mod:`connector.api` parse HTTP and call one method here; this module
knows nothing of Flask. Every method runs in one database transaction, so a
resource change and its journal entries commit together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.clock import Clock
from connector.scim import render
from connector.scim.errors import InvalidFilter, InvalidValue, NotFound, PreconditionFailed, TooMany
from connector.scim.filters import parse
from connector.scim.patch import MemberAction, MemberOp, apply_patch, parse_operations
from connector.scim.render import Projection
from connector.scim.schema import GROUP, USER, ResourceKind
from connector.scim.values import check_counts, normalise_resource
from connector.settings import Settings
from connector.store import groups as group_rows
from connector.store import person_keys
from connector.store import users as user_rows
from connector.store.database import ReadTooCostly, Store
from connector.store.fields import GROUP_FIELDS, GROUP_SORT, USER_FIELDS, USER_SORT
from connector.store.listing import Searches
from connector.store.models import GroupRow, UserRow, table_of
from connector.store.stored import Stored

MAX_START = 2**31  # startIndex beyond this is past every result: an empty page


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
    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        """:raises ValueError: ``store`` was opened for another person key than
        ``settings.sync.person_key`` (users would be written with keys the sync
        does not look for)."""
        configured = store.configured_person_key
        if configured is not None and str(configured) != str(person_keys.key_path(settings.sync.person_key)):
            raise ValueError(
                f"the store holds {configured} as the person key, the settings say {settings.sync.person_key}"
            )
        self.store = store
        self.settings = settings
        self.clock = clock  # stamps meta, membership starts and journal events
        groups = user_rows.groups_column(store.engine.dialect.name)
        self._searches = {
            "User": Searches(table_of(UserRow), USER_FIELDS, USER_SORT, related=groups),
            "Group": Searches(table_of(GroupRow), GROUP_FIELDS, GROUP_SORT),
        }

    # ------------------------------------------------------------------ users

    # Writes render their answer after the commit, so the write lock is held only
    # for the change itself (and the read of what the answer needs).

    def create_user(self, body: Any, base: str) -> Written:
        data = normalise_resource(USER, body)
        check_counts(USER, data, None, self.settings.scim.max_values_per_attribute)
        with self.store.connection_write() as conn:
            user = user_rows.insert_user(conn, data, self.clock.now(), key=self.store.person_key)
        return Written(render.resource(USER, user, base), render.etag(user.version))  # a new user is in no group

    def get_user(self, user_id: str, base: str, proj: Projection) -> Written:
        with self.store.connection_read() as conn:
            user, groups = self._user(conn, user_id, proj.wants("groups"), lock=False)
        return _user_out(user, groups, base, proj)

    def replace_user(self, user_id: str, body: Any, base: str, if_match: str | None) -> Written:
        data = normalise_resource(USER, body)
        proj = render.projection(USER, None, None)
        with self.store.connection_write() as conn:
            user, groups = self._user(conn, user_id, True, lock=True, if_match=if_match)
            check_counts(USER, data, user.data, self.settings.scim.max_values_per_attribute)
            user = user_rows.replace_user(conn, user, data, self.clock.now(), key=self.store.person_key) or user
        return _user_out(user, groups, base, proj)

    def patch_user(self, user_id: str, body: Any, base: str, if_match: str | None, proj: Projection) -> Written:
        ops = parse_operations(body, self.settings.scim.max_operations)
        with self.store.connection_write() as conn:
            # The groups are read with the user: a user's own PATCH never changes them.
            user, groups = self._user(conn, user_id, proj.wants("groups"), lock=True, if_match=if_match)
            result = apply_patch(USER, user.data, ops, max_values=self.settings.scim.max_values_per_attribute)
            user = user_rows.replace_user(conn, user, result.data, self.clock.now(), key=self.store.person_key) or user
        return _user_out(user, groups, base, proj)

    def delete_user(self, user_id: str, if_match: str | None) -> None:
        with self.store.connection_write() as conn:
            user, _ = self._user(conn, user_id, False, lock=True, if_match=if_match)
            user_rows.delete_user(conn, user, self.clock.now())

    @staticmethod
    def _user(
        conn, user_id: str, groups: bool, *, lock: bool, if_match: str | None = None
    ) -> tuple[Stored, list[tuple[str, str]]]:
        """The user (locked for a write) and, when ``groups``, its groups.

        :raises NotFound: when there is no such user.
        :raises PreconditionFailed: when ``if_match`` names another version.
        """
        found = None
        if _plausible(user_id):
            if groups:
                found = user_rows.get_user_and_groups(conn, user_id, lock=lock)
            else:
                user = user_rows.get_user(conn, user_id, lock=lock)
                found = (user, []) if user is not None else None
        if found is None:
            raise NotFound(f"User {user_id} not found")
        check_version(render.etag(found[0].version), if_match)
        return found

    # ----------------------------------------------------------------- groups

    def create_group(self, body: Any, base: str) -> Written:
        data = normalise_resource(GROUP, body)
        members = _ids(data.pop("members", None))
        proj = render.projection(GROUP, None, None)
        with self.store.connection_write() as conn:
            group = group_rows.insert_group(conn, data, members, self.clock.now())
            listed = self._members(conn, group, proj) if members else []
        return _group_out(group, listed, base, proj)

    def get_group(self, group_id: str, base: str, proj: Projection) -> Written:
        with self.store.connection_read() as conn:
            group = group_rows.get_group(conn, group_id) if _plausible(group_id) else None
            if group is None:
                raise NotFound(f"Group {group_id} not found")
            members = self._members(conn, group, proj)
        return _group_out(group, members, base, proj)

    def replace_group(self, group_id: str, body: Any, base: str, if_match: str | None) -> Written:
        data = normalise_resource(GROUP, body)
        members = _ids(data.pop("members", None))
        proj = render.projection(GROUP, None, None)
        with self.store.connection_write() as conn:
            group = self._locked_group(conn, group_id, if_match)
            ops = [MemberOp(MemberAction.REPLACE, ids=members)]
            group = group_rows.update_group(conn, group, data, ops, self.clock.now())
            listed = self._members(conn, group, proj)
        return _group_out(group, listed, base, proj)

    def patch_group(
        self, group_id: str, body: Any, base: str, if_match: str | None, proj: Projection | None
    ) -> Written:
        """Apply a PATCH; returns the resource only when ``proj`` asks for one."""
        ops = parse_operations(body, self.settings.scim.max_operations)
        with self.store.connection_write() as conn:
            group = self._locked_group(conn, group_id, if_match)
            result = apply_patch(GROUP, group.data, ops, max_values=self.settings.scim.max_values_per_attribute)
            group = group_rows.update_group(conn, group, result.data, result.members, self.clock.now())
            members = self._members(conn, group, proj) if proj is not None else []
        if proj is None:
            return Written({}, render.etag(group.version))
        return _group_out(group, members, base, proj)

    def delete_group(self, group_id: str, if_match: str | None) -> None:
        with self.store.connection_write() as conn:
            group = self._locked_group(conn, group_id, if_match)
            group_rows.delete_group(conn, group, self.clock.now())

    @staticmethod
    def _locked_group(conn, group_id: str, if_match: str | None) -> Stored:
        group = group_rows.get_group(conn, group_id, lock=True) if _plausible(group_id) else None
        if group is None:
            raise NotFound(f"Group {group_id} not found")
        check_version(render.etag(group.version), if_match)
        return group

    @staticmethod
    def _members(conn, group: Stored, proj: Projection) -> list[tuple[str, str]]:
        return group_rows.members_of(conn, [group.id])[group.id] if proj.wants("members") else []

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
            proj = render.projection(kind, query.attributes, query.excluded)
            # A user's groups come in the same statement (members of groups do not: a
            # group may have 50,000).
            groups = kind is USER and proj.wants("groups")
            try:
                search = self._searches[kind.name].search(node, query.sort_by, query.sort_order, groups)
                plans.append((kind, search, proj))
            except InvalidFilter as exc:
                if len(kinds) == 1:
                    raise
                errors.append(exc)  # root search: this kind cannot match the filter
        if not plans:
            raise errors[0]
        try:
            return self._page(plans, start, count, base, scim.read_budget_seconds)
        except ReadTooCostly:
            raise TooMany(
                f"the filter took more than {scim.read_budget_seconds:g} s to evaluate: narrow it (an eq "
                "on userName, externalId or id is answered from an index)"
            ) from None

    def _page(self, plans: list, start: int, count: int, base: str, budget: float) -> Page:
        with self.store.connection_read(budget) as conn:
            if len(plans) == 1:
                kind, search, proj = plans[0]
                rows = search.rows(conn, start - 1, count)
                if (rows and len(rows) < count) or (not rows and start == 1 and count):
                    total = start - 1 + len(rows)  # the last page: no COUNT needed
                else:
                    total = search.count(conn)
                return Page(total, start, self._render(conn, kind, rows, base, proj))
            total, offset, remaining, out = 0, start - 1, count, []
            for kind, search, proj in plans:
                size = search.count(conn)
                total += size
                if remaining and offset < size:
                    rows = search.rows(conn, offset, remaining)
                    out.extend(self._render(conn, kind, rows, base, proj))
                    remaining -= len(rows)
                offset = max(0, offset - size)
            return Page(total, start, out)

    @staticmethod
    def _render(conn, kind: ResourceKind, rows: list, base: str, proj: Projection) -> list[dict]:
        if kind is USER:
            wants = proj.wants("groups")  # then the rows carry them (Searches' related column)
            return [
                proj.apply(
                    render.resource(
                        kind,
                        r,
                        base,
                        _extra("groups", render.user_groups(user_rows.group_pairs(r.related) if wants else [], base)),
                    )
                )
                for r in rows
            ]
        members = group_rows.members_of(conn, [r.id for r in rows]) if proj.wants("members") else {}
        return [
            proj.apply(
                render.resource(kind, r, base, _extra("members", render.group_members(members.get(r.id, []), base)))
            )
            for r in rows
        ]


def _user_out(user: Stored, groups: list[tuple[str, str]], base: str, proj: Projection) -> Written:
    full = render.resource(USER, user, base, _extra("groups", render.user_groups(groups, base)))
    return Written(proj.apply(full), render.etag(user.version))


def _group_out(group: Stored, members: list[tuple[str, str]], base: str, proj: Projection) -> Written:
    full = render.resource(GROUP, group, base, _extra("members", render.group_members(members, base)))
    return Written(proj.apply(full), render.etag(group.version))


def _plausible(resource_id: str) -> bool:
    """Ids are ours (UUIDs): anything longer or with control characters cannot
    exist, and must not reach the database (PostgreSQL refuses NUL in text)."""
    return 0 < len(resource_id) <= 64 and resource_id.isprintable()


def _extra(name: str, value: list) -> dict | None:
    return {name: value} if value else None


def _ids(members: list[dict] | None) -> tuple[str, ...]:
    if not members:
        return ()
    ids = []
    for member in members:
        if not member.get("value"):
            raise InvalidValue("every member needs a 'value' (the member's id)")
        ids.append(member["value"])
    return tuple(dict.fromkeys(ids))
