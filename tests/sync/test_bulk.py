"""The cyclic collector is paused for a bulk build and left as the caller had it."""

from __future__ import annotations

import gc

import pytest

from sync.bulk import no_cycle_collection, without_cycle_collection


@pytest.fixture(autouse=True)
def _restore_collector():
    collecting = gc.isenabled()
    yield
    (gc.enable if collecting else gc.disable)()


@pytest.mark.parametrize("before", [True, False], ids=["on", "off"])
def test_paused_inside_and_as_it_was_after(before: bool) -> None:
    """Off in the block (also nested, also after an error), then as it was before."""
    (gc.enable if before else gc.disable)()
    with pytest.raises(RuntimeError), no_cycle_collection():
        with no_cycle_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block does not switch it back on
        raise RuntimeError("fails inside")
    assert gc.isenabled() is before


def test_the_decorator_pauses_the_call() -> None:
    """A decorated function runs with the collector off and keeps its name."""
    gc.enable()

    @without_cycle_collection
    def build(n: int) -> tuple[bool, int]:
        return gc.isenabled(), n

    assert build(3) == (False, 3) and build.__name__ == "build"
    assert gc.isenabled()
