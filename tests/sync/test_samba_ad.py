"""The LDAP target in the ``ad`` flavour, and the whole sync, against a real Active
Directory implementation: a throw-away Samba AD DC over verified LDAPS
(tests/sync/samba.py). Where tests/sync/test_ldap_ad.py replays AD's recorded
response shapes, these see a real server's: linked ``member`` values that follow a
renamed entry, 68/53 for stale member values (Samba ignores the permissive-modify
control for ``member``), explicit ranged retrieval."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
import yaml
from ldap3 import MODIFY_ADD, MODIFY_DELETE, NONE, SAFE_SYNC, Connection, Server
from ldap3.core.exceptions import LDAPOperationResult
from sqlalchemy import select

from connector.store.models import AccessLossRow, AuditRow, HoldingRow, PendingChangeRow, SyncRunRow
from mappings.model import DEFAULT_MAPPING_PATH
from sync.context import build_context
from sync.ledger import RunStatus
from sync.reconcile import SyncContext, reconcile
from sync.targets import ldap3_import  # noqa: F401  (imports ldap3 without pyasn1's deprecation warnings)
from sync.targets.base import Outcome
from sync.targets.ldap import PERMISSIVE_MODIFY_OID, LdapTarget
from sync.targets.ldap_filters import normalise_dn
from sync.targets.ldap_session import VerifyingTls, connection_options
from sync.targets.ldap_settings import LdapSettings
from tests.faketime import pinned_env
from tests.sync import people as P

from .conftest import no_sleep
from .samba import BULK, SambaDc, bulk_name

ENTITLEMENT = "walkin"


def members(samba: SambaDc, group: str | None = None) -> set[str]:
    """The group's members as Samba holds them, normalised."""
    return {normalise_dn(v) for v in samba.member_values(group or samba.group_dn)}


def dn(samba: SambaDc, sam: str) -> str:
    return normalise_dn(samba.user_dn(sam))


def audit(store) -> list[tuple[str, str | None, str, list, str | None]]:
    with store.session_read() as s:
        return [(r.action, r.user_name, r.result, r.reasons, r.member)
                for r in s.scalars(select(AuditRow).order_by(AuditRow.id))]


@pytest.fixture
def sync_settings(settings, samba, samba_settings, tmp_path):
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["directory_group"]["ldap_group_dn"] = samba.group_dn
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(data))
    settings.mapping_path = path
    settings.sync.target = "ldap"
    settings.ldap = samba_settings
    return settings


@pytest.fixture
def ctx(sync_settings, store, clock) -> Iterator[SyncContext]:
    context = build_context(sync_settings, store=store, clock=clock)
    yield context
    context.target.close()


@pytest.fixture
def ad_target(samba_settings) -> Iterator[LdapTarget]:
    """The real target on the test's Samba (the name ``target`` is the contract harness's)."""
    made = LdapTarget(samba_settings, sleep=no_sleep)
    yield made
    made.close()


# ------------------------------------------------------------------ grant and revoke


def test_grant_then_revoke_through_the_sync(client, samba, ctx, store, clock):
    """Two entitled people are added; a location change (an event run) and a departure
    (a full run) remove them again, with the reasons and loss dates recorded; the AD
    group ends empty (no placeholder)."""
    ann = P.create(client, P.person("ann"))
    bea = P.create(client, P.person("bea"))
    P.approvers(client, "0123", [ann, bea])
    first = reconcile(ctx, ENTITLEMENT)
    assert first.status is RunStatus.OK and first.counts["added"] == 2
    assert members(samba) == {dn(samba, "ann"), dn(samba, "bea")}
    assert sorted(audit(store)) == [("grant", "ann", "ok", [], dn(samba, "ann")),
                                    ("grant", "bea", "ok", [], dn(samba, "bea"))]

    P.patch(client, ann, {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    event = reconcile(ctx, ENTITLEMENT, kind="event", person_ids=[ann])
    assert event.status is RunStatus.OK and members(samba) == {dn(samba, "bea")}
    assert audit(store)[-1] == ("revoke", "ann", "ok", ["NO_APPROVAL"], dn(samba, "ann"))

    P.patch(client, bea, {"op": "Replace", "path": "active", "value": "False"})
    full = reconcile(ctx, ENTITLEMENT)
    assert full.status is RunStatus.OK and full.counts["removed"] == 1
    assert samba.member_values() == []
    assert audit(store)[-1] == ("revoke", "bea", "ok", ["NOT_ACTIVE"], dn(samba, "bea"))
    today = clock.today(ZoneInfo("America/Denver")).isoformat()
    with store.session_read() as s:
        losses = {(r.person_id, r.entitlement, r.lost_on, r.run_id) for r in s.scalars(select(AccessLossRow))}
    assert losses == {(ann, ENTITLEMENT, today, event.run_id), (bea, ENTITLEMENT, today, full.run_id)}


# ------------------------------------------------------------------ more than 1,500 members


def ranged_factory(settings: LdapSettings, answers: list[list[str]]) -> Callable[[], Connection]:
    """Connections that ask for ``member;range=0-1499`` where the target asks for
    plain ``member``, as if the server enforced MaxValRange like Windows AD (Samba
    advertises it, but answers a plain read in full); Samba then answers real slices,
    whose attribute names are appended to ``answers``."""

    class Ranged(Connection):
        def search(self, search_base, search_filter, *args, attributes=None, **kwargs):
            if attributes and [a.lower() for a in attributes] == ["member"]:
                attributes = ["member;range=0-1499"]
            status, result, response, request = super().search(search_base, search_filter, *args,
                                                                attributes=attributes, **kwargs)
            answers.extend([name for name in entry["raw_attributes"] if name.lower().startswith("member")]
                           for entry in response or () if entry.get("type") == "searchResEntry")
            return status, result, response, request

    def connect() -> Connection:
        tls = VerifyingTls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ca_file)
        server = Server(settings.urls[0], get_info=NONE, tls=tls, connect_timeout=settings.connect_timeout)
        conn = Ranged(server, user=settings.bind_dn, password=settings.bind_password.get_secret_value(),
                      client_strategy=SAFE_SYNC, **connection_options(settings))
        conn.open()
        conn.bind()
        return conn

    return connect


def test_a_group_of_1600_is_read_whole_plainly_and_through_ranges(samba, samba_settings, ad_target):
    """Samba answers a plain read of 1,600 values in full; forced through AD's ranges
    (member;range=0-1499, then 1500-*, as Samba slices them), the target's ranged
    reader follows them and gets the very same 1,600."""
    everyone = {dn(samba, bulk_name(i)) for i in range(BULK)}
    assert ad_target.read_members(samba.large_group_dn) == everyone
    answers: list[list[str]] = []
    ranged = LdapTarget(samba_settings, connection_factory=ranged_factory(samba_settings, answers), sleep=no_sleep)
    try:
        assert ranged.read_members(samba.large_group_dn) == everyone
    finally:
        ranged.close()
    assert answers == [["member;range=0-1499"], ["member;range=1500-*"]]


def test_1600_members_removed_and_added_back_in_batches(samba, samba_settings, ad_target):
    """All 1,600 removed (the AD group may be empty), then added back, 500 values a
    request; every member has its outcome and the ranged reader sees them all."""
    everyone = sorted(dn(samba, bulk_name(i)) for i in range(BULK))
    removed = ad_target.remove_members(samba.large_group_dn, everyone)
    assert len(removed.done()) == BULK and removed.requests == 4 and removed.failed() == {}
    assert samba.member_values(samba.large_group_dn) == []
    added = ad_target.add_members(samba.large_group_dn, everyone)
    assert len(added.done()) == BULK and added.requests == 4 and added.failed() == {}
    answers: list[list[str]] = []
    ranged = LdapTarget(samba_settings, connection_factory=ranged_factory(samba_settings, answers), sleep=no_sleep)
    try:
        assert ranged.read_members(samba.large_group_dn) == set(everyone)
    finally:
        ranged.close()


# ------------------------------------------------------------------ stale values (68 / 53)


@pytest.mark.parametrize("control", [True, False], ids=["permissive-control", "no-control"])
def test_samba_answers_68_and_53_for_stale_member_values(samba, control):
    """The server quirk the next test rests on: adding a present member is 68
    entryAlreadyExists, deleting an absent one 53 unwillingToPerform, with or without
    the permissive-modify control (shared/docs/directories.md)."""
    conn = samba.admin()
    present, absent = samba.user_dn("ann"), samba.user_dn("bea")
    samba.set_members([present])
    controls = [(PERMISSIVE_MODIFY_OID, False, None)] if control else None
    for op, value, code in ((MODIFY_ADD, present, 68), (MODIFY_DELETE, absent, 53)):
        with pytest.raises(LDAPOperationResult) as refused:
            conn.modify(samba.group_dn, {"member": [(op, [value])]}, controls=controls)
        assert refused.value.result == code
    assert members(samba) == {normalise_dn(present)}


@pytest.mark.parametrize("permissive", [None, False], ids=["permissive-control", "no-control"])
def test_stale_values_count_as_done_alone_or_among_others(samba, samba_settings, permissive):
    """The target's view of the group is stale (another writer got there first):
    Samba refuses the requests (68, 53), the target splits them, checks each stale
    value with a (member=…) read and counts it as done; the others are written."""
    target = LdapTarget(samba_settings.model_copy(update={"permissive_modify": permissive}), sleep=no_sleep)
    ann, bea, cal, dee, eve = (dn(samba, name) for name in ("ann", "bea", "cal", "dee", "eve"))
    samba.set_members([samba.user_dn("ann"), samba.user_dn("bea")])
    try:
        alone = target.add_members(samba.group_dn, [ann], current=set())
        assert alone.outcomes == {ann: (Outcome.DONE, "already a member")} and alone.requests == 1
        among = target.add_members(samba.group_dn, [ann, cal, dee], current=set())
        assert among.outcomes == {ann: (Outcome.DONE, "already a member"), cal: (Outcome.DONE, "added"),
                                  dee: (Outcome.DONE, "added")}
        assert among.requests == 3  # refused whole, then [ann] refused alone, then [cal, dee]
        assert members(samba) == {ann, bea, cal, dee}

        gone = target.remove_members(samba.group_dn, [eve], current={eve})
        assert gone.outcomes == {eve: (Outcome.DONE, "not a member")} and gone.requests == 1
        mixed = target.remove_members(samba.group_dn, [eve, cal], current={eve, cal})
        assert mixed.outcomes == {eve: (Outcome.DONE, "not a member"), cal: (Outcome.DONE, "removed")}
        assert mixed.requests == 3
        assert members(samba) == {ann, bea, dee}
    finally:
        target.close()


# ------------------------------------------------------------------ renames


def test_a_renamed_entry_stays_a_member_once(client, samba, ctx, store):
    """The person's AD entry is renamed (modrdn): AD rewrites the group's member value
    (a linked attribute), and the next full run finds the person under the new DN:
    no duplicate add, no removal."""
    cal = P.create(client, P.person("cal"))
    P.approvers(client, "0123", [cal])
    reconcile(ctx, ENTITLEMENT)
    renamed = normalise_dn(samba.rename(samba.user_dn("cal"), "Cal Renamed"))
    assert members(samba) == {renamed}  # the member value followed the entry
    before = audit(store)
    result = reconcile(ctx, ENTITLEMENT)
    assert result.status is RunStatus.OK
    assert members(samba) == {renamed} and len(samba.member_values()) == 1
    assert audit(store) == before  # nothing to grant, revoke or report


@pytest.mark.parametrize("kind", ["event", "full"])
def test_a_changed_user_name_moves_the_membership(client, samba, ctx, store, kind):
    """dee's SCIM userName becomes dee.lee, the name of another AD account: the old
    account's membership is removed (a move: dee keeps the entitlement, so no loss
    date) and the new one's added, both audited as dee's."""
    dee = P.create(client, P.person("dee"))
    P.approvers(client, "0123", [dee])
    reconcile(ctx, ENTITLEMENT)
    assert members(samba) == {dn(samba, "dee")}
    P.patch(client, dee, {"op": "replace", "path": "userName", "value": "dee.lee"})
    result = reconcile(ctx, ENTITLEMENT, **({"kind": "event", "person_ids": [dee]} if kind == "event" else {}))
    assert result.status is RunStatus.OK
    assert members(samba) == {dn(samba, "dee.lee")}
    with store.session_read() as s:
        later = [(r.action, r.person_id, r.member, r.result) for r in s.scalars(
            select(AuditRow).where(AuditRow.run_id == result.run_id).order_by(AuditRow.id))]
    assert ("grant", dee, dn(samba, "dee.lee"), "ok") in later
    assert ("move", dee, dn(samba, "dee"), "ok") in later
    with store.session_read() as s:
        assert s.scalars(select(AccessLossRow)).all() == []


# ------------------------------------------------------------------ kill and converge


def _child_env(sync_settings, clock, preload: str, **extra: str) -> dict[str, str]:
    """``walkin sync``'s environment for this test's store, mapping and Samba; its
    clock starts where the test's stands."""
    ldap = sync_settings.ldap
    env = {
        "WALKIN_DATABASE_URL": sync_settings.database_url,
        "WALKIN_MAPPING_PATH": str(sync_settings.mapping_path),
        "WALKIN_SYNC__TARGET": "ldap",
        "WALKIN_LDAP__URLS": json.dumps(ldap.urls),
        "WALKIN_LDAP__CA_FILE": ldap.ca_file,
        "WALKIN_LDAP__FLAVOUR": ldap.flavour,
        "WALKIN_LDAP__BIND_DN": ldap.bind_dn,
        "WALKIN_LDAP__BIND_PASSWORD": ldap.bind_password.get_secret_value(),
        "WALKIN_LDAP__PEOPLE_BASE": ldap.people_base,
        "WALKIN_LDAP__MATCH_ATTRIBUTE": ldap.match_attribute,
        "WALKIN_LDAP__PEOPLE_FILTER": ldap.people_filter,
        **extra,
    }
    return pinned_env({**os.environ, **env}, clock.now(), preload)


def test_a_sync_killed_mid_run_then_converges(client, samba, sync_settings, store, clock, faketime_preload,
                                              tmp_path):
    """``walkin sync`` (its own process, two values a modify request) is killed with
    SIGKILL once the group holds some but not all of 300 entitled people; the next
    run, in process, makes the group exactly the entitled set (the strays it was
    seeded with removed)."""
    names = [bulk_name(i) for i in range(300)]
    strays = [samba.user_dn(bulk_name(i)) for i in range(BULK - 3, BULK)]
    ids = [P.create(client, P.person(name)) for name in names]
    P.approvers(client, "0123", ids)
    samba.set_members(strays)
    entitled = {dn(samba, name) for name in names}
    env = _child_env(sync_settings, clock, faketime_preload, WALKIN_LDAP__BATCH_SIZE="2")
    log = tmp_path / "walkin-sync.log"
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "connector.cli", "sync"], env=env, stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(members(samba) & entitled) < 10:
            assert child.poll() is None, f"walkin sync ended before it was killed:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"walkin sync added nobody:\n{log.read_text()[-2000:]}"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    interrupted = members(samba)
    assert 10 <= len(interrupted & entitled) < len(entitled), "the kill did not land mid-run"

    ctx = build_context(sync_settings, store=store, clock=clock)
    try:
        result = reconcile(ctx, ENTITLEMENT)
    finally:
        ctx.target.close()
    assert result.status is RunStatus.OK, result.detail
    assert members(samba) == entitled
    assert result.counts["added"] == len(entitled - interrupted) and result.counts["removed"] == 3
    # The killed run is closed as interrupted, and every grant the directory holds is
    # in the audit trail exactly once — recorded by the killed run as the directory
    # confirmed it, or found by the next run ("found applied after an interrupted run").
    with store.session_read() as s:
        runs = [(r.id, r.status) for r in s.scalars(select(SyncRunRow).order_by(SyncRunRow.id))]
        grants = [(r.member, r.run_id, r.detail) for r in s.scalars(
            select(AuditRow).where(AuditRow.action == "grant", AuditRow.result == "ok"))]
        held = {r.member for r in s.scalars(select(HoldingRow))}
        pending = s.scalars(select(PendingChangeRow)).all()
    assert runs[0][1] == "interrupted" and runs[-1] == (result.run_id, "ok")
    assert sorted(m for m, _, _ in grants) == sorted(entitled) and held == entitled and pending == []
    found = [m for m, run_id, detail in grants if detail and detail.startswith("found applied after an interrupted")]
    assert all(run_id == result.run_id for m, run_id, detail in grants if m in found)
    assert set(found) <= interrupted
