# SPDX-License-Identifier: Apache-2.0
"""The run report: events -> report dict -> report.json / report.md / console summary.

``fixtures/run_report/events.json`` holds ansible-runner events recorded from the
throwaway pipeline in ``fixtures/run_report/pipeline.py`` (a no_log result, a
private key in a result, loop items, skips, an ignored and a real failure).
"""

import json
import os
import pathlib
import sys
import textwrap
import types

import pytest
from ansible.plugins.loader import callback_loader

import run_report  # python_plugins/callback (conftest puts it on sys.path)
from conftest import FIXTURES, PLUGINS, ROOT
from mpi_trt_ansible import diagnose
from mpi_trt_ansible import report as mtrt_report
EVENTS = json.loads((FIXTURES / "run_report" / "events.json").read_text())
H200 = ROOT / "docs" / "results" / "h200x2-local" / "report.json"  # a real run on 2x H200 (local mode)


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
                                                 unreachable=0, ignored=1, rescued=0)
    assert stages["ssh_keys"]["counts"]["changed"] == 1
    assert stages["mpi_hello"]["counts"] == dict(ok=2, changed=0, failed=0, skipped=2,
                                                 unreachable=0, ignored=0, rescued=0)
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
        "message": "prompt 0 differs from the reference on this node",
        "kind": None, "explained": [], "diagnosis": []}]


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
    assert "| allreduce | sum | yes (1 size) | 812.5 | 812.5 | 1.29 | 1.94 |" in md
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
    md = "\n".join(mtrt_report.RENDERERS["trtllm_inference_run"][1](data))
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


# --- repeated plays that only skip, rescued failures -------------------------------------

def _play(builder, name, results, role=None, uuid_prefix=None):
    """Feed one play: ``results`` is [(task, host, event, extra event_data)]; return all notes."""
    notes = builder.feed(_ev("playbook_on_play_start", name=name))
    started = set()
    for i, (task, host, event, extra) in enumerate(results):
        uuid = "%s-%s" % (uuid_prefix or name, task)
        if uuid not in started:
            started.add(uuid)
            notes += builder.feed(_ev("playbook_on_task_start", task=task, task_uuid=uuid, role=role))
        notes += builder.feed(_ev(event, host=host, task_uuid=uuid, res=dict(extra.pop("res", {})), **extra))
    return notes


def test_repeated_play_that_only_skipped_is_no_stage():
    builder = mtrt_report.ReportBuilder()
    pre = "Stage 00 - Preflight (validates the inventory, changes nothing)"
    skip = [("Check", "localhost", "runner_on_skipped", {}), ("Remember", "localhost", "runner_on_skipped", {})]
    _play(builder, pre, [("Check", "localhost", "runner_on_ok", {})], role="preflight", uuid_prefix="p1")
    notes = _play(builder, "Stage 10 - Node image", [("Build", "localhost", "runner_on_skipped", {})],
                  role="node_image")
    assert [n["type"] for n in notes] == ["stage_finished", "stage_started", "task_result"]  # first of its key
    notes = _play(builder, pre, list(skip), role="preflight", uuid_prefix="p2")
    assert notes[0] == dict(notes[0], type="stage_finished", stage="node_image", status="skipped")
    assert notes[1:] == []  # the repeat is held back while it only skips
    notes = _play(builder, "Stage 60 - MPI hello", [("Say", "node1", "runner_on_ok", {})], role="mpi_hello")
    assert [n["type"] for n in notes] == ["stage_started", "task_result"]  # the repeat vanished, unfinished
    # a repeat that does something is a stage: its held notes come out in order when it does
    notes = _play(builder, pre, [("Check", "localhost", "runner_on_skipped", {}),
                                 ("Remember", "localhost", "runner_on_ok", {})], role="preflight", uuid_prefix="p3")
    assert [(n["type"], n.get("stage")) for n in notes] == [
        ("stage_finished", "mpi_hello"), ("stage_started", "preflight_2"), ("task_result", "preflight_2"),
        ("task_result", "preflight_2")]
    _play(builder, pre, list(skip), role="preflight", uuid_prefix="p4")
    notes = builder.feed(_ev("playbook_on_stats", processed={"localhost": 1, "node1": 1}))
    assert notes == []  # the last repeat only skipped: no stage_finished either
    report = builder.report()
    assert [(s["key"], s["status"]) for s in report["stages"]] == [
        ("preflight", "ok"), ("node_image", "skipped"), ("mpi_hello", "ok"), ("preflight_2", "ok")]
    md = mtrt_report.render_markdown(report)
    assert "| 10 | node_image | skipped | 1 | 0 | 0 | 0 | 1 | 0 | 0 | 0 |" in md and "preflight_3" not in md
    assert [line.split()[1] for line in mtrt_report.summary_lines(report)[1:]] == [
        "preflight", "node_image", "mpi_hello", "preflight_2"]


def test_canceled_repeat_that_only_skipped_stays():
    builder = mtrt_report.ReportBuilder()
    _play(builder, "Stage 00 - Preflight", [("Check", "localhost", "runner_on_ok", {})], role="preflight")
    _play(builder, "Stage 00 - Preflight", [("Check", "localhost", "runner_on_skipped", {})],
          role="preflight", uuid_prefix="again")
    notes = builder.finish("canceled")
    assert [(n["type"], n.get("stage")) for n in notes] == [
        ("stage_started", "preflight_2"), ("task_result", "preflight_2"), ("stage_finished", "preflight_2")]
    assert builder.report()["stages"][-1]["status"] == "canceled"


def test_rescued_failure_is_reported_apart_and_the_run_succeeds():
    builder = mtrt_report.ReportBuilder()
    notes = _play(builder, "Stage 50 - SSH mesh", [
        ("Check SSH", "node1", "runner_on_failed",
         {"rescued": True, "res": {"msg": "SSH mesh check failed: node2: host key changed"}}),
        ("Restart", "node1", "runner_on_ok", {"res": {"changed": True}}),
        ("Check SSH again", "node1", "runner_on_ok", {}),
    ], role="ssh_mesh")
    assert notes[1]["status"] == "rescued" and notes[1]["message"].startswith("SSH mesh check failed")
    notes = builder.feed(_ev("playbook_on_stats", processed={"node1": 1}, ok={"node1": 2}, rescued={"node1": 1}))
    assert notes[0]["status"] == "ok" and "rescued" not in notes[0]  # the note keeps its six counts
    report = builder.report()
    assert report["run"]["status"] == "successful" and report["failures"] == []
    assert report["rescued"] == [{"stage": "ssh_mesh", "host": "node1", "task": "Check SSH", "action": None,
                                  "status": "rescued",
                                  "message": "SSH mesh check failed: node2: host key changed",
                                  "kind": None, "explained": [], "diagnosis": []}]
    stage = report["stages"][0]
    assert stage["status"] == "ok" and stage["counts"]["rescued"] == 1 and stage["counts"]["failed"] == 0
    assert stage["tasks"][0]["hosts"] == {"node1": "rescued"}
    md = mtrt_report.render_markdown(report)
    assert "## Failures" not in md and "## Healed / rescued" in md
    assert "| ssh_mesh | node1 | Check SSH | SSH mesh check failed: node2: host key changed |" in md
    lines = mtrt_report.summary_lines(report)
    assert not any("FAILED" in line for line in lines)
    assert lines[1].split()[:3] == ["50", "ssh_mesh", "ok"] and "rescued=1" in lines[1]
    assert lines[-1] == "  RESCUED node1 / Check SSH: SSH mesh check failed: node2: host key changed"
    # without the play recap (a run that was cut short) a rescued failure still does not fail the run
    builder = mtrt_report.ReportBuilder()
    _play(builder, "Stage 50 - SSH mesh", [("Check SSH", "node1", "runner_on_failed", {"rescued": True})])
    builder.finish()
    assert builder.report()["run"]["status"] == "successful"


def test_unmarked_failures_are_refiled_by_the_play_recap():
    """Runner's events do not say what a rescue caught: the recap's per-host counts decide."""
    builder = mtrt_report.ReportBuilder()
    failed = ("runner_on_failed", {"res": {"msg": "boom"}})
    _play(builder, "Stage 50 - SSH mesh", [("Check SSH", h) + tuple(failed) for h in ("a", "b", "c")]
          + [("Heal", "a", "runner_on_ok", {})], role="ssh_mesh")
    _play(builder, "Stage 60 - MPI hello", [("Say", "a") + tuple(failed)], role="mpi_hello")
    assert [f["host"] for f in builder.failures] == ["a", "b", "c", "a"]
    builder.feed(_ev("playbook_on_stats", processed=dict.fromkeys("abc", 1),
                     failures={"a": 1, "b": 1, "c": 1}, rescued={"a": 1, "c": 1}))
    report = builder.report()
    # a: 2 failures = 1 rescued (the first) + 1 failed; b: failed; c: counts do not add up, stays failed
    assert [(f["stage"], f["host"]) for f in report["rescued"]] == [("ssh_mesh", "a")]
    assert [(f["stage"], f["host"]) for f in report["failures"]] == [("ssh_mesh", "b"), ("ssh_mesh", "c"),
                                                                    ("mpi_hello", "a")]
    mesh = report["stages"][0]
    assert mesh["counts"]["failed"] == 2 and mesh["counts"]["rescued"] == 1 and mesh["status"] == "failed"
    assert mesh["tasks"][0]["hosts"] == {"a": "rescued", "b": "failed", "c": "failed"}
    # a stage whose only failures were rescued is ok again
    builder = mtrt_report.ReportBuilder()
    _play(builder, "Stage 50 - SSH mesh", [("Check SSH", "a") + tuple(failed)], role="ssh_mesh")
    builder.feed(_ev("playbook_on_stats", processed={"a": 1}, rescued={"a": 1}))
    report = builder.report()
    assert report["stages"][0]["status"] == "ok" and report["run"]["status"] == "successful"
    assert report["failures"] == [] and len(report["rescued"]) == 1


def test_in_rescued_block_follows_the_parent_chain():
    def node(uuid, parent=None, block=(), rescue=()):
        return types.SimpleNamespace(_uuid=uuid, _parent=parent, block=list(block), rescue=list(rescue))

    task, healer = types.SimpleNamespace(_uuid="t"), types.SimpleNamespace(_uuid="h")
    outer = node("outer", block=[task], rescue=[healer])
    task._parent = healer._parent = outer
    assert run_report.in_rescued_block(task) and not run_report.in_rescued_block(healer)
    # a static import: the imported block, not the import task, sits in the enclosing block
    imported_task = types.SimpleNamespace(_uuid="i")
    include = types.SimpleNamespace(_uuid="inc")
    imported = node("imp", parent=include, block=[imported_task])
    imported_task._parent = imported
    include._parent = node("outer2", block=[imported], rescue=[healer])
    assert run_report.in_rescued_block(imported_task)
    include._parent = node("plain", block=[imported])
    assert not run_report.in_rescued_block(imported_task)
    assert not run_report.in_rescued_block(types.SimpleNamespace(_uuid="x", _parent=None))


RESCUE_PLAYS = {
    "preflight.yml": """
        - name: Stage 00 - Preflight
          hosts: localhost
          gather_facts: false
          roles:
            - role: preflight
              when: not (preflight_done | default(false))
        """,
    "play.yml": """
        - name: Preflight
          ansible.builtin.import_playbook: preflight.yml
        - name: Stage 50 - SSH mesh
          hosts: nodes
          gather_facts: false
          roles: [ssh_mesh]
        - name: Preflight
          ansible.builtin.import_playbook: preflight.yml
        - name: Stage 10 - Node image
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Build the node image
              ansible.builtin.debug: {msg: never}
              when: false
        - name: Preflight
          ansible.builtin.import_playbook: preflight.yml
        """,
    "roles/preflight/tasks/main.yml": """
        - name: Check the inventory
          ansible.builtin.debug: {msg: fine}
        - name: Remember that preflight passed for this run
          ansible.builtin.set_fact: {preflight_done: true}
        """,
    "roles/ssh_mesh/tasks/main.yml": """
        - name: Check the mesh and heal
          block:
            - name: Check SSH
              ansible.builtin.fail: {msg: "SSH mesh check failed: node2: host key changed"}
              when: inventory_hostname == 'node1'
          rescue:
            - name: Heal the nodes
              ansible.builtin.debug: {msg: healed}
        - name: Check again through an import
          block:
            - name: Import the check
              ansible.builtin.import_tasks: check.yml
          rescue:
            - name: Heal again
              ansible.builtin.debug: {msg: healed}
        """,
    "roles/ssh_mesh/tasks/check.yml": """
        - name: Check the ring
          ansible.builtin.fail: {msg: ring broken}
          when: inventory_hostname == 'node2'
        """,
}


def test_real_run_rescue_and_repeated_preflight(tmp_path):
    """ansible-runner with the callback: rescued failures and preflight repeats, both ways of building."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from mpi_trt_ansible import api

    for name, text in RESCUE_PLAYS.items():
        path = tmp_path / "p" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("---\n" + textwrap.dedent(text).lstrip())
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = tmp_path / "p" / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": local},
                                             "children": {"nodes": {"hosts": {"node1": local, "node2": local}}}}}))
    seen = []
    result = api.run_pipeline(inventory=str(inventory), playbook=str(tmp_path / "p" / "play.yml"),
                              on_event=seen.append, private_data_dir=str(tmp_path / "pdd"), timeout=120)
    assert (result.status, result.rc) == ("successful", 0)
    report = result.report  # the callback's report.json
    assert [(s["key"], s["status"]) for s in report["stages"]] == [
        ("preflight", "ok"), ("ssh_mesh", "ok"), ("node_image", "skipped")]
    mesh = report["stages"][1]
    assert mesh["counts"]["rescued"] == 2 and mesh["counts"]["failed"] == 0
    assert report["failures"] == [] and result.failures == []
    assert [(r["host"], r["task"], r["status"], r["message"]) for r in report["rescued"]] == [
        ("node1", "Check SSH", "rescued", "SSH mesh check failed: node2: host key changed"),
        ("node2", "Check the ring", "rescued", "ring broken")]
    assert report["hosts"]["node1"]["rescued"] == 1 and report["hosts"]["node2"]["rescued"] == 1
    md = pathlib.Path(result.report_md).read_text()
    assert "preflight_2" not in md and "## Healed / rescued" in md and "## Failures" not in md
    lines = mtrt_report.summary_lines(report)
    assert lines[0].startswith("MTRT run successful") and not any("FAILED" in line for line in lines)
    assert "  RESCUED node2 / Check the ring: ring broken" in lines
    assert not [e for e in seen if getattr(e, "stage", "").startswith("preflight_")]  # nor in progress
    # runner's events (no rescue mark) build the same report, the recap refiling the failures
    from_events = mtrt_report.ReportBuilder()
    saved = pathlib.Path(result.artifact_dir, "job_events").glob("*.json")
    for path in sorted(saved, key=lambda p: int(p.name.split("-", 1)[0])):
        from_events.feed(json.loads(path.read_text()))
    from_events.finish()
    again = from_events.report()
    for key in ("failures", "rescued", "hosts", "results"):
        assert again[key] == report[key], key
    assert [(s["key"], s["status"], s["counts"]) for s in again["stages"]] == [
        (s["key"], s["status"], s["counts"]) for s in report["stages"]]


# --- module sections of report.md --------------------------------------------------------------

@pytest.fixture(scope="module")
def h200_md():
    """The H200 run's report (docs/results), its TensorRT-LLM facts under the module's current kind."""
    text = H200.read_text().replace('"trtllm_facts"', '"trtllm_engine_facts"')
    return mtrt_report.render_markdown(json.loads(text))


def _section(md, heading):
    start = md.index(heading)
    end = md.find("\n## ", start + 1)
    return md[start:end if end > 0 else len(md)]


def test_collectives_summary_one_row_per_collective_and_op(h200_md):
    text = _section(h200_md, "## Collectives: mpi_collectives on gpu0")
    assert ("World size 2 on vm; Open MPI v4.1.6; mpirun rc 0, 19.623 s; 288 rows "
            "(24 collective/op pairs x 12 sizes, 16 B to 64 MiB).") in text
    assert ("| Collective | Op | Correct | Latency at 16 B (us) | Time at 64 MiB (us) | Alg bw (GB/s) "
            "| Bus bw (GB/s) |") in text
    assert "| bcast |  | yes (12 sizes) | 2.13 | 11353.607 | 5.910797 | 5.910797 |" in text
    assert "| allreduce | SUM | yes (12 sizes) | 3.053 | 69164.046 | 0.970285 | 0.970285 |" in text
    assert text.count("\n| ") == 1 + 24  # the header and one row per pair
    assert "`results.mpi_collectives.gpu0[0].result.results` in report.json" in text


def test_collectives_failures_in_full_and_uneven_sizes():
    rows = [{"collective": "allreduce", "op": "SUM", "size_bytes": n, "time_us": n / 100.0, "algbw_gbps": 1.0,
             "busbw_gbps": 1.5, "correct": n != 1024} for n in (16, 1024, 4096)]
    rows.append({"collective": "bcast", "op": None, "size_bytes": 16, "time_us": 2.0, "algbw_gbps": 0.01,
                 "busbw_gbps": 0.01, "correct": True})
    failures = [{"collective": "allreduce", "op": "SUM", "size_bytes": 1024, "rank": r, "host": "node2",
                 "index": 3, "expected": 6.0, "got": 7.0} for r in (1, 3)]
    md = "\n".join(mtrt_report.RENDERERS["mpi_collectives"][1](
        {"world_size": 4, "results": rows, "failures": failures, "rc": 0, "duration_s": 1.0,
         "problems": ["allreduce SUM at 1024 B: rank 1 (node2) got 7.0"]}))
    assert "| allreduce | SUM | NO: 1 of 3 sizes wrong | 16 B | 0.16 | 4 KiB | 40.96 | 1.0 | 1.5 |" in md
    assert "| bcast |  | yes (1 size) | 16 B | 2.0 | 16 B | 2.0 | 0.01 | 0.01 |" in md
    assert "Wrong values (2):" in md and "| allreduce | SUM | 1024 | 3 | node2 | 3 | 6.0 | 7.0 |" in md
    assert "- Problem: allreduce SUM at 1024 B: rank 1 (node2) got 7.0" in md


def test_gpu_sections(h200_md):
    text = _section(h200_md, "## Rank to GPU: gpu_preflight on gpu0")
    assert "World size 2; 2 of 2 ranks found their GPU; mpirun rc 0, 7.129 s." in text
    assert "| Rank | Host | Local rank | Device | Device name | Exists | Error |" in text
    assert "| 1 | vm | 1 | 1 | NVIDIA H200 | yes |  |" in text
    text = _section(h200_md, "## NCCL all-reduce: gpu_preflight on gpu0")
    assert text.split("\n")[4].startswith("all_reduce over 2 ranks: 344.6 GB/s busbw at 4 GiB via P2P")
    assert "Transport: P2P (channels P2P/CUMEM: 48; NVLS channels 0; 1 node(s))." in text
    assert "Versions: torch 2.11.0+cu130, NCCL 2.28.9; 2 ranks (0 cuda:0@vm, 1 cuda:1@vm)" in text
    assert "| 1 KiB | 67.91 | 0.0151 | 0.0151 | yes |" in text and "| 4 GiB | 12463.798 | 344.5954 | 344.5954 | yes |" in text
    assert text.count("\n| ") == 1 + 12 and "stderr_tail" not in text
    text = _section(h200_md, "## GPUs: gpu_preflight on gpu0")
    assert "| 0 | NVIDIA H200 | 143771 | 00000000:00:06.0 | GPU-928940ec-4b2f-9c88-2a38-b2930187b08f |" in text
    assert ("NVLink: all of 1 GPU pair(s) linked (GPU0-GPU1 NV18), at least 18 links per linked pair; "
            "limit 450.0 GB/s per direction.") in text
    md = "\n".join(mtrt_report.RENDERERS["gpu_facts"][1]({"present": False, "reason": "nvidia-smi not found"}))
    assert md.startswith("No GPU: nvidia-smi not found")


def test_compact_key_lines(h200_md):
    text = _section(h200_md, "## TensorRT-LLM: trtllm_engine on gpu0")
    assert "TensorRT-LLM: not installed for `/opt/torch/.venv/bin/python3` (Python 3.12.3)." in text
    assert "Reason: no tensorrt_llm distribution is installed" in text and "package_dir" not in text
    text = _section(h200_md, "## Preflight: preflight on localhost")
    assert "Preflight OK: no problems." in text
    assert "Checked: mode local, nodes 1, slots 2, np 2, gpus 2, docker_networks 0, host_routes 2," in text
    render = {kind: fn for kind, (_title, fn) in mtrt_report.RENDERERS.items()}
    md = "\n".join(render["trtllm_engine_facts"]({
        "present": True, "supported": True, "version": "1.2.1", "flow": "modern", "python": "/usr/bin/python3",
        "python_version": "3.10.12", "tools": {"run_py": "/x/run.py", "trtllm_build": None},
        "gpus_per_node_fix": {"gpus_per_node": 1, "method": "checkpoint_mapping"}}))
    assert "TensorRT-LLM 1.2.1 (modern flow), supported, for `/usr/bin/python3` (Python 3.10.12)." in md
    assert "Tools found: run_py; missing: trtllm_build." in md and "gpus_per_node 1: checkpoint_mapping" in md
    md = "\n".join(render["ssh_mesh"]({
        "direct": [{"ok": True, "hops": ["node1"]}, {"ok": False, "hops": ["node2"], "cause": "host key changed",
                                                       "fix": "restart node2"}],
        "ring": [], "failed_peers": ["node2"], "duration_s": 1.2}))
    assert md.startswith("Direct: 1/2 OK; ring: not checked; failed: node2; 1.2 s.")
    assert "- node2: host key changed Fix: restart node2" in md
    md = "\n".join(render["ssh_mesh"]({
        "direct": [{"ok": True, "hops": ["node1"], "via": "ring"}, {"ok": True, "hops": ["node2"], "via": "ring"}],
        "ring": [{"ok": True, "hops": ["node1", "node2"]}, {"ok": True, "hops": ["node2", "node1"]}],
        "failed_peers": [], "duration_s": 0.4}))
    assert md.startswith("Direct: 2/2 OK (2 as first hops of the ring); ring: 2/2 OK; failed: none; 0.4 s.")
    md = "\n".join(render["node_containers"]({
        "containers": [{"name": "node1", "action": "none", "reasons": []},
                       {"name": "node2", "action": "recreate", "ok": True,
                        "reasons": ["its configuration differs: shm_size 1073741824 -> 2147483648"]}],
        "counts": {"none": 1, "recreate": 1}, "decided_from": "docker", "duration_s": 1.1,
        "created_dirs": ["/srv/shared"]}))
    assert md.startswith("none 1, recreate 1; decided from docker in 1.1 s.")
    assert "Created: `/srv/shared`." in md
    assert "- node2: recreate (its configuration differs: shm_size 1073741824 -> 2147483648)" in md
    assert "node1" not in md
    md = "\n".join(render["node_containers"]({"containers": [{"name": "n1", "action": "none"}], "counts": {"none": 1},
                                              "decided_from": "listing", "duration_s": 0.0}))
    assert md.startswith("none 1; decided from preflight's listing (no module run) in 0.0 s.")
    md = "\n".join(render["preflight"]({"ok": False, "checked": {"nodes": 2}, "problems": [
        {"variable": "node_ip (node2)", "message": "node_ip (node2) equals the gateway.", "fix": "Pick another."}]}))
    assert "Preflight found 1 problem(s)." in md
    assert "- Problem: node_ip (node2) equals the gateway. Fix: Pick another." in md


# --- launch results: silent ranks, explained errors, the ranks that did not answer -------------------

FAILED_LAUNCH = {
    "mtrt_kind": "mpi_hello", "changed": False, "failed": True, "rc": 1, "timed_out": False, "duration_s": 4.2,
    "command": ["/usr/bin/mpirun", "--tag-output", "-np", "4", "/usr/bin/python3", "/etc/mtrt/cluster/mpi_hello.py"],
    "np": 4, "expected_placement": {"0": "node1", "1": "node1", "2": "node2", "3": "node2"},
    "ranks_seen": [0, 1], "ranks_silent": [2, 3], "left_running": [],
    "rank_tails": {"0": ["MTRT-HELLO {\"rank\": 0}"], "1": ["MTRT-HELLO {\"rank\": 1}", "waiting | for 2"]},
    "explained": [{"raw": "ssh: connect to host node2 port 22: Connection refused",
                   "cause": "sshd on node2 does not answer", "fix": "re-run site.yml: stage 40 restarts the node"}],
    "problems": ["ranks 2-3 (node2) never reported"], "world_size": 2, "ranks_per_host": {"node1": 2},
    "missing_ranks": [2, 3], "ranks": [{"rank": 0, "host": "node1"}, {"rank": 1, "host": "node1"}],
}
# The controller's attribution of the silent ranks, made by the code that makes it (the launch action's rules).
FAILED_LAUNCH["diagnosis"] = diagnose.rows(
    FAILED_LAUNCH, [{"name": "node1", "ip": "192.168.123.111"}, {"name": "node2", "ip": "192.168.123.112"}],
    {"node2": [2, 3]}, inspects={"node2": {"State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True}}},
    logs={"node2": ["Server listening on 192.168.123.112 port 22.", "Killed"]})


def _failed_launch_report():
    builder = mtrt_report.ReportBuilder()
    _play(builder, "Stage 60 - MPI hello", [
        ("Say hello from every rank", "node1", "runner_on_failed",
         {"res": dict(FAILED_LAUNCH, msg="mpi_hello: np=4 on node1:2, node2:2, mpirun exited with 1. rank(s) 2-3 "
                                         "on node2 never printed anything.")})], role="mpi_hello")
    builder.feed(_ev("playbook_on_stats", processed={"node1": 1}, failures={"node1": 1}))
    return builder.report()


def test_failure_carries_explained_errors_and_diagnosis():
    report = _failed_launch_report()
    [failure] = report["failures"]
    assert failure["kind"] == "mpi_hello"
    assert failure["explained"] == FAILED_LAUNCH["explained"] and failure["diagnosis"] == FAILED_LAUNCH["diagnosis"]


def test_failed_launch_renders_one_table_of_ranks_hosts_states_and_logs():
    md = mtrt_report.render_markdown(_failed_launch_report())
    failures = _section(md, "## Failures")
    assert "### mpi_hello on node1: Say hello from every rank" in failures
    assert "| Cause | Fix | Raw line |" in failures
    assert ("| sshd on node2 does not answer | re-run site.yml: stage 40 restarts the node | "
            "`ssh: connect to host node2 port 22: Connection refused` |") in failures
    header = "| Ranks | Host | Node state | What to do | Last log lines |"
    assert failures.count(header) == 1
    assert ("| 2-3 | node2 | is not running: it was OOM-killed by the kernel | "
            "give node2 more memory (its container's limit) or load less onto it | "
            "`Server listening on 192.168.123.112 port 22.`<br>`Killed` |") in failures
    section = _section(md, "## MPI hello: mpi_hello on node1")
    assert ("Launch: np 4 (0-1 on node1, 2-3 on node2); mpirun exited 1 after 4.2 s; "
            "ranks that never printed: 2-3 on node2.") in section
    assert "Explained errors and the ranks that did not answer: under Failures above." in section
    assert "| Ranks | Host |" not in section  # shown once, under Failures
    assert "| 1 | node1 | `MTRT-HELLO {\"rank\": 1}`<br>`waiting \\| for 2` |" in section
    assert "Command: `/usr/bin/mpirun --tag-output -np 4 /usr/bin/python3 /etc/mtrt/cluster/mpi_hello.py`" in section
    lines = mtrt_report.summary_lines(_failed_launch_report())
    assert lines[-3].startswith("  FAILED node1 / Say hello from every rank: mpi_hello: np=4")
    assert lines[-2] == "    cause: sshd on node2 does not answer; fix: re-run site.yml: stage 40 restarts the node"
    assert lines[-1] == "    rank(s) 2-3 on node2: is not running: it was OOM-killed by the kernel; last log: Killed"


def test_launch_block_alone():
    from mpi_trt_ansible.report.kinds.launch import render_launch
    ok = dict(FAILED_LAUNCH, rc=0, ranks_silent=[], explained=[], diagnosis=[], problems=[], failed=False)
    assert render_launch(ok) == ["Launch: np 4 (0-1 on node1, 2-3 on node2); mpirun exited 0 after 4.2 s; "
                                 "every rank printed.", ""]
    hung = dict(FAILED_LAUNCH, rc=None, timed_out=True, left_running=[4242], diagnosis=[])
    text = "\n".join(render_launch(hung))
    assert "timed out after 4.2 s and was killed; ranks that never printed: 2-3 on node2." in text
    assert "Left running (could not be killed): pids 4242." in text
    assert "On its nodes" not in text
    hung["stopped_on_nodes"] = [
        {"host": "node1", "stopped": [], "left_running": [], "error": None},
        {"host": "node2", "stopped": [{"pid": 41, "cmd": "/usr/bin/orted -mca ess env"},
                                      {"pid": 47, "cmd": "/usr/bin/python3 /x/hello.py"}], "left_running": [],
         "error": None},
        {"host": "node3", "stopped": [], "left_running": [], "error": "no answer in 5.0s"}]
    assert ("On its nodes after the timeout (found by the launch's own markers, never by name): node1: nothing "
            "left; node2: stopped orted (pid 41), python3 (pid 47); node3: not reached (no answer in 5.0s).") in (
        "\n".join(render_launch(hung)))
    assert "| Cause | Fix | Raw line |" in text and "Node state" not in text
    assert render_launch({"mtrt_kind": "gpu_facts", "present": False}) == []  # not a launch


def test_gpu_check_nothing_to_measure_method_and_explained():
    data = {"mtrt_kind": "nccl_allreduce", "verdict": "one rank: nothing to measure", "nothing_to_measure": True,
            "method": {"timer": "cuda_events", "stream": "dedicated", "in_place": True, "warmup_iters": 5},
            "ranks": [{"rank": 0, "device": "cuda:0", "host": "gpu0"}], "results": [], "versions": {},
            "rc": 0, "duration_s": 3.0, "np": 1, "expected_placement": {"0": "gpu0"}, "ranks_seen": [0],
            "ranks_silent": [], "explained": [], "problems": [], "rank_tails": {}}
    md = "\n".join(mtrt_report.RENDERERS["nccl_allreduce"][1](data))
    assert "Nothing to measure: the all-reduce ran on one rank" in md
    assert "Method: timer cuda_events, stream dedicated, in place yes, warmup iters 5." in md
    assert "| Size |" not in md  # no rows, no empty table
    report = {"run": {}, "stages": [], "results": {"gpu_check": {"gpu0": [
        {"task": "Measure", "kind": "nccl_allreduce", "status": "ok", "result": data}]}}}
    assert "Launch: np 1 (0 on gpu0); mpirun exited 0 after 3.0 s; every rank printed." in (
        mtrt_report.render_markdown(report))


# --- interrupted runs -------------------------------------------------------------------------------

def test_interrupted_run_lists_what_ran_and_what_was_stopped():
    builder = mtrt_report.ReportBuilder()
    _play(builder, "Stage 50 - SSH mesh", [("Check", "node1", "runner_on_ok", {})], role="ssh_mesh")
    builder.feed(_ev("playbook_on_play_start", name="Stage 60 - MPI hello"))
    builder.feed(_ev("playbook_on_task_start", task="Say hello from every rank", task_uuid="h", role="mpi_hello"))
    builder.feed(_ev("runner_on_start", host="node1", task_uuid="h"))
    assert builder.in_flight() == [{"stage": "mpi_hello", "host": "node1", "task": "Say hello from every rank",
                                    "action": None, "started_at": "2025-01-01T00:00:00+00:00"}]
    assert builder.report()["stages"][-1]["status"] == "running"
    notes = builder.finish("interrupted", at="2025-01-01T00:00:07+00:00")
    assert notes[-1]["status"] == "interrupted"
    builder.record_cleanup([{"host": "node1", "via": "docker exec node1", "error": None, "launches": [
        {"kind": "mpi_hello", "pid": 321, "module_pid": 300, "was_running": True, "stopped": [321, 322, 323],
         "left_running": [], "skipped": None}]}])
    report = builder.report()
    assert report["run"]["status"] == "interrupted" and report["run"]["ended_at"] == "2025-01-01T00:00:07+00:00"
    assert [s["status"] for s in report["stages"]] == ["ok", "interrupted"]
    assert report["stages"][1]["tasks"][0]["hosts"] == {"node1": "interrupted"}
    assert report["interrupted"]["in_flight"][0]["host"] == "node1"
    md = mtrt_report.render_markdown(report)
    assert md.startswith("# Run report: ? - interrupted")
    text = _section(md, "## Interrupted")
    assert "| mpi_hello | node1 | Say hello from every rank | 7.0 |" in text
    assert "| node1 | docker exec node1 | mpi_hello (pid 321) | stopped (3 processes) |" in text
    builder.record_cleanup([{"host": "node1", "via": "docker exec node1", "error": None, "launches": [
        {"kind": "mpi_hello", "pid": 321, "module_pid": 300, "was_running": True, "stopped": [321, 322],
         "left_running": [], "skipped": None, "nodes": [
             {"host": "node2", "stopped": [{"pid": 9, "cmd": "orted -mca ess_base_jobid 1"}], "left_running": []}]}]}])
    assert ("| node1 | docker exec node1 | mpi_hello (pid 321) | stopped (2 processes); on its nodes: node2: "
            "stopped orted (pid 9) |") in mtrt_report.render_markdown(builder.report())
    builder.record_cleanup([{"host": "node1", "via": "docker exec node1", "error": None, "launches": [
        {"kind": "mpi_hello", "pid": 321, "module_pid": 300, "was_running": True, "stopped": [321, 322, 323],
         "left_running": [], "skipped": None}]}])
    lines = mtrt_report.summary_lines(report)
    assert lines[0].startswith("MTRT run interrupted in 7.0 s")
    assert "  INTERRUPTED during mpi_hello / Say hello from every rank on node1" in lines
    assert "  stopped on node1 (docker exec node1): mpi_hello launch, pid 321" in lines
    # a launch that could not be killed, and a host that could not be reached, are said so
    builder.record_cleanup([
        {"host": "node1", "via": "docker exec node1", "error": None, "launches": [
            {"kind": "mpi_hello", "pid": 321, "was_running": True, "stopped": [321], "left_running": [322]}]},
        {"host": "node2", "via": "ssh node2", "error": "ssh: connect to host node2: timed out", "launches": []}])
    lines = mtrt_report.summary_lines(builder.report())
    assert "  STILL RUNNING on node1: mpi_hello launch, pids 322" in lines
    assert "  COULD NOT CHECK node2 for running launches (ssh node2): ssh: connect to host node2: timed out" in lines
    assert "| node2 | ssh node2 | - | NOT CHECKED: ssh: connect to host node2: timed out |" in (
        mtrt_report.render_markdown(builder.report()))


def test_finished_run_has_no_interruption_and_results_clear_in_flight():
    builder = mtrt_report.ReportBuilder()
    builder.feed(_ev("playbook_on_play_start", name="Stage 60 - MPI hello"))
    builder.feed(_ev("playbook_on_task_start", task="Say", task_uuid="h", role="mpi_hello"))
    builder.feed(_ev("runner_on_start", host="node1", task_uuid="h"))
    builder.feed(_ev("runner_on_ok", host="node1", task_uuid="h", res={}))
    assert builder.in_flight() == []
    builder.feed(_ev("playbook_on_stats", processed={"node1": 1}, ok={"node1": 1}))
    assert builder.report()["interrupted"] is None and builder.report()["schema_version"] == 2


# --- stage 99: the report's own summary ----------------------------------------------------------------

def test_run_summary_action_and_the_summary_it_gets_printed(run_action, tmp_path, monkeypatch):
    from conftest import load_action
    cluster = {"name": "mtrt", "mode": "docker", "launcher": "node1",
               "nodes": [{"name": "node1", "ip": "192.168.123.111", "slots": 2, "gpus": []},
                         {"name": "node2", "ip": "192.168.123.112", "slots": 2, "gpus": []}],
               "network": {"name": "mtrt-net", "subnet": "192.168.123.0/24"},
               "shared": {"host_dir": "/srv/shared", "mount": "/TRTDir"}}
    result = run_action(load_action("run_summary"), {"cluster": cluster}, name="run_summary")
    assert result["mtrt_kind"] == "run_summary" and result["changed"] is False
    assert result["cluster"]["nodes"] == [{"name": "node1", "ip": "192.168.123.111"},
                                          {"name": "node2", "ip": "192.168.123.112"}]
    sentence = ("Cluster mtrt (docker mode): 2 nodes node1=192.168.123.111, node2=192.168.123.112; network mtrt-net "
                "192.168.123.0/24; shared dir /srv/shared -> /TRTDir; launcher node1.")
    assert result["msg"] == sentence

    # Local mode (a real one-GPU run said "gpu0=-"): a node without an address is named by its MPI host.
    local = {"name": "mtrt-local", "mode": "local", "launcher": "gpu0",
             "nodes": [{"name": "gpu0", "ip": "", "mpi_host": "localhost", "slots": 1, "gpus": [0]}]}
    assert run_action(load_action("run_summary"), {"cluster": local}, name="run_summary")["msg"] == (
        "Cluster mtrt-local (local mode): 1 node gpu0=localhost; launcher gpu0.")

    callback_loader.add_directory(str(PLUGINS / "callback"))
    callback = callback_loader.get("run_report")
    callback.set_options(direct={"report_dir": str(tmp_path), "run_id": "r2"})
    printed = []
    monkeypatch.setattr(callback._display, "display", lambda msg, *a, **k: printed.append(msg))
    host = types.SimpleNamespace(get_name=lambda: "localhost")
    task = types.SimpleNamespace(name="Summarise", action="run_summary", _uuid="s1", _role=None)
    hello = types.SimpleNamespace(name="Say hello", action="mpi_hello", _uuid="h1",
                                  _role=types.SimpleNamespace(_role_name="mpi_hello"))
    callback.v2_playbook_on_start(types.SimpleNamespace(_file_name="site.yml"))
    callback.v2_playbook_on_play_start(types.SimpleNamespace(get_name=lambda: "Stage 60 - MPI hello"))
    callback.v2_playbook_on_task_start(hello, False)
    callback.v2_runner_on_ok(types.SimpleNamespace(host=types.SimpleNamespace(get_name=lambda: "node1"), task=hello,
                                                   result={"mtrt_kind": "mpi_hello", "world_size": 4,
                                                           "ranks_per_host": {"node1": 2, "node2": 2}}))
    callback.v2_playbook_on_play_start(types.SimpleNamespace(get_name=lambda: "Stage 99 - Summary"))
    callback.v2_playbook_on_task_start(task, False)
    callback.v2_runner_on_ok(types.SimpleNamespace(host=host, task=task, result=result))
    assert printed[0].startswith("MTRT run so far (")
    assert printed[1:] == ["  " + sentence, printed[2], "  hello on node1: world_size=4 node1=2 node2=2 missing=none"]
    assert printed[2].split()[:3] == ["60", "mpi_hello", "ok"]
    del printed[:]
    counts = {"node1": 1, "localhost": 1}
    callback.v2_playbook_on_stats(types.SimpleNamespace(
        processed=counts, ok=counts, changed={}, failures={}, dark={}, skipped={}, rescued={}, ignored={}))
    assert printed[1].startswith("MTRT run successful in ") and printed[1].endswith("r2/report.md")
    assert printed[2:] == []  # stage 99 printed the rest
    md = (tmp_path / "r2" / "report.md").read_text()
    assert md.split("\n")[4] == sentence and "## Cluster" not in md


def test_callback_without_the_package_stops_the_run_with_one_sentence(tmp_path):
    """ansible-playbook with run_report enabled but mpi_trt_ansible not importable fails before any task."""
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: ran}\n")
    script = ("import sys; sys.modules['mpi_trt_ansible'] = None\n"
              "from ansible.cli.playbook import main\n"
              "sys.argv = ['ansible-playbook', '-i', 'localhost,', '-c', 'local', %r]\nmain()\n" % str(play))
    out = __import__("subprocess").run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                                       timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "ran" not in out.stdout
    assert ("[ERROR]: run_report: the mpi_trt_ansible package is not importable; run scripts/bootstrap.sh "
            "(or pip install -e . in the project)") in text


def test_the_callbacks_imports_stay_cheap():
    """What the callback loads inside ansible-playbook imports neither ansible-runner nor the API."""
    script = ("import sys; import mpi_trt_ansible.report, mpi_trt_ansible.interrupt\n"
              "print(sorted(m for m in sys.modules if m.startswith(('ansible_runner', 'mpi_trt_ansible.api', "
              "'ansible', 'docker', 'yaml'))))\n")
    out = __import__("subprocess").run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                                       timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_keys_a_result_hands_on_to_later_stages_stay_out_of_the_report():
    from mpi_trt_ansible.report.secrets import clean_result
    res = {"mtrt_kind": "preflight", "ok": True, "docker": {"images": [1, 2, 3]}, "mtrt_handoff": ["docker"]}
    assert clean_result(res) == {"mtrt_kind": "preflight", "ok": True}


def test_stage_keys_leave_a_trailing_remark_out():
    from mpi_trt_ansible.report.builder import stage_key_from_name
    assert stage_key_from_name("Stage 00 - Preflight (validates the inventory, changes nothing)") == "preflight"
    assert stage_key_from_name("Stage 99 - Summary") == "summary"
    assert stage_key_from_name("(only a remark)") == "only_a_remark"


def test_a_fail_that_reraises_a_rescued_module_failure_keeps_its_cause():
    """The hello's rescue ends in ``fail: msg={{ mpi_hello_result.msg }}`` when nothing healed:
    that failure keeps the hello's kind, causes and diagnosis (the API's Failure shows them)."""
    builder = mtrt_report.ReportBuilder()
    cause = {"raw": "ssh: connect to host node2 port 22: No route to host", "cause": "node2 down", "fix": "start it"}
    row = {"host": "node2", "ranks": "2-3", "state": "paused", "exit_code": None, "oom_killed": False,
           "ssh": "times out", "log_tail": ""}
    hello = {"msg": "mpi_hello timed out after 1s", "failed": True, "mtrt_kind": "mpi_hello",
             "explained": [cause], "diagnosis": [row]}
    builder.feed(_ev("playbook_on_play_start", name="Stage 60 - MPI hello"))
    for uuid, task, action in [("t1", "Say hello", "mpi_hello"), ("t2", "Say hello - fail", "ansible.builtin.fail"),
                               ("t3", "Other fail", "ansible.builtin.fail")]:
        builder.feed(_ev("playbook_on_task_start", task=task, task_uuid=uuid, task_action=action, role="mpi_hello"))
        res = hello if uuid == "t1" else {"msg": "mpi_hello timed out after 1s" if uuid == "t2" else "other", "failed": True}
        builder.feed(_ev("runner_on_failed", host="node1", task_uuid=uuid, res=dict(res), rescued=uuid == "t1"))
    builder.feed(_ev("playbook_on_stats", processed={"node1": 1}, failures={"node1": 1}, rescued={"node1": 1}))
    report = builder.report()
    reraised, other = report["failures"]
    assert (reraised["task"], reraised["kind"]) == ("Say hello - fail", "mpi_hello")
    assert reraised["explained"] == [cause] and reraised["diagnosis"] == [row]
    assert (other["kind"], other["explained"], other["diagnosis"]) == (None, [], [])  # another message: nothing taken
