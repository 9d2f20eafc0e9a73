"""The gunicorn configuration ``walkin serve`` runs with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from connector.server import AccessLogger, gunicorn_options


class _Response:
    status = "404 NOT FOUND"
    headers = [("Content-Type", "application/scim+json")]

    def __init__(self, sent):
        self.sent = sent


@pytest.mark.parametrize("sent", [0, 512, None], ids=["empty", "body", "unknown"])
def test_access_log_line_is_gunicorns_own(sent):
    """The trimmed access logger writes exactly the line gunicorn's logger would."""
    cfg = Config()
    for key, value in gunicorn_options("127.0.0.1", 8000, 1, 4).items():
        cfg.set(key, value)
    logger = AccessLogger(cfg)
    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "GET", "RAW_URI": '/scim/v2/Users?filter=a+eq+"b"',
               "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_AUTHORIZATION": "Bearer secret"}
    request = [("Authorization", "Bearer secret")]
    took = timedelta(seconds=1, microseconds=23456)

    def line(atoms):
        return cfg.access_log_format % logger.atoms_wrapper_class(atoms)

    ours = line(logger.atoms(_Response(sent), request, environ, took))
    assert ours == line(Logger.atoms(logger, _Response(sent), request, environ, took))
    assert "secret" not in ours
