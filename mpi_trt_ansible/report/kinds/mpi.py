# SPDX-License-Identifier: Apache-2.0
"""Sections of the MPI stages: hello and collectives."""

from __future__ import annotations

from ..mdtext import bullets, size, table
from . import renderer


def launch_line(data):
    """``mpirun rc 0, 7.129 s`` (and ``timed out``) for a module that ran mpirun."""
    text = "mpirun rc %s, %s s" % (data.get("rc"), data.get("duration_s"))
    return text + (", timed out" if data.get("timed_out") else "")


def _ranks_by_host(data):
    by_host = {}
    for rank in data.get("ranks") or []:
        if isinstance(rank, dict):
            by_host.setdefault(str(rank.get("host")), []).append(rank.get("rank"))
    return by_host


@renderer("mpi_hello", title="MPI hello")
def mpi_hello(data, where=None):
    by_host = _ranks_by_host(data)
    per_host = data.get("ranks_per_host") or {h: len(r) for h, r in by_host.items()}
    missing = data.get("missing_ranks") or []
    lines = ["World size %s; ranks reported: %d; missing ranks: %s; %s s." % (
        data.get("world_size"), sum(per_host.values()),
        ", ".join(str(r) for r in missing) or "none", data.get("duration_s")), ""]
    lines += bullets("Problem", data.get("problems"))
    rows = [(h, n, ", ".join(str(r) for r in sorted(by_host.get(h, []), key=str)))
            for h, n in per_host.items()]
    return lines + (table(["Host", "Ranks", "Rank ids"], rows) if rows else [])


@renderer("mpi_collectives", title="Collectives")
def mpi_collectives(data, where=None):
    """One row per (collective, op): correct at all sizes, latency at the smallest, bandwidth at the largest."""
    rows = [r for r in data.get("results") or [] if isinstance(r, dict)]
    groups = {}
    for row in rows:
        groups.setdefault((row.get("collective"), row.get("op")), []).append(row)
    sizes = {(min(r.get("size_bytes") or 0 for r in g), max(r.get("size_bytes") or 0 for r in g))
             for g in groups.values()}
    lo_hi = sizes.pop() if len(sizes) == 1 else None
    hosts = data.get("hosts") or []
    library = (data.get("mpi_library") or "MPI library unknown").split(",")[0]
    shape = " x %d sizes, %s to %s" % (len({r.get("size_bytes") for r in rows}), size(lo_hi[0]),
                                      size(lo_hi[1])) if lo_hi else ""
    lines = ["World size %s%s; %s; %s; %d rows (%d collective/op pairs%s)." % (
        data.get("world_size"), " on %s" % ", ".join(sorted(set(map(str, hosts)))) if hosts else "",
        library, launch_line(data), len(rows), len(groups), shape), ""]
    lines += bullets("Problem", data.get("problems"))
    if lo_hi:
        header = ["Collective", "Op", "Correct", "Latency at %s (us)" % size(lo_hi[0]),
                  "Time at %s (us)" % size(lo_hi[1]), "Alg bw (GB/s)", "Bus bw (GB/s)"]
    else:
        header = ["Collective", "Op", "Correct", "Smallest", "Latency (us)", "Largest", "Time (us)",
                  "Alg bw (GB/s)", "Bus bw (GB/s)"]
    body = []
    for (coll, op), group in groups.items():
        small = min(group, key=lambda r: r.get("size_bytes") or 0)
        large = max(group, key=lambda r: r.get("size_bytes") or 0)
        bad = sum(1 for r in group if r.get("correct") is not True)
        correct = ("yes (%d size%s)" % (len(group), "" if len(group) == 1 else "s") if not bad
                   else "NO: %d of %d sizes wrong" % (bad, len(group)))
        row = [coll, op or "", correct]
        row += [small.get("time_us")] if lo_hi else [size(small.get("size_bytes")), small.get("time_us"),
                                                      size(large.get("size_bytes"))]
        row += [large.get("time_us"), large.get("algbw_gbps"), large.get("busbw_gbps")]
        body.append(row)
    if body:
        lines += table(header, body)
    failures = data.get("failures") or []
    if failures:
        lines += ["Wrong values (%d):" % len(failures), ""]
        keys = ("collective", "op", "size_bytes", "rank", "host", "index", "expected", "got")
        lines += table(["Collective", "Op", "Size (B)", "Rank", "Host", "Index", "Expected", "Got"],
                       [[f.get(k) for k in keys] for f in failures if isinstance(f, dict)])
    if rows:
        lines += ["Every row (collective, op, size, time, bandwidths, correctness): `%s.results` in report.json."
                  % (where or "result"), ""]
    return lines
