# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Parse what an MPI hello-world printed into per-rank records.

Plain Python, text in and dict out. Two line forms are understood:

* the project's script: ``MTRT-HELLO {"rank": 0, "size": 4, "host": "node1", ...}``
* the notes' script:    ``Hello, World! I am process 0 of 4 on node1.``

Anything else on stdout is kept as ``other_lines`` (Open MPI warnings, a
user's prints); a line that starts like a hello record but does not parse is
``malformed_lines``, so a corrupted rank is reported instead of ignored.
"""

from __future__ import annotations

import json
import re

from ansible.module_utils.mtrt_rules import ranges

MARKER = "MTRT-HELLO "
_NOTES_RE = re.compile(r"^Hello, World! I am process (\d+) of (\d+) on (\S+?)\.?$")
_LOOKS_LIKE = ("MTRT-HELLO", "Hello, World!")


def _parse_line(line):
    if line.startswith(MARKER):
        record = json.loads(line[len(MARKER):])
        if not isinstance(record, dict):
            raise ValueError("record is not an object")
        for key in ("rank", "size", "host"):
            if key not in record:
                raise ValueError("record has no %r" % key)
        record["rank"] = int(record["rank"])
        record["size"] = int(record["size"])
        return record
    match = _NOTES_RE.match(line)
    if match:
        return {"rank": int(match.group(1)), "size": int(match.group(2)), "host": match.group(3)}
    raise ValueError("not a hello line")


def parse_hello(stdout, expected_np, expected_placement=None):
    """Return the hello run's ranks and every way it falls short.

    ``expected_placement`` maps rank -> host (Open MPI's by-slot default);
    when given, a rank on another host is reported in ``misplaced_ranks``.
    """
    ranks = {}
    duplicates, malformed, other = [], [], []
    for raw in stdout.splitlines():
        line = raw.strip()
        if not line:
            continue
        try:
            record = _parse_line(line)
        except (ValueError, TypeError) as exc:
            if line.startswith(_LOOKS_LIKE):
                malformed.append({"line": line[:300], "error": str(exc)})
            else:
                other.append(line[:300])
            continue
        if record["rank"] in ranks:
            duplicates.append(record["rank"])
            continue
        ranks[record["rank"]] = record

    expected = set(range(expected_np))
    missing = sorted(expected - set(ranks))
    unexpected = sorted(set(ranks) - expected)
    size_mismatch = sorted(r for r, rec in ranks.items() if rec["size"] != expected_np)
    misplaced = []
    if expected_placement:
        for rank, rec in sorted(ranks.items()):
            want = expected_placement.get(rank)
            if want is not None and rec["host"].split(".")[0] != want.split(".")[0]:
                misplaced.append({"rank": rank, "expected_host": want, "host": rec["host"]})

    per_host = {}
    for rec in ranks.values():
        per_host[rec["host"]] = per_host.get(rec["host"], 0) + 1

    problems = []
    if missing:
        where = ""
        if expected_placement:
            where = " (expected on %s)" % ", ".join(
                "rank %d on %s" % (r, expected_placement.get(r, "?")) for r in missing)
        problems.append("missing rank(s) %s of %d%s" % (ranges(missing), expected_np, where))
    if unexpected:
        problems.append("rank(s) %s answered but only %d were launched" % (ranges(unexpected), expected_np))
    if duplicates:
        problems.append("rank(s) %s answered more than once" % ranges(sorted(set(duplicates))))
    if size_mismatch:
        sizes = sorted({ranks[r]["size"] for r in size_mismatch})
        problems.append(
            "rank(s) %s saw a world size of %s instead of %d: they did not join one MPI job "
            "(mpirun and mpi4py built against different MPI libraries?)"
            % (ranges(size_mismatch), "/".join(map(str, sizes)), expected_np))
    for item in misplaced:
        problems.append("rank %(rank)d ran on %(host)s, expected %(expected_host)s" % item)
    if malformed:
        problems.append("%d malformed hello line(s), first: %r" % (len(malformed), malformed[0]["line"]))

    return {
        "world_size": len(ranks),
        "expected_world_size": expected_np,
        "ranks": [ranks[r] for r in sorted(ranks)],
        "ranks_per_host": dict(sorted(per_host.items())),
        "missing_ranks": missing,
        "unexpected_ranks": unexpected,
        "duplicate_ranks": sorted(set(duplicates)),
        "size_mismatch_ranks": size_mismatch,
        "misplaced_ranks": misplaced,
        "malformed_lines": malformed,
        "other_lines": other[-20:],
        "problems": problems,
        "ok": not problems,
    }

