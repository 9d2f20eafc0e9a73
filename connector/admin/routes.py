"""The admin API's handlers: each validates (its declared query and body models),
calls one service function of sync/, and serialises. Who may call which is declared
on each operation and checked once, before the handler (operations.py); an
approver's location scope is applied here, where the data is chosen."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy.orm import Session

from connector.jsontext import dumps_utf8
from sync.lookup import one_person
from sync.reports import REPORTS, Filters, Options, Report, render

from .errors import BadRequest, Missing, Refused
from .operations import Api, caller
from .params import (
    ApprovalBody,
    ApprovalQuery,
    EndBody,
    Format,
    HistoryQuery,
    OverrideBody,
    OverrideQuery,
    Page,
    PersonQuery,
    ReleaseBody,
    ReportQuery,
    RunsQuery,
    SimulateBody,
)
from .roles import GRANTS, Permission

#: The reports about people, which an approver reads for their locations; the rest
#: (the trail: losses, drift, failures, holds, runs) are district-wide.
ACCESS_REPORTS = ("members", "pending", "waiting", "expiring")


def _report_needs(view_args: dict) -> Permission:
    return Permission.READ if view_args.get("name") in ACCESS_REPORTS else Permission.READ_DISTRICT


def _service():
    return current_app.extensions["walkin.admin"]


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps_utf8(body), status=status, mimetype="application/json")


def _page(items: list, query: Page) -> dict:
    end = query.offset + query.limit
    return {
        "total": len(items),
        "offset": query.offset,
        "limit": query.limit,
        "next_offset": end if end < len(items) else None,
        "items": items[query.offset : end],
    }


def _report_page(report: Report, query: Page) -> dict:
    if report.total is not None:  # paged by the database already (Options.page_size)
        end = report.offset + len(report.rows)
        paged = {
            "total": report.total,
            "offset": report.offset,
            "limit": query.limit,
            "next_offset": end if end < report.total else None,
        }
        return {**report.to_json_dict(), **paged, "rows": report.rows}
    paged = _page(report.rows, query)
    rows = paged.pop("items")
    return {**report.to_json_dict(), **paged, "rows": rows}


def _person(session: Session, user: str) -> str:
    found = one_person(session, user)  # nobody, for a value no name could hold (sync/lookup.py searchable)
    if found is None:
        raise Missing(f"no user {user!r} in the store")
    return found


def _load(session: Session, person_id: str, user: str):
    """The person with their facts; an approver reads only the people at their locations."""
    from sync.people import load_people

    service = _service()
    person = load_people(session, service.mapping, service.settings.sync.person_key, [person_id])[0]
    if not caller().sees(person.facts.location):
        raise Refused(f"'{user}' is not at a location this approver token reaches")
    return person


def declare(blueprint: Blueprint) -> Api:
    api = Api(blueprint)

    @api.operation("GET", "/me", needs=Permission.SELF, responses={200: "Me"})
    def me() -> Response:
        """The calling token: its name, role, expiry, permissions and (an approver's) locations."""
        who = caller()
        return _json(
            {
                "token_id": who.token_id,
                "name": who.name,
                "role": who.role.value,
                "expires_at": who.expires_at.isoformat(timespec="seconds"),
                "approver_id": who.approver_id,
                "locations": None if who.locations is None else sorted(who.locations),
                "permissions": sorted(p.value for p in GRANTS[who.role]),
            }
        )

    @api.operation("GET", "/openapi.json", needs=Permission.SELF, responses={200: "OpenApi"})
    def openapi() -> Response:
        """This API's OpenAPI 3.1 document."""
        from .openapi import document

        return _json(document(api))

    @api.operation("GET", "/reports", needs=Permission.READ, responses={200: "ReportList"})
    def reports() -> Response:
        """The reports, and which of them the calling token may read."""
        who = caller()
        listed = [
            {
                "name": name,
                "summary": (function.__doc__ or name).split("\n\n")[0].replace("\n", " "),
                "scope": "people" if name in ACCESS_REPORTS else "district",
                "allowed": who.may(_report_needs({"name": name})),
            }
            for name, function in REPORTS.items()
        ]
        return _json({"reports": listed})

    @api.operation(
        "GET",
        "/reports/<name>",
        needs=_report_needs,
        query=ReportQuery,
        responses={200: "Report"},
        csv=True,
        choices={"name": tuple(REPORTS)},
    )
    def report(name: str, query: ReportQuery) -> Response:
        """One report: members, pending, waiting, expiring (an approver's: their
        locations), losses, drift, unresolved, failed, held, runs.

        Paged with offset and limit; ``format=csv`` returns every row as CSV."""
        function = REPORTS.get(name)
        if function is None:
            raise Missing(f"no report '{name}'; known: {', '.join(REPORTS)}")
        service = _service()
        filters = Filters(query.entitlement, query.location, query.role, caller().locations)
        csv = query.format is Format.CSV
        options = Options(
            query.since,
            query.until,
            query.within_days,
            1000,
            query.overdue,
            offset=query.offset,
            page_size=None if csv else query.limit,
        )
        with service.store.session_read() as session:
            result = function(session, service.context(), filters, options)
        if csv:
            disposition = f'attachment; filename="{name}-{result.as_of}.csv"'
            return Response(render(result, "csv"), mimetype="text/csv", headers={"Content-Disposition": disposition})
        return _json(_report_page(result, query))

    @api.operation(
        "GET", "/people/<user>/explain", needs=Permission.READ, query=PersonQuery, responses={200: "Explanation"}
    )
    def explain(user: str, query: PersonQuery) -> Response:
        """Why a person has or lacks the entitlement: every requirement with its
        evidence, and the next step (as ``walkin explain``)."""
        from mappings.advice import explain_decision
        from mappings.policy import explain as explain_policy

        service = _service()
        if query.entitlement not in service.mapping.entitlements:
            raise BadRequest(f"unknown entitlement '{query.entitlement}'")
        with service.store.session_read() as session:
            person_id = _person(session, user)
            person = _load(session, person_id, user)
        day = query.at or service.context().today
        decision, evidence = explain_policy(person.facts, query.entitlement, day, service.mapping)
        told = explain_decision(
            person.user_name or person_id, person.facts, decision, evidence, service.mapping, person.problems
        )
        return _json({"person_id": person_id, **told.to_json_dict()})

    @api.operation(
        "GET", "/people/<user>/history", needs=Permission.READ, query=HistoryQuery, responses={200: "Report"}
    )
    def history(user: str, query: HistoryQuery) -> Response:
        """A person's timeline: SCIM changes, decision changes with reasons, grants
        and revokes; with ``at``, their access as it stood that day."""
        from sync.reports import history as person_history

        service = _service()
        with service.store.session_read() as session:
            person_id = _person(session, user)
            _load(session, person_id, user)
            result = person_history(session, service.context(), person_id, query.at)
        return _json({**_report_page(result, query), "person_id": person_id})

    @api.operation("POST", "/people/<user>/sync", needs=Permission.ADMINISTER, responses={202: "SyncRequested"})
    def sync_person(user: str) -> Response:
        """Sync this person now: the worker decides them and writes the group within seconds."""
        from sync.requests import request_sync

        service = _service()
        with service.store.session_read() as session:
            person_id = _person(session, user)
        return _json(request_sync(service.store, service.clock, person_id=person_id, acting=caller().acting), 202)

    @api.operation(
        "GET", "/overrides", needs=Permission.READ_DISTRICT, query=OverrideQuery, responses={200: "OverridePage"}
    )
    def overrides(query: OverrideQuery) -> Response:
        """Overrides in force (or all, with ``include_ended``), newest first."""
        from sync.overrides import list_overrides

        with _service().store.session_read() as session:
            person_id = _person(session, query.user) if query.user else None
            rows = list_overrides(session, person_id=person_id, include_ended=query.include_ended)
        return _json(_page(rows, query))

    @api.operation("POST", "/overrides", needs=Permission.ADMINISTER, body=OverrideBody, responses={201: "Override"})
    def set_override(body: OverrideBody) -> Response:
        """Grant or deny the entitlement to a person through a day (an override in
        force for them is ended and replaced)."""
        from sync.overrides import set_override as set_one

        service = _service()
        with service.store.session_read() as session:
            person_id = _person(session, body.user)
        row = set_one(
            service.store,
            service.clock,
            service.mapping,
            service.settings.admin,
            person_id=person_id,
            entitlement=body.entitlement,
            effect=body.effect,
            until=body.until,
            reason=body.reason,
            acting=caller().acting,
        )
        return _json(row, 201)

    @api.operation(
        "POST",
        "/overrides/<id:override_id>/end",
        needs=Permission.ADMINISTER,
        body=EndBody,
        responses={200: "Override"},
    )
    def end_override(override_id: int, body: EndBody) -> Response:
        """End an override now; the person is re-decided without it."""
        from sync.overrides import end_override as end_one

        service = _service()
        return _json(
            end_one(service.store, service.clock, override_id=override_id, reason=body.reason, acting=caller().acting)
        )

    @api.operation("GET", "/approvals", needs=Permission.READ, query=ApprovalQuery, responses={200: "ApprovalPage"})
    def approvals(query: ApprovalQuery) -> Response:
        """Approval records in force (or all, with ``include_withdrawn``), newest
        first; an approver's: at their locations."""
        from sync.approvals import list_approvals

        scope = caller().locations
        if query.location is not None:
            scope = frozenset({query.location}) if scope is None else scope & {query.location}
        with _service().store.session_read() as session:
            person_id = _person(session, query.user) if query.user else None
            rows = list_approvals(
                session, person_id=person_id, locations=scope, include_withdrawn=query.include_withdrawn
            )
        return _json(_page(rows, query))

    @api.operation("POST", "/approvals", needs=Permission.APPROVE, body=ApprovalBody, responses={200: "Approval"})
    def approve(body: ApprovalBody) -> Response:
        """Record the token's approver's approval of a person for a location, dated
        today (recorded twice on one day: the first is returned)."""
        from sync.approvals import approve as approve_one

        return _json(_approval_act(approve_one, body))

    @api.operation(
        "POST", "/approvals/withdraw", needs=Permission.APPROVE, body=ApprovalBody, responses={200: "ApprovalList"}
    )
    def withdraw(body: ApprovalBody) -> Response:
        """Withdraw the person's approval records for a location (the token's
        approver must be one who may approve it)."""
        from sync.approvals import withdraw as withdraw_all

        return _json({"items": _approval_act(withdraw_all, body)})

    @api.operation(
        "POST", "/simulate", needs=Permission.READ_DISTRICT, query=Page, body=SimulateBody, responses={200: "Report"}
    )
    def simulate(query: Page, body: SimulateBody) -> Response:
        """What-if: who would gain and who would lose access under a proposed
        mapping and/or on another day, against the stored decisions. Writes nothing."""
        from mappings.model import mapping_from_text
        from sync.simulate import simulate as run_simulation

        service = _service()
        proposed = None
        if body.mapping is not None:
            limit = service.settings.admin.max_simulate_mapping_bytes
            proposed = mapping_from_text(body.mapping.encode("utf-8"), "uploaded", limit)
        ctx = service.context()
        with service.store.session_read() as session:
            result = run_simulation(
                session, ctx.mapping, proposed, ctx.today, body.at, service.settings.sync.person_key
            )
        return _json(_report_page(result, query))

    @api.operation("GET", "/runs", needs=Permission.READ_DISTRICT, query=RunsQuery, responses={200: "Report"})
    def runs(query: RunsQuery) -> Response:
        """The entitlement's runs, newest first: kind, status, counts, duration, who released a hold."""
        from sync.reports.trail import runs as run_report

        service = _service()
        options = Options(limit=query.offset + query.limit + 1)
        with service.store.session_read() as session:
            result = run_report(session, service.context(), Filters(query.entitlement), options)
        return _json(_report_page(result, query))

    @api.operation("GET", "/runs/<id:run_id>", needs=Permission.READ_DISTRICT, responses={200: "Run"})
    def run(run_id: int) -> Response:
        """One run, with the removals it holds: who would be removed and why."""
        from sync.reports.trail import run as one_run

        service = _service()
        with service.store.session_read() as session:
            found = one_run(session, service.context(), run_id)
        if found is None:
            raise Missing(f"no run {run_id}")
        return _json(found)

    @api.operation(
        "POST",
        "/runs/<id:run_id>/release",
        needs=Permission.ADMINISTER,
        body=ReleaseBody,
        responses={202: "ReleaseRequested"},
    )
    def release(run_id: int, body: ReleaseBody) -> Response:
        """Release the removals a run holds (after reviewing them): the worker applies
        them at its next round. ``confirm_held`` must be the number held."""
        from sync.requests import release_held

        service = _service()
        result = release_held(
            service.store, service.clock, run_id=run_id, acting=caller().acting, expected=body.confirm_held
        )
        return _json(result, 202)

    return api


def _approval_act(act, body: ApprovalBody) -> Any:
    service = _service()
    who = caller()
    if who.approver_id is None:
        raise Refused("this token approves as nobody")
    with service.store.session_read() as session:
        person_id = _person(session, body.user)
    return act(
        service.store,
        service.clock,
        service.mapping,
        service.settings.sync.person_key,
        person_id=person_id,
        location=body.location,
        entitlement=body.entitlement,
        approver_id=who.approver_id,
        acting=who.acting,
    )
