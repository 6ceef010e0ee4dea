# SPDX-License-Identifier: Apache-2.0
"""Check mode of the modules that launch mpirun: nothing runs, and Ansible does not read a failure.

ansible-core takes a result without ``failed`` whose ``rc`` is not 0 for a failure
("Action failed: Unknown error"); these modules return ``rc: null`` in check mode
(nothing ran), so they must say ``failed: false`` themselves.
"""

import gpu_check
import mpi_collectives
import mpi_hello
import pytest
from ansible.module_utils import mtrt_launch
from conftest import ansible_reads_failed

ARGS = {
    mpi_hello: {},
    mpi_collectives: {"max_bytes": 4096},
    gpu_check: {"check": "nccl_allreduce", "gpus_per_node": 2},
}


@pytest.mark.parametrize("module", list(ARGS), ids=lambda m: m.__name__)
def test_check_mode_runs_nothing_and_does_not_fail(module, run_module, tmp_path, monkeypatch):
    ran = tmp_path / "mpirun-ran"
    mpirun = tmp_path / "mpirun"
    mpirun.write_text("#!/bin/sh\ntouch %s\n" % ran)
    mpirun.chmod(0o755)
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node1 slots=2\nnode2 slots=2\n")

    def no_run(*args, **kwargs):
        raise AssertionError("check mode started a process: %r" % (args,))

    monkeypatch.setattr(mtrt_launch, "run_bounded", no_run)  # every mpirun goes through the launcher
    args = dict(ARGS[module], hostfile=str(hostfile), script="/etc/mtrt/cluster/x.py", mpirun=str(mpirun),
                _ansible_check_mode=True)
    res = run_module(module, args, raw=True)
    assert not ansible_reads_failed(res), res
    assert res["failed"] is False and res["rc"] is None and res["changed"] is False
    assert res["skipped_reason"] == "check mode: mpirun not started"
    assert res["command"][0] == str(mpirun) and "-np" in res["command"] and "4" in res["command"]
    assert not ran.exists()


def test_ansible_reads_rc_null_without_failed_as_a_failure():
    """The rule the test above relies on (ansible.executor.task_executor)."""
    assert ansible_reads_failed({"rc": None}) and ansible_reads_failed({"rc": 2})
    assert not ansible_reads_failed({"rc": None, "failed": False}) and not ansible_reads_failed({"rc": 0})
    assert not ansible_reads_failed({"changed": False})
