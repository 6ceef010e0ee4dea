# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Small file helpers shared by the controller-side actions and the docker-host modules.

Plain Python (no Ansible imports): ``atomic_write`` never leaves a half-written file where a
reader (an entrypoint, ssh) could see it, ``sha256_of`` fingerprints a file that may be missing, and
``file_diff`` is what ``--diff`` shows of a file that changes (never a secret's content).
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


# ansible-core's default MAX_FILE_SIZE_FOR_DIFF: larger content is not shown in a diff.
MAX_DIFF_BYTES = 104448
_SECRET_MARKS = (b"PRIVATE KEY-----",)


def _shown(data, show, changed):
    """The text a diff may show of ``data`` (bytes; None: the file is absent)."""
    if data is None:
        return ""
    if not show:
        return "(content not shown%s)\n" % (": it changes" if changed else "")
    if len(data) > MAX_DIFF_BYTES:
        return "(content not shown: %d bytes, sha256 %s)\n" % (len(data), hashlib.sha256(data).hexdigest())
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "(binary content not shown: %d bytes, sha256 %s)\n" % (len(data), hashlib.sha256(data).hexdigest())


def _attrs(mode, owner):
    parts = (["mode %04o" % mode] if mode is not None else []) + (["owner %s" % owner] if owner else [])
    return " (%s)" % ", ".join(parts) if parts else ""


def file_diff(path, before, after, before_mode=None, mode=None, before_owner=None, owner=None, show=True):
    """What ``--diff`` shows of one file, in the form the template module returns (``before_header``,
    ``after_header``, ``before``, ``after``).

    ``before``: the bytes on disk now (None: absent), ``after``: the bytes to write. Mode and owner
    appear in the headers where they change. With ``show`` false, and where either side holds a private
    key, both sides' content is replaced by a note saying whether it changes (no content, no hash).
    """
    headers = ["%s (absent)" % path if before is None else path, path]
    if before is not None and (before_mode, before_owner) != (mode, owner):
        if before_mode == mode:
            before_mode = mode = None
        if before_owner == owner:
            before_owner = owner = None
        headers = [headers[0] + _attrs(before_mode, before_owner), headers[1] + _attrs(mode, owner)]
    hide = not show or any(mark in data for data in (before, after) if data for mark in _SECRET_MARKS)
    return {"before_header": headers[0], "after_header": headers[1],
            "before": _shown(before, not hide, False),
            "after": _shown(after, not hide, before is not None and before != after)}
