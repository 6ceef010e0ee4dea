# SPDX-License-Identifier: Apache-2.0
"""host_files: one module run writes every file, proves it by hash, never replaces a file it did not write;
the action in front reads controller-side sources."""

import hashlib
import os
import stat

import host_files
import pytest
from conftest import load_action

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
