"""The suite gives the same answer however it is launched.

A suite started as a background job of a script, under `nohup` or by some CI runners inherits
SIGINT *ignored*; tests that signal their own process or children must not depend on the
disposition they were started with (see tests/processes.py). This runs the tests that send
signals in a child pytest started that way, with SIGTERM ignored too.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import spawn

REPO = Path(__file__).resolve().parent.parent
SIGNALLING_TESTS = ("tests/sweeps/test_stopping.py", "tests/test_processes.py")


@pytest.mark.parametrize("ignored", [(signal.SIGINT,), (signal.SIGINT, signal.SIGTERM)],
                         ids=["sigint-ignored", "sigint-and-sigterm-ignored"])
def test_signalling_tests_pass_when_the_suite_starts_with_signals_ignored(ignored):
    child = spawn([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   *SIGNALLING_TESTS], signals={s: signal.SIG_IGN for s in ignored},
                  cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = child.communicate(timeout=600)
    assert child.returncode == 0, out[-4000:]
    assert " passed" in out and "failed" not in out
