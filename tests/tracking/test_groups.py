"""Configuration runs stay right when a sweep resumes: one per group, over every seed."""

from __future__ import annotations

import pytest

from sweeps.report.outputs import write_outputs
from sweeps.tracking.bulk import BulkTracker
from sweeps.tracking.groups import group_filter
from tests.synthetic import log_sweep, load_small_sweep

pytestmark = pytest.mark.integration


def test_a_resumed_sweep_replaces_its_configuration_runs_with_ones_over_every_seed(
        tmp_path, tracking_uri):
    from mlflow import MlflowClient

    sweep = load_small_sweep(tmp_path, parameters={"train.lr": [0.1, 0.5], "seed": [0, 1, 2]})
    first = BulkTracker(sweep, tracking_uri)
    first.start()
    log_sweep(first, sweep, only=slice(0, 4))          # lr=0.1: 3 seeds, lr=0.5: 1 seed
    write_outputs(first, tmp_path / "first")
    again = BulkTracker(sweep, tracking_uri)
    assert len(again.start()) == 4
    log_sweep(again, sweep, only=slice(4, None))
    outputs = write_outputs(again, tmp_path / "again")
    assert again.parent_run_id == first.parent_run_id

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([again.experiment_id], group_filter(again.parent_run_id))
    assert sorted(r.data.tags["sweep.group_key"] for r in runs) == \
        sorted({v.group for v in sweep.variants})
    assert {r.data.metrics["n"] for r in runs} == {3.0}
    by_group = {r.data.tags["sweep.group_key"]: r for r in runs}
    for row in outputs.summary.to_dict("records"):
        run = by_group[row["group_key"]]
        assert run.data.metrics["test_loss"] == pytest.approx(row["test_loss_mean"], rel=1e-12)
        assert run.data.tags["sweep.rank"] == str(row["rank"])
    deleted = client.search_runs([again.experiment_id], group_filter(again.parent_run_id),
                                 run_view_type=2)      # ViewType.DELETED_ONLY
    assert len(deleted) == 2                           # the first run's two, marked deleted
