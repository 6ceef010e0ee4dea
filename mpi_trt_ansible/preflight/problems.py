# SPDX-License-Identifier: Apache-2.0
"""Preflight problems: each one names the variable (and its host), the value, what is wrong and the fix."""

from __future__ import annotations

import re

_SUFFIX_RE = re.compile(r"^\S+ \((?P<host>[^()]+)\)$")


class Problems:
    """Collects problems as ``{variable, value, message, fix}`` dicts, in the order they are found.

    ``names`` maps a check's key (``node.slots``) to the variable a user edits (``node_slots``).
    """

    def __init__(self, names=None):
        self.names = dict(names or {})
        self.problems = []

    def var(self, key, node=None):
        name = self.names.get(key, key)
        return "%s (%s)" % (name, node) if node is not None else name

    def add(self, variable, value, message, fix, host=None):
        problem = {"variable": variable, "value": value, "message": message, "fix": fix}
        if host is not None:
            problem["host"] = host
        self.problems.append(problem)

    def extend(self, problems):
        self.problems.extend(problems or [])

    def require(self, key, value, node=None):
        """Record a required value given as None; True when the value is set."""
        if value is not None:
            return True
        var = self.var(key, node)
        where = ("on host %s in the inventory" % node) if node is not None else "in the inventory (or with -e)"
        self.add(var, None, "%s is not set (None)." % var, "Set %s %s." % (self.names.get(key, key), where))
        return False


def with_host(problem, nodes, default="localhost"):
    """``problem`` with ``host``: the one it names already, else the host in its variable (``node_ip
    (node2)``), else the one node its message names, else ``default`` (the controller, where cluster-wide
    values and the docker host's facts are checked)."""
    if problem.get("host"):
        return problem
    match = _SUFFIX_RE.match(str(problem.get("variable") or ""))
    names = [str(n) for n in nodes if n is not None]
    if match and match.group("host") in names:
        return dict(problem, host=match.group("host"))
    named = [n for n in names if re.search(r"(?<![\w.-])%s(?![\w-])" % re.escape(n), str(problem.get("message")))]
    return dict(problem, host=named[0] if len(named) == 1 else default)


def format_problems(problems):
    """One readable message listing every problem, numbered, each with its fix."""
    if not problems:
        return "Preflight found no problems."
    lines = ["Preflight found %d problem%s (nothing was changed):"
             % (len(problems), "" if len(problems) == 1 else "s")]
    for i, p in enumerate(problems, 1):
        lines.append("%2d. %s\n    Fix: %s" % (i, p["message"], p["fix"]))
    return "\n".join(lines)
