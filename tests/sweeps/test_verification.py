"""`sweeps verify`: a real sweep reproduces bit for bit; a tampered param is caught."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
from mlflow import MlflowClient
from typer.testing import CliRunner

from sweeps.cli import app
from sweeps.verification import (BIT_IDENTICAL, DIFFERENT, WITHIN, differences, verdict_of)
from tests.sweeps.conftest import copy_store


def _parent(uri: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("best-sine")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`sweep.role` = 'parent'")
    return client, parent


def test_differences_and_verdict_levels():
    assert differences(np.array([1.0, np.nan]), np.array([1.0, np.nan])) == (0.0, 0.0)
    assert differences(np.array([1.0]), np.array([np.nan]))[1] == math.inf
    assert verdict_of(*differences(np.array([1.0]), np.array([1.0 + 1e-15]))) == WITHIN
    assert verdict_of(*differences(np.array([1.0]), np.array([1.001]))) == DIFFERENT
    assert verdict_of(0.0, 0.0, key_matches=False) == DIFFERENT


def test_verify_reproduces_every_variant_bit_for_bit_and_logs_it(small_sweep, tmp_path,
                                                                monkeypatch):
    uri = copy_store(small_sweep, tmp_path)
    result = CliRunner().invoke(app, ["verify", str(small_sweep.file), "--all",
                                      "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert f"{BIT_IDENTICAL}: 3 of 3" in result.output
    client, parent = _parent(uri)
    assert parent.data.tags["sweep.verified"] == BIT_IDENTICAL
    assert parent.data.params["env.numpy"] == np.__version__
    report = client.download_artifacts(parent.info.run_id, "verify.json", str(tmp_path))
    checks = json.loads(open(report).read())["checks"]
    assert [c["verdict"] for c in checks] == [BIT_IDENTICAL] * 3


def test_verify_catches_a_tampered_param(small_sweep, tmp_path):
    uri = copy_store(small_sweep, tmp_path)
    client, parent = _parent(uri)
    children = client.search_runs([parent.info.experiment_id], "tags.`sweep.role` = 'variant'")
    victim = sorted(children, key=lambda r: r.info.run_name)[0]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        changed = db.execute("UPDATE params SET value = '0.05' WHERE key = 'train.lr' "
                             "AND run_uuid = ?", (victim.info.run_id,)).rowcount
    assert changed == 1
    result = CliRunner().invoke(app, ["verify", "best-sine", "--sample", "3",
                                      "--tracking-uri", uri])
    assert result.exit_code == 1, result.output
    lines = {line.split("  ")[0]: line for line in result.output.splitlines()}
    assert "CHANGED" in lines[victim.info.run_name] and DIFFERENT in lines[victim.info.run_name]
    others = [line for name, line in lines.items() if name.startswith("hidden=")
              and name != victim.info.run_name]
    assert len(others) == 2 and all(BIT_IDENTICAL in line for line in others)
    assert _parent(uri)[1].data.tags["sweep.verified"] == DIFFERENT


def test_a_sweep_from_another_machine_is_named_as_such():
    from sweeps.execution.machine import machine_differences, machine_params
    from sweeps.verification import Check, Verification

    assert machine_differences(machine_params()) == []
    assert "recorded no env" in machine_differences({"train.lr": "0.1"})[0]
    other = machine_differences({**machine_params(), "env.blas": "reference-blas 3.12"})
    assert other == [f"env.blas: reference-blas 3.12 -> {machine_params()['env.blas']}"]
    check = Check("r1", "lr=0.1", "k", True, 1e-16, 1e-15, "test_loss", WITHIN)
    text = Verification("e", "p", 1, 1, WITHIN, [check], machine=other).report()
    assert "different BLAS/CPU than the sweep" in text and "env.blas" in text


def test_unknown_experiment_is_a_clear_error(small_sweep, tmp_path):
    uri = copy_store(small_sweep, tmp_path)
    for command in ("verify", "best"):
        result = CliRunner().invoke(app, [command, "no-such-sweep", "--tracking-uri", uri])
        assert result.exit_code == 2
        assert "no MLflow experiment named 'no-such-sweep'" in result.output
