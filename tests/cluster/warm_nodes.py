"""One tiny task pinned to each given node: `python warm_nodes.py ADDRESS NODE_ID...`.

Proof that each node runs tasks, and a worker process started on each, before a test counts
on packs landing on both nodes: a node that was just (re)started on a busy machine is ALIVE
for minutes before it can start its first worker, and the scheduler meanwhile keeps every
pack on the other node. Exits 0 once every node has answered.
"""

import sys

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@ray.remote(num_cpus=1)
def node_id() -> str:
    return ray.get_runtime_context().get_node_id()


if __name__ == "__main__":
    ray.init(address=sys.argv[1], log_to_driver=False)
    wanted = sorted(sys.argv[2:])   # the live nodes (a killed one can look ALIVE for a while)
    pinned = [node_id.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
              .remote() for node in wanted]
    answered = sorted(ray.get(pinned))
    ray.shutdown()
    sys.exit(0 if answered == wanted else f"nodes {wanted} answered {answered}")
