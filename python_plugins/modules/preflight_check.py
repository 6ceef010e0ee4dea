#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Documentation of the preflight_check action (python_plugins/action/preflight_check.py); it never runs as a module."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: preflight_check
short_description: Check the inventory, every setting and the docker host before anything is created
description:
  - Runs inside the controller process (an action plugin); it has no options. It reads the play's variables
    itself, so what it checks is exactly what the plays will use.
  - Checks every variable of the inventory contract against its argument spec (type, choices) and range, namely
    the cluster-wide C(cluster_*) settings (C(roles/cluster/meta/contract.yml), entry point
    C(contract)), the per-node C(node_*) settings (entry point C(node)) and any stage-role variable the
    inventory or C(-e) sets (each role's C(main) entry point), and the settings of each docker host of
    C(docker_per_host) (C(docker_dir), an absolute path; C(docker_url), a URL C(docker -H) takes; entry point
    C(docker_host)). The C(cluster_trtllm_*) settings are checked
    when the TensorRT-LLM stages will run.
  - Refuses a cluster-wide variable that differs between the hosts the plays run on (the nodes, the docker
    hosts of C(docker_per_host), localhost), set under a group's C(vars) or on one host, naming the variable,
    the hosts and every value.
  - Checks the topology (node names, addresses, slots, GPUs, the network against docker's networks and the
    host's routes, SSH, the shared directory, ulimits against what the docker daemon can grant, the launcher)
    and the GPU layout (one rank per pinned GPU), the base image on the docker host, and, where those rules
    exist, the TensorRT-LLM world and the serving layout.
  - Reads the ranks' interpreter (C(cluster_mpi_python)) before anything is created, for its tensorrt_llm version,
    which the TensorRT-LLM request is checked against (served versions, family, pp limits, routing, beams). In
    local mode it runs on the controller; in the docker modes in a throwaway container of the base image
    (C(cluster_image_base); no network, removed by its exact name), once per image ID, the answer kept in
    C(cluster_state_dir)/preflight-probes.json so that a warm run starts no container. V(auto) skips the
    TensorRT-LLM stages where the image has no tensorrt_llm; V(true) is refused without it or without GPUs.
    The same reading refuses a C(cluster_mpi_python) that does not import mpi4py (stage 60 on needs it), unless
    the node image adds it (Debian's python3-mpi4py for the distribution's /usr/bin/python3).
    Hosts mode reads the machines in the preflight across hosts (C(hosts_preflight)).
  - When the TensorRT-LLM stages will run, in docker and local mode, the model and tokenizer directories
    (C(cluster_trtllm_model_dir), C(cluster_trtllm_tokenizer_dir)) must be there, a path under
    C(cluster_shared_mount) looked at in C(cluster_shared_host_dir) on the docker host.
  - Reads the docker engine once, in-process with the Docker SDK, for this cluster's containers, every image and
    network. Later stages decide from that listing instead of asking again.
  - Reports B(every) problem at once, each naming the variable (and its host), its value and the fix; fails
    when there is any. Changes nothing (C(changed) is always false).
author: mpi-trt-ansible
version_added: "1.0.0"
options: {}
notes:
  - Supports check mode (it never changes anything); in check mode before the launcher's container runs,
    the stages that run inside the nodes are not given any host.
"""

EXAMPLES = r"""
- name: Check the inventory, every setting and the docker host (nothing is changed)
  preflight_check:
  register: preflight_result
"""

RETURN = r"""
mtrt_kind:
  description: Always C(preflight); lets the run report file this result.
  returned: always
  type: str
  sample: preflight
ok:
  description: True when no problem was found.
  returned: always
  type: bool
  sample: false
problems:
  description:
    - Every problem found; each names the variable (and its host), its value, what is wrong and the fix.
    - C(host) is the node a problem is about, else V(localhost) (the controller, for cluster-wide values and the
      docker host's facts).
  returned: always
  type: list
  elements: dict
  sample:
    - variable: node_ip (node2)
      value: 192.168.123.1
      message: node_ip (node2) 192.168.123.1 equals cluster_network_gateway (the bridge itself).
      fix: "Give node2 a free address in 192.168.123.0/24, e.g. node_ip: 192.168.123.2."
      host: node2
checked:
  description: What was checked, as counts.
  returned: always
  type: dict
  sample: {mode: docker, nodes: 2, slots: 4, np: 4, gpus: 0, docker_networks: 3, host_routes: 3,
           docker_hosts: [localhost], ulimits: 1, variables: 58, trtllm: false, tensorrt_llm: null,
           runtime_cached: true}
docker:
  description: The docker host's listing (this cluster's containers, every image and network); empty outside docker mode.
  returned: always
  type: dict
mtrt_handoff:
  description: Keys of this result that later stages read and the run report leaves out (V([docker])).
  returned: always
  type: list
  elements: str
host_gpus:
  description: GPU indexes nvidia-smi lists on the controller ([] for none).
  returned: always
  type: list
  elements: int
stage_hosts:
  description: The hosts of the later plays (C(launcher), C(gpu), C(trtllm)) and whether nodes can be asked (C(nodes_run)).
  returned: always
  type: dict
  sample: {launcher: [node1], gpu: [node1], trtllm: [node1], nodes_run: true}
unconnected_nodes:
  description:
    - The nodes whose inventory (or C(-e)) sets no C(ansible_connection), each with the C(ansible_python_interpreter)
      it sets (C(python), null when none); the preflight role gives them their mode's connection.
  returned: always
  type: list
  elements: dict
  sample: [{name: node1, python: null}]
msg:
  description: One message listing every problem, numbered, each with its fix.
  returned: always
  type: str
"""
