"""A membership keeps its start date (the date an approval counts from) through every
write that keeps the member; only members new to the group start on the clock's now,
and the journal records only the members that really came or went."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from connector.store.models import JournalRow, MemberRow
from tests.conftest import AUTH, NOON

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _utc(value: datetime) -> datetime:
    """SQLite gives naive UTC back."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _users(client, *names: str) -> list[str]:
    return [client.post("/scim/v2/Users", json={"userName": f"{n}@d.org"}, headers=AUTH).get_json()["id"]
            for n in names]


def _group(client, members: list[str]) -> str:
    r = client.post("/scim/v2/Groups", json={"displayName": "WalkIn-Approvers-0123",
                                             "members": [{"value": m} for m in members]}, headers=AUTH)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def _starts(store, group_id: str) -> dict[str, datetime]:
    with store.session_read() as s:
        rows = s.execute(select(MemberRow.member_id, MemberRow.since).where(MemberRow.group_id == group_id))
        return {member: _utc(since) for member, since in rows}


def _last_seq(store) -> int:
    with store.session_read() as s:
        return s.scalar(select(func.max(JournalRow.seq))) or 0


def _journal_after(store, seq: int) -> list[tuple[str, str]]:
    with store.session_read() as s:
        rows = s.execute(select(JournalRow.event, JournalRow.detail).where(JournalRow.seq > seq)
                         .order_by(JournalRow.seq))
        return [(event, detail["member"]) for event, detail in rows]


def _patch(client, group_id: str, *ops: dict):
    return client.patch(f"/scim/v2/Groups/{group_id}", json={"Operations": list(ops)}, headers=AUTH)


def _members(ids: list[str]) -> list[dict]:
    return [{"value": i} for i in ids]


def _write(client, group_id: str, form: str, ids: list[str]):
    """The same member list written in one of the forms a SCIM client may use."""
    if form == "put":
        return client.put(f"/scim/v2/Groups/{group_id}", headers=AUTH, json={
            "schemas": [GROUP_SCHEMA], "displayName": "WalkIn-Approvers-0123", "members": _members(ids)})
    if form == "patch-path":
        return _patch(client, group_id, {"op": "replace", "path": "members", "value": _members(ids)})
    if form == "patch-entra":
        return _patch(client, group_id, {"op": "Replace", "path": "members", "value": ids})
    if form == "patch-no-path":
        return _patch(client, group_id, {"op": "replace", "value": {"members": _members(ids)}})
    assert form == "patch-remove-then-add"
    return _patch(client, group_id, {"op": "remove", "path": "members"},
                  {"op": "add", "path": "members", "value": _members(ids)})


FORMS = ["put", "patch-path", "patch-entra", "patch-no-path", "patch-remove-then-add"]


@pytest.mark.parametrize("form", FORMS)
def test_writing_the_same_members_again_keeps_every_start_and_journals_nothing(client, store, clock, form):
    """A replace (or remove-all and add back) of the same list keeps each membership's
    start, journals no member event and keeps the group's version."""
    ids = _users(client, "a", "b", "c")
    gid = _group(client, ids)
    etag = client.get(f"/scim/v2/Groups/{gid}", headers=AUTH).headers["ETag"]
    mark = _last_seq(store)
    clock.advance(timedelta(days=30))
    r = _write(client, gid, form, list(reversed(ids)))
    assert r.status_code in (200, 204), r.get_json()
    assert _starts(store, gid) == dict.fromkeys(ids, NOON)
    assert _journal_after(store, mark) == []
    assert client.get(f"/scim/v2/Groups/{gid}", headers=AUTH).headers["ETag"] == etag


@pytest.mark.parametrize("form", FORMS)
def test_a_partly_different_list_keeps_the_kept_dates_and_dates_only_the_new(client, store, clock, form):
    """Kept members keep their start; removed ones go; new ones start now; the
    journal has one event per member that came or went."""
    old, *kept, new = _users(client, "old", "kept1", "kept2", "new")
    gid = _group(client, [old, *kept])
    mark = _last_seq(store)
    later = clock.advance(timedelta(days=7))
    r = _write(client, gid, form, [kept[1], new, kept[0]])
    assert r.status_code in (200, 204), r.get_json()
    assert _starts(store, gid) == {kept[0]: NOON, kept[1]: NOON, new: later}
    assert sorted(_journal_after(store, mark)) == sorted([
        ("group.member_removed", old), ("group.member_added", new)])


def test_an_empty_replace_removes_everyone_and_a_new_list_after_it_starts_again(client, store, clock):
    """Members that really leave (an empty replace) and come back later start anew."""
    ids = _users(client, "a", "b")
    gid = _group(client, ids)
    assert _patch(client, gid, {"op": "replace", "path": "members", "value": []}).status_code == 204
    assert _starts(store, gid) == {}
    back = clock.advance(timedelta(days=2))
    assert _patch(client, gid, {"op": "replace", "path": "members", "value": _members(ids)}).status_code == 204
    assert _starts(store, gid) == dict.fromkeys(ids, back)


def test_a_member_added_and_removed_in_one_patch_leaves_no_trace(client, store, clock):
    """Added then removed in one write: no row, no journal event, the version kept."""
    ids = _users(client, "a", "b")
    gid = _group(client, ids[:1])
    etag = client.get(f"/scim/v2/Groups/{gid}", headers=AUTH).headers["ETag"]
    mark = _last_seq(store)
    clock.advance(timedelta(days=1))
    r = _patch(client, gid, {"op": "add", "path": "members", "value": _members(ids[1:])},
               {"op": "remove", "path": f'members[value eq "{ids[1]}"]'},
               {"op": "replace", "path": "members", "value": _members(ids[:1])})
    assert r.status_code == 204
    assert _starts(store, gid) == {ids[0]: NOON}
    assert _journal_after(store, mark) == []
    assert client.get(f"/scim/v2/Groups/{gid}", headers=AUTH).headers["ETag"] == etag


def test_a_replace_still_refuses_unknown_new_members(client, store):
    """Members new to the group are still checked: an unknown id is a 400, nothing changes."""
    ids = _users(client, "a")
    gid = _group(client, ids)
    r = _patch(client, gid, {"op": "replace", "path": "members", "value": _members([ids[0], "no-such-id"])})
    assert r.status_code == 400 and r.get_json()["scimType"] == "invalidValue"
    assert _starts(store, gid) == {ids[0]: NOON}
