"""sweeps.tracking.ui: the MLflow UI started on a sweep's store serves its runs over the REST API."""

from __future__ import annotations

import json
import socket
import urllib.parse
import urllib.request

import pandas as pd
import pytest

from sweeps import results
from sweeps.tracking import readback, ui
from sweeps.tracking.track import SweepTracker
from tests.results.helpers import log_sweep, write_sweep

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rest(url: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
    if query:
        path += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_ui_serves_the_nested_runs_and_the_tables_load_through_it(tmp_path, tracking_uri,
                                                                  monkeypatch):
    sweep = write_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5], "seed": [0, 1]})
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    log_sweep(tracker, sweep, diverge={3: 200})
    tracker.finish()
    port = free_port()

    with ui.start(tracking_uri, port, timeout=300) as server:   # slow on a busy machine
        assert server.url == f"http://127.0.0.1:{port}"
        experiment = rest(server.url, "api/2.0/mlflow/experiments/get-by-name",
                          query={"experiment_name": "small"})["experiment"]
        found = rest(server.url, "api/2.0/mlflow/runs/search", {
            "experiment_ids": [experiment["experiment_id"]],
            "filter": f"tags.mlflow.parentRunId = '{tracker.parent_run_id}'",
            "max_results": 100})["runs"]
        assert sorted(r["info"]["run_name"] for r in found) == sorted(v.name for v in sweep.variants)
        for run in found:
            assert run["info"]["status"] == "FINISHED"
            params = {p["key"]: p["value"] for p in run["data"]["params"]}
            assert {"train.lr", "seed", "model.hidden"} <= set(params)   # UI group-by keys
        # The tables read through the server equal the ones read from the file, using the
        # bulk history endpoint (never one request per run).
        monkeypatch.setattr(readback, "_per_run", lambda *a: pytest.fail("per-run history fetch"))
        pd.testing.assert_frame_equal(results.load_runs("small", server.url),
                                      results.load_runs("small", tracking_uri))
        pd.testing.assert_frame_equal(results.load_curves("small", server.url),
                                      results.load_curves("small", tracking_uri))
    assert server.process.poll() is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert ui.port_free(port)


def test_ui_refuses_a_busy_port(tracking_uri):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(OSError, match="in use"):
            ui.start(tracking_uri, sock.getsockname()[1])


def test_serve_on_a_tracking_server_only_prints_its_address(capsys):
    ui.serve("http://127.0.0.1:5999")
    assert "http://127.0.0.1:5999" in capsys.readouterr().out
