"""``simulate --at D`` is what a run at D decides when nothing else changes (a
property over random districts and dates), and it writes nothing."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from connector import create_app
from connector.clock import FrozenClock
from connector.settings import AdminSettings, Settings
from connector.store.models import DecisionChangeRow, DecisionRow, MemberRow
from mappings.vocabulary import Effect
from sync import overrides
from sync.context import SyncContext
from sync.levers import Acting
from sync.reconcile import reconcile
from sync.simulate import simulate
from sync.targets.memory import MemoryTarget
from tests.conftest import AUTH, NOON, TOKEN
from tests.sync import people as P
from tests.sync.test_reconcile import GROUP, mapping_with_groups
from tests.sync.test_sync_properties import fresh_stores  # noqa: F401 - fixture

TODAY = date(2026, 11, 29)
DAYS = st.integers(min_value=-1100, max_value=400).map(lambda n: (TODAY + timedelta(days=n)).isoformat())

person = st.fixed_dictionaries({
    "job": st.sampled_from(["1001", "1002", "2001", "4001", "9999"]),
    "location": st.sampled_from(["0123", "0456", "C100"]),
    "start": DAYS,
    "certs": st.lists(st.tuples(st.sampled_from(["full", "recert"]), DAYS), max_size=3),
    "approved": st.one_of(st.none(), DAYS),
    "active": st.booleans(),
    "override": st.one_of(st.none(), st.tuples(st.sampled_from([Effect.GRANT, Effect.DENY]),
                                               st.integers(min_value=0, max_value=90))),
})


def check(make_store, people, ahead):
    store = make_store()
    clock = FrozenClock(NOON)
    conf = Settings(database_url="sqlite://", scim_token=[TOKEN])
    conf.sync.target = "ldap"
    conf.sync.max_removals, conf.sync.guard_floor = 10_000, 10_000
    client = create_app(conf, store=store, clock=clock).test_client()
    keys = [f"p{i}" for i in range(len(people))]
    ctx = SyncContext(store, conf, mapping_with_groups(), MemoryTarget({GROUP: set()}, {k: f"uid={k}" for k in keys}),
                      "ldap", clock=clock)
    try:
        groups: dict[str, str] = {}  # location → its approval group
        for key, p in zip(keys, people):
            uid = P.create(client, P.person(key, job=p["job"], location=p["location"], start=p["start"],
                                            certs=p["certs"], active=p["active"]))
            if p["approved"] is not None:
                _approve(client, store, groups, p["location"], uid, p["approved"])
            if p["override"] is not None:
                effect, days = p["override"]
                overrides.set_override(store, clock, ctx.mapping, AdminSettings(), person_id=uid,
                                       entitlement="walkin", effect=effect, until=TODAY + timedelta(days=days),
                                       reason="property", acting=Acting("test"))
        reconcile(ctx, "walkin")
        before = _stored(store)
        day = TODAY + timedelta(days=ahead)
        with store.session_read() as s:
            changes_before = s.scalar(select(func.count()).select_from(DecisionChangeRow))
            result = simulate(s, ctx.mapping, None, TODAY, day, conf.sync.person_key)
        predicted = dict(before)
        for row in result.rows:
            predicted[row["person_id"]] = row["change"] == "gain"
        with store.session_read() as s:  # simulate wrote nothing
            assert s.scalar(select(func.count()).select_from(DecisionChangeRow)) == changes_before
            assert _stored(store) == before
        clock.advance(datetime.combine(day, datetime.min.time(), UTC).replace(hour=19) - clock.now())
        reconcile(ctx, "walkin")
        assert _stored(store) == predicted
    finally:
        store.dispose()


def _approve(client, store, groups: dict[str, str], location: str, uid: str, day: str) -> None:
    """Make ``uid`` a member of the location's approval group, dated ``day``."""
    if location not in groups:
        groups[location] = P.approvers(client, location, [uid])
    else:
        ops = {"Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]}
        assert client.patch(f"/scim/v2/Groups/{groups[location]}", json=ops, headers=AUTH).status_code in (200, 204)
    with store.session_write() as s:
        s.execute(update(MemberRow).where(MemberRow.group_id == groups[location], MemberRow.member_id == uid)
                  .values(since=datetime.fromisoformat(day).replace(hour=18, tzinfo=UTC)))


def _stored(store) -> dict[str, bool]:
    with store.session_read() as s:
        rows = s.execute(select(DecisionRow.person_id, DecisionRow.entitled).where(DecisionRow.entitlement == "walkin"))
        return {person: entitled for person, entitled in rows}


def test_simulate_at_a_day_is_what_a_run_that_day_decides(fresh_stores, database_url):  # noqa: F811
    """Random districts (roles, locations, assignment starts, completions, approvals,
    overrides, inactive people) and a day up to three years ahead. Derandomized like
    the other property test; ``WALKIN_TEST_EXPLORE=N`` explores N fresh ones."""
    explore = int(os.environ.get("WALKIN_TEST_EXPLORE", "0"))
    examples = explore or (8 if database_url.startswith("postgresql") else 30)

    @settings(max_examples=examples, deadline=None, derandomize=not explore,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(people=st.lists(person, min_size=1, max_size=6), ahead=st.integers(min_value=0, max_value=1000))
    def run(people, ahead):
        check(fresh_stores, people, ahead)

    run()
