"""The store's figures on the service's /metrics move as their events happen: SCIM
changes put the journal behind, a worker's round catches it up and records a
successful run and the group's size; an entitled person without a directory entry
is a pending grant, overdue two business days later; a person without an approval
waits on the approver; certifications near their end are expiring; a removal the
deletion guard holds is counted until released."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from connector.store.models import DecisionRow
from sync.context import build_context
from sync.worker import Worker
from tests.scrape import scrape_client
from tests.sync import people as P

LABELS = {"entitlement": "walkin", "target": "ldap"}


def _summary(ctx, name: str) -> dict:
    """The summary of report ``name`` today: the gauges count the same people."""
    from sync.reports import REPORTS, Filters, Options, ReportContext

    with ctx.store.session_read() as session:
        return REPORTS[name](session, ReportContext(ctx.mapping, "ldap", ctx.today()), Filters(), Options()).summary


def _round(ctx) -> None:
    """What ``walkin worker --once`` does: everything waiting, then stop."""
    worker = Worker(ctx, name="metrics-test")
    while worker.step():
        pass


def test_store_figures_move_with_their_events(client, store, slapd, sync_settings, clock):
    """Each gauge read from the store at scrape time follows the events behind it."""
    slapd.add_people(["ann"])
    ann = P.create(client, P.person("ann"))
    bob = P.create(client, P.person("bob"))  # entitled, but not in the directory: pending
    P.create(client, P.person("cat", location="0456"))  # nobody approves at 0456: waiting
    P.approvers(client, "0123", [ann, bob])

    before = scrape_client(client)
    assert before.value("walkin_store_up") == 1
    assert before.value("walkin_journal_lag_events") >= 4
    clock.advance(timedelta(seconds=90))
    assert scrape_client(client).value("walkin_journal_lag_seconds") == 90.0
    assert before.value("walkin_grants_pending", **LABELS) == 0
    assert before.value("walkin_group_members", **LABELS) is None  # no run yet
    assert before.value("walkin_sync_last_success_timestamp_seconds", **LABELS, kind="daily") is None

    ctx = build_context(sync_settings, store=store, clock=clock)
    try:
        _round(ctx)
        after = scrape_client(client)
        assert after.value("walkin_journal_lag_events") == 0
        assert after.value("walkin_journal_open_jobs") == 0
        assert after.value("walkin_journal_lag_seconds") == 0
        assert after.value("walkin_sync_last_success_timestamp_seconds", **LABELS, kind="daily") == (
            clock.now().timestamp()
        )
        assert after.value("walkin_group_members", **LABELS) == 1  # ann
        assert after.value("walkin_grants_pending", **LABELS) == 1  # bob
        assert after.value("walkin_grants_overdue", **LABELS) == 0
        assert after.value("walkin_people_waiting", **LABELS, actor="approver") == 1  # cat
        assert after.value("walkin_removals_held", **LABELS) == 0
        assert _summary(ctx, "pending")["pending"] == 1 and _summary(ctx, "waiting")["approver"] == 1

        # Sunday 29 November → the deadline is the end of Tuesday 1 December.
        clock.advance(timedelta(days=3))
        assert scrape_client(client).value("walkin_grants_overdue", **LABELS) == 1
        assert _summary(ctx, "pending")["overdue"] == 1

        with store.session_read() as s:
            through = s.scalar(select(DecisionRow.valid_through).where(DecisionRow.person_id == ann))
        noon = clock.now()
        clock.set(noon.replace(year=int(through[:4]), month=int(through[5:7]), day=int(through[8:10]))
                  - timedelta(days=10))
        assert scrape_client(client).value("walkin_certifications_expiring", **LABELS) == 2  # ann and bob
        assert _summary(ctx, "expiring")["expiring"] == 2
        clock.set(noon)

        sync_settings.sync.max_removals, sync_settings.sync.guard_floor = 0, 0
        P.patch(client, ann, {"op": "replace", "path": "active", "value": "False"})
        _round(ctx)
        assert scrape_client(client).value("walkin_removals_held", **LABELS) == 1
    finally:
        ctx.target.close()
