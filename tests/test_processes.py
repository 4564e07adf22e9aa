"""tests/processes.py: a spawned child gets the signal dispositions asked for, not the parent's."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.processes import spawn

REPORT = ("import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
          " signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)")


def _report(**options) -> list[str]:
    child = spawn([sys.executable, "-c", REPORT], stdout=subprocess.PIPE, text=True, **options)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    return out.split()


def test_a_child_gets_default_sigint_and_sigterm_even_when_this_process_ignores_them():
    previous = {signum: signal.signal(signum, signal.SIG_IGN)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        # Python turns an inherited SIG_DFL SIGINT into KeyboardInterrupt, an ignored one not.
        assert _report() == ["True", "True"]
        # only the signals named are set; SIGTERM is then inherited (ignored) here
        assert _report(signals={signal.SIGINT: signal.SIG_IGN}) == ["False", "False"]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_child_runs_in_a_session_of_its_own():
    child = spawn([sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid())"],
                  stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=60)
    assert out.strip() == "True"
