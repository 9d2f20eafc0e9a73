"""End-to-end fixtures: the SCIM app, a real slapd and the sync worker, sharing one store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from mappings.model import DEFAULT_MAPPING_PATH
from sync.targets import ldap3_import  # noqa: F401
from tests.sync.conftest import no_sleep, slapd, slapd_server, slapd_settings  # noqa: F401 - fixtures

NOON = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


@pytest.fixture
def mapping_file(tmp_path, slapd):  # noqa: F811 - the fixture above
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    data["entitlements"]["walkin"]["directory_group"]["ldap_group_dn"] = slapd.group_dn
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def sync_settings(settings, slapd, mapping_file):  # noqa: F811
    settings.mapping_path = mapping_file
    settings.sync.target = "ldap"
    settings.sync.poll_seconds = 0.05
    settings.ldap = slapd_settings(slapd)
    return settings
