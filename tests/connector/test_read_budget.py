"""The cost of a read is bounded, whatever the filter (issue 12): the worst filter
the limits allow (100 substring comparisons over the users' emails) stops at the
read budget with 400 ``tooMany`` saying the filter was too expensive, on SQLite and
PostgreSQL; an indexed filter under the same budget is answered."""

from __future__ import annotations

import time

from connector import create_app
from connector.scim.schema import USER
from connector.scim.values import normalise_resource
from connector.store import users as user_rows
from tests.conftest import AUTH, NOON

PEOPLE = 4000
WORST = " or ".join(f'emails[value co "{i:02d}x"]' for i in range(100))  # 100 comparisons: the limit


def _district(store) -> None:
    """PEOPLE users with three emails each, written as the SCIM service writes them."""
    with store.connection_write() as conn:
        for i in range(PEOPLE):
            data = normalise_resource(USER, {"userName": f"u{i:05d}@d.org", "emails": [
                {"value": f"u{i:05d}.{k}@d.org", "type": "work"} for k in range(3)]})
            user_rows.insert_user(conn, data, NOON, key=store.person_key)


def test_the_worst_filter_stops_at_the_budget_and_an_indexed_one_is_answered(settings, store, clock):
    _district(store)
    settings.scim.read_budget_seconds = 0.25
    client = create_app(settings, store=store, clock=clock).test_client()

    started = time.monotonic()
    r = client.post("/scim/v2/Users/.search", json={"filter": WORST, "count": 10}, headers=AUTH)
    took = time.monotonic() - started
    assert r.status_code == 400, r.get_json()
    body = r.get_json()
    assert body["scimType"] == "tooMany" and "took more than 0.25 s to evaluate" in body["detail"]
    assert took < 2.5  # stopped near the budget (the request's own work aside), not run to the end

    r = client.get('/scim/v2/Users?filter=userName eq "u03999@d.org"', headers=AUTH)
    assert r.status_code == 200 and r.get_json()["totalResults"] == 1

    # With room enough the same filter is answered: the budget, not the filter, refused it.
    settings.scim.read_budget_seconds = 120
    r = client.post("/scim/v2/Users/.search", json={"filter": WORST, "count": 10}, headers=AUTH)
    assert r.status_code == 200 and r.get_json()["totalResults"] == 0


def test_a_budget_leaves_the_connection_as_it_was(settings, store, clock):
    """After a stopped read, the pooled connection answers the next read in full
    (SQLite's progress handler removed; PostgreSQL's timeout was the transaction's)."""
    _district(store)
    settings.scim.read_budget_seconds = 0.05
    client = create_app(settings, store=store, clock=clock).test_client()
    assert client.post("/scim/v2/Users/.search", json={"filter": WORST}, headers=AUTH).status_code == 400
    started = time.monotonic()
    with store.connection_read() as conn:  # no budget: a long read runs to its end
        from sqlalchemy import text

        assert conn.execute(text("SELECT count(*) FROM scim_user")).scalar() == PEOPLE
    assert time.monotonic() - started < 5
