#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Documentation of the node_containers_settled action (python_plugins/action/node_containers_settled.py);
nothing runs here."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_containers_settled
short_description: Record what stages 10-40 left, so that the next run can find them settled
description:
  - Runs inside the controller process (an action plugin), at the end of stage 40 in docker mode, in a run
    that ran every stage up to it (no C(--tags)).
  - Writes C(<state_dir>/settled.json) (0600) - the digest of the stages' inputs that preflight computed in this
    run, the base image's ID as it is now (stage 10 may have just built it), the node image's and the
    network's IDs and every node container's ID, state and image as docker lists
    them now, and the sha256 and mode of every file of the state directory's C(cluster/), C(ssh/) and
    C(hostkeys/). The next run's preflight compares it with what it finds (C(mpi_trt_ansible.settled)) and,
    when all of it holds, gives stages 10 to 50 no host.
  - Changes nothing where the same record is already there. In check mode it records nothing.
author:
  - mpi-trt-ansible contributors
options:
  digest:
    description: The digest of the stages' inputs (C(cluster_settled.digest), from preflight).
    type: str
    required: true
  cluster:
    description: C(cluster_name) (the docker listing's label filter).
    type: str
    required: true
  state_dir:
    description: The cluster's state directory (C(cluster_state_dir)).
    type: path
    required: true
  image:
    description: The node image reference.
    type: str
    required: true
  base:
    description:
      - The base image of the node image (C(cluster_image_base)); empty means the offline base stage 10 builds
        (label C(mtrt.role=base)).
    type: str
    default: ""
  network:
    description: The cluster network.
    type: str
    required: true
  nodes:
    description: The node containers' names.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Record that stages 10-40 are settled
  node_containers_settled:
    digest: "{{ cluster_settled.digest }}"
    cluster: "{{ cluster_name }}"
    state_dir: "{{ cluster_state_dir }}"
    image: "mtrt-node:{{ cluster_name }}"
    base: "{{ cluster_image_base }}"
    network: "{{ cluster_network_name }}"
    nodes: "{{ cluster_nodes | map(attribute='name') | list }}"
"""

RETURN = r"""
mtrt_kind:
  description: Always C(node_containers_settled).
  returned: always
  type: str
path:
  description: The record's path.
  returned: always
  type: str
msg:
  description: What was recorded (or why nothing was).
  returned: always
  type: str
"""
