"""Child processes that the tests signal, started the same way however the suite was started.

A process inherits its parent's signal dispositions across exec: a suite started as a
background job of a non-interactive shell, under `nohup` or by some CI runners has SIGINT (or
SIGHUP) *ignored*, and a Python child started from it then installs no KeyboardInterrupt
handler, so a test's Ctrl-C would do nothing. The rule kept here: every child a test signals
is started with `spawn`, in its own session (its own process group, away from the terminal's
Ctrl-C), with SIGINT and SIGTERM at their default disposition and unblocked, unless the test
asks for another disposition on purpose. `subprocess`'s own `restore_signals` does not cover
this: it restores SIGPIPE, SIGXFZ and SIGXFSZ only.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

Disposition = signal.Handlers   # SIG_DFL or SIG_IGN: what survives exec

DEFAULT_SIGNALS: Mapping[int, Disposition] = {signal.SIGINT: signal.SIG_DFL,
                                              signal.SIGTERM: signal.SIG_DFL}


def _set_signals(signals: Mapping[int, Disposition],
                 then: Callable[[], None] | None) -> Callable[[], None]:
    """A preexec_fn (runs in the child between fork and exec) that sets `signals`."""
    chosen = dict(signals)

    def preexec() -> None:
        for signum, disposition in chosen.items():
            signal.signal(signum, disposition)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, chosen)
        if then is not None:
            then()

    return preexec


def spawn(argv: Sequence[str], *, signals: Mapping[int, Disposition] = DEFAULT_SIGNALS,
          preexec: Callable[[], None] | None = None, **popen) -> subprocess.Popen:
    """`subprocess.Popen(argv, **popen)` in a session of its own with the given dispositions.

    Parameters
    ----------
    argv : sequence of str
        The command.
    signals : mapping of signal number to SIG_DFL or SIG_IGN
        Dispositions the child starts with (default: SIGINT and SIGTERM at SIG_DFL).
    preexec : callable, optional
        More set-up in the child after the signals (between fork and exec: no imports).
    **popen
        Passed on to `subprocess.Popen` (not `start_new_session` or `preexec_fn`).
    """
    return subprocess.Popen(list(argv), start_new_session=True,
                            preexec_fn=_set_signals(signals, preexec), **popen)
