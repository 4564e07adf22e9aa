"""Everything that knows MLflow: the layout contract, connecting, writing, reading, the UI.

`contract` (tag names, limits, param encoding: needs no MLflow), `run_records` (`RunRecord`, what
a child run holds, typed: needs no MLflow), `store` (clients, SQLite set-up, reachability),
`tracker` (the `Tracker` seam and `open_tracker`), `child` (one variant's run, for every
writer), `track` (the client writer), `bulk` (one transaction per batch, for database
stores), `readback` (records from MLflow alone; `sqlread` its set-based SQL reader), `ui`
(`sweeps ui`). The rest of the package talks to MLflow only through these modules and sees
only records.
"""

from sweeps.tracking.tracker import Tracker, open_tracker

__all__ = ["Tracker", "open_tracker"]
