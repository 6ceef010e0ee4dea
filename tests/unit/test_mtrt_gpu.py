# SPDX-License-Identifier: Apache-2.0
"""GPU parsers and verdicts.

On output captured on a 2x H200 machine (driver 580.159.04, NCCL 2.28.9), on output of the current
all-reduce script captured here on CPU (gloo), on fixtures SYNTHESISED in the current scripts' format
(``synthesised_*``: no GPU machine was available for format 2; see fixtures/gpu/README.md), and on broken
output.
"""

import json
import re

import pytest
from ansible.module_utils.mtrt_collectives import OutputError
from ansible.module_utils.mtrt_gpu import (
    NCCL_ERROR_MARKER, NCCL_MARKER, RANK_DEVICE_RANK_MARKER, GpuParseError,
    human_bytes, judge_allreduce, nvlink_limit_gbps, nvlink_summary,
    parse_nccl_allreduce, parse_nccl_transport, parse_nvlink_status, parse_query_gpu, parse_rank_device,
    parse_rank_errors, parse_topo)
from conftest import FIXTURES

GPU = FIXTURES / "gpu"


def fixture(name):
    return (GPU / ("h200x2_" + name)).read_text()


def named(name):
    return (GPU / name).read_text()


# --- nvidia-smi --query-gpu -------------------------------------------------------

def test_query_gpu_real_h200():
    gpus = parse_query_gpu(fixture("query_gpu.csv"))
    assert gpus == [
        {"index": 0, "uuid": "GPU-ccc8025b-672c-6d20-754c-51f9d832abf7", "name": "NVIDIA H200",
         "memory_total_mib": 143771, "pci_bus_id": "00000000:00:06.0"},
        {"index": 1, "uuid": "GPU-fdd81770-c891-a3f5-825a-1220b1ad307c", "name": "NVIDIA H200",
         "memory_total_mib": 143771, "pci_bus_id": "00000000:00:07.0"}]


def test_one_gpu_machine_real_h100():
    """Real captures on a one-GPU machine: its GPU row, no NVLink at all (`nvlink -s` prints nothing), and
    one rank on it that finds its GPU."""
    assert parse_query_gpu(named("h100x1_query_gpu.csv")) == [
        {"index": 0, "uuid": "GPU-8f77745e-2f36-1421-2882-a72b2ee9e151", "name": "NVIDIA H100 80GB HBM3",
         "memory_total_mib": 81559, "pci_bus_id": "00000000:00:06.0"}]
    assert named("h100x1_nvlink_s.txt") == "" and parse_nvlink_status(named("h100x1_nvlink_s.txt")) == {}
    parsed = parse_rank_device(named("h100x1_np1_rank_device.txt"), expected_world=1)
    assert parsed["problems"] == [] and parsed["warnings"] == []
    assert [(r["rank"], r["host"], r["device"], r["exists"]) for r in parsed["ranks"]] == [(0, "vm", 0, True)]


@pytest.mark.parametrize("text", ["", "\n", "No devices were found\n"])
def test_query_gpu_no_devices(text):
    assert parse_query_gpu(text) == []


@pytest.mark.parametrize("text,line", [
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the "
     "latest NVIDIA driver is installed and running.\n", 1),
    ("0, GPU-abc, NVIDIA H200, 143771\n", 1),                                   # a field short
    ("0, GPU-abc, NVIDIA H200, 143771, 00000000:00:06.0\n1, GPU-def, NVIDIA H200, [N/A], 0000:07.0\n", 2),
    ("0, GPU-abc, NVIDIA H200, 143771 MiB, 00000000:00:06.0\n", 1),             # units left in
    ("index, uuid, name, memory.total [MiB], pci.bus_id\n", 1),                  # header not suppressed
])
def test_query_gpu_malformed_names_the_line(text, line):
    with pytest.raises(GpuParseError, match="line %d is not a GPU row" % line):
        parse_query_gpu(text)


def test_query_gpu_duplicate_index():
    row = "0, GPU-abc, NVIDIA H200, 143771, 00000000:00:06.0\n"
    with pytest.raises(GpuParseError, match="index twice"):
        parse_query_gpu(row + row)


# --- nvidia-smi topo -m --------------------------------------------------------------

def test_topo_real_h200_with_ansi_header():
    assert "\x1b[4m" in fixture("topo_m.txt")
    topo = parse_topo(fixture("topo_m.txt"))
    assert topo["gpus"] == ["GPU0", "GPU1"]
    assert topo["links"] == {"GPU0": {"GPU1": "NV18"}, "GPU1": {"GPU0": "NV18"}}
    assert topo["affinity"]["GPU1"] == {"CPU Affinity": "0-31", "NUMA Affinity": "0", "GPU NUMA ID": "N/A"}
    summary = nvlink_summary(topo, parse_nvlink_status(fixture("nvlink_s.txt")))
    assert summary["all_pairs_nvlink"] and summary["min_nvlinks"] == 18
    assert summary["active_links"] == {"GPU0": 18, "GPU1": 18}


PCIE_TOPO = (
    "\tGPU0\tGPU1\tGPU2\tNIC0\tCPU Affinity\tNUMA Affinity\n"
    "GPU0\t X \tPIX\tSYS\tNODE\t0-15\t0\n"
    "GPU1\tPIX\t X \tSYS\tNODE\t0-15\t0\n"
    "GPU2\tSYS\tSYS\t X \tSYS\t16-31\t1\n"
    "NIC0\tNODE\tNODE\tSYS\t X \t\t\n"
    "\nLegend:\n\n  X    = Self\n\nNIC Legend:\n\n  NIC0: mlx5_0\n")


def test_topo_pcie_only_with_nic():
    topo = parse_topo(PCIE_TOPO)
    assert topo["devices"] == ["GPU0", "GPU1", "GPU2", "NIC0"] and topo["gpus"] == ["GPU0", "GPU1", "GPU2"]
    assert topo["links"]["GPU2"]["GPU0"] == "SYS"
    summary = nvlink_summary(topo)
    assert summary["nvlink_pairs"] == 0 and not summary["all_pairs_nvlink"]
    assert [p["link"] for p in summary["pairs"]] == ["PIX", "SYS", "SYS"]


@pytest.mark.parametrize("text,match", [
    ("", "no header row"),
    ("Failed to initialize NVML: Driver/library version mismatch\n", "no header row"),
    ("\tGPU0\tGPU1\nGPU0\t X \tNV18\n", "no row for GPU1"),
    ("\tGPU0\tGPU1\nGPU0\t X \tNV18\nGPU1\tLINK\t X \n", "GPU1 -> GPU0 is 'LINK'"),
    ("\tGPU0\tGPU1\nGPU0\t X \nGPU1\tNV18\t X \n", "does not fit the header"),
])
def test_topo_malformed(text, match):
    with pytest.raises(GpuParseError, match=match):
        parse_topo(text)


def test_nvlink_status_inactive_links():
    status = parse_nvlink_status("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\n\t Link 0: 26.562 GB/s\n"
                                 "\t Link 1: <inactive>\n")
    assert status["GPU0"]["links"] == 2 and status["GPU0"]["active"] == 1


@pytest.mark.parametrize("name,gbps", [("NVIDIA H200", 450.0), ("NVIDIA H100 80GB HBM3", 450.0),
                                       ("NVIDIA A100-SXM4-80GB", 300.0), ("Tesla T4", None)])
def test_nvlink_limit(name, gbps):
    assert nvlink_limit_gbps(name) == gbps


# --- rank -> device ----------------------------------------------------------------------

def test_rank_device_real_ok():
    parsed = parse_rank_device(fixture("rank_device.txt"), expected_world=2)
    assert parsed["problems"] == [] and parsed["warnings"] == []
    assert [(r["rank"], r["device"], r["exists"]) for r in parsed["ranks"]] == [(0, 0, True), (1, 1, True)]


def test_rank_device_real_four_ranks_on_two_gpus():
    parsed = parse_rank_device(fixture("rank_device_bad.txt"), expected_world=4)
    assert parsed["problems"] == [
        "Rank %d (vm) asked for GPU %d (rank %% gpus_per_node 4), but vm has 2 GPUs (CUDA_VISIBLE_DEVICES "
        "unset); set gpus_per_node to 2 (cluster_trtllm_gpus_per_node) or lower node_slots on vm to 2, so no "
        "rank asks for a GPU the node lacks" % (r, r) for r in (2, 3)]


def _rank(rank, host, device, count, **extra):
    return dict({"rank": rank, "world_size": 2, "host": host, "device": device, "exists": device < count,
                 "visible_count": count, "gpus_per_node": 2, "cuda_visible_devices": "0"}, **extra)


def test_rank_device_per_rank_lines_and_one_gpu_node():
    text = "".join(RANK_DEVICE_RANK_MARKER + json.dumps(r) + "\n"
                   for r in (_rank(1, "node2", 1, 1), _rank(0, "node1", 0, 1)))
    parsed = parse_rank_device(text, expected_world=2)
    assert [r["rank"] for r in parsed["ranks"]] == [0, 1]
    assert parsed["problems"] == [
        "Rank 1 (node2) asked for GPU 1 (rank % gpus_per_node 2), but node2 has 1 GPU (CUDA_VISIBLE_DEVICES=0);"
        " set gpus_per_node to 1 (cluster_trtllm_gpus_per_node) or lower node_slots on node2 to 1, so no rank "
        "asks for a GPU the node lacks"]


def test_rank_device_no_gpu_and_missing_rank():
    text = "".join(RANK_DEVICE_RANK_MARKER + json.dumps(r) + "\n" for r in (
        _rank(0, "node1", 0, 0, error="no torch, nvidia-smi: not found", world_size=3),
        _rank(2, "node1", 0, 0, world_size=3)))
    parsed = parse_rank_device(text, expected_world=3)
    assert parsed["problems"][0].startswith("ranks answered [0, 2], expected 0..2 once each (missing [1])")
    assert "node1 has no GPU visible" in parsed["problems"][1]
    assert "give node1 GPUs (node_gpus" in parsed["problems"][1]
    assert parsed["problems"][1].endswith("probe error: no torch, nvidia-smi: not found")
    assert len(parsed["problems"]) == 3  # no GPU exists, so none is shared
    assert parsed["warnings"] == []


def test_rank_device_two_ranks_on_one_gpu_fail_naming_ranks_host_gpu_and_fix():
    """Issue #18: node_slots 2 on a node with one GPU (real capture, one H100); this was a warning, now it fails."""
    parsed = parse_rank_device(named("h100x1_np2_rank_device.txt"), expected_world=2)
    assert parsed["problems"] == [
        "Ranks 0, 1 on vm share GPU 0 (GPU-8f77745e-2f36-1421-2882-a72b2ee9e151; rank % gpus_per_node 1; vm has "
        "1 GPU); NCCL refuses two ranks on one GPU ('Duplicate GPU detected') and TensorRT-LLM needs one rank "
        "per GPU: set node_slots on vm to 1 (the GPUs it has: node_slots <= GPUs on that node) or give vm 2 "
        "GPUs (node_gpus)"]
    assert parsed["warnings"] == []


def test_rank_device_shared_without_uuid_and_gpus_per_node_too_low():
    text = "".join(RANK_DEVICE_RANK_MARKER + json.dumps(r) + "\n" for r in (
        _rank(0, "vm", 0, 2, gpus_per_node=1, cuda_visible_devices=None),
        _rank(1, "vm", 0, 2, gpus_per_node=1, cuda_visible_devices=None)))
    problems = parse_rank_device(text, expected_world=2)["problems"]
    assert len(problems) == 1 and problems[0].startswith("Ranks 0, 1 on vm share GPU 0 (rank % gpus_per_node 1")
    assert problems[0].endswith("or raise gpus_per_node from 1 to 2 (cluster_trtllm_gpus_per_node)")


def test_rank_device_same_index_behind_different_cuda_visible_devices_is_not_shared():
    text = "".join(RANK_DEVICE_RANK_MARKER + json.dumps(r) + "\n" for r in (
        _rank(0, "vm", 0, 1, cuda_visible_devices="0"), _rank(1, "vm", 0, 1, cuda_visible_devices="1")))
    assert parse_rank_device(text, expected_world=2)["problems"] == []


def test_rank_device_one_physical_gpu_in_two_containers():
    uuid = "GPU-fdd81770-c891-a3f5-825a-1220b1ad307c"
    text = "".join(RANK_DEVICE_RANK_MARKER + json.dumps(r) + "\n" for r in (
        _rank(0, "node1", 0, 1, device_uuid=uuid), _rank(1, "node2", 0, 1, device_uuid=uuid)))
    assert parse_rank_device(text, expected_world=2)["problems"] == [
        "Ranks 0 (node1), 1 (node2) share GPU %s across nodes node1, node2 (one physical GPU pinned to several "
        "containers); NCCL refuses two ranks on one GPU ('Duplicate GPU detected') and TensorRT-LLM needs one "
        "rank per GPU: give each node its own GPUs (node_gpus)" % uuid]


@pytest.mark.parametrize("text,match", [
    ("", "no 'MTRT-RANK-DEVICE' line"),
    (RANK_DEVICE_RANK_MARKER + '{"rank": 0}\n', "lacks rank/host/device/exists"),
])
def test_rank_device_malformed(text, match):
    with pytest.raises(OutputError, match=match):
        parse_rank_device(text)


# --- NCCL all-reduce -----------------------------------------------------------------------

def test_nccl_allreduce_real_h200_p2p():
    parsed = parse_nccl_allreduce(fixture("nccl_allreduce.txt"), expected_world=2)
    assert parsed["problems"] == [] and parsed["nccl"] == "2.28.9"
    assert parsed["largest"]["size_bytes"] == 4 << 30
    assert 300 < parsed["largest"]["busbw_gbps"] < 450
    assert parsed["transport"] == {"transports": ["P2P"], "channels": {"P2P/CUMEM": 48},
                                   "nvls_channels": 0, "nodes": 1}
    assert parsed["nothing_to_measure"] is False and parsed["method"] == {"timer": "host_clock", "format": 1}
    verdict, problems, findings = judge_allreduce(parsed, 450.0, nvlink_expected=True)
    assert verdict == ("all_reduce over 2 ranks: 345.6 GB/s busbw at 4 GiB via P2P "
                       "(77% of the 450 GB/s NVLink limit per direction).")
    assert problems == [] and findings == []


def test_nccl_transport_shm_net_nvls():
    log = ("a:1:1 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[0] via SHM/direct/direct\n"
           "a:1:1 [0] NCCL INFO Channel 01/0 : 0[0] -> 1[0] [send] via NET/Socket/0\n"
           "a:1:1 [0] NCCL INFO 16 coll channels, 16 collnet channels, 16 nvls channels, 32 p2p channels\n"
           "a:1:1 [0] NCCL INFO comm 0xab rank 0 nRanks 2 nNodes 2 localRanks 1 localRank 0 MNNVL 0\n")
    assert parse_nccl_transport(log) == {
        "transports": ["NET", "NVLS", "SHM"], "channels": {"SHM/direct/direct": 1, "NET/Socket/0": 1},
        "nvls_channels": 16, "nodes": 2}


def _slow_shm():
    doc = {"world_size": 2, "rows": [{"size_bytes": 1 << 30, "time_us": 2.2e5, "busbw_gbps": 9.1,
                                      "algbw_gbps": 9.1, "correct": True}]}
    return ("x NCCL INFO Channel 00/0 : 0[0] -> 1[1] via SHM/direct/direct\n"
            + NCCL_MARKER + json.dumps(doc) + "\n")


def test_judge_says_nvlink_unused_and_fails_under_floor():
    verdict, problems, _ = judge_allreduce(parse_nccl_allreduce(_slow_shm()), 450.0, nvlink_expected=True,
                                           min_busbw_gbps=300)
    assert "9.1 GB/s busbw at 1 GiB via SHM (2% of the 450 GB/s" in verdict
    assert "NVLink not used: NCCL went through SHM" in verdict
    assert problems == ["busbw 9.1 GB/s at 1 GiB is under the 300.0 GB/s floor (gpu_check_min_busbw_gbps)"]


def test_nccl_wrong_sum_is_a_problem():
    text = _slow_shm().replace('"correct": true', '"correct": false, "bad_ranks": [1]')
    assert parse_nccl_allreduce(text)["problems"] == ["all_reduce at 1 GiB: ranks [1] got a wrong sum"]


@pytest.mark.parametrize("text,match", [
    ("NCCL WARN Cuda failure 'out of memory'\n", "no 'MTRT-NCCL-ALLREDUCE' line"),
    (NCCL_MARKER + '{"world_size": 2, "rows": []}', "has no rows"),
    (NCCL_MARKER + '{"world_size": 2, "rows": [{"size_bytes": 8}]}', "lacks size_bytes/time_us/busbw_gbps"),
])
def test_nccl_malformed(text, match):
    with pytest.raises(OutputError, match=match):
        parse_nccl_allreduce(text)


@pytest.mark.parametrize("size,text", [(4 << 30, "4 GiB"), (1536, "1536 B"), (64 << 10, "64 KiB")])
def test_human_bytes(size, text):
    assert human_bytes(size) == text


# --- NCCL all-reduce, format 2 (nccl-tests' method) ---------------------------------------------

def _bus_formula_holds(parsed):
    n = parsed["world_size"]
    for row in parsed["rows"]:
        algbw = row["size_bytes"] / (row["time_us"] * 1e-6) / 1e9
        assert row["algbw_gbps"] == pytest.approx(algbw, rel=1e-3, abs=1e-4)
        assert row["busbw_gbps"] == pytest.approx(algbw * 2 * (n - 1) / n, rel=1e-3, abs=1e-4)


def test_real_h200_capture_keeps_the_bus_bandwidth_formula():
    _bus_formula_holds(parse_nccl_allreduce(fixture("nccl_allreduce.txt"), expected_world=2))


def test_synthesised_h200_pair_format_2():
    """SYNTHESISED fixture (format 2, illustrative numbers) with the real capture's NCCL INFO lines."""
    text = named("synthesised_h200x2_nccl_allreduce_v2.txt")
    assert text.startswith("# SYNTHESISED, not a capture")
    parsed = parse_nccl_allreduce(text, expected_world=2)
    assert parsed["method"]["timer"] == "cuda_events" and parsed["method"]["in_place"] is True
    assert parsed["transport"]["transports"] == ["P2P"] and parsed["transport"]["nodes"] == 1
    assert len(parsed["rows"]) == 12 and parsed["problems"] == []
    assert all(20 <= r["iters"] <= 1000 for r in parsed["rows"])
    _bus_formula_holds(parsed)
    verdict, problems, findings = judge_allreduce(parsed, 450.0, nvlink_expected=True, min_busbw_gbps=360)
    assert verdict == ("all_reduce over 2 ranks: 367.1 GB/s busbw at 4 GiB via P2P "
                       "(82% of the 450 GB/s NVLink limit per direction).")
    assert problems == [] and findings == []


def test_real_cpu_gloo_capture_format_2():
    """Captured here: the current script, 2 ranks, gloo on CPU (no NCCL lines, host clock)."""
    parsed = parse_nccl_allreduce(named("cpu_gloo_np2_nccl_allreduce.txt"), expected_world=2)
    assert parsed["backend"] == "gloo" and parsed["method"]["timer"] == "host_clock"
    assert [r["size_bytes"] for r in parsed["rows"]] == [1024, 4096, 16384, 65536]
    assert all(r["correct"] for r in parsed["rows"]) and parsed["problems"] == []
    _bus_formula_holds(parsed)
    verdict, _, _ = judge_allreduce(parsed, None, nvlink_expected=False)
    assert verdict.startswith("all_reduce over 2 ranks: 0.0 GB/s busbw at 64 KiB via gloo (CPU, no NCCL).")
    assert "NVLink" not in verdict


@pytest.mark.parametrize("name", ["h100x1_np1_nccl_allreduce.txt", "cpu_gloo_np1_nccl_allreduce.txt"])
def test_one_rank_is_nothing_to_measure_not_zero_percent_of_nvlink(name):
    parsed = parse_nccl_allreduce(named(name), expected_world=1)
    assert parsed["nothing_to_measure"] is True and parsed["rows"] == [] and parsed["largest"] == {}
    assert parsed["world_size"] == 1 and parsed["problems"] == []
    # Even if the caller passed a limit and said NVLink: one rank has nothing to compare with it.
    verdict, problems, findings = judge_allreduce(parsed, 450.0, nvlink_expected=True)
    assert verdict == ("all_reduce over 1 rank: nothing to measure (an all-reduce over a single rank moves no "
                       "data); give the run 2 or more ranks, one per GPU, to measure NCCL bandwidth.")
    assert "NVLink" not in verdict and "GB/s" not in verdict and problems == [] and findings == []
    _, problems, findings = judge_allreduce(parsed, None, min_busbw_gbps=300)
    assert problems == [] and findings == [
        "the busbw floor of 300.0 GB/s (gpu_check_min_busbw_gbps) was not checked: one rank has no bandwidth to "
        "measure"]


def test_nothing_to_measure_with_two_ranks_is_malformed():
    doc = {"world_size": 2, "nothing_to_measure": True, "rows": []}
    with pytest.raises(OutputError, match="nothing to measure with world size 2"):
        parse_nccl_allreduce(NCCL_MARKER + json.dumps(doc))


def test_nvlink_limit_named_only_for_a_single_node_with_nvlink():
    parsed = parse_nccl_allreduce(fixture("nccl_allreduce.txt"), expected_world=2)
    no_nvlink, _, _ = judge_allreduce(parsed, 450.0, nvlink_expected=False)
    assert no_nvlink == "all_reduce over 2 ranks: 345.6 GB/s busbw at 4 GiB via P2P."
    parsed["transport"] = dict(parsed["transport"], nodes=2, transports=["NET"])
    two_nodes, _, _ = judge_allreduce(parsed, 450.0, nvlink_expected=True)
    assert two_nodes == "all_reduce over 2 ranks: 345.6 GB/s busbw at 4 GiB via NET."
