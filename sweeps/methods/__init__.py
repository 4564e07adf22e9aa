"""Search methods: one module each, holding what a method reads from the file and how it
decides while the sweep runs.

- `base`: the seam. `SearchMethod` (its `search:` keys, checks, the points it may train, its
  lines in `sweeps plan`) and `Scheduler` (ask for a `Round` of work, be told its results),
  with the requests a round is made of: `Start`, `Continue`, `Fork`, `Stop`.
- `static`: grid and random search, every point chosen before anything trains (one round).
- `halving` (+ `brackets`, its bookkeeping): successive halving with Hyperband brackets.
- `model_based`: TPE and Gaussian-process search through Optuna's samplers, a batch of
  configurations per round.

The table of methods by YAML name is `sweeps.spec.search.SEARCH_METHODS`; the driver that runs
any scheduler's rounds is `sweeps.scheduling.run_scheduled`. Pure bookkeeping here: no Ray,
no MLflow.
"""
