# SPDX-License-Identifier: Apache-2.0
"""The deployed scripts under a real local mpirun (Debian's openmpi-bin + python3-mpi4py).

Skipped cleanly when mpirun or an mpi4py-capable python is missing here.
"""

import os
import shutil
import subprocess

import pytest
from ansible.module_utils.mtrt_collectives import parse_collectives
from ansible.module_utils.mtrt_gpu import parse_rank_device
from ansible.module_utils import mtrt_launch
from conftest import ROOT

COLLECTIVES = str(ROOT / "roles/mpi_collectives/files/mtrt_collectives.py")
RANK_DEVICE = str(ROOT / "roles/gpu_check/files/mtrt_rank_device.py")
PYTHON = os.environ.get("MTRT_TEST_MPI_PYTHON", "/usr/bin/python3")


def _has_mpi():
    if not shutil.which("mpirun") or not os.path.exists(PYTHON):
        return False
    return subprocess.run([PYTHON, "-c", "import mpi4py.MPI"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _has_mpi(), reason="needs mpirun and %s with mpi4py "
                                "(apt-get install openmpi-bin python3-mpi4py)" % PYTHON)


def mpirun(script, np, *args, env=None):
    launch = mtrt_launch.Launch({"hosts": ["localhost:%d" % np], "np": np, "env": env or {}, "tag_output": False,
                                 "extra_args": ["--oversubscribe", "--mca", "btl", "self,vader,tcp",
                                                 # more ranks than this machine has cores: yield, do not spin
                                                 "--mca", "mpi_yield_when_idle", "1"]},
                                [PYTHON, script] + list(args))
    return subprocess.run(launch.argv, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


SMALL = ("--sizes", "1,8,100,4096,65536", "--iters", "3", "--warmup", "1")


@pytest.mark.parametrize("np", [2, 3])
def test_every_collective_correct(np):
    run = mpirun(COLLECTIVES, np, *SMALL)
    assert run.returncode == 0, run.stderr
    parsed = parse_collectives(run.stdout, expected_world=np)
    assert parsed["problems"] == []
    assert len(parsed["results"]) == 5 * 24 and all(r["correct"] for r in parsed["results"])
    assert parsed["world_size"] == np and len(parsed["hosts"]) == np


@pytest.mark.parametrize("fault,collective,op,rank", [
    ("allreduce:SUM:rank1", "allreduce", "SUM", 1),
    ("reduce:MAXLOC:rank0", "reduce", "MAXLOC", 0),
    ("allgather:rank2", "allgather", None, 2),
    ("bcast:rank1", "bcast", None, 1),
])
def test_injected_fault_is_caught_and_named(fault, collective, op, rank):
    run = mpirun(COLLECTIVES, 3, *SMALL, env={"MTRT_COLLECTIVES_INJECT_FAULT": fault})
    assert run.returncode == 1
    parsed = parse_collectives(run.stdout, expected_world=3)
    assert parsed["fault"] == {"spec": fault, "applied": 5}
    assert {(f["collective"], f["op"], f["rank"]) for f in parsed["failures"]} == {(collective, op, rank)}
    assert sorted(f["size_bytes"] for f in parsed["failures"]) == sorted(
        r["size_bytes"] for r in parsed["results"] if (r["collective"], r["op"]) == (collective, op))
    wrong = [r for r in parsed["results"] if not r["correct"]]
    assert {(r["collective"], r["op"]) for r in wrong} == {(collective, op)}
    assert all(r["bad_ranks"] == [rank] for r in wrong)
    head = "%s%s at " % (collective, " " + op if op else "")
    assert parsed["problems"][0].startswith(head) and "rank %d (" % rank in parsed["problems"][0]


def test_maxloc_fault_hits_the_rank_field():
    run = mpirun(COLLECTIVES, 2, "--sizes", "64", "--collectives", "allreduce", "--ops", "MAXLOC",
                 env={"MTRT_COLLECTIVES_INJECT_FAULT": "allreduce:MAXLOC:rank1"})
    failure = parse_collectives(run.stdout)["failures"][0]
    assert failure["expected"][0] == failure["got"][0] and failure["got"][1] == failure["expected"][1] + 1


def test_bad_fault_spec_exits_2():
    run = mpirun(COLLECTIVES, 2, *SMALL, env={"MTRT_COLLECTIVES_INJECT_FAULT": "allreduce:XOR"})
    assert run.returncode == 2 and "unknown token 'XOR'" in run.stderr


def test_rank_device_without_gpu_names_the_fix():
    run = mpirun(RANK_DEVICE, 2, "--gpus-per-node", "2", env={"PATH": "/usr/bin:/bin"})
    parsed = parse_rank_device(run.stdout, expected_world=2)
    assert len(parsed["problems"]) == 2
    assert "asked for GPU 1 (rank % gpus_per_node 2), but" in parsed["problems"][1]
    assert "has no GPU visible" in parsed["problems"][1]
