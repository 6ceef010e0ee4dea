#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Documentation of the run_summary action (python_plugins/action/run_summary.py); nothing runs here."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_summary
short_description: Describe the cluster for the run report, and have the report print its summary so far
description:
  - Runs inside the controller process (an action plugin) and changes nothing; stage 99 calls it.
  - Returns the cluster it was given (name, mode, nodes with their addresses, network, shared
    directory, launcher) as a result of kind C(run_summary). The run_report callback files it like any
    project result, so the report names the cluster, and prints the report's own summary of the run so
    far beside the task (C(mpi_trt_ansible.report.summary_lines)), so stage 99 and the end of the run
    show the same lines from one implementation.
  - Without the run_report callback enabled there is no report, and only the cluster line is returned.
author:
  - mpi-trt-ansible contributors
options:
  cluster:
    description: The cluster to describe.
    type: dict
    required: true
    suboptions:
      name:
        description: C(cluster_name).
        type: str
        required: true
      mode:
        description: C(cluster_mode).
        type: str
        required: true
      nodes:
        description: C(cluster_nodes) (only C(name) and C(ip) are kept).
        type: list
        elements: dict
        default: []
      network:
        description: The docker network (C(name), C(subnet)); empty outside docker mode.
        type: dict
        default: {}
      shared:
        description: The shared directory (C(host_dir) on the docker host, C(mount) in the nodes).
        type: dict
        default: {}
      launcher:
        description: C(cluster_mpi_launcher).
        type: str
"""

EXAMPLES = r"""
- name: Summarise the run so far
  run_summary:
    cluster:
      name: "{{ cluster_name }}"
      mode: "{{ cluster_mode }}"
      nodes: "{{ cluster_nodes }}"
      launcher: "{{ cluster_mpi_launcher }}"
"""

RETURN = r"""
mtrt_kind:
  description: C(run_summary); lets the run report file this result.
  returned: always
  type: str
  sample: run_summary
cluster:
  description: The cluster as given, nodes reduced to C(name) and C(ip).
  returned: always
  type: dict
  sample: {name: mtrt, mode: docker, nodes: [{name: node1, ip: 192.168.123.111}],
           network: {name: mtrt-net, subnet: 192.168.123.0/24}, shared: {host_dir: /srv/shared, mount: /TRTDir},
           launcher: node1}
msg:
  description: The cluster in one sentence.
  returned: always
  type: str
  sample: "Cluster mtrt (docker mode): 2 nodes node1=192.168.123.111, node2=192.168.123.112; network mtrt-net ..."
"""
