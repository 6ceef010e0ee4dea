# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Make sure a set of ed25519 SSH key pairs exists on the controller, in one step.

The cluster needs one user key and one host key per node, all kept on the controller and
mounted read-only into the nodes. One ``community.crypto.openssh_keypair`` task per key costs a
module run each (about 0.4 s here, one node after the other in a loop); this action does the same
job inside the controller process with the same library (``cryptography``): a pair that is there
and valid is left alone, a missing public half is derived again from its private key, a missing or
unreadable private key gets a new pair. Files are written atomically with mode 0600 in 0700
directories. It supports check mode and refuses to run anywhere but on the controller.
"""

from __future__ import annotations

import os
import stat

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from mpi_trt_ansible.fileio import atomic_write

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - ansible-core itself depends on cryptography
    HAS_CRYPTOGRAPHY = False

DOCUMENTATION = r"""
action: ssh_keys
short_description: Make sure ed25519 SSH key pairs exist on the controller (one task for all)
description:
  - For each key, C(<dir>/<path>) (private, OpenSSH format, no passphrase) and C(<path>.pub).
  - A valid pair is kept as it is (an existing cluster keeps its identities); a missing or different
    public key is written again from the private key; a missing or unreadable private key is replaced
    by a new pair. Modes are 0600 for both halves and 0700 for the directories.
options:
  dir: {description: Directory the key paths are relative to (created 0700 when missing)., type: path, required: true}
  keys:
    description: Keys to ensure, as path (relative to O(dir)) to comment.
    type: dict
    required: true
"""

RETURN = r"""
keys:
  description: One entry per key.
  returned: always
  type: list
  elements: dict
  sample: [{path: /state/hostkeys/node1_ed25519, action: generated, public_key: "ssh-ed25519 AAAA... node1"}]
  contains:
    action: {description: "kept, generated, replaced (unreadable private key), public_key_written or mode_fixed.", type: str}
counts:
  description: Number of keys per action.
  returned: always
  type: dict
"""

_LOCAL = ("local", "ansible.builtin.local")
_MODE = 0o600
_DIR_MODE = 0o700


def _write(path, data):
    atomic_write(path, data, _MODE)


def _public_line(key, comment):
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return pub + (b" " + comment.encode() if comment else b"") + b"\n"


def _load_private(path):
    try:
        with open(path, "rb") as handle:
            key = serialization.load_ssh_private_key(handle.read(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, Ed25519PrivateKey) else None


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def ensure_key(path, comment, check_mode):
    """Bring one pair to the contract; returns (action, public key line)."""
    key = _load_private(path) if os.path.exists(path) else None
    if key is None:
        action = "replaced" if os.path.exists(path) else "generated"
        key = Ed25519PrivateKey.generate()
        public = _public_line(key, comment)
        if not check_mode:
            _write(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
            _write(path + ".pub", public)
        return action, public
    public = _public_line(key, comment)
    current = _read(path + ".pub")
    # The comment is informational: compare the key material only.
    if current is None or current.split()[:2] != public.split()[:2]:
        if not check_mode:
            _write(path + ".pub", public)
        return "public_key_written", public
    if any(stat.S_IMODE(os.stat(p).st_mode) != _MODE for p in (path, path + ".pub")):
        if not check_mode:
            for p in (path, path + ".pub"):
                os.chmod(p, _MODE)
        return "mode_fixed", current
    return "kept", current


def _ensure_dir(path, check_mode):
    if not os.path.isdir(path):
        if not check_mode:
            os.makedirs(path, mode=_DIR_MODE, exist_ok=True)
            os.chmod(path, _DIR_MODE)
        return True
    if stat.S_IMODE(os.stat(path).st_mode) != _DIR_MODE:
        if not check_mode:
            os.chmod(path, _DIR_MODE)
        return True
    return False


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "keys"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self._connection.transport not in _LOCAL:
            raise AnsibleActionFail("ssh_keys writes controller-side files: delegate it to localhost")
        if not HAS_CRYPTOGRAPHY:
            raise AnsibleActionFail("ssh_keys needs the Python cryptography library on the controller")
        args = self._task.args
        base = args.get("dir")
        keys = args.get("keys")
        if not base or not isinstance(keys, dict):
            raise AnsibleActionFail("ssh_keys needs dir and keys (a dict of path to comment)")
        check = bool(self._task.check_mode)
        changed = _ensure_dir(base, check)
        entries, counts = [], {}
        for rel in sorted(keys):
            path = os.path.normpath(os.path.join(base, rel))
            if not path.startswith(os.path.normpath(base) + os.sep):
                raise AnsibleActionFail("ssh_keys: key path %s is outside %s" % (rel, base))
            changed = _ensure_dir(os.path.dirname(path), check) or changed
            action, public = ensure_key(path, str(keys[rel] or ""), check)
            changed = changed or action != "kept"
            counts[action] = counts.get(action, 0) + 1
            entries.append({"path": path, "action": action, "public_key": to_text(public).strip()})
        result.update(changed=changed, keys=entries, counts=counts)
        return result
