"""The MLflow pyfunc model of one trained network (logged "as code" by `sweeps.tracking.model`).

MLflow runs this file when it loads the model, so it keeps one rule: it imports NumPy, pandas
and MLflow (what any pyfunc environment has) and `core`, which ships inside the model as its
``code_paths`` — never `sweeps`. A loaded model works where this package is not installed.

Input: a frame with the data set's feature columns, *raw* (as in the CSV or built-in set):
the model applies the input scaling fitted on the training split (``data.scale``) itself.
Output: a frame with one ``pred_<target>`` column per network output, the values
predictions.csv holds (targets scaled as in training when ``data.target_scale`` is set).

The weights and everything else the network needs live in one artifact, ``network.npz``:
``W0 .. W{L-1}`` (sizes[l], sizes[l+1]), ``b0 ..`` (1, sizes[l+1]) with bias,
``input_shift`` and ``input_spread`` (n_in,), and ``spec``, a JSON string (layer sizes,
activations, dtype, feature and output names).
"""

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class NetworkModel(PythonModel):
    """core's forward pass over the stored weights, on raw feature frames."""

    def load_context(self, context):
        import core  # from the model's code_paths

        with np.load(context.artifacts["network"], allow_pickle=False) as arrays:
            spec = json.loads(str(arrays["spec"]))
            layers = len(spec["hidden"]) + 1
            dtype = np.dtype(spec["dtype"])
            W = tuple(arrays[f"W{l}"][None].astype(dtype) for l in range(layers))  # (1, p, q)
            b = tuple(arrays[f"b{l}"][None].astype(dtype) for l in range(layers)) \
                if spec["bias"] else None                                          # (1, 1, q)
            self.shift = arrays["input_shift"]                                     # (n_in,)
            self.spread = arrays["input_spread"]                                   # (n_in,)
        self.core = core
        self.spec = spec
        self.dtype = dtype
        self.mlp = core.MLP(n_in=spec["n_in"], hidden=tuple(spec["hidden"]), n_out=spec["n_out"],
                            activation=spec["activation"],
                            output_activation=spec["output_activation"], bias=spec["bias"])
        self.params = core.Params(W, b)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        features = self.spec["features"]
        if isinstance(model_input, pd.DataFrame):
            missing = [f for f in features if f not in model_input.columns]
            if missing:
                raise ValueError(f"input lacks feature columns {missing}; expected {features}")
            raw = model_input[features].to_numpy(dtype=np.float64)
        else:
            raw = np.asarray(model_input, dtype=np.float64).reshape(-1, len(features))
        X = ((raw - self.shift) / self.spread).astype(self.dtype, copy=False)  # (n, n_in)
        out = self.core.predict(self.mlp, self.params, X)[0]                   # (n, n_out)
        return pd.DataFrame(out.astype(np.float64), columns=self.spec["outputs"])


mlflow.models.set_model(NetworkModel())
