"""How walkin's processes log: plain text lines (the default) or, with
``WALKIN_LOG_FORMAT=json``, one JSON object per line — for the SCIM service (its
app, gunicorn's error and access logs) and the worker alike.

Every record written while a request is handled carries that request's id
(:data:`request_id`, set by connector/api/request_ids.py). Durations go in fields
named ``…_seconds``. The configured secrets (SCIM, metrics and directory
credentials, the database password) are replaced by ``***`` in every line, as a
last defence: nothing is meant to log them in the first place.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

if TYPE_CHECKING:
    from connector.settings import LogFormat, Settings

#: The id of the request being handled in this context (a greenlet, a thread), if any.
request_id: ContextVar[str | None] = ContextVar("walkin_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request)s %(message)s"

# The attributes every LogRecord has; anything else on a record came as ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "request"}


def _stamp(record: logging.LogRecord) -> str | None:
    """The record's request id (given as ``extra``, or the current request's), kept
    on it as ``request_id`` and, for text lines, `` [id]`` as ``request``."""
    fields = record.__dict__
    if fields.get("request_id") is None:
        fields["request_id"] = request_id.get()
    rid = fields["request_id"]
    fields["request"] = f" [{rid}]" if rid else ""
    return rid


class Redactor:
    """Replaces known secret values with ``***`` in formatted lines."""

    def __init__(self, secrets: list[str]) -> None:
        # Longest first: a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, "***")
        return line


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        _stamp(record)
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``request_id`` when in a request, the record's ``extra`` fields, and
    ``exception`` (its traceback) when one is attached."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        rid = _stamp(record)
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        if rid:
            line["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key != "request_id" and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return self.redact(json.dumps(line, default=str, ensure_ascii=False))


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value the settings hold (``SecretStr`` fields, nested sections
    and lists included, and the database URL's password)."""
    from sqlalchemy.engine import make_url

    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for item in value.__dict__.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(settings)
    password = make_url(settings.database_url).password
    if password:
        found.append(str(password))
    return found


def formatter(fmt: LogFormat, redact: Redactor) -> logging.Formatter:
    from connector.settings import LogFormat

    return JsonFormatter(redact) if fmt is LogFormat.JSON else TextFormatter(redact)


class _Handler(logging.StreamHandler):
    """The handler :func:`configure` installs (and replaces when called again)."""


def configure(settings: Settings) -> logging.Formatter:
    """Send the process's log records to stderr in the configured format (replacing
    the handler an earlier call installed; others, a test runner's, stay).
    :returns: the formatter, for gunicorn's logs."""
    chosen = formatter(settings.log_format, Redactor(secrets_of(settings)))
    handler = _Handler(sys.stderr)
    handler.setFormatter(chosen)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    return chosen
