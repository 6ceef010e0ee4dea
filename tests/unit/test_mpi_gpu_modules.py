# SPDX-License-Identifier: Apache-2.0
"""mpi_collectives, gpu_check_facts and gpu_check modules through run_module.

gpu_* use fake nvidia-smi/mpirun executables that replay the 2x H200 captures (and fixtures
SYNTHESISED in the current scripts' format, see fixtures/gpu/README.md); mpi_collectives and the
all-reduce script (gloo, on CPU) run for real under local mpirun when available.
"""

import importlib.util
import os
import shutil
import socket
import subprocess

import gpu_check
import gpu_check_facts
import mpi_collectives
import pytest
from conftest import FIXTURES, ROOT

GPU = FIXTURES / "gpu"


def fake_exe(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# --- gpu_check_facts ---------------------------------------------------------------------------

def fake_smi(tmp_path, query="h200x2_query_gpu.csv", rc=0):
    return fake_exe(tmp_path, "nvidia-smi", """
case "$1" in
  topo) cat {gpu}/h200x2_topo_m.txt ;;
  nvlink) cat {gpu}/h200x2_nvlink_s.txt ;;
  *) cat {gpu}/{query}; exit {rc} ;;
esac
""".format(gpu=GPU, query=query, rc=rc))


def test_gpu_facts_h200(run_module, tmp_path):
    res = run_module(gpu_check_facts, {"nvidia_smi": fake_smi(tmp_path)})
    assert not res["failed"] and res["present"] and res["count"] == 2 and res["mtrt_kind"] == "gpu_facts"
    assert res["gpus"][1]["uuid"] == "GPU-fdd81770-c891-a3f5-825a-1220b1ad307c"
    assert res["nvlink"]["all_pairs_nvlink"] and res["nvlink_limit_gbps"] == 450.0
    assert res["topology"]["links"]["GPU0"]["GPU1"] == "NV18" and res["changed"] is False


def test_gpu_facts_one_gpu_names_no_nvlink_limit(run_module, tmp_path):
    """Issue #18: a node with one GPU has no NVLink, so no NVLink limit is named for it."""
    (tmp_path / "one.csv").write_text(
        "0, GPU-ccc8025b-672c-6d20-754c-51f9d832abf7, NVIDIA H200, 143771, 00000000:00:06.0\n")
    (tmp_path / "topo.txt").write_text("\tGPU0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\n"
                                       "GPU0\t X \t0-31\t0\t\tN/A\n\nLegend:\n")
    smi = fake_exe(tmp_path, "nvidia-smi", 'case "$1" in topo) cat {d}/topo.txt ;; nvlink) exit 0 ;; '
                                            '*) cat {d}/one.csv ;; esac\n'.format(d=tmp_path))
    res = run_module(gpu_check_facts, {"nvidia_smi": smi})
    assert not res["failed"] and res["count"] == 1 and res["nvlink"]["nvlink_pairs"] == 0
    assert res["nvlink_limit_gbps"] is None


def test_gpu_facts_absent(run_module):
    res = run_module(gpu_check_facts, {"nvidia_smi": "no-such-nvidia-smi"})
    assert not res["failed"] and res["present"] is False and res["gpus"] == []
    assert "no-such-nvidia-smi not found on PATH" in res["reason"]


def test_gpu_facts_driver_failure_is_not_present(run_module, tmp_path):
    (tmp_path / "err.txt").write_text("NVIDIA-SMI has failed because it couldn't communicate with the driver\n")
    smi = fake_exe(tmp_path, "nvidia-smi", "cat %s/err.txt; exit 9\n" % tmp_path)
    res = run_module(gpu_check_facts, {"nvidia_smi": smi})
    assert res["present"] is False and res["reason"].startswith("nvidia-smi exited with 9: NVIDIA-SMI has failed")


def test_gpu_facts_malformed_fails(run_module, tmp_path):
    (tmp_path / "bad.csv").write_text("0, GPU-x, NVIDIA H200\n")
    smi = fake_exe(tmp_path, "nvidia-smi", "cat %s/bad.csv\n" % tmp_path)
    res = run_module(gpu_check_facts, {"nvidia_smi": smi})
    assert res["failed"] and "line 1 is not a GPU row" in res["msg"]


# --- gpu_check -----------------------------------------------------------------------------

def fake_mpirun(tmp_path, fixture, rc=0):
    return fake_exe(tmp_path, "mpirun", 'echo "$@" > %s/argv\ncat %s/%s\nexit %d\n' % (tmp_path, GPU, fixture, rc))


def hostfile(tmp_path, text="vm slots=2\n"):
    path = tmp_path / "hostfile"
    path.write_text(text)
    return str(path)


def test_rank_device_ok(run_module, tmp_path):
    res = run_module(gpu_check, {"check": "rank_device", "hostfile": hostfile(tmp_path), "script": "/x/rd.py",
                                 "gpus_per_node": 2, "mpirun": fake_mpirun(tmp_path, "h200x2_rank_device.txt")})
    assert not res["failed"] and res["mtrt_kind"] == "gpu_rank_device" and res["world_size"] == 2
    argv = (tmp_path / "argv").read_text().split()
    assert argv[argv.index("-np") + 1] == "2" and "--gpus-per-node" in argv
    assert "NCCL_NVLS_ENABLE" in argv


def test_rank_device_two_ranks_on_one_gpu_fails(run_module, tmp_path):
    """Issue #18: ranks sharing a GPU fail the rank -> GPU check (they were only a warning)."""
    res = run_module(gpu_check, {"check": "rank_device", "hostfile": hostfile(tmp_path), "script": "/x/rd.py",
                                 "gpus_per_node": 1,
                                 "mpirun": fake_mpirun(tmp_path, "h100x1_np2_rank_device.txt")})
    assert res["failed"] and res["findings"] == [] and len(res["problems"]) == 1
    assert res["msg"].startswith("Ranks 0, 1 on vm share GPU 0 (GPU-8f77745e-2f36-1421-2882-a72b2ee9e151; rank")
    assert "set node_slots on vm to 1 (the GPUs it has: node_slots <= GPUs on that node)" in res["msg"]


def test_rank_device_invalid_ordinal_fails_with_fix(run_module, tmp_path):
    res = run_module(gpu_check, {"check": "rank_device", "hostfile": hostfile(tmp_path, "vm slots=4\n"),
                                 "script": "/x/rd.py", "gpus_per_node": 4,
                                 "mpirun": fake_mpirun(tmp_path, "h200x2_rank_device_bad.txt")})
    assert res["failed"]
    assert res["msg"].startswith("Rank 2 (vm) asked for GPU 2 (rank % gpus_per_node 4), but vm has 2 GPUs")
    assert "set gpus_per_node to 2" in res["msg"] and len(res["problems"]) == 2


def test_nccl_allreduce_h200(run_module, tmp_path):
    res = run_module(gpu_check, {"check": "nccl_allreduce", "hostfile": hostfile(tmp_path),
                                 "script": "/x/ar.py", "max_bytes": 4 << 30, "nvlink_expected": True,
                                 "mpirun": fake_mpirun(tmp_path, "h200x2_nccl_allreduce.txt")})
    assert not res["failed"] and res["mtrt_kind"] == "nccl_allreduce"
    assert res["largest"]["busbw_gbps"] == pytest.approx(345.55, abs=0.01)
    assert res["transport"]["transports"] == ["P2P"]
    assert res["verdict"].startswith("all_reduce over 2 ranks: 345.6 GB/s busbw at 4 GiB via P2P (77% of the 450")
    assert res["versions"] == {"torch": "2.11.0+cu130", "nccl": "2.28.9"}
    assert "NCCL INFO" not in res["stdout_tail"] and res["explained"] == [] and res["nothing_to_measure"] is False
    argv = (tmp_path / "argv").read_text().split()
    assert argv[argv.index("--master-addr") + 1] == "vm" and "NCCL_DEBUG" in argv
    assert [argv[argv.index(a) + 1] for a in ("--iters", "--max-iters", "--target-s", "--warmup", "--backend")] == [
        "20", "1000", "0.25", "5", "nccl"]


def test_nccl_allreduce_format_2(run_module, tmp_path):
    res = run_module(gpu_check, {"check": "nccl_allreduce", "hostfile": hostfile(tmp_path), "script": "/x/ar.py",
                                 "max_bytes": 4 << 30, "nvlink_expected": True, "min_busbw_gbps": 360,
                                 "mpirun": fake_mpirun(tmp_path, "synthesised_h200x2_nccl_allreduce_v2.txt")})
    assert not res["failed"], res["msg"]
    assert res["verdict"] == ("all_reduce over 2 ranks: 367.1 GB/s busbw at 4 GiB via P2P "
                              "(82% of the 450 GB/s NVLink limit per direction).")
    assert res["method"]["timer"] == "cuda_events" and len(res["results"]) == 12


@pytest.mark.parametrize("nvlink", [True, False])
def test_nccl_allreduce_one_rank_is_nothing_to_measure(run_module, tmp_path, nvlink):
    res = run_module(gpu_check, {"check": "nccl_allreduce", "hostfile": hostfile(tmp_path, "vm slots=1\n"),
                                 "script": "/x/ar.py", "nvlink_expected": nvlink, "min_busbw_gbps": 300,
                                 "mpirun": fake_mpirun(tmp_path, "h100x1_np1_nccl_allreduce.txt")})
    assert not res["failed"] and res["nothing_to_measure"] is True and res["world_size"] == 1
    assert res["verdict"].startswith("all_reduce over 1 rank: nothing to measure")
    assert "NVLink" not in res["verdict"] and "0.0 GB/s" not in res["verdict"] and res["results"] == []
    assert res["findings"] == ["the busbw floor of 300.0 GB/s (gpu_check_min_busbw_gbps) was not checked: one "
                               "rank has no bandwidth to measure"]


def test_nccl_allreduce_duplicate_gpu_is_explained(run_module, tmp_path):
    """Issue #18: the cause was only in the raw output; now the message names it, its fix and the ranks."""
    res = run_module(gpu_check, {"check": "nccl_allreduce", "hostfile": hostfile(tmp_path), "script": "/x/ar.py",
                                 "mpirun": fake_mpirun(tmp_path, "h100x1_np2_duplicate_gpu.txt", rc=1)})
    assert res["failed"] and res["rc"] == 1
    assert res["msg"].startswith("no 'MTRT-NCCL-ALLREDUCE' line in the output")
    assert "; rank 1 (vm, cuda:0): DistBackendError: NCCL error in: " in res["msg"]
    assert ("Cause: ranks 0 and 1 run on the same GPU (bus id 60); NCCL needs one rank per GPU; fix: keep "
            "node_slots <= the GPUs of each node") in res["msg"]
    assert "NCCL WARN Duplicate GPU detected : rank 0 and rank 1 both on CUDA device 60" in res["msg"]
    assert [e["raw"] for e in res["explained"]] == [
        "[2026-12-07 16:03:19] vm:602:602 [0] init.cc:904 NCCL WARN Duplicate GPU detected : rank 0 and rank 1 "
        "both on CUDA device 60"]
    assert "; rank 1 (vm, cuda:0): " in res["problems"][0] and "; rank 0 (vm, cuda:0): " in res["problems"][0]


def test_gpu_check_bad_iteration_bounds(run_module, tmp_path):
    res = run_module(gpu_check, {"check": "nccl_allreduce", "hostfile": hostfile(tmp_path), "script": "/x.py",
                                 "iterations": 50, "max_iterations": 10, "mpirun": fake_mpirun(tmp_path, "x")})
    assert res["failed"] and res["msg"].startswith("need 1 <= iterations (50) <= max_iterations (10)")
    assert not (tmp_path / "argv").exists()


def test_nccl_allreduce_under_floor_fails(run_module, tmp_path):
    res = run_module(gpu_check, {"check": "nccl_allreduce", "hostfile": hostfile(tmp_path), "script": "/x/ar.py",
                                 "min_busbw_gbps": 400, "mpirun": fake_mpirun(tmp_path, "h200x2_nccl_allreduce.txt")})
    assert res["failed"] and "under the 400.0 GB/s floor" in res["msg"]


def test_gpu_check_no_output_and_too_many_ranks(run_module, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    mpirun = fake_exe(tmp_path, "mpirun", "echo 'ORTE was unable to reliably start one or more daemons' >&2; exit 1\n")
    res = run_module(gpu_check, {"check": "nccl_allreduce", "hostfile": hostfile(tmp_path), "script": "/x.py",
                                 "mpirun": mpirun})
    assert res["failed"] and "no 'MTRT-NCCL-ALLREDUCE' line" in res["msg"] and "ORTE was unable" in res["msg"]
    assert [e["raw"] for e in res["explained"]] == ["ORTE was unable to reliably start one or more daemons"]
    assert "Cause: mpirun could not start its daemon (orted/prted) on some node over ssh" in res["msg"]
    res = run_module(gpu_check, {"check": "rank_device", "hostfile": hostfile(tmp_path), "np": 3,
                                 "script": "/x.py", "mpirun": mpirun})
    assert res["failed"] and res["msg"].startswith("np=3 ranks requested but the hosts give 2 slots (vm:2)")


def test_gpu_check_timeout_returns_tail(run_module, tmp_path):
    mpirun = fake_exe(tmp_path, "mpirun", "echo 'rank 0 init'; sleep 30\n")
    res = run_module(gpu_check, {"check": "rank_device", "hosts": ["vm:1"], "script": "/x.py",
                                 "mpirun": mpirun, "timeout_s": 1})
    assert res["failed"] and res["timed_out"] and "timed out after 1s" in res["msg"] and "rank 0 init" in res["msg"]


def test_gpu_check_check_mode(run_module, tmp_path):
    res = run_module(gpu_check, {"check": "rank_device", "hosts": ["a:1", "b:1"], "script": "/x.py",
                                 "mpirun": fake_mpirun(tmp_path, "h200x2_rank_device.txt"), "_ansible_check_mode": True})
    assert not res["failed"] and res["rc"] is None and "--host" in res["command"]
    assert not (tmp_path / "argv").exists()


# --- mpi_collectives ----------------------------------------------------------------------------

def _has_mpi():
    return bool(shutil.which("mpirun")) and subprocess.run(
        ["/usr/bin/python3", "-c", "import mpi4py.MPI"], capture_output=True).returncode == 0


needs_mpi = pytest.mark.skipif(not _has_mpi(), reason="needs mpirun and /usr/bin/python3 with mpi4py")
SCRIPT = str(ROOT / "roles/mpi_collectives/files/mtrt_collectives.py")


def collectives_args(tmp_path, **extra):
    args = {"hostfile": hostfile(tmp_path, "localhost slots=3\n"), "script": SCRIPT, "python": "/usr/bin/python3",
            "max_bytes": 4096, "iterations": 3, "extra_args": ["--oversubscribe"],
            # more ranks than this machine has cores: yield, do not spin
            "mca": {"btl": "self,vader,tcp", "mpi_yield_when_idle": "1"}}
    args.update(extra)
    return args


@needs_mpi
def test_mpi_collectives_module_real_run(run_module, tmp_path):
    res = run_module(mpi_collectives, collectives_args(tmp_path))
    assert not res["failed"], res["msg"]
    assert res["mtrt_kind"] == "mpi_collectives" and res["changed"] is False and res["world_size"] == 3
    assert len(res["results"]) == 5 * 24 and all(r["correct"] for r in res["results"])
    assert res["table"][0].startswith("coll") and res["failures"] == []
    assert "allreduce:SUM" in res["largest_busbw"]


@needs_mpi
def test_mpi_collectives_module_fails_on_wrong_reduction(run_module, tmp_path):
    res = run_module(mpi_collectives, collectives_args(tmp_path, inject_fault="allreduce:SUM:rank1:1024"))
    assert res["failed"]
    assert res["msg"].startswith("MPI collectives gave wrong values: allreduce SUM at 1024 B: rank 1 (")
    assert [(f["collective"], f["op"], f["size_bytes"], f["rank"]) for f in res["failures"]] == [
        ("allreduce", "SUM", 1024, 1)]


def test_mpi_collectives_singleton_and_timeout(run_module, tmp_path):
    one = (GPU / "h200x2_collectives.txt").read_text().replace('"world_size":2', '"world_size":1')
    (tmp_path / "one.txt").write_text(one + one)
    mpirun = fake_exe(tmp_path, "mpirun", "cat %s/one.txt\n" % tmp_path)
    res = run_module(mpi_collectives, {"hosts": ["a:1", "b:1"], "script": "/x.py", "mpirun": mpirun})
    assert res["failed"] and "every rank ran as its own singleton" in res["msg"]
    slow = fake_exe(tmp_path, "mpirun2", "echo started; sleep 30\n")
    res = run_module(mpi_collectives, {"hosts": ["a:2"], "script": "/x.py", "mpirun": slow, "timeout_s": 1})
    assert res["failed"] and res["timed_out"] and "raise timeout_s (cluster_mpi_timeout_s) or lower max_bytes" in res["msg"]


def test_mpi_collectives_check_mode_and_bad_sizes(run_module, tmp_path):
    mpirun = fake_exe(tmp_path, "mpirun", "exit 3\n")
    res = run_module(mpi_collectives, {"hosts": ["a:2"], "script": "/x.py", "mpirun": mpirun,
                                       "_ansible_check_mode": True})
    assert not res["failed"] and res["rc"] is None and res["results"] == []
    res = run_module(mpi_collectives, {"hosts": ["a:2"], "script": "/x.py", "mpirun": mpirun, "factor": 1})
    assert res["failed"] and "factor >= 2" in res["msg"]


# --- the all-reduce script for real: gloo on CPU under local mpirun ---------------------------------

ALLREDUCE = str(ROOT / "roles/gpu_check/files/mtrt_nccl_allreduce.py")


def _has_torch():
    return _has_mpi() and subprocess.run(["/usr/bin/python3", "-c", "import torch.distributed"],
                                         capture_output=True).returncode == 0


needs_torch = pytest.mark.skipif(not _has_torch(), reason="needs mpirun and /usr/bin/python3 with mpi4py and "
                                 "torch (apt-get install openmpi-bin python3-mpi4py python3-torch)")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def allreduce_args(tmp_path, np, **extra):
    args = {"check": "nccl_allreduce", "hosts": ["localhost:%d" % np], "script": ALLREDUCE,
            "python": "/usr/bin/python3", "backend": "gloo", "master_addr": "127.0.0.1", "master_port": free_port(),
            "min_bytes": 1024, "max_bytes": 16384, "iterations": 3, "max_iterations": 50, "target_s": 0.02,
            "warmup": 2, "timeout_s": 120, "extra_args": ["--oversubscribe"],
            # more ranks than this machine has cores: yield, do not spin
            "mca": {"btl": "self,vader,tcp", "mpi_yield_when_idle": "1"}}
    args.update(extra)
    return args


@needs_torch
@pytest.mark.parametrize("np", [2, 3])
def test_allreduce_script_real_run_gloo(run_module, tmp_path, np):
    res = run_module(gpu_check, allreduce_args(tmp_path, np))
    assert not res["failed"], res["msg"]
    assert res["world_size"] == np and res["nothing_to_measure"] is False and res["rc"] == 0
    assert [r["size_bytes"] for r in res["results"]] == [1024, 4096, 16384]
    assert all(r["correct"] and 3 <= r["iters"] <= 50 and r["warmup_iters"] == 2 for r in res["results"])
    for r in res["results"]:
        algbw = r["size_bytes"] / (r["time_us"] * 1e-6) / 1e9
        assert r["busbw_gbps"] == pytest.approx(algbw * 2 * (np - 1) / np, rel=1e-2, abs=1e-4)
        assert r["time_us_max"] >= r["time_us"] > 0
    assert res["method"]["timer"] == "host_clock" and res["method"]["in_place"] is True
    assert sorted(r["rank"] for r in res["ranks"]) == list(range(np))
    assert res["verdict"].startswith("all_reduce over %d ranks: " % np) and "NVLink" not in res["verdict"]


@needs_torch
def test_allreduce_script_real_run_one_rank(run_module, tmp_path):
    res = run_module(gpu_check, allreduce_args(tmp_path, 1, nvlink_expected=True))
    assert not res["failed"], res["msg"]
    assert res["nothing_to_measure"] is True and res["results"] == [] and res["world_size"] == 1
    assert res["verdict"].startswith("all_reduce over 1 rank: nothing to measure")


@needs_torch
def test_allreduce_script_rank_failure_names_rank_and_host(run_module, tmp_path):
    """The nccl backend on a machine without CUDA: every rank reports its own failure."""
    res = run_module(gpu_check, allreduce_args(tmp_path, 2, backend="nccl"))
    assert res["failed"] and "no 'MTRT-NCCL-ALLREDUCE' line" in res["msg"]
    assert "; rank " in res["msg"] and "(%s, cuda:" % socket.gethostname() in res["msg"]


def _script():
    spec = importlib.util.spec_from_file_location("mtrt_nccl_allreduce", ALLREDUCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_allreduce_script_iteration_scaling_and_sizes():
    script = _script()
    args = script.parse_args(["--iters", "20", "--max-iters", "1000", "--target-s", "0.25",
                              "--min-bytes", "1024", "--max-bytes", str(4 << 30)])
    assert script.iterations_for(12e-3, args) == 21          # 4 GiB on NVLink: ~12 ms a call
    assert script.iterations_for(1e-3, args) == 250
    assert script.iterations_for(10e-6, args) == 1000        # small sizes: capped
    assert script.iterations_for(1.0, args) == 20            # slow: at least --iters
    assert script.iterations_for(0.0, args) == 1000
    sizes = script.sizes_of(args)
    assert sizes[0] == 1024 and sizes[-1] == 4 << 30 and len(sizes) == 12
    with pytest.raises(SystemExit):
        script.parse_args(["--iters", "5", "--max-iters", "2"])
