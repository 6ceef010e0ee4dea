#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: triton_serve_plan
short_description: Work out where each Triton server's ranks run, its ports and the proxy in front
description:
  - An action that runs in the controller process (C(python_plugins/action/triton_serve_plan.py)) on
    inventory values only; this file is its documentation.
  - Applies the serving rules of C(mpi_trt_ansible/serving.py) - the same C(serve_problems) preflight
    uses - and returns the plan the serving stage acts on, or fails listing every problem (overlapping
    slots, a slot count other than tp x pp, GPU ids a node lacks, ports colliding on a node, an
    orchestrator across nodes, a proxy address that is taken), each naming the variable, its value and
    the fix. Changes nothing.
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  settings:
    description: >-
      The C(cluster_serve_*) settings by variable name, plus C(cluster_name), C(cluster_mode),
      C(cluster_ssh_port), C(cluster_network_subnet), C(cluster_network_gateway),
      C(cluster_trtllm_tp_size), C(cluster_trtllm_pp_size) and C(cluster_trtllm_gpus_per_node)
      (C(mpi_trt_ansible.serving.SETTINGS) lists them; a missing one takes the project default).
    type: dict
    required: true
  nodes:
    description: C(cluster_nodes) - C(name), C(ip), C(slots), C(gpus), C(mpi_host) of every node.
    type: list
    elements: dict
    required: true
notes:
  - "Check mode: supported (it changes nothing anyway)."
"""

EXAMPLES = r"""
- name: Plan the servers
  triton_serve_plan:
    settings: "{{ triton_serve_settings }}"
    nodes: "{{ cluster_nodes }}"
  register: triton_serve_planned
"""

RETURN = r"""
mtrt_kind:
  description: Always C(triton_serve_plan).
  returned: always
  type: str
  sample: triton_serve_plan
plan:
  description: >-
    C(mode), C(tp_size), C(pp_size), C(world_size), C(servers) (each C(name), C(host), C(ip), C(ranks)
    C([{rank, node, mpi_host, ip, slot, gpu}]), C(hosts), C(http_port), C(grpc_port), C(metrics_port),
    C(repo), C(shm_prefix), C(server_id), C(gpu_device_ids) or C(gpu_sets) and C(participant_ids),
    C(instance_count), C(env)), C(proxy) (C(enabled), C(address), C(port), C(listen_port), C(ip),
    C(upstreams)) and C(endpoint). Empty when there are problems.
  returned: always
  type: dict
problems:
  description: Every problem - C(variable), C(value), C(message), C(fix).
  returned: always
  type: list
  elements: dict
msg:
  description: One line per server, or the numbered problems.
  returned: always
  type: str
"""

if __name__ == "__main__":
    raise SystemExit("triton_serve_plan is an action plugin: it runs on the controller, not as a module")
