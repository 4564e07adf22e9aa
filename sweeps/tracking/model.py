"""Logging a re-trained variant as an MLflow pyfunc model on its child run (`sweeps best`).

The model is logged "as code" (`pyfunc_network.py`, whose `NetworkModel` runs core's forward
pass), with core itself as its ``code_paths`` and the weights as one ``network.npz``
artifact, so it loads with NumPy, pandas and MLflow alone (no `sweeps` install). Its
environment is pinned to this process's NumPy; its signature names the data set's features.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_NAME = "model"                    # the model's name on the run
MODEL_TAG = "sweep.model_uri"           # set on the child run: the last model logged from it
CODE_FILE = Path(__file__).with_name("pyfunc_network.py")


@dataclass(frozen=True)
class LoggedNetwork:
    """Where the model went: ``models:/<model id>``, the tracking URI that reaches it (a
    server's, when the runs' database keeps its artifacts behind it), and the registry version
    if registered."""

    model_uri: str
    tracking_uri: str
    registered_name: str | None = None
    registered_version: int | None = None

    @property
    def registry_uri(self) -> str | None:
        """``models:/<name>/<version>`` when registered."""
        if self.registered_name is None:
            return None
        return f"models:/{self.registered_name}/{self.registered_version}"


def output_names(dataset, n_out: int) -> list[str]:
    """``pred_<target>`` per network output, as predictions.csv names them."""
    names = list(dataset.target_names)
    if len(names) != n_out:
        names = ["y"] if n_out == 1 else [f"y{j}" for j in range(n_out)]
    return [f"pred_{n}" for n in names]


def write_network(path: Path, retrained) -> None:
    """The re-trained network (K = 1) and its input scaling as ``network.npz``."""
    mlp, params, dataset = retrained.mlp, retrained.params, retrained.dataset
    n_in = mlp.sizes[0]
    spec = {
        "n_in": n_in, "hidden": list(mlp.hidden), "n_out": mlp.n_out,
        "activation": mlp.activation, "output_activation": mlp.output_activation,
        "bias": mlp.bias, "dtype": str(np.asarray(params.W[0]).dtype),
        "features": list(dataset.feature_names), "outputs": output_names(dataset, mlp.n_out),
        "variant_key": retrained.variant.key,
    }
    arrays = {f"W{l}": np.asarray(W)[0] for l, W in enumerate(params.W)}      # (p, q)
    if params.b is not None:
        arrays.update({f"b{l}": np.asarray(b)[0] for l, b in enumerate(params.b)})  # (1, q)
    shift = dataset.input_shift if dataset.input_shift is not None else np.zeros(n_in)
    spread = dataset.input_spread if dataset.input_spread is not None else np.ones(n_in)
    np.savez(path, spec=np.array(json.dumps(spec)), input_shift=np.asarray(shift, np.float64),
             input_spread=np.asarray(spread, np.float64), **arrays)


def signature(dataset, n_out: int):
    """Inputs: one double column per feature; outputs: one per ``pred_<target>``."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in dataset.feature_names]),
        outputs=Schema([ColSpec("double", name) for name in output_names(dataset, n_out)]))


def log_network(tracking_uri: str, run_id: str, retrained,
                register: str | None = None) -> LoggedNetwork:
    """Log `retrained` (a `sweeps.execution.retrain.Retrained`) as a pyfunc model on run `run_id`.

    register : also register it in the model registry under this name (a new version).
    """
    import mlflow

    import core
    from sweeps.tracking.store import artifacts_tracking_uri, make_client

    client = make_client(tracking_uri, create=False)      # SQLite: WAL, as the sweep wrote
    # Runs in a server's database with artifacts behind the server (the compose set-up): the
    # model goes through the server, which writes to that same database.
    tracking_uri = artifacts_tracking_uri(client.get_run(run_id).info.artifact_uri, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="sweeps-model-") as tmp, _fluent_uri(tracking_uri):
        weights = Path(tmp) / "network.npz"
        write_network(weights, retrained)
        code = Path(tmp) / "core"
        shutil.copytree(Path(core.__file__).parent, code,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # Reopening the child run sets it RUNNING; ending it sets it FINISHED again.
        with mlflow.start_run(run_id=run_id), _quiet_mlflow():
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME, python_model=str(CODE_FILE),
                artifacts={"network": str(weights)}, code_paths=[str(code)],
                pip_requirements=[f"numpy=={np.__version__}"],
                signature=signature(retrained.dataset, retrained.mlp.n_out),
                registered_model_name=register)
    client.set_tag(run_id, MODEL_TAG, info.model_uri)
    return LoggedNetwork(model_uri=info.model_uri, tracking_uri=tracking_uri,
                         registered_name=register,
                         registered_version=info.registered_model_version if register else None)


@contextlib.contextmanager
def _fluent_uri(tracking_uri: str):
    """Point MLflow's fluent API (start_run, log_model) at `tracking_uri` for a moment.

    `mlflow.set_tracking_uri` also sets $MLFLOW_TRACKING_URI for the whole process; a library
    call must leave both as it found them (a later sweep in the same process would otherwise
    write to this store).
    """
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(tracking_uri):
            yield
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


@contextlib.contextmanager
def _quiet_mlflow():
    """Hide MLflow's advice that does not apply: an input example (the signature is given),
    and the pip version of an environment pinned to NumPy alone."""
    env_log = logging.getLogger("mlflow.utils.environment")
    level = env_log.level
    env_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*An input example was not provided",
                                    category=UserWarning)
            yield
    finally:
        env_log.setLevel(level)


def serve_command(model_uri: str, tracking_uri: str, port: int = 5001) -> str:
    """The shell command that serves the model locally (this environment, 127.0.0.1)."""
    return (f"MLFLOW_TRACKING_URI={tracking_uri} mlflow models serve -m {model_uri} "
            f"--env-manager local -h 127.0.0.1 -p {port}")
