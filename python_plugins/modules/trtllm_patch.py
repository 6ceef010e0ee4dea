#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: trtllm_patch
short_description: Apply or revert the gpus_per_node patch of TensorRT-LLM's model_runner.py
description:
  - TensorRT-LLM 0.7-0.10 always uses C(gpus_per_node=8) at run time, so with fewer GPUs per container
    rank r asks for GPU C(r % 8) and fails with C(invalid device ordinal). The notes fixed it by hand-editing
    C(tensorrt_llm/runtime/model_runner.py); this module makes that edit reproducible and reported.
  - V(present) inserts C(runtime_mapping.gpus_per_node = VALUE), marked with an C(mtrt) comment, before every
    C(torch.cuda.set_device(rank % runtime_mapping.gpus_per_node)) line (run.py must then use
    C(--use_py_session); C(trtllm_run) does that). An existing patch with another value is replaced.
  - On the first apply the untouched file is kept as C(<path>.mtrt-orig); V(absent) restores it byte for
    byte and removes it. Without a backup, V(absent) removes the patch lines.
  - Idempotent - C(changed) only when the file (or its backup) changes. Fails, changing nothing, when the
    file lacks the line the patch anchors on (a TensorRT-LLM build the patch does not know).
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  path:
    description: Path of C(model_runner.py) on the node (C(trtllm_facts) C(model_runner_py)).
    type: path
    required: true
  state:
    description: V(present) applies the patch, V(absent) reverts it.
    type: str
    choices: [present, absent]
    default: present
  value:
    description: GPUs per node container the runtime must use; required with O(state=present).
    type: int
  backup_suffix:
    description: Suffix of the backup of the original file.
    type: str
    default: .mtrt-orig
notes:
  - "Check mode: supported. Diff mode: shows the edit."
"""

EXAMPLES = r"""
- name: Make TensorRT-LLM 0.7 use the one GPU each container has
  trtllm_patch:
    path: "{{ trtllm_engine_facts.model_runner_py }}"
    value: 1
  register: trtllm_engine_patch

- name: Restore the original model_runner.py
  trtllm_patch:
    path: /usr/local/lib/python3.10/dist-packages/tensorrt_llm/runtime/model_runner.py
    state: absent
"""

RETURN = r"""
mtrt_kind:
  description: Always C(trtllm_patch).
  returned: always
  type: str
  sample: trtllm_patch
path:
  description: The patched file.
  returned: always
  type: str
backup:
  description: Path of the backup of the original file (it may not exist).
  returned: always
  type: str
state:
  description: The requested state.
  returned: always
  type: str
value:
  description: The gpus_per_node value written (null for V(absent)).
  returned: always
  type: int
action:
  description: >-
    What was done - V(applied), V(updated) (another value replaced), V(unchanged) (already as requested),
    V(restored) (original put back from the backup), V(reverted) (patch lines removed, no backup).
  returned: always
  type: str
  sample: applied
before:
  description: Patch state before - C(anchors), C(applied), C(value).
  returned: always
  type: dict
after:
  description: Patch state after (as it would be in check mode).
  returned: always
  type: dict
msg:
  description: One line saying what was (or would be) done to which file.
  returned: always
  type: str
  sample: "model_runner.py: inserted runtime_mapping.gpus_per_node = 1 before 1 set_device line"
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.trtllm_command import (TrtllmConfigError, apply_patch, patch_state,
                                                 revert_patch)


def _read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def _write(path, text, mode_from):
    """Atomic replace keeping the mode of ``mode_from``."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".mtrt-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, os.stat(mode_from).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def plan(text, backup_text, state, value):
    """Decide the edit. Returns (new_text, new_backup, action).

    ``new_backup``: text to store as the backup, None to leave it, False to remove it.
    """
    base, had_patch = revert_patch(text)
    if state == "present":
        new, _ = apply_patch(text, value)
        if new == text:
            action = "unchanged"
        else:
            action = "updated" if had_patch else "applied"
        # Keep (or refresh, after an upgrade replaced the file) the untouched original.
        return new, (None if backup_text == base else base), action
    if backup_text is not None and backup_text == base:
        return backup_text, False, ("restored" if backup_text != text else "unchanged")
    new = base
    return new, (False if backup_text is not None else None), ("reverted" if had_patch else "unchanged")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            value=dict(type="int"),
            backup_suffix=dict(type="str", default=".mtrt-orig"),
        ),
        required_if=[("state", "present", ("value",))],
        supports_check_mode=True,
    )
    p = module.params
    path, state = p["path"], p["state"]
    backup_path = path + p["backup_suffix"]
    result = dict(mtrt_kind="trtllm_patch", changed=False, path=path, backup=backup_path,
                  state=state, value=p["value"] if state == "present" else None, action=None,
                  before=None, after=None)
    if state == "present" and p["value"] < 1:
        module.fail_json(msg="value=%d: gpus_per_node must be >= 1" % p["value"], **result)
    try:
        text = _read(path)
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg="cannot read %s (%s); pass the model_runner.py that trtllm_facts "
                             "reports (model_runner_py)" % (path, exc), **result)
    try:
        backup_text = _read(backup_path) if os.path.exists(backup_path) else None
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg="cannot read the backup %s (%s)" % (backup_path, exc), **result)
    result["before"] = patch_state(text)
    try:
        new, new_backup, action = plan(text, backup_text, state, p["value"])
    except TrtllmConfigError as exc:
        result["after"] = result["before"]
        module.fail_json(msg="%s: %s" % (path, exc), **result)
    after = patch_state(new)
    backup_changes = new_backup is False or (new_backup is not None and new_backup != backup_text)
    changed = new != text or backup_changes
    result.update(action=action, after=after, changed=changed)
    name = os.path.basename(path)
    if action in ("applied", "updated"):
        msg = ("%s: %s runtime_mapping.gpus_per_node = %d before %d set_device line(s) "
                         "(was %s); original kept at %s"
                         % (path, "inserted" if action == "applied" else "set", p["value"],
                            after["anchors"], result["before"]["value"] or "the runtime's 8",
                            backup_path))
    elif action == "restored":
        msg = "%s: original restored from %s" % (path, backup_path)
    elif action == "reverted":
        msg = "%s: patch lines removed (no backup to restore)" % path
    elif state == "present":
        msg = "%s: already sets gpus_per_node = %d" % (name, p["value"])
    else:
        msg = "%s: carries no gpus_per_node patch" % name
    if module._diff and changed:
        result["diff"] = [dict(before=text, after=new, before_header=path, after_header=path)]
        if backup_changes:
            result["diff"].append(dict(
                before=backup_text or "", after="" if new_backup is False else new_backup,
                before_header=backup_path if backup_text is not None else "(absent)",
                after_header="(absent)" if new_backup is False else backup_path))
    if module.check_mode or not changed:
        module.exit_json(msg=msg, **result)
    try:
        if new_backup is not None and new_backup is not False and new_backup != backup_text:
            _write(backup_path, new_backup, path)
        if new != text:
            _write(path, new, path)
        if new_backup is False and os.path.exists(backup_path):
            os.unlink(backup_path)
    except OSError as exc:
        module.fail_json(msg="cannot write %s or its backup: %s" % (path, exc), **result)
    module.exit_json(msg=msg, **result)


if __name__ == "__main__":
    main()
