"""Child processes on the test's clock, through libfaketime.

A test that starts a real ``walkin worker`` (or any other walkin command) in its own
process cannot hand it the test's :class:`~connector.clock.FrozenClock`; instead the
child runs under libfaketime (Debian's ``faketime`` package), its wall clock starting
at the frozen instant and running on from there, so it decides on the same date as
the SCIM app of the test that fed it. ``.ci/run`` uses the same library to run the
whole suite a second time with the machine's clock moved (see there).

Debian's libfaketime 0.9.10 breaks ``time.sleep`` on Python 3.11 when the monotonic
clock is not faked (wolfcw/libfaketime#426); ``monotonic_sleep.c`` beside this file,
preloaded first, sends monotonic sleeps straight to the kernel.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

SHIM_SOURCE = Path(__file__).with_name("monotonic_sleep.c")


def libfaketime() -> str | None:
    """The path of libfaketime's shared object, or None when it is not installed."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    return found[0] if found else None


def missing() -> str | None:
    """Why child processes cannot be put on another clock here, or None."""
    if libfaketime() is None:
        return "libfaketime is not installed (Debian package 'faketime')"
    if shutil.which("cc") is None:
        return "no C compiler (cc) to build the monotonic-sleep shim"
    return None


def build_preload(directory: Path) -> str:
    """Compile the shim into ``directory``; :returns: the ``LD_PRELOAD`` value
    (the shim first, then libfaketime)."""
    library = libfaketime()
    if library is None:
        raise RuntimeError(missing())
    shim = directory / "monotonic_sleep.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(SHIM_SOURCE), "-ldl"], check=True)
    return f"{shim} {library}"


def pinned_env(env: dict[str, str], at: datetime, preload: str) -> dict[str, str]:
    """``env`` for a child process whose wall clock starts at ``at`` (aware) and runs on;
    monotonic time (timeouts, sleeps) stays real."""
    return {**env, "LD_PRELOAD": preload, "FAKETIME": f"@{int(at.timestamp())}", "FAKETIME_FMT": "%s",
            "DONT_FAKE_MONOTONIC": "1"}


def offset_to(local: str, zone: str = "America/Denver", now: float | None = None) -> str:
    """libfaketime's ``FAKETIME`` for a clock moved to the wall time ``local``
    (``YYYY-MM-DDTHH:MM[:SS]``) in ``zone``: a signed offset in seconds from ``now``
    (default: the machine's time), so every process sees the same moved clock."""
    import time
    from zoneinfo import ZoneInfo

    target = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).timestamp()
    return f"{int(target - (time.time() if now is None else now)):+d}"
