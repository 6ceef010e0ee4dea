# SPDX-License-Identifier: Apache-2.0
"""Preflight problems: each one names the variable (and its host), the value, what is wrong and the fix."""

from __future__ import annotations


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

    def add(self, variable, value, message, fix):
        self.problems.append({"variable": variable, "value": value, "message": message, "fix": fix})

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


def format_problems(problems):
    """One readable message listing every problem, numbered, each with its fix."""
    if not problems:
        return "Preflight found no problems."
    lines = ["Preflight found %d problem%s (nothing was changed):"
             % (len(problems), "" if len(problems) == 1 else "s")]
    for i, p in enumerate(problems, 1):
        lines.append("%2d. %s\n    Fix: %s" % (i, p["message"], p["fix"]))
    return "\n".join(lines)
