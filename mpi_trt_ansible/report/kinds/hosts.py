# SPDX-License-Identifier: Apache-2.0
"""Sections of a cluster on several machines: the preflight across hosts (its versions table)."""

from __future__ import annotations

from ..mdtext import bullets
from . import renderer


@renderer("hosts_preflight", title="Preflight across hosts")
def hosts_preflight(data, where=None):
    """The machines compared, the versions every one runs (a table) and every problem with its host."""
    problems = data.get("problems") or []
    lines = ["Preflight across %d machine(s) (%s mode) %s." % (
        len(data.get("machines") or []), data.get("mode"),
        "OK: no problems" if data.get("ok") and not problems else "found %d problem(s)" % len(problems)), ""]
    if data.get("versions_table"):
        lines += ["Versions per machine:", "", data["versions_table"], ""]
    return lines + bullets("Problem", problems)
