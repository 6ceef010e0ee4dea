# SPDX-License-Identifier: Apache-2.0
"""The GPU layout rules of preflight: one rank per GPU where GPUs are pinned, and in local mode one rank per GPU the
machine lets its ranks see (mpi_trt_ansible.preflight.gpus)."""

import subprocess

from conftest import FIXTURES
from test_preflight_check import variables, view

from mpi_trt_ansible import preflight
from mpi_trt_ansible.preflight import facts
from mpi_trt_ansible.preflight.gpus import layout_problems as gpu_layout_problems
from mpi_trt_ansible.preflight.gpus import local_problems, visible_gpus

# --- inventory layout for GPU stages ---------------------------------------------------------------

def test_gpu_layout_problems_slots_over_pinned_gpus():
    problems = gpu_layout_problems([
        {"name": "gpu0", "slots": 2, "gpus": [0]},          # issue #18: 2 ranks on 1 GPU
        {"name": "node2", "slots": 1, "gpus": [1]},         # fine
        {"name": "node3", "slots": 4, "gpus": 2},           # a count instead of ids
        {"name": "node4", "slots": 2, "gpus": []},          # nothing pinned: judged at run time
        {"name": "node5", "slots": "two", "gpus": [0]},     # not a number: preflight names it elsewhere
        {"name": "node6", "slots": 2, "gpus": [0, "x"]},
    ])
    assert problems == [
        {"variable": "node_slots (gpu0)", "value": 2,
         "message": "node_slots (gpu0) is 2, but gpu0 has 1 GPU pinned (node_gpus [0]): 2 ranks would share GPUs, "
                    "which NCCL refuses ('Duplicate GPU detected') and TensorRT-LLM does not do (one rank per GPU).",
         "fix": "Set node_slots to 1 on host gpu0, or pin 2 GPUs to it with node_gpus."},
        {"variable": "node_slots (node3)", "value": 4,
         "message": "node_slots (node3) is 4, but node3 has 2 GPUs pinned (2 GPUs): 4 ranks would share GPUs, "
                    "which NCCL refuses ('Duplicate GPU detected') and TensorRT-LLM does not do (one rank per GPU).",
         "fix": "Set node_slots to 2 on host node3, or pin 4 GPUs to it with node_gpus."}]
    assert gpu_layout_problems([]) == [] and gpu_layout_problems(None) == []


# --- local mode: the node is this machine; its ranks share the GPUs it lets them see ----------------------------

# Captured on a 2x H200 machine (tests/unit/fixtures/gpu/README.md): index, uuid, name, memory, bus id.
H200X2 = [line.split(", ") for line in (FIXTURES / "gpu" / "h200x2_query_gpu.csv").read_text().splitlines()]


def captured_host_gpus(monkeypatch, rows):
    """facts.host_gpus() reading what nvidia-smi --query-gpu=index printed on the captured machine."""
    out = "".join(row[0] + "\n" for row in rows)
    monkeypatch.setattr(facts.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, out, ""))
    return facts.host_gpus()


def test_cuda_visible_devices_narrows_the_hosts_gpus_as_cuda_reads_it():
    uuid = H200X2[1][1]
    assert visible_gpus([0, 1]) == [0, 1] and visible_gpus([0, 1], None) == [0, 1]
    assert visible_gpus([0, 1], "1") == [1] and visible_gpus([0, 1], "") == []
    assert visible_gpus([0, 1], "0,7,1") == [0]  # CUDA stops at the first invalid entry
    assert visible_gpus([0, 1], "0,0") == [0]
    assert visible_gpus([0, 1], uuid) == [uuid] and visible_gpus([0, 1], "0," + uuid) == [0, uuid]
    assert visible_gpus([], "0") == []  # nvidia-smi lists none: no GPU, whatever the variable says


def test_two_ranks_on_the_one_visible_gpu_are_refused_in_local_mode(monkeypatch):
    """Issue #18: node_slots 2 on one H200 passed preflight, then NCCL failed with 'Duplicate GPU detected'."""
    host_gpus = captured_host_gpus(monkeypatch, H200X2[:1])
    assert host_gpus == [0]
    problems = local_problems([{"name": "gpu0", "slots": 2, "gpus": []}], host_gpus)
    assert problems == [{
        "variable": "node_slots (gpu0)", "value": 2, "host": "gpu0",
        "message": "node_slots (gpu0) is 2, but local mode runs the ranks on localhost, which lets them see 1 GPU "
                   "(nvidia-smi lists GPU 0): 2 ranks would share GPUs, which NCCL refuses ('Duplicate GPU "
                   "detected') and TensorRT-LLM does not do (one rank per GPU).",
        "fix": "Set node_slots to 1 on host gpu0 (one rank per GPU), or let the ranks see 2 GPUs "
               "(CUDA_VISIBLE_DEVICES, in the environment of ansible-playbook)."}]


def test_cuda_visible_devices_is_respected_in_local_mode(monkeypatch):
    host_gpus = captured_host_gpus(monkeypatch, H200X2)
    node = [{"name": "gpu0", "slots": 2, "gpus": []}]
    assert local_problems(node, host_gpus) == []  # two ranks, two GPUs
    problem = local_problems(node, host_gpus, "1")[0]
    assert problem["variable"] == "node_slots (gpu0)" and "nvidia-smi lists GPUs 0, 1; CUDA_VISIBLE_DEVICES=1 " \
        "leaves 1" in problem["message"]
    assert local_problems(node, host_gpus, "") == []  # no GPU visible: the GPU stages find none, nobody shares
    assert local_problems(node, []) == []  # no GPU here
    assert local_problems([{"name": "gpu0", "slots": 2, "gpus": [0]}], host_gpus, "1") == []  # pinned: layout rule


def test_pinned_gpus_this_machine_lacks_are_refused_in_local_mode(monkeypatch):
    """A real one-GPU run (H100, 2026-12-07) with node_gpus [0, 1] passed preflight and failed in stage 75."""
    rows = [line.split(", ") for line in (FIXTURES / "gpu" / "h100x1_query_gpu.csv").read_text().splitlines()]
    host_gpus = captured_host_gpus(monkeypatch, rows)
    assert host_gpus == [0]
    assert local_problems([{"name": "gpu0", "slots": 2, "gpus": [0, 1]}], host_gpus) == [{
        "variable": "node_gpus (gpu0)", "value": [0, 1], "host": "gpu0",
        "message": "node_gpus (gpu0) is [0, 1], but this machine (local mode) has no GPU 1: nvidia-smi lists GPU 0.",
        "fix": "Use ids from [0] in node_gpus on host gpu0 (and at most that many node_slots)."}]
    assert local_problems([{"name": "gpu0", "slots": 1, "gpus": [0]}], host_gpus) == []
    none = local_problems([{"name": "gpu0", "slots": 1, "gpus": [0]}], [])
    assert [p["variable"] for p in none] == ["node_gpus (gpu0)"] and "shows no GPU" in none[0]["message"]
    assert "set node_gpus: [] on host gpu0" in none[0]["fix"]


def test_local_mode_preflight_refuses_gpu_sharing_and_gives_trtllm_the_visible_gpus():
    v = view()
    v["values"].update(cluster_mode="local", cluster_mpi_launcher="node1", cluster_ssh_user="mtrt")
    v["nodes"] = [dict(v["nodes"][0], slots=2)]
    v["facts"].update(docker=None, host_gpus=[0])
    result = preflight.check(v)
    assert "node_slots (node1)" in variables(result), result["msg"]
    assert next(p for p in result["problems"] if p["variable"] == "node_slots (node1)")["host"] == "node1"
    v["nodes"][0]["slots"] = 1
    v["values"].update(cluster_trtllm_tp_size=1)
    result = preflight.check(v)
    # One rank on the one GPU: TensorRT-LLM's world sees that GPU (no 'sees 0 GPU(s)').
    assert result["problems"] == [] and result["checked"]["trtllm"] is True, result["msg"]
    v["facts"]["cuda_visible_devices"] = ""
    assert "cluster_trtllm_enabled" not in variables(preflight.check(v))  # auto: no visible GPU, the stages skip
