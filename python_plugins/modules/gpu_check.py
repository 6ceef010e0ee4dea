#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Check GPUs across MPI ranks: rank -> device mapping, NCCL all-reduce bandwidth."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_check
short_description: Run a GPU probe under mpirun (rank -> device mapping, or NCCL all-reduce bandwidth)
description:
  - O(check=rank_device) runs C(mtrt_rank_device.py) under the same mpirun settings as inference; every rank
    reports the device it will use (C(rank % gpus_per_node)) and whether it exists. Fails with one sentence per
    rank that would hit "invalid device ordinal", and one per GPU that two or more ranks would share (NCCL's
    "Duplicate GPU detected"), naming the ranks, host, GPU and the setting to change.
  - O(check=nccl_allreduce) runs C(mtrt_nccl_allreduce.py) (PyTorch distributed, NCCL, one rank per GPU) the way
    nccl-tests' all_reduce_perf measures (in place, warm-up, iterations scaled per size, CUDA events on the
    stream of the collectives, busbw = algbw * 2(n-1)/n) and returns algbw/busbw per size, the NCCL transport
    (P2P, SHM, NET, NVLS, from C(NCCL_DEBUG=INFO)) and a verdict. The verdict names the NVLink limit only when
    O(nvlink_expected) and NCCL saw one node; a world of one rank is reported as nothing to measure.
  - Known raw NCCL/CUDA/docker messages in the output (e.g. C(Duplicate GPU detected), C(invalid device
    ordinal), C(posix_fallocate failed)) are returned in RV(explained) with their cause and fix, and the first
    of them is put in the failure message.
  - Bounded by O(timeout_s); the process group is killed on expiry. Never changes anything.
  - C(NCCL_NVLS_ENABLE=0) is exported unless O(env) sets it.
author: mpi-trt-ansible
version_added: "1.0.0"
options:
  check:
    description: Which probe to run.
    type: str
    required: true
    choices: [rank_device, nccl_allreduce]
  script:
    description: Path of the probe script as seen on every node.
    type: path
    required: true
  gpus_per_node:
    description: Device of a rank is C(rank % gpus_per_node); 0 lets each rank use what it sees (rank_device)
      or its local rank (nccl_allreduce).
    type: int
    default: 0
  master_addr:
    description: Rendezvous host for NCCL; default the first host of the hostfile (or O(hosts)).
    type: str
    default: ""
  master_port:
    description: Rendezvous TCP port on O(master_addr).
    type: int
    default: 29551
  min_bytes:
    description: Smallest all-reduce size in bytes.
    type: int
    default: 1024
  max_bytes:
    description: Largest all-reduce size in bytes (NVLink peaks only at 1 GiB and above).
    type: int
    default: 1073741824
  iterations:
    description: Fewest timed all-reduce calls per size (nccl-tests' default count).
    type: int
    default: 20
  max_iterations:
    description: Most timed all-reduce calls per size.
    type: int
    default: 1000
  target_s:
    description: Seconds of timed calls each size aims at; the call count per size is scaled to it (within
      O(iterations) and O(max_iterations)) from the warm-up's timing.
    type: float
    default: 0.25
  warmup:
    description: Untimed all-reduce calls per size before its timed run.
    type: int
    default: 5
  backend:
    description: torch.distributed backend of the all-reduce; C(gloo) runs it on CPU (for tests, no GPU needed).
    type: str
    default: nccl
    choices: [nccl, gloo]
  nccl_debug:
    description: Export C(NCCL_DEBUG=INFO) so the transport can be read from the log.
    type: bool
    default: true
  min_busbw_gbps:
    description: Fail when busbw at the largest size is below this (0 never fails on bandwidth).
    type: float
    default: 0
  nvlink_expected:
    description: The node has two or more GPUs joined by NVLink. Only then does the verdict name the NVLink limit
      (percent of it), and say so when NCCL does not use P2P/NVLS (e.g. the ranks sit in separate containers).
    type: bool
    default: false
  timeout_s:
    description: Seconds before the whole launch is killed (its process group) and reported as timed out.
    type: int
    default: 300
extends_documentation_fragment:
  - mtrt_mpirun
  - mtrt_mpirun.launch
"""

EXAMPLES = r"""
- name: Check that every rank finds its GPU
  gpu_check:
    check: rank_device
    hostfile: /etc/mtrt/cluster/hostfile
    script: /etc/mtrt/cluster/mtrt_rank_device.py
    gpus_per_node: 1

- name: Measure NCCL all-reduce bandwidth
  gpu_check:
    check: nccl_allreduce
    hostfile: /etc/mtrt/cluster/hostfile
    script: /etc/mtrt/cluster/mtrt_nccl_allreduce.py
    max_bytes: 4294967296
    nvlink_expected: true
"""

RETURN = r"""
# Besides the launch keys every mpirun module returns (see the mtrt_mpirun notes):
mtrt_kind:
  description: C(gpu_rank_device) for O(check=rank_device), C(nccl_allreduce) for O(check=nccl_allreduce); lets the run report file this result.
  returned: always
  type: str
ranks:
  description: One record per rank (rank, host, local_rank, device, exists, visible_count, ... for rank_device;
    rank, host, device, device_name for nccl_allreduce).
  returned: always
  type: list
  elements: dict
results:
  description: All-reduce rows (size_bytes, count, dtype, warmup_iters, iters, time_us (mean over the ranks),
    time_us_max, host_time_us, algbw_gbps, busbw_gbps, correct, bad_ranks); empty for rank_device and for a
    world of one rank.
  returned: always
  type: list
  elements: dict
largest:
  description: size_bytes, busbw_gbps and algbw_gbps at the largest size (empty for rank_device).
  returned: always
  type: dict
  sample: {size_bytes: 4294967296, busbw_gbps: 345.55, algbw_gbps: 345.55}
transport:
  description: NCCL transports seen (transports, channels, nvls_channels, nodes); empty for rank_device.
  returned: always
  type: dict
  sample: {transports: [P2P], channels: {P2P/CUMEM: 48}, nvls_channels: 0, nodes: 1}
verdict:
  description: One sentence on the bandwidth and the link class (empty for rank_device); for one rank it says
    there is nothing to measure.
  returned: always
  type: str
nothing_to_measure:
  description: The all-reduce ran on one rank, so no bandwidth was measured (false for rank_device).
  returned: always
  type: bool
method:
  description: How the all-reduce was timed (timer, stream, in_place, dtype, op, warmup_iters, min_iters,
    max_iters, target_s, rank_time); empty for rank_device.
  returned: always
  type: dict
  sample: {timer: cuda_events, stream: dedicated, in_place: true, dtype: float32, op: sum, warmup_iters: 5,
           min_iters: 20, max_iters: 1000, target_s: 0.25, rank_time: mean, windows: 1024}
explained:
  description: Known raw NCCL/CUDA/docker lines found in the output, each with its cause and fix
    (raw, cause, fix); empty when none.
  returned: always
  type: list
  elements: dict
  sample: [{raw: "vm:1003:1003 [1] NCCL WARN Duplicate GPU detected : rank 1 and rank 0 both on CUDA device 1a000",
            cause: "ranks 1 and 0 run on the same GPU (bus id 1a000); NCCL needs one rank per GPU",
            fix: "keep node_slots <= the GPUs of each node (lower node_slots, or pin more GPUs with node_gpus);
                  the rank -> GPU check names the host"}]
versions:
  description: torch and NCCL versions the probe ran with (empty for rank_device).
  returned: always
  type: dict
world_size:
  description: Ranks that reported.
  returned: always
  type: int
findings:
  description: Findings that do not fail the check (e.g. a busbw floor that one rank cannot check); also shown
    as warnings.
  returned: always
  type: list
  elements: str"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils import mtrt_launch
from ansible.module_utils.mtrt_gpu import (
    judge_allreduce, nvlink_limit_gbps, parse_nccl_allreduce, parse_rank_device, parse_rank_errors)
from ansible.module_utils.mtrt_proc import tail

KINDS = {"rank_device": "gpu_rank_device", "nccl_allreduce": "nccl_allreduce"}
NOISE = ("MTRT-", "NCCL INFO")


def script_command(p, hosts):
    command = [p["python"], p["script"], "--gpus-per-node", str(p["gpus_per_node"])]
    if p["check"] == "nccl_allreduce":
        command += ["--master-addr", p["master_addr"] or hosts[0][0], "--master-port", str(p["master_port"]),
                    "--min-bytes", str(p["min_bytes"]), "--max-bytes", str(p["max_bytes"]),
                    "--iters", str(p["iterations"]), "--max-iters", str(p["max_iterations"]),
                    "--target-s", str(p["target_s"]), "--warmup", str(p["warmup"]),
                    "--timeout-s", str(p["timeout_s"]), "--backend", p["backend"]]
    return command


def judge(p, run, np, result):
    """Parse the probe's output into ``result``; return the problems."""
    text = run["stdout"] + "\n" + run["stderr"]
    if p["check"] == "rank_device":
        parsed = parse_rank_device(run["stdout"], expected_world=np)
        result.update(ranks=parsed["ranks"], world_size=parsed["world_size"], findings=parsed["warnings"])
        return parsed["problems"]
    try:
        parsed = parse_nccl_allreduce(text, expected_world=np)
    except ValueError as exc:  # no result line: say which ranks reported a failure, and what
        raise ValueError("; ".join([str(exc)] + parse_rank_errors(run["stdout"])[:4])) from exc
    names = [r.get("device_name") for r in parsed["ranks"] if isinstance(r, dict)]
    verdict, problems, findings = judge_allreduce(parsed, nvlink_limit_gbps(names[0] if names else ""),
                                                  p["nvlink_expected"], p["min_busbw_gbps"])
    result.update(ranks=parsed["ranks"], world_size=parsed["world_size"], results=parsed["rows"],
                  largest=parsed["largest"], transport=parsed["transport"], verdict=verdict,
                  nothing_to_measure=parsed["nothing_to_measure"], method=parsed["method"],
                  findings=findings, versions={"torch": parsed["torch"], "nccl": parsed["nccl"]})
    return parsed["problems"] + problems


def main():
    module = AnsibleModule(
        argument_spec=mtrt_launch.argument_spec(
            timeout_s=300,
            check=dict(type="str", required=True, choices=sorted(KINDS)),
            script=dict(type="path", required=True),
            gpus_per_node=dict(type="int", default=0),
            master_addr=dict(type="str", default=""),
            master_port=dict(type="int", default=29551),
            min_bytes=dict(type="int", default=1024),
            max_bytes=dict(type="int", default=1 << 30),
            iterations=dict(type="int", default=20),
            warmup=dict(type="int", default=5),
            nccl_debug=dict(type="bool", default=True),
            min_busbw_gbps=dict(type="float", default=0.0),
            nvlink_expected=dict(type="bool", default=False),
            backend=dict(type="str", default="nccl", choices=["nccl", "gloo"]),
            max_iterations=dict(type="int", default=1000),
            target_s=dict(type="float", default=0.25)),
        required_one_of=[("hostfile", "hosts")],
        supports_check_mode=True,
    )
    p = module.params
    kind = KINDS[p["check"]]
    env = {"NCCL_NVLS_ENABLE": "0"}
    if p["check"] == "nccl_allreduce" and p["nccl_debug"]:
        env["NCCL_DEBUG"] = "INFO"
    env.update(p["env"])
    try:
        hosts = mtrt_launch.hosts_of(p)
    except mtrt_launch.LaunchError:
        hosts = [("127.0.0.1", 1)]  # run_module reports the bad hostfile

    def check(launch):
        if p["iterations"] < 1 or p["max_iterations"] < p["iterations"] or p["warmup"] < 1 or p["target_s"] <= 0:
            return ["need 1 <= iterations (%d) <= max_iterations (%d), warmup >= 1 (%d) and target_s > 0 (%s)"
                    % (p["iterations"], p["max_iterations"], p["warmup"], p["target_s"])]
        return []

    def run_judge(run, launch, result):
        result["stdout_tail"] = tail("\n".join(line for line in run["stdout"].splitlines()
                                               if not any(n in line for n in NOISE)))
        problems = judge(p, run, launch.np, result)
        for finding in result["findings"]:
            module.warn(finding)
        return problems

    mtrt_launch.run_module(module, kind, script_command(p, hosts), run_judge, env=env, check=check,
                           bound_name="cluster_mpi_timeout_s",
                           defaults=dict(world_size=0, ranks=[], results=[], largest={}, transport={}, verdict="",
                                         versions={}, nothing_to_measure=False, method={}, findings=[]))


if __name__ == "__main__":
    main()
