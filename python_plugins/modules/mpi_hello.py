#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Run an MPI hello-world across the cluster and account for every rank."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mpi_hello
short_description: Run an mpi4py hello-world under mpirun and verify that every rank answered
description:
  - Launches O(python) O(script) under C(mpirun) on the node the task runs on (the launcher) with the
    cluster's hostfile, bounded by O(timeout_s) (the whole process group is killed on expiry).
  - Parses every rank's line and fails naming each rank that is missing, answered twice, saw another world
    size (a singleton launch) or ran on an unexpected host.
  - Adds C(--allow-run-as-root) only when it runs as root. Never changes anything (C(changed=false)).
author: mpi-trt-ansible
version_added: "1.0.0"
options:
  script:
    description: Hello-world script path as seen on every node.
    type: path
    required: true
  timeout_s:
    description: Seconds before the whole launch is killed (its process group) and reported as timed out.
    type: int
    default: 120
  check_placement:
    description: Fail when a rank ran on another host than Open MPI's by-slot mapping of the hostfile gives.
    type: bool
    default: true
extends_documentation_fragment:
  - mtrt_mpirun
notes:
  - Supports check mode, in which it reports the command it would run, starts nothing, and returns
    C(rc=null) with C(failed=false).
"""

EXAMPLES = r"""
- name: Say hello from every rank
  mpi_hello:
    hostfile: /etc/mtrt/cluster/hostfile
    script: /etc/mtrt/cluster/mpi_hello.py
    mca:
      btl_tcp_if_include: 192.168.123.0/24
  register: mpi_hello_result
"""

RETURN = r"""
mtrt_kind:
  description: Always C(mpi_hello); lets the run report file this result.
  returned: always
  type: str
  sample: mpi_hello
command:
  description: The mpirun argv.
  returned: always
  type: list
  sample: [/usr/bin/mpirun, --allow-run-as-root, --hostfile, /etc/mtrt/cluster/hostfile, -np, "4", python3, hello.py]
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
world_size:
  description: Number of distinct ranks that answered.
  returned: always
  type: int
  sample: 4
expected_world_size:
  description: Ranks launched (O(np)).
  returned: always
  type: int
  sample: 4
ranks:
  description: One record per rank that answered (rank, size, host, and what the script adds such as pid).
  returned: always
  type: list
  elements: dict
  sample: [{rank: 0, size: 4, host: node1, pid: 41}]
ranks_per_host:
  description: Host name to number of ranks that answered there.
  returned: always
  type: dict
  sample: {node1: 2, node2: 2}
expected_placement:
  description: Rank (as string) to the host Open MPI's by-slot mapping puts it on.
  returned: always
  type: dict
missing_ranks:
  description: Ranks that were launched but never answered.
  returned: always
  type: list
  elements: int
problems:
  description: Every way the run fell short, one sentence each; empty when it passed.
  returned: always
  type: list
  elements: str
stdout_tail:
  description: Last lines of mpirun's standard output.
  returned: always
  type: str
stderr_tail:
  description: Last lines of mpirun's standard error.
  returned: always
  type: str
"""

import os
import shutil
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mpi_output import parse_hello
from ansible.module_utils.mtrt_mpi import (
    expected_placement, module_hosts, mpirun_argument_spec, mpirun_argv)
from ansible.module_utils.mtrt_proc import run_bounded, tail




def main():
    module = AnsibleModule(
        argument_spec=dict(mpirun_argument_spec(timeout_s=120),
            script=dict(type="path", required=True),
            check_placement=dict(type="bool", default=True),
        ),
        required_one_of=[("hostfile", "hosts")],
        supports_check_mode=True,
    )
    params = module.params
    hosts = module_hosts(module, "mpi_hello")
    slots = sum(s for _, s in hosts)
    np = params["np"] or slots
    placement = expected_placement(hosts, np)
    if placement:
        # "localhost" in a hostfile is the launcher itself, which ranks report by its real name.
        me = socket.gethostname()
        placement = {r: me if h in ("localhost", "127.0.0.1") else h for r, h in placement.items()}
    mpirun = shutil.which(params["mpirun"]) or params["mpirun"]
    argv = mpirun_argv(
        [params["python"], params["script"]], np,
        hostfile=params["hostfile"], hosts=None if params["hostfile"] else hosts,
        mca=params["mca"], env_names=sorted(params["env"]), extra_args=params["extra_args"],
        mpirun=mpirun)
    result = dict(
        mtrt_kind="mpi_hello", changed=False, command=argv, rc=None, timed_out=False,
        duration_s=0.0, world_size=0, expected_world_size=np, ranks=[], ranks_per_host={},
        expected_placement={str(k): v for k, v in (placement or {}).items()},
        missing_ranks=[], problems=[], stdout_tail="", stderr_tail="")

    if placement is None:
        result["problems"] = ["np=%d ranks requested but the hosts give %d slots (%s)" % (
            np, slots, ", ".join("%s:%d" % h for h in hosts))]
        module.fail_json(msg=result["problems"][0] + ": lower np or raise node_slots", **result)
    if not os.path.exists(mpirun):
        module.fail_json(msg="mpirun not found on the launcher (%s): install Open MPI in the node image"
                         % params["mpirun"], **result)
    if module.check_mode:
        # rc stays null (nothing ran); say failed=false, or Ansible reads a non-zero rc as a failure.
        module.exit_json(skipped_reason="check mode: mpirun not started", failed=False, **result)

    run = run_bounded(argv, params["timeout_s"], env=params["env"] or None)
    parsed = parse_hello(run["stdout"], np, placement if params["check_placement"] else None)
    result.update(parsed)
    result.update(rc=run["rc"], timed_out=run["timed_out"], duration_s=run["duration_s"],
                  stdout_tail=tail(run["stdout"]), stderr_tail=tail(run["stderr"]))

    if run["timed_out"]:
        answered = ", ".join("%d@%s" % (r["rank"], r["host"]) for r in parsed["ranks"]) or "none"
        module.fail_json(msg="mpirun timed out after %ds and was killed (hostfile %s, np=%d); ranks that "
                             "answered: %s; %s" % (params["timeout_s"], params["hostfile"] or "--host", np,
                                                 answered, "; ".join(parsed["problems"]) or "no problems parsed"),
                         **result)
    if run["rc"] != 0 or parsed["problems"]:
        reasons = parsed["problems"] or ["mpirun exited with %s" % run["rc"]]
        if run["rc"] != 0 and parsed["problems"]:
            reasons.append("mpirun exited with %s" % run["rc"])
        module.fail_json(msg="MPI hello failed: %s. stderr tail: %s" % ("; ".join(reasons),
                                                                       tail(run["stderr"], 8) or "(empty)"),
                         **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
