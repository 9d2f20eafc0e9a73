"""The embedded target end to end: the §8 district through the SCIM API, a run with
WALKIN_SYNC__TARGET=store, and the group in the store — A, C, E and K — with no
directory to install; a revoke takes the member out."""

from __future__ import annotations

from sqlalchemy import select

from connector.store.models import EmbeddedMemberRow
from sync.context import build_context
from sync.reconcile import reconcile
from tests.conftest import AUTH
from tests.integration import examples


def test_a_run_on_the_embedded_target_keeps_the_group_in_the_store(client, store, settings, clock):
    ids = examples.load(client, store)
    settings.sync.target = "store"
    ctx = build_context(settings, store=store, clock=clock)
    assert ctx.target_name == "store"
    result = reconcile(ctx, "walkin")
    assert result.status.value == "ok", result.detail
    with store.session_read() as s:
        members = set(s.scalars(select(EmbeddedMemberRow.member).where(EmbeddedMemberRow.group == "walkin")))
    assert members == {ids[n] for n in "ACEK"}
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert client.patch(f"/scim/v2/Users/{ids['C']}", headers=AUTH, json=patch).status_code == 200
    assert reconcile(ctx, "walkin").counts["removed"] == 1
    assert ctx.target.read_members("walkin") == {ids[n] for n in "AEK"}
