"""Serving the app with gunicorn, configured in code so ``walkin serve`` and the
Docker image run the same server settings."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from connector.settings import Settings


def gunicorn_options(host: str, port: int, workers: int, threads: int) -> dict:
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 60,
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": "-",
        # The access log shows method, path and status only: never headers, so a
        # bearer token cannot end up in a log.
        "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
    }


class _Server(BaseApplication):
    def __init__(self, settings: Settings, options: dict) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from connector import create_app

        return create_app(self.settings)


def run(settings: Settings, *, host: str, port: int, workers: int, threads: int) -> None:
    from connector.store.database import Store

    Store(settings.database_url).dispose()  # migrate once, before the workers start
    _Server(settings, gunicorn_options(host, port, workers, threads)).run()
