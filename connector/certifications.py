"""Importing the training system's completion export into the store.

The CSV has a header row naming its columns: who (``userName``, or
``employeeNumber`` / ``employee_id``), ``course``, ``kind`` (``full`` or
``recert``) and the completion date (``completed_on``, ``completedOn`` or
``completion_date``, ``YYYY-MM-DD``). A completion already on the person is not
added again, so re-importing a file changes nothing. Bad rows are reported with
their line number and skipped; the good rows are written in one transaction
(all or nothing), through the same store code as a SCIM write, so they reach
the change journal the same way.
"""

from __future__ import annotations

import copy
import csv
import io
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select

from connector.clock import Clock
from connector.scim.schema import Urn
from connector.store import users as user_rows
from connector.store.database import Store
from connector.store.models import UserRow
from mappings.vocabulary import CertKind

_WHO = {
    "username": "user",
    "user_name": "user",
    "user": "user",
    "employeenumber": "employee",
    "employee_number": "employee",
    "employee_id": "employee",
    "employeeid": "employee",
}
_DATE = {"completed_on", "completedon", "completion_date", "completiondate", "date"}
KINDS = tuple(kind.value for kind in CertKind)
MAX_FIELD = 512


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    unchanged: int = 0
    users_changed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    line: int
    who: str
    by: str  # "user" | "employee"
    course: str
    kind: str
    completed_on: str


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        key = name.strip().lower()
        if key in _WHO and "who" not in found:
            found["who"] = index
            found["by_employee"] = int(_WHO[key] == "employee")
        elif key == "course":
            found["course"] = index
        elif key == "kind":
            found["kind"] = index
        elif key in _DATE:
            found["date"] = index
    missing = [c for c in ("who", "course", "kind", "date") if c not in found]
    if missing:
        raise ValueError(
            f"line 1: the header lacks column(s) for {', '.join(missing)} "
            "(expected userName or employeeNumber, course, kind, completed_on)"
        )
    return found


def parse(text: str, report: ImportReport) -> list[_Row]:
    """Rows of the export; bad ones are reported with their line number."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError("the file is empty") from None
    cols = _columns(header)
    rows = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        report.rows += 1
        try:
            rows.append(_row(line, values, cols))
        except ValueError as exc:
            report.errors.append(f"line {line}: {exc}")
    return rows


def _row(line: int, values: list[str], cols: dict[str, int]) -> _Row:
    if len(values) <= max(cols["who"], cols["course"], cols["kind"], cols["date"]):
        raise ValueError("too few columns")
    who, course = values[cols["who"]].strip(), values[cols["course"]].strip()
    kind, when = values[cols["kind"]].strip().lower(), values[cols["date"]].strip()
    if not who:
        raise ValueError("no user")
    if not course or len(course) > MAX_FIELD:
        raise ValueError("no course name" if not course else "course name too long")
    if kind not in KINDS:
        raise ValueError(f"kind must be {' or '.join(map(repr, KINDS))}, not {kind!r}")
    try:
        day = date.fromisoformat(when)
    except ValueError:
        raise ValueError(f"completion date {when!r} is not YYYY-MM-DD") from None
    if len(when) != 10:
        raise ValueError(f"completion date {when!r} is not YYYY-MM-DD")
    return _Row(line, who, "employee" if cols["by_employee"] else "user", course, kind, day.isoformat())


def import_certifications(store: Store, text: str, clock: Clock) -> ImportReport:
    """:param clock: stamps the changed users' ``meta.lastModified`` and journal events."""
    report = ImportReport()
    rows = parse(text, report)
    now = clock.now()
    with store.session_write() as session:
        users = _users(session, rows)
        changed: dict[str, dict] = {}
        for row in rows:
            user = users.get((row.by, row.who.lower()))
            if user is None:
                what = "employee number" if row.by == "employee" else "userName"
                report.errors.append(f"line {row.line}: no user with {what} {row.who!r}")
                continue
            if isinstance(user, str):
                report.errors.append(f"line {row.line}: {user}")
                continue
            data = changed.get(user.id) or copy.deepcopy(user.data)
            ext = data.setdefault(Urn.WALKIN.value, {})
            certs = ext.setdefault("certifications", [])
            entry = {"course": row.course, "kind": row.kind, "completedOn": row.completed_on}
            if any(_same(c, entry) for c in certs):
                report.unchanged += 1
                continue
            certs.append(entry)
            changed[user.id] = data
            report.added += 1
        for user_id, data in changed.items():
            if Urn.WALKIN.value not in data["schemas"]:
                data["schemas"] = data["schemas"] + [Urn.WALKIN.value]
            user_rows.replace_user(
                session.connection(), users[("id", user_id)], data, now, key=store.person_key, source="import"
            )
        report.users_changed = len(changed)
    report.errors.sort(key=lambda e: int(e.split(" ", 2)[1].rstrip(":")))
    return report


def _same(a: dict, b: dict) -> bool:
    return (str(a.get("course", "")).lower(), str(a.get("kind", "")).lower(), a.get("completedOn")) == (
        b["course"].lower(),
        b["kind"],
        b["completedOn"],
    )


def _users(session, rows: list[_Row]) -> dict:
    """(by, lower-cased key) → UserRow, or a message when the key is ambiguous."""
    out: dict = {}
    names = sorted({r.who.lower() for r in rows if r.by == "user"})
    numbers = sorted({r.who.lower() for r in rows if r.by == "employee"})
    for i in range(0, len(names), 500):
        for user in session.scalars(select(UserRow).where(UserRow.user_name.in_(names[i : i + 500])).with_for_update()):
            out[("user", user.user_name)] = user
            out[("id", user.id)] = user
    for i in range(0, len(numbers), 500):
        for user in session.scalars(
            select(UserRow).where(UserRow.employee_number.in_(numbers[i : i + 500])).with_for_update()
        ):
            key = ("employee", user.employee_number)
            out[key] = f"employee number {user.employee_number!r} belongs to several users" if key in out else user
            out[("id", user.id)] = user
    return out
