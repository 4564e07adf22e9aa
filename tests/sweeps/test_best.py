"""`sweeps best`: the winner as an MLflow pyfunc model that loads and serves without `sweeps`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from sweeps.best import choose
from sweeps.cli import app
from sweeps.spec.sweep import load_sweep
from sweeps.tracking.readback import parse_predictions
from sweeps.tracking.run_records import RunRecord
from tests.helpers import free_port
from tests.sweeps.conftest import copy_store

# Run in a fresh interpreter: `sweeps` cannot be imported, and `core` must come from the model.
LOAD_SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys
    class NoSweeps(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sweeps" or name.startswith("sweeps."):
                raise ImportError("the sweeps package must not be needed")
    sys.meta_path.insert(0, NoSweeps())
    import mlflow.pyfunc, pandas as pd
    uri, inputs, out = sys.argv[1:4]
    model = mlflow.pyfunc.load_model(uri)
    given = json.load(open(inputs))                      # Python's json: floats exact
    result = model.predict(pd.DataFrame(given["data"], columns=given["columns"]))
    json.dump({"columns": list(result.columns), "data": result.to_numpy().tolist()},
              open(out, "w"))
    print(json.dumps({"core": sys.modules["core"].__file__}))
""")


def _record(run_id, name, group, status, loss):
    return RunRecord(run_id=run_id, name=name, start_time=0, variant_key=run_id, group_key=group,
                     status=status, index=ord(run_id), curves=(), swept={"model.init": "str"},
                     settings={"model.init": group}, metrics={"test_loss": loss})


def test_choose_takes_the_best_group_mean_then_its_best_seed():
    records = [_record("a", "a", "g1", "ok", 0.10), _record("b", "b", "g1", "ok", 0.30),
               _record("c", "c", "g2", "ok", 0.05), _record("d", "d", "g2", "ok", 0.50),
               _record("e", "e", "g3", "diverged", float("nan"))]
    record, metric, mean = choose(records)
    assert (record.run_id, metric, mean) == ("a", "test_loss", pytest.approx(0.2))
    assert choose(records, variant="d")[0].run_id == "d"


@pytest.fixture(scope="module")
def logged(small_sweep, tmp_path_factory):
    """`sweeps best FILE --register NAME` on a copy of the small sweep's store."""
    directory = tmp_path_factory.mktemp("best-model")
    uri = copy_store(small_sweep, directory)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    result = CliRunner().invoke(app, ["best", str(small_sweep.file), "--tracking-uri", uri,
                                      "--register", "sine-best"])
    assert result.exit_code == 0, result.output
    assert os.environ.get("MLFLOW_TRACKING_URI") == before    # no store leaks into the process
    model_uri = next(line.split()[1] for line in result.output.splitlines()
                     if line.startswith("model: "))
    assert "mlflow models serve -m " + model_uri in result.output
    assert "models:/sine-best/1" in result.output
    return uri, model_uri, result.output


def _test_set(small_sweep):
    """Raw test inputs (the scaling undone) and the logged predictions of the winning run."""
    sweep = load_sweep(small_sweep.file)
    (dataset,) = sweep.datasets.values()
    raw = dataset.X_test * dataset.input_spread + dataset.input_shift
    return dataset, raw


def _logged_predictions(uri: str, run_id: str, tmp: Path) -> tuple[list[str], np.ndarray]:
    """(the pred_* columns, those columns of the logged predictions.csv)."""
    path = MlflowClient(uri).download_artifacts(run_id, "predictions.csv", str(tmp))
    logged = parse_predictions(Path(path).read_text())
    pred = [c for c in logged.columns if c.startswith("pred_")]
    return pred, logged.values[:, [logged.columns.index(c) for c in pred]]


def test_model_loads_in_a_fresh_process_without_the_package(small_sweep, logged, tmp_path):
    uri, model_uri, _ = logged
    client = MlflowClient(uri)
    model = client.get_logged_model(model_uri.split("/")[-1])
    assert model.source_run_id
    registered = client.get_model_version("sine-best", "1")
    assert registered.source == model_uri or model.model_id in registered.source
    dataset, raw = _test_set(small_sweep)
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"columns": list(dataset.feature_names), "data": raw.tolist()}))
    out = tmp_path / "out.json"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MLFLOW_TRACKING_URI"] = uri
    done = subprocess.run([sys.executable, "-I", "-c", LOAD_SCRIPT, model_uri, str(inputs),
                           str(out)], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    core_file = Path(json.loads(done.stdout.strip().splitlines()[-1])["core"])
    repo = Path(__file__).resolve().parents[2]
    assert repo not in core_file.parents          # core came from the model's code_paths
    assert core_file.parent.parent.name == "code"
    predicted = json.loads(out.read_text())
    pred_columns, logged_values = _logged_predictions(uri, registered.run_id, tmp_path)
    assert predicted["columns"] == pred_columns
    np.testing.assert_allclose(np.array(predicted["data"]), logged_values, rtol=1e-12, atol=1e-12)


def test_served_model_answers_invocations(small_sweep, logged, tmp_path):
    uri, model_uri, _ = logged
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    # MLflow starts `uvicorn` from PATH: the venv's bin first, as an activated venv has it.
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PATH": f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "-m", model_uri, "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=tmp_path, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"))
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the model server did not become ready"
            time.sleep(0.5)
        dataset, raw = _test_set(small_sweep)
        body = json.dumps({"dataframe_split": {"columns": list(dataset.feature_names),
                                               "data": raw.tolist()}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())["predictions"]
        run_id = MlflowClient(uri).get_model_version("sine-best", "1").run_id
        pred_columns, logged_values = _logged_predictions(uri, run_id, tmp_path)
        served = np.array([[row[c] for c in pred_columns] for row in answer])
        np.testing.assert_allclose(served, logged_values, rtol=1e-12, atol=1e-12)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
