"""Re-training from logged params alone: decoding every setting, rebuilding data and key."""

from __future__ import annotations

import numpy as np
import pytest

from sweeps.execution.retrain import RetrainError, rebuild_variant, retrain, settings_from_logged
from sweeps.spec.sweep import load_sweep
from sweeps.tracking.contract import encode_param
from sweeps.tracking.readback import decode_settings
from tests.conftest import CONFIGS


def logged(variant) -> dict:
    """The variant's settings as its child run's params hold them, decoded again."""
    return decode_settings({k: encode_param(v) for k, v in variant.settings.items()})


@pytest.mark.parametrize("name", ["card", "iris", "random_search", "article"])
def test_params_decode_to_the_same_settings_and_key(name):
    sweep = load_sweep(CONFIGS / f"{name}.yaml")
    for variant in sweep.variants[::7]:
        rebuilt, dataset = rebuild_variant(logged(variant), base_dir=CONFIGS)
        assert dict(rebuilt.settings) == dict(variant.settings)
        assert rebuilt.key == variant.key and dataset.fingerprint == variant.data_key


def test_missing_or_invalid_params_name_the_setting():
    variant = load_sweep(CONFIGS / "article.yaml").variants[0]
    settings = logged(variant)
    with pytest.raises(RetrainError, match="train.lr"):
        settings_from_logged({k: v for k, v in settings.items() if k != "train.lr"})
    with pytest.raises(RetrainError, match="lr"):
        settings_from_logged({**settings, "train.lr": -1.0})


def test_changed_param_changes_the_key():
    variant = load_sweep(CONFIGS / "article.yaml").variants[0]
    rebuilt, _ = rebuild_variant({**logged(variant), "train.momentum": 0.5})   # unused by sgd
    assert rebuilt.key != variant.key


def test_retrained_run_matches_the_logged_one_bit_for_bit(small_sweep):
    from sweeps.tracking.readback import fetch_settings, read_sweep

    records = read_sweep("best-sine", small_sweep.tracking_uri).records
    assert len(records) == 3
    record = records[1]
    settings = fetch_settings(small_sweep.tracking_uri, [record.run_id])[record.run_id]
    again = retrain(settings, logged_key=record.variant_key)
    assert again.key_matches
    for key, value in record.metrics.items():
        if key != "train_seconds":
            assert again.result.metrics[key] == value, key
    assert again.params.W[0].shape[0] == 1            # a population of one
    assert np.all(np.isfinite(again.result.predictions))
