"""Whether the service is ready (``/readyz``): the store answers, its schema is
the one this release needs, and — unless ``health.worker_stale_seconds`` is 0 — the
newest worker heartbeat is fresh.

A store where no worker ever beat is ready: a district that runs ``walkin sync``
from a scheduler has no worker, and a first start must not wait on one. The metric
``walkin_worker_heartbeat_timestamp_seconds`` is then absent, which the README's
alert rule catches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from connector.clock import Clock
from connector.settings import HealthSettings
from connector.store.database import Store


@dataclass
class Readiness:
    ready: bool = True
    checks: dict[str, str] = field(default_factory=dict)

    def fail(self, check: str, why: str) -> None:
        self.ready = False
        self.checks[check] = why

    def to_json_dict(self) -> dict:
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks}


@lru_cache(maxsize=1)
def schema_head() -> str | None:
    """This release's newest schema revision."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from connector.store.engine import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def check(store: Store, clock: Clock, health: HealthSettings) -> Readiness:
    """Ask the store (see module doc)."""
    from sync import heartbeat

    out = Readiness()
    head = schema_head()
    try:
        with store.session_read() as session:
            revision = session.scalar(text("SELECT version_num FROM alembic_version"))
            # The heartbeat table is this release's: read only at its schema.
            last = heartbeat.newest(session) if health.worker_stale_seconds and revision == head else None
    except SQLAlchemyError:  # unreachable, or no schema at all: either way not ready
        out.fail("store", "unreachable or without a schema")
        return out
    out.checks["store"] = "ok"
    if revision != head:
        out.fail("schema", f"at revision {revision}, this release needs {head}: run `walkin migrate`")
        return out
    out.checks["schema"] = "ok"
    if not health.worker_stale_seconds:
        out.checks["worker"] = "not checked"
    elif last is None:
        out.checks["worker"] = "no heartbeat recorded yet"
    else:
        age = max(0.0, (clock.now() - last).total_seconds())
        if age > health.worker_stale_seconds:
            out.fail(
                "worker", f"stale: the newest heartbeat is {age:.0f} s old (limit {health.worker_stale_seconds:g} s)"
            )
        else:
            out.checks["worker"] = f"ok: heartbeat {age:.0f} s ago"
    return out


__all__ = ["Readiness", "check", "schema_head"]
