# SPDX-License-Identifier: Apache-2.0
"""Report dict in, Markdown out (report.md, for a person).

Order: how the run ended (and, when it was cut short, what was running and what was
stopped), the cluster, the stages, the failures with their explained causes and the
ranks that did not answer, the failures a rescue healed, one section per project module
result (:mod:`.kinds`, one renderer per ``mtrt_kind``), the hosts.
"""

from __future__ import annotations

import json

from .builder import COUNT_KEYS, HOST_STAT_KEYS, iter_results, seconds_between
from .kinds import RENDERERS
from .kinds.cluster import cluster_sentence
from .kinds.launch import diagnosis_table, explained_table, nodes_cell, render_launch
from .mdtext import cell, code, table

MESSAGE_CELL = 500


def render_generic(data, where=None):
    """A kind without a renderer: its keys and values, one line each."""
    lines = []
    for key, value in data.items():
        if key in ("mtrt_kind", "changed", "failed"):
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > 300:
            text = text[:300] + "..."
        lines.append("- **%s**: %s" % (key, code(text)))
    return lines + [""]


def _interrupted(report):
    info = report.get("interrupted")
    if not info:
        return []
    lines = ["## Interrupted", "",
             "The run was %s at %s. Re-running the same command converges from here: every stage brings "
             "its part to its spec again (a node container that was being created is created or started "
             "then)." % (info.get("status"), info.get("at")), ""]
    flight = info.get("in_flight") or []
    if flight:
        lines += ["Running when it stopped:", ""]
        lines += table(["Stage", "Host", "Task", "Running for (s)"],
                       [[f.get("stage"), f.get("host"), f.get("task"), seconds_between(f.get("started_at"),
                                                                                     info.get("at"))]
                        for f in flight])
    else:
        lines += ["No task was running.", ""]
    cleanup = info.get("cleanup") or []
    rows = []
    for entry in cleanup:
        launches = entry.get("launches") or []
        if entry.get("error"):
            rows.append([entry.get("host"), entry.get("via"), "-", "NOT CHECKED: %s" % entry["error"]])
        elif not launches:
            rows.append([entry.get("host"), entry.get("via"), "none running", "nothing to stop"])
        for launch in launches:
            rows.append([entry.get("host"), entry.get("via"), "%s (pid %s)" % (launch.get("kind"), launch.get("pid")),
                         _stop_outcome(launch)])
    if rows:
        lines += ["Launches of this run on those hosts (found by their pid files, stopped by pid, never by name):", ""]
        lines += table(["Host", "Via", "Launch", "Outcome"], rows)
    return lines


def _stop_outcome(launch):
    if launch.get("left_running"):
        return "STILL RUNNING: pids %s" % ", ".join(map(str, launch["left_running"]))
    if launch.get("skipped"):
        return "left alone: %s" % launch["skipped"]
    if not launch.get("was_running"):
        return "had already ended"
    text = "stopped (%d process%s)" % (len(launch.get("stopped") or []) or 1,
                                       "" if len(launch.get("stopped") or []) <= 1 else "es")
    if launch.get("nodes"):
        text += "; on its nodes: %s" % nodes_cell(launch["nodes"])
    return text


def _failures(report):
    failures = report.get("failures") or []
    if not failures:
        return []
    lines = ["## Failures", ""]
    rows = []
    for i, f in enumerate(failures):
        message = f.get("message") or ""
        if len(message) > MESSAGE_CELL:
            message = message[:MESSAGE_CELL - 3] + "... (whole message: `failures[%d].message` in report.json)" % i
        rows.append((f["stage"], f["host"], f["task"], message))
    lines += table(["Stage", "Host", "Task", "Message"], rows)
    for f in failures:
        if not (f.get("explained") or f.get("diagnosis")):
            continue
        lines += ["### %s on %s: %s" % (f["stage"], f["host"], f["task"]), ""]
        if f.get("explained"):
            lines += explained_table(f["explained"])
        if f.get("diagnosis"):
            lines += diagnosis_table(f["diagnosis"])
    return lines


def _rescued(report):
    if not report.get("rescued"):
        return []
    lines = ["## Healed / rescued", "",
             "Failed inside a block whose `rescue` section then ran; Ansible counts these as rescued, "
             "not failed.", ""]
    return lines + table(["Stage", "Host", "Task", "Message"],
                         [(f["stage"], f["host"], f["task"], cell(f["message"], MESSAGE_CELL))
                          for f in report["rescued"]])


def render_markdown(report):
    """The report for a person (see the module docstring for the order)."""
    run = report.get("run") or {}
    lines = ["# Run report: %s - %s" % (run.get("playbook") or "?", run.get("status")), "",
             "Started %s, ended %s, %s s." % (run.get("started_at"), run.get("ended_at"),
                                              run.get("duration_s")), ""]
    lines += _interrupted(report)
    for _stage, _host, entry in iter_results(report, "run_summary"):
        lines += [cluster_sentence(entry["result"].get("cluster") or {}), ""]
    lines += ["## Stages", ""]
    rows = [(s.get("number") or "", s["key"], s.get("status"), s.get("tasks_run"))
            + tuple((s.get("counts") or {}).get(k, 0) for k in COUNT_KEYS) + (s.get("duration_s"),)
            for s in report.get("stages") or []]
    lines += table(["#", "Stage", "Status", "Tasks"] + list(COUNT_KEYS) + ["Time (s)"], rows)
    lines += _failures(report) + _rescued(report)
    detailed = {(f["stage"], f["host"], f["task"]) for f in report.get("failures") or []
                if f.get("explained") or f.get("diagnosis")}
    index = {}
    for stage, host, entry in iter_results(report):
        if entry["kind"] == "run_summary":
            continue
        n = index[(stage, host)] = index.get((stage, host), -1) + 1
        title, render = RENDERERS.get(entry["kind"], (entry["kind"], render_generic))
        lines += ["## %s: %s on %s" % (title, stage, host), "",
                  "Task: %s (%s)" % (entry["task"], entry["status"]), ""]
        lines += render(entry["result"], "results.%s.%s[%d].result" % (stage, host, n))
        lines += render_launch(entry["result"], shown_above=(stage, host, entry["task"]) in detailed)
    if report.get("hosts"):
        keys = list(HOST_STAT_KEYS.values())
        lines += ["## Hosts", ""]
        lines += table(["Host"] + keys, [[h] + [s.get(k, 0) for k in keys]
                                         for h, s in sorted(report["hosts"].items())])
    return "\n".join(lines).rstrip("\n") + "\n"
