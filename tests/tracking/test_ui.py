"""sweeps.tracking.ui: the MLflow UI started on a sweep's store serves its runs over the REST API;
which experiment `sweeps ui` opens, and its errors.

The browser and the signals: test_ui_browser.py, test_ui_signals.py.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
import urllib.request

import pandas as pd
import pytest
from typer.testing import CliRunner

from sweeps.report import results
from sweeps.cli import app
from sweeps.tracking import readback, ui
from sweeps.tracking.track import SweepTracker
from tests.synthetic import log_sweep, load_small_sweep
from tests.helpers import free_port
from tests.tracking.ui_process import group_members

pytestmark = pytest.mark.integration


def rest(url: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
    if query:
        path += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def track(directory, tracking_uri, name, fresh=False) -> SweepTracker:
    sweep = load_small_sweep(directory, name=name, parameters={"seed": [0, 1]})
    tracker = SweepTracker(sweep, tracking_uri, fresh=fresh)
    tracker.start()
    log_sweep(tracker, sweep)
    tracker.finish()
    return tracker


def test_ui_serves_the_nested_runs_and_the_tables_load_through_it(tmp_path, tracking_uri,
                                                                  monkeypatch, capsys):
    sweep = load_small_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5], "seed": [0, 1]})
    tracker = SweepTracker(sweep, tracking_uri)
    tracker.start()
    log_sweep(tracker, sweep, diverge={3: 200})
    tracker.finish()
    port = free_port(ui.HOST)

    with ui.start(tracking_uri, port, timeout=300) as server:   # slow on a busy machine
        assert server.url == f"http://{ui.HOST}:{port}"
        # Once the UI answers, MLflow's GenAI job runner would be running: it is not started.
        commands = group_members(server.process.pid).values()
        assert commands and not [c for c in commands if "mlflow.server.jobs" in c or "huey" in c]
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
        # `sweeps ui` on a tracking server starts nothing: it prints the server's runs page.
        ui.serve(server.url, experiment="small")
        assert capsys.readouterr().out.startswith(
            f"MLflow UI: {ui.runs_url(server.url, experiment['experiment_id'])}")
    assert server.process.poll() is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ui.HOST, port), timeout=5).close()
    assert ui.port_free(port)


def test_ui_refuses_a_busy_port(tracking_uri):
    with socket.socket() as sock:
        sock.bind((ui.HOST, 0))
        sock.listen()
        with pytest.raises(OSError, match="in use"):
            ui.start(tracking_uri, sock.getsockname()[1])


def test_ui_opens_the_named_experiment_else_the_one_whose_sweep_started_last(tmp_path,
                                                                             tracking_uri):
    first = track(tmp_path, tracking_uri, "first")
    second = track(tmp_path, tracking_uri, "second")
    assert ui.find_experiment(tracking_uri, "first") == first.experiment_id
    assert ui.find_experiment(tracking_uri) == second.experiment_id
    again = track(tmp_path, tracking_uri, "first", fresh=True)   # a newer sweep of "first"
    assert again.experiment_id == first.experiment_id
    assert ui.find_experiment(tracking_uri) == first.experiment_id


def test_ui_names_what_is_missing(tmp_path, tracking_uri):
    with pytest.raises(LookupError, match="no sweep in .* yet"):
        ui.find_experiment(tracking_uri)
    track(tmp_path, tracking_uri, "small")
    with pytest.raises(LookupError, match="no MLflow experiment named 'other'"):
        ui.find_experiment(tracking_uri, "other")
    with pytest.raises(LookupError, match="no MLflow store at"):
        ui.find_experiment(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert not (tmp_path / "elsewhere.db").exists()


def test_sweeps_ui_reports_a_missing_store_or_experiment_without_starting(tmp_path,
                                                                          tracking_uri):
    runner = CliRunner()
    missing = runner.invoke(app, ["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert missing.exit_code == 2
    assert "sweeps ui: no MLflow store at" in missing.output
    sweep_file = load_small_sweep(tmp_path, name="small").path
    unknown = runner.invoke(app, ["ui", str(sweep_file), "--tracking-uri", tracking_uri])
    assert unknown.exit_code == 2
    assert "no MLflow experiment named 'small'" in unknown.output
    both = runner.invoke(app, ["ui", str(sweep_file), "--experiment", "small"])
    assert both.exit_code == 2 and "not both" in both.output


def test_the_run_report_says_how_to_open_the_runs(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default_port = ui.runs_url(f"http://{ui.HOST}:{ui.DEFAULT_PORT}", "3")
    assert ui.open_hint("sqlite:///mlflow.db", "3", "configs/card.yaml") == (
        f"run `sweeps ui configs/card.yaml`, then open {default_port}")
    assert ui.open_hint("sqlite:////data/m.db", "3", "card.yaml") == (
        f"run `sweeps ui card.yaml --tracking-uri sqlite:////data/m.db`, then open {default_port}")
    # A tracking server serves the UI itself.
    assert ui.open_hint("http://mlflow:5000", "3", "card.yaml") == ui.runs_url(
        "http://mlflow:5000", "3")
    # A sweep run with configuration runs: their page.
    assert ui.open_hint("http://mlflow:5000", "3", "card.yaml", "abc") == (
        "http://mlflow:5000/#/experiments/3/runs?workflowType=machine_learning"
        "&viewStateShareKey=sweeps-abc")
