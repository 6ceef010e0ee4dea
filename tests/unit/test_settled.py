# SPDX-License-Identifier: Apache-2.0
"""Settled stages (mpi_trt_ansible/settled.py): what lets a warm run skip stages 10-50, and everything that
must make it run them again."""

import copy
import os

import pytest

from conftest import ROOT
from mpi_trt_ansible import settled
from mpi_trt_ansible import report as mtrt_report

IMAGE, NETWORK, NODES = "mtrt-node:mtrt", "network_my", ["node1", "node2"]


def listing(**change):
    containers = [{"Names": ["/%s" % n], "Id": "c-%s" % n, "State": "running", "ImageID": "sha256:img"} for n in NODES]
    out = {"images": [{"Id": "sha256:img", "RepoTags": [IMAGE], "Labels": {"mtrt.role": "node"}},
                      {"Id": "sha256:base", "RepoTags": ["mtrt-base:x"], "Labels": {"mtrt.role": "base"}}],
           "networks": [{"Name": NETWORK, "Id": "net1"}], "containers": containers}
    for key, value in change.items():
        out[key] = value
    return out


@pytest.fixture
def state(tmp_path):
    for rel, text in [("cluster/known_hosts", "node1 ssh-ed25519 AAAA\n"), ("cluster/hostfile", "node1 slots=2\n"),
                      ("ssh/id_ed25519", "PRIVATE\n"), ("hostkeys/node1_ed25519.pub", "ssh-ed25519 BBBB\n")]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "ssh" / "id_ed25519").chmod(0o600)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "user-model.bin").write_text("not ours: never part of the record")
    return tmp_path


def verdict(record, state_dir, digest="d1", **change):
    return settled.verdict(record, digest, listing(**change), IMAGE, NETWORK, NODES, str(state_dir))


def test_a_cluster_as_recorded_is_settled_and_the_record_covers_what_the_stages_wrote(state):
    record = settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state))
    assert record["docker"] == {"base": ["sha256:base"], "image": "sha256:img", "network": "net1", "containers": {
        n: {"id": "c-%s" % n, "state": "running", "image": "sha256:img"} for n in NODES}}
    assert sorted(record["files"]) == ["cluster/hostfile", "cluster/known_hosts", "hostkeys/node1_ed25519.pub",
                                       "ssh/id_ed25519"]
    assert record["files"]["ssh/id_ed25519"]["mode"] == "0600" and "PRIVATE" not in str(record)
    ok, reason = verdict(record, state)
    assert ok and reason.startswith("unchanged since ")


@pytest.mark.parametrize("change, says", [
    ({"digest": "d2"}, "a setting or a project file changed"),
    ({"images": [{"Id": "sha256:other", "RepoTags": [IMAGE]}, listing()["images"][1]]},
     "the node image mtrt-node:mtrt is not the one recorded"),
    ({"networks": [{"Name": NETWORK, "Id": "net2"}]}, "the network network_my is not the one recorded"),
    ({"containers": []}, "node container node1 is not the one recorded"),
])
def test_a_changed_input_or_docker_object_runs_the_stages(state, change, says):
    record = settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state))
    digest = change.pop("digest", "d1")
    ok, reason = verdict(record, state, digest=digest, **change)
    assert not ok and reason.startswith(says), reason


def test_a_stopped_replaced_or_rebased_container_runs_the_stages(state):
    record = settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state))
    changed = listing()
    changed["containers"][1]["State"] = "exited"
    assert verdict(record, state, containers=changed["containers"]) == (False, "node container node2 is exited")
    changed = listing()
    changed["containers"][1]["Id"] = "c-new"
    assert verdict(record, state, containers=changed["containers"])[1] == "node container node2 is not the one recorded"
    changed = listing()
    changed["containers"][0]["ImageID"] = "sha256:old"
    assert verdict(record, state, containers=changed["containers"])[1] == "node container node1 runs another image"


def test_a_file_edited_removed_or_with_another_mode_runs_the_stages(state):
    record = settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state))
    (state / "cluster" / "known_hosts").write_text("node1 ssh-ed25519 CCCC\n")
    assert verdict(record, state) == (False, "cluster/known_hosts changed since it was written")
    record = settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state))
    (state / "ssh" / "id_ed25519").chmod(0o644)
    assert verdict(record, state) == (False, "ssh/id_ed25519 changed since it was written")
    record = settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state))
    (state / "cluster" / "hostfile").unlink()
    assert verdict(record, state) == (False, "cluster/hostfile changed since it was written")
    # What the user keeps in the state directory's other places is no input of the stages.
    record = settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state))
    (state / "shared" / "user-model.bin").write_text("changed by the user")
    assert verdict(record, state)[0]


def test_the_base_image_is_compared_as_it_was_when_recorded(state):
    """Regression (CI, 2026-12-07): a first run that builds the offline base in stage 10 recorded a digest with
    no base in it, and the next run, finding the base, was never settled. The base's ID is now read when the
    record is written, beside the node image's."""
    nobase = [listing()["images"][0]]
    ok, _ = verdict(settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state)), state)
    assert ok  # recorded after stage 10 built the base: the next run finds it as recorded
    record = settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state))
    rebuilt = listing()["images"][:1] + [{"Id": "sha256:base2", "RepoTags": ["mtrt-base:x"],
                                          "Labels": {"mtrt.role": "base"}}]
    assert verdict(record, state, images=rebuilt) == (
        False, "the base image (label mtrt.role=base) is not the one recorded")
    assert not verdict(record, state, images=nobase)[0]
    # A named base (cluster_image_base, no tag: latest): its ID, not the label's.
    images = listing()["images"] + [{"Id": "sha256:trt", "RepoTags": ["nvcr.io/trt:latest"]}]
    record = settled.make_record("d1", listing(images=images), IMAGE, NETWORK, NODES, str(state), base="nvcr.io/trt")
    assert record["docker"]["base"] == ["sha256:trt"]
    assert settled.verdict(record, "d1", listing(images=images), IMAGE, NETWORK, NODES, str(state), "nvcr.io/trt")[0]
    reloaded = listing()["images"] + [{"Id": "sha256:trt2", "RepoTags": ["nvcr.io/trt:latest"]}]
    assert settled.verdict(record, "d1", listing(images=reloaded), IMAGE, NETWORK, NODES, str(state),
                           "nvcr.io/trt") == (False, "the base image nvcr.io/trt is not the one recorded")


def test_no_record_an_old_format_or_other_nodes_run_the_stages(state):
    assert verdict(None, state) == (False, "no record of a run that brought every stage up")
    record = settled.make_record("d1", listing(), IMAGE, NETWORK, NODES, str(state))
    assert not verdict(dict(record, version=0), state)[0]
    fewer = copy.deepcopy(record)
    del fewer["docker"]["containers"]["node2"]
    assert verdict(fewer, state) == (False, "node container node2 is not the one recorded")


def test_records_differ_only_by_what_they_say_not_when():
    a = {"version": 1, "digest": "d", "at": "then", "docker": {}, "files": {}}
    assert settled.same_record(a, dict(a, at="now")) and not settled.same_record(a, dict(a, digest="e"))


def test_only_a_run_of_every_stage_up_to_40_may_record():
    site = str(ROOT / "site.yml")
    assert set(settled.RECORDED_BY) <= settled.playbooks_run([site])  # followed through the imports
    assert settled.full_run([site], ["all"], [])
    assert settled.full_run([site], None, ["mpi_collectives", "trtllm_engine"])  # later stages skipped: fine
    assert not settled.full_run([site], ["ssh_keys", "mpi_hello"], [])
    assert not settled.full_run([site], ["all"], ["ssh_keys"])
    assert not settled.full_run([str(ROOT / "playbooks" / "40_node_containers.yml")], ["all"], [])
    assert settled.full_run([str(ROOT / "playbooks" / n) for n in settled.RECORDED_BY], ["all"], [])
    assert not settled.full_run([str(ROOT / "nonexistent.yml")], ["all"], [])


def test_the_project_digest_follows_every_file_the_stages_run(tmp_path):
    for part in ("roles/r/tasks", "playbooks", "mpi_trt_ansible/__pycache__"):
        (tmp_path / part).mkdir(parents=True)
    (tmp_path / "site.yml").write_text("- import_playbook: playbooks/x.yml\n")
    (tmp_path / "roles/r/tasks/main.yml").write_text("- debug: {}\n")
    (tmp_path / "mpi_trt_ansible/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    first = settled.project_digest(str(tmp_path))
    assert settled.project_digest(str(tmp_path)) == first
    (tmp_path / "mpi_trt_ansible/__pycache__/x.cpython-311.pyc").write_bytes(b"\1")  # byte code: no input
    assert settled.project_digest(str(tmp_path)) == first
    (tmp_path / "roles/r/tasks/main.yml").write_text("- debug: {msg: changed}\n")
    assert settled.project_digest(str(tmp_path)) != first
    assert settled.inputs_digest({"a": 1, "b": [2]}) == settled.inputs_digest({"b": [2], "a": 1})


def test_the_report_lists_settled_stages_with_their_progress_notes():
    builder = mtrt_report.ReportBuilder()

    def ev(event, **data):
        return {"event": event, "created": "2026-01-01T00:00:00+00:00", "event_data": data}

    builder.feed(ev("playbook_on_play_start", name="Stage 00 - Preflight"))
    builder.feed(ev("playbook_on_task_start", task="Check", task_uuid="t1", role="preflight"))
    result = {"mtrt_kind": "preflight", "ok": True, "settled": {
        "ok": True, "reason": "unchanged since then", "digest": "d", "stages": [k for _n, k in settled.STAGES]}}
    builder.feed(ev("runner_on_ok", host="localhost", task_uuid="t1", res=result))
    notes = builder.feed(ev("playbook_on_play_start", name="Stage 60 - MPI hello"))
    assert [(n["type"], n["stage"]) for n in notes][:3] == [
        ("stage_finished", "preflight"), ("stage_started", "node_image"), ("stage_finished", "node_image")]
    report = builder.report()
    assert [(s["number"], s["key"], s["status"]) for s in report["stages"]] == [("00", "preflight", "ok")] + [
        (n, k, "settled") for n, k in settled.STAGES]
    assert "settled" in mtrt_report.summary_lines(report)[3]


def test_an_image_reference_without_a_tag_is_latest_even_behind_a_registry_port():
    from mpi_trt_ansible.containers import tagged
    assert tagged("nvcr.io/trt") == "nvcr.io/trt:latest" and tagged("trt:1.2") == "trt:1.2"
    assert tagged("registry:5000/trt") == "registry:5000/trt:latest"
    assert tagged("registry:5000/trt:0.9") == "registry:5000/trt:0.9"
