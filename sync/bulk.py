"""Building a district's worth of small objects at once, without the cyclic
garbage collector walking them again and again.

A full run, a what-if or a report over everyone makes hundreds of thousands of
rows, dicts, tuples and frozen models that hold no reference cycles: reference
counting frees every one of them, and the cyclic collector finds nothing. But its
full collections are triggered by the heap's growth and walk the whole heap each
time, so they cost more the more has been built: half of a 100,000-person
``simulate`` was spent in them (13 full collections of 0.4 s each). A sync run,
``simulate`` and the reports with a row per person each run as one such block.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic collector for the block; it is switched back on (and
    catches up) at its end. Left off if it was off already (nested, or the caller's
    choice), so an inner block never switches it on under an outer one."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def without_cycle_collection(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` run inside :func:`no_cycle_collection`."""

    @wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with no_cycle_collection():
            return function(*args, **kwargs)

    return run
