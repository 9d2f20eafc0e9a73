"""Each user's person key in the store: written with every insert and replace, unique,
and folded again for everyone when the configured attribute or the folding changes.

``sync.person_key`` names the SCIM attribute the sync finds a person's directory entry
by (userName by default). The store keeps its value folded as the directory compares
it (:func:`connector.store.keys.fold_key`) in ``scim_user.person_key``, under a unique
index: a second user whose key folds to the same value is refused by the database
(409 ``uniqueness`` naming the attribute), so two concurrent creates cannot both win.

Which attribute and which folding the column holds is recorded in ``store_setting``.
A process that migrates the store with another ``sync.person_key`` (or on a Python
whose Unicode tables differ) folds every user's key again (:func:`align`). Keys that
then collide — only data stored before the rule existed, or under another attribute,
can — are left empty (NULL) for every user sharing them, so none of them resolves to a
directory entry, and one warning per collision names them all; their cached directory
entries are dropped, so no run acts on an entry for them either. Renaming or deleting
all but one of them gives the remaining one its key back at the next start-up.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection

from connector.scim.schema import Type
from mappings.scim import CORE_USER, AttributePath, check_path, parse_path

from .keys import FOLDING, fold_key
from .models import INDEXED_MAX

log = logging.getLogger(__name__)

DEFAULT = "userName"
"""The person key of a store whose processes configure none (``sync.person_key``'s default)."""

# Plain table descriptions, not the models: migration 0004 runs this code, and must
# not depend on columns later revisions add.
_USERS = sa.table(
    "scim_user", sa.column("id", sa.String), sa.column("data", sa.JSON), sa.column("person_key", sa.String)
)
_ENTRIES = sa.table("directory_entry", sa.column("person_id", sa.String))
_SETTINGS = sa.table("store_setting", sa.column("name", sa.String), sa.column("value", sa.Text))
_CHUNK = 500


def key_path(text: str) -> AttributePath:
    """The checked path of a ``sync.person_key`` setting.

    :raises ValueError: not a single-valued string attribute of the User schemas.
    """
    check_path(text, Type.STRING)
    return parse_path(text)


def raw_key(user_id: str, data: dict, path: AttributePath) -> object:
    """The value at ``path`` in a stored User (its ``id`` is not part of ``data``)."""
    if path.schema == CORE_USER and path.attribute == "id":
        return user_id
    return path.read(data)


def key_of(user_id: str, data: dict, path: AttributePath) -> str | None:
    """The folded person key of a stored User; None when it has no (non-blank) value."""
    value = raw_key(user_id, data, path)
    if not isinstance(value, str):
        return None
    return fold_key(value) or None


def collision_detail(path: AttributePath, value: object) -> str:
    """The 409 detail of a write whose person key another user's already folds to."""
    return (
        f"{path} {value!r} collides with an existing user's {path} once folded as the directory "
        "compares it (case, spaces, Unicode)"
    )


class Refill(NamedTuple):
    """What :func:`refill` did."""

    changed: int
    """Users whose stored key changed (to another value or to none)."""
    collisions: list[list[str]]
    """The ids of the users of each key several users fold to (left without one)."""


def recorded(conn: Connection) -> dict[str, str]:
    """What the store's derived columns were computed with (``store_setting``)."""
    return dict(conn.execute(sa.select(_SETTINGS.c.name, _SETTINGS.c.value)).all())


def recorded_path(conn: Connection) -> AttributePath:
    """The person key attribute the column holds (:data:`DEFAULT` when none is recorded)."""
    return key_path(recorded(conn).get("person_key", DEFAULT))


def align(conn: Connection, path: AttributePath) -> Refill | None:
    """Make ``scim_user.person_key`` hold ``path``'s folded values (in the caller's
    transaction): every key folded again when another attribute or folding was
    recorded (or none), else only the empty keys looked at again (:func:`repair`).

    :returns: what was done, or None when nothing was to do.
    """
    wanted = {"person_key": str(path), "person_key_folding": FOLDING}
    before = recorded(conn)
    just_filled = conn.info.pop(_FILLED, None)
    if all(before.get(name) == value for name, value in wanted.items()):
        # Not right after the migration that filled the column: it warned already.
        return None if just_filled == str(path) else repair(conn, path)
    done = refill(conn, path)
    conn.execute(sa.delete(_SETTINGS).where(_SETTINGS.c.name.in_(list(wanted))))
    conn.execute(sa.insert(_SETTINGS), [{"name": n, "value": v} for n, v in wanted.items()])
    conn.info[_FILLED] = str(path)
    log.info(
        "person keys: %s folded again for every user (was %s, %s): %d changed, %d collisions",
        path,
        before.get("person_key", "none recorded"),
        before.get("person_key_folding", "no folding"),
        done.changed,
        len(done.collisions),
    )
    return done


_FILLED = "walkin.person_keys_filled"  # on the connection: what align() just filled the column with


def after_upgrade(conn: Connection, path: AttributePath | None) -> AttributePath:
    """The store's migration step (after Alembic's upgrade): :func:`align` the column
    with ``path`` when a process configures one.

    :returns: the attribute the column now holds (the recorded one when ``path`` is None).
    """
    if path is None:
        conn.info.pop(_FILLED, None)
        return recorded_path(conn)
    align(conn, path)
    return path


def refill(conn: Connection, path: AttributePath) -> Refill:
    """Compute every user's person key from the stored data, leaving colliding keys
    empty (one warning per collision), and drop the cached directory entries of users
    whose key changed or collides. Never raises on a collision."""
    rows = conn.execute(sa.select(_USERS.c.id, _USERS.c.data, _USERS.c.person_key)).all()
    names = {user_id: (data or {}).get("userName") for user_id, data, _ in rows}
    old: dict[str, str | None] = {user_id: stored for user_id, _, stored in rows}
    holders = _holders(path, [(user_id, data) for user_id, data, _ in rows], names)
    new: dict[str, str | None] = dict.fromkeys(old)
    collisions = []
    for key, ids in holders.items():
        if len(ids) == 1:
            new[ids[0]] = key
        else:
            collisions.append(_collision(path, key, ids, names))
    changed = [i for i in old if new[i] != old[i]]
    collided = {i for ids in collisions for i in ids}
    # Empty the changing keys first, so a key moving from one user to another never
    # meets itself in the unique index.
    emptied = [i for i in changed if old[i] is not None]
    for start in range(0, len(emptied), _CHUNK):
        conn.execute(sa.update(_USERS).where(_USERS.c.id.in_(emptied[start : start + _CHUNK])).values(person_key=None))
    _fill(conn, [(i, new_key) for i in changed if (new_key := new[i]) is not None])
    # A cached entry was found by the old key: for a user whose key changed or who has
    # none now, a run must not act on it (the cache is only a cache: losing it costs a search).
    stale = sorted(set(emptied) | collided)
    for start in range(0, len(stale), _CHUNK):
        conn.execute(sa.delete(_ENTRIES).where(_ENTRIES.c.person_id.in_(stale[start : start + _CHUNK])))
    return Refill(len(changed), collisions)


def repair(conn: Connection, path: AttributePath) -> Refill | None:
    """Give back their key to users whose key a collision left empty and which is now
    theirs alone (the others renamed or deleted); warn again about the collisions left.

    Reads only the users without a key: at every start-up, for a userName key, the
    few left by collisions.
    """
    rows = conn.execute(sa.select(_USERS.c.id, _USERS.c.data).where(_USERS.c.person_key.is_(None))).all()
    names = {user_id: (data or {}).get("userName") for user_id, data in rows}
    holders = _holders(path, rows, names)
    if not holders:
        return None
    keys = list(holders)
    held: dict[str, str] = {}  # key → the user holding it (created since, with the key the others left)
    for start in range(0, len(keys), _CHUNK):
        taken = sa.select(_USERS.c.person_key, _USERS.c.id, _USERS.c.data).where(
            _USERS.c.person_key.in_(keys[start : start + _CHUNK])
        )
        for key, user_id, data in conn.execute(taken):
            held[key] = user_id
            names[user_id] = (data or {}).get("userName")
    filled, collisions = [], []
    for key, ids in holders.items():
        if len(ids) == 1 and key not in held:
            filled.append((ids[0], key))
            log.info("person key %s: user %r (id %s) has its key %r back", path, names[ids[0]], ids[0], key)
        else:
            collisions.append(_collision(path, key, ids, names, held.get(key)))
    _fill(conn, filled)
    return Refill(len(filled), collisions)


def _holders(path: AttributePath, rows, names: dict[str, object]) -> dict[str, list[str]]:
    """Folded key → the ids of the users (of ``rows``: ``(id, data)``) holding it."""
    holders: dict[str, list[str]] = defaultdict(list)
    for user_id, data in rows:
        key = key_of(user_id, data or {}, path)
        if key is not None and len(key) > INDEXED_MAX:
            log.warning(
                "person key %s of user %r (id %s) is longer than %d characters once folded; "
                "it is left empty, so the user resolves to no directory entry",
                path,
                names[user_id],
                user_id,
                INDEXED_MAX,
            )
            continue
        if key is not None:
            holders[key].append(user_id)
    return holders


def _collision(
    path: AttributePath, key: str, ids: list[str], names: dict[str, object], holder: str | None = None
) -> list[str]:
    """Warn (one line) about users sharing a folded key; their ids, sorted (``holder``
    included: the one user keeping the key, if any)."""
    ids = sorted(ids)
    users = ", ".join(f"{names[i]!r} (id {i})" for i in ids)
    if holder is None:
        log.warning(
            "person key %s: users %s fold to the same key %r; none of them keeps it, so none resolves "
            "to a directory entry until all but one are renamed or deleted",
            path,
            users,
            key,
        )
        return ids
    log.warning(
        "person key %s: users %s fold to the key %r of user %r (id %s); they keep none, so they resolve "
        "to no directory entry until they are renamed or deleted",
        path,
        users,
        key,
        names[holder],
        holder,
    )
    return sorted([*ids, holder])


def _fill(conn: Connection, keys: list[tuple[str, str]]) -> None:
    if keys:
        conn.execute(
            sa.update(_USERS).where(_USERS.c.id == sa.bindparam("b_id")),
            [{"b_id": user_id, "person_key": key} for user_id, key in keys],
        )
