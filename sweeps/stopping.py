"""Ctrl-C and SIGTERM as exceptions in the driver, held back while it writes to MLflow.

A signal handler raises wherever the main thread happens to be. Raised inside a database
write, it can leave a transaction open that holds SQLite's write lock, and marking the parent
run KILLED then fails with "database is locked". So a write runs inside `held()`: a signal
that arrives there is raised when the write is over, a few milliseconds later.

SIGINT is only taken over when Python's own handler has it: a process started with SIGINT
ignored (`nohup`, a background job of a script) keeps ignoring Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Signalled(BaseException):
    """Raised in the driver by the SIGTERM handler (SIGINT raises KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_depth = 0                  # how many held() blocks the main thread is inside
_pending: list[int] = []    # signals that arrived inside them, oldest first


def _stop(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Signalled(signum)


def _handler(signum: int, _frame) -> None:
    if _depth:
        _pending.append(signum)
        return
    raise _stop(signum)


@contextmanager
def held() -> Iterator[None]:
    """A block no stop signal cuts short; one that arrived inside is raised at its end.

    Other threads run their blocks as they are (signals reach the main thread only).
    """
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending:
            signum = _pending[0]
            _pending.clear()
            raise _stop(signum)


@contextmanager
def ignored() -> Iterator[None]:
    """A block that is itself the reaction to a stop: further signals are dropped."""
    global _depth
    arrived_before = len(_pending)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        del _pending[arrived_before:]


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Inside: SIGTERM raises Signalled and Ctrl-C KeyboardInterrupt, except in `held()`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _handler)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def signal_behind(error: BaseException | None) -> BaseException | None:
    """The KeyboardInterrupt or Signalled that stopped the driver, or None.

    A signal that arrives while Ray waits in compiled code (``ray.wait``) surfaces as a
    SystemError ("returned a result with an exception set") around the handler's exception;
    with a fast writer the driver spends most of its time there.
    """
    while error is not None:
        if isinstance(error, (KeyboardInterrupt, Signalled)):
            return error
        error = error.__cause__ or error.__context__
    return None
