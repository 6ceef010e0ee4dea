# SPDX-License-Identifier: Apache-2.0
"""Small Markdown pieces the report's sections are made of (lists of lines, each block ending blank)."""

from __future__ import annotations

import json

from mpi_trt_ansible.rules import ranges

CELL_MAX = 300


def cell(value, limit=CELL_MAX):
    """One table cell: escaped pipes, no line breaks, cut at ``limit`` characters."""
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def lines_cell(lines, limit=160):
    """Several lines in one cell, each as code, joined by ``<br>``."""
    return "<br>".join(code(str(line)[:limit]).replace("|", "\\|") for line in lines or [] if str(line).strip())


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(v if isinstance(v, _Raw) else cell(v) for v in row) + " |" for row in rows]
    return out + [""]


class _Raw(str):
    """A cell already formatted (not escaped again)."""


def raw(text):
    return _Raw(text)


def fence(text):
    text = "" if text is None else str(text)
    return ["```text", text.replace("```", "'''"), "```"]


def code(value):
    """``value`` as inline code (JSON for non-strings), one line."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return "`%s`" % text.replace("`", "'").replace("\n", " ")


def size(n):
    """Bytes as a short power-of-two size: ``16 B``, ``4 KiB``, ``64 MiB``."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "" if n is None else str(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if n == int(n) else ("%.1f %s" % (n, unit))
        n = n / 1024.0
    return str(n)


def yes(value):
    return {True: "yes", False: "no"}.get(value, "" if value is None else str(value))


def bullets(label, items):
    """``- label: item`` lines (and a blank line) for a non-empty list."""
    out = []
    for item in items or []:
        if isinstance(item, dict):
            text = item.get("message") or json.dumps(item, default=str)
            if item.get("fix"):
                text += " Fix: %s" % item["fix"]
        else:
            text = str(item)
        out.append("- %s: %s" % (label, text))
    return out + [""] if out else []


def rank_ranges(ranks):
    """``[0, 1, 3]`` -> ``'0-1, 3'`` (ranks as ints, in order)."""
    numbers = sorted({int(r) for r in ranks or [] if str(r).lstrip("-").isdigit()})
    return ranges(numbers) if numbers else ""

