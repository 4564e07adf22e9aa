"""`ray start` for a node of the loopback-only test cluster: `python ray_node.py <ray start args>`.

Ray resolves 127.0.0.1 to the machine's outward address ("localhost is not reachable from
other machines"), so a node started with `--address 127.0.0.1:PORT` registers and dials that
address, not the loopback. The head keeps to 127.0.0.1 through Ray's own single-machine switch
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0), but `ray start` refuses to start a *second* node under
that switch. This launcher runs Ray's unmodified `ray start` command with the node address
pinned to 127.0.0.1 in this process, and the switch set for the processes it spawns (raylet,
agents, workers), so every socket of the node stays on the loopback.
Used by tests/cluster/native_stack.py only; the containers of docker-compose.yml run plain
`ray start`, where each node has its own address.
"""

import os
import sys

LOOPBACK = "127.0.0.1"

if __name__ == "__main__":
    os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # read once, at import: multi-node on
    import ray._private.services as services
    from ray.scripts.scripts import cli

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"      # children: loopback node address
    services.get_node_ip_address = lambda address=None: LOOPBACK
    cli.main(["start", *sys.argv[1:]], prog_name="ray")
