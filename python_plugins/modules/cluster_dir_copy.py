#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Copy a directory of the launcher (an engine, a model repository) to the other machines over the cluster's SSH,
and check its hash there."""

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_dir_copy
short_description: Give every machine the same directory when there is no shared filesystem
description:
  - Runs on the launcher, after a stage wrote the directory there (the engine stage's engine, the serving
    stage's model repositories). For each peer it compares the directory's manifest (every file's relative path and sha256) with the launcher's, over the
    cluster's own SSH (the same account, key and pinned host keys mpirun uses); a peer whose copy differs or
    is missing gets the launcher's copy (a tar stream over that SSH, unpacked beside the target and moved
    into place), and its manifest is checked again.
  - A differing copy on a peer is moved aside (C(<path>.replaced-<time>)), never deleted.
  - Changes nothing where every peer already has the same content (C(changed=false)); check mode compares
    and reports what would be copied.
author: mpi-trt-ansible
version_added: "1.0.0"
options:
  path:
    description: The directory, the same path on every machine.
    type: path
    required: true
  what:
    description: What the directory is, for messages (V(engine), V(model repository)).
    type: str
    default: directory
  peers:
    description: The other machines, by the names the cluster's ssh configuration knows (the hostfile names).
    type: list
    elements: str
    required: true
  timeout_s:
    description: Bound on each peer's comparison and copy, in seconds.
    type: int
    default: 3600
"""

EXAMPLES = r"""
- name: Copy the engine to the other machines and check its hash there
  cluster_dir_copy:
    path: /data/TRTDir/engines/llama-float16-tp16-pp1
    what: engine
    peers: [gpu02]
"""

RETURN = r"""
mtrt_kind:
  description: Always C(cluster_dir_copy); lets the run report file this result.
  returned: always
  type: str
manifest_sha256:
  description: sha256 of the launcher's manifest (one line per file, its sha256 and relative path).
  returned: always
  type: str
peers:
  description: One entry per peer, C({peer, action, seconds, cause}); C(action) is V(same), V(copied),
    V(would_copy) (check mode) or V(failed).
  returned: always
  type: list
  elements: dict
"""

import hashlib
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_proc import run_bounded, tail

KIND = "cluster_dir_copy"
# One line per regular file, sorted by path: '<sha256>  ./<relative path>'; a missing directory says so.
MANIFEST = ("if [ -d %(d)s ]; then cd %(d)s && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; "
            "else echo MTRT-NO-DIRECTORY; fi")
MISSING = "MTRT-NO-DIRECTORY\n"


def manifest_command(path):
    return MANIFEST % {"d": shlex.quote(path)}


def unpack_command(path, stamp):
    """Unpack the tar stream beside the directory and move it into place; a differing copy goes aside."""
    d = shlex.quote(path)
    t = shlex.quote(path + ".mtrt-copy")
    old = shlex.quote("%s.replaced-%s" % (path, stamp))
    return ("set -e; rm -rf %(t)s; mkdir -p %(t)s; tar -C %(t)s -xf -; "
            "if [ -e %(d)s ]; then mv %(d)s %(old)s; fi; mv %(t)s %(d)s" % {"t": t, "d": d, "old": old})


def ssh_argv(peer, command):
    """The cluster's own ssh (its configuration, key and pinned host keys), never prompting."""
    return ["ssh", "-o", "BatchMode=yes", peer, command]


def _manifest(peer, path, timeout_s):
    run = run_bounded(ssh_argv(peer, manifest_command(path)), timeout_s)
    if run["timed_out"]:
        return None, "its manifest took longer than %ds" % timeout_s
    if run["rc"] != 0:
        return None, "ssh %s failed (rc %s): %s" % (peer, run["rc"], tail(run["stderr"], 3) or "no output")
    return run["stdout"], None


def _copy(peer, path, timeout_s):
    stamp = time.strftime("%Y%m%dT%H%M%S")
    tar = subprocess.Popen(["tar", "-C", path, "-cf", "-", "."], stdout=subprocess.PIPE)
    try:
        ssh = subprocess.run(ssh_argv(peer, unpack_command(path, stamp)), stdin=tar.stdout,
                             capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        tar.kill()
        return "copying took longer than %ds" % timeout_s
    finally:
        tar.stdout.close()
        tar.wait()
    if tar.returncode != 0 or ssh.returncode != 0:
        return "copy to %s failed (tar rc %s, ssh rc %s): %s" % (peer, tar.returncode, ssh.returncode,
                                                                 tail(ssh.stderr, 3) or "no output")
    return None


def sync_peer(peer, path, want, timeout_s, check_mode):
    started = time.monotonic()
    have, cause = _manifest(peer, path, timeout_s)
    entry = {"peer": peer, "action": "same", "cause": None}
    if cause is None and have != want:
        if check_mode:
            entry["action"] = "would_copy"
        else:
            cause = _copy(peer, path, timeout_s)
            if cause is None:
                have, cause = _manifest(peer, path, timeout_s)
                if cause is None and have != want:
                    cause = "the copy on %s still differs from the launcher's after copying" % peer
            entry["action"] = "copied"
    if cause is not None:
        entry.update(action="failed", cause=cause)
    entry["seconds"] = round(time.monotonic() - started, 3)
    return entry


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True),
                           what=dict(type="str", default="directory"),
                           peers=dict(type="list", elements="str", required=True),
                           timeout_s=dict(type="int", default=3600)),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(mtrt_kind=KIND, changed=False, manifest_sha256="", peers=[])
    local = run_bounded(["sh", "-c", manifest_command(p["path"])], p["timeout_s"])
    if local["rc"] != 0 or local["stdout"] in ("", MISSING):
        module.fail_json(msg="the launcher has no %s at %s to copy (%s); run the stage that writes it there first"
                         % (p["what"], p["path"], tail(local["stderr"], 3) or "no files"), **result)
    want = local["stdout"]
    result["manifest_sha256"] = hashlib.sha256(want.encode()).hexdigest()
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(p["peers"])))) as pool:
        result["peers"] = list(pool.map(lambda peer: sync_peer(peer, p["path"], want, p["timeout_s"],
                                                               module.check_mode), p["peers"]))
    result["changed"] = any(e["action"] in ("copied", "would_copy") for e in result["peers"])
    failed = [e for e in result["peers"] if e["action"] == "failed"]
    if failed:
        module.fail_json(msg="the %s %s could not be given to every machine: %s" % (
            p["what"], p["path"], "; ".join("%s: %s" % (e["peer"], e["cause"]) for e in failed)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
