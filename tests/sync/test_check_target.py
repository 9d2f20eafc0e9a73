"""``walkin check-target`` on the Entra target (against the Graph fake) and on slapd."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from connector.cli import main
from mappings.model import DEFAULT_MAPPING_PATH

from .graph_fake import ROOT, TENANT, serve_graph


def mapping_file(tmp_path, *, entra: str | None = None, ldap: str | None = None) -> str:
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["directory_group"] = {"entra_group_id": entra, "ldap_group_dn": ldap}
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def entra_env(monkeypatch, mapping: str) -> None:
    for key, value in {"WALKIN_SYNC__TARGET": "entra", "WALKIN_MAPPING_PATH": mapping,
                       "WALKIN_GRAPH__TENANT_ID": TENANT, "WALKIN_GRAPH__CLIENT_ID": "walkin-app",
                       "WALKIN_GRAPH__CLIENT_SECRET": "not-a-secret", "WALKIN_GRAPH__GRAPH_URL": ROOT}.items():
        monkeypatch.setenv(key, value)


def test_entra_group_is_read(tmp_path, monkeypatch):
    """A token is acquired and the group read: its size and first members are printed."""
    with serve_graph() as env:
        members = sorted(env.fake.add_user(f"u{i}@d.org") for i in range(8))
        group = env.fake.add_group(set(members))
        entra_env(monkeypatch, mapping_file(tmp_path, entra=group))
        result = CliRunner().invoke(main, ["check-target", "--show", "3"])
    assert result.exit_code == 0, result.output
    assert f"target entra: tenant {TENANT}, client walkin-app (client secret), {ROOT}" in result.output
    assert "signed in: access token acquired" in result.output
    assert f"walkin: {group}: 8 members: {members[0]}, {members[1]}, {members[2]}, …" in result.output
    assert "elementary_scheduling: no entra group in the mapping (skipped)" in result.output
    assert "not-a-secret" not in result.output


def test_entra_missing_group_and_refused_credentials(tmp_path, monkeypatch):
    """A group Graph does not know, then a refused secret: exactly what failed, exit 1."""
    missing = "0d7c9a4e-1b2f-4e8d-9a6c-3f5b7e1d2c4a"
    entra_env(monkeypatch, mapping_file(tmp_path, entra=missing))
    with serve_graph():
        result = CliRunner().invoke(main, ["check-target", "--entitlement", "walkin"])
    assert result.exit_code == 1
    assert f"walkin: {missing}: FAILED (GroupNotFound): {missing}: 404 Request_ResourceNotFound" in result.output
    refusal = (401, {"error": "unauthorized_client", "error_description": "AADSTS700016: Application not found."})
    with serve_graph(token_reply=lambda: refusal):
        result = CliRunner().invoke(main, ["check-target"])
    assert result.exit_code == 1
    assert "sign-in FAILED (TargetAuthError): unauthorized_client: AADSTS700016: Application not found." in result.output


def test_entra_without_settings(tmp_path, monkeypatch):
    """sync.target=entra with no Graph settings says which settings are missing."""
    monkeypatch.setenv("WALKIN_SYNC__TARGET", "entra")
    monkeypatch.setenv("WALKIN_MAPPING_PATH", mapping_file(tmp_path, entra="0d7c9a4e-1b2f-4e8d-9a6c-3f5b7e1d2c4a"))
    result = CliRunner().invoke(main, ["check-target"])
    assert result.exit_code == 1 and "WALKIN_GRAPH__TENANT_ID" in result.output


def test_ldap_group_is_read(tmp_path, monkeypatch, slapd, ldap_settings):
    """On the LDAP target the group is read through the same command."""
    members = [slapd.add_person(f"c{i}") for i in range(3)]
    slapd.set_members([slapd.placeholder_dn, *members])
    for key, value in {"WALKIN_SYNC__TARGET": "ldap", "WALKIN_MAPPING_PATH": mapping_file(tmp_path, ldap=slapd.group_dn),
                       "WALKIN_LDAP__URLS": json.dumps(ldap_settings.urls), "WALKIN_LDAP__BIND_DN": ldap_settings.bind_dn,
                       "WALKIN_LDAP__BIND_PASSWORD": ldap_settings.bind_password.get_secret_value(),
                       "WALKIN_LDAP__PEOPLE_BASE": ldap_settings.people_base,
                       "WALKIN_LDAP__PLACEHOLDER_MEMBER": ldap_settings.placeholder_member}.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["check-target"])
    assert result.exit_code == 0, result.output
    assert f"target ldap: {ldap_settings.urls[0]} as {ldap_settings.bind_dn}" in result.output
    assert f"walkin: {slapd.group_dn}: 3 members: " in result.output


@pytest.mark.parametrize("target", ["ldap", "memory"])
def test_no_group_in_the_mapping(tmp_path, monkeypatch, target, ldap_settings):
    """Nothing to read is a failure too: the mapping names no group for this target."""
    monkeypatch.setenv("WALKIN_SYNC__TARGET", target)
    monkeypatch.setenv("WALKIN_MAPPING_PATH", mapping_file(tmp_path))
    monkeypatch.setenv("WALKIN_LDAP__URLS", json.dumps(ldap_settings.urls))
    monkeypatch.setenv("WALKIN_LDAP__PEOPLE_BASE", ldap_settings.people_base)
    result = CliRunner().invoke(main, ["check-target"])
    assert result.exit_code == 1 and f"the mapping names no {target} group" in result.output
