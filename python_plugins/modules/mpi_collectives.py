#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Check and time MPI collectives across the cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mpi_collectives
short_description: Run every MPI collective across all ranks, check each result and time it
description:
  - Launches O(python) O(script) (C(mtrt_collectives.py), mpi4py) under C(mpirun) on the launcher with the
    cluster hostfile, bounded by O(timeout_s) (the whole process group is killed on expiry).
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
mtrt_kind:
  description: Always C(mpi_collectives).
  returned: always
  type: str
  sample: mpi_collectives
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
problems:
  description: Every way the run fell short, one sentence each; empty when it passed.
  returned: always
  type: list
  elements: str
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
  type: str
command:
  description: The mpirun argv.
  returned: always
  type: list
rc:
  description: mpirun's exit status (null when it timed out or did not run, as in check mode).
  returned: always
  type: int
timed_out:
  description: Whether the launch ran past O(timeout_s) and was killed.
  returned: always
  type: bool
duration_s:
  description: Seconds the launch took.
  returned: always
  type: float
stdout_tail:
  description: Last lines of mpirun's standard output (the JSON line excluded).
  returned: always
  type: str
stderr_tail:
  description: Last lines of mpirun's standard error.
  returned: always
  type: str
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_collectives import (
    MARKER, OutputError, format_table, parse_collectives)
from ansible.module_utils.mtrt_mpi import (
    expected_placement, module_hosts, mpirun_argument_spec, mpirun_argv)
from ansible.module_utils.mtrt_proc import run_bounded, tail

KIND = "mpi_collectives"
FAULT_ENV = "MTRT_COLLECTIVES_INJECT_FAULT"




def main():
    module = AnsibleModule(
        argument_spec=dict(mpirun_argument_spec(timeout_s=300),
            script=dict(type="path", required=True),
            min_bytes=dict(type="int", default=16),
            max_bytes=dict(type="int", default=16 << 20),
            factor=dict(type="int", default=4),
            iterations=dict(type="int", default=20),
            warmup=dict(type="int", default=2),
            row_budget_s=dict(type="float", default=0.2),
            inject_fault=dict(type="str", default=""),
        ),
        required_one_of=[("hostfile", "hosts")],
        supports_check_mode=True,
    )
    p = module.params
    hosts = module_hosts(module, KIND)
    slots = sum(s for _, s in hosts)
    np = p["np"] or slots
    env = dict(p["env"])
    if p["inject_fault"]:
        env[FAULT_ENV] = p["inject_fault"]
    mpirun = shutil.which(p["mpirun"]) or p["mpirun"]
    command = [p["python"], p["script"], "--min-bytes", str(p["min_bytes"]),
               "--max-bytes", str(p["max_bytes"]), "--factor", str(p["factor"]),
               "--iters", str(p["iterations"]), "--warmup", str(p["warmup"]),
               "--time-budget-s", str(p["row_budget_s"])]
    argv = mpirun_argv(command, np, hostfile=p["hostfile"], hosts=None if p["hostfile"] else hosts,
                       mca=p["mca"], env_names=sorted(env), extra_args=p["extra_args"], mpirun=mpirun)
    result = dict(mtrt_kind=KIND, changed=False, command=argv, rc=None, timed_out=False, duration_s=0.0,
                  world_size=0, hosts=[], mpi_library=None, results=[], table=[], largest_busbw={},
                  failures=[], problems=[], stdout_tail="", stderr_tail="")

    if expected_placement(hosts, np) is None:
        msg = "np=%d ranks requested but the hosts give %d slots (%s): lower np or raise node_slots" % (
            np, slots, ", ".join("%s:%d" % h for h in hosts))
        module.fail_json(msg=msg, **dict(result, problems=[msg]))
    if p["min_bytes"] < 1 or p["max_bytes"] < p["min_bytes"] or p["factor"] < 2 or p["iterations"] < 1:
        module.fail_json(msg="sizes %d..%d x%d with %d iterations: need 1 <= min_bytes <= max_bytes, "
                             "factor >= 2, iterations >= 1" % (p["min_bytes"], p["max_bytes"],
                                                              p["factor"], p["iterations"]), **result)
    if not os.path.exists(mpirun):
        module.fail_json(msg="mpirun not found on the launcher (%s): install Open MPI in the node image"
                         % p["mpirun"], **result)
    if module.check_mode:
        # rc stays null (nothing ran); say failed=false, or Ansible reads a non-zero rc as a failure.
        module.exit_json(skipped_reason="check mode: mpirun not started", failed=False, **result)

    run = run_bounded(argv, p["timeout_s"], env=env or None)
    result.update(rc=run["rc"], timed_out=run["timed_out"], duration_s=run["duration_s"],
                  stdout_tail=tail("\n".join(line for line in run["stdout"].splitlines()
                                             if MARKER not in line)),
                  stderr_tail=tail(run["stderr"]))
    if run["timed_out"]:
        module.fail_json(msg="mpi_collectives timed out after %ds and was killed (np=%d, sizes %d..%d B); "
                             "raise timeout_s or lower max_bytes. Output tail: %s"
                             % (p["timeout_s"], np, p["min_bytes"], p["max_bytes"],
                                tail(run["stdout"] + run["stderr"], 8) or "(empty)"), **result)
    try:
        parsed = parse_collectives(run["stdout"], expected_world=np)
    except OutputError as exc:
        module.fail_json(msg="mpi_collectives: %s; mpirun exited with %s. stderr tail: %s"
                             % (exc, run["rc"], tail(run["stderr"], 8) or "(empty)"),
                         **dict(result, problems=[str(exc)]))
    result.update((k, parsed[k]) for k in ("world_size", "hosts", "mpi_library", "results", "failures",
                                           "largest_busbw", "problems"))
    result["table"] = format_table(parsed["results"], ops=(None, "SUM"))
    if parsed["problems"]:
        module.fail_json(msg="MPI collectives gave wrong values: %s" % "; ".join(parsed["problems"][:5]),
                         **result)
    if run["rc"] != 0:
        module.fail_json(msg="every collective was correct but mpirun exited with %s. stderr tail: %s"
                             % (run["rc"], tail(run["stderr"], 8) or "(empty)"), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
