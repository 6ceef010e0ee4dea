# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Parse what roles/mpi_collectives/files/mtrt_collectives.py prints.

Plain Python (no Ansible imports, no I/O). Rank 0 of the script prints one
line ``MTRT-COLLECTIVES {json}``; this turns it into the module's table rows,
finds the wrong values and words the failure message.
"""

from __future__ import annotations

import json

MARKER = "MTRT-COLLECTIVES "
COLLECTIVES = ("bcast", "scatter", "gather", "allgather", "reduce", "allreduce")
OPS = ("MAX", "MIN", "SUM", "PROD", "LAND", "LOR", "BAND", "BOR", "MAXLOC", "MINLOC")
ROW_KEYS = ("collective", "op", "size_bytes", "time_us", "algbw_gbps", "busbw_gbps", "correct")
_DOC_KEYS = ("world_size", "hosts", "rows", "failures")


class OutputError(ValueError):
    """The script's output is missing, malformed or from a broken launch."""


def find_marked_json(text, marker):
    """Every JSON object that follows ``marker`` on a line of ``text``.

    The marker may come after other text on the line (mpirun tags, NCCL
    log interleaving); a line whose JSON does not parse raises OutputError.
    """
    docs = []
    for lineno, line in enumerate((text or "").splitlines(), 1):
        at = line.find(marker)
        if at < 0:
            continue
        payload = line[at + len(marker):].strip()
        try:
            doc = json.loads(payload)
        except ValueError as exc:
            raise OutputError("line %d after %r is not JSON (%s): %.120s"
                              % (lineno, marker.strip(), exc, payload)) from None
        if not isinstance(doc, dict):
            raise OutputError("line %d after %r is JSON but not an object" % (lineno, marker.strip()))
        docs.append(doc)
    return docs


def single_document(text, marker, expected_world=None):
    """The one document rank 0 printed; OutputError names what went wrong."""
    docs = find_marked_json(text, marker)
    if not docs:
        raise OutputError("no %r line in the output: the script did not finish on rank 0 "
                          "(see the output tail)" % marker.strip())
    worlds = sorted({d.get("world_size") for d in docs}, key=str)
    if len(docs) > 1:
        raise OutputError(
            "%d processes each printed a %r line with world size %s: every rank ran as its own "
            "singleton; mpirun and mpi4py use different MPI libraries (check "
            "`python3 -c 'from mpi4py import MPI; print(MPI.Get_library_version())'` against "
            "`mpirun --version`)" % (len(docs), marker.strip(), "/".join(str(w) for w in worlds)))
    doc = docs[0]
    if expected_world is not None and doc.get("world_size") != expected_world:
        raise OutputError("the script saw world size %s, mpirun started %d ranks"
                          % (doc.get("world_size"), expected_world))
    return doc


def bus_factor(collective, n):
    """nccl-tests' bus-bandwidth factor: busbw = algbw * factor."""
    if n < 1:
        raise ValueError("world size must be >= 1, got %r" % (n,))
    if collective == "allreduce":
        return 2.0 * (n - 1) / n
    if collective in ("allgather", "gather", "scatter", "reducescatter"):
        return (n - 1) / float(n)
    return 1.0


def _num(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OutputError("%s is %r, not a number" % (what, value))
    return value


def table_rows(doc):
    """Rows with the stable keys; bandwidths recomputed from size and time."""
    n = _num(doc.get("world_size"), "world_size")
    rows = []
    for i, raw in enumerate(doc.get("rows") or []):
        if not isinstance(raw, dict) or raw.get("collective") not in COLLECTIVES:
            raise OutputError("row %d is not a collective row: %.120r" % (i, raw))
        if raw["collective"] in ("reduce", "allreduce") and raw.get("op") not in OPS:
            raise OutputError("row %d: %s with unknown op %r" % (i, raw["collective"], raw.get("op")))
        size = _num(raw.get("size_bytes"), "row %d size_bytes" % i)
        time_us = _num(raw.get("time_us"), "row %d time_us" % i)
        algbw = size / time_us / 1e3 if time_us > 0 else 0.0
        rows.append({
            "collective": raw["collective"], "op": raw.get("op"), "size_bytes": size,
            "time_us": time_us, "algbw_gbps": round(algbw, 6),
            "busbw_gbps": round(algbw * bus_factor(raw["collective"], n), 6),
            "correct": raw.get("correct") is True,
            "iters": raw.get("iters"), "time_min_us": raw.get("time_min_us"),
            "time_max_us": raw.get("time_max_us"), "bad_ranks": list(raw.get("bad_ranks") or []),
        })
    return rows


def largest_busbw(rows):
    """Collective (with op) -> busbw at its largest size, correct rows only."""
    best = {}
    for row in rows:
        key = row["collective"] + ("" if row["op"] is None else ":" + row["op"])
        if row["correct"] and row["size_bytes"] >= best.get(key, (-1, 0))[0]:
            best[key] = (row["size_bytes"], row["busbw_gbps"])
    return {k: {"size_bytes": s, "busbw_gbps": b} for k, (s, b) in sorted(best.items())}


def describe_failure(failure, hosts=None):
    """One sentence: collective, op, size, rank (host), element, expected vs got."""
    rank = failure.get("rank")
    host = failure.get("host") or (hosts[rank] if hosts and isinstance(rank, int)
                                   and 0 <= rank < len(hosts) else "?")
    what = failure.get("collective", "?") + (" %s" % failure["op"] if failure.get("op") else "")
    return "%s at %s B: rank %s (%s) got %s at element %s, expected %s" % (
        what, failure.get("size_bytes"), rank, host, json.dumps(failure.get("got")),
        failure.get("index"), json.dumps(failure.get("expected")))


def parse_collectives(text, expected_world=None):
    """Script stdout -> dict(world_size, hosts, results, failures, problems, ...)."""
    doc = single_document(text, MARKER, expected_world)
    missing = [k for k in _DOC_KEYS if k not in doc]
    if missing:
        raise OutputError("the collectives document lacks %s" % ", ".join(missing))
    rows = table_rows(doc)
    failures = [f for f in doc["failures"] if isinstance(f, dict)]
    problems = [describe_failure(f, doc["hosts"]) for f in failures]
    count = doc.get("failure_count", len(failures))
    if isinstance(count, int) and count > len(failures):
        problems.append("%d more wrong values not listed" % (count - len(failures)))
    flagged = [r for r in rows if not r["correct"]]
    if flagged and not failures:
        problems.append("%d rows marked wrong without details (first: %s %s at %s B)" % (
            len(flagged), flagged[0]["collective"], flagged[0]["op"] or "", flagged[0]["size_bytes"]))
    fault = doc.get("fault")
    if isinstance(fault, dict) and not fault.get("applied"):
        problems.append("fault %r was requested but no rank holding that result matched it"
                        % fault.get("spec"))
    return {
        "world_size": doc["world_size"], "hosts": list(doc["hosts"]),
        "mpi_library": doc.get("mpi_library"), "mpi4py": doc.get("mpi4py"),
        "sizes": doc.get("sizes") or sorted({r["size_bytes"] for r in rows}),
        "results": rows, "failures": failures, "failure_count": count,
        "largest_busbw": largest_busbw(rows), "fault": fault,
        "script_duration_s": doc.get("duration_s"), "problems": problems,
    }


def format_table(rows, ops=None):
    """Fixed-width text lines of the table (optionally only some ops)."""
    lines = ["%-9s %-6s %12s %12s %10s %10s %s" % (
        "coll", "op", "size_B", "time_us", "algbw_GBs", "busbw_GBs", "ok")]
    for row in rows:
        if ops is not None and row["op"] not in ops:
            continue
        lines.append("%-9s %-6s %12d %12.2f %10.3f %10.3f %s" % (
            row["collective"], row["op"] or "-", row["size_bytes"], row["time_us"],
            row["algbw_gbps"], row["busbw_gbps"], "yes" if row["correct"] else "NO"))
    return lines
