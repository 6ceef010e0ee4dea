"""trtllm_patch: apply/revert the model_runner.py gpus_per_node patch on a file."""

import os

import pytest
import trtllm_patch

ORIGINAL = (
    "import torch\n"
    "\n"
    "class ModelRunner:\n"
    "    @classmethod\n"
    "    def from_dir(cls, engine_dir, rank=0):\n"
    "        runtime_mapping = Mapping(world_size=2, rank=rank)\n"
    "        torch.cuda.set_device(rank % runtime_mapping.gpus_per_node)\n"
    "        return cls()\n"
)
PATCH_LINE = "        runtime_mapping.gpus_per_node = %d  # mtrt: gpus_per_node patch\n"


@pytest.fixture
def runner(tmp_path):
    path = tmp_path / "model_runner.py"
    path.write_text(ORIGINAL, encoding="utf-8")
    path.chmod(0o644)
    return path


def backup_of(path):
    return path.with_name(path.name + ".mtrt-orig")


def test_apply_writes_patch_and_backup(runner, run_module):
    res = run_module(trtllm_patch, dict(path=str(runner), value=1))
    assert res["failed"] is False and res["changed"] is True
    assert res["mtrt_kind"] == "trtllm_patch" and res["action"] == "applied"
    assert res["before"] == {"anchors": 1, "applied": False, "value": None}
    assert res["after"] == {"anchors": 1, "applied": True, "value": 1}
    text = runner.read_text(encoding="utf-8")
    assert PATCH_LINE % 1 + "        torch.cuda.set_device" in text
    assert backup_of(runner).read_text(encoding="utf-8") == ORIGINAL
    assert oct(os.stat(runner).st_mode & 0o777) == oct(0o644)
    assert "gpus_per_node = 1" in res["msg"] and str(backup_of(runner)) in res["msg"]


def test_apply_is_idempotent(runner, run_module):
    run_module(trtllm_patch, dict(path=str(runner), value=1))
    once = runner.read_text(encoding="utf-8")
    res = run_module(trtllm_patch, dict(path=str(runner), value=1))
    assert res["changed"] is False and res["action"] == "unchanged"
    assert runner.read_text(encoding="utf-8") == once
    assert "already" in res["msg"]


def test_other_value_is_replaced_and_backup_kept(runner, run_module):
    run_module(trtllm_patch, dict(path=str(runner), value=1))
    res = run_module(trtllm_patch, dict(path=str(runner), value=2))
    assert res["changed"] is True and res["action"] == "updated"
    text = runner.read_text(encoding="utf-8")
    assert text.count("mtrt: gpus_per_node patch") == 1 and PATCH_LINE % 2 in text
    assert backup_of(runner).read_text(encoding="utf-8") == ORIGINAL


def test_revert_restores_exact_original(runner, run_module):
    # Odd bytes (CRLF, no final newline) must come back exactly.
    original = ORIGINAL.replace("import torch\n", "import torch\r\n") + "# end"
    runner.write_text(original, encoding="utf-8", newline="")
    run_module(trtllm_patch, dict(path=str(runner), value=1))
    res = run_module(trtllm_patch, dict(path=str(runner), state="absent"))
    assert res["changed"] is True and res["action"] == "restored"
    assert runner.read_bytes() == original.encode("utf-8")
    assert not backup_of(runner).exists()
    again = run_module(trtllm_patch, dict(path=str(runner), state="absent"))
    assert again["changed"] is False and again["action"] == "unchanged"


def test_revert_without_backup_removes_lines(runner, run_module):
    runner.write_text(ORIGINAL.replace("        torch.cuda", PATCH_LINE % 1 + "        torch.cuda"),
                      encoding="utf-8")
    res = run_module(trtllm_patch, dict(path=str(runner), state="absent"))
    assert res["changed"] is True and res["action"] == "reverted"
    assert runner.read_text(encoding="utf-8") == ORIGINAL


def test_hand_patched_file_gets_a_clean_backup(runner, run_module):
    runner.write_text(ORIGINAL.replace("        torch.cuda", PATCH_LINE % 1 + "        torch.cuda"),
                      encoding="utf-8")
    res = run_module(trtllm_patch, dict(path=str(runner), value=1))
    assert res["action"] == "unchanged" and res["changed"] is True  # only the backup is new
    assert backup_of(runner).read_text(encoding="utf-8") == ORIGINAL
    assert run_module(trtllm_patch, dict(path=str(runner), value=1))["changed"] is False


def test_upgraded_file_refreshes_a_stale_backup(runner, run_module):
    run_module(trtllm_patch, dict(path=str(runner), value=1))
    upgraded = "# new release\n" + ORIGINAL
    runner.write_text(upgraded, encoding="utf-8")
    res = run_module(trtllm_patch, dict(path=str(runner), value=1))
    assert res["changed"] is True and res["action"] == "applied"
    assert backup_of(runner).read_text(encoding="utf-8") == upgraded
    run_module(trtllm_patch, dict(path=str(runner), state="absent"))
    assert runner.read_text(encoding="utf-8") == upgraded


def test_check_mode_and_diff_change_nothing(runner, run_module):
    res = run_module(trtllm_patch, dict(path=str(runner), value=1, _ansible_check_mode=True,
                                        _ansible_diff=True))
    assert res["changed"] is True and res["action"] == "applied"
    assert runner.read_text(encoding="utf-8") == ORIGINAL and not backup_of(runner).exists()
    assert res["diff"][0]["before"] == ORIGINAL and PATCH_LINE % 1 in res["diff"][0]["after"]
    assert res["diff"][1]["after"] == ORIGINAL


def test_unknown_file_fails_unchanged(runner, run_module):
    runner.write_text("torch.cuda.set_device(local_rank)\n", encoding="utf-8")
    res = run_module(trtllm_patch, dict(path=str(runner), value=1))
    assert res["failed"] is True and res["changed"] is False
    assert "nothing was changed" in res["msg"]
    assert runner.read_text(encoding="utf-8") == "torch.cuda.set_device(local_rank)\n"
    assert not backup_of(runner).exists()


def test_missing_file_and_bad_value(tmp_path, runner, run_module):
    res = run_module(trtllm_patch, dict(path=str(tmp_path / "nope.py"), value=1))
    assert res["failed"] is True and "model_runner_py" in res["msg"]
    res = run_module(trtllm_patch, dict(path=str(runner), value=0))
    assert res["failed"] is True and "value=0" in res["msg"]
    res = run_module(trtllm_patch, dict(path=str(runner)))
    assert res["failed"] is True and "value" in res["msg"]
