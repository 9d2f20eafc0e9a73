"""Every hostile request of test_hostile.py in a row, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.conftest import AUTH
from tests.connector.test_hostile import ALL_TABLES, LEAKS, send, world  # noqa: F401 - world is a fixture


def test_the_whole_barrage_leaves_the_world_unchanged(client, store, world):  # noqa: F811 - the fixture
    """Every hostile request in a row against one store: no 5xx, no traceback, no
    unexpected status, and afterwards the users and groups created at the start
    are exactly as they were (same representation, same meta.version)."""
    server_errors, leaks, unexpected = [], [], []
    for param in ALL_TABLES:
        method, path, headers, body, status, _scim_type = param.values
        response = send(client, world, method, path, headers, body)
        text = response.get_data(as_text=True)
        if response.status_code >= 500:
            server_errors.append(f"{param.id}: {response.status_code}")
        elif response.status_code not in (status if isinstance(status, tuple) else (status,)):
            unexpected.append(f"{param.id}: {response.status_code}")
        if any(p.search(text) for p in LEAKS):
            leaks.append(param.id)
    changed = []
    for path, before in world.snapshots.items():
        after = client.get(path, headers=AUTH)
        if after.status_code != 200 or after.get_json() != before:
            changed.append(f"{path} (version {before['meta']['version']} -> "
                           f"{(after.get_json() or {}).get('meta', {}).get('version')})")
    assert not (server_errors or leaks or unexpected or changed), (
        f"5xx: {server_errors}\nleaks: {leaks}\nunexpected status: {unexpected}\nchanged: {changed}")
