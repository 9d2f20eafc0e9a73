"""The console's pages: thin handlers over the same service layer as the admin API
(sync/reports, sync/approvals, sync/requests), rendered server-side. What a
visitor may see and do is the admin API's permission table (connector/admin/roles.py)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from connector.admin.roles import Permission
from sync.levers import Acting, LeverError
from sync.reports import Filters, Options

from .signin import visitor


def _service():
    return current_app.extensions["walkin.admin"]


def _need(permission: Permission) -> None:
    if not visitor().may(permission):
        abort(403)


def _acting() -> Acting:
    return Acting(f"{visitor().name} (console)")


def install(blueprint: Blueprint) -> None:
    @blueprint.route("/")
    def dashboard():
        _need(Permission.READ)
        from sync.reports import REPORTS

        service, who = _service(), visitor()
        ctx = service.context()
        filters = Filters(locations=who.locations)
        with service.store.session_read() as s:
            summaries = {
                name: REPORTS[name](s, ctx, filters, Options()).summary
                for name in ("members", "pending", "waiting", "expiring")
            }
            runs = (
                REPORTS["runs"](s, ctx, Filters(), Options(limit=5)).rows if who.may(Permission.READ_DISTRICT) else []
            )
            held = REPORTS["held"](s, ctx, Filters(), Options()).summary if who.may(Permission.READ_DISTRICT) else None
        return render_template("console/dashboard.html", summaries=summaries, runs=runs, held=held, today=ctx.today)

    @blueprint.route("/people")
    def search():
        _need(Permission.READ)
        from sync.audit import find_person

        query = request.args.get("q", "").strip()[:256]
        found = []
        if query:
            with _service().store.session_read() as s:
                found = find_person(s, query)
        return render_template("console/search.html", query=query, found=found)

    @blueprint.route("/people/<person_id>")
    def person(person_id: str):
        _need(Permission.READ)
        from mappings.advice import explain_decision
        from mappings.policy import explain as explain_policy
        from sync.people import load_people
        from sync.reports import history

        service, who = _service(), visitor()
        ctx = service.context()
        with service.store.session_read() as s:
            found = load_people(s, service.mapping, service.settings.sync.person_key, [person_id])
            if not found:
                abort(404)
            person = found[0]
            if not who.sees(person.facts.location):
                abort(403)
            timeline = history(s, ctx, person_id).rows[-50:]
        decision, evidence = explain_policy(person.facts, "walkin", ctx.today, service.mapping)
        told = explain_decision(
            person.user_name or person_id, person.facts, decision, evidence, service.mapping, person.problems
        )
        return render_template(
            "console/person.html",
            person=person,
            told=told,
            timeline=timeline,
            can_approve=who.may(Permission.APPROVE) and who.approver_id is not None,
            can_administer=who.may(Permission.ADMINISTER),
        )

    @blueprint.route("/people/<person_id>/approve", methods=["POST"])
    def approve(person_id: str):
        _need(Permission.APPROVE)
        from sync.approvals import approve as approve_one

        service, who = _service(), visitor()
        if who.approver_id is None or request.form.get("confirm") != "yes":
            flash("Tick the confirmation to approve.", "error")
            return redirect(url_for("console.person", person_id=person_id))
        try:
            record = approve_one(
                service.store,
                service.clock,
                service.mapping,
                service.settings.sync.person_key,
                person_id=person_id,
                location=request.form.get("location", ""),
                entitlement="walkin",
                approver_id=who.approver_id,
                acting=_acting(),
            )
        except LeverError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Approved {record['user_name']} for {record['location']} on {record['approved_on']}.", "ok")
        return redirect(url_for("console.person", person_id=person_id))

    @blueprint.route("/people/<person_id>/sync", methods=["POST"])
    def sync_now(person_id: str):
        _need(Permission.ADMINISTER)
        from sync.requests import request_sync

        try:
            request_sync(_service().store, _service().clock, person_id=person_id, acting=_acting())
        except LeverError as exc:
            flash(str(exc), "error")
        else:
            flash("Sync requested: the worker decides and writes this person within seconds.", "ok")
        return redirect(url_for("console.person", person_id=person_id))
