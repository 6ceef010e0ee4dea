#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Copy the launcher's engine to the other machines over the cluster's SSH, and check its hash there."""

from __future__ import annotations

DOCUMENTATION = r"""
module: trtllm_engine_copy
short_description: Give every machine the same engine when there is no shared filesystem
description:
  - Runs on the launcher, after the engine stage built or found the engine there. For each peer it compares
    the engine directory's manifest (every file's relative path and sha256) with the launcher's, over the
    cluster's own SSH (the same account, key and pinned host keys mpirun uses); a peer whose copy differs or
    is missing gets the launcher's engine (a tar stream over that SSH, unpacked beside the target and moved
    into place), and its manifest is checked again.
  - A differing copy on a peer is moved aside (C(<engine_dir>.replaced-<time>)), never deleted.
  - Changes nothing where every peer already has the same engine (C(changed=false)); check mode compares
    and reports what would be copied.
author: mpi-trt-ansible
version_added: "1.0.0"
options:
  engine_dir:
    description: The engine directory, the same path on every machine.
    type: path
    required: true
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
  trtllm_engine_copy:
    engine_dir: /data/TRTDir/engines/llama-float16-tp16-pp1
    peers: [gpu02]
"""

RETURN = r"""
mtrt_kind:
  description: Always C(trtllm_engine_copy); lets the run report file this result.
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

KIND = "trtllm_engine_copy"
# One line per regular file, sorted by path: '<sha256>  ./<relative path>'; a missing directory says so.
MANIFEST = ("if [ -d %(d)s ]; then cd %(d)s && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; "
            "else echo MTRT-NO-ENGINE; fi")
MISSING = "MTRT-NO-ENGINE\n"


def manifest_command(engine_dir):
    return MANIFEST % {"d": shlex.quote(engine_dir)}


def unpack_command(engine_dir, stamp):
    """Unpack the tar stream beside the engine and move it into place; a differing copy goes aside."""
    d = shlex.quote(engine_dir)
    t = shlex.quote(engine_dir + ".mtrt-copy")
    old = shlex.quote("%s.replaced-%s" % (engine_dir, stamp))
    return ("set -e; rm -rf %(t)s; mkdir -p %(t)s; tar -C %(t)s -xf -; "
            "if [ -e %(d)s ]; then mv %(d)s %(old)s; fi; mv %(t)s %(d)s" % {"t": t, "d": d, "old": old})


def ssh_argv(peer, command):
    """The cluster's own ssh (its configuration, key and pinned host keys), never prompting."""
    return ["ssh", "-o", "BatchMode=yes", peer, command]


def _manifest(peer, engine_dir, timeout_s):
    run = run_bounded(ssh_argv(peer, manifest_command(engine_dir)), timeout_s)
    if run["timed_out"]:
        return None, "its manifest took longer than %ds" % timeout_s
    if run["rc"] != 0:
        return None, "ssh %s failed (rc %s): %s" % (peer, run["rc"], tail(run["stderr"], 3) or "no output")
    return run["stdout"], None


def _copy(peer, engine_dir, timeout_s):
    stamp = time.strftime("%Y%m%dT%H%M%S")
    tar = subprocess.Popen(["tar", "-C", engine_dir, "-cf", "-", "."], stdout=subprocess.PIPE)
    try:
        ssh = subprocess.run(ssh_argv(peer, unpack_command(engine_dir, stamp)), stdin=tar.stdout,
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


def sync_peer(peer, engine_dir, want, timeout_s, check_mode):
    started = time.monotonic()
    have, cause = _manifest(peer, engine_dir, timeout_s)
    entry = {"peer": peer, "action": "same", "cause": None}
    if cause is None and have != want:
        if check_mode:
            entry["action"] = "would_copy"
        else:
            cause = _copy(peer, engine_dir, timeout_s)
            if cause is None:
                have, cause = _manifest(peer, engine_dir, timeout_s)
                if cause is None and have != want:
                    cause = "the copy on %s still differs from the launcher's after copying" % peer
            entry["action"] = "copied"
    if cause is not None:
        entry.update(action="failed", cause=cause)
    entry["seconds"] = round(time.monotonic() - started, 3)
    return entry


def main():
    module = AnsibleModule(
        argument_spec=dict(engine_dir=dict(type="path", required=True),
                           peers=dict(type="list", elements="str", required=True),
                           timeout_s=dict(type="int", default=3600)),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(mtrt_kind=KIND, changed=False, manifest_sha256="", peers=[])
    local = run_bounded(["sh", "-c", manifest_command(p["engine_dir"])], p["timeout_s"])
    if local["rc"] != 0 or local["stdout"] in ("", MISSING):
        module.fail_json(msg="the launcher has no engine at %s to copy (%s); run the engine stage there first"
                         % (p["engine_dir"], tail(local["stderr"], 3) or "no files"), **result)
    want = local["stdout"]
    result["manifest_sha256"] = hashlib.sha256(want.encode()).hexdigest()
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(p["peers"])))) as pool:
        result["peers"] = list(pool.map(lambda peer: sync_peer(peer, p["engine_dir"], want, p["timeout_s"],
                                                               module.check_mode), p["peers"]))
    result["changed"] = any(e["action"] in ("copied", "would_copy") for e in result["peers"])
    failed = [e for e in result["peers"] if e["action"] == "failed"]
    if failed:
        module.fail_json(msg="the engine %s could not be given to every machine: %s" % (
            p["engine_dir"], "; ".join("%s: %s" % (e["peer"], e["cause"]) for e in failed)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
