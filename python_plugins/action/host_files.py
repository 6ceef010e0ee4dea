# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""host_files: read the controller-side sources (``src``) of the files, then run the module on the machine.

An entry of ``files`` may name a controller path in ``src`` instead of giving ``content``: this
action reads it (as ``copy`` does) and sends the content in the module's arguments, so one module
run per machine writes every file. In check mode a source that does not exist yet (an earlier
stage would have rendered it) is sent as empty content. ``copies`` ({path: src}, with ``copies_owner``,
``copies_mode`` and ``copies_diff``: false for secrets) adds entries; ``dest_dir`` and ``src_dir`` complete
relative paths and sources (the action's own arguments). Documentation: ``modules/host_files.py``.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        dest_dir, src_dir = args.pop("dest_dir", None), args.pop("src_dir", None)
        copies = args.pop("copies", None) or {}
        extra = {k: args.pop(k) for k in ("copies_owner", "copies_mode", "copies_diff") if k in args}
        entries = list(args.get("files") or []) + [
            dict({"path": path, "src": src}, **{k[len("copies_"):]: v for k, v in extra.items()})
            for path, src in sorted(copies.items())]
        files = []
        for entry in entries:
            entry = dict(entry)
            if dest_dir and not str(entry.get("path", "")).startswith("/"):
                entry["path"] = os.path.normpath(os.path.join(dest_dir, entry["path"]))
            src = entry.pop("src", None)
            if src is not None and src_dir and not str(src).startswith("/"):
                src = os.path.join(src_dir, src)
            if src is not None:
                if "content" in entry:
                    raise AnsibleActionFail("host_files: %s has both src and content" % entry.get("path"))
                try:
                    with open(src, "rb") as handle:
                        entry["content"] = to_text(handle.read(), errors="surrogate_or_strict")
                except FileNotFoundError:
                    if not self._task.check_mode:
                        raise AnsibleActionFail("host_files: the source %s of %s does not exist on the controller "
                                                "(run the stage that renders it first)" % (src, entry.get("path")))
                    entry["content"] = ""
            files.append(entry)
        args["files"] = files
        result.update(self._execute_module(module_name="host_files", module_args=args, task_vars=task_vars))
        return result
