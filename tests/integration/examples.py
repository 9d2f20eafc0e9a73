"""The worked examples of the access policy (§8) as stored SCIM people, so the
store-backed commands (``walkin explain``, ``walkin sync``) can be run on them. The
data is the demo's (connector/demo.py): one copy."""

from __future__ import annotations

from connector.demo import A_CERTS, B_CERTS, COURSE, EXPECTED, PEOPLE, WALKIN, user_name
from connector.demo import load as _load
from tests.conftest import AUTH

__all__ = ["A_CERTS", "B_CERTS", "COURSE", "EXPECTED", "PEOPLE", "WALKIN", "load", "user_name"]


def load(client, store) -> dict[str, str]:
    """Create the §8 people, their approval-group memberships (dated) and losses."""
    return _load(client, store, AUTH)
