# SPDX-License-Identifier: Apache-2.0
"""The mpi_hello module end to end: a real hello under the local mpirun, and mpirun stand-ins that replay
the Open MPI 4.1.4 captures of fixtures/mpi (singletons, a rank that exited first)."""

import shutil
import socket
import subprocess

import mpi_hello
import pytest

from conftest import FIXTURES, ROOT

MPI = FIXTURES / "mpi"
SCRIPT = str(ROOT / "roles/mpi_hello/files/mpi_hello.py")


def _has_mpi():
    return bool(shutil.which("mpirun")) and subprocess.run(
        ["/usr/bin/python3", "-c", "import mpi4py.MPI"], capture_output=True).returncode == 0


def replay(tmp_path, stdout, stderr=None, rc=0):
    """An mpirun that prints a capture (stdout, stderr) and exits ``rc``."""
    path = tmp_path / "mpirun"
    body = "cat %s\n" % (MPI / stdout)
    if stderr:
        body += "cat %s >&2\n" % (MPI / stderr)
    path.write_text("#!/bin/sh\n%sexit %d\n" % (body, rc))
    path.chmod(0o755)
    return str(path)


@pytest.mark.skipif(not _has_mpi(), reason="needs mpirun and /usr/bin/python3 with mpi4py")
def test_a_real_hello_on_local_slots(run_module, tmp_path):
    (tmp_path / "hostfile").write_text("localhost slots=3\n")
    res = run_module(mpi_hello, {"hostfile": str(tmp_path / "hostfile"), "script": SCRIPT,
                                 "python": "/usr/bin/python3", "extra_args": ["--oversubscribe"],
                                 "mca": {"btl": "self,vader,tcp"}, "timeout_s": 60})
    assert not res["failed"], res["msg"]
    me = socket.gethostname()
    assert res["world_size"] == res["expected_world_size"] == 3 and res["ranks_per_host"] == {me: 3}
    assert [r["rank"] for r in res["ranks"]] == [0, 1, 2] and all(r["allreduce_ok"] for r in res["ranks"])
    assert res["ranks_seen"] == [0, 1, 2] and res["ranks_silent"] == [] and res["problems"] == []


def test_singletons_fail_naming_the_duplicate_and_missing_rank(run_module, tmp_path):
    res = run_module(mpi_hello, {"hosts": ["localhost:2"], "script": SCRIPT,
                                 "mpirun": replay(tmp_path, "hello_singleton_np2_tagged.stdout")})
    assert res["failed"] and res["rc"] == 0
    assert res["duplicate_ranks"] == [0] and res["missing_ranks"] == [1] and res["size_mismatch_ranks"] == [0]
    assert res["msg"].startswith("missing rank(s) 1 of 2 (expected on rank 1 on %s). rank(s) 0 answered more "
                                 "than once. rank(s) 0 saw a world size of 1 instead of 2" % socket.gethostname())


def test_a_rank_that_exited_is_named_with_its_last_line(run_module, tmp_path):
    res = run_module(mpi_hello, {"hosts": ["node1:2", "node2:2"], "script": SCRIPT,
                                 "mpirun": replay(tmp_path, "hello_rank2_exits_tagged.stdout",
                                                  "hello_rank2_exits_tagged.stderr", rc=3)})
    assert res["failed"] and res["rc"] == 3 and res["missing_ranks"] == [0, 1, 2, 3]
    assert res["rank_tails"] == {"2": ["rank 2: cannot open /TRTDir/missing.bin"]}
    assert "mpi_hello: np=4 on node1:2, node2:2, mpirun exited with 3" in res["msg"]
    assert "rank(s) 0-1 on node1, 3 on node2 never printed anything" in res["msg"]
