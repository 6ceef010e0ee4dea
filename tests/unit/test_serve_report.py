# SPDX-License-Identifier: Apache-2.0
"""The serving stage in report.md, the console summary, the API and the CLI, on reports captured
from real runs of the serving scenario (tests/unit/fixtures/serve/README.md)."""

import json

from conftest import FIXTURES

from mpi_trt_ansible import cli, report
from mpi_trt_ansible.api import RunResult
from mpi_trt_ansible.report.kinds.serve import serving_outcome

RERUN = json.loads((FIXTURES / "serve" / "report_rerun_after_kill.json").read_text())
SWITCH = json.loads((FIXTURES / "serve" / "report_orchestrator_switch.json").read_text())


def outcome(rep):
    return serving_outcome((e["kind"], e["result"]) for _s, _h, e in report.iter_results(rep))


def test_the_outcome_has_each_planned_server_with_what_was_done_and_the_load_test():
    got = outcome(RERUN)
    assert got["mode"] == "leader" and got["endpoint"] == "http://127.0.0.1:18080"
    by_name = {i["name"]: i for i in got["instances"]}
    assert list(by_name) == ["inst0", "inst1"]
    # inst0 was killed and started again; inst1 was found running and left alone (its check says so).
    assert by_name["inst0"]["action"] == "started" and by_name["inst1"]["action"] == "unchanged"
    assert [(r["rank"], r["node"]) for r in by_name["inst0"]["ranks"]] == [(0, "srvnode1"), (1, "srvnode2")]
    assert by_name["inst1"]["host"] == "srvnode2" and by_name["inst1"]["ports"] == {"http": 8010, "grpc": 8011,
                                                                                   "metrics": 8012}
    assert by_name["inst0"]["time_to_ready_s"] > 0
    assert got["loadtest"]["per_instance"] == {"inst0": 12, "inst1": 12} and got["loadtest"]["errors"] == 0
    assert got["stopped"] == []


def test_servers_the_plan_dropped_are_listed_as_stopped():
    got = outcome(SWITCH)
    assert got["mode"] == "orchestrator" and [i["name"] for i in got["instances"]] == ["orchestrator"]
    assert got["instances"][0]["action"] == "started" and got["stopped"] == ["inst0", "inst1"]
    assert got["endpoint"] == "http://192.168.140.11:8000"


def test_no_serving_results_no_outcome():
    assert serving_outcome([("mpi_hello", {"world_size": 4})]) is None


def test_report_md_has_a_section_per_serving_result():
    md = report.render_markdown(RERUN)
    assert "## Serving plan: triton_serve on localhost" in md
    assert "| inst0 | srvnode1 | 0@srvnode1, 1@srvnode2 | rank % gpus_per_node | 8000 / 8001 / 8002 |" in md
    assert "## Model repositories: triton_serve on localhost" in md
    assert "inst0: started (not running)" in md or "inst0: started (its mpirun" in md
    assert "inst1: checked on srvnode2 - it would be unchanged." in md
    assert "## Load test: triton_serve on localhost" in md and "| inst0 | 12 |" in md


def test_the_console_summary_has_one_serving_line():
    lines = report.summary_lines(RERUN)
    (line,) = [x for x in lines if x.startswith("  serving")]
    assert line.startswith("  serving (leader) at http://127.0.0.1:18080: inst0 started (ranks 0@srvnode1,1@srvnode2, "
                           "http 8000), ready in ")
    assert "inst1 unchanged (ranks 0@srvnode2,1@srvnode1, http 8010)" in line
    assert "| load test 24/24 ok" in line and line.endswith("0 errors")
    switched = [x for x in report.summary_lines(SWITCH) if x.startswith("  serving")][0]
    assert switched.endswith("0 errors") and "; stopped inst0, inst1 |" in switched


def test_the_api_gives_the_serving_outcome_typed():
    result = RunResult.from_report(RERUN, "successful", 0)
    serving = result.serving
    assert serving.endpoint == "http://127.0.0.1:18080" and len(serving.instances) == 2
    assert serving.loadtest["latency_s"]["p50"] > 0
    assert RunResult.from_report({"run": {}, "results": {}}, "successful", 0).serving is None


def test_the_cli_prints_endpoint_servers_and_figures():
    lines = cli.serving_lines(RunResult.from_report(RERUN, "successful", 0).serving)
    assert lines[0] == "serving (leader mode) at http://127.0.0.1:18080"
    assert lines[1].startswith("  inst0: started; rank 0 on srvnode1 (http 8000, grpc 8001, metrics 8002); ranks "
                               "0@srvnode1/gpu0, 1@srvnode2/gpu0; ready in ")
    assert lines[-1].startswith("  load test: 24/24 ok, 0 errors, per instance {'inst0': 12, 'inst1': 12}, p50 ")
    assert cli.serving_lines(None)[0].startswith("serving: not run")


def test_serve_runs_the_serving_playbook_with_serving_on(monkeypatch):
    seen = {}

    class Handle:
        def cancel(self):
            pass

        def result(self):
            return RunResult.from_report(RERUN, "successful", 0)

    def start(**kw):
        seen.update(kw)
        return Handle()

    monkeypatch.setattr(cli.api, "start_pipeline", start)
    assert cli.main(["serve", "-e", "cluster_serve_instances=2"]) == 0
    assert seen["playbook"] == "playbooks/95_triton_serve.yml"
    assert seen["extravars"] == {"cluster_serve_instances": 2, "cluster_serve_enabled": True,
                                 "cluster_serve_state": "started"}
    assert cli.main(["serve", "--stop"]) == 0 and seen["extravars"]["cluster_serve_state"] == "stopped"


def test_a_server_launch_reads_as_running_detached_not_as_not_started():
    from mpi_trt_ansible.report.kinds.launch import render_launch
    base = {"expected_placement": {"0": "n1", "1": "n2"}, "np": 2, "rc": None, "timed_out": False, "problems": [],
            "ranks_silent": [1], "detached": True, "pid": 4242, "command": ["mpirun"]}
    assert render_launch(base)[0] == "Launch: np 2 (0 on n1, 1 on n2); runs detached (mpirun pid 4242)."
    failed = dict(base, rc=1, pid=None, problems=["instance a: mpirun exited with 1"], rank_tails={"1": ["boom"]},
                  stderr_tail="Process name: [[1,1],1]")
    text = "\n".join(render_launch(failed))
    assert "mpirun exited 1" in text and "ranks that never printed: 1 on n2" in text and "boom" in text
