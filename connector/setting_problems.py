"""A bad setting, mapping file or store, told in one line for the command line.

Every ``walkin`` command builds its settings, mapping and store first; a mistake in
any of them reaches the operator as one line naming the environment variable (or the
mapping key, or the store) and the problem — never a traceback. Values are shown
truncated, and never for secrets.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

PREFIX = "WALKIN_"
SHOWN = 60  # characters of a bad value shown at most
_SECRET_WORDS = ("password", "secret", "token", "key")
_MOST = 3  # problems named in the line; the rest are counted


def variable(location: tuple) -> str:
    """The environment variable of a settings field: ``("sync", "lock_wait_seconds")``
    → ``WALKIN_SYNC__LOCK_WAIT_SECONDS`` (list positions are dropped: the variable
    holds the whole list)."""
    return PREFIX + "__".join(str(part).upper() for part in location if not isinstance(part, int))


def shown(value: object, location: tuple = ()) -> str:
    """``value`` as the line shows it: truncated, or hidden for a secret (and a
    URL's password masked)."""
    if any(word in str(part).lower() for part in location for word in _SECRET_WORDS):
        return "(hidden)"
    text = repr(value) if not isinstance(value, str) else repr(value[: SHOWN + 1])
    text = _CREDENTIALS.sub(r"\1***@", text)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


_CREDENTIALS = re.compile(r"(://[^:/@\s'\"]*:)[^@\s'\"]*@")


def settings_line(error: ValidationError) -> str:
    """One line for invalid settings: each problem as ``VARIABLE: message (got …)``."""
    parts = []
    for problem in error.errors(include_url=False):
        location = tuple(problem.get("loc", ()))
        message = problem.get("msg", "invalid").removeprefix("Value error, ")
        given = problem.get("input")
        told = problem.get("type") == "missing" or isinstance(given, dict) or str(given) in message  # (a path named)
        got = "" if told else f" (got {shown(given, location)})"
        parts.append(f"{variable(location)}: {message}{got}")
    return "invalid settings: " + _joined(parts)


def source_line(error: Exception) -> str:
    """One line for a variable pydantic-settings could not even parse (a list or
    object that is not JSON)."""
    field = re.search(r'field "(\w+)"', str(error))
    name = variable((field.group(1),)) if field else PREFIX + "…"
    cause = f" ({error.__cause__})" if error.__cause__ else ""
    return (
        f"invalid settings: {name}…: a value is not valid JSON{cause}; lists and objects are given as JSON, "
        f"e.g. WALKIN_LDAP__URLS='[\"ldaps://dc1.example.org\"]'"
    )


def mapping_line(problems: list[str], source: str | None) -> str:
    """One line for an unusable mapping file (its problems name their key paths)."""
    return f"mapping {source or ''}: ".replace(" :", ":") + _joined(problems)


def _joined(parts: list[str]) -> str:
    head = "; ".join(" ".join(p.split()) for p in parts[:_MOST])  # one line, whatever the messages hold
    return head + (f" (and {len(parts) - _MOST} more)" if len(parts) > _MOST else "")
