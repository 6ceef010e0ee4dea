#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hosts_preflight
short_description: Compare the machines of a multi-host cluster before anything changes
description:
  - For C(cluster_mode) V(hosts) (bare-metal machines over SSH) and V(docker_per_host) (one node container per
    machine). Compares the C(hosts_preflight_facts) results of every machine and fails with one numbered message listing
    B(every) problem, each naming the host, the variable, its value and the fix.
  - "Checks: machines unreachable (a changed SSH host key is named as such) or whose facts failed; Open MPI,
    mpi4py (and the MPI it is linked to), Python and TensorRT-LLM present and the same on every host (with a
    per-host table); node_ip inside C(cluster_network_subnet) and an address of its own machine (and on
    C(node_fabric_ifname) when set); the launcher's machine reaching every node's node_ip on the SSH port;
    memlock on GPU machines and C(/dev/shm); GPU ids each machine has, and (V(docker_per_host)) a docker
    daemon that can give them (C(nvidia-container-runtime-hook) on its PATH); the MPI account; host keys read on every machine (V(hosts)); the hostfile name of
    a node against its hostname; model and engine directories present and with the same content hash on every
    machine when no filesystem is shared; at most one host-network node container per docker host."
  - "Hosts mode, when the TensorRT-LLM stages will run (C(cluster_trtllm_enabled) V(true), or V(auto) with GPUs
    and tensorrt_llm on the machines): the request against the tensorrt_llm version the launcher's machine holds
    (C(mpi_trt_ansible/trtllm.py) request_problems: served version, family, pp limits, routing, beams, devices);
    V(true) without GPUs or without tensorrt_llm is refused. The C(cluster_trtllm_*) values are read from the
    play unless C(settings.trtllm) gives them."
  - The rules are C(mpi_trt_ansible/hosts.py). An action plugin runs them inside the controller process; this
    file holds the documentation only. Changes nothing.
author: mpi-trt-ansible
version_added: "1.2.0"
options:
  nodes:
    description: C(cluster_nodes), each C({name, ip, slots, gpus, mpi_host, fabric_ifname, docker_host}).
    type: list
    elements: dict
    required: true
  settings:
    description:
      - "C(mode), C(launcher), C(ssh_user), C(ssh_port), C(sshd) (V(system) or V(dedicated)), C(install_mpi),
        C(create_user), C(mpi_packages), C(python), C(fabric_subnet), C(memlock_min) (bytes, -1 unlimited, 0 no
        check), C(shm_min) (size such as V(1g)), C(same_dirs), C(shared_fs), C(container_network), C(ipc_mode),
        C(ulimits), C(docker_hosts), C(mpi_uid), C(trtllm) (the C(cluster_trtllm_*) values by name)."
    type: dict
    required: true
  facts:
    description: Machine name -> C(hosts_preflight_facts) result. Default, read from each machine's O(facts_vars).
    type: dict
  facts_vars:
    description: Names a machine's facts may be registered under; the first one set (and not skipped) is used.
    type: list
    elements: str
    default: [hosts_preflight_facts]
notes:
  - Supports check mode (it never changes anything).
"""

EXAMPLES = r"""
- name: Compare the machines
  hosts_preflight:
    nodes: "{{ cluster_nodes }}"
    settings: {mode: hosts, launcher: gpu01, ssh_user: mtrt, ssh_port: 22, fabric_subnet: 10.0.0.0/24}
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
mtrt_kind:
  description: Always C(hosts_preflight).
  returned: always
  type: str
ok:
  description: True when no problem was found.
  returned: always
  type: bool
problems:
  description: Every problem, each C({variable, value, message, fix}); the message names the host.
  returned: always
  type: list
  elements: dict
msg:
  description: One numbered message listing every problem and its fix (with the versions table in hosts mode).
  returned: always
  type: str
versions:
  description: Reachable machine -> C({openmpi, mpi4py, mpi4py_mpi, python, tensorrt_llm}) (null when missing).
  returned: always
  type: dict
versions_table:
  description: The same as a Markdown table, one row per machine.
  returned: always
  type: str
machines:
  description: The machines compared, in node order.
  returned: always
  type: list
  elements: str
nodes:
  description: Per node, what later stages need from its machine's facts (C(host_keys), C(fabric_ifname), C(hostname)).
  returned: always
  type: dict
openmpi_major:
  description: The Open MPI major version of every machine (null when unknown or mixed).
  returned: always
  type: int
gpus:
  description: GPU ids found on any machine.
  returned: always
  type: list
  elements: int
tensorrt_llm:
  description: Hosts mode, the TensorRT-LLM stages running; the tensorrt_llm version the request was checked against (null otherwise).
  returned: always
  type: str
"""
