"""On PostgreSQL every statement of the store is planned for its own values
(``plan_cache_mode=force_custom_plan``, connector/store/engine.py): a generic plan
costed while a table was empty outlived the table's growth within a cold run (50,000
people: 98.6 s → 27.5 s, bench/bench_console.py). The read-only engine and a URL's own
``options`` keep theirs."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import text

from connector.store.engine import make_engine
from tests.conftest import BACKENDS


def _settings(url: str, **kwargs) -> list[str]:
    engine = make_engine(url, **kwargs)
    try:
        with engine.connect() as conn:
            return [conn.scalar(text(f"SHOW {name}")) for name in
                    ("plan_cache_mode", "default_transaction_read_only", "statement_timeout")]
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "postgresql"])
def test_every_statement_gets_a_plan_of_its_own(backend, postgres_url):
    assert _settings(postgres_url) == ["force_custom_plan", "off", "0"]
    assert _settings(postgres_url, read_only=True) == ["force_custom_plan", "on", "0"]
    joiner = "&" if "?" in postgres_url else "?"
    own = postgres_url + joiner + "options=" + quote("-c statement_timeout=12345")
    assert _settings(own) == ["force_custom_plan", "off", "12345ms"]
