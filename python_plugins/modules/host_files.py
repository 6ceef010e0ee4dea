#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Write a set of small files on one machine in one module run, and prove their content by hash."""

from __future__ import annotations

DOCUMENTATION = r"""
module: host_files
short_description: Write several small files on a machine in one run and verify their sha256 on disk
description:
  - Where no filesystem is shared (C(cluster_mode) V(hosts) or V(docker_per_host) with C(cluster_shared_fs)
    false), the files every machine needs (the cluster's hostfile, Open MPI settings, SSH client files, stage
    scripts, the files a node container mounts) are sent in one module run per machine instead of one
    C(copy) per file.
  - Creates the O(dirs) first, then writes each of O(files) whose content, mode or owner differs, atomically
    (temporary file and rename in the same directory). After writing, every file is read back and its sha256
    compared with the sha256 of the content sent; a difference fails the task naming the file.
  - A file with O(files[].marker) set is replaced only when it is missing or its content contains the marker
    (a file this project wrote); any other file at that path fails the task, naming it, and is left alone.
  - Supports check mode and diff mode. The diff shows, as C(template) does, each file that would change
    with its content before and after (mode and owner in the headers where they change), and each directory
    created or fixed. Content is never shown for an entry with C(diff) false nor for anything holding a
    private key; the diff then only says that it changes.
author: mpi-trt-ansible
version_added: "1.2.0"
options:
  dirs:
    description: Directories to create or fix, each C({path, mode, owner, group}).
    type: list
    elements: dict
    default: []
  files:
    description:
      - Files to write, each C({path, content, mode, owner, group, marker, diff}); C(mode) defaults to C(0644).
      - C(diff) false keeps the content out of the diff (secrets); a private key is never shown anyway.
      - Instead of C(content), C(src) names a file on the controller; the action plugin in front of the module
        reads it (in check mode a source that does not exist yet counts as empty).
    type: list
    elements: dict
    default: []
  copies:
    description: "More files as C({path: src}) (controller sources), read by the action plugin."
    type: dict
  copies_owner:
    description: Owner of the O(copies) (default O(owner)).
    type: str
  copies_mode:
    description: Mode of the O(copies) (default C(0644)).
    type: str
  copies_diff:
    description: Whether the diff may show the O(copies)' content (set false for secrets).
    type: bool
    default: true
  dest_dir:
    description: Directory that relative O(files[].path) are in (read by the action plugin).
    type: path
  src_dir:
    description: Controller directory that relative O(files[].src) are in (read by the action plugin).
    type: path
  owner:
    description: Owner of entries that name none (default the module's user).
    type: str
  group:
    description: Group of entries that name none (default the owner's primary group).
    type: str
notes:
  - Use C(no_log) on a task that carries a private key; its result then says nothing about the content.
"""

EXAMPLES = r"""
- name: Copy the cluster files to every machine
  host_files:
    dirs: [{path: /etc/mtrt/mtrt, mode: "0755"}]
    files:
      - {path: /etc/mtrt/mtrt/hostfile, content: "gpu01 slots=8\ngpu02 slots=8\n"}
      - {path: /home/mtrt/.nccl.conf, content: "NCCL_SOCKET_IFNAME==ens1f0\n", owner: mtrt,
         marker: "Managed by mpi-trt-ansible"}
"""

RETURN = r"""
mtrt_kind:
  description: Always C(host_files).
  returned: always
  type: str
files:
  description: One C({path, changed, sha256, verified}) per O(files) entry.
  returned: always
  type: list
  elements: dict
dirs:
  description: One C({path, changed}) per O(dirs) entry.
  returned: always
  type: list
  elements: dict
"""

import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes
from ansible.module_utils.mtrt_fileio import atomic_write, file_diff


def _ids(owner, group):
    uid = pwd.getpwnam(owner).pw_uid if owner else os.geteuid()
    if group:
        gid = grp.getgrnam(group).gr_gid
    else:
        gid = pwd.getpwuid(uid).pw_gid if owner else os.getegid()
    return uid, gid


def _mode(value, default):
    return int(str(value), 8) if value not in (None, "") else default


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dirs=dict(type="list", elements="dict", default=[]),
            files=dict(type="list", elements="dict", default=[]),
            owner=dict(type="str"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    result = dict(changed=False, mtrt_kind="host_files", files=[], dirs=[])
    diffs = []
    try:
        defaults = (params["owner"], params["group"])
        for entry in params["dirs"]:
            path = entry["path"]
            uid, gid = _ids(entry.get("owner") or defaults[0], entry.get("group") or defaults[1])
            mode = _mode(entry.get("mode"), 0o755)
            try:
                st = os.stat(path)
                changed = stat.S_IMODE(st.st_mode) != mode or (st.st_uid, st.st_gid) != (uid, gid)
            except FileNotFoundError:
                st, changed = None, True
            if changed:
                diffs.append({"before": {"path": path, "state": "absent"} if st is None else
                              {"path": path, "state": "directory", "mode": "%04o" % stat.S_IMODE(st.st_mode),
                               "owner": "%d:%d" % (st.st_uid, st.st_gid)},
                              "after": {"path": path, "state": "directory", "mode": "%04o" % mode,
                                        "owner": "%d:%d" % (uid, gid)}})
            if changed and not module.check_mode:
                if st is None:
                    os.makedirs(path, mode=mode, exist_ok=True)
                os.chmod(path, mode)
                os.chown(path, uid, gid)
            result["dirs"].append({"path": path, "changed": changed})
            result["changed"] |= changed

        for entry in params["files"]:
            path, data = entry["path"], to_bytes(entry.get("content") or "")
            uid, gid = _ids(entry.get("owner") or defaults[0], entry.get("group") or defaults[1])
            mode = _mode(entry.get("mode"), 0o644)
            want = hashlib.sha256(data).hexdigest()
            try:
                with open(path, "rb") as handle:
                    have = handle.read()
                st = os.stat(path)
            except FileNotFoundError:
                have, st = None, None
            marker = entry.get("marker")
            if have is not None and marker and to_bytes(marker) not in have and have != data:
                module.fail_json(msg="%s exists and was not written by mpi-trt-ansible (no %r in it): it is left "
                                     "alone. Move it away, or merge what it needs by hand." % (path, marker),
                                 **result)
            changed = have != data or stat.S_IMODE(st.st_mode) != mode or (st.st_uid, st.st_gid) != (uid, gid)
            if changed and module._diff:
                diffs.append(file_diff(path, have, data, before_mode=st and stat.S_IMODE(st.st_mode), mode=mode,
                                       before_owner=st and "%d:%d" % (st.st_uid, st.st_gid),
                                       owner="%d:%d" % (uid, gid), show=entry.get("diff", True) is not False))
            if changed and not module.check_mode:
                if have != data:
                    atomic_write(path, data, mode)
                os.chmod(path, mode)
                os.chown(path, uid, gid)
            verified = None
            if not module.check_mode:
                with open(path, "rb") as handle:
                    verified = hashlib.sha256(handle.read()).hexdigest() == want
                if not verified:
                    module.fail_json(msg="%s does not hold what was sent (sha256 differs after writing)" % path,
                                     **result)
            result["files"].append({"path": path, "changed": changed, "sha256": want, "verified": verified})
            result["changed"] |= changed
    except (KeyError, OSError) as exc:
        module.fail_json(msg="cannot write the files: %s" % exc, **result)
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
