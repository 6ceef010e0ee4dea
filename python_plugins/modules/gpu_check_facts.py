#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Read a node's GPUs with nvidia-smi."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_check_facts
short_description: Read the GPUs a node can see (nvidia-smi), with topology and NVLink when available
description:
  - Runs C(nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id --format=csv,noheader,nounits),
    then, when O(topology) is true, C(nvidia-smi topo -m) and C(nvidia-smi nvlink -s) (best effort).
  - A node without nvidia-smi, or where it fails (no driver, no GPU passed into the container), gives
    C(present=false) and a C(reason); the module does not fail then. Output that is not what nvidia-smi prints
    fails the task naming the line. Never changes anything.
author: mpi-trt-ansible
version_added: "1.0.0"
options:
  nvidia_smi:
    description: nvidia-smi command or path.
    type: str
    default: nvidia-smi
  topology:
    description: Also read C(topo -m) and C(nvlink -s).
    type: bool
    default: true
  timeout_s:
    description: Seconds each nvidia-smi call may take.
    type: int
    default: 60
notes:
  - Supports check mode (it only reads).
"""

EXAMPLES = r"""
- name: Read this node's GPUs
  gpu_check_facts:
  register: gpu_check_facts
"""

RETURN = r"""
mtrt_kind:
  description: Always C(gpu_facts).
  returned: always
  type: str
present:
  description: Whether nvidia-smi ran and listed at least one GPU.
  returned: always
  type: bool
reason:
  description: Why C(present) is false (empty when true).
  returned: always
  type: str
  sample: "nvidia-smi not found on PATH"
count:
  description: Number of GPUs.
  returned: always
  type: int
gpus:
  description: One record per GPU.
  returned: always
  type: list
  elements: dict
  sample: [{index: 0, uuid: GPU-ccc8025b-672c-6d20-754c-51f9d832abf7, name: NVIDIA H200,
            memory_total_mib: 143771, pci_bus_id: "00000000:00:06.0"}]
topology:
  description: Parsed C(topo -m) (devices, gpus, links, affinity); null when not read or not parsable.
  returned: always
  type: dict
nvlink:
  description: NVLink summary (gpu_count, pairs, nvlink_pairs, all_pairs_nvlink, min_nvlinks, active_links).
  returned: always
  type: dict
nvlink_limit_gbps:
  description: Per-direction NVLink bandwidth of this GPU model; null when unknown, and when this node has no
    two GPUs joined by NVLink (one GPU, PCIe only, or topology not read).
  returned: always
  type: float
topology_error:
  description: Why the topology is missing (empty when read).
  returned: always
  type: str
"""

import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_gpu import (
    QUERY_GPU_ARGS, GpuParseError, nvlink_limit_gbps, nvlink_summary, parse_nvlink_status, parse_query_gpu,
    parse_topo)
from ansible.module_utils.mtrt_proc import run_bounded, tail


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            topology=dict(type="bool", default=True),
            timeout_s=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(mtrt_kind="gpu_facts", changed=False, present=False, reason="", count=0, gpus=[],
                  topology=None, nvlink={}, nvlink_limit_gbps=None, topology_error="")
    smi = shutil.which(p["nvidia_smi"])
    if not smi:
        module.exit_json(**dict(result, reason="%s not found on PATH: no NVIDIA driver/utilities on this "
                                               "node (or no GPU passed into the container)" % p["nvidia_smi"]))
    run = run_bounded([smi] + QUERY_GPU_ARGS, p["timeout_s"])
    if run["timed_out"] or run["rc"] != 0:
        why = "timed out after %ds" % p["timeout_s"] if run["timed_out"] else "exited with %s" % run["rc"]
        module.exit_json(**dict(result, reason="nvidia-smi %s: %s" % (
            why, tail(run["stdout"] + run["stderr"], 3) or "(no output)")))
    try:
        gpus = parse_query_gpu(run["stdout"])
    except GpuParseError as exc:
        module.fail_json(msg=str(exc), **result)
    result.update(gpus=gpus, count=len(gpus), present=bool(gpus),
                  reason="" if gpus else "nvidia-smi lists no GPU")
    if gpus and p["topology"]:
        topo = run_bounded([smi, "topo", "-m"], p["timeout_s"])
        try:
            if topo["rc"] != 0:
                raise GpuParseError("nvidia-smi topo -m exited with %s: %s"
                                    % (topo["rc"], tail(topo["stdout"] + topo["stderr"], 2)))
            result["topology"] = parse_topo(topo["stdout"])
        except GpuParseError as exc:
            result["topology_error"] = str(exc)
        if result["topology"]:
            links = run_bounded([smi, "nvlink", "-s"], p["timeout_s"])
            status = parse_nvlink_status(links["stdout"]) if links["rc"] == 0 else {}
            result["nvlink"] = nvlink_summary(result["topology"], status)
    if result["nvlink"].get("nvlink_pairs"):
        # A limit of a link the node has: two or more of its GPUs are joined by NVLink.
        result["nvlink_limit_gbps"] = nvlink_limit_gbps(gpus[0]["name"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
