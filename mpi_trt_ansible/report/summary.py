# SPDX-License-Identifier: Apache-2.0
"""The few console lines of a run: how it ended, the cluster, each stage, the hello, what went wrong.

The same lines serve stage 99 (the ``run_summary`` action prints them for the run so far)
and the end of the run (the ``run_report`` callback, which then prints only what stage 99
could not know yet).
"""

from __future__ import annotations

from .builder import iter_results
from .kinds.cluster import cluster_sentence
from .kinds.launch import node_state
from .kinds.serve import serving_outcome
from .kinds.serve import summary_line as serving_line
from .mdtext import rank_ranges


def first_line(message, limit=160):
    first = (message or "").strip().splitlines()[:1]
    return (first[0] if first else "")[:limit]


def _cluster(report, cluster):
    if cluster is None:
        found = [e["result"].get("cluster") for _s, _h, e in iter_results(report, "run_summary")]
        cluster = found[-1] if found else None
    return ["  " + cluster_sentence(cluster)] if cluster else []


def _interrupt_lines(report):
    info = report.get("interrupted")
    if not info:
        return []
    lines = []
    for f in info.get("in_flight") or []:
        lines.append("  %s during %s / %s on %s" % (info.get("status", "").upper(), f.get("stage"), f.get("task"),
                                                   f.get("host")))
    if not info.get("in_flight"):
        lines.append("  %s between tasks" % info.get("status", "").upper())
    for entry in info.get("cleanup") or []:
        if entry.get("error"):
            lines.append("  COULD NOT CHECK %s for running launches (%s): %s" % (
                entry.get("host"), entry.get("via"), first_line(entry["error"])))
            continue
        for launch in entry.get("launches") or []:
            if launch.get("left_running"):
                lines.append("  STILL RUNNING on %s: %s launch, pids %s" % (
                    entry.get("host"), launch.get("kind"), ", ".join(map(str, launch["left_running"]))))
            elif launch.get("was_running"):
                lines.append("  stopped on %s (%s): %s launch, pid %s" % (
                    entry.get("host"), entry.get("via"), launch.get("kind"), launch.get("pid")))
    return lines


def _failure_lines(failures, label):
    lines = []
    for f in failures:
        lines.append("  %s %s / %s: %s" % (label, f["host"], f["task"], first_line(f["message"])))
        for e in (f.get("explained") or [])[:2]:
            lines.append("    cause: %s; fix: %s" % (e.get("cause"), e.get("fix")))
        for d in (f.get("diagnosis") or [])[:4]:
            tail = [line for line in d.get("log_tail") or [] if str(line).strip()]
            lines.append("    rank(s) %s on %s: %s%s" % (rank_ranges(d.get("ranks")) or "-", d.get("host"),
                                                       node_state(d), "; last log: %s" % first_line(tail[-1], 100)
                                                       if tail else ""))
    return lines


def summary_lines(report, md_path=None, brief=False, cluster=None):
    """Console lines for ``report``.

    ``brief``: only the first line and what came after stage 99 (which printed the rest).
    ``cluster``: the cluster description when the report does not hold it yet (stage 99).
    """
    run = report.get("run") or {}
    if run.get("status") == "running":
        head = "MTRT run so far (%s s)" % run.get("duration_s")
    else:
        head = "MTRT run %s in %s s" % (run.get("status"), run.get("duration_s"))
    lines = [head + (" - report: %s" % md_path if md_path else "")]
    if brief:
        late = {s["key"] for s in report.get("stages") or [] if s["key"] in
                {stage for stage, _h, _e in iter_results(report, "run_summary")}}
        return (lines + _interrupt_lines(report)
                + _failure_lines([f for f in report.get("failures") or [] if f["stage"] in late], "FAILED"))
    lines += _cluster(report, cluster)
    for s in report.get("stages") or []:
        if s.get("status") == "running":  # the stage printing this
            continue
        c = s["counts"]
        lines.append("  %-3s %-18s %-11s ok=%d changed=%d failed=%d%s %ss" % (
            s.get("number") or "", s["key"], s.get("status"), c["ok"], c["changed"],
            c["failed"] + c["unreachable"], " rescued=%d" % c["rescued"] if c.get("rescued") else "",
            s.get("duration_s")))
    for _stage, host, entry in iter_results(report, "mpi_hello"):
        data = entry["result"]
        per_host = "".join(" %s=%s" % kv for kv in (data.get("ranks_per_host") or {}).items())
        lines.append("  hello on %s: world_size=%s%s missing=%s" % (
            host, data.get("world_size"), per_host, data.get("missing_ranks") or "none"))
    serving = serving_line(serving_outcome((e["kind"], e["result"]) for _s, _h, e in iter_results(report)))
    if serving:
        lines.append(serving)
    lines += _interrupt_lines(report)
    lines += _failure_lines(report.get("rescued") or [], "RESCUED")
    lines += _failure_lines(report.get("failures") or [], "FAILED")
    return lines
