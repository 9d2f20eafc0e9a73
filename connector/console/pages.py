"""The console's pages: thin handlers over the same service layer as the admin API
(sync/reports, sync/approvals, sync/requests), rendered server-side. What a
visitor may see and do is the admin API's permission table (connector/admin/roles.py)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from connector.admin.roles import Permission
from sync.levers import Acting, LeverError
from sync.reports import Filters, Options

from .signin import visitor

PAGE = 100  # rows on a report page
AUDIT_ROWS = 10_000  # entries an audit view reads at most (the export too: narrow it with the filters)


def _service():
    return current_app.extensions["walkin.admin"]


def _need(permission: Permission) -> None:
    if not visitor().may(permission):
        abort(403)


def _acting() -> Acting:
    return Acting(f"{visitor().name} (console)")


def _figures(session, ctx, who) -> dict:
    """The dashboard's figures. The district's are counted by the database
    (sync/gauges.py, the metrics' own queries; members paged to one row for its
    summary); an approver's are their locations' reports, which are small."""
    from sync.gauges import entitlement
    from sync.reports import REPORTS

    members = REPORTS["members"](session, ctx, Filters(locations=who.locations), Options(page_size=1)).summary
    if who.locations is not None:
        scope = Filters(locations=who.locations)
        figures = {
            name: REPORTS[name](session, ctx, scope, Options()).summary for name in ("pending", "waiting", "expiring")
        }
        return {"members": members, **figures, "held": 0}
    counted = entitlement(session, ctx.mapping, ctx.target, "walkin", ctx.today)
    return {
        "health": _health(session, ctx, counted),
        "members": members,
        "pending": {"pending": counted.pending, "overdue": counted.overdue},
        "waiting": {actor: counted.waiting.get(actor, 0) for actor in ("approver", "person", "hr")},
        "expiring": {"expiring": counted.expiring, "within_days": ctx.mapping.policy.recert_warning_days},
        "held": counted.held,
    }


def _health(session, ctx, counted) -> dict:
    """The worker and the target, as the metrics and ``/readyz`` see them: the newest
    heartbeat (stale past ``health.worker_stale_seconds``), the journal's backlog,
    and the last successful run for everyone and for changed people."""
    from sync import heartbeat
    from sync.gauges import journal
    from sync.ledger import RunKind

    service = _service()
    now = service.clock.now()
    age = heartbeat.age(heartbeat.newest(session), now)
    limit = service.settings.health.worker_stale_seconds
    backlog = journal(session)
    full = [counted.last_success[k] for k in (RunKind.FULL, RunKind.DAILY) if k in counted.last_success]
    return {
        "target": ctx.target,
        "heartbeat_age": None if age is None else round(age),
        "stale": age is None or bool(limit and age > limit),
        "events_behind": backlog.events_behind + backlog.jobs_open,
        "last_full": max(full) if full else None,
        "last_event": counted.last_success.get(RunKind.EVENT),
    }


def _school(session, ctx, who) -> dict:
    """An approver's landing page: the staff at their locations who wait for their
    approval first, then those who must complete the course, who has access (with
    the approvals recorded here, which they may withdraw) and whose access ends soon."""
    from sync.approvals import list_approvals
    from sync.reports import REPORTS

    scope = Filters(locations=who.locations)
    waiting = REPORTS["waiting"](session, ctx, scope, Options()).rows
    members = REPORTS["members"](session, ctx, scope, Options(page_size=PAGE))
    recorded = {(r["person_id"], r["location"]) for r in list_approvals(session, locations=who.locations)}
    return {
        "locations": sorted(who.locations or ()),
        "to_approve": [r for r in waiting if r["actor"] == "approver"],
        "to_certify": [r for r in waiting if r["actor"] == "person"],
        "members": members,
        "recorded": recorded,
        "expiring": REPORTS["expiring"](session, ctx, scope, Options()).rows,
        "can_approve": who.may(Permission.APPROVE) and who.approver_id is not None,
    }


def _approval_lever(person_id: str, lever, unconfirmed: str, said) -> object:
    """Approve or withdraw (``lever``, sync/approvals.py) as the signed-in approver, for
    the form's location, once its confirmation box is ticked; then back to the form."""
    _need(Permission.APPROVE)
    service, who = _service(), visitor()
    if who.approver_id is None or request.form.get("confirm") != "yes":
        flash(unconfirmed, "error")
        return _back(person_id)
    location = request.form.get("location", "")
    try:
        result = lever(
            service.store,
            service.clock,
            service.mapping,
            service.settings.sync.person_key,
            person_id=person_id,
            location=location,
            entitlement="walkin",
            approver_id=who.approver_id,
            acting=_acting(),
        )
    except LeverError as exc:
        flash(str(exc), "error")
    else:
        flash(said(result, location), "ok")
    return _back(person_id)


def _back(person_id: str):
    """Back to where the form was: the landing page's lists or the person's page."""
    if request.form.get("back") == "home":
        return redirect(url_for("console.dashboard"))
    return redirect(url_for("console.person", person_id=person_id))


def install(blueprint: Blueprint) -> None:
    blueprint.context_processor(lambda: {"Permission": Permission})

    @blueprint.route("/")
    def dashboard():
        _need(Permission.READ)
        from sync.reports import REPORTS

        service, who = _service(), visitor()
        ctx = service.context()
        if who.locations is not None:
            with service.store.session_read() as s:
                school = _school(s, ctx, who)
            return render_template("console/principal.html", today=ctx.today, **school)
        with service.store.session_read() as s:
            summaries = _figures(s, ctx, who)
            district = who.may(Permission.READ_DISTRICT)
            runs = REPORTS["runs"](s, ctx, Filters(), Options(limit=5)).rows if district else []
            held = {"held": summaries.pop("held")} if district else None
            health = summaries.pop("health", None) if district else None
        return render_template(
            "console/dashboard.html", summaries=summaries, runs=runs, held=held, health=health, today=ctx.today
        )

    @blueprint.route("/people")
    def search():
        """Find a person by the start of a name, userName, email or employee number, or an
        id; an approver finds only the people at their locations (sync/lookup.py)."""
        _need(Permission.READ)
        from sync.lookup import MAX_QUERY
        from sync.lookup import search as search_people

        query = request.args.get("q", "").strip()[:MAX_QUERY]
        found = None
        if query:
            with _service().store.session_read() as s:
                found = search_people(s, query, locations=visitor().locations)
        return render_template("console/search.html", query=query, found=found)

    @blueprint.route("/people/<person_id>")
    def person(person_id: str):
        _need(Permission.READ)
        from mappings.advice import explain_decision
        from mappings.policy import explain as explain_policy
        from sync.approvals import list_approvals
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
            recorded = sorted(
                {r["location"] for r in list_approvals(s, person_id=person_id) if who.sees(r["location"])}
            )
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
            recorded=recorded,
        )

    @blueprint.route("/people/<person_id>/approve", methods=["POST"])
    def approve(person_id: str):
        from sync.approvals import approve as approve_one

        return _approval_lever(
            person_id,
            approve_one,
            "Tick the confirmation to approve.",
            lambda record, _: f"Approved {record['user_name']} for {record['location']} on {record['approved_on']}.",
        )

    @blueprint.route("/people/<person_id>/withdraw", methods=["POST"])
    def withdraw(person_id: str):
        """Withdraw the approvals recorded for a person at a location (not an approval
        group's membership: that is withdrawn in the directory that sends the group)."""
        from sync.approvals import withdraw as withdraw_approvals

        return _approval_lever(
            person_id,
            withdraw_approvals,
            "Tick the confirmation to withdraw the approval.",
            lambda records, location: (
                f"Withdrew the approval of {records[0]['user_name']} for {location}: unless another approval "
                "holds, the worker removes their access at its next round."
            ),
        )

    @blueprint.route("/reports/<name>")
    def report(name: str):
        """A report as a table (paged), with its filters; ``format=csv`` downloads every row."""
        from connector.admin.routes import ACCESS_REPORTS
        from sync.reports import REPORTS, render

        function = REPORTS.get(name)
        if function is None:
            abort(404)
        _need(Permission.READ if name in ACCESS_REPORTS else Permission.READ_DISTRICT)
        service, who = _service(), visitor()
        location = request.args.get("location") or None
        overdue = request.args.get("overdue") == "yes"
        filters = Filters(location=location, locations=who.locations)
        csv = request.args.get("format") == "csv"
        raw = request.args.get("offset", "0")
        offset = min(int(raw), 10_000_000) if raw.isdigit() else 0
        options = Options(overdue=overdue, offset=offset, page_size=None if csv else PAGE)
        with service.store.session_read() as s:
            result = function(s, service.context(), filters, options)
        if csv:
            headers = {"Content-Disposition": f'attachment; filename="{name}-{result.as_of}.csv"'}
            return current_app.response_class(render(result, "csv"), mimetype="text/csv", headers=headers)
        if result.total is None:  # a report that does not page in the database
            total, page = len(result.rows), result.rows[offset : offset + PAGE]
        else:
            total, page = result.total, result.rows
        shown = [c for c in result.columns if c != "person_id"]
        return render_template(
            "console/report.html",
            report=result,
            total=total,
            rows=page,
            columns=shown,
            offset=offset,
            page=PAGE,
            location=location or "",
            overdue=overdue,
            name=name,
        )

    @blueprint.route("/audit")
    def audit():
        """The audit trail, newest last, filtered by person, day and entitlement; CSV or JSON export."""
        _need(Permission.READ_DISTRICT)
        from datetime import date

        from sync.audit import read
        from sync.audit import render as render_audit
        from sync.lookup import MAX_QUERY, AmbiguousUser

        user = request.args.get("user", "").strip()[:MAX_QUERY] or None
        entitlement = request.args.get("entitlement", "").strip()[:64] or None
        since_text = request.args.get("since", "")
        try:
            since = date.fromisoformat(since_text) if since_text else None
        except ValueError:
            since, since_text = None, ""
            flash("The day is YYYY-MM-DD.", "error")
        try:
            with _service().store.session_read() as s:
                rows = read(s, user=user, since=since, entitlement=entitlement, limit=AUDIT_ROWS)
        except AmbiguousUser as exc:
            flash(str(exc).splitlines()[0], "error")
            rows = []
        fmt = request.args.get("format")
        if fmt in ("csv", "json"):
            mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
            headers = {"Content-Disposition": f'attachment; filename="audit.{"csv" if fmt == "csv" else "jsonl"}"'}
            return current_app.response_class(render_audit(rows, fmt), mimetype=mimetype, headers=headers)
        return render_template(
            "console/audit.html",
            rows=rows[-PAGE:],
            total=len(rows),
            user=user or "",
            since=since_text,
            entitlement=entitlement or "",
        )

    @blueprint.route("/what-if", methods=["GET", "POST"])
    def what_if():
        """Who would gain and lose access on a day and/or under an uploaded mapping. Writes nothing."""
        _need(Permission.READ_DISTRICT)
        from datetime import date

        from mappings.loading import MappingError
        from mappings.model import mapping_from_text
        from sync.simulate import simulate

        service = _service()
        ctx = service.context()
        result, problem, at_text = None, None, request.form.get("at", "")
        if request.method == "POST":
            try:
                at = date.fromisoformat(at_text) if at_text else None
                upload = request.files.get("mapping")
                proposed = None
                if upload is not None and upload.filename:
                    limit = service.settings.admin.max_simulate_mapping_bytes
                    proposed = mapping_from_text(upload.read(limit + 1), upload.filename, limit)
                with service.store.session_read() as s:
                    result = simulate(s, ctx.mapping, proposed, ctx.today, at, service.settings.sync.person_key)
            except ValueError:
                problem = "The day is YYYY-MM-DD."
            except MappingError as exc:
                problem = str(exc)
        return render_template("console/what_if.html", result=result, problem=problem, at=at_text, today=ctx.today)

    @blueprint.route("/runs/<int:run_id>")
    def run(run_id: int):
        _need(Permission.READ_DISTRICT)
        from sync.reports.trail import run as one_run

        service = _service()
        with service.store.session_read() as s:
            found = one_run(s, service.context(), run_id)
        if found is None:
            abort(404)
        return render_template("console/run.html", run=found, can_release=visitor().may(Permission.ADMINISTER))

    @blueprint.route("/runs/<int:run_id>/release", methods=["POST"])
    def release(run_id: int):
        """Release a run's held removals — only after typing the confirmation the page asks for."""
        _need(Permission.ADMINISTER)
        from sync.requests import release_held

        held = request.form.get("held", "")
        expected = f"release {held} removals"
        if not held.isdigit() or request.form.get("confirmation", "").strip().lower() != expected:
            flash(f"Type “{expected}” to release them.", "error")
            return redirect(url_for("console.run", run_id=run_id))
        try:
            release_held(_service().store, _service().clock, run_id=run_id, acting=_acting(), expected=int(held))
        except LeverError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Release of {held} removals requested: the worker applies it at its next round.", "ok")
        return redirect(url_for("console.run", run_id=run_id))

    @blueprint.route("/people/<person_id>/sync", methods=["POST"])
    def sync_now(person_id: str):
        _need(Permission.ADMINISTER)
        from sync.requests import request_sync

        try:
            asked = request_sync(_service().store, _service().clock, person_id=person_id, acting=_acting())
        except LeverError as exc:
            flash(str(exc), "error")
            return redirect(url_for("console.person", person_id=person_id))
        return redirect(url_for("console.sync_result", person_id=person_id, seq=asked["journal_seq"]))

    @blueprint.route("/people/<person_id>/sync/<int:seq>")
    def sync_result(person_id: str, seq: int):
        """A "sync now" step by step — requested, read and decided, matched, written —
        refreshing itself until the worker has done it."""
        _need(Permission.ADMINISTER)
        from sync.requests import sync_progress

        service = _service()
        with service.store.session_read() as s:
            progress = sync_progress(s, service.context().target, person_id, seq)
        if progress.requested_at is None:
            abort(404)
        return render_template(
            "console/sync_result.html",
            progress=progress,
            person_id=person_id,
            user_name=progress.user_name or person_id,
        )
