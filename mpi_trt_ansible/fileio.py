# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Small file helpers shared by the controller-side actions and the docker-host modules.

Plain Python (no Ansible imports): ``atomic_write`` never leaves a half-written file where a
reader (an entrypoint, ssh) could see it, and ``sha256_of`` fingerprints a file that may be missing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile


def atomic_write(path, data, mode):
    """Write ``data`` (bytes) to ``path`` with ``mode`` through a temporary file in the same directory."""
    fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise


def sha256_of(path):
    """Hex sha256 of a file's content; None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        return None
