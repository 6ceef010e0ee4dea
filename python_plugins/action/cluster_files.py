# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Render a set of controller-side files in one step.

The cluster's SSH and MPI files (known_hosts, ssh_config, hostfile, ...) are
rendered on the controller and mounted read-only by the nodes. Rendering them
with one ``template`` task each costs a module run per file; this action does
the same work inside the controller process: it templates each source with
the task's variables, writes only files whose content or mode differs
(atomically, via a temporary file and rename), and reports which changed.
It supports check mode and refuses to run anywhere but on the controller.
"""

from __future__ import annotations

import hashlib
import os
import stat

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

from mpi_trt_ansible.fileio import atomic_write, file_diff

DOCUMENTATION = r"""
action: cluster_files
short_description: Render several files on the controller in one task
options:
  dir: {description: Directory the files go to (created when missing)., type: path, required: true}
  dir_mode: {description: Mode of that directory., type: str, default: "0700"}
  files:
    description: >-
      Files to write, each a dict with C(dest) (name inside O(dir)), one of C(template) (a template of the
      role, rendered with the task's variables), C(src) (a file of the role, copied as is) or C(content),
      and C(mode) (default C(0644)).
    type: list
    elements: dict
    required: true
"""

_LOCAL = ("local", "ansible.builtin.local")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "dir_mode", "files"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if self._connection.transport not in _LOCAL:
            raise AnsibleActionFail("cluster_files writes controller-side files: delegate it to localhost")
        args = self._task.args
        directory = args.get("dir")
        files = args.get("files") or []
        if not directory or not isinstance(files, list):
            raise AnsibleActionFail("cluster_files needs dir and a list of files")
        dir_mode = int(str(args.get("dir_mode", "0700")), 8)

        changed = False
        report, diffs = [], []
        if not os.path.isdir(directory):
            changed = True
            if not self._task.check_mode:
                os.makedirs(directory, mode=dir_mode, exist_ok=True)
        elif stat.S_IMODE(os.stat(directory).st_mode) != dir_mode:
            changed = True
            if not self._task.check_mode:
                os.chmod(directory, dir_mode)

        for spec in files:
            data = self._render(spec, task_vars)
            path = os.path.join(directory, spec["dest"])
            mode = int(str(spec.get("mode", "0644")), 8)
            before = self._current(path) if self._task.diff else None
            file_changed = self._write(path, data, mode)
            changed = changed or file_changed
            if self._task.diff and file_changed:
                diffs.append(file_diff(path, before[0], data, before_mode=before[1], mode=mode))
            report.append({"path": path, "changed": file_changed,
                           "checksum": hashlib.sha1(data).hexdigest(), "mode": "%04o" % mode})
        result.update(changed=changed, files=report)
        if diffs:
            result["diff"] = diffs
        return result

    @staticmethod
    def _current(path):
        """(bytes, mode) of the file as it is now, or (None, None)."""
        try:
            with open(path, "rb") as handle:
                return handle.read(), stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            return None, None

    def _render(self, spec, task_vars):
        if "content" in spec:
            return to_bytes(spec["content"])
        key = "template" if "template" in spec else "src"
        if key not in spec:
            raise AnsibleActionFail("cluster_files: %s needs template, src or content" % spec.get("dest"))
        source = self._find_needle("templates" if key == "template" else "files", spec[key])
        text = self._loader.get_text_file_contents(source)
        if key == "src":
            return to_bytes(text)
        templar = self._templar.copy_with_new_env(available_variables=task_vars)
        return to_bytes(to_text(templar.template(trust_as_template(text), escape_backslashes=False)))

    def _write(self, path, data, mode):
        try:
            with open(path, "rb") as handle:
                same = handle.read() == data
            mode_ok = stat.S_IMODE(os.stat(path).st_mode) == mode
        except FileNotFoundError:
            same = mode_ok = False
        if same and mode_ok:
            return False
        if self._task.check_mode:
            return True
        if same:
            os.chmod(path, mode)
            return True
        atomic_write(path, data, mode)
        return True
