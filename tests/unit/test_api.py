# SPDX-License-Identifier: Apache-2.0
"""The ansible-runner API: events -> typed progress, RunResult, envvars and cancel wiring.

Most tests replace ``ansible_runner.run_async`` with a fake that replays the
recorded events of ``fixtures/run_report/events.json``. The last two run the
real ansible-runner on a throwaway playbook (no docker) to prove the wiring.
"""

import json
import pathlib
import sys
import threading
import time
import types

import pytest

from conftest import FIXTURES, ROOT

if str(ROOT) not in sys.path:  # the package at the repo root, installed or not
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(FIXTURES / "run_report"))

import pipeline  # noqa: E402  (fixtures/run_report/pipeline.py)
from mpi_trt_ansible import api, cli  # noqa: E402
from mpi_trt_ansible import report as mtrt_report  # noqa: E402

EVENTS = json.loads((FIXTURES / "run_report" / "events.json").read_text())
STAGES = ["preflight", "ssh_keys", "mpi_hello", "mpi_collectives", "trtllm_engine",
          "trtllm_inference", "summary"]


class FakeRunner:
    """What the API reads of ansible_runner's Runner."""

    def __init__(self, artifact_dir):
        self.status, self.rc = "starting", None
        self.config = types.SimpleNamespace(artifact_dir=artifact_dir)


@pytest.fixture
def fake_runner(monkeypatch, tmp_path):
    """Replace run_async; the fake replays ``events`` once ``go`` is set, polling cancel."""
    state = types.SimpleNamespace(kwargs=None, events=EVENTS, go=threading.Event(),
                                  status="failed", rc=2, report=None)

    def run_async(**kwargs):
        state.kwargs = kwargs
        runner = FakeRunner(str(tmp_path / "artifacts" / kwargs["ident"]))

        def body():
            state.go.wait(5)
            runner.status = "running"
            for event in state.events:
                if kwargs["cancel_callback"]():
                    runner.status, runner.rc = "canceled", 254
                    break
                kwargs["event_handler"](event)
            else:
                if state.report is not None:  # what the run_report callback would write
                    env = kwargs["envvars"]
                    path = pathlib.Path(env["MTRT_REPORT_DIR"]) / env["MTRT_RUN_ID"] / "report.json"
                    path.parent.mkdir(parents=True)
                    path.write_text(json.dumps(state.report))
                runner.status, runner.rc = state.status, state.rc
            kwargs["finished_callback"](runner)

        thread = threading.Thread(target=body)
        thread.start()
        return thread, runner

    monkeypatch.setattr(api.ansible_runner, "run_async", run_async)
    return state


def _start(fake, tmp_path, **kwargs):
    seen = []
    handle = api.start_pipeline(on_event=seen.append, private_data_dir=str(tmp_path / "pdd"), **kwargs)
    fake.go.set()
    return handle, seen


def test_runner_gets_project_callback_and_report_envvars(fake_runner, tmp_path):
    handle, _ = _start(fake_runner, tmp_path, inventory="inventory/local",
                       stages=["mpi_hello", "build_engine"], extravars={"cluster_mpi_timeout_s": 1},
                       timeout=60)
    handle.result(timeout=10)
    kw = fake_runner.kwargs
    env = kw["envvars"]
    assert env["ANSIBLE_CALLBACK_PLUGINS"] == str(ROOT / "python_plugins" / "callback")
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "run_report"
    assert env["MTRT_REPORT_DIR"] == str((tmp_path / "pdd" / "reports").resolve())
    assert env["MTRT_RUN_ID"] == kw["ident"] == handle.ident
    assert kw["project_dir"] == str(ROOT) and kw["playbook"] == "site.yml"
    assert kw["tags"] == "mpi_hello,build_engine" and kw["timeout"] == 60 + api.CANCEL_GRACE_S  # a backstop
    assert kw["extravars"] == {"cluster_mpi_timeout_s": 1} and kw["inventory"] == str(ROOT / "inventory" / "local")
    assert kw["suppress_env_files"] is True


def test_progress_events_in_order(fake_runner, tmp_path):
    handle, seen = _start(fake_runner, tmp_path)
    result = handle.result(timeout=10)
    assert isinstance(seen[-1], api.RunFinished) and seen[-1].result is result
    started = [e.stage for e in seen if isinstance(e, api.StageStarted)]
    finished = [e.stage for e in seen if isinstance(e, api.StageFinished)]
    assert started == finished == STAGES
    current = None
    for event in seen[:-1]:  # every task result lies between its stage's start and finish
        if isinstance(event, api.StageStarted):
            assert current is None
            current = event.stage
        elif isinstance(event, api.TaskResult):
            assert event.stage == current
        else:
            assert event.stage == current
            current = None
    tasks = [e for e in seen if isinstance(e, api.TaskResult)]
    hello = next(e for e in tasks if e.task.startswith("Say hello") and e.host == "node1")
    assert hello.status == "ok" and hello.mtrt[0]["ranks_per_host"] == {"node1": 2, "node2": 2}
    hidden = next(e for e in tasks if e.task == "Read the private key")
    assert hidden.mtrt == () and "PRIVATE KEY" not in repr(seen[:-1])
    failed = [(e.host, e.task, e.message) for e in tasks if e.status == "failed"]
    assert failed == [("node2", "Compare the output with the reference",
                       "prompt 0 differs from the reference on this node")]
    assert next(e for e in seen if isinstance(e, api.StageFinished) and e.stage == "ssh_keys").changed == 1


def test_result_from_events_when_no_report_was_written(fake_runner, tmp_path):
    result = _start(fake_runner, tmp_path)[0].result(timeout=10)
    assert (result.status, result.rc, result.ok) == ("failed", 2, False)
    assert result.report_json is None and list(result.stages) == STAGES
    assert result.stage("trtllm_inference").failed == 1
    assert result.stage("ssh_keys").changed == 1
    assert result.hello == api.HelloResult(
        launcher="node1", world_size=4, ranks_per_host={"node1": 2, "node2": 2}, missing_ranks=[],
        ranks=result.by_kind("mpi_hello")["node1"]["ranks"], duration_s=1.52, ok=True)
    assert result.by_kind("trtllm_engine_build") == {"node1": dict(
        result.by_kind("trtllm_engine_build")["node1"], cache_hit=True, engine_dir="/TRTDir/engines/tiny-tp2")}
    assert [(f.host, f.task, f.stage) for f in result.failures] == [
        ("node2", "Compare the output with the reference", "trtllm_inference")]
    assert result.hosts["node2"]["failed"] == 1


def test_result_prefers_report_json_and_runner_status(fake_runner, tmp_path):
    report = mtrt_report.ReportBuilder()
    for event in EVENTS:
        report.feed(event)
    report.finish()
    fake_runner.report = dict(report.report(), run={"playbook": "from-report.yml", "status": "failed"})
    fake_runner.status, fake_runner.rc = "successful", 0  # the runner's word wins
    result = _start(fake_runner, tmp_path)[0].result(timeout=10)
    assert result.playbook == "from-report.yml"
    assert (result.status, result.rc) == ("successful", 0)
    assert result.report_json.endswith("/report.json") and result.report_md.endswith("/report.md")
    assert result.stage("build_engine") is None  # no tags: the recorded runner events carry none
    assert result.stage("trtllm_engine").key == "trtllm_engine"


def test_cancel_mid_run(fake_runner, tmp_path):
    seen = []
    holder = {}

    def on_event(event):
        seen.append(event)
        if isinstance(event, api.StageStarted) and event.stage == "mpi_hello":
            holder["handle"].cancel()

    handle = api.start_pipeline(on_event=on_event, private_data_dir=str(tmp_path / "pdd"))
    holder["handle"] = handle
    fake_runner.go.set()
    result = handle.result(timeout=10)
    assert handle.done and handle.status == "canceled"
    assert (result.status, result.rc) == ("canceled", 254)
    assert list(result.stages) == ["preflight", "ssh_keys", "mpi_hello"]
    assert result.stages["mpi_hello"].status == "canceled"
    last_stage = [e for e in seen if isinstance(e, api.StageFinished)][-1]
    assert (last_stage.stage, last_stage.status) == ("mpi_hello", "canceled")
    assert isinstance(seen[-1], api.RunFinished) and seen[-1].status == "canceled"


def test_result_waits_with_timeout_and_on_event_errors_do_not_break_the_run(fake_runner, tmp_path):
    def broken(event):
        raise RuntimeError("caller bug")

    handle = api.start_pipeline(on_event=broken, private_data_dir=str(tmp_path / "pdd"))
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.05)
    fake_runner.go.set()
    assert handle.result(timeout=10).status == "failed"


def test_find_project_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MTRT_PROJECT_DIR", raising=False)
    assert api.find_project_dir() == ROOT
    assert api.find_project_dir(str(ROOT)) == ROOT
    with pytest.raises(FileNotFoundError):
        api.find_project_dir(str(tmp_path))


def test_cli_extravars():
    assert cli.parse_extravars(["a=1", "b=x y", "c=true", "d="]) == {"a": 1, "b": "x y", "c": True, "d": ""}
    with pytest.raises(Exception):
        cli.parse_extravars(["novalue"])


# --- the real ansible-runner, no docker ---------------------------------------------------

def _strip_times(report):
    """A report without its clocks, for comparing two builds of one run."""
    report = json.loads(json.dumps(report))
    for stage in report["stages"]:
        for key in ("started_at", "ended_at", "duration_s", "tags"):
            stage.pop(key)
        for task in stage["tasks"]:
            task.pop("duration_s")
    return {k: report[k] for k in ("stages", "results", "failures", "hosts")}


def test_smoke_real_runner_writes_report_and_typed_result(tmp_path):
    playbook, inventory = pipeline.write_pipeline(tmp_path / "pipeline")
    seen = []
    result = api.run_pipeline(inventory=str(inventory), playbook=str(playbook), on_event=seen.append,
                              private_data_dir=str(tmp_path / "pdd"), timeout=120)
    assert (result.status, result.rc) == ("failed", 2)
    report_json, report_md = pathlib.Path(result.report_json), pathlib.Path(result.report_md)
    assert report_json.is_file() and report_md.is_file()
    assert report_json.parent.name == pathlib.Path(result.artifact_dir).name  # the run's ident
    assert (tmp_path / "pdd" / "reports" / "latest" / "report.json").is_file()
    assert list(result.stages) == STAGES
    assert result.stage("build_engine").key == "trtllm_engine"  # tags come with report.json
    assert result.hello.ranks_per_host == {"node1": 2, "node2": 2} and result.hello.launcher == "node1"
    assert [(f.host, f.task) for f in result.failures] == [("node2", "Compare the output with the reference")]
    for path in (report_json, report_md):
        assert "PRIVATE KEY" not in path.read_text()
    # the callback (report.json) and this run's runner events build the same report
    from_events = mtrt_report.ReportBuilder()
    saved = pathlib.Path(result.artifact_dir, "job_events").glob("*.json")
    for path in sorted(saved, key=lambda p: int(p.name.split("-", 1)[0])):
        from_events.feed(json.loads(path.read_text()))
    from_events.finish()
    assert _strip_times(result.report) == _strip_times(from_events.report())
    assert [type(e).__name__ for e in seen][:2] == ["StageStarted", "TaskResult"]
    assert isinstance(seen[-1], api.RunFinished)


def _pids_running(argv):
    """Pids of the processes whose command line is exactly ``argv``."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:-1] == argv:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_smoke_real_runner_cancel(tmp_path):
    sleeper = [b"sleep", b"61.375"]  # an odd duration: no other process runs exactly this
    (tmp_path / "play.yml").write_text(
        "- name: Stage 60 - Slow\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Wait a long time\n      ansible.builtin.command: sleep 61.375\n      changed_when: false\n")
    (tmp_path / "inventory.yml").write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    handle = api.start_pipeline(
        inventory=str(tmp_path / "inventory.yml"), playbook=str(tmp_path / "play.yml"),
        private_data_dir=str(tmp_path / "pdd"))
    deadline = time.monotonic() + 60
    while not _pids_running(sleeper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pids_running(sleeper), "the task never started its command"
    handle.cancel()
    result = handle.result(timeout=30)
    # ansible-playbook got SIGINT, stopped on its own (rc 99, as on Ctrl-C) and wrote its report
    assert (result.status, result.rc) == ("canceled", 99)
    assert result.report["run"]["status"] == "interrupted" and result.report_json is not None
    assert result.stages["slow"].status == "interrupted"
    flight = result.report["interrupted"]["in_flight"]
    assert [(f["stage"], f["host"], f["task"]) for f in flight] == [("slow", "localhost", "Wait a long time")]
    assert [(c["host"], c["via"], c["error"]) for c in result.report["interrupted"]["cleanup"]] == [
        ("localhost", "local", None)]
    assert _pids_running(sleeper) == []


def test_relative_inventory_resolves_against_cwd_then_project(tmp_path, monkeypatch):
    from mpi_trt_ansible.api import _resolve_inventory
    project = tmp_path / "project"
    (project / "inventory" / "local").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert _resolve_inventory("inventory/local", project) == str(project / "inventory" / "local")
    (tmp_path / "mine.yml").write_text("all: {}\n")
    assert _resolve_inventory(["mine.yml"], project) == [str(tmp_path / "mine.yml")]
    assert _resolve_inventory("node1,node2,", project) == "node1,node2,"
    assert _resolve_inventory(None, project) is None
