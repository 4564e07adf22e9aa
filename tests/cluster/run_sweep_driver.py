"""Run `sweeps.run.run_sweep` against a cluster in a process of its own; save what it returns.

    python run_sweep_driver.py SWEEP_FILE TRACKING_URI RAY_ADDRESS OUT_DIR RESULT_PREFIX

Writes RESULT_PREFIX.json (parent run id, out dir, status, nodes, counts) and
RESULT_PREFIX.frame.pkl (the per-variant DataFrame). The cluster tests run the library entry
point here rather than in the pytest process because Ray is process-wide: a test session may
already hold a local Ray instance (which run_sweep would reuse instead of joining the
cluster), and the native cluster needs its own auth token and loopback settings.
"""

import json
import sys
from pathlib import Path

from sweeps.run import run_sweep


def main(path: str, tracking_uri: str, address: str, out: str, prefix: str) -> int:
    outcome = run_sweep(path, tracking_uri=tracking_uri, address=address, executor="ray",
                        out=out, fresh=False, progress=False)
    prefix_path = Path(prefix)
    outcome.frame.to_pickle(f"{prefix_path}.frame.pkl")
    Path(f"{prefix_path}.json").write_text(json.dumps({
        "parent_run_id": outcome.parent_run_id,
        "out_dir": str(outcome.out_dir),
        "status": outcome.status,
        "nodes": outcome.nodes,
        "writers": outcome.writers,
        "trained": outcome.trained,
        "skipped": outcome.skipped,
        "failed": outcome.failed,
        "tracking_uri": outcome.tracking_uri,
    }))
    print(outcome.report())                      # the failures, if any, are listed there
    return 0 if outcome.status == "FINISHED" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
