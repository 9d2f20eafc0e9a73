"""Every form of the console, found from the app itself (each POST rule of the console's
blueprint, each ``<form method=post>`` its pages render): each carries the session's
CSRF token, and each refuses a POST without it or with another (400) and changes
nothing. And the session's absolute limit: active all along, a visitor is still sent
back to sign in once it has passed. Through Flask's test client, so that these run in
every CI pass (the browser tests cover the same pages in Chromium)."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from pydantic import SecretStr

from connector import create_app
from tests.conftest import AUTH
from tests.connector.test_admin_api import PRINCIPAL, District

BASE = "https://localhost"  # the session cookie is Secure


@pytest.fixture
def console(settings, store, clock, client):
    c = settings.console
    c.issuer, c.client_id = "http://127.0.0.1:9/never-contacted", "walkin-console"  # no sign-in here
    c.session_secret = SecretStr("a-test-session-secret-of-32-bytes!!")
    district = District(client, store, settings, clock)
    district.app = create_app(settings, store=store, clock=clock)
    return district


def signed_in(district, name: str, roles: list[str]):
    """A test client with a console session as the callback opens it."""
    browser = district.app.test_client()
    now = district.clock.now().isoformat()
    with browser.session_transaction(base_url=BASE) as session:
        session.update(name=name, roles=roles, signed_in_at=now, seen_at=now, csrf="the-session-token")
        session.permanent = True
    return browser


class Forms(HTMLParser):
    """The POST forms of a page: action → names of their fields and the csrf value."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self.forms.append({"action": a.get("action") or "", "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value")


def forms_of(browser, path: str) -> list[dict]:
    page = browser.get("/console" + path, base_url=BASE)
    assert page.status_code == 200, (path, page.status_code)
    parser = Forms()
    parser.feed(page.get_data(as_text=True))
    return parser.forms


def test_every_form_a_page_renders_carries_the_session_token(console):
    """The admin's pages (dashboard, person, run, what-if) and the principal's landing page."""
    from sync.reconcile import reconcile

    console.settings.sync.max_removals, console.settings.sync.guard_floor = 0, 0
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert console.client.patch(f"/scim/v2/Users/{console.ids['A']}", headers=AUTH, json=patch).status_code == 200
    held = reconcile(console.ctx, "walkin")
    admin = signed_in(console, PRINCIPAL, ["admin", "approver"])
    principal = signed_in(console, PRINCIPAL, ["approver"])
    seen = []
    for browser, path in ((admin, "/"), (admin, f"/people/{console.ids['G']}"), (admin, f"/runs/{held.run_id}"),
                          (admin, "/what-if"), (principal, "/")):
        for form in forms_of(browser, path):
            assert form["fields"].get("csrf") == "the-session-token", (path, form)
            seen.append(form["action"].split("/")[-1] or path.strip("/"))
    # sign out (every page), approve, sync now, release, what-if, and approve from the landing page
    assert {"logout", "approve", "sync", "release", "what-if"} <= set(seen), seen


def test_every_post_refuses_a_missing_or_foreign_token_and_changes_nothing(console):
    """Each POST rule of the console, as a visitor every action is open to."""
    rules = [r for r in console.app.url_map.iter_rules() if r.endpoint.startswith("console.") and "POST" in r.methods]
    assert {r.endpoint for r in rules} >= {"console.approve", "console.withdraw", "console.sync_now",
                                           "console.release", "console.what_if", "console.logout"}
    browser = signed_in(console, PRINCIPAL, ["admin", "approver"])
    before = console.counts()
    values = {"person_id": console.ids["G"], "run_id": 1}
    form = {"confirm": "yes", "location": "0789", "held": "1", "confirmation": "release 1 removals", "at": "2027-07-01"}
    for rule in rules:
        path = rule.rule.replace("<person_id>", values["person_id"]).replace("<int:run_id>", "1")
        for token in (None, "another-session-token", ""):
            sent = form if token is None else {**form, "csrf": token}
            answer = browser.post(path, data=sent, base_url=BASE)
            assert answer.status_code == 400, (rule.rule, token, answer.status_code)
            assert "CSRF token" in answer.get_data(as_text=True)
    assert console.counts() == before
    assert browser.get("/console/", base_url=BASE).status_code == 200  # and the session still stands (logout refused)
    approved = browser.post(f"/console/people/{console.ids['G']}/approve", base_url=BASE,
                            data={**form, "csrf": "the-session-token"})
    assert approved.status_code == 302 and console.counts()["approvals"] == before["approvals"] + 1  # the control


def test_the_absolute_limit_ends_an_active_session(console):
    """Active every 25 minutes (under the idle limit of 30), the visitor stays signed in until
    the absolute limit (1 hour) has passed, and is then sent to sign in, the session cleared."""
    console.settings.console.absolute_hours = 1
    console.app = create_app(console.settings, store=console.store, clock=console.clock)
    browser = signed_in(console, PRINCIPAL, ["viewer"])
    for _ in range(2):
        console.clock.advance(timedelta(minutes=25))
        assert browser.get("/console/", base_url=BASE).status_code == 200
    console.clock.advance(timedelta(minutes=11))  # 61 minutes after signing in, 11 after the last page
    answer = browser.get("/console/", base_url=BASE)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/login")
    with browser.session_transaction(base_url=BASE) as session:
        assert "name" not in session
    console.clock.advance(timedelta(minutes=1))
    assert browser.get("/console/", base_url=BASE).status_code == 302  # and it does not come back


def test_idle_past_the_limit_ends_the_session(console):
    browser = signed_in(console, PRINCIPAL, ["viewer"])
    console.clock.advance(timedelta(minutes=console.settings.console.idle_minutes) - timedelta(seconds=1))
    assert browser.get("/console/", base_url=BASE).status_code == 200
    console.clock.advance(timedelta(minutes=console.settings.console.idle_minutes, seconds=1))
    assert browser.get("/console/", base_url=BASE).status_code == 302


def test_the_dashboard_says_whether_the_worker_runs(console):
    """No heartbeat: stale; a worker's heartbeat: running; none for longer than
    ``health.worker_stale_seconds``: stale again. The target and the backlog beside it."""
    from sync import heartbeat
    from sync.worker import Worker

    browser = signed_in(console, "helpdesk@district.org", ["viewer"])

    def card() -> str:
        page = browser.get("/console/", base_url=BASE).get_data(as_text=True)
        return page[page.index('id="health"'):].split("</section>")[0]

    assert 'id="worker">Stale' in card() and "no worker heartbeat yet" in card() and "target ldap" in card()
    assert "29 changes waiting" in card()  # the district's SCIM pushes: no worker has read them
    Worker(console.ctx).step()
    now = console.clock.now()
    heartbeat.beat(console.store, "worker-1", now, now)
    console.clock.advance(timedelta(seconds=60))
    assert 'id="worker">Running' in card() and "heartbeat 60 s ago" in card() and "0 changes waiting" in card()
    console.clock.advance(timedelta(seconds=console.settings.health.worker_stale_seconds))
    assert 'id="worker">Stale' in card()
