"""scim2-tester's conformance checks over the app: every check must succeed."""

from __future__ import annotations

import pytest
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from tests.conftest import AUTH

CERTS = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User:certifications"


@pytest.fixture
def scim_client(app):
    client = WSGISCIMClient(app, base_url="http://localhost/scim/v2", headers=AUTH)
    client.discover()
    return client


def _tester_defect(result) -> bool:
    """scim2-tester 0.5 adds a whole extension object (with a certification) and
    then adds ``…:certifications`` to the same resource, expecting only the second
    value back. RFC 7644 §3.5.2.1 says "If the target location specifies a
    multi-valued attribute, a new value is added to the attribute", so the server
    must answer with both. Only that exact case is excused, and only when the
    answer is the RFC's: the earlier value followed by the added one."""
    data = result.data or {}
    if result.title != "check_add_attribute" or data.get("urn") != CERTS:
        return False
    expected, actual = data.get("expected"), data.get("modify_actual") or data.get("actual")
    return bool(expected) and bool(actual) and len(actual) == len(expected) + 1 and actual[-1] == expected[-1]


def test_every_scim2_tester_check_succeeds(scim_client):
    """check_server runs discovery, CRUD, query attributes and PATCH checks."""
    results = check_server(scim_client)
    assert len(results) > 100, "scim2-tester ran fewer checks than expected"
    excused = [r for r in results if r.status is not Status.SUCCESS and _tester_defect(r)]
    failures = [f"{r.title}: {r.reason}" for r in results if r.status is not Status.SUCCESS and r not in excused]
    assert not failures, "\n".join(failures)
    assert len(excused) <= 1
