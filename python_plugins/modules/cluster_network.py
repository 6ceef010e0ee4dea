#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Documentation of the cluster_network action (python_plugins/action/cluster_network.py); nothing runs here."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_network
short_description: Create the cluster's docker bridge network with a fixed subnet, inside the controller process
description:
  - Runs inside the controller process (an action plugin) through the Docker SDK; no module is built,
    shipped or started for the one or two API calls it makes. Stage 20 calls it on localhost.
  - Does what C(community.docker.docker_network) does with O(driver), one C(ipam_config) entry
    (O(subnet), O(gateway)), O(labels) and C(state=present); a missing network is created; a network
    whose driver, subnet, gateway or one of the given labels differs is removed (every container on it
    disconnected first) and created again; labels it has besides the given ones are kept; a network as
    wanted is left alone.
  - Supports check mode (nothing changes, C(changed) and C(actions) say what would) and diff mode
    (the network before and after).
author:
  - mpi-trt-ansible contributors
options:
  name:
    description: Docker network name.
    type: str
    required: true
  driver:
    description: Network driver.
    type: str
    default: bridge
    choices: [bridge]
  subnet:
    description: The network's one subnet, in CIDR form.
    type: str
    required: true
  gateway:
    description: Gateway address inside O(subnet).
    type: str
    required: true
  labels:
    description: Labels the network must carry (others it has are kept).
    type: dict
    default: {}
  state:
    description: Only C(present).
    type: str
    default: present
    choices: [present]
  docker_host:
    description: Docker engine URL; default C(DOCKER_HOST), else the local socket.
    type: str
  timeout_s:
    description: Seconds each docker API call may take.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Create the cluster network
  cluster_network:
    name: network_my
    subnet: 192.168.123.0/24
    gateway: 192.168.123.1
    labels:
      mtrt.cluster: mtrt
"""

RETURN = r"""
mtrt_kind:
  description: Always C(cluster_network).
  returned: always
  type: str
actions:
  description: What was done (or in check mode would be), in order.
  returned: always
  type: list
  elements: str
  sample: ["Created network network_my"]
differences:
  description: The settings in which an existing network was not as wanted.
  returned: always
  type: list
  elements: str
  sample: ["subnet 192.168.124.0/24 (wanted 192.168.123.0/24)"]
network:
  description: Docker's inspect of the network afterwards (in check mode, as it was; null when absent).
  returned: always
  type: dict
"""
