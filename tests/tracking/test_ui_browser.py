"""`sweeps ui` opens on the sweep's configurations, checked in a real headless Chromium.

MLflow 3 opens an experiment on its GenAI overview, where no run is listed. A real sweep is
run, `sweeps ui` is started exactly as the sweep's report says, and the browser loads the
address it prints: the page must list the configurations, best first. Then Ctrl-C stops
`sweeps ui` and its whole server. (The 4,800-variant page: test_ui_configurations.py.)
"""

from __future__ import annotations

import re
import shlex
import signal

import pytest

from sweeps.run import run_sweep
from sweeps.tracking import ui
from tests.tracking.browser import CHROMIUM, Browser
from tests.synthetic import load_small_sweep
from tests.helpers import free_port
from tests.tracking.ui_process import SweepsUi, group_members

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium (scripts/ensure_chromium.sh installs it)"),
]

START = 300     # s: the server starts in ~20 s alone, minutes on a loaded 2-core machine
RENDER = 120    # s: the page renders with JavaScript after it loads

RUN_NAMES = "[...document.querySelectorAll('a[href*=\"/runs/\"]')].map(a => a.textContent.trim())"


@pytest.mark.timeout(900)
def test_sweeps_ui_opens_on_the_configurations(tmp_path, tracking_uri):
    sweep = load_small_sweep(tmp_path, name="browsed", parameters={"train.lr": [0.1, 0.5]},
                        epochs=50, log_every=10)
    outcome = run_sweep(sweep.path.name, tracking_uri=tracking_uri, executor="serial",
                        out=tmp_path / "out", progress=False)
    command = re.search(r"Runs: +run `sweeps ui ([^`]*)`, then open (\S+)", outcome.report())
    assert command, outcome.report()
    port = free_port(ui.HOST)
    with SweepsUi(*shlex.split(command.group(1)), "--port", str(port), cwd=tmp_path) as process:
        url = process.wait_for_url(START)
        assert url == command.group(2).replace(f":{ui.DEFAULT_PORT}/", f":{port}/")
        assert url == ui.configurations_url(f"http://{ui.HOST}:{port}", outcome.experiment_id,
                                            outcome.parent_run_id)

        with Browser() as browser:
            browser.open(url)
            # One seed each: a configuration per variant, named as the variant, best first.
            best_first = [name for name in outcome.summary["train.lr"].map(
                lambda lr: next(v.name for v in sweep.variants
                                if v.settings["train.lr"] == lr))]
            shown = browser.wait_for(f"{RUN_NAMES}.length == 2 && {RUN_NAMES}", RENDER)
            assert shown == best_first
            assert sweep.name not in shown            # the sweep's own run is not listed

        assert process.stop(signal.SIGINT, timeout=60) == 0, process.output
        assert not group_members(process.server_group)
        assert ui.port_free(port)
