# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
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
prefix, slugified (``summary``); a repeated key gets a ``_N`` suffix
(``preflight_2``). Its ``roles`` and (callback only: runner's events carry
none) ``tags`` are collected from its tasks. A stage whose every result was
a skip has status ``skipped``. A repeated stage (its key without the suffix
seen before) that only skipped is no stage at all: every stage playbook
imports the preflight play, which runs once and skips afterwards. Its progress
notes are held back until it does something else, and dropped if it never does.

A task that failed inside a ``block`` whose ``rescue`` section then ran is
``rescued``, as in Ansible's recap: listed under ``rescued``, not under
``failures``, and it does not fail its stage or the run. The callback marks
such failures itself (``rescued`` in the event data, from the task's enclosing
blocks, the same test Ansible's strategy makes). Runner's events carry no such
mark: there the play recap decides, per host, which failures were rescued (the
first ``rescued`` ones of that host, when the recap's counts match the events).

The report (``report.json``), schema_version 1::

    run       {playbook, status, started_at, ended_at, duration_s}
    stages    [{key, name, number, roles, tags, status (ok|failed|skipped|canceled|timeout),
                started_at, ended_at, duration_s, tasks_run,
                counts {ok, changed, failed, skipped, unreachable, ignored, rescued},
                tasks [{name, action, role, duration_s, hosts {host: status}}]}]
    results   {stage: {host: [{task, kind, status, result}]}}   (mtrt_kind results)
    failures  [{stage, host, task, action, status (failed|unreachable), message}]
    rescued   [{stage, host, task, action, status (rescued), message}]
    hosts     {host: {ok, changed, failed, unreachable, skipped, rescued, ignored}}

Counts are per host and task; ``ok`` includes ``changed`` (as in Ansible's
recap). Task statuses: ok, changed, failed, skipped, unreachable, ignored,
rescued. Secrets never reach a report: results censored by ``no_log`` are
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
_NOTE_KEYS = ("ok", "changed", "failed", "skipped", "unreachable", "ignored")  # a stage_finished note's
_COUNT_KEYS = _NOTE_KEYS + ("rescued",)
_DEDUP_SUFFIX = re.compile(r"^(.+)_(\d+)$")
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


def all_skipped(counts):
    """True when every result counted in ``counts`` was a skip (and there was one)."""
    return bool(counts.get("skipped")) and not any(
        counts.get(k) for k in _COUNT_KEYS if k not in ("skipped", "changed"))


def visible_stages(stages):
    """``stages`` without repeats that only skipped (the builder drops them; older reports kept them)."""
    seen, kept = set(), []
    for stage in stages or []:
        match = _DEDUP_SUFFIX.match(stage.get("key") or "")
        if match and match.group(1) in seen and all_skipped(stage.get("counts") or {}):
            continue
        seen.add(stage.get("key"))
        kept.append(stage)
    return kept


def stage_status(stage):
    """A stage's status; ``skipped`` for an ``ok`` one whose every result was a skip (older reports)."""
    status = stage.get("status")
    return "skipped" if status == "ok" and all_skipped(stage.get("counts") or {}) else status


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
        self.rescued = []
        self.hosts = {}
        self._play = None
        self._stage = None
        self._tasks = {}
        self._keys = set()
        self._held = None  # notes of a repeated stage that has only skipped so far
        self._unmarked = []  # failures whose event did not say whether a rescue caught them

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

    def _hold(self, notes, release=False):
        """Notes to hand out now; a repeated stage's are held until it does more than skip."""
        if self._held is None:
            return notes
        if not release:
            self._held.extend(notes)
            return []
        notes, self._held = self._held + notes, None
        return notes

    def _task_start(self, data, created):
        notes = []
        if self._stage is None and self._play is not None:
            play, role = self._play, data.get("role")
            key = role or stage_key_from_name(play["name"])
            base, n = key, 1
            if base in self._keys:
                self._held = []
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
        return self._hold(notes)

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
        elif status == "failed" and data.get("rescued"):
            status = "rescued"
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
        message, record = None, None
        if status in ("failed", "unreachable", "rescued"):
            message = failure_message(res)
            record = {"stage": stage["key"], "host": host, "task": task["name"],
                      "action": task["action"], "status": status, "message": message}
            if status == "rescued":
                self.rescued.append(record)
            else:
                stage["status"] = "failed"
                self.failures.append(record)
        found = mtrt_results(res)
        entries = []
        for item in found:
            entry = {"task": task["name"], "kind": item["mtrt_kind"], "status": status, "result": item}
            entries.append(entry)
            self.results.setdefault(stage["key"], {}).setdefault(host, []).append(entry)
        if status == "failed" and "rescued" not in data:
            self._unmarked.append((record, stage, task, entries))
        return self._hold([{
            "type": "task_result", "stage": stage["key"], "host": host, "task": task["name"],
            "action": task["action"], "status": status, "changed": bool(res.get("changed")),
            "duration_s": round(duration, 3) if isinstance(duration, (int, float)) else None,
            "message": message, "mtrt": found}], release=status != "skipped")

    def _stats(self, data):
        for host in data.get("processed") or {}:
            self.hosts.setdefault(host, dict.fromkeys(_HOST_STAT_KEYS.values(), 0))
        for src, dst in _HOST_STAT_KEYS.items():
            for host, count in (data.get(src) or {}).items():
                self.hosts.setdefault(host, dict.fromkeys(_HOST_STAT_KEYS.values(), 0))[dst] = count
        self._rescue_unmarked()
        if self.status is None:
            failed = any(self.hosts.get(h, {}).get(k) for h in self.hosts for k in ("failed", "unreachable"))
            self.status = "failed" if failed else "successful"

    def _rescue_unmarked(self):
        """Refile unmarked failures (runner's events) the play recap counts as rescued.

        Ansible counts a failure caught by a ``rescue`` as rescued, not failed. A host's
        rescued failures come before its real ones (a real failure ends the host's run
        but for ``always`` sections), so the first ``rescued`` of them are the rescued
        ones - when the recap's counts match the events; else only when none failed.
        """
        per_host = {}
        for record, _stage, _task, _entries in self._unmarked:
            per_host[record["host"]] = per_host.get(record["host"], 0) + 1
        quota = {}
        for host, seen in per_host.items():
            stats = self.hosts.get(host) or {}
            rescued, failed = stats.get("rescued", 0), stats.get("failed", 0)
            quota[host] = rescued if (not failed or rescued + failed == seen) else 0
        for record, stage, task, entries in self._unmarked:
            host = record["host"]
            if not quota.get(host):
                continue
            quota[host] -= 1
            self.failures = [f for f in self.failures if f is not record]  # equal records may repeat
            record["status"] = "rescued"
            self.rescued.append(record)
            task["hosts"][host] = "rescued"
            for entry in entries:
                entry["status"] = "rescued"
            stage["counts"]["failed"] -= 1
            stage["counts"]["rescued"] += 1
            if stage["status"] == "failed" and not any(f["stage"] == stage["key"] for f in self.failures):
                stage["status"] = "ok"
        self._unmarked = []

    def _close_stage(self, created, status=None):
        stage, self._stage, self._tasks = self._stage, None, {}
        held, self._held = self._held, None
        if stage is None:
            return []
        stage["ended_at"] = created
        stage["duration_s"] = _seconds(stage["started_at"], created)
        if held is not None and not status:  # a repeat that only skipped: no stage
            self.stages.remove(stage)
            self._keys.discard(stage["key"])
            self.results.pop(stage["key"], None)
            return []
        if status and stage["status"] != "failed":
            stage["status"] = status
        elif stage["status"] == "ok" and all_skipped(stage["counts"]):
            stage["status"] = "skipped"
        note = {"type": "stage_finished", "stage": stage["key"], "name": stage["name"],
                "status": stage["status"], "duration_s": stage["duration_s"]}
        note.update((k, stage["counts"][k]) for k in _NOTE_KEYS)
        return (held or []) + [note]

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
            "rescued": self.rescued,
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


def _code(value):
    """``value`` as inline code (JSON for non-strings), one line."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return "`%s`" % text.replace("`", "'").replace("\n", " ")


def _size(n):
    """Bytes as a short power-of-two size: ``16 B``, ``4 KiB``, ``64 MiB``."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "" if n is None else str(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if n == int(n) else ("%.1f %s" % (n, unit))
        n = n / 1024.0
    return str(n)


def _yes(value):
    return {True: "yes", False: "no"}.get(value, "" if value is None else str(value))


def _bullets(label, items):
    """``- label: item`` lines (and a blank line) for a non-empty list."""
    lines = []
    for item in items or []:
        if isinstance(item, dict):
            text = item.get("message") or json.dumps(item, default=str)
            if item.get("fix"):
                text += " Fix: %s" % item["fix"]
        else:
            text = str(item)
        lines.append("- %s: %s" % (label, text))
    return lines + [""] if lines else []


def _ranks_by_host(data):
    by_host = {}
    for rank in data.get("ranks") or []:
        if isinstance(rank, dict):
            by_host.setdefault(str(rank.get("host")), []).append(rank.get("rank"))
    return by_host


def _md_mpi_hello(data, where=None):
    by_host = _ranks_by_host(data)
    per_host = data.get("ranks_per_host") or {h: len(r) for h, r in by_host.items()}
    missing = data.get("missing_ranks") or []
    lines = ["World size %s; ranks reported: %d; missing ranks: %s; %s s." % (
        data.get("world_size"), sum(per_host.values()),
        ", ".join(str(r) for r in missing) or "none", data.get("duration_s")), ""]
    lines += _bullets("Problem", data.get("problems"))
    rows = [(h, n, ", ".join(str(r) for r in sorted(by_host.get(h, []), key=str)))
            for h, n in per_host.items()]
    return lines + _table(["Host", "Ranks", "Rank ids"], rows)


def _md_trtllm_build(data, where=None):
    how = "reused (cache hit)" if data.get("cache_hit") else "built"
    return ["Engine %s: `%s` (%s s)." % (how, data.get("engine_dir"), data.get("duration_s")), ""]


def _md_trtllm_run(data, where=None):
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


def _launch_line(data):
    """``mpirun rc 0, 7.129 s`` (and ``timed out``) for a module that ran mpirun."""
    text = "mpirun rc %s, %s s" % (data.get("rc"), data.get("duration_s"))
    return text + (", timed out" if data.get("timed_out") else "")


def _md_mpi_collectives(data, where=None):
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
    shape = " x %d sizes, %s to %s" % (len({r.get("size_bytes") for r in rows}), _size(lo_hi[0]),
                                      _size(lo_hi[1])) if lo_hi else ""
    lines = ["World size %s%s; %s; %s; %d rows (%d collective/op pairs%s)." % (
        data.get("world_size"), " on %s" % ", ".join(sorted(set(map(str, hosts)))) if hosts else "",
        library, _launch_line(data), len(rows), len(groups), shape), ""]
    lines += _bullets("Problem", data.get("problems"))
    if lo_hi:
        header = ["Collective", "Op", "Correct", "Latency at %s (us)" % _size(lo_hi[0]),
                  "Time at %s (us)" % _size(lo_hi[1]), "Alg bw (GB/s)", "Bus bw (GB/s)"]
    else:
        header = ["Collective", "Op", "Correct", "Smallest", "Latency (us)", "Largest", "Time (us)",
                  "Alg bw (GB/s)", "Bus bw (GB/s)"]
    table = []
    for (coll, op), group in groups.items():
        small = min(group, key=lambda r: r.get("size_bytes") or 0)
        large = max(group, key=lambda r: r.get("size_bytes") or 0)
        bad = sum(1 for r in group if r.get("correct") is not True)
        correct = ("yes (%d size%s)" % (len(group), "" if len(group) == 1 else "s") if not bad
                   else "NO: %d of %d sizes wrong" % (bad, len(group)))
        row = [coll, op or "", correct]
        row += [small.get("time_us")] if lo_hi else [_size(small.get("size_bytes")), small.get("time_us"),
                                                       _size(large.get("size_bytes"))]
        row += [large.get("time_us"), large.get("algbw_gbps"), large.get("busbw_gbps")]
        table.append(row)
    lines += _table(header, table)
    failures = data.get("failures") or []
    if failures:
        lines += ["Wrong values (%d):" % len(failures), ""]
        keys = ("collective", "op", "size_bytes", "rank", "host", "index", "expected", "got")
        lines += _table(["Collective", "Op", "Size (B)", "Rank", "Host", "Index", "Expected", "Got"],
                        [[f.get(k) for k in keys] for f in failures if isinstance(f, dict)])
    if rows:
        lines += ["Every row (collective, op, size, time, bandwidths, correctness): `%s.results` in report.json."
                  % (where or "result"), ""]
    return lines


def _md_gpu_rank_device(data, where=None):
    ranks = [r for r in data.get("ranks") or [] if isinstance(r, dict)]
    found = sum(1 for r in ranks if r.get("exists") is True)
    lines = ["World size %s; %d of %d ranks found their GPU; %s." % (
        data.get("world_size"), found, len(ranks), _launch_line(data)), ""]
    lines += _bullets("Problem", data.get("problems")) + _bullets("Finding", data.get("findings"))
    keys = ("rank", "host", "local_rank", "device", "device_name", "exists", "error")
    lines += _table(["Rank", "Host", "Local rank", "Device", "Device name", "Exists", "Error"],
                    [[_yes(r.get(k)) if k == "exists" else r.get(k) for k in keys] for r in ranks])
    return lines


def _md_nccl_allreduce(data, where=None):
    lines = ["%s" % (data.get("verdict") or "No verdict."), ""]
    transport = data.get("transport") or {}
    if transport:
        channels = ", ".join("%s: %s" % kv for kv in (transport.get("channels") or {}).items()) or "none"
        lines += ["Transport: %s (channels %s; NVLS channels %s; %s node(s))." % (
            ", ".join(transport.get("transports") or []) or "unknown", channels,
            transport.get("nvls_channels"), transport.get("nodes")), ""]
    versions = data.get("versions") or {}
    ranks = [r for r in data.get("ranks") or [] if isinstance(r, dict)]
    lines += ["Versions: torch %s, NCCL %s; %d ranks (%s); %s." % (
        versions.get("torch"), versions.get("nccl"), len(ranks),
        ", ".join("%s %s@%s" % (r.get("rank"), r.get("device"), r.get("host")) for r in ranks) or "none",
        _launch_line(data)), ""]
    lines += _bullets("Problem", data.get("problems")) + _bullets("Finding", data.get("findings"))
    rows = [r for r in data.get("results") or [] if isinstance(r, dict)]
    lines += _table(["Size", "Time (us)", "Alg bw (GB/s)", "Bus bw (GB/s)", "Correct"],
                    [[_size(r.get("size_bytes")), r.get("time_us"), r.get("algbw_gbps"), r.get("busbw_gbps"),
                      _yes(r.get("correct"))] for r in rows])
    return lines


def _md_gpu_facts(data, where=None):
    if not data.get("present"):
        return ["No GPU: %s" % (data.get("reason") or "nvidia-smi listed none"), ""]
    keys = ("index", "name", "memory_total_mib", "pci_bus_id", "uuid")
    lines = ["%s GPU(s)." % data.get("count"), ""]
    lines += _table(["Index", "Name", "Memory (MiB)", "Bus id", "UUID"],
                    [[g.get(k) for k in keys] for g in data.get("gpus") or [] if isinstance(g, dict)])
    nvlink = data.get("nvlink") or {}
    limit = data.get("nvlink_limit_gbps")
    limit = "; limit %s GB/s per direction" % limit if limit else ""
    if nvlink.get("nvlink_pairs"):
        pairs = [p for p in nvlink.get("pairs") or [] if isinstance(p, dict)]
        links = ", ".join("%s-%s %s" % (p.get("a"), p.get("b"), p.get("link")) for p in pairs if p.get("nvlinks"))
        lines += ["NVLink: %s of %d GPU pair(s) linked (%s), at least %s links per linked pair%s." % (
            "all" if nvlink.get("all_pairs_nvlink") else nvlink.get("nvlink_pairs"), len(pairs), links,
            nvlink.get("min_nvlinks"), limit), ""]
    elif data.get("topology_error"):
        lines += ["NVLink: unknown (%s)." % data["topology_error"], ""]
    else:
        lines += ["NVLink: none between these GPUs%s." % limit, ""]
    return lines


def _md_trtllm_facts(data, where=None):
    if not data.get("present"):
        lines = ["TensorRT-LLM: not installed for `%s` (Python %s)." % (data.get("python"),
                                                                      data.get("python_version")), ""]
    else:
        lines = ["TensorRT-LLM %s (%s flow), %s, for `%s` (Python %s)." % (
            data.get("version"), data.get("flow") or "unknown",
            "supported" if data.get("supported") else "NOT supported", data.get("python"),
            data.get("python_version")), ""]
        tools = data.get("tools") or {}
        if tools:
            lines += ["Tools found: %s; missing: %s." % (
                ", ".join(k for k, v in tools.items() if v) or "none",
                ", ".join(k for k, v in tools.items() if not v) or "none"), ""]
    if data.get("reason"):
        lines += ["Reason: %s" % data["reason"], ""]
    fix = data.get("gpus_per_node_fix")
    if isinstance(fix, dict):
        lines += ["gpus_per_node %s: %s%s" % (fix.get("gpus_per_node"), fix.get("method"),
                                              " (%s)" % fix["reason"] if fix.get("reason") else ""), ""]
    patch = data.get("gpus_per_node_patch")
    if isinstance(patch, dict):
        lines += ["model_runner.py patch: %s (value %s, %s anchor(s))." % (
            "applied" if patch.get("applied") else "not applied", patch.get("value"), patch.get("anchors")), ""]
    return lines


def _md_trtllm_patch(data, where=None):
    before, after = data.get("before") or {}, data.get("after") or {}
    applied = after.get("applied") if after else before.get("applied")
    lines = ["Patch %s: action %s; gpus_per_node %s -> %s." % (
        "applied" if applied else "not applied", data.get("action"), before.get("value"),
        after.get("value")), ""]
    if data.get("msg"):
        lines += [data["msg"], ""]
    lines += ["File `%s`, backup `%s`." % (data.get("path"), data.get("backup")), ""]
    return lines


def _md_ssh_mesh(data, where=None):
    def ok_count(entries):
        entries = [e for e in entries or [] if isinstance(e, dict)]
        return "%d/%d OK" % (sum(1 for e in entries if e.get("ok")), len(entries))

    failed = data.get("failed_peers") or []
    via_ring = sum(1 for e in data.get("direct") or [] if isinstance(e, dict) and e.get("via") == "ring")
    lines = ["Direct: %s%s; ring: %s; failed: %s; %s s." % (
        ok_count(data.get("direct")), " (%d as first hops of the ring)" % via_ring if via_ring else "",
        ok_count(data.get("ring")) if data.get("ring") else "not checked",
        ", ".join(failed) or "none", data.get("duration_s")), ""]
    bad = [e for e in (data.get("direct") or []) + (data.get("ring") or [])
           if isinstance(e, dict) and not e.get("ok")]
    for entry in bad:
        lines.append("- %s: %s Fix: %s" % (" -> ".join(entry.get("hops") or []), entry.get("cause"),
                                            entry.get("fix")))
    return lines + [""] if bad else lines


def _md_preflight(data, where=None):
    problems = data.get("problems") or []
    checked = data.get("checked") or {}
    lines = ["Preflight %s." % ("OK: no problems" if data.get("ok") and not problems
                                else "found %d problem(s)" % len(problems)), ""]
    if checked:
        lines += ["Checked: %s." % ", ".join(
            "%s %s" % (k, ", ".join(map(str, v)) or "none" if isinstance(v, list) else v)
            for k, v in checked.items()), ""]
    return lines + _bullets("Problem", problems)


def _md_node_containers(data, where=None):
    entries = [e for e in data.get("containers") or [] if isinstance(e, dict)]
    counts = data.get("counts") or {}
    lines = ["%s; decided from %s in %s s." % (
        ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items())) or "no containers",
        "preflight's listing (no module run)" if data.get("decided_from") == "listing" else "docker",
        data.get("duration_s")), ""]
    if data.get("created_dirs"):
        lines += ["Created: %s." % ", ".join(_code(d) for d in data["created_dirs"]), ""]
    changed = [e for e in entries if e.get("action") not in (None, "none")]
    for entry in changed:
        lines.append("- %s: %s (%s)%s" % (entry.get("name"), entry.get("action"), "; ".join(entry.get("reasons") or []),
                                          "" if entry.get("ok", True) else " FAILED: %s" % entry.get("error")))
    return lines + [""] if changed else lines


def _md_generic(data, where=None):
    lines = []
    for key, value in data.items():
        if key in ("mtrt_kind", "changed", "failed"):
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > 300:
            text = text[:300] + "..."
        lines.append("- **%s**: %s" % (key, _code(text)))
    return lines + [""]


RENDERERS = {
    "preflight": ("Preflight", _md_preflight),
    "node_containers": ("Node containers", _md_node_containers),
    "ssh_mesh": ("SSH mesh", _md_ssh_mesh),
    "mpi_hello": ("MPI hello", _md_mpi_hello),
    "mpi_collectives": ("Collectives", _md_mpi_collectives),
    "gpu_facts": ("GPUs", _md_gpu_facts),
    "gpu_rank_device": ("Rank to GPU", _md_gpu_rank_device),
    "nccl_allreduce": ("NCCL all-reduce", _md_nccl_allreduce),
    "trtllm_facts": ("TensorRT-LLM", _md_trtllm_facts),
    "trtllm_patch": ("TensorRT-LLM patch", _md_trtllm_patch),
    "trtllm_build": ("Engine", _md_trtllm_build),
    "trtllm_run": ("Inference", _md_trtllm_run),
}


def render_markdown(report):
    """The report for a person: stages, failures, rescued failures, module results, hosts."""
    run = report.get("run") or {}
    lines = ["# Run report: %s - %s" % (run.get("playbook") or "?", run.get("status")), "",
             "Started %s, ended %s, %s s." % (run.get("started_at"), run.get("ended_at"),
                                              run.get("duration_s")), "", "## Stages", ""]
    rows = [(s.get("number") or "", s["key"], stage_status(s), s.get("tasks_run"))
            + tuple((s.get("counts") or {}).get(k, 0) for k in _COUNT_KEYS) + (s.get("duration_s"),)
            for s in visible_stages(report.get("stages"))]
    lines += _table(["#", "Stage", "Status", "Tasks"] + list(_COUNT_KEYS) + ["Time (s)"], rows)
    if report.get("failures"):
        lines += ["## Failures", ""]
        lines += _table(["Stage", "Host", "Task", "Message"],
                        [(f["stage"], f["host"], f["task"], f["message"]) for f in report["failures"]])
    if report.get("rescued"):
        lines += ["## Healed / rescued", "",
                  "Failed inside a block whose `rescue` section then ran; Ansible counts these as rescued, "
                  "not failed.", ""]
        lines += _table(["Stage", "Host", "Task", "Message"],
                        [(f["stage"], f["host"], f["task"], f["message"]) for f in report["rescued"]])
    index = {}
    for stage, host, entry in iter_results(report):
        n = index[(stage, host)] = index.get((stage, host), -1) + 1
        title, render = RENDERERS.get(entry["kind"], (entry["kind"], _md_generic))
        lines += ["## %s: %s on %s" % (title, stage, host), "",
                  "Task: %s (%s)" % (entry["task"], entry["status"]), ""]
        lines += render(entry["result"], "results.%s.%s[%d].result" % (stage, host, n))
    if report.get("hosts"):
        keys = list(_HOST_STAT_KEYS.values())
        lines += ["## Hosts", ""]
        lines += _table(["Host"] + keys, [[h] + [s.get(k, 0) for k in keys]
                                          for h, s in sorted(report["hosts"].items())])
    return "\n".join(lines).rstrip("\n") + "\n"


def _first_line(message, limit=160):
    first = (message or "").strip().splitlines()[:1]
    return (first[0] if first else "")[:limit]


def summary_lines(report, md_path=None):
    """A few console lines: status, each stage's counts and time, hello ranks, failures, rescues."""
    run = report.get("run") or {}
    lines = ["MTRT run %s in %s s" % (run.get("status"), run.get("duration_s"))
             + (" - report: %s" % md_path if md_path else "")]
    for s in visible_stages(report.get("stages")):
        c = s["counts"]
        lines.append("  %-3s %-18s %-7s ok=%d changed=%d failed=%d%s %ss" % (
            s.get("number") or "", s["key"], stage_status(s), c["ok"], c["changed"],
            c["failed"] + c["unreachable"], " rescued=%d" % c["rescued"] if c.get("rescued") else "",
            s.get("duration_s")))
    for _stage, host, entry in iter_results(report, "mpi_hello"):
        data = entry["result"]
        per_host = " ".join("%s=%s" % kv for kv in (data.get("ranks_per_host") or {}).items())
        lines.append("  hello on %s: world_size=%s %s missing=%s" % (
            host, data.get("world_size"), per_host, data.get("missing_ranks") or "none"))
    for f in report.get("rescued") or []:
        lines.append("  RESCUED %s / %s: %s" % (f["host"], f["task"], _first_line(f["message"])))
    for f in report.get("failures") or []:
        lines.append("  FAILED %s / %s: %s" % (f["host"], f["task"], _first_line(f["message"])))
    return lines
