"""``walkin demo``: the whole flow on one machine with nothing else to install — a
scratch store holding the access policy's worked examples (§8) and a few hundred
generated people, pushed in through the SCIM API; the worker on the embedded target
(the group kept in the store); the console on loopback with a demo sign-in, clearly
marked, and no identity provider. It refuses to listen anywhere but loopback.

The §8 people are also the tests' (tests/integration/examples.py uses them).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

from sqlalchemy import update

from connector.store.models import AccessLossRow, MemberRow

LOOPBACK = ("127.0.0.1", "::1", "localhost")

WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
COURSE = "Walk-In Scheduling Certification"
A_CERTS = [("full", "2025-09-15")]
B_CERTS = [("full", "2024-09-10")]

# name: (job code, location, assignment start, completions, approvals (location, date), lost, active)
PEOPLE = {
    "A": ("1001", "0123", "2024-08-01", A_CERTS, [("0123", "2025-09-20")], None, True),
    "B": ("1001", "0123", "2024-08-01", B_CERTS, [("0123", "2025-09-20")], None, True),
    "C": ("1001", "0123", "2024-08-01", B_CERTS + [("recert", "2026-05-01")], [("0123", "2025-09-20")], None, True),
    "D": ("1001", "0123", "2024-08-01", B_CERTS + [("recert", "2026-08-01")], [("0123", "2025-09-20")], None, True),
    "E": ("2001", "0456", "2023-08-01", [("full", "2026-01-10")], [("0456", "2026-01-12")], None, True),
    "F": ("4001", "C100", "2023-08-01", [("full", "2026-01-10")], [("C100", "2026-01-12")], None, True),
    "G": ("1001", "0789", "2026-10-01", A_CERTS, [("0123", "2025-09-20")], None, True),
    "H": ("1002", "0123", "2026-10-01", A_CERTS, [("0123", "2025-09-20")], None, True),
    "I": ("1001", "0123", "2024-08-01", A_CERTS, [("0123", "2025-09-20")], "2026-10-01", True),
    "J": (
        "1001",
        "0123",
        "2024-08-01",
        A_CERTS + [("recert", "2026-10-05")],
        [("0123", "2025-09-20")],
        "2026-10-01",
        True,
    ),
    "K": (
        "1001",
        "0123",
        "2024-08-01",
        A_CERTS + [("full", "2026-10-05")],
        [("0123", "2025-09-20")],
        "2026-10-01",
        True,
    ),
    "L": ("1001", "0123", "2024-08-01", A_CERTS, [("0123", "2025-09-20")], None, False),
    "M": ("2001", "0123", None, [], [], None, True),
}

EXPECTED = {  # policy §8: entitled, reasons, valid_through
    "A": (True, [], "2027-06-30"),
    "B": (False, ["CERT_EXPIRED"], "2026-06-30"),
    "C": (True, [], "2027-06-30"),
    "D": (False, ["CERT_EXPIRED"], "2026-06-30"),
    "E": (True, [], "2027-06-30"),
    "F": (False, ["ROLE_NOT_ELIGIBLE"], "2027-06-30"),
    "G": (False, ["NO_APPROVAL"], "2027-06-30"),
    "H": (False, ["APPROVAL_STALE"], "2027-06-30"),
    "I": (False, ["CERT_BEFORE_LOSS"], None),
    "J": (False, ["CERT_BEFORE_LOSS"], None),
    "K": (True, [], "2028-06-30"),
    "L": (False, ["NOT_ACTIVE"], "2027-06-30"),
    "M": (False, ["NOT_CERTIFIED", "NO_APPROVAL"], None),
}


def user_name(name: str) -> str:
    return f"person.{name.lower()}@district.org"


def load(client, store, headers: dict[str, str]) -> dict[str, str]:
    """Create the §8 people through the SCIM API (``client``: a Flask test client), their
    approval-group memberships (dated as the policy's example says) and losses."""
    ids: dict[str, str] = {}
    approvals: dict[str, list[tuple[str, str]]] = {}
    for name, (job, location, start, certs, approved, _, active) in PEOPLE.items():
        ext = {
            "jobCode": job,
            "locationCode": location,
            "certifications": [{"course": COURSE, "kind": k, "completedOn": d} for k, d in certs],
        }
        if start:
            ext["assignmentStartDate"] = start
        r = client.post(
            "/scim/v2/Users", json={"userName": user_name(name), "active": active, WALKIN: ext}, headers=headers
        )
        assert r.status_code == 201, r.get_json()
        ids[name] = r.get_json()["id"]
        for loc, day in approved:
            approvals.setdefault(loc, []).append((ids[name], day))
    for loc, members in approvals.items():
        r = client.post(
            "/scim/v2/Groups",
            json={"displayName": f"WalkIn-Approvers-{loc}", "members": [{"value": m} for m, _ in members]},
            headers=headers,
        )
        group = r.get_json()["id"]
        with store.session_write() as s:
            for member, day in members:
                noon = datetime.combine(date.fromisoformat(day), datetime.min.time()).replace(hour=18, tzinfo=UTC)
                s.execute(
                    update(MemberRow)
                    .where(MemberRow.group_id == group, MemberRow.member_id == member)
                    .values(since=noon)
                )
    with store.session_write() as s:
        for name, (*_, lost, _active) in PEOPLE.items():
            if lost:
                s.add(AccessLossRow(person_id=ids[name], entitlement="walkin", lost_on=lost))
    return ids


def generated(count: int, seed: int = 11) -> list[dict]:
    """``count`` more people as SCIM Users: at the three schools and the central office,
    in every role, most certified, some expired; reproducible (``seed``)."""
    rng = random.Random(seed)
    jobs = ["1001", "1002", "2001", "3001", "4001"]
    places = ["0123", "0456", "0789", "C100"]
    people = []
    for i in range(count):
        completed = rng.choice(["2024-09-10", "2025-09-15", "2025-10-01", "2026-09-20", None])
        certs = [{"course": COURSE, "kind": "full", "completedOn": completed}] if completed else []
        people.append(
            {
                "userName": f"staff{i:04d}@district.org",
                "name": {"givenName": f"Staff{i:04d}", "familyName": "Demo"},
                "emails": [{"value": f"staff{i:04d}@district.org", "type": "work", "primary": True}],
                "active": rng.random() > 0.03,
                WALKIN: {
                    "jobCode": rng.choice(jobs),
                    "locationCode": rng.choice(places),
                    "assignmentStartDate": "2024-08-01",
                    "certifications": certs,
                },
            }
        )
    return people


def run(host: str, port: int, people: int, say) -> None:
    """Build the scratch district and serve it until interrupted.

    :raises ValueError: ``host`` is not a loopback address.
    """
    import secrets
    import tempfile
    import threading
    from pathlib import Path

    from pydantic import SecretStr
    from werkzeug.serving import make_server

    from connector import create_app
    from connector.settings import Settings
    from connector.store.database import Store
    from sync.context import build_context
    from sync.settings import TargetKind
    from sync.worker import Worker

    if host not in LOOPBACK:
        raise ValueError(f"walkin demo listens on loopback only ({', '.join(LOOPBACK)}), not {host}")
    folder = Path(tempfile.mkdtemp(prefix="walkin-demo-"))
    settings = Settings(
        database_url=f"sqlite:///{folder / 'walkin.db'}", scim_token=[SecretStr(secrets.token_urlsafe(24))]
    )
    settings.sync.target = TargetKind.STORE  # the group kept in the store: nothing else to install
    settings.console.cookie_secure = False  # plain http on loopback
    store = Store(settings.database_url)
    app = create_app(settings, store=store, demo=True)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {settings.scim_token[0].get_secret_value()}"}
    load(client, store, headers)
    principal = {
        "userName": "principal.p@district.org",
        "emails": [{"value": "principal.p@district.org", "type": "work", "primary": True}],
        "active": True,
        WALKIN: {"jobCode": "3001", "locationCode": "0789", "assignmentStartDate": "2020-08-01"},
    }
    approved: dict[str, list[str]] = {}
    for i, person in enumerate([principal, *generated(people)]):
        answer = client.post("/scim/v2/Users", json=person, headers=headers)
        if answer.status_code != 201:
            raise RuntimeError(f"the demo's SCIM push was refused: {answer.get_json()}")
        if i % 3:  # two in three of the generated people have their principal's approval
            approved.setdefault(person[WALKIN]["locationCode"], []).append(answer.get_json()["id"])
    for location, members in approved.items():
        _approve(client, headers, location, members)
    say(f"scratch store {folder / 'walkin.db'}: {len(PEOPLE) + 1 + people} people pushed through the SCIM API")
    worker = Worker(build_context(settings, store=store))
    thread = threading.Thread(target=worker.run_forever, name="walkin-demo-worker", daemon=True)
    thread.start()
    server = make_server(host, port, app, threaded=True)
    shown = f"[{host}]" if ":" in host else host
    say(f"DEMO console: http://{shown}:{server.server_port}/console/ (demo sign-in, no identity provider)")
    token = settings.scim_token[0].get_secret_value()
    say(f"SCIM: http://{shown}:{server.server_port}/scim/v2 with the bearer token {token}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
        thread.join(timeout=10)
        server.server_close()
        store.dispose()


def _approve(client, headers: dict[str, str], location: str, members: list[str]) -> None:
    """Add ``members`` to the location's approval group (made if missing), as Entra would."""
    name = f"WalkIn-Approvers-{location}"
    found = client.get("/scim/v2/Groups", query_string={"filter": f'displayName eq "{name}"'}, headers=headers)
    groups = found.get_json()["Resources"]
    values = [{"value": m} for m in members]
    if not groups:
        client.post("/scim/v2/Groups", json={"displayName": name, "members": values}, headers=headers)
        return
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": values}],
    }
    client.patch(f"/scim/v2/Groups/{groups[0]['id']}", json=patch, headers=headers)
