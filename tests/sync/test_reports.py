"""The reports over a district built through the SCIM API and decided by a run on
the memory target, on the shared fake clock (Sunday 2026-11-29, after Thanksgiving)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from connector.settings import AdminSettings
from connector.store.models import ApprovalRecordRow
from mappings.vocabulary import Effect
from sync import approvals, overrides, reports
from sync.levers import Acting, Forbidden, Invalid
from sync.reconcile import reconcile
from sync.reports import Filters, Options, ReportContext
from sync.simulate import simulate
from tests.sync import people as P
from tests.sync.test_reconcile import GROUP, ctx, dn, target  # noqa: F401 - fixtures

DAY = date(2026, 11, 29)


def at_noon(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=18, tzinfo=UTC)


def report(ctx, name, **kw):  # noqa: F811 - ctx is the fixture's value
    options = {k: kw.pop(k) for k in list(kw) if k in ("since", "until", "within_days", "overdue", "limit")}
    with ctx.store.session_read() as s:
        return reports.REPORTS[name](
            s, ReportContext(ctx.mapping, "ldap", ctx.today()), Filters(**kw), Options(**options)
        )


def by_user(result) -> dict[str, dict]:
    return {row["user_name"]: row for row in result.rows}


@pytest.fixture
def district(client, store, ctx):  # noqa: F811
    """u1 a member; u2 expired (B of §8); u3 waits for 0456's approvers; u4 waits for
    themselves; u5 for HR; late and fresh entitled by approval records but with no
    directory entry (pending, one overdue); u7 the principal of 0123."""
    ids = {
        "u1": P.create(client, P.person("u1")),
        "u2": P.create(client, P.person("u2", certs=[("full", "2024-09-10")])),  # expired 2026-06-30
        "u3": P.create(client, P.person("u3", location="0456", start="2026-10-01")),  # certified, no approval
        "u4": P.create(client, P.person("u4", certs=[])),  # approved, not certified
        "u5": P.create(client, {**P.person("u5"), P.WALKIN: {"certifications": []}}),  # no HR facts
        "u7": P.create(client, P.person("u7", job="3001", certs=[])),  # Principal at 0123
        "late": P.create(client, P.person("late")),  # entitled 11-20, no directory entry
        "fresh": P.create(client, P.person("fresh")),  # entitled 11-25, no directory entry
    }
    old = P.approvers(client, "0123", [ids["u1"], ids["u2"], ids["u4"]])
    P.backdate(store, old, at_noon("2025-09-20"))
    for name, day in (("late", "2026-11-20"), ("fresh", "2026-11-25")):  # recorded on those days
        with store.session_write() as s:
            s.add(ApprovalRecordRow(person_id=ids[name], entitlement="walkin", location="0123", approved_on=day,
                                    approver="u7", approver_id=ids["u7"], recorded_at=at_noon(day),
                                    recorded_by="test"))
    result = reconcile(ctx, "walkin")
    assert result.status.value == "ok", result.detail
    return ids


def test_members_say_why(district, ctx):  # noqa: F811
    """The one member rests on its principal's approval and its full course."""
    rows = by_user(report(ctx, "members"))
    assert set(rows) == {"u1"}
    assert rows["u1"]["approver"] == "WalkIn-Approvers-0123" and rows["u1"]["approved_on"] == "2025-09-20"
    assert rows["u1"]["chain"] == "full 2025-09-15" and rows["u1"]["valid_through"] == "2027-06-30"
    assert rows["u1"]["status"] == "entitled" and rows["u1"]["member"] == dn("u1")


def test_pending_deadlines_skip_the_weekend_and_thanksgiving(district, ctx):  # noqa: F811
    """Entitled Wed 11-25: Thu/Fri are holidays, so due by the end of Tue 12-01; 11-20 was due 11-24."""
    result = report(ctx, "pending")
    rows = by_user(result)
    assert set(rows) == {"late", "fresh"}
    assert rows["fresh"]["entitled_since"] == "2026-11-25" and rows["fresh"]["deadline"] == "2026-12-01"
    assert rows["fresh"]["overdue"] is False
    assert rows["late"]["deadline"] == "2026-11-24" and rows["late"]["overdue"] is True
    assert "no directory entry" in rows["late"]["held_up_by"]
    assert result.summary == {"pending": 2, "overdue": 1}
    assert [r["user_name"] for r in report(ctx, "pending", overdue=True).rows] == ["late"]


def test_waiting_names_who_must_act(district, ctx):  # noqa: F811
    """u3 waits for 0456's approvers, u4 for themselves, u5 for HR; B-like u2 (expired) waits for themselves."""
    rows = by_user(report(ctx, "waiting"))
    assert rows["u3"]["actor"] == "approver" and rows["u3"]["next_step"] == "approve for 0456"
    assert rows["u3"]["who_acts"] == "no approver on record for 0456"
    assert rows["u4"]["actor"] == "person" and "complete the Walk-In" in rows["u4"]["next_step"]
    assert rows["u2"]["actor"] == "person" and "full" in rows["u2"]["next_step"]
    assert rows["u5"]["actor"] == "hr" and rows["u5"]["next_step"] == "send the job code and location"
    assert "u7" not in rows and "u1" not in rows  # not started / entitled


def test_waiting_lists_the_locations_principal(district, client, ctx):  # noqa: F811
    """A principal at 0456 appears as who must act for u3 once decided."""
    P.create(client, P.person("p456", job="3001", location="0456", certs=[]))
    reconcile(ctx, "walkin")
    rows = by_user(report(ctx, "waiting", location="0456"))
    assert set(rows) == {"u3"} and rows["u3"]["who_acts"] == "p456"


def test_expiring_within_the_window(district, ctx):  # noqa: F811
    """Nobody expires within 60 days of 11-29; within 250 days u1 loses access at the school-year end."""
    assert report(ctx, "expiring").rows == []
    rows = by_user(report(ctx, "expiring", within_days=250))
    assert rows["u1"]["valid_through"] == "2027-06-30" and rows["u1"]["school_year_end"] is True
    assert rows["u1"]["renews_with"] == "the recertification quiz"


def test_overrides_grant_until_their_end_and_the_day_start_run_removes_them(district, ctx, clock, target):  # noqa: F811
    """A grant override adds u4 now; the first run after its last day removes them."""
    acting = Acting("admin@district.org")
    row = overrides.set_override(ctx.store, clock, ctx.mapping, AdminSettings(), person_id=district["u4"],
                                 entitlement="walkin", effect=Effect.GRANT, until=DAY + timedelta(days=2),
                                 reason="covering the office", acting=acting)
    reconcile(ctx, "walkin")
    assert dn("u4") in target.groups[GROUP]
    assert by_user(report(ctx, "members"))["u4"]["override"].startswith(f"override {row['id']}: grant")
    clock.advance(timedelta(days=3))
    reconcile(ctx, "walkin")
    assert dn("u4") not in target.groups[GROUP]
    with ctx.store.session_read() as s:
        history = reports.history(s, ReportContext(ctx.mapping, "ldap", ctx.today()), district["u4"])
    whats = [r["what"] for r in history.rows]
    assert any(w.startswith("override ok by admin@district.org") for w in whats)
    assert any(w.startswith("grant ok") for w in whats) and any(w.startswith("revoke ok") for w in whats)


def test_override_limits(district, ctx, clock):  # noqa: F811
    """Longer than the maximum, in the past, or without a reason: refused, nothing written."""
    base = dict(person_id=district["u4"], entitlement="walkin", effect=Effect.DENY, acting=Acting("a"))
    with pytest.raises(Invalid, match="longest override"):
        overrides.set_override(ctx.store, clock, ctx.mapping, AdminSettings(), until=DAY + timedelta(days=91),
                               reason="x", **base)
    with pytest.raises(Invalid, match="past"):
        overrides.set_override(ctx.store, clock, ctx.mapping, AdminSettings(), until=DAY - timedelta(days=1),
                               reason="x", **base)
    with pytest.raises(Invalid, match="reason"):
        overrides.set_override(ctx.store, clock, ctx.mapping, AdminSettings(), until=DAY, reason=" ", **base)
    with ctx.store.session_read() as s:
        assert overrides.list_overrides(s, include_ended=True) == []


def test_a_principal_approves_and_an_ineligible_approver_is_refused(district, client, ctx, clock, target):  # noqa: F811
    """u7 (Principal at 0123) may approve for 0123, not for 0456; u1 may approve nothing."""
    key = ctx.settings.sync.person_key
    with pytest.raises(Forbidden, match="may not approve for 0456"):
        approvals.approve(ctx.store, clock, ctx.mapping, key, person_id=district["u3"], location="0456",
                          entitlement="walkin", approver_id=district["u7"], acting=Acting("u7"))
    with pytest.raises(Forbidden):
        approvals.approve(ctx.store, clock, ctx.mapping, key, person_id=district["u3"], location="0123",
                          entitlement="walkin", approver_id=district["u1"], acting=Acting("u1"))
    # u3 moves to 0123 (a new assignment today) and u7 approves them there
    P.patch(client, district["u3"], {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0123"})
    row = approvals.approve(ctx.store, clock, ctx.mapping, key, person_id=district["u3"], location="0123",
                            entitlement="walkin", approver_id=district["u7"], acting=Acting("u7"))
    assert row["approved_on"] == "2026-11-29" and row["approver"] == "u7"
    reconcile(ctx, "walkin")
    assert dn("u3") in target.groups[GROUP]
    approvals.withdraw(ctx.store, clock, ctx.mapping, key, person_id=district["u3"], location="0123",
                       entitlement="walkin", approver_id=district["u7"], acting=Acting("u7"))
    reconcile(ctx, "walkin")
    assert dn("u3") not in target.groups[GROUP]


def test_losses_after_a_location_change(district, client, ctx):  # noqa: F811
    """u1 moves to 0789 without approval there: revoked with NO_APPROVAL, in the losses report."""
    P.patch(client, district["u1"], {"op": "replace", "path": f"{P.WALKIN}:locationCode", "value": "0789"})
    reconcile(ctx, "walkin")
    rows = by_user(report(ctx, "losses"))
    assert rows["u1"]["reasons"] == "NO_APPROVAL" and rows["u1"]["location"] == "0789"


def test_simulate_at_the_school_year_end(district, ctx, clock):  # noqa: F811
    """On 2027-07-01 u1 loses access with CERT_EXPIRED; a run that day decides the same."""
    with ctx.store.session_read() as s:
        result = simulate(s, ctx.mapping, None, ctx.today(), date(2027, 7, 1), ctx.settings.sync.person_key)
    losses = {(r["user_name"], r["reasons"]) for r in result.rows if r["change"] == "loss"}
    assert losses == {("u1", "CERT_EXPIRED"), ("late", "CERT_EXPIRED"), ("fresh", "CERT_EXPIRED")}
    clock.advance(datetime(2027, 7, 1, 18, tzinfo=UTC) - clock.now())
    reconcile(ctx, "walkin")
    with ctx.store.session_read() as s:
        again = simulate(s, ctx.mapping, None, ctx.today(), None, ctx.settings.sync.person_key)
    assert again.rows == [] and again.summary["losses"] == 0
