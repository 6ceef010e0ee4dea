#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
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
  - mtrt_mpirun.launch
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
# Besides the launch keys every mpirun module returns (see the mtrt_mpirun notes):
mtrt_kind:
  description: Always C(mpi_hello); lets the run report file this result.
  returned: always
  type: str
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
missing_ranks:
  description: Ranks that were launched but never answered.
  returned: always
  type: list
  elements: int"""

from ansible.module_utils.mpi_output import parse_hello
from ansible.module_utils import mtrt_launch

KIND = "mpi_hello"
# The module's options; also what the controller validates against before a direct launch
# (mpi_trt_ansible/direct.py), which runs run() without Ansible on the launcher.
SPEC = dict(
    argument_spec=mtrt_launch.argument_spec(
        timeout_s=120,
        script=dict(type="path", required=True),
        check_placement=dict(type="bool", default=True)),
    required_one_of=[("hostfile", "hosts")],
)


def run(module):
    """The hello on ``module`` (an AnsibleModule, or the direct launch's stand-in with the same calls)."""
    params = module.params

    def judge(run_, launch, result):
        placement = launch.placement if params["check_placement"] else None
        parsed = parse_hello(run_["stdout"], launch.np, placement)
        result.update(parsed)
        return parsed["problems"]

    mtrt_launch.run_module(module, KIND, [params["python"], params["script"]], judge,
                           bound_name="cluster_mpi_timeout_s",
                           defaults=dict(world_size=0, expected_world_size=params["np"] or 0, ranks=[],
                                         ranks_per_host={}, missing_ranks=[]))


def main():
    from ansible.module_utils.basic import AnsibleModule

    run(AnsibleModule(supports_check_mode=True, **SPEC))


if __name__ == "__main__":
    main()
