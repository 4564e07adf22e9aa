"""`sweeps.stopping`: stop signals as exceptions, held back inside writes (real signals sent to
this process; pytest runs tests in the main thread)."""

from __future__ import annotations

import os
import signal

import pytest

from sweeps import stopping


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)


@pytest.fixture(autouse=True)
def sigint_as_a_terminal_leaves_it():
    """Python's Ctrl-C handler for each test, however the suite was started: a suite started
    with SIGINT ignored (`nohup`, a background job) would otherwise drop the SIGINT sent here."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum, raised", [(signal.SIGTERM, stopping.Signalled),
                                            (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_inside_a_held_block_is_raised_when_the_block_is_over(signum, raised):
    steps = []
    with stopping.signals_as_exceptions():
        with pytest.raises(raised):
            with stopping.held():
                send(signum)
                steps.append("after the signal")      # the block ran on
                with stopping.held():                  # nested: raised at the outer end only
                    steps.append("nested")
                steps.append("end of the block")
            steps.append("not reached")
    assert steps == ["after the signal", "nested", "end of the block"]


def test_outside_a_held_block_the_signal_stops_at_once_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stopping.signals_as_exceptions():
        with pytest.raises(stopping.Signalled) as stopped:
            send(signal.SIGTERM)
            pytest.fail("the signal did not stop the block")
        assert stopped.value.signum == signal.SIGTERM
        with stopping.held():
            pass                                       # nothing pending: nothing raised
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_signals_during_the_reaction_to_a_stop_are_dropped():
    with stopping.signals_as_exceptions():
        with stopping.ignored():
            send(signal.SIGTERM)
            send(signal.SIGINT)
        with stopping.held():
            pass                                       # (nothing left over either)


def test_an_ignored_sigint_stays_ignored(monkeypatch):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stopping.signals_as_exceptions():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            send(signal.SIGINT)                        # nohup: Ctrl-C does nothing
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_signal_behind_a_chain_of_errors_is_found():
    try:
        try:
            raise stopping.Signalled(signal.SIGTERM)
        except stopping.Signalled as error:
            raise SystemError("returned a result with an exception set") from error
    except SystemError as wrapped:
        assert isinstance(stopping.signal_behind(wrapped), stopping.Signalled)
    assert stopping.signal_behind(ValueError("no signal")) is None
