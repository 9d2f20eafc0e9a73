"""Finding people in the store by what staff know of them.

Two ways, for two kinds of caller:

- :func:`find_person` / :func:`one_person`: the person a value names *exactly* — their
  id, their userName (in any case) or their externalId. A command, an API call or an
  audit filter acts on one person, so a value naming several is refused
  (:class:`AmbiguousUser`), never guessed.
- :func:`search`: the people a help-desk analyst's or a principal's search box
  finds — by the start of the userName, display name, given or family name ("jane
  smi" and "smith, j" too), primary or any email address, or employee number, and
  exactly by id or externalId — within the searcher's locations, in userName order,
  a page at a time.

Both compare the lower-cased columns the store keeps for SCIM's case-insensitive
attributes (connector/store/models.py), with ``LIKE 'prefix%'`` on their indexes:
SQLite's (``case_sensitive_like`` is on, connector/store/engine.py) and, on
PostgreSQL, the ``text_pattern_ops`` indexes of migration 0012, which serve a prefix
under any database collation.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from connector.scim.schema import Urn
from connector.store.models import DecisionRow, UserEmailRow, UserRow

MAX_QUERY = 256
"""Characters of a search or a name that are read; no stored name is longer than the
store's indexed columns (512), and nobody types more."""
_ENTERPRISE = Urn.ENTERPRISE.value
PAGE = 25
"""People a search returns at most; the rest are counted as ``more``."""


@dataclass(frozen=True)
class Candidate:
    """A person a ``--user`` value names."""

    id: str
    user_name: str | None
    external_id: str | None


class AmbiguousUser(ValueError):
    """A ``--user`` value names more than one person (one's id, another's userName or
    externalId); acting on one of them would be a guess."""

    def __init__(self, user: str, candidates: list[Candidate]) -> None:
        self.user, self.candidates = user, candidates
        lines = [f"  id {c.id}  userName {c.user_name or '-'}  externalId {c.external_id or '-'}" for c in candidates]
        super().__init__(
            "\n".join(
                [f"'{user}' names {len(candidates)} users (by id, userName or externalId); give the id of one:", *lines]
            )
        )


def searchable(text: str) -> bool:
    """Whether ``text`` could name anybody: no stored name holds a control character
    (and PostgreSQL cannot compare a NUL), nor is longer than :data:`MAX_QUERY`."""
    return 0 < len(text) <= MAX_QUERY and not any(ord(c) < 32 or ord(c) == 127 for c in text)


def find_person(session: Session, user: str) -> list[Candidate]:
    """Every person ``user`` names, ordered by id: the id (exact), the userName (in
    any case) or the externalId (exact, as the SCIM service compares it)."""
    if not searchable(user):
        return []
    # The store keeps userName folded with str.lower() (connector/store/users.py
    # columns()), so the same folding finds it; casefold() would match names the
    # uniqueness index holds apart ("straße" and "strasse").
    rows = session.execute(
        select(UserRow.id, UserRow.data, UserRow.external_id)
        .where(
            or_(UserRow.id == user, UserRow.user_name == user.lower(), UserRow.external_id == user),
        )
        .order_by(UserRow.id)
    )
    return [Candidate(person_id, data.get("userName"), external_id) for person_id, data, external_id in rows]


def one_person(session: Session, user: str) -> str | None:
    """The id of the one person ``user`` names, or None when it names nobody.

    :raises AmbiguousUser: when it names more than one.
    """
    found = find_person(session, user)
    if len(found) > 1:
        raise AmbiguousUser(user, found)
    return found[0].id if found else None


@dataclass(frozen=True)
class Found:
    """A person a search found, with what a result list shows of them."""

    id: str
    user_name: str
    display_name: str | None
    """The displayName; else the name's formatted form, or its given and family names."""
    employee_number: str | None
    email: str | None
    location: str | None
    """Their location as last decided (None: not decided yet)."""


@dataclass(frozen=True)
class Search:
    people: list[Found]
    more: bool
    """More people match than were returned: type more of the name."""


def _prefix(column, text: str) -> ColumnElement[bool]:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


def _order() -> ColumnElement:
    # By an expression, not the userName column: SQLite, which plans a bound LIKE
    # without knowing its prefix, would otherwise walk the userName index in order
    # and test every row (107 ms at 100,000 people for a name only one holds); so it
    # finds the matches by the terms' indexes and sorts them (0.5 ms; 73 ms for a
    # name everyone holds).
    return UserRow.user_name.concat("")


def _matches(text: str, by_email: list[str]) -> ColumnElement[bool]:
    """:param by_email: the people an email address of theirs matches (an id list, not a
    subquery: each term of the OR then has an index, and PostgreSQL combines them
    rather than scanning every user)."""
    lowered = " ".join(text.lower().split())
    u = UserRow
    terms: list[ColumnElement[bool]] = [
        u.id == text,
        u.external_id == text,
        _prefix(u.user_name, lowered),
        _prefix(u.display_name, lowered),
        _prefix(u.name_given, lowered),
        _prefix(u.name_family, lowered),
        _prefix(u.employee_number, lowered),
        u.id.in_(by_email),
    ]
    # "jane smi", "smith jane", "smith, j": given and family name, each way round.
    first, _, rest = lowered.replace(",", " ").partition(" ")
    rest = rest.strip()
    if first and rest:
        # Each pair is found by the family name's index; the given name, which a
        # district's people share far more often, only filters (``|| ''`` keeps the
        # planner off its index, which SQLite, without statistics, might pick).
        given = u.name_given.concat("")
        terms.append(and_(_prefix(given, first), _prefix(u.name_family, rest)))
        terms.append(and_(_prefix(u.name_family, first), _prefix(given, rest)))
    return or_(*terms)


def _named(name: object) -> str | None:
    if not isinstance(name, dict):
        return None
    if isinstance(name.get("formatted"), str):
        return name["formatted"]
    parts = [name.get(k) for k in ("givenName", "familyName")]
    return " ".join(p for p in parts if isinstance(p, str)) or None


def search(
    session: Session,
    text: str,
    *,
    locations: frozenset[str] | None = None,
    entitlement: str = "walkin",
    limit: int = PAGE,
) -> Search:
    """The people ``text`` finds (see the module's docstring), in userName order.

    :param locations: a searcher's scope (an approver's locations): only people whose
        last decision for ``entitlement`` places them there. None: everyone.
    """
    text = text.strip()
    if not searchable(text):
        return Search([], False)
    # First the page's ids (only the columns the match, the scope and the order
    # need: a name everyone shares matches most of a district), then what the list
    # shows of the page's people.
    d = DecisionRow

    def scoped(stmt):
        if locations is None:
            return stmt
        return stmt.join(d, and_(d.person_id == UserRow.id, d.entitlement == entitlement)).where(
            d.location.in_(sorted(locations))
        )

    # The email matches that could be on the page: the first ones in the page's order.
    lowered = " ".join(text.lower().split())
    by_email = session.scalars(
        scoped(
            select(UserRow.id)
            .join(UserEmailRow, UserEmailRow.user_id == UserRow.id)
            .where(_prefix(UserEmailRow.value, lowered))
        )
        .order_by(_order())
        .limit(limit + 1)
    ).all()
    page = scoped(select(UserRow.id).where(_matches(text, list(by_email))))
    ids = list(session.scalars(page.order_by(_order()).limit(limit + 1)))
    shown = ids[:limit]
    if not shown:
        return Search([], False)
    primary = (
        select(UserEmailRow.value)
        .where(UserEmailRow.user_id == UserRow.id)
        .order_by(UserEmailRow.primary.is_(True).desc(), UserEmailRow.id)
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            UserRow.id,
            UserRow.data["userName"].as_string(),
            UserRow.data["displayName"].as_string(),
            UserRow.data["name"],
            UserRow.data[(_ENTERPRISE, "employeeNumber")].as_string(),
            primary,
            d.location,
        )
        .outerjoin(d, and_(d.person_id == UserRow.id, d.entitlement == entitlement))
        .where(UserRow.id.in_(shown))
    ).all()
    by_id = {row[0]: row for row in rows}
    people = []
    for person_id in shown:  # in the page's order
        _id, user, display, name, *rest = by_id[person_id]
        people.append(Found(person_id, user, display or _named(name), *rest))
    return Search(people, len(ids) > limit)


__all__ = ["AmbiguousUser", "Candidate", "Found", "Search", "find_person", "one_person", "search", "searchable"]
