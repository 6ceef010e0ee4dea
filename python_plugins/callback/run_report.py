# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Ansible glue for the run report; the report itself is built in module_utils/mtrt_report.py."""

from __future__ import annotations

DOCUMENTATION = r"""
name: run_report
type: aggregate
short_description: Write report.json and report.md for every run, and print a short summary
description:
  - At the end of a run writes C(<report_dir>/<run_id>/report.json) (machine-readable) and
    C(report.md) (for a person) and points C(<report_dir>/latest) at them.
  - The report holds per stage (play) its tasks' status counts, changed count and time; every
    result of a project module (a result with C(mtrt_kind) set), keyed by stage and host;
    failures with host, task and message; failures a block's C(rescue) caught, apart
    (C(rescued)); per-host stats. Repeats of a play that only skipped (the preflight play every
    stage playbook imports) are left out.
  - Results censored by C(no_log) are left out and private-key blocks are redacted everywhere.
  - Prints a few summary lines at the end of the console output.
  - Needs enabling, e.g. C(callbacks_enabled = run_report) in ansible.cfg.
author: mpi-trt-ansible
requirements:
  - python_plugins/module_utils/mtrt_report.py beside this plugin's directory
options:
  report_dir:
    description: Directory for the reports; relative paths are relative to the working directory.
    type: str
    default: reports
    env:
      - name: MTRT_REPORT_DIR
    ini:
      - section: callback_run_report
        key: report_dir
  run_id:
    description: Name of this run's subdirectory. Default a UTC timestamp plus the process id.
    type: str
    env:
      - name: MTRT_RUN_ID
"""

import os
import sys
import time

from ansible.plugins.callback import CallbackBase

_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _UTILS not in sys.path:
    sys.path.insert(0, _UTILS)
import mtrt_report  # noqa: E402  (plain Python beside the plugins, see the sys.path line above)


def in_rescued_block(task):
    """True when a failure of ``task`` is caught by a ``rescue``: an enclosing block has a
    rescue section and the task sits (at any depth) in that block's ``block`` section.

    The same test Ansible's strategy makes (``PlayIterator.is_any_block_rescuing``) before it
    counts the failure as rescued rather than failed. Walks the ``_parent`` chain: an included
    or imported block's parent is the include/import task, and a static import's blocks (not
    the import task) sit in the enclosing block's ``block`` list - hence "anything below".
    """
    below, parent = {getattr(task, "_uuid", None)}, getattr(task, "_parent", None)
    while parent is not None:
        if getattr(parent, "rescue", None) and any(
                getattr(item, "_uuid", None) in below for item in getattr(parent, "block", None) or []):
            return True
        below.add(getattr(parent, "_uuid", None))
        parent = getattr(parent, "_parent", None)
    return False


class CallbackModule(CallbackBase):
    """Feed runner-shaped events to ``mtrt_report.ReportBuilder``; write the report on stats."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "run_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.builder = mtrt_report.ReportBuilder()
        self._host_start = {}

    def _feed(self, event, **event_data):
        self.builder.feed({"event": event, "created": mtrt_report.now_iso(), "event_data": event_data})

    @staticmethod
    def _task_data(task):
        role = getattr(task, "_role", None)
        return {"task": task.name or task.action, "task_action": task.action, "task_uuid": str(task._uuid),
                "role": getattr(role, "_role_name", None) if role else None,
                "tags": [str(tag) for tag in getattr(task, "tags", None) or []]}

    def v2_playbook_on_start(self, playbook):
        path = getattr(playbook, "_file_name", "") or ""
        if os.path.isabs(path) and path.startswith(os.getcwd() + os.sep):
            path = os.path.relpath(path)
        self._feed("playbook_on_start", playbook=path)

    def v2_playbook_on_play_start(self, play):
        self._feed("playbook_on_play_start", name=play.get_name().strip())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._feed("playbook_on_task_start", **self._task_data(task))

    def v2_playbook_on_handler_task_start(self, task):
        self._feed("playbook_on_task_start", **self._task_data(task))

    def v2_runner_on_start(self, host, task):
        self._host_start[(host.get_name(), str(task._uuid))] = time.monotonic()

    def _result(self, event, result, **extra):
        host = result.host.get_name()
        started = self._host_start.pop((host, str(result.task._uuid)), None)
        duration = round(time.monotonic() - started, 3) if started is not None else None
        self._feed(event, host=host, res=result.result, duration=duration,
                   **dict(self._task_data(result.task), **extra))

    def v2_runner_on_ok(self, result):
        self._result("runner_on_ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("runner_on_failed", result, ignore_errors=ignore_errors,
                     rescued=not ignore_errors and in_rescued_block(result.task))

    def v2_runner_on_skipped(self, result):
        self._result("runner_on_skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._result("runner_on_unreachable", result)

    def v2_playbook_on_stats(self, stats):
        self._feed("playbook_on_stats", processed=dict(stats.processed), ok=dict(stats.ok),
                   changed=dict(stats.changed), failures=dict(stats.failures), dark=dict(stats.dark),
                   skipped=dict(stats.skipped), rescued=dict(stats.rescued), ignored=dict(stats.ignored))
        self.builder.finish()
        report = self.builder.report()
        base = os.path.abspath(os.path.expanduser(self.get_option("report_dir")))
        try:
            _json_path, md_path = mtrt_report.write_report(report, base, self.get_option("run_id"))
        except (OSError, ValueError) as exc:
            self._display.warning("run_report: could not write the report under %s: %s" % (base, exc))
            md_path = None
        self._display.display("")
        for line in mtrt_report.summary_lines(report, md_path):
            self._display.display(line)
