"""The admin JSON API (/admin/api/v1) on the policy's §8 district: its OpenAPI
document (valid, covering every route, and every response received validated
against it), the role × endpoint matrix (every route, allowed and refused, a refused
request changing nothing), an approver's location scope, overrides, approvals,
what-if, sync-now and releasing held removals, paging, CSV and the errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_spec
from sqlalchemy import func, select

from connector.admin import PREFIX
from connector.admin.roles import AdminRole
from connector.admin.tokens import create_token, revoke_token
from connector.cli import main
from connector.store.models import (
    ApprovalRecordRow,
    AuditRow,
    JournalRow,
    OverrideRow,
    SyncRunRow,
)
from mappings.vocabulary import Effect
from sync.levers import Acting
from sync.overrides import set_override
from sync.reconcile import SyncContext, reconcile
from sync.targets.memory import MemoryTarget
from sync.worker import Worker
from tests.conftest import AUTH
from tests.integration import examples
from tests.sync.test_reconcile import GROUP, mapping_with_groups

WALKIN = examples.WALKIN
PRINCIPAL = "principal.p@district.org"  # a Principal (job code 3001) at 0789: approves G's location


class District:
    """The §8 district decided on the memory target, with a principal, and a token per role."""

    def __init__(self, client, store, settings, clock):
        self.client, self.store, self.settings, self.clock = client, store, settings, clock
        self.ids = examples.load(client, store)
        r = client.post("/scim/v2/Users", headers=AUTH, json={
            "userName": PRINCIPAL, "active": True,
            WALKIN: {"jobCode": "3001", "locationCode": "0789", "assignmentStartDate": "2020-08-01"}})
        assert r.status_code == 201, r.get_json()
        self.ids["P"] = r.get_json()["id"]
        settings.sync.target = "ldap"
        directory = {examples.user_name(n): f"uid={n},ou=people" for n in examples.PEOPLE}
        self.target = MemoryTarget({GROUP: set()}, directory)
        self.ctx = SyncContext(store, settings, mapping_with_groups(), self.target, "ldap", clock=clock)
        assert reconcile(self.ctx, "walkin").status.value == "ok"
        self.tokens = {role: self.token(role) for role in AdminRole}

    def token(self, role: AdminRole, days: int = 30) -> str:
        approver = self.ids["P"] if role is AdminRole.APPROVER else None
        token, _ = create_token(self.store, self.clock, self.settings.admin, name=f"{role.value}-token", role=role,
                                approver_id=approver, days=days, acting=Acting("test setup"))
        return token

    def call(self, role_or_token, method: str, path: str, **kwargs):
        token = self.tokens[role_or_token] if isinstance(role_or_token, AdminRole) else role_or_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.open(PREFIX + path, method=method, headers=headers, **kwargs)

    def counts(self) -> dict[str, int]:
        """What a write would change: audit, journal, overrides, approvals, release requests."""
        with self.store.session_read() as s:
            def n(stmt):
                return s.scalar(stmt)
            return {
                "audit": n(select(func.count()).select_from(AuditRow)),
                "journal": n(select(func.count()).select_from(JournalRow)),
                "overrides": n(select(func.count()).select_from(OverrideRow).where(OverrideRow.ended_at.is_(None))),
                "approvals": n(select(func.count()).select_from(ApprovalRecordRow)
                               .where(ApprovalRecordRow.withdrawn_at.is_(None))),
                "releases": n(select(func.count()).select_from(SyncRunRow)
                              .where(SyncRunRow.release_requested_by.is_not(None))),
            }


@pytest.fixture
def district(client, store, settings, clock):
    return District(client, store, settings, clock)


@pytest.fixture
def doc(district):
    r = district.call(AdminRole.VIEWER, "GET", "/openapi.json")
    assert r.status_code == 200
    return r.get_json()


def conforms(doc: dict, method: str, path_template: str, response) -> None:
    """The response's body validates against the schema the document declares for it."""
    operation = doc["paths"][PREFIX + path_template][method.lower()]
    declared = operation["responses"].get(str(response.status_code))
    assert declared is not None, f"{method} {path_template} answered {response.status_code}, undeclared"
    content_type = response.mimetype
    assert content_type in declared["content"], f"{content_type} not declared for {response.status_code}"
    if content_type == "text/csv":
        return
    schema = {"components": doc["components"], **declared["content"][content_type]["schema"]}
    errors = sorted(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(response.get_json()),
                    key=str)
    assert not errors, f"{method} {path_template} {response.status_code}: {errors[0].message} at {list(errors[0].path)}"


# ------------------------------------------------------------------ the document


def test_openapi_document_is_valid_and_describes_every_route(app, doc):
    """The served document is valid OpenAPI 3.1, and its paths are exactly the app's admin routes."""
    validate_spec(doc)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX):
            path = rule.rule
            for arg in rule.arguments:
                path = path.replace(f"<id:{arg}>", f"{{{arg}}}").replace(f"<{arg}>", f"{{{arg}}}")
            routes.update((method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"})
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert routes == described
    assert all("x-walkin-permission" in op for ops in doc["paths"].values() for op in ops.values())


# ------------------------------------------------------------ the role matrix

# (name, method, path template, path, body, roles allowed)
ALL = {AdminRole.VIEWER, AdminRole.APPROVER, AdminRole.ADMIN}
READERS = {AdminRole.VIEWER, AdminRole.ADMIN}


def matrix(d: District) -> list[tuple]:
    g, b = examples.user_name("G"), examples.user_name("B")
    with d.store.session_read() as s:
        run_id = s.scalar(select(func.max(SyncRunRow.id)))
    return [
        ("me", "GET", "/me", "/me", None, ALL),
        ("openapi", "GET", "/openapi.json", "/openapi.json", None, ALL),
        ("reports", "GET", "/reports", "/reports", None, ALL),
        ("members", "GET", "/reports/{name}", "/reports/members", None, ALL),
        ("losses", "GET", "/reports/{name}", "/reports/losses", None, READERS),
        ("explain", "GET", "/people/{user}/explain", f"/people/{g}/explain", None, ALL),
        ("history", "GET", "/people/{user}/history", f"/people/{g}/history", None, ALL),
        ("overrides", "GET", "/overrides", "/overrides", None, READERS),
        ("approvals", "GET", "/approvals", "/approvals", None, ALL),
        ("simulate", "POST", "/simulate", "/simulate", {"at": "2027-07-01"}, READERS),
        ("runs", "GET", "/runs", "/runs", None, READERS),
        ("run", "GET", "/runs/{run_id}", f"/runs/{run_id}", None, READERS),
        ("sync", "POST", "/people/{user}/sync", f"/people/{g}/sync", None, {AdminRole.ADMIN}),
        ("set_override", "POST", "/overrides", "/overrides",
         {"user": b, "effect": "grant", "until": "2026-12-10", "reason": "audit week"}, {AdminRole.ADMIN}),
        ("end_override", "POST", "/overrides/{override_id}/end", "/overrides/{override}/end", {"reason": "done"},
         {AdminRole.ADMIN}),
        ("approve", "POST", "/approvals", "/approvals", {"user": g, "location": "0789"}, {AdminRole.APPROVER}),
        ("withdraw", "POST", "/approvals/withdraw", "/approvals/withdraw", {"user": g, "location": "0789"},
         {AdminRole.APPROVER}),
        # The last run holds nothing: an admin passes the role check and meets 409.
        ("release", "POST", "/runs/{run_id}/release", f"/runs/{run_id}/release", {"confirm_held": 1},
         {AdminRole.ADMIN}),
    ]


@pytest.mark.parametrize("role", list(AdminRole), ids=lambda r: r.value)
def test_role_endpoint_matrix(district, doc, role):
    """Every route with each role: allowed ones succeed (and conform to the document); refused
    ones are 403 problem JSON and change nothing; each route without a token is 401."""
    d = district
    override = set_override(d.store, d.clock, d.ctx.mapping, d.settings.admin, person_id=d.ids["D"],
                            entitlement="walkin", effect=Effect.DENY, until=d.clock.today(d.ctx.mapping.policy.zone),
                            reason="matrix", acting=Acting("test setup"))
    for name, method, template, path, body, allowed in matrix(d):
        path = path.replace("{override}", str(override["id"]))
        kwargs = {"json": body} if body is not None else {}
        before = d.counts()
        unauthenticated = d.call(None, method, path, **kwargs)
        assert unauthenticated.status_code == 401 and unauthenticated.mimetype == "application/problem+json", name
        assert unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")
        r = d.call(role, method, path, **kwargs)
        conforms(doc, method, template, r)
        if role in allowed:
            expected = 409 if name == "release" else None
            assert (r.status_code == expected) if expected else (200 <= r.status_code < 300), (name, r.get_json())
        else:
            assert r.status_code == 403, (name, r.status_code, r.get_json())
            assert r.mimetype == "application/problem+json" and role.value in r.get_json()["detail"], name
            assert d.counts() == before, f"refused {name} changed the store"


def test_expired_revoked_and_scim_tokens_are_refused(district):
    """An expired or revoked admin token is 401; a SCIM token is not an admin token, nor the reverse."""
    d = district
    expired = d.token(AdminRole.ADMIN, days=1)
    d.clock.advance(timedelta(days=1, seconds=1))
    assert d.call(expired, "GET", "/me").status_code == 401
    revoked = d.token(AdminRole.ADMIN)
    assert d.call(revoked, "GET", "/me").status_code == 200
    with d.store.session_read() as s:
        newest = s.scalar(select(func.max(AuditRow.id)))
        token_id = int(s.scalar(select(AuditRow.detail).where(AuditRow.id == newest)).split()[2])
    revoke_token(d.store, d.clock, token_id=token_id, acting=Acting("test"))
    assert d.call(revoked, "GET", "/me").status_code == 401
    assert d.client.get(PREFIX + "/me", headers=AUTH).status_code == 401
    viewer = {"Authorization": f"Bearer {d.tokens[AdminRole.VIEWER]}"}
    assert d.client.get("/scim/v2/Users", headers=viewer).status_code == 401


# ------------------------------------------------------------ approver scope


def test_approver_sees_and_approves_only_their_locations(district, doc):
    """P (Principal at 0789) reaches 0789 only: G's explain, not A's; approving G works (journalled,
    audited with the token), approving H at 0123 is 403 and records nothing."""
    d = district
    me = d.call(AdminRole.APPROVER, "GET", "/me").get_json()
    assert me["locations"] == ["0789"] and "approve" in me["permissions"]
    waiting = d.call(AdminRole.APPROVER, "GET", "/reports/waiting").get_json()
    assert {r["user_name"] for r in waiting["rows"]} == {examples.user_name("G")}
    assert {r["user_name"] for r in d.call(AdminRole.VIEWER, "GET", "/reports/waiting").get_json()["rows"]} > {
        examples.user_name("G"), examples.user_name("H")}
    assert d.call(AdminRole.APPROVER, "GET", f"/people/{examples.user_name('A')}/explain").status_code == 403
    explained = d.call(AdminRole.APPROVER, "GET", f"/people/{examples.user_name('G')}/explain")
    conforms(doc, "GET", "/people/{user}/explain", explained)
    assert explained.get_json()["entitled"] is False
    before = d.counts()
    refused = d.call(AdminRole.APPROVER, "POST", "/approvals", json={"user": examples.user_name("H"), "location": "0123"})
    assert refused.status_code == 403 and "may not approve for 0123" in refused.get_json()["detail"]
    assert d.counts() == before
    r = d.call(AdminRole.APPROVER, "POST", "/approvals", json={"user": examples.user_name("G"), "location": "0789"})
    assert r.status_code == 200, r.get_json()
    conforms(doc, "POST", "/approvals", r)
    record = r.get_json()
    assert record["approver"] == PRINCIPAL and record["approved_on"] == "2026-11-29"
    assert record["recorded_by"] == f"approver-token (token {me['token_id']})"
    after = d.counts()
    assert after["approvals"] == before["approvals"] + 1 and after["journal"] == before["journal"] + 1
    # The worker re-decides G from the journal: the approval record is the missing fact.
    Worker(d.ctx).step()
    assert d.call(AdminRole.VIEWER, "GET", f"/people/{examples.user_name('G')}/explain").get_json()["entitled"] is True
    listed = d.call(AdminRole.APPROVER, "GET", "/approvals").get_json()
    assert [a["user_name"] for a in listed["items"]] == [examples.user_name("G")]


def test_approver_whose_person_left_reaches_nothing(district):
    """When the approver's person is deactivated, their token reads nothing and approves nothing."""
    d = district
    r = d.client.patch(f"/scim/v2/Users/{d.ids['P']}", headers=AUTH, json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}]})
    assert r.status_code == 200
    assert d.call(AdminRole.APPROVER, "GET", "/me").get_json()["locations"] == []
    assert d.call(AdminRole.APPROVER, "GET", "/reports/members").get_json()["rows"] == []
    refused = d.call(AdminRole.APPROVER, "POST", "/approvals", json={"user": examples.user_name("G"), "location": "0789"})
    assert refused.status_code == 403


# ------------------------------------------------------------ the levers


def test_override_through_the_api(district, doc):
    """An admin grants B an override (journalled, audited with the token id); B is a member after
    the worker's step; a second end is 409; beyond the longest override is 400."""
    d = district
    b = examples.user_name("B")
    r = d.call(AdminRole.ADMIN, "POST", "/overrides",
               json={"user": b, "effect": "grant", "until": "2026-12-10", "reason": "audit week"})
    assert r.status_code == 201, r.get_json()
    conforms(doc, "POST", "/overrides", r)
    created = r.get_json()
    assert created["by"].startswith("admin-token (token ") and created["until"] == "2026-12-10"
    with d.store.session_read() as s:
        entry = s.scalars(select(AuditRow).where(AuditRow.action == "override")).one()
    assert entry.actor == created["by"] and entry.user_name == b
    Worker(d.ctx).step()
    assert "uid=B,ou=people" in d.target.groups[GROUP]
    members = d.call(AdminRole.VIEWER, "GET", "/reports/members").get_json()
    assert {r["user_name"]: r["override"] for r in members["rows"]}[b]
    listed = d.call(AdminRole.VIEWER, "GET", "/overrides").get_json()
    conforms(doc, "GET", "/overrides", d.call(AdminRole.VIEWER, "GET", "/overrides"))
    assert [o["id"] for o in listed["items"]] == [created["id"]]
    ended = d.call(AdminRole.ADMIN, "POST", f"/overrides/{created['id']}/end", json={"reason": "audit over"})
    assert ended.status_code == 200 and ended.get_json()["end_reason"] == "audit over"
    again = d.call(AdminRole.ADMIN, "POST", f"/overrides/{created['id']}/end", json={"reason": "x"})
    assert again.status_code == 409 and "already ended" in again.get_json()["detail"]
    too_long = d.call(AdminRole.ADMIN, "POST", "/overrides",
                      json={"user": b, "effect": "deny", "until": "2027-06-01", "reason": "x"})
    assert too_long.status_code == 400 and "longest override" in too_long.get_json()["detail"]
    conforms(doc, "POST", "/overrides", too_long)
    missing = d.call(AdminRole.ADMIN, "POST", "/overrides/999/end", json={"reason": "x"})
    assert missing.status_code == 404


def test_sync_now_and_release_a_held_removal(district, doc):
    """sync-now is 202 and journalled; a removal held by the deletion guard is listed on its run,
    a release with the wrong count is 409, the right one 202 — and the worker applies it."""
    d = district
    r = d.call(AdminRole.ADMIN, "POST", f"/people/{examples.user_name('A')}/sync")
    assert r.status_code == 202
    conforms(doc, "POST", "/people/{user}/sync", r)
    with d.store.session_read() as s:
        assert s.scalars(select(JournalRow.event).order_by(JournalRow.seq.desc())).first() == "sync.requested"
    d.settings.sync.max_removals, d.settings.sync.guard_floor = 0, 0
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert d.client.patch(f"/scim/v2/Users/{d.ids['A']}", headers=AUTH, json=patch).status_code == 200
    held = reconcile(d.ctx, "walkin")
    assert held.status.value == "held" and "uid=A,ou=people" in d.target.groups[GROUP]
    run = d.call(AdminRole.VIEWER, "GET", f"/runs/{held.run_id}")
    conforms(doc, "GET", "/runs/{run_id}", run)
    assert [h["user_name"] for h in run.get_json()["held_removals"]] == [examples.user_name("A")]
    wrong = d.call(AdminRole.ADMIN, "POST", f"/runs/{held.run_id}/release", json={"confirm_held": 2})
    assert wrong.status_code == 409 and "holds 1 removals, not 2" in wrong.get_json()["detail"]
    ok = d.call(AdminRole.ADMIN, "POST", f"/runs/{held.run_id}/release", json={"confirm_held": 1})
    assert ok.status_code == 202, ok.get_json()
    conforms(doc, "POST", "/runs/{run_id}/release", ok)
    assert d.call(AdminRole.ADMIN, "POST", f"/runs/{held.run_id}/release", json={"confirm_held": 1}).status_code == 409
    Worker(d.ctx).release_requested()
    assert "uid=A,ou=people" not in d.target.groups[GROUP]
    runs = d.call(AdminRole.VIEWER, "GET", "/runs").get_json()
    assert runs["rows"][0]["kind"] == "release"


def test_simulate_at_the_school_year_end_and_with_a_mapping(district, doc):
    """At 2027-07-01 A, C and E lose access; an uploaded mapping whose approval groups are named
    otherwise loses every member today (NO_APPROVAL); a broken mapping is 400 with its problems."""
    d = district
    r = d.call(AdminRole.VIEWER, "POST", "/simulate", json={"at": "2027-07-01"})
    conforms(doc, "POST", "/simulate", r)
    assert {x["user_name"] for x in r.get_json()["rows"] if x["change"] == "loss"} == {
        examples.user_name(n) for n in "ACE"}
    import yaml

    from mappings.model import DEFAULT_MAPPING_PATH

    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["approval_groups"][0]["pattern"] = r"^WalkIn-Managers-(?P<location>\w+)$"
    r = d.call(AdminRole.VIEWER, "POST", "/simulate", json={"mapping": yaml.safe_dump(data)})
    assert r.status_code == 200, r.get_json()
    losses = {x["user_name"]: x["reasons"] for x in r.get_json()["rows"] if x["change"] == "loss"}
    assert losses == {examples.user_name(n): "NO_APPROVAL" for n in "ACEK"}
    broken = d.call(AdminRole.VIEWER, "POST", "/simulate", json={"mapping": "policy: [unclosed"})
    assert broken.status_code == 400 and broken.get_json()["problems"]
    conforms(doc, "POST", "/simulate", broken)
    huge = d.call(AdminRole.VIEWER, "POST", "/simulate", json={"mapping": "#" * 300_000})
    assert huge.status_code in (400, 413)


# ------------------------------------------------------------ paging, CSV, errors


def test_paging_csv_and_history(district, doc):
    """members pages with offset/limit and next_offset; format=csv is every row; history is a Report."""
    d = district
    first = d.call(AdminRole.VIEWER, "GET", "/reports/members?limit=2").get_json()
    assert first["total"] == 4 and len(first["rows"]) == 2 and first["next_offset"] == 2
    second = d.call(AdminRole.VIEWER, "GET", "/reports/members?limit=2&offset=2").get_json()
    assert second["next_offset"] is None
    assert {r["user_name"] for r in first["rows"] + second["rows"]} == {examples.user_name(n) for n in "ACEK"}
    csv = d.call(AdminRole.VIEWER, "GET", "/reports/members?format=csv")
    assert csv.mimetype == "text/csv" and "attachment" in csv.headers["Content-Disposition"]
    assert csv.get_data(as_text=True).splitlines()[0].startswith("user_name,location,role")
    assert len(csv.get_data(as_text=True).splitlines()) == 5
    pending = d.call(AdminRole.VIEWER, "GET", "/reports/pending?overdue=true")
    conforms(doc, "GET", "/reports/{name}", pending)
    h = d.call(AdminRole.VIEWER, "GET", f"/people/{examples.user_name('A')}/history?at=2026-11-29")
    conforms(doc, "GET", "/people/{user}/history", h)
    assert h.get_json()["summary"]["on"] == "2026-11-29"


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), [
    ("GET", "/reports/members?bogus=1", None, 400, "bogus"),
    ("GET", "/reports/members?limit=0", None, 400, "limit"),
    ("GET", "/reports/members?limit=1&limit=2", None, 400, "more than once"),
    ("GET", "/reports/losses?since=yesterday", None, 400, "since"),
    ("GET", "/reports/members?entitlement=nope", None, 400, "unknown entitlement"),
    ("GET", "/reports/nope", None, 404, "no report"),
    ("GET", "/people/nobody/explain", None, 404, "no user"),
    ("GET", "/runs/99999", None, 404, "no run"),
    ("GET", "/nowhere", None, 404, "no endpoint"),
    ("DELETE", "/reports", None, 405, "DELETE"),
    ("GET", "/me?x=1", None, 400, "no query parameters"),
], ids=["unknown-param", "limit-0", "repeated", "bad-date", "entitlement", "report", "user", "run", "route",
        "method", "no-params"])
def test_bad_requests_are_problem_json(district, method, path, body, status, words):
    """Each bad request is answered with its status as RFC 9457 problem JSON naming the problem."""
    r = district.call(AdminRole.ADMIN, method, path, json=body)
    assert r.status_code == status and r.mimetype == "application/problem+json", r.get_data(as_text=True)
    assert words in str(r.get_json()), r.get_json()


@pytest.mark.parametrize(("raw", "words"), [
    (b"{not json", "not valid JSON"),
    (b"", "no body"),
    (b'{"user": "x", "effect": "grant", "until": "2026-12-10", "reason": "r", "extra": 1}', "extra"),
    (b'{"user": "x", "effect": "maybe", "until": "2026-12-10", "reason": "r"}', "effect"),
    (b'{"user": "x", "effect": "grant", "until": "2026-12-10", "reason": "   "}', "reason"),
], ids=["not-json", "empty", "extra-field", "bad-effect", "blank-reason"])
def test_bad_bodies_change_nothing(district, raw, words):
    """A body that is not JSON or does not validate is 400 naming the field; nothing is written."""
    before = district.counts()
    r = district.call(AdminRole.ADMIN, "POST", "/overrides", data=raw, content_type="application/json")
    assert r.status_code == 400 and words in str(r.get_json()), r.get_json()
    assert district.counts() == before


def test_admin_token_cli(district, monkeypatch):
    """create prints a working token once; list shows it without the secret; revoke stops it;
    an approver token without --approver is one line, exit 1; every change is audited."""
    d = district
    monkeypatch.setenv("WALKIN_DATABASE_URL", d.settings.database_url)
    runner = CliRunner()
    made = runner.invoke(main, ["admin-token", "create", "helpdesk", "--role", "viewer", "--by", "dots"], obj=d.clock)
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("wka_") and d.call(token, "GET", "/me").get_json()["name"] == "helpdesk"
    listed = runner.invoke(main, ["admin-token", "list"], obj=d.clock)
    assert "helpdesk\tviewer" in listed.output and token not in listed.output
    token_id = next(line.split("\t")[0] for line in listed.output.splitlines() if "\thelpdesk\t" in line)
    revoked = runner.invoke(main, ["admin-token", "revoke", token_id, "--by", "dots"], obj=d.clock)
    assert revoked.exit_code == 0 and d.call(token, "GET", "/me").status_code == 401
    again = runner.invoke(main, ["admin-token", "revoke", token_id, "--by", "dots"], obj=d.clock)
    assert again.exit_code == 1 and "was revoked" in again.output
    bad = runner.invoke(main, ["admin-token", "create", "p", "--role", "approver", "--by", "dots"], obj=d.clock)
    assert bad.exit_code == 1 and "--approver" in bad.output
    principal = runner.invoke(main, ["admin-token", "create", "p", "--role", "approver", "--approver", PRINCIPAL,
                                     "--by", "dots"], obj=d.clock)
    assert principal.exit_code == 0, principal.output
    assert d.call(principal.stdout.strip().splitlines()[-1], "GET", "/me").get_json()["locations"] == ["0789"]
    with d.store.session_read() as s:
        actors = s.scalars(select(AuditRow.actor).where(AuditRow.action == "token")).all()
    assert actors.count("dots (cli)") == 3


def test_members_pages_in_the_database_as_the_whole_report_would(district):
    """A page of members (Options.page_size) is the same rows, in the same order, as that slice of
    the whole report, and carries the whole report's summary and total."""
    from sync.reports import REPORTS, Filters, Options, ReportContext

    d = district
    ctx = ReportContext(d.ctx.mapping, "ldap", d.clock.today(d.ctx.mapping.policy.zone))
    with d.store.session_read() as s:
        whole = REPORTS["members"](s, ctx, Filters(), Options())
        for offset in range(0, 5):
            page = REPORTS["members"](s, ctx, Filters(), Options(offset=offset, page_size=2))
            assert page.rows == whole.rows[offset : offset + 2]
            assert (page.total, page.summary) == (len(whole.rows), whole.summary)
