"""`sweeps ...` exactly as the console entry point runs it, but writing no configuration runs:
the baseline of what writing them costs (issue 24: at most 5% of the card sweep's wall time).

    repo=$PWD; for i in 1 2 3 4 5; do   # A (as shipped) and B (no configuration runs), alternated
      for main in "-m sweeps" "$repo/benchmarks/without_configurations.py"; do
        rm -rf /tmp/cfg && mkdir /tmp/cfg && (cd /tmp/cfg && /usr/bin/time -f "%e s  $main" \\
          $repo/.venv/bin/python $main run $repo/configs/card.yaml --no-progress >/dev/null)
      done
    done
"""

from sweeps import cli
from sweeps.report import outputs

outputs.write_configurations = lambda *args, **kwargs: None

if __name__ == "__main__":
    cli.main()
