"""Every setting's mistake is one clear line naming the variable and the problem,
never a traceback, for every command (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.store.database import Store

LDAP = {"WALKIN_SYNC__TARGET": "ldap", "WALKIN_LDAP__PEOPLE_BASE": "ou=people,dc=example,dc=org"}

CASES = [
    ({"WALKIN_DATABASE_URL": "notaurl"}, "WALKIN_DATABASE_URL: not a database URL"),
    ({"WALKIN_DATABASE_URL": "sqlite:////nonexistent/dir/x.db"},
     "WALKIN_DATABASE_URL: the folder /nonexistent/dir of the SQLite file does not exist"),
    ({"WALKIN_DATABASE_URL": "mysql://admin:hunter2@db/walkin"},
     "WALKIN_DATABASE_URL: the store is SQLite or PostgreSQL, not mysql (got 'mysql://admin:***@db/walkin')"),
    ({**LDAP, "WALKIN_LDAP__URLS": '["ldap://[::1"]'}, "WALKIN_LDAP__URLS: 'ldap://[::1' is not a valid URL"),
    ({**LDAP, "WALKIN_LDAP__URLS": '["ldap://dc1:99999"]'}, "Port out of range"),
    ({**LDAP, "WALKIN_LDAP__URLS": "ldap://dc1"}, "WALKIN_LDAP…: a value is not valid JSON"),
    ({"WALKIN_SYNC__LOCK_LEASE_SECONDS": "soon"}, "WALKIN_SYNC__LOCK_LEASE_SECONDS: Input should be a valid number"),
    ({"WALKIN_SCIM__MAX_PAGE_SIZE": "0"}, "WALKIN_SCIM__MAX_PAGE_SIZE: Input should be greater than or equal to 1"),
    ({"WALKIN_SYNC__TARGET": "ldap", "WALKIN_LDAP__URLS": '["ldap://dc1"]'}, "WALKIN_LDAP__PEOPLE_BASE: Field required"),
    ({**LDAP, "WALKIN_LDAP__URLS": '["ldap://dc1"]', "WALKIN_LDAP__BIND_PASSWORD": "hunter2"},
     "WALKIN_LDAP: bind_password is set but bind_dn is not"),
    ({"WALKIN_MAPPING_PATH": "/nonexistent/walkin.yaml"}, "mapping /nonexistent/walkin.yaml: cannot read"),
    ({"WALKIN_AUDIT__SIGNING_KEY_PATH": "/nonexistent/audit.pem", "WALKIN_AUDIT__CHECKPOINT_DIR": "/"},
     "invalid settings: WALKIN_AUDIT__SIGNING_KEY_PATH: cannot read /nonexistent/audit.pem: No such file or directory"),
    ({"WALKIN_AUDIT__SIGNING_KEY_PATH": "/etc/hostname", "WALKIN_AUDIT__CHECKPOINT_DIR": "/"},
     "WALKIN_AUDIT__SIGNING_KEY_PATH: /etc/hostname is not an Ed25519 private key"),
    ({"WALKIN_AUDIT__CHECKPOINT_DIR": "/nonexistent/checkpoints"},
     "WALKIN_AUDIT__CHECKPOINT_DIR: /nonexistent/checkpoints is not a folder"),
]


@pytest.fixture
def environment(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("WALKIN_")]:
        monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'walkin.db'}"
    Store(url).dispose()  # a store at head: what is wrong is the setting under test
    monkeypatch.setenv("WALKIN_DATABASE_URL", url)
    return monkeypatch


COMMANDS = [["audit"], ["sync", "--dry-run"], ["sync"], ["worker", "--once"], ["check-target"], ["explain", "x"],
            ["migrate"], ["import", "certifications", "{csv}"], ["admin-token", "list"], ["serve", "--port", "0"]]
NO_MAPPING = ("audit", "migrate", "import", "admin-token")  # commands that read no mapping file


@pytest.mark.parametrize(("command", "env", "expected"), [
    (command, env, expected) for command in COMMANDS for env, expected in CASES
    # audit and migrate read no mapping file (every command parses every setting)
    if not (command[0] in NO_MAPPING and "WALKIN_MAPPING_PATH" in env)
])
def test_a_bad_setting_is_one_line_naming_the_variable(environment, clock, command, env, expected, tmp_path):
    csv = tmp_path / "completions.csv"
    csv.write_text("userName,course,kind,completedOn\n")
    command = [part.format(csv=csv) for part in command]
    for name, value in env.items():
        environment.setenv(name, value)
    result = CliRunner().invoke(main, command, obj=clock)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert expected in lines[0]
    assert "hunter2" not in result.output and "Traceback" not in result.output


def test_the_real_command_prints_no_traceback(tmp_path):
    """Through a real `walkin` process: stderr is the one line, the exit status 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALKIN_")}
    env.update({"WALKIN_DATABASE_URL": "notaurl"})
    walkin = os.path.join(os.path.dirname(sys.executable), "walkin")
    result = subprocess.run([walkin, "audit"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: invalid settings: WALKIN_DATABASE_URL: not a database URL; expected sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST:PORT/DATABASE (got 'notaurl')"]
