# SPDX-License-Identifier: Apache-2.0
"""cluster_dir_copy: a directory (here an engine) given to every machine without a shared filesystem,
hash-checked there.

The peers are directories on this machine: ssh to a peer is replaced by a local shell in which the
engine path points at that peer's directory, so the manifests, the tar stream and the move into place
are the module's real commands.
"""

import pytest
import cluster_dir_copy as mod


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    engine = tmp_path / "launcher" / "engines" / "tiny-tp2"
    engine.mkdir(parents=True)
    (engine / "config.json").write_text('{"version": "1.2.1"}')
    (engine / "rank0.engine").write_bytes(b"\x00" * 1000)
    (engine / "rank1.engine").write_bytes(b"\x01" * 1000)
    peers = {name: tmp_path / name for name in ("gpu02", "gpu03")}

    def local_ssh(peer, command):
        root = peers[peer] / "engines" / "tiny-tp2"
        root.parent.mkdir(parents=True, exist_ok=True)
        return ["sh", "-c", command.replace(str(engine), str(root))]

    monkeypatch.setattr(mod, "ssh_argv", local_ssh)
    return engine, peers


def test_missing_copies_are_made_and_checked_then_nothing_changes(run_module, cluster):
    engine, peers = cluster
    res = run_module(mod, {"path": str(engine), "what": "engine", "peers": ["gpu02", "gpu03"]})
    assert not res["failed"] and res["changed"]
    assert [(e["peer"], e["action"]) for e in res["peers"]] == [("gpu02", "copied"), ("gpu03", "copied")]
    for root in peers.values():
        assert (root / "engines" / "tiny-tp2" / "rank1.engine").read_bytes() == b"\x01" * 1000
    again = run_module(mod, {"path": str(engine), "what": "engine", "peers": ["gpu02", "gpu03"]})
    assert not again["changed"] and [e["action"] for e in again["peers"]] == ["same", "same"]


def test_a_differing_copy_is_replaced_and_kept_aside_not_deleted(run_module, cluster):
    engine, peers = cluster
    stale = peers["gpu02"] / "engines" / "tiny-tp2"
    stale.mkdir(parents=True)
    (stale / "rank0.engine").write_bytes(b"old")
    res = run_module(mod, {"path": str(engine), "what": "engine", "peers": ["gpu02"]})
    assert res["changed"] and res["peers"][0]["action"] == "copied"
    assert (stale / "rank0.engine").read_bytes() == b"\x00" * 1000
    aside = [p for p in (peers["gpu02"] / "engines").iterdir() if ".replaced-" in p.name]
    assert len(aside) == 1 and (aside[0] / "rank0.engine").read_bytes() == b"old"


def test_check_mode_reports_and_copies_nothing(run_module, cluster):
    engine, peers = cluster
    res = run_module(mod, {"path": str(engine), "what": "engine", "peers": ["gpu03"], "_ansible_check_mode": True})
    assert res["changed"] and res["peers"][0]["action"] == "would_copy"
    assert not (peers["gpu03"] / "engines" / "tiny-tp2" / "rank0.engine").exists()


def test_an_unreachable_peer_fails_naming_it(run_module, cluster, monkeypatch):
    engine, _ = cluster
    monkeypatch.setattr(mod, "ssh_argv", lambda peer, command: ["sh", "-c", "echo 'ssh: connect to host %s port "
                                                                "22: Connection refused' >&2; exit 255" % peer])
    res = run_module(mod, {"path": str(engine), "what": "engine", "peers": ["gpu09"]})
    assert res["failed"] and res["peers"][0]["action"] == "failed"
    assert "gpu09" in res["msg"] and "Connection refused" in res["msg"]


def test_no_engine_on_the_launcher_is_refused(run_module, tmp_path):
    res = run_module(mod, {"path": str(tmp_path / "nothing"), "what": "engine", "peers": ["gpu02"]})
    assert res["failed"] and "the launcher has no engine" in res["msg"]
