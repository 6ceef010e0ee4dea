"""The run report: events -> report dict -> report.json / report.md / console summary.

``fixtures/run_report/events.json`` holds ansible-runner events recorded from the
throwaway pipeline in ``fixtures/run_report/pipeline.py`` (a no_log result, a
private key in a result, loop items, skips, an ignored and a real failure).
"""

import json
import os
import types

import pytest
from ansible.plugins.loader import callback_loader

import run_report  # python_plugins/callback (conftest puts it on sys.path)
from conftest import FIXTURES, PLUGINS

mtrt_report = run_report.mtrt_report
EVENTS = json.loads((FIXTURES / "run_report" / "events.json").read_text())


@pytest.fixture(scope="module")
def report():
    builder = mtrt_report.ReportBuilder()
    for event in EVENTS:
        builder.feed(event)
    builder.finish()
    return builder.report()


def test_stages_in_run_order_with_counts(report):
    stages = {s["key"]: s for s in report["stages"]}
    assert list(stages) == ["preflight", "ssh_keys", "mpi_hello", "mpi_collectives",
                            "trtllm_engine", "trtllm_inference", "summary"]
    assert [s["number"] for s in report["stages"]] == ["00", "30", "60", "70", "80", "90", "99"]
    assert stages["preflight"]["counts"] == dict(ok=1, changed=0, failed=0, skipped=0,
                                                 unreachable=0, ignored=1)
    assert stages["ssh_keys"]["counts"]["changed"] == 1
    assert stages["mpi_hello"]["counts"] == dict(ok=2, changed=0, failed=0, skipped=2,
                                                 unreachable=0, ignored=0)
    assert stages["mpi_hello"]["tasks"][0]["hosts"] == {"node2": "skipped", "node1": "ok"}
    assert stages["trtllm_inference"]["status"] == "failed"
    assert {s["status"] for k, s in stages.items() if k != "trtllm_inference"} == {"ok"}
    assert all(s["duration_s"] is not None and s["duration_s"] >= 0 for s in report["stages"])
    assert report["run"]["status"] == "failed"
    assert report["run"]["playbook"].endswith("play.yml")


def test_module_results_by_stage_and_host(report):
    results = report["results"]
    hello = results["mpi_hello"]["node1"][0]
    assert hello["kind"] == "mpi_hello" and hello["task"] == "Say hello from every rank (4 ranks)"
    assert hello["result"]["ranks_per_host"] == {"node1": 2, "node2": 2}
    assert "invocation" not in hello["result"]
    assert results["trtllm_engine"]["node1"][0]["result"]["cache_hit"] is True
    assert results["trtllm_inference"]["node1"][0]["result"]["latency_s"] == 0.25
    # the no_log task is gone, the loop gave one result per item
    assert [e["kind"] for e in results["ssh_keys"]["localhost"]] == ["ssh_keys", "host_key", "host_key"]
    assert "node2" not in results["mpi_hello"]


def test_failures_name_host_task_and_message(report):
    assert report["failures"] == [{
        "stage": "trtllm_inference", "host": "node2", "task": "Compare the output with the reference",
        "action": "ansible.builtin.fail", "status": "failed",
        "message": "prompt 0 differs from the reference on this node"}]


def test_host_stats_from_the_recap(report):
    assert report["hosts"]["node2"]["failed"] == 1
    assert report["hosts"]["node1"]["ok"] == 5
    assert report["hosts"]["localhost"]["ignored"] == 1


def test_no_secret_survives(report):
    assert "PRIVATE KEY" in json.dumps(EVENTS)  # the fixture does carry a key
    text = json.dumps(report) + mtrt_report.render_markdown(report)
    assert "PRIVATE KEY" not in text and "b3BlbnNzaC1rZXkt" not in text
    assert report["results"]["ssh_keys"]["localhost"][0]["result"]["debug_dump"] == mtrt_report.REDACTED + "\n"
    assert "private_key" not in text


def test_markdown_for_a_person(report):
    md = mtrt_report.render_markdown(report)
    assert "| 60 | mpi_hello | ok | 2 | 2 | 0 | 0 | 2 | 0 | 0 |" in md
    assert "World size 4; ranks reported: 4; missing ranks: none" in md
    assert "| node1 | 2 | 0, 1 |" in md and "| node2 | 2 | 2, 3 |" in md
    assert "Engine reused (cache hit): `/TRTDir/engines/tiny-tp2`" in md
    assert "What is MPI?" in md and "A message passing interface." in md
    assert "Whole run: latency 0.25 s, 4.0 prompts/s." in md
    assert "| allreduce | sum | 1048576 | 812.5 | 1.29 | 1.94 | True |" in md
    assert "- **fingerprint**: `SHA256:fake-node2`" in md  # an unknown kind as key/value
    assert "| trtllm_inference | node2 | Compare the output with the reference |" in md


def test_console_summary(report):
    lines = mtrt_report.summary_lines(report, "reports/x/report.md")
    assert lines[0].startswith("MTRT run failed in ") and lines[0].endswith("reports/x/report.md")
    assert any(line.split()[:3] == ["60", "mpi_hello", "ok"] for line in lines)
    assert "  hello on node1: world_size=4 node1=2 node2=2 missing=none" in lines
    assert lines[-1] == ("  FAILED node2 / Compare the output with the reference: "
                         "prompt 0 differs from the reference on this node")


def test_markdown_prompt_with_its_own_timings():
    data = {"prompts": [{"index": 1, "input": "Hi", "latency_s": 0.5, "tokens_per_s": 24.0,
                         "outputs": [{"beam": 0, "text": "Hello", "tokens": 12}]}]}
    md = "\n".join(mtrt_report.RENDERERS["trtllm_run"][1](data))
    assert "**Prompt 1** (latency 0.5 s, 24.0 tokens/s)" in md
    assert "Output (beam 0, 12 tokens):" in md and "Hello" in md


def _ev(event, **data):
    return {"event": event, "created": "2025-01-01T00:00:00+00:00", "event_data": data}


def test_unreachable_secret_message_and_censored_failure():
    builder = mtrt_report.ReportBuilder()
    builder.feed(_ev("playbook_on_play_start", name="Stage 50 - SSH mesh"))
    notes = builder.feed(_ev("playbook_on_task_start", task="Check", task_uuid="t1", role="ssh_mesh"))
    assert notes[0]["type"] == "stage_started" and notes[0]["stage"] == "ssh_mesh"
    builder.feed(_ev("runner_on_unreachable", host="node2", task_uuid="t1",
                     res={"msg": "key -----BEGIN RSA PRIVATE KEY-----\nabc"}))
    notes = builder.feed(_ev("runner_on_failed", host="node1", task_uuid="t1",
                             res={"censored": "hidden", "changed": False}))
    assert notes[0]["status"] == "failed" and notes[0]["message"] == "output hidden (no_log)"
    builder.feed(_ev("playbook_on_stats", processed={"node1": 1, "node2": 1},
                     dark={"node2": 1}, failures={"node1": 1}))
    report = builder.report()
    assert [(f["host"], f["status"], f["message"]) for f in report["failures"]] == [
        ("node2", "unreachable", "key " + mtrt_report.REDACTED),
        ("node1", "failed", "output hidden (no_log)")]
    assert report["stages"][0]["counts"]["unreachable"] == 1
    assert report["hosts"]["node2"]["unreachable"] == 1 and report["run"]["status"] == "failed"


def test_plays_without_tasks_are_not_stages_and_finish_closes_open_stage():
    builder = mtrt_report.ReportBuilder()
    builder.feed(_ev("playbook_on_play_start", name="Stage 10 - Node image"))  # all tasks tagged away
    builder.feed(_ev("playbook_on_play_start", name="Stage 99 - Run summary"))
    builder.feed(_ev("playbook_on_task_start", task="Say", task_uuid="t"))
    notes = builder.finish("canceled")
    assert notes[0]["type"] == "stage_finished" and notes[0]["status"] == "canceled"
    report = builder.report()
    assert [s["key"] for s in report["stages"]] == ["run_summary"]
    assert report["run"]["status"] == "canceled"


@pytest.mark.parametrize("value, expected", [
    ("a -----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY----- b", "a <redacted private key> b"),
    ("-----BEGIN PRIVATE KEY-----\ncut short", "<redacted private key>"),
    ({"k": ["-----BEGIN EC PRIVATE KEY-----x-----END EC PRIVATE KEY-----"]}, {"k": ["<redacted private key>"]}),
    ("ssh-ed25519 AAAA public is fine", "ssh-ed25519 AAAA public is fine"),
])
def test_scrub(value, expected):
    assert mtrt_report.scrub(value) == expected


def test_write_report_and_latest_pointer(tmp_path, report):
    first = mtrt_report.write_report(report, str(tmp_path), "run-1")
    second = mtrt_report.write_report(report, str(tmp_path), "run-2")
    assert first == (str(tmp_path / "run-1" / "report.json"), str(tmp_path / "run-1" / "report.md"))
    assert os.readlink(tmp_path / "latest") == "run-2"
    assert json.loads((tmp_path / "latest" / "report.json").read_text()) == report
    assert second[1].endswith("run-2/report.md") and os.path.isfile(second[1])
    with pytest.raises(ValueError):
        mtrt_report.write_report(report, str(tmp_path), "../escape")


def test_callback_glue_writes_files_and_prints_summary(tmp_path, monkeypatch):
    """The CallbackBase hooks, driven with stand-in objects, end in report files."""
    callback_loader.add_directory(str(PLUGINS / "callback"))
    callback = callback_loader.get("run_report")
    callback.set_options(direct={"report_dir": str(tmp_path), "run_id": "r1"})
    printed = []
    monkeypatch.setattr(callback._display, "display", lambda msg, *a, **k: printed.append(msg))

    role = types.SimpleNamespace(_role_name="mpi_hello")
    task = types.SimpleNamespace(name="Say hello", action="mpi_hello", _uuid="u1", _role=role)
    host = types.SimpleNamespace(get_name=lambda: "node1")
    hello = {"mtrt_kind": "mpi_hello", "world_size": 2, "ranks_per_host": {"node1": 2},
             "ranks": [{"rank": 0, "host": "node1"}, {"rank": 1, "host": "node1"}],
             "missing_ranks": [], "duration_s": 0.5, "changed": False}
    callback.v2_playbook_on_start(types.SimpleNamespace(_file_name="site.yml"))
    callback.v2_playbook_on_play_start(types.SimpleNamespace(get_name=lambda: "Stage 60 - MPI hello"))
    callback.v2_playbook_on_task_start(task, False)
    callback.v2_runner_on_start(host, task)
    callback.v2_runner_on_ok(types.SimpleNamespace(host=host, task=task, result=hello))
    secret = dict(hello, _ansible_no_log=True)
    callback.v2_runner_on_ok(types.SimpleNamespace(host=host, task=task, result=secret))
    counts = {"node1": 2}
    callback.v2_playbook_on_stats(types.SimpleNamespace(
        processed=counts, ok=counts, changed={}, failures={}, dark={}, skipped={}, rescued={}, ignored={}))

    data = json.loads((tmp_path / "r1" / "report.json").read_text())
    assert data["run"] == dict(data["run"], playbook="site.yml", status="successful")
    assert data["stages"][0]["key"] == "mpi_hello" and data["stages"][0]["counts"]["ok"] == 2
    assert len(data["results"]["mpi_hello"]["node1"]) == 1  # the no_log one is dropped
    assert data["stages"][0]["tasks"][0]["duration_s"] is not None
    assert (tmp_path / "latest" / "report.md").is_file()
    assert printed[1].startswith("MTRT run successful") and printed[1].endswith("r1/report.md")
    assert "  hello on node1: world_size=2 node1=2 missing=none" in printed
