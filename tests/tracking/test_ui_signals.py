"""`sweeps ui` stopped by SIGTERM (`kill`, a service manager) or SIGHUP (a closed terminal)
stops its `mlflow server` exactly as Ctrl-C does (test_ui_browser.py): no process of the
server's group is left and the port is free."""

from __future__ import annotations

import signal

import pytest

from sweeps.tracking import ui
from sweeps.tracking.track import SweepTracker
from tests.synthetic import log_sweep, load_small_sweep
from tests.helpers import free_port
from tests.tracking.ui_process import SweepsUi, group_members

pytestmark = pytest.mark.integration

START = 300     # s: the server starts in ~20 s alone, minutes on a loaded 2-core machine


@pytest.mark.timeout(600)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_stops_the_whole_server(tmp_path, tracking_uri, signum):
    sweep = load_small_sweep(tmp_path, name="small", parameters={"seed": [0, 1]})
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    log_sweep(tracker, sweep)
    tracker.finish()
    port = free_port(ui.HOST)
    with SweepsUi("--experiment", "small", "--tracking-uri", tracking_uri, "--port", str(port),
                  cwd=tmp_path) as process:
        url = process.wait_for_url(START)
        assert url == ui.runs_url(f"http://{ui.HOST}:{port}", tracker.experiment_id)
        assert group_members(process.server_group)
        assert not ui.port_free(port)

        assert process.stop(signum, timeout=60) == 0, process.output
        assert not group_members(process.server_group), process.output
        assert ui.port_free(port)
