# SPDX-License-Identifier: Apache-2.0
"""host_files: one module run writes every file, proves it by hash, never replaces a file it did not write;
the action in front reads controller-side sources."""

import hashlib
import json
import os
import stat
import sys

import host_files
import pytest
from conftest import ROOT, load_action

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from mpi_trt_ansible import fileio  # noqa: E402

host_files_action = load_action("host_files")
MARK = "Managed by mpi-trt-ansible"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_then_changes_nothing(run_module, tmp_path):
    d = tmp_path / "etc" / "mtrt" / "c"
    args = {"dirs": [{"path": str(d), "mode": "0755"}],
            "files": [{"path": str(d / "hostfile"), "content": "gpu01 slots=8\n"},
                      {"path": str(d / "key"), "content": "secret\n", "mode": "0600"}]}
    first = run_module(host_files, args)
    assert first["changed"] is True and first["mtrt_kind"] == "host_files"
    assert [f["verified"] for f in first["files"]] == [True, True]
    assert first["files"][0]["sha256"] == hashlib.sha256(b"gpu01 slots=8\n").hexdigest()
    assert (d / "hostfile").read_text() == "gpu01 slots=8\n" and mode(d / "key") == 0o600 and mode(d) == 0o755
    again = run_module(host_files, args)
    assert again["changed"] is False and [f["changed"] for f in again["files"]] == [False, False]
    os.chmod(d / "key", 0o644)
    fixed = run_module(host_files, args)
    assert [f["changed"] for f in fixed["files"]] == [False, True] and mode(d / "key") == 0o600


def test_check_mode_writes_nothing(run_module, tmp_path):
    path = tmp_path / "new"
    result = run_module(host_files, {"files": [{"path": str(path), "content": "x"}], "_ansible_check_mode": True})
    assert result["changed"] is True and not path.exists() and result["files"][0]["verified"] is None


def test_a_file_someone_else_wrote_is_left_alone(run_module, tmp_path):
    path = tmp_path / "config"
    path.write_text("Host *\n    User me\n")
    result = run_module(host_files, {"files": [{"path": str(path), "content": "# %s\nInclude x\n" % MARK,
                                                "marker": MARK}]})
    assert result["failed"] is True
    assert "%s exists and was not written by mpi-trt-ansible" % path in result["msg"]
    assert path.read_text() == "Host *\n    User me\n"
    path.write_text("# %s (old)\n" % MARK)
    assert run_module(host_files, {"files": [{"path": str(path), "content": "# %s\nnew\n" % MARK,
                                              "marker": MARK}]})["changed"] is True


def test_unknown_owner_fails_naming_it(run_module, tmp_path):
    result = run_module(host_files, {"files": [{"path": str(tmp_path / "f"), "content": "x",
                                                "owner": "no-such-user-mtrt"}]})
    assert result["failed"] is True and "no-such-user-mtrt" in result["msg"]


def _action_args(captured):
    def fake_execute(self, module_name=None, module_args=None, task_vars=None):
        captured.update(module_name=module_name, module_args=module_args)
        return {"changed": False}
    return fake_execute


@pytest.mark.parametrize("check_mode", [False, True])
def test_action_reads_controller_sources(run_action, tmp_path, monkeypatch, check_mode):
    src = tmp_path / "hostfile"
    src.write_text("n1 slots=2\n")
    captured = {}
    monkeypatch.setattr(host_files_action.ActionModule, "_execute_module", _action_args(captured))
    run_action(host_files_action, {"files": [{"path": "/etc/mtrt/c/hostfile", "src": str(src)},
                                             {"path": "/etc/mtrt/c/x", "src": str(tmp_path / "later")}]}
               if check_mode else {"files": [{"path": "/etc/mtrt/c/hostfile", "src": str(src)}]},
               check_mode=check_mode, transport="ssh")
    files = captured["module_args"]["files"]
    assert captured["module_name"] == "host_files"
    assert files[0] == {"path": "/etc/mtrt/c/hostfile", "content": "n1 slots=2\n"}
    if check_mode:
        assert files[1] == {"path": "/etc/mtrt/c/x", "content": ""}  # a later stage would render it


def test_action_refuses_a_missing_source_outside_check_mode(run_action, tmp_path):
    from ansible.errors import AnsibleActionFail
    with pytest.raises(AnsibleActionFail, match="does not exist on the controller"):
        run_action(host_files_action, {"files": [{"path": "/x", "src": str(tmp_path / "missing")}]}, transport="ssh")


# --------------------------------------------------------------------------- --check --diff

SSHD = "# Managed by mpi-trt-ansible\nPort 2233\nListenAddress 10.0.0.11\nPasswordAuthentication no\n"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def test_diff_shows_each_file_before_and_after(run_module, tmp_path):
    conf, hostfile = tmp_path / "sshd_config", tmp_path / "hostfile"
    conf.write_text(SSHD)
    os.chmod(conf, 0o644)
    me = "%d:%d" % (os.geteuid(), os.getegid())
    new_conf = SSHD.replace("Port 2233", "Port 2234")
    args = {"files": [{"path": str(conf), "content": new_conf},
                      {"path": str(hostfile), "content": "gpu01 slots=8\n", "mode": "0600"}],
            "dirs": [{"path": str(tmp_path / "d"), "mode": "0700"}],
            "_ansible_check_mode": True, "_ansible_diff": True}
    result = run_module(host_files, args)
    assert result["changed"] is True and conf.read_text() == SSHD and not hostfile.exists()
    dir_diff, conf_diff, host_diff = result["diff"]
    assert dir_diff == {"before": {"path": str(tmp_path / "d"), "state": "absent"},
                        "after": {"path": str(tmp_path / "d"), "state": "directory", "mode": "0700", "owner": me}}
    assert conf_diff == {"before_header": str(conf), "after_header": str(conf), "before": SSHD, "after": new_conf}
    assert host_diff == {"before_header": "%s (absent)" % hostfile, "after_header": str(hostfile),
                         "before": "", "after": "gpu01 slots=8\n"}
    # a mode change alone: the headers say it, the content is the same on both sides
    os.chmod(conf, 0o600)
    result = run_module(host_files, dict(args, files=[{"path": str(conf), "content": SSHD}], dirs=[]))
    assert result["diff"] == [{"before_header": "%s (mode 0600)" % conf, "after_header": "%s (mode 0644)" % conf,
                               "before": SSHD, "after": SSHD}]
    # nothing changes: no diff
    result = run_module(host_files, dict(args, files=[{"path": str(conf), "content": SSHD, "mode": "0600"}],
                                         dirs=[]))
    assert result["changed"] is False and "diff" not in result


def test_diff_never_shows_a_secret(run_module, tmp_path):
    key, token = tmp_path / "id_ed25519", tmp_path / "token"
    result = run_module(host_files, {"files": [{"path": str(key), "content": KEY, "mode": "0600"},
                                               {"path": str(token), "content": "s3cr3t\n", "diff": False}],
                                     "_ansible_diff": True})
    assert key.read_text() == KEY and token.read_text() == "s3cr3t\n"
    assert [d["after"] for d in result["diff"]] == ["(content not shown)\n", "(content not shown)\n"]
    replaced = KEY.replace("AAAA", "BBBB")
    result = run_module(host_files, {"files": [{"path": str(key), "content": replaced, "mode": "0600"},
                                               {"path": str(token), "content": "s3cr3t\n", "diff": False}],
                                     "_ansible_check_mode": True, "_ansible_diff": True})
    assert result["diff"] == [{"before_header": str(key), "after_header": str(key),
                               "before": "(content not shown)\n", "after": "(content not shown: it changes)\n"}]
    assert "b3BlbnNz" not in json.dumps(result["diff"]) and "s3cr3t" not in json.dumps(result["diff"])
    # a key that replaces a public file is not shown either, nor what it replaces
    pub = tmp_path / "known_hosts"
    pub.write_text("node1 ssh-ed25519 AAAA\n")
    result = run_module(host_files, {"files": [{"path": str(pub), "content": KEY}],
                                     "_ansible_check_mode": True, "_ansible_diff": True})
    assert result["diff"][0]["before"] == "(content not shown)\n"


def test_action_passes_copies_diff_to_each_copy(run_action, tmp_path, monkeypatch):
    src = tmp_path / "id_ed25519"
    src.write_text(KEY)
    captured = {}
    monkeypatch.setattr(host_files_action.ActionModule, "_execute_module", _action_args(captured))
    run_action(host_files_action, {"copies": {"ssh/id_ed25519": str(src)}, "copies_mode": "0600",
                                   "copies_diff": False, "dest_dir": "/etc/mtrt/c"}, transport="ssh")
    assert captured["module_args"] == {"files": [{"path": "/etc/mtrt/c/ssh/id_ed25519", "content": KEY,
                                                  "mode": "0600", "diff": False}]}


def test_file_diff_of_large_or_binary_content():
    big = b"x" * (fileio.MAX_DIFF_BYTES + 1)
    diff = fileio.file_diff("/p", None, big)
    assert diff["after"] == "(content not shown: %d bytes, sha256 %s)\n" % (len(big), hashlib.sha256(big).hexdigest())
    assert fileio.file_diff("/p", b"\xff\xfe", b"a\n", before_mode=0o644, mode=0o644)["before"].startswith(
        "(binary content not shown: 2 bytes")


def test_cluster_files_diff_is_the_same_form(tmp_path):
    """The controller-side renderer shows its files' diffs through the same function."""
    from types import SimpleNamespace
    cluster_files = load_action("cluster_files")
    (tmp_path / "hostfile").write_text("node1 slots=2\n")
    os.chmod(tmp_path / "hostfile", 0o644)
    os.chmod(tmp_path, 0o700)
    task = SimpleNamespace(args={"dir": str(tmp_path), "files": [
        {"dest": "hostfile", "content": "node1 slots=2\nnode2 slots=2\n", "mode": "0600"}]},
        async_val=0, check_mode=True, diff=True, action="cluster_files")
    action = cluster_files.ActionModule(task, SimpleNamespace(transport="local", _shell=SimpleNamespace(tmpdir=None)), play_context=None,
                                        loader=None, templar=None)
    result = action.run(task_vars={})
    assert result["diff"] == [{"before_header": "%s (mode 0644)" % (tmp_path / "hostfile"),
                               "after_header": "%s (mode 0600)" % (tmp_path / "hostfile"),
                               "before": "node1 slots=2\n", "after": "node1 slots=2\nnode2 slots=2\n"}]
    assert (tmp_path / "hostfile").read_text() == "node1 slots=2\n"
