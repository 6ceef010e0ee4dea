"""mpi_collectives, gpu_check_facts and gpu_check modules through run_module.

gpu_* use fake nvidia-smi/mpirun executables that replay the 2x H200 capture;
mpi_collectives runs the real script under local mpirun when available.
"""

import os
import shutil
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
    assert "NCCL INFO" not in res["stdout_tail"]
    argv = (tmp_path / "argv").read_text().split()
    assert argv[argv.index("--master-addr") + 1] == "vm" and "NCCL_DEBUG" in argv


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
            "max_bytes": 4096, "iterations": 3, "extra_args": ["--oversubscribe"], "mca": {"btl": "self,vader,tcp"}}
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
    assert res["failed"] and res["timed_out"] and "raise timeout_s or lower max_bytes" in res["msg"]


def test_mpi_collectives_check_mode_and_bad_sizes(run_module, tmp_path):
    mpirun = fake_exe(tmp_path, "mpirun", "exit 3\n")
    res = run_module(mpi_collectives, {"hosts": ["a:2"], "script": "/x.py", "mpirun": mpirun,
                                       "_ansible_check_mode": True})
    assert not res["failed"] and res["rc"] is None and res["results"] == []
    res = run_module(mpi_collectives, {"hosts": ["a:2"], "script": "/x.py", "mpirun": mpirun, "factor": 1})
    assert res["failed"] and "factor >= 2" in res["msg"]
