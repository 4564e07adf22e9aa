"""`sweeps ...` exactly as the console entry point runs it, but writing no configuration runs:
the baseline of what writing them costs (issue 24: at most 5% of the card sweep's wall time).

    farm-bench -n 7 --timeout 900 \\
        --vs "sh -c 'rm -rf /tmp/cfgB && mkdir /tmp/cfgB && cd /tmp/cfgB && exec \\
              $PWD/.venv/bin/python $PWD/benchmarks/without_configurations.py run \\
              $PWD/configs/card.yaml --no-progress'" \\
        -- sh -c 'rm -rf /tmp/cfgA && mkdir /tmp/cfgA && cd /tmp/cfgA && exec \\
              $PWD/.venv/bin/sweeps run $PWD/configs/card.yaml --no-progress'
"""

from sweeps import cli
from sweeps.report import outputs

outputs.write_configurations = lambda *args, **kwargs: None

if __name__ == "__main__":
    cli.main()
