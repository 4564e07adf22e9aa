"""`run_sweep` collects no garbage while it starts (its imports), keeps the objects alive at
its start out of the collector's full passes while it copies, trains and writes, and gives the
process its collector back as it found it."""

from __future__ import annotations

import gc

import pytest

from sweeps.run import _collector_paused, _modules_frozen


@pytest.fixture
def nothing_frozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_alive_at_the_start_are_frozen_until_the_block_ends(nothing_frozen):
    alive = [object() for _ in range(10)]
    with _modules_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    del alive


def test_unfrozen_when_the_block_raises(nothing_frozen):
    with pytest.raises(RuntimeError), _modules_frozen():
        raise RuntimeError("a sweep that failed")
    assert gc.get_freeze_count() == 0


class _Marker:
    """A tracked object: `gc.get_objects()` lists it unless it is frozen."""


def _frozen(thing) -> bool:
    return not any(o is thing for o in gc.get_objects())


def test_what_the_process_froze_itself_stays_frozen(nothing_frozen):
    marker = _Marker()
    gc.freeze()
    assert _frozen(marker)
    with _modules_frozen():
        pass
    # (not the freeze count: other threads free frozen objects of their own meanwhile)
    assert _frozen(marker)


@pytest.fixture
def collector_on():
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_off_in_the_block_and_on_after_it(collector_on):
    with _collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), _collector_paused():
        raise RuntimeError("a start-up that failed")
    assert gc.isenabled()


def test_a_collector_the_process_turned_off_stays_off(collector_on):
    gc.disable()
    with _collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
