"""`train_pack` on a tiny pack, in this process (no Ray): what a worker hands back."""

from __future__ import annotations

import numpy as np

import core
from sweeps.execution.plan import make_packs
from sweeps.records import Pack
from sweeps.spec.sweep import load_sweep
from sweeps.execution.training import train_pack
from sweeps.vocabulary import Status
from tests.sweep_files import write_sweep_file


def test_a_regression_pack_returns_one_result_per_variant(tmp_path):
    sweep = load_sweep(write_sweep_file(tmp_path, "t", {"train.lr": [0.1, 0.5], "seed": [0, 1]},
                                        epochs=50, log_every=10))
    pack = Pack(0, sweep.variants, sweep.variants[0].data_key, make_packs(sweep)[0].shared_paths)
    results = train_pack(pack, sweep.datasets[pack.data_key])
    assert [r.key for r in results] == [v.key for v in pack.variants]
    for result in results:
        assert result.status == Status.OK
        np.testing.assert_array_equal(result.log_epochs, np.arange(0, 50, 10))
        assert set(result.curves) == {"train_loss"} and result.curves["train_loss"].shape == (5,)
        assert {"train_loss", "train_mse", "test_loss", "test_mse"} <= set(result.metrics)
        assert result.predictions.shape == (1, 1)         # the article's one test row


def test_every_metric_a_variant_logs_is_in_the_metrics_table(tmp_path):
    """`sweeps.vocabulary.METRICS` says which way each is better: a metric missing from it
    would rank the wrong way round (classification with a validation split: every split)."""
    from sweeps.vocabulary import METRICS

    sweep = load_sweep(write_sweep_file(tmp_path, "m", {"data.validation": [0.5]},
                                        source="moons", loss="bce", epochs=20, log_every=5))
    pack = make_packs(sweep)[0]
    for result in train_pack(pack, sweep.datasets[pack.data_key]):
        assert set(result.metrics) | set(result.curves) <= set(METRICS)


def test_the_article_variant_matches_core_directly(tmp_path):
    sweep = load_sweep(write_sweep_file(tmp_path, "t", {"seed": [42]}, epochs=30, log_every=10))
    pack = make_packs(sweep)[0]
    dataset = sweep.datasets[pack.data_key]
    (result,) = train_pack(pack, dataset)
    mlp = core.MLP(n_in=3, hidden=(4,), n_out=1, activation="sigmoid", output_activation="sigmoid")
    params = core.init_params(mlp, ["uniform01"], [42])
    direct = core.train(mlp, params, dataset.X_train, dataset.Y_train, loss="half_sse",
                        optimizer=core.OptimizerSpec(lr=0.1), epochs=30, log_every=10)
    np.testing.assert_array_equal(result.curves["train_loss"], direct.loss[0])
    np.testing.assert_array_equal(result.predictions,
                                  core.predict(mlp, direct.params, dataset.X_test)[0])


def test_classification_results_carry_accuracy(tmp_path):
    sweep = load_sweep(write_sweep_file(tmp_path, "t", {"seed": [0, 1]}, source="xor",
                                        loss="bce", epochs=20, log_every=5))
    pack = Pack(0, sweep.variants, sweep.variants[0].data_key, make_packs(sweep)[0].shared_paths)
    for result in train_pack(pack, sweep.datasets[pack.data_key]):
        assert set(result.curves) == {"train_loss", "train_accuracy"}
        assert 0.0 <= result.metrics["test_accuracy"] <= 1.0


def test_a_worker_loads_no_schema_yaml_pandas_or_mlflow():
    """What a Ray task imports to unpickle a pack, train it and write its children
    (`sweeps.tracking.pack_writer`: psycopg2 only, imported when it writes)."""
    import subprocess
    import sys

    code = ("import sys, sweeps.execution.training, sweeps.tracking.pack_writer; "
            "print(sorted(m for m in ('pydantic', 'yaml', 'pandas', 'mlflow', 'sqlalchemy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
