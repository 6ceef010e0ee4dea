# -*- coding: utf-8 -*-
"""Run reports: events in, report dict out; report dict in, Markdown out.

Plain Python (no Ansible imports) shared by the ``run_report`` callback and
the ``mpi_trt_ansible`` API. Both feed :class:`ReportBuilder` the same event
shape, ansible-runner's: ``{"event": name, "created": iso8601,
"event_data": {...}}`` with the names ``playbook_on_start``,
``playbook_on_play_start``, ``playbook_on_task_start``, ``runner_on_ok``,
``runner_on_failed``, ``runner_on_skipped``, ``runner_on_unreachable`` and
``playbook_on_stats``; anything else is ignored. The callback builds these
dicts from its hooks; the API passes runner's events through unchanged.

A stage is a play in which at least one task started. Its key is the role of
its first task (``mpi_hello``), else the play name without its ``Stage NN -``
prefix, slugified (``summary``); its ``roles`` and (callback only: runner's
events carry none) ``tags`` are collected from its tasks.

The report (``report.json``), schema_version 1::

    run       {playbook, status, started_at, ended_at, duration_s}
    stages    [{key, name, number, roles, tags, status (ok|failed|canceled|timeout),
                started_at, ended_at, duration_s, tasks_run,
                counts {ok, changed, failed, skipped, unreachable, ignored},
                tasks [{name, action, role, duration_s, hosts {host: status}}]}]
    results   {stage: {host: [{task, kind, status, result}]}}   (mtrt_kind results)
    failures  [{stage, host, task, action, status (failed|unreachable), message}]
    hosts     {host: {ok, changed, failed, unreachable, skipped, rescued, ignored}}

Counts are per host and task; ``ok`` includes ``changed`` (as in Ansible's
recap). Secrets never reach a report: results censored by ``no_log`` are
dropped; ``_ansible_*`` keys, ``invocation`` and ``exception`` are removed;
every string is scrubbed of private-key blocks.
"""

from __future__ import annotations

import datetime
import json
import os
import re

SCHEMA_VERSION = 1
REDACTED = "<redacted private key>"
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
_STAGE_NAME = re.compile(r"^\s*Stage\s+(\d+)\s*[-:]\s*(.*)$", re.IGNORECASE)
_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
_COUNT_KEYS = ("ok", "changed", "failed", "skipped", "unreachable", "ignored")
_HOST_STAT_KEYS = {
    "ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
    "skipped": "skipped", "rescued": "rescued", "ignored": "ignored",
}
MESSAGE_MAX = 2000


# --- secrets -------------------------------------------------------------------

def scrub(value):
    """Return ``value`` with every private-key block in any string redacted."""
    if isinstance(value, str):
        return _PRIVATE_KEY.sub(REDACTED, value) if "PRIVATE KEY" in value else value
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def is_censored(res):
    """True for a result hidden by ``no_log`` (never to be reported)."""
    return isinstance(res, dict) and bool(res.get("censored") or res.get("_ansible_no_log"))


def clean_result(res):
    """A project module result fit for a report: no internals, no secrets."""
    return scrub({k: v for k, v in res.items()
                  if not k.startswith("_ansible") and k not in ("invocation", "exception")})


def mtrt_results(res):
    """The project module results (``mtrt_kind`` set) in ``res`` and its loop items."""
    if not isinstance(res, dict) or is_censored(res):
        return []
    if res.get("mtrt_kind"):
        return [clean_result(res)]
    found = []
    for item in res.get("results") or []:
        if isinstance(item, dict) and item.get("mtrt_kind") and not is_censored(item):
            found.append(clean_result(item))
    return found


def failure_message(res):
    """One readable, scrubbed message for a failed or unreachable result."""
    if not isinstance(res, dict):
        return ""
    if is_censored(res):
        return "output hidden (no_log)"
    msg = res.get("msg") or ""
    if not isinstance(msg, str):
        msg = json.dumps(msg, default=str)
    for item in res.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            label = item.get("item", item.get("ansible_loop_var", ""))
            msg = "item %s: %s" % (json.dumps(label, default=str), failure_message(item))
            break
    if not msg:
        msg = res.get("stderr") or res.get("stdout") or ""
    if res.get("timed_out") and "timed out" not in msg.lower():
        msg = (msg + " (timed out)").strip()
    msg = scrub(msg)
    return msg if len(msg) <= MESSAGE_MAX else "..." + msg[-MESSAGE_MAX:]


# --- events -> report ----------------------------------------------------------

def _parse_time(text):
    if not text:
        return None
    try:
        stamp = datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.timezone.utc)


def _seconds(start, end):
    a, b = _parse_time(start), _parse_time(end)
    return round((b - a).total_seconds(), 3) if a and b else None


def stage_key_from_name(name):
    """``"Stage 99 - Run summary"`` -> ``"run_summary"``."""
    match = _STAGE_NAME.match(name or "")
    text = match.group(2) if match else (name or "")
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "play"


def stage_number(name):
    """``"Stage 60 - MPI hello"`` -> ``"60"``; None when the name has no number."""
    match = _STAGE_NAME.match(name or "")
    return match.group(1) if match else None


def now_iso():
    """The current time as an ISO 8601 UTC string (the events' ``created``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class ReportBuilder:
    """Fold a run's events into a report.

    ``feed(event)`` returns the progress notes that event produced, in order:
    dicts with ``type`` ``stage_started`` / ``task_result`` / ``stage_finished``.
    ``finish(status)`` closes an open stage; ``report()`` returns the dict.
    """

    def __init__(self):
        self.playbooks = []
        self.started_at = None
        self.ended_at = None
        self.status = None
        self.stages = []
        self.results = {}
        self.failures = []
        self.hosts = {}
        self._play = None
        self._stage = None
        self._tasks = {}
        self._keys = set()

    # -- feeding
    def feed(self, event):
        """Take one runner-shaped event; return the progress notes it produced."""
        name = event.get("event")
        data = event.get("event_data") or {}
        created = event.get("created") or now_iso()
        self.started_at = self.started_at or created
        self.ended_at = created
        if name == "playbook_on_start":
            if data.get("playbook"):
                self.playbooks.append(data["playbook"])
            return []
        if name == "playbook_on_play_start":
            notes = self._close_stage(created)
            self._play = {"name": data.get("name") or data.get("play") or "", "created": created}
            return notes
        if name == "playbook_on_task_start":
            return self._task_start(data, created)
        if name in _RESULT_EVENTS:
            return self._result(_RESULT_EVENTS[name], data)
        if name == "playbook_on_stats":
            notes = self._close_stage(created)
            self._stats(data)
            return notes
        return []

    def _task_start(self, data, created):
        notes = []
        if self._stage is None and self._play is not None:
            play, role = self._play, data.get("role")
            key = role or stage_key_from_name(play["name"])
            base, n = key, 1
            while key in self._keys:
                n += 1
                key = "%s_%d" % (base, n)
            self._keys.add(key)
            self._stage = {
                "key": key, "name": play["name"], "number": stage_number(play["name"]),
                "roles": [], "tags": [], "status": "ok", "started_at": play["created"], "ended_at": None,
                "duration_s": None, "tasks_run": 0, "counts": dict.fromkeys(_COUNT_KEYS, 0),
                "tasks": [],
            }
            self.stages.append(self._stage)
            notes.append({"type": "stage_started", "stage": key, "name": play["name"],
                          "number": self._stage["number"], "started_at": play["created"]})
        if self._stage is None:
            return notes
        role = data.get("role")
        if role and role not in self._stage["roles"]:
            self._stage["roles"].append(role)
        for tag in data.get("tags") or []:  # only the callback knows tags; runner events lack them
            if tag != "always" and tag not in self._stage["tags"]:
                self._stage["tags"].append(tag)
        task = {"name": data.get("task") or data.get("name") or "", "action": data.get("task_action"),
                "role": role, "duration_s": None, "hosts": {}}
        self._tasks[data.get("task_uuid") or data.get("uuid")] = task
        self._stage["tasks"].append(task)
        self._stage["tasks_run"] += 1
        return notes

    def _result(self, status, data):
        stage = self._stage
        if stage is None:
            return []
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        host = data.get("host") or ""
        if status == "ok" and res.get("changed"):
            status = "changed"
        if status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        task = self._tasks.get(data.get("task_uuid"))
        if task is None:  # a result whose task start we never saw
            task = {"name": data.get("task") or "", "action": data.get("task_action"),
                    "role": data.get("role"), "duration_s": None, "hosts": {}}
            stage["tasks"].append(task)
        task["hosts"][host] = status
        duration = data.get("duration")
        if isinstance(duration, (int, float)):
            task["duration_s"] = round(max(task["duration_s"] or 0.0, float(duration)), 3)
        counts = stage["counts"]
        counts[status] += 1
        if status == "changed":
            counts["ok"] += 1
        message = None
        if status in ("failed", "unreachable"):
            stage["status"] = "failed"
            message = failure_message(res)
            self.failures.append({"stage": stage["key"], "host": host, "task": task["name"],
                                  "action": task["action"], "status": status, "message": message})
        found = mtrt_results(res)
        for item in found:
            entry = {"task": task["name"], "kind": item["mtrt_kind"], "status": status, "result": item}
            self.results.setdefault(stage["key"], {}).setdefault(host, []).append(entry)
        return [{"type": "task_result", "stage": stage["key"], "host": host, "task": task["name"],
                 "action": task["action"], "status": status, "changed": bool(res.get("changed")),
                 "duration_s": round(duration, 3) if isinstance(duration, (int, float)) else None,
                 "message": message, "mtrt": found}]

    def _stats(self, data):
        for host in data.get("processed") or {}:
            self.hosts.setdefault(host, dict.fromkeys(_HOST_STAT_KEYS.values(), 0))
        for src, dst in _HOST_STAT_KEYS.items():
            for host, count in (data.get(src) or {}).items():
                self.hosts.setdefault(host, dict.fromkeys(_HOST_STAT_KEYS.values(), 0))[dst] = count
        if self.status is None:
            failed = any(self.hosts.get(h, {}).get(k) for h in self.hosts for k in ("failed", "unreachable"))
            self.status = "failed" if failed else "successful"

    def _close_stage(self, created, status=None):
        stage, self._stage, self._tasks = self._stage, None, {}
        if stage is None:
            return []
        stage["ended_at"] = created
        stage["duration_s"] = _seconds(stage["started_at"], created)
        if status and stage["status"] != "failed":
            stage["status"] = status
        note = {"type": "stage_finished", "stage": stage["key"], "name": stage["name"],
                "status": stage["status"], "duration_s": stage["duration_s"]}
        note.update(stage["counts"])
        return [note]

    def finish(self, status=None):
        """End the run: close an open stage (as ``status`` when given) and fix the status."""
        notes = self._close_stage(self.ended_at or now_iso(), status)
        if status:
            self.status = status
        elif self.status is None:
            self.status = "failed" if self.failures else "successful"
        return notes

    # -- output
    def report(self):
        """The report dict (schema in the module docstring), scrubbed."""
        return scrub({
            "schema_version": SCHEMA_VERSION,
            "run": {
                "playbook": ", ".join(self.playbooks),
                "status": self.status or "running",
                "started_at": self.started_at,
                "ended_at": self.ended_at,
                "duration_s": _seconds(self.started_at, self.ended_at),
            },
            "stages": self.stages,
            "results": self.results,
            "failures": self.failures,
            "hosts": self.hosts,
        })


def iter_results(report, kind=None):
    """Yield ``(stage, host, entry)`` for every module result (of ``kind``)."""
    for stage, by_host in (report.get("results") or {}).items():
        for host, entries in by_host.items():
            for entry in entries:
                if kind is None or entry.get("kind") == kind:
                    yield stage, host, entry


# --- files -----------------------------------------------------------------------

def default_run_id():
    """A sortable, unique-enough directory name for one run."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return "%s-%d" % (stamp, os.getpid())


def write_report(report, base_dir, run_id=None):
    """Write ``<base_dir>/<run_id>/report.{json,md}``; point ``<base_dir>/latest`` at it.

    Returns ``(json_path, md_path)``. ``latest`` is a relative symlink,
    replaced atomically, so it always names a complete report.
    """
    run_id = run_id or default_run_id()
    if os.sep in run_id or run_id in ("", ".", "..", "latest"):
        raise ValueError("bad run id %r" % run_id)
    run_dir = os.path.join(base_dir, run_id)
    os.makedirs(run_dir, exist_ok=True)
    json_path = os.path.join(run_dir, "report.json")
    md_path = os.path.join(run_dir, "report.md")
    for path, text in ((json_path, json.dumps(report, indent=2, default=str) + "\n"),
                       (md_path, render_markdown(report))):
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(path + ".tmp", path)
    link = os.path.join(base_dir, "latest")
    tmp_link = "%s.tmp-%d" % (link, os.getpid())
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(run_id, tmp_link)
    os.replace(tmp_link, link)
    return json_path, md_path


# --- report -> text ------------------------------------------------------------------

def _cell(value):
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _fence(text):
    text = "" if text is None else str(text)
    return ["```text", text.replace("```", "'''"), "```"]


def _ranks_by_host(data):
    by_host = {}
    for rank in data.get("ranks") or []:
        if isinstance(rank, dict):
            by_host.setdefault(str(rank.get("host")), []).append(rank.get("rank"))
    return by_host


def _md_mpi_hello(data):
    by_host = _ranks_by_host(data)
    per_host = data.get("ranks_per_host") or {h: len(r) for h, r in by_host.items()}
    missing = data.get("missing_ranks") or []
    lines = ["World size %s; ranks reported: %d; missing ranks: %s; %s s." % (
        data.get("world_size"), sum(per_host.values()),
        ", ".join(str(r) for r in missing) or "none", data.get("duration_s")), ""]
    lines += ["- Problem: %s" % p for p in data.get("problems") or []]
    lines += [""] if data.get("problems") else []
    rows = [(h, n, ", ".join(str(r) for r in sorted(by_host.get(h, []), key=str)))
            for h, n in per_host.items()]
    return lines + _table(["Host", "Ranks", "Rank ids"], rows)


def _md_trtllm_build(data):
    how = "reused (cache hit)" if data.get("cache_hit") else "built"
    return ["Engine %s: `%s` (%s s)." % (how, data.get("engine_dir"), data.get("duration_s")), ""]


def _md_trtllm_run(data):
    """Prompts with outputs; timings per prompt where given, else for the run."""
    timings = [fmt % data[key] for key, fmt in (("latency_s", "latency %s s"), ("tokens_per_s", "%s tokens/s"),
                                                 ("throughput_prompts_per_s", "%s prompts/s"))
               if data.get(key) is not None]
    lines = ["Whole run: %s." % ", ".join(timings), ""] if timings else []
    for prompt in data.get("prompts") or []:
        timing = ""
        if prompt.get("latency_s") is not None or prompt.get("tokens_per_s") is not None:
            timing = " (latency %s s, %s tokens/s)" % (prompt.get("latency_s"), prompt.get("tokens_per_s"))
        lines += ["**Prompt %s**%s" % (prompt.get("index"), timing), ""]
        lines += _fence(prompt.get("input", prompt.get("input_text"))) + [""]
        for out in prompt.get("outputs") or []:
            tokens = out.get("tokens", out.get("token_count"))
            lines += ["Output (beam %s%s):" % (out.get("beam"), "" if tokens is None else ", %s tokens" % tokens), ""]
            lines += _fence(out.get("text")) + [""]
    return lines


def _md_mpi_collectives(data):
    keys = ("collective", "op", "size_bytes", "time_us", "algbw_gbps", "busbw_gbps", "correct")
    rows = [[row.get(k) for k in keys] for row in data.get("results") or [] if isinstance(row, dict)]
    return _table(["Collective", "Op", "Size (B)", "Time (us)", "Alg bw (GB/s)",
                   "Bus bw (GB/s)", "Correct"], rows)


def _md_generic(data):
    lines = []
    for key, value in data.items():
        if key in ("mtrt_kind", "changed", "failed"):
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > 300:
            text = text[:300] + "..."
        lines.append("- **%s**: `%s`" % (key, text.replace("`", "'").replace("\n", " ")))
    return lines + [""]


RENDERERS = {
    "mpi_hello": ("MPI hello", _md_mpi_hello),
    "trtllm_build": ("Engine", _md_trtllm_build),
    "trtllm_run": ("Inference", _md_trtllm_run),
    "mpi_collectives": ("Collectives", _md_mpi_collectives),
}


def render_markdown(report):
    """The report for a person: stages, failures, module results, hosts."""
    run = report.get("run") or {}
    lines = ["# Run report: %s - %s" % (run.get("playbook") or "?", run.get("status")), "",
             "Started %s, ended %s, %s s." % (run.get("started_at"), run.get("ended_at"),
                                              run.get("duration_s")), "", "## Stages", ""]
    rows = [(s.get("number") or "", s["key"], s["status"], s.get("tasks_run"))
            + tuple(s["counts"][k] for k in _COUNT_KEYS) + (s.get("duration_s"),)
            for s in report.get("stages") or []]
    lines += _table(["#", "Stage", "Status", "Tasks"] + list(_COUNT_KEYS) + ["Time (s)"], rows)
    if report.get("failures"):
        lines += ["## Failures", ""]
        lines += _table(["Stage", "Host", "Task", "Message"],
                        [(f["stage"], f["host"], f["task"], f["message"]) for f in report["failures"]])
    for stage, host, entry in iter_results(report):
        title, render = RENDERERS.get(entry["kind"], (entry["kind"], _md_generic))
        lines += ["## %s: %s on %s" % (title, stage, host), "",
                  "Task: %s (%s)" % (entry["task"], entry["status"]), ""]
        lines += render(entry["result"])
    if report.get("hosts"):
        keys = list(_HOST_STAT_KEYS.values())
        lines += ["## Hosts", ""]
        lines += _table(["Host"] + keys, [[h] + [s.get(k, 0) for k in keys]
                                          for h, s in sorted(report["hosts"].items())])
    return "\n".join(lines).rstrip("\n") + "\n"


def summary_lines(report, md_path=None):
    """A few console lines: status, each stage's counts and time, hello ranks, failures."""
    run = report.get("run") or {}
    lines = ["MTRT run %s in %s s" % (run.get("status"), run.get("duration_s"))
             + (" - report: %s" % md_path if md_path else "")]
    for s in report.get("stages") or []:
        c = s["counts"]
        lines.append("  %-3s %-18s %-6s ok=%d changed=%d failed=%d %ss" % (
            s.get("number") or "", s["key"], s["status"], c["ok"], c["changed"],
            c["failed"] + c["unreachable"], s.get("duration_s")))
    for _stage, host, entry in iter_results(report, "mpi_hello"):
        data = entry["result"]
        per_host = " ".join("%s=%s" % kv for kv in (data.get("ranks_per_host") or {}).items())
        lines.append("  hello on %s: world_size=%s %s missing=%s" % (
            host, data.get("world_size"), per_host, data.get("missing_ranks") or "none"))
    for f in report.get("failures") or []:
        first = (f["message"] or "").strip().splitlines()[:1]
        lines.append("  FAILED %s / %s: %s" % (f["host"], f["task"], (first[0] if first else "")[:160]))
    return lines
