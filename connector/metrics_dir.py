"""The directory where gunicorn's workers keep their metrics (prometheus-client's
multiprocess mode), created by ``walkin serve`` and removed when it stops.

prometheus-client chooses between in-process and file-backed values when it is
first imported, from the ``PROMETHEUS_MULTIPROC_DIR`` environment variable — its own
switch, not a walkin setting. So this module imports nothing of it, and ``walkin
serve`` sets the variable before anything that does is imported; the workers,
forked from that process, inherit it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory() -> Iterator[Path]:
    """A fresh private directory for this server's metric files, named in
    ``PROMETHEUS_MULTIPROC_DIR`` while it lives. A new one each start: files left by
    a previous server would be summed into this one's counters."""
    path = Path(tempfile.mkdtemp(prefix="walkin-metrics-"))
    owner = os.getpid()
    before = os.environ.get(VARIABLE)
    os.environ[VARIABLE] = str(path)
    chosen = _select_value_class()
    try:
        yield path
    finally:
        # gunicorn forks its workers inside this block, and a worker's exit unwinds
        # the same stack: only the server that made the directory removes it.
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)
            if before is None:
                os.environ.pop(VARIABLE, None)
            else:
                os.environ[VARIABLE] = before
            _select_value_class(chosen)


def _select_value_class(value_class: object = None) -> object:
    """Should prometheus-client have been imported already (a plugin, a test calling
    ``walkin serve`` in process), let it choose again from the variable — labelled
    metrics create their values when first labelled, which in a server happens only
    in the workers, after this — or put back ``value_class``.

    :returns: the class it had (None when it is not imported)."""
    import sys

    values = sys.modules.get("prometheus_client.values")
    if values is None:
        return None
    had = values.ValueClass
    values.ValueClass = value_class if value_class is not None else values.get_value_class()  # type: ignore[attr-defined]
    return had
