# SPDX-License-Identifier: Apache-2.0
"""ssh_keys: ed25519 pairs on the controller, 0600 in 0700 directories, existing identities kept."""

import os
import stat

import pytest
from ansible.errors import AnsibleActionFail
from conftest import load_action
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ssh_keys = load_action("ssh_keys")
KEYS = {"ssh/id_ed25519": "mpi-trt-ansible c1", "hostkeys/node1_ed25519": "node1",
        "hostkeys/node2_ed25519": "node2"}


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def public_of(private_path):
    with open(private_path, "rb") as handle:
        key = serialization.load_ssh_private_key(handle.read(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def test_generates_every_pair_with_modes_and_matching_halves(tmp_path, run_action):
    state = tmp_path / "state"
    result = run_action(ssh_keys, {"dir": str(state), "keys": KEYS})
    assert result["changed"] is True and result["counts"] == {"generated": 3}
    assert mode(state) == 0o700 and mode(state / "ssh") == 0o700 and mode(state / "hostkeys") == 0o700
    for rel, comment in KEYS.items():
        private, public = state / rel, state / (rel + ".pub")
        assert mode(private) == 0o600 and mode(public) == 0o600
        line = public.read_bytes().split()
        assert line[0] == b"ssh-ed25519" and line[2].decode() == comment.split()[0]
        assert b" ".join(line[:2]) == public_of(private)
    entry = next(e for e in result["keys"] if e["path"].endswith("node1_ed25519"))
    assert entry["public_key"] == (state / "hostkeys/node1_ed25519.pub").read_text().strip()
    assert len({(state / rel).read_bytes() for rel in KEYS}) == 3


def test_second_run_keeps_every_identity(tmp_path, run_action):
    args = {"dir": str(tmp_path), "keys": KEYS}
    run_action(ssh_keys, args)
    before = {rel: (tmp_path / rel).read_bytes() for rel in KEYS}
    result = run_action(ssh_keys, args)
    assert result["changed"] is False and result["counts"] == {"kept": 3}
    assert {rel: (tmp_path / rel).read_bytes() for rel in KEYS} == before


def test_repairs_what_it_can_and_replaces_what_it_cannot(tmp_path, run_action):
    args = {"dir": str(tmp_path), "keys": KEYS}
    run_action(ssh_keys, args)
    kept = (tmp_path / "ssh/id_ed25519").read_bytes()
    os.unlink(tmp_path / "ssh/id_ed25519.pub")                       # public half lost
    (tmp_path / "hostkeys/node1_ed25519").write_bytes(b"garbage\n")  # private half damaged
    os.chmod(tmp_path / "hostkeys/node2_ed25519", 0o644)             # mode drifted
    result = run_action(ssh_keys, args)
    actions = {os.path.relpath(e["path"], tmp_path): e["action"] for e in result["keys"]}
    assert actions == {"ssh/id_ed25519": "public_key_written", "hostkeys/node1_ed25519": "replaced",
                       "hostkeys/node2_ed25519": "mode_fixed"}
    assert (tmp_path / "ssh/id_ed25519").read_bytes() == kept
    assert b" ".join((tmp_path / "ssh/id_ed25519.pub").read_bytes().split()[:2]) == public_of(tmp_path / "ssh/id_ed25519")
    assert b" ".join((tmp_path / "hostkeys/node1_ed25519.pub").read_bytes().split()[:2]) == public_of(
        tmp_path / "hostkeys/node1_ed25519")
    assert mode(tmp_path / "hostkeys/node2_ed25519") == 0o600


def test_check_mode_reports_and_writes_nothing(tmp_path, run_action):
    state = tmp_path / "state"
    result = run_action(ssh_keys, {"dir": str(state), "keys": KEYS}, check_mode=True)
    assert result["changed"] is True and result["counts"] == {"generated": 3}
    assert not state.exists()


def test_refuses_paths_outside_the_directory_and_remote_hosts(tmp_path, run_action):
    with pytest.raises(AnsibleActionFail, match="outside"):
        run_action(ssh_keys, {"dir": str(tmp_path), "keys": {"../escape": "x"}})
    with pytest.raises(AnsibleActionFail, match="delegate it to localhost"):
        run_action(ssh_keys, {"dir": str(tmp_path), "keys": KEYS}, transport="community.docker.docker")
    assert list(tmp_path.iterdir()) == []
