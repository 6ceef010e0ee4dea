#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Check and time MPI collectives across the cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mpi_collectives
short_description: Run every MPI collective across all ranks, check each result and time it
description:
  - Launches O(python) O(script) (C(mtrt_collectives.py), mpi4py) under C(mpirun) on the launcher with the
    cluster hostfile, bounded by O(timeout_s) (the whole process tree is killed on expiry).
  - The script runs Bcast, Scatter, Gather, Allgather, Reduce and Allreduce (Reduce/Allreduce with MAX, MIN,
    SUM, PROD, LAND, LOR, BAND, BOR, MAXLOC, MINLOC) at every size from O(min_bytes) to O(max_bytes)
    (times O(factor)), compares every rank's result with the value it must have, and times it.
  - Returns one table row per collective, op and size, and fails naming the collective, op, size and rank
    that got a wrong value. Never changes anything (C(changed=false)).
author: mpi-trt-ansible
version_added: "1.0.0"
options:
  script:
    description: Path of C(mtrt_collectives.py) as seen on every node.
    type: path
    required: true
  min_bytes:
    description: Smallest message size in bytes.
    type: int
    default: 16
  max_bytes:
    description: Largest message size in bytes.
    type: int
    default: 16777216
  factor:
    description: Each size is the previous one times this.
    type: int
    default: 4
  iterations:
    description: Timed iterations per row (at most; fewer when one call takes longer than O(row_budget_s)).
    type: int
    default: 20
  warmup:
    description: Untimed calls before the timed ones.
    type: int
    default: 2
  row_budget_s:
    description: Seconds one row's timed loop should take at most; bounds the run on slow links.
    type: float
    default: 0.2
  timeout_s:
    description: Seconds before the whole launch is killed (its process group) and reported as timed out.
    type: int
    default: 300
  inject_fault:
    description:
      - Test hook. Corrupt one result, e.g. C(allreduce:SUM:rank1), to prove that the check catches a wrong
        reduction. The module then fails. Leave empty in real runs.
    type: str
    default: ""
extends_documentation_fragment:
  - mtrt_mpirun
  - mtrt_mpirun.launch
notes:
  - Supports check mode, in which it reports the command it would run, starts nothing, and returns
    C(rc=null) with C(failed=false).
  - Sizes follow nccl-tests; for Scatter, Gather and Allgather the size is the whole gathered buffer.
"""

EXAMPLES = r"""
- name: Check and time MPI collectives
  mpi_collectives:
    hostfile: /etc/mtrt/cluster/hostfile
    script: /etc/mtrt/cluster/mtrt_collectives.py
    max_bytes: 16777216
    mca:
      btl_tcp_if_include: 192.168.123.0/24
  register: mpi_collectives_result
"""

RETURN = r"""
# Besides the launch keys every mpirun module returns (see the mtrt_mpirun notes):
mtrt_kind:
  description: Always C(mpi_collectives); lets the run report file this result.
  returned: always
  type: str
results:
  description: One row per collective, op and size.
  returned: always
  type: list
  elements: dict
  sample:
    - {collective: allreduce, op: SUM, size_bytes: 1048576, time_us: 269.1, algbw_gbps: 3.897,
       busbw_gbps: 3.897, correct: true, iters: 20, time_min_us: 268.9, time_max_us: 269.2, bad_ranks: []}
table:
  description: The rows for Bcast, Scatter, Gather, Allgather and the SUM reductions as fixed-width text lines.
  returned: always
  type: list
  elements: str
largest_busbw:
  description: C(collective[:op]) to its bus bandwidth (GB/s) at the largest size.
  returned: always
  type: dict
  sample: {"allreduce:SUM": {size_bytes: 67108864, busbw_gbps: 1.25}}
failures:
  description: Wrong values, one per rank and row (collective, op, size_bytes, rank, host, index, expected, got).
  returned: always
  type: list
  elements: dict
world_size:
  description: Ranks the script saw (0 when it printed nothing).
  returned: always
  type: int
hosts:
  description: Host name of each rank, by rank.
  returned: always
  type: list
  elements: str
mpi_library:
  description: The MPI library mpi4py is linked to, as it names itself.
  returned: always
  type: str"""

from ansible.module_utils import mtrt_launch
from ansible.module_utils.mtrt_collectives import MARKER, format_table, parse_collectives
from ansible.module_utils.mtrt_proc import tail

KIND = "mpi_collectives"
FAULT_ENV = "MTRT_COLLECTIVES_INJECT_FAULT"
# The module's options; also what the controller validates against before a direct launch
# (mpi_trt_ansible/direct.py), which runs run() without Ansible on the launcher.
SPEC = dict(
    argument_spec=mtrt_launch.argument_spec(
        timeout_s=300,
        script=dict(type="path", required=True),
        min_bytes=dict(type="int", default=16),
        max_bytes=dict(type="int", default=16 << 20),
        factor=dict(type="int", default=4),
        iterations=dict(type="int", default=20),
        warmup=dict(type="int", default=2),
        row_budget_s=dict(type="float", default=0.2),
        inject_fault=dict(type="str", default="")),
    required_one_of=[("hostfile", "hosts")],
)


def run(module):
    """The collectives on ``module`` (an AnsibleModule, or the direct launch's stand-in with the same calls)."""
    p = module.params
    env = dict(p["env"])
    if p["inject_fault"]:
        env[FAULT_ENV] = p["inject_fault"]
    command = [p["python"], p["script"], "--min-bytes", str(p["min_bytes"]),
               "--max-bytes", str(p["max_bytes"]), "--factor", str(p["factor"]),
               "--iters", str(p["iterations"]), "--warmup", str(p["warmup"]),
               "--time-budget-s", str(p["row_budget_s"])]

    def check(launch):
        if p["min_bytes"] < 1 or p["max_bytes"] < p["min_bytes"] or p["factor"] < 2 or p["iterations"] < 1:
            return ["sizes %d..%d x%d with %d iterations: need 1 <= min_bytes <= max_bytes, factor >= 2, "
                    "iterations >= 1" % (p["min_bytes"], p["max_bytes"], p["factor"], p["iterations"])]
        return []

    def judge(run_, launch, result):
        # The per-size records are long: keep them out of the tail people read.
        result["stdout_tail"] = tail("\n".join(line for line in run_["stdout"].splitlines() if MARKER not in line))
        parsed = parse_collectives(run_["stdout"], expected_world=launch.np)
        result.update((k, parsed[k]) for k in ("world_size", "hosts", "mpi_library", "results", "failures",
                                               "largest_busbw"))
        result["table"] = format_table(parsed["results"], ops=(None, "SUM"))
        return ["MPI collectives gave wrong values: %s" % "; ".join(parsed["problems"][:5])] \
            if parsed["problems"] else []

    mtrt_launch.run_module(module, KIND, command, judge, env=env, check=check,
                           bound_name="cluster_mpi_timeout_s",
                           advice="raise timeout_s (cluster_mpi_timeout_s) or lower max_bytes (mpi_collectives_max_bytes)",
                           defaults=dict(world_size=0, hosts=[], mpi_library=None, results=[], table=[],
                                         largest_busbw={}, failures=[]))


def main():
    from ansible.module_utils.basic import AnsibleModule

    run(AnsibleModule(supports_check_mode=True, **SPEC))


if __name__ == "__main__":
    main()
