# SPDX-License-Identifier: Apache-2.0
"""The API against the real local docker engine: bring-up, MPI hello, a hello timeout, cancel (an interrupt).

Runs only with ``MTRT_INTEGRATION=1``; the inventory is ``$MTRT_TEST_INVENTORY``
(default ``inventory/local``). Each run brings the cluster up (idempotently) on
the docker host and tears it down with ``playbooks/teardown.yml`` at the end.

    MTRT_INTEGRATION=1 .venv/bin/python -m pytest tests/integration -q
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mpi_trt_ansible import api  # noqa: E402

pytestmark = pytest.mark.skipif(os.environ.get("MTRT_INTEGRATION") != "1",
                                reason="needs docker; set MTRT_INTEGRATION=1")
# mpirun runs `sleep 600` on every rank and is killed after 1 s: a hello that times out.
HANG = {"cluster_mpi_timeout_s": 1, "mpi_hello_python": "sleep", "mpi_hello_script": "600"}


@pytest.fixture(scope="module")
def inventory():
    return os.environ.get("MTRT_TEST_INVENTORY", "inventory/local")


@pytest.fixture(scope="module")
def nodes(inventory):
    """``{node: slots}`` of the inventory's ``nodes`` group, in inventory order."""
    out = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-inventory"), "-i", inventory,
                          "--list"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    hostvars = data["_meta"]["hostvars"]
    return {h: int(hostvars[h]["node_slots"]) for h in data["nodes"]["hosts"]}


@pytest.fixture(scope="module")
def pdd(tmp_path_factory):
    return str(tmp_path_factory.mktemp("runner"))


@pytest.fixture(scope="module")
def bring_up(inventory, pdd):
    """The whole pipeline once; ``(result, events)``."""
    events = []
    result = api.run_pipeline(inventory=inventory, on_event=events.append, private_data_dir=pdd,
                              timeout=1800)
    yield result, events
    down = api.run_pipeline(inventory=inventory, playbook="playbooks/teardown.yml", private_data_dir=pdd,
                            timeout=600)
    assert down.ok, down.failures


def _stage_numbers(events):
    return [int(e.name.split()[1]) for e in events
            if isinstance(e, api.StageStarted) and e.name.startswith("Stage ")]


def test_bring_up_and_hello(bring_up, nodes):
    result, _events = bring_up
    assert result.ok and result.rc == 0, result.failures
    hello = result.hello
    assert hello is not None and hello.ok
    assert hello.launcher == next(iter(nodes))
    assert hello.ranks_per_host == nodes
    assert hello.world_size == sum(nodes.values()) and hello.missing_ranks == []
    assert sorted(r["rank"] for r in hello.ranks) == list(range(sum(nodes.values())))
    # On a cluster already up as recorded, stages 10-50 are settled (skipped); the hello runs every time.
    for tag in ("node_containers", "ssh_mesh"):
        assert result.stage(tag) is not None and result.stage(tag).status in ("ok", "settled"), tag
    assert result.stage("mpi_hello").status == "ok"


def test_report_files_written(bring_up):
    result, _events = bring_up
    data = json.loads(pathlib.Path(result.report_json).read_text())
    assert data["run"]["status"] == "successful" and data == result.report
    assert "World size" in pathlib.Path(result.report_md).read_text()
    assert pathlib.Path(result.report_json).parent.name == pathlib.Path(result.artifact_dir).name


def test_progress_callbacks_in_order(bring_up):
    result, events = bring_up
    assert isinstance(events[-1], api.RunFinished) and events[-1].result is result
    starts = [e.stage for e in events if isinstance(e, api.StageStarted)]
    ends = {e.stage: e for e in events if isinstance(e, api.StageFinished)}
    assert starts == list(ends) == list(result.stages)
    assert _stage_numbers(events) == sorted(_stage_numbers(events))
    for key, end in ends.items():  # events and report.json agree
        assert (end.changed, end.failed) == (result.stages[key].changed, result.stages[key].counts["failed"])


def test_second_run_changes_nothing(bring_up, inventory, pdd):
    again = api.run_pipeline(inventory=inventory, private_data_dir=pdd, timeout=1800)
    assert again.ok, again.failures
    changed = {k: [t["name"] for t in s.tasks if "changed" in t["hosts"].values()]
               for k, s in again.stages.items() if s.changed}
    assert changed == {}
    assert again.hello.ranks_per_host == bring_up[0].hello.ranks_per_host


def test_hello_timeout_names_host_and_task(bring_up, inventory, nodes, pdd):
    launcher = next(iter(nodes))
    result = api.run_pipeline(inventory=inventory, stages=["mpi_hello"], extravars=HANG,
                              private_data_dir=pdd, timeout=600)
    assert result.status == "failed" and result.rc != 0
    failure = next(f for f in result.failures if f.stage == "mpi_hello")
    assert failure.host == launcher
    assert failure.task.startswith("Say hello from every rank")
    assert "timed out" in failure.message and failure.kind == "mpi_hello"
    assert isinstance(failure.explained, tuple) and isinstance(failure.diagnosis, tuple)
    assert result.stage("mpi_hello").status == "failed"
    assert result.by_kind("mpi_hello")[launcher]["timed_out"] is True
    on_disk = json.loads(pathlib.Path(result.report_json).read_text())["failures"]
    assert {(f["host"], f["task"]) for f in on_disk} >= {(failure.host, failure.task)}


def _ranks_sleeping(node):
    """Pids of the hello's ranks (``sleep 600``) running in ``node``'s container."""
    out = subprocess.run(["docker", "exec", node, "sh", "-c",
                          "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"],
                         capture_output=True, text=True, timeout=60).stdout
    return [line for line in out.splitlines() if line.split()[:2] in (["sleep", "600"], ["/usr/bin/sleep", "600"])]


def test_cancel_during_hello(bring_up, inventory, nodes, pdd):
    launcher = next(iter(nodes))
    hang = dict(HANG, cluster_mpi_timeout_s=600)
    handle = api.start_pipeline(inventory=inventory, stages=["mpi_hello"], extravars=hang, private_data_dir=pdd)
    deadline = time.monotonic() + 300
    while not _ranks_sleeping(launcher):  # the hello's mpirun runs its ranks
        assert not handle.done and time.monotonic() < deadline
        time.sleep(0.5)
    handle.cancel()
    result = handle.result(timeout=60)
    # cancel interrupts ansible-playbook as Ctrl-C does: it stops the hello's mpirun and reports interrupted
    assert (result.status, result.rc) == ("canceled", 99)
    assert result.stages["mpi_hello"].status == "interrupted"
    assert result.report["run"]["status"] == "interrupted"
    [cleanup] = result.report["interrupted"]["cleanup"]
    assert [(launch["kind"], launch["was_running"], launch["left_running"]) for launch in cleanup["launches"]] == [
        ("mpi_hello", True, [])]
    assert all(_ranks_sleeping(node) == [] for node in nodes)
