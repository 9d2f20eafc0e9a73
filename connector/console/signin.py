"""Signing in to the console with the district's OpenID Connect provider
(authorization code with PKCE, through authlib), the session it opens, and the
checks every console request passes: signed in, within the idle and absolute
timeouts, and for a form, its CSRF token.

The session is Flask's signed cookie (Secure, HttpOnly, SameSite=Lax — Lax, not
Strict, so that it comes back on the provider's redirect to the callback), holding
who signed in, their roles and when; times come from the app's clock.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from connector.admin.roles import GRANTS, AdminRole, Permission

PREFIX = "/console"

OPEN_ENDPOINTS = {"console.login", "console.callback", "console.signed_out", "console.static"}


@dataclass(frozen=True)
class Visitor:
    """Who is signed in: their name, roles, and (an approver's) locations."""

    name: str
    roles: frozenset[AdminRole]
    approver_id: str | None = None
    locations: frozenset[str] | None = None
    """An approver's scope; None when a viewer or admin role lets them read the district."""

    def may(self, permission: Permission) -> bool:
        return any(permission in GRANTS[role] for role in self.roles)

    def sees(self, location: str | None) -> bool:
        return self.locations is None or (location is not None and location in self.locations)


def visitor() -> Visitor:
    return g.console_visitor


def roles_of(claims: dict, mapping: dict[str, AdminRole]) -> frozenset[AdminRole]:
    """walkin's roles from the ID token's ``roles`` (Entra app roles) and ``groups`` claims."""
    values = []
    for claim in ("roles", "groups"):
        found = claims.get(claim) or []
        values += found if isinstance(found, list) else [found]
    return frozenset(mapping[value] for value in values if isinstance(value, str) and value in mapping)


#: The demo's people to sign in as: who, with which roles (``walkin demo``).
DEMO_VISITORS = {
    "helpdesk": ("helpdesk@district.org", (AdminRole.VIEWER,)),
    "principal": ("principal.p@district.org", (AdminRole.APPROVER,)),
    "admin": ("dots@district.org", (AdminRole.ADMIN,)),
}


def install(blueprint: Blueprint, oauth) -> None:
    """Sign-in with the district's OpenID Connect provider."""

    @blueprint.route("/login")
    def login():
        """To the provider's sign-in (a new state, nonce and PKCE verifier each time)."""
        return oauth.walkin.authorize_redirect(url_for("console.callback", _external=True))

    @blueprint.route("/callback")
    def callback():
        # authlib checks the state, the code with its PKCE verifier, and the ID token's
        # signature, issuer, audience and nonce.
        token = oauth.walkin.authorize_access_token()
        claims = token.get("userinfo") or {}
        settings = current_app.extensions["walkin.admin"].settings.console
        roles = roles_of(claims, settings.role_claims)
        name = str(claims.get(settings.username_claim) or claims.get("email") or claims.get("sub"))
        back = session.get("next")
        if not roles:
            session.clear()
            return render_template("console/no_role.html", name=name), 403
        _open(name, roles)
        return redirect(
            back if isinstance(back, str) and back.startswith(PREFIX + "/") else url_for("console.dashboard")
        )

    _common(blueprint)


def install_demo(blueprint: Blueprint) -> None:
    """The demo's sign-in: pick who to be. Only ``walkin demo`` installs it, on loopback."""

    @blueprint.route("/login")
    def login():
        session.setdefault("csrf", secrets.token_urlsafe(32))  # the sign-in form is a form too
        return render_template("console/demo_login.html", visitors=DEMO_VISITORS)

    @blueprint.route("/callback", methods=["POST"])
    def callback():
        _check_csrf()
        chosen = DEMO_VISITORS.get(request.form.get("as", ""))
        if chosen is None:
            abort(400, "pick one of the demo's people")
        _open(chosen[0], frozenset(chosen[1]))
        return redirect(url_for("console.dashboard"))

    _common(blueprint)


def _open(name: str, roles: frozenset[AdminRole]) -> None:
    now = _now().isoformat()
    session.clear()  # a new session at sign-in: nothing from before it carries over
    session.update(
        name=name, roles=sorted(r.value for r in roles), signed_in_at=now, seen_at=now, csrf=secrets.token_urlsafe(32)
    )
    session.permanent = True


def _common(blueprint: Blueprint) -> None:
    @blueprint.route("/signed-out")
    def signed_out():
        return render_template("console/signed_out.html")

    @blueprint.route("/logout", methods=["POST"])
    def logout():
        session.clear()
        return redirect(url_for("console.signed_out"))

    blueprint.before_request(_check)


def _now() -> datetime:
    return current_app.extensions["walkin.clock"].now()


def _check():
    """Signed in, not idle too long nor signed in too long ago, and a form's CSRF token."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    settings = current_app.extensions["walkin.admin"].settings.console
    if "name" not in session:
        return _to_login()
    now = _now()
    signed_in, seen = datetime.fromisoformat(session["signed_in_at"]), datetime.fromisoformat(session["seen_at"])
    if now - seen > timedelta(minutes=settings.idle_minutes) or now - signed_in > timedelta(
        hours=settings.absolute_hours
    ):
        session.clear()
        return _to_login()
    if request.method == "POST":
        _check_csrf()
    session["seen_at"] = now.isoformat()
    g.console_visitor = _visitor(session)
    return None


def _check_csrf() -> None:
    """A form's token must be the session's: a page of another site cannot read it."""
    sent, expected = request.form.get("csrf", ""), session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "the form is stale or was not sent by this console (CSRF token); reload the page")


def _to_login():
    if request.method == "GET":
        session["next"] = request.full_path if request.query_string else request.path
    return redirect(url_for("console.login"))


def _visitor(data) -> Visitor:
    """An approver acts as their own SCIM record (the username claim); their reads
    are scoped to the approver rule's locations unless a viewer or admin role lets
    them read the district."""
    roles = frozenset(AdminRole(r) for r in data["roles"])
    if AdminRole.APPROVER not in roles:
        return Visitor(data["name"], roles)
    from sync.approvals import approver_locations
    from sync.lookup import AmbiguousUser, one_person

    service = current_app.extensions["walkin.admin"]
    with service.store.session_read() as s:
        try:
            person = one_person(s, data["name"])
        except AmbiguousUser:
            person = None
        places = (
            approver_locations(s, service.mapping, service.settings.sync.person_key, person) if person else frozenset()
        )
    district = bool(roles & {AdminRole.VIEWER, AdminRole.ADMIN})
    return Visitor(data["name"], roles, person, None if district else places)
