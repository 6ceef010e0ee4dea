# SPDX-License-Identifier: Apache-2.0
"""Report files: ``<base>/<run id>/report.{json,md}`` and the ``<base>/latest`` link."""

from __future__ import annotations

import datetime
import json
import os

from .markdown import render_markdown

LATEST = "latest"


def default_run_id():
    """A sortable, unique-enough directory name for one run."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return "%s-%d" % (stamp, os.getpid())


def _write_atomic(path, text):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


def write_report(report, base_dir, run_id=None):
    """Write ``<base_dir>/<run_id>/report.{json,md}``; point ``<base_dir>/latest`` at it.

    Returns ``(json_path, md_path)``. ``latest`` is a relative symlink, replaced
    atomically, so it always names a complete report.
    """
    run_id = run_id or default_run_id()
    if os.sep in run_id or run_id in ("", ".", "..", LATEST):
        raise ValueError("bad run id %r" % run_id)
    run_dir = os.path.join(base_dir, run_id)
    os.makedirs(run_dir, exist_ok=True)
    json_path = os.path.join(run_dir, "report.json")
    md_path = os.path.join(run_dir, "report.md")
    _write_atomic(json_path, json.dumps(report, indent=2, default=str) + "\n")
    _write_atomic(md_path, render_markdown(report))
    link = os.path.join(base_dir, LATEST)
    tmp_link = "%s.tmp-%d" % (link, os.getpid())
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(run_id, tmp_link)
    os.replace(tmp_link, link)
    return json_path, md_path


def read_latest(base_dir):
    """The report ``<base_dir>/latest`` names, as a dict, or None when there is none."""
    path = os.path.join(os.path.expanduser(str(base_dir)), LATEST, "report.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
