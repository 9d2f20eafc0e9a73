"""``walkin demo`` as a user runs it: a real process, the console on loopback with its
demo sign-in, the worker granting on the embedded target; anywhere but loopback refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import requests

from tests.sync.slapd import free_port

WALKIN = os.path.join(os.path.dirname(sys.executable), "walkin")


def test_the_demo_serves_the_console_and_grants(tmp_path):
    """Signed in as the help desk, the dashboard shows the §8 members and the generated ones the
    worker granted; the SCIM API answers with the token the demo printed."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALKIN_")}
    process = subprocess.Popen([WALKIN, "demo", "--port", str(port), "--people", "40"], env=env, cwd=tmp_path,
                               stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any("bearer token" in line for line in lines):
            line = process.stderr.readline()
            assert line, f"the demo stopped: {lines}"
            lines.append(line)
        assert any("DEMO console" in line for line in lines)
        token = lines[-1].rsplit(" ", 1)[1].strip()
        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        page = session.get(f"{base}/console/login", timeout=10).text
        assert "Demo sign-in" in page
        forged = requests.post(f"{base}/console/callback", data={"as": "admin"}, timeout=10)
        assert forged.status_code == 400  # the sign-in form is a form too: no CSRF token, no session
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
        session.post(f"{base}/console/callback", data={"as": "helpdesk", "csrf": csrf}, timeout=10)
        members = 0
        for _ in range(100):  # the worker's first full run
            members = int(re.search(r'id="members">(\d+)', session.get(f"{base}/console/", timeout=10).text)[1])
            if members > 4:
                break
            time.sleep(0.2)
        assert members > 4
        users = requests.get(f"{base}/scim/v2/Users?count=1", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert users.json()["totalResults"] == 13 + 1 + 40
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        process.stderr.close()


def test_the_demo_refuses_anything_but_loopback(tmp_path):
    result = subprocess.run([WALKIN, "demo", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: walkin demo listens on loopback only (127.0.0.1, ::1, localhost), not 0.0.0.0"
