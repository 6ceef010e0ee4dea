# SPDX-License-Identifier: Apache-2.0
"""Events in, report dict out.

:class:`ReportBuilder` is fed events of ansible-runner's shape: ``{"event": name,
"created": iso8601, "event_data": {...}}`` with the names ``playbook_on_start``,
``playbook_on_play_start``, ``playbook_on_task_start``, ``runner_on_start``,
``runner_on_ok``, ``runner_on_failed``, ``runner_on_skipped``,
``runner_on_unreachable`` and ``playbook_on_stats``; anything else is ignored. The
``run_report`` callback builds these dicts from its hooks; the API passes runner's
events through unchanged.

A stage is a play in which at least one task started. Its key is the role of its
first task (``mpi_hello``), else the play name without its ``Stage NN -`` prefix,
slugified (``summary``); a repeated key gets a ``_N`` suffix (``preflight_2``). Its
``roles`` and (callback only: runner's events carry none) ``tags`` are collected from
its tasks. A stage whose every result was a skip has status ``skipped``. A repeated
stage that only skipped is no stage at all: every stage playbook imports the
preflight play, which runs once and skips afterwards. Its progress notes are held
back until it does something else, and dropped if it never does.

A task that failed inside a ``block`` whose ``rescue`` section then ran is
``rescued``, as in Ansible's recap: listed under ``rescued``, not under ``failures``,
and it does not fail its stage or the run. The callback marks such failures itself
(``rescued`` in the event data). Runner's events carry no such mark: there the play
recap decides, per host, which failures were rescued (the first ``rescued`` ones of
that host, when the recap's counts match the events).

A run cut short (``finish("interrupted")``, ``"canceled"`` or ``"timeout"``) closes
its open stage with that status, marks the tasks that were running then (a
``runner_on_start`` without a result) with it too, and lists them under
``interrupted``; the callback adds what it stopped (:meth:`ReportBuilder.record_cleanup`).
``finish("error")`` closes a run that ended without its recap for another reason.

The report (``report.json``), schema_version 2::

    run          {playbook, status (successful|failed|interrupted|canceled|timeout|error|running),
                  started_at, ended_at, duration_s}
    stages       [{key, name, number, roles, tags,
                   status (ok|failed|skipped|running|interrupted|canceled|timeout|error),
                   started_at, ended_at, duration_s, tasks_run,
                   counts {ok, changed, failed, skipped, unreachable, ignored, rescued},
                   tasks [{name, action, role, duration_s, hosts {host: status}}]}]
    results      {stage: {host: [{task, kind, status, result}]}}   (mtrt_kind results)
    failures     [{stage, host, task, action, status (failed|unreachable), message,
                   kind, explained [{raw, cause, fix}], diagnosis [{host, ranks, state, ...}]}]
    rescued      [the same records, status rescued]
    hosts        {host: {ok, changed, failed, unreachable, skipped, rescued, ignored}}
    interrupted  null, or {status, at, in_flight [{stage, host, task, action, started_at}],
                   cleanup [{host, via, target, launches [{kind, pid, ...}], error}]}

Counts are per host and task; ``ok`` includes ``changed`` (as in Ansible's recap).
Task statuses: ok, changed, failed, skipped, unreachable, ignored, rescued, and the
status of a cut-short run for the tasks running then. Secrets never reach a report
(:mod:`.secrets`).
"""

from __future__ import annotations

import datetime
import json
import re

from mpi_trt_ansible.settled import STAGES as SETTLED_STAGES

from .secrets import clean_result, is_censored, scrub

SCHEMA_VERSION = 2
CUT_SHORT = ("interrupted", "canceled", "timeout")
MESSAGE_MAX = 2000
COUNT_KEYS = ("ok", "changed", "failed", "skipped", "unreachable", "ignored", "rescued")
NOTE_KEYS = COUNT_KEYS[:-1]  # a stage_finished note's counts (the API's StageFinished fields)
HOST_STAT_KEYS = {
    "ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
    "skipped": "skipped", "rescued": "rescued", "ignored": "ignored",
}
_STAGE_NAME = re.compile(r"^\s*Stage\s+(\d+)\s*[-:]\s*(.*)$", re.IGNORECASE)
_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}


# --- results and messages ------------------------------------------------------

def mtrt_results(res):
    """The project module results (``mtrt_kind`` set) in ``res`` and its loop items."""
    if not isinstance(res, dict) or is_censored(res):
        return []
    if res.get("mtrt_kind"):
        return [clean_result(res)]
    return [clean_result(item) for item in res.get("results") or []
            if isinstance(item, dict) and item.get("mtrt_kind") and not is_censored(item)]


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


def settled_stage_list(settled):
    """``[(number, key)]`` of the stages a preflight result's ``settled`` names, in run order."""
    if not settled:
        return []
    wanted = set(settled.get("stages") or [])
    return [(number, key) for number, key in SETTLED_STAGES if key in wanted]


def failure_details(res):
    """``kind``, ``explained`` and ``diagnosis`` of a failed result (of its failed loop item)."""
    if not isinstance(res, dict) or is_censored(res):
        return {"kind": None, "explained": [], "diagnosis": []}
    source = next((item for item in res.get("results") or []
                   if isinstance(item, dict) and item.get("failed") and not is_censored(item)), res)
    listed = {k: [e for e in source.get(k) or [] if isinstance(e, dict)] for k in ("explained", "diagnosis")}
    return scrub(dict(kind=source.get("mtrt_kind"), **listed))


# --- stages ------------------------------------------------------------------------

def _parse_time(text):
    if not text:
        return None
    try:
        stamp = datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.timezone.utc)


def seconds_between(start, end):
    a, b = _parse_time(start), _parse_time(end)
    return round((b - a).total_seconds(), 3) if a and b else None


def stage_key_from_name(name):
    """``"Stage 99 - Run summary"`` -> ``"run_summary"``; a trailing ``(...)`` remark is no part of it
    (``"Stage 00 - Preflight (changes nothing)"`` -> ``"preflight"``)."""
    match = _STAGE_NAME.match(name or "")
    text = match.group(2) if match else (name or "")
    text = re.sub(r"\s*\([^()]*\)\s*$", "", text) or text
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "play"


def stage_number(name):
    """``"Stage 60 - MPI hello"`` -> ``"60"``; None when the name has no number."""
    match = _STAGE_NAME.match(name or "")
    return match.group(1) if match else None


def all_skipped(counts):
    """True when every result counted in ``counts`` was a skip (and there was one)."""
    return bool(counts.get("skipped")) and not any(
        counts.get(k) for k in COUNT_KEYS if k not in ("skipped", "changed"))


def now_iso():
    """The current time as an ISO 8601 UTC string (the events' ``created``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def iter_results(report, kind=None):
    """Yield ``(stage, host, entry)`` for every module result (of ``kind``, a name or a tuple)."""
    kinds = (kind,) if isinstance(kind, str) else kind
    for stage, by_host in (report.get("results") or {}).items():
        for host, entries in by_host.items():
            for entry in entries:
                if kinds is None or entry.get("kind") in kinds:
                    yield stage, host, entry


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
        self.interruption = None
        self._play = None
        self._stage = None
        self._tasks = {}
        self._keys = set()
        self._running = {}  # (host, task uuid) -> what a cut-short run lists as in flight
        self._held = None  # notes of a repeated stage that has only skipped so far
        self._unmarked = []  # failures whose event did not say whether a rescue caught them
        self._settled = None  # preflight found stages 10-50 settled: listed once its stage closes

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
        if name == "runner_on_start":
            self._host_start(data, created)
            return []
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
                "duration_s": None, "tasks_run": 0, "counts": dict.fromkeys(COUNT_KEYS, 0),
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

    def _host_start(self, data, created):
        task = self._tasks.get(data.get("task_uuid"))
        if self._stage is None or task is None:
            return
        self._running[(data.get("host") or "", data.get("task_uuid"))] = {
            "stage": self._stage["key"], "host": data.get("host") or "", "task": task["name"],
            "action": task["action"], "started_at": created, "_task": task}

    def _result(self, status, data):
        stage = self._stage
        if stage is None:
            return []
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        host = data.get("host") or ""
        self._running.pop((host, data.get("task_uuid")), None)
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
            record = dict({"stage": stage["key"], "host": host, "task": task["name"],
                           "action": task["action"], "status": status, "message": message},
                          **failure_details(res))
            self._inherit_cause(record)
            if status == "rescued":
                self.rescued.append(record)
            else:
                stage["status"] = "failed"
                self.failures.append(record)
        found = mtrt_results(res)
        for item in found:
            if item.get("mtrt_kind") == "preflight" and (item.get("settled") or {}).get("ok"):
                self._settled = item["settled"]
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

    def _inherit_cause(self, record):
        """A ``fail`` task that re-raises a module's failure (a rescue that could not heal
        passes on ``<result>.msg``) keeps that module's kind, causes and diagnosis, so the
        failure a reader sees still says which ranks, hosts and causes were involved."""
        if record["kind"] is not None or (record["action"] or "").rsplit(".", 1)[-1] != "fail":
            return
        earlier = next((r for r in reversed(self.rescued + self.failures)
                        if r is not record and r["kind"] and r["host"] == record["host"]
                        and r["stage"] == record["stage"] and r["message"] == record["message"]), None)
        if earlier is not None:
            record.update((k, earlier[k]) for k in ("kind", "explained", "diagnosis"))

    def _stats(self, data):
        for host in data.get("processed") or {}:
            self.hosts.setdefault(host, dict.fromkeys(HOST_STAT_KEYS.values(), 0))
        for src, dst in HOST_STAT_KEYS.items():
            for host, count in (data.get(src) or {}).items():
                self.hosts.setdefault(host, dict.fromkeys(HOST_STAT_KEYS.values(), 0))[dst] = count
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
        stage["duration_s"] = seconds_between(stage["started_at"], created)
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
        note.update((k, stage["counts"][k]) for k in NOTE_KEYS)
        return (held or []) + [note] + self._settled_stages(created)

    def _settled_stages(self, created):
        """The stages preflight found settled (their plays matched no host), as stages of status
        ``settled`` with no task, so that every stage of the run is listed."""
        settled, self._settled = self._settled, None
        notes = []
        for number, key in settled_stage_list(settled):
            if key in self._keys:
                continue
            self._keys.add(key)
            name = "Stage %s - %s (settled: %s)" % (number, key, settled.get("reason") or "unchanged")
            self.stages.append({
                "key": key, "name": name, "number": number, "roles": [key], "tags": [key], "status": "settled",
                "started_at": created, "ended_at": created, "duration_s": 0.0, "tasks_run": 0,
                "counts": dict.fromkeys(COUNT_KEYS, 0), "tasks": []})
            notes.append({"type": "stage_started", "stage": key, "name": name, "number": number,
                          "started_at": created})
            notes.append(dict({"type": "stage_finished", "stage": key, "name": name, "status": "settled",
                               "duration_s": 0.0}, **dict.fromkeys(NOTE_KEYS, 0)))
        return notes

    def in_flight(self):
        """The tasks running now (started on a host, no result yet), oldest first."""
        return [{k: v for k, v in entry.items() if not k.startswith("_")} for entry in self._running.values()]

    def finish(self, status=None, at=None):
        """End the run: close an open stage (as ``status`` when given) and fix the status.

        ``status`` ``interrupted``, ``canceled`` or ``timeout`` marks the run cut short:
        the tasks running then get that status on their host and are listed under
        ``interrupted`` with ``at`` (default now).
        """
        at = at or self.ended_at or now_iso()
        if status in CUT_SHORT:
            for entry in self._running.values():
                entry["_task"]["hosts"][entry["host"]] = status
            self.interruption = {"status": status, "at": at, "in_flight": self.in_flight(), "cleanup": []}
            self._running = {}
        notes = self._close_stage(at if status else (self.ended_at or at), status)
        if status:
            self.status = status
            self.ended_at = max(self.ended_at or at, at)
        elif self.status is None:
            self.status = "failed" if self.failures else "successful"
        return notes

    def record_cleanup(self, entries):
        """What a cut-short run stopped on its hosts (``interrupt.stop_launches`` entries)."""
        if self.interruption is not None:
            self.interruption["cleanup"] = list(entries or [])

    # -- output
    def report(self):
        """The report dict (schema in the module docstring), scrubbed."""
        stages = [dict(s, status="running") if s is self._stage and s["status"] == "ok" else s
                  for s in self.stages]
        return scrub({
            "schema_version": SCHEMA_VERSION,
            "run": {
                "playbook": ", ".join(self.playbooks),
                "status": self.status or "running",
                "started_at": self.started_at,
                "ended_at": self.ended_at,
                "duration_s": seconds_between(self.started_at, self.ended_at),
            },
            "stages": stages,
            "results": self.results,
            "failures": self.failures,
            "rescued": self.rescued,
            "hosts": self.hosts,
            "interrupted": self.interruption,
        })
