# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Ansible glue for the run report; the report itself is built by the mpi_trt_ansible package."""

from __future__ import annotations

DOCUMENTATION = r"""
name: run_report
type: aggregate
short_description: Write report.json and report.md for every run, interrupted ones too, and print a short summary
description:
  - At the end of a run writes C(<report_dir>/<run_id>/report.json) (machine-readable) and
    C(report.md) (for a person) and points C(<report_dir>/latest) at them.
  - The report holds per stage (play) its tasks' status counts, changed count and time; every
    result of a project module (a result with C(mtrt_kind) set), keyed by stage and host;
    failures with host, task, message, the known errors explained (cause, fix, raw line) and
    the ranks that did not answer traced to their node; failures a block's C(rescue) caught,
    apart (C(rescued)); per-host stats. Repeats of a play that only skipped (the preflight
    play every stage playbook imports) are left out.
  - When ansible-playbook is interrupted (SIGINT, Ctrl-C), it stops the mpirun launches still
    running on the hosts that had a task in flight (a delegated task's delegate), by the pids in
    their pid files (never by name), what they started on their other nodes, and the servers this
    run started there (their pid files under C(cluster_serve_run_dir)), and writes the report with
    run status C(interrupted), what was running and what it stopped. A run that ends without its recap for another reason gets status C(error).
  - Results censored by C(no_log) are left out and private-key blocks are redacted everywhere.
  - Prints a few summary lines at the end of the console output (only the last line when
    stage 99 printed the summary already).
  - Needs enabling, e.g. C(callbacks_enabled = run_report) in ansible.cfg.
author: mpi-trt-ansible
requirements:
  - the mpi_trt_ansible package importable (scripts/bootstrap.sh installs it into .venv)
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

import atexit
import os
import shutil
import signal
import tempfile
import threading
import time

from ansible.errors import AnsibleError
from ansible.plugins.callback import CallbackBase

try:
    from mpi_trt_ansible import interrupt, report
except ImportError as exc:  # the package is the report builder; without it there is no report
    raise AnsibleError(
        "run_report: the mpi_trt_ansible package is not importable; run scripts/bootstrap.sh (or pip install -e . "
        "in the project) and use that environment's ansible-playbook") from exc

# Host variables that say how a host is reached (mpi_trt_ansible.interrupt.target_for reads them).
_CONNECTION_VARS = (
    "ansible_connection", "ansible_host", "ansible_user", "ansible_port", "ansible_python_interpreter",
    "ansible_ssh_private_key_file", "ansible_private_key_file", "ansible_ssh_common_args",
    "ansible_ssh_extra_args", "ansible_ssh_user", "ansible_ssh_port", "ansible_docker_host",
    "ansible_docker_user", "ansible_docker_extra_args", "cluster_serve_run_dir",
)


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
    """Feed runner-shaped events to ``report.ReportBuilder``; write the report on stats or on exit."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "run_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.builder = report.ReportBuilder()
        self._host_start = {}
        self._hosts = {}  # name -> Host, of every host a task started on
        self._play = None
        self._written = False
        self._interrupted_at = None
        self._local_launches = []
        self._previous_sigint = None
        self._launch_dir = None
        self._armed = False
        self._armed_at = time.monotonic()
        self._started_tasks = {}  # (host, task uuid) -> the task, while it runs (its delegate_to)

    # -- the run's own launch directory (local mode) and the interrupt hook
    def _arm(self):
        """At playbook start: a pid directory of this run's own for launches on the controller,
        the SIGINT hook (after the task queue manager's, which it wraps) and the exit hook."""
        if self._armed:  # one ansible-playbook run may start several playbooks
            return
        self._armed = True
        self._armed_at = time.monotonic()
        if not os.environ.get("MTRT_LAUNCH_DIR"):
            # Local-mode launches inherit the controller's environment; other runs on this
            # machine keep theirs apart, so an interrupt stops this run's launches only.
            self._launch_dir = tempfile.mkdtemp(prefix="mtrt-launch-")
            os.environ["MTRT_LAUNCH_DIR"] = self._launch_dir
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)
        atexit.register(self._at_exit)

    def _disarm(self):
        """After the report is written: the environment, the SIGINT handler and the exit hook as they were."""
        if not self._armed:
            return
        self._armed = False
        atexit.unregister(self._at_exit)
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, self._previous_sigint)
        if self._launch_dir:
            if os.environ.get("MTRT_LAUNCH_DIR") == self._launch_dir:
                del os.environ["MTRT_LAUNCH_DIR"]
            shutil.rmtree(self._launch_dir, ignore_errors=True)
            self._launch_dir = None

    def _on_sigint(self, signum, frame):
        """Note the interrupt and this machine's running launches, then let Ansible stop the run.

        Read before the workers hear of it: a local-mode module removes its pid file when it is
        interrupted, leaving its mpirun (a session of its own) running.
        """
        previous = self._previous_sigint
        if previous == signal.SIG_IGN:
            return
        if self._interrupted_at is None:
            self._interrupted_at = report.now_iso()
            self._local_launches = interrupt.snapshot(os.environ.get("MTRT_LAUNCH_DIR"))
        try:
            if callable(previous):
                previous(signum, frame)  # the task queue manager's: signals the workers, raises KeyboardInterrupt
            raise KeyboardInterrupt()
        finally:
            # Not the default action (which would end the process before the report is written):
            # a second Ctrl-C is ignored until the cleanup, which it may cut short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _at_exit(self):
        """ansible-playbook is exiting: write the report if the run ended without its recap."""
        try:
            if not self._written:
                self._finish_cut_short()
        finally:
            self._disarm()

    def _host_vars(self, host):
        """``host``'s connection variables, templated as the run sees them."""
        from ansible.template import Templar  # only on the interrupt path

        play = self._play
        variables = play.get_variable_manager().get_vars(play=play, host=host)
        templar = Templar(loader=play._loader, variables=variables)
        out = {"inventory_hostname": host.get_name()}
        for name in _CONNECTION_VARS:
            if name in variables:
                try:
                    out[name] = templar.template(variables[name])
                except Exception:  # noqa: BLE001 - an untemplatable value: leave it out
                    pass
        return out

    def _where(self, in_flight):
        """The hosts the in-flight tasks run on: a delegated task's (e.g. a server started on its
        node by a play of localhost) is its delegate's, templated as the task saw it."""
        names = []
        for entry in in_flight:
            name = entry["host"]
            for (host_name, _uuid), task in list(self._started_tasks.items()):
                if host_name != name or not getattr(task, "delegate_to", None):
                    continue
                try:
                    from ansible.template import Templar

                    play = self._play
                    variables = play.get_variable_manager().get_vars(play=play, host=self._hosts[name], task=task)
                    delegate = Templar(loader=play._loader, variables=variables).template(task.delegate_to)
                    if delegate and delegate not in self._hosts:
                        found = play.get_variable_manager()._inventory.get_host(str(delegate))
                        if found is not None:
                            self._hosts[str(delegate)] = found
                    name = str(delegate or name)
                except Exception:  # noqa: BLE001 - clean the task's own host then
                    pass
            names.append(name)
        return list(dict.fromkeys(names))

    def _targets(self, in_flight):
        targets, seen = [], set()
        for name in self._where(in_flight):
            host = self._hosts.get(name)
            try:
                target = interrupt.target_for(name, self._host_vars(host) if host and self._play else {})
            except Exception as exc:  # noqa: BLE001 - the report must still be written
                target = interrupt.Target(name, None, error="could not read how to reach it: %s" % exc)
            if target.via == "local":
                target.known = self._local_launches
            key = (target.via, target.address, target.user)
            if target.via and key in seen:
                continue
            seen.add(key)
            targets.append(target)
        return targets

    def _finish_cut_short(self):
        if self._interrupted_at is None:
            self.builder.finish("error")
            self._write()
            return
        self.builder.finish("interrupted", at=self._interrupted_at)
        in_flight = self.builder.interruption["in_flight"]
        targets = self._targets(in_flight)
        if targets:
            self._display.display("run_report: interrupted; stopping this run's launches on %s (at most %d s; "
                                  "Ctrl-C again to skip)" % (", ".join(t.host for t in targets),
                                                             interrupt.TIMEOUT_S))
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                self.builder.record_cleanup(interrupt.stop_launches(
                    targets, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                          "module_utils"), run_age_s=round(time.monotonic() - self._armed_at, 1)))
            except KeyboardInterrupt:
                self.builder.record_cleanup([{"host": t.host, "via": t.describe(), "launches": [],
                                              "error": "skipped: interrupted again"} for t in targets])
        self._write()

    def _write(self):
        self._written = True
        data = self.builder.report()
        base = os.path.abspath(os.path.expanduser(self.get_option("report_dir")))
        try:
            _json_path, md_path = report.write_report(data, base, self.get_option("run_id"))
        except (OSError, ValueError) as exc:
            self._display.warning("run_report: could not write the report under %s: %s" % (base, exc))
            md_path = None
        shown = any(True for _ in report.iter_results(data, "run_summary"))
        self._display.display("")
        for line in report.summary_lines(data, md_path, brief=shown):
            self._display.display(line)
        self._disarm()

    # -- events
    def _feed(self, event, **event_data):
        self.builder.feed({"event": event, "created": report.now_iso(), "event_data": event_data})

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
        self._arm()
        self._feed("playbook_on_start", playbook=path)

    def v2_playbook_on_play_start(self, play):
        self._play = play
        self._feed("playbook_on_play_start", name=play.get_name().strip())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._feed("playbook_on_task_start", **self._task_data(task))

    def v2_playbook_on_handler_task_start(self, task):
        self._feed("playbook_on_task_start", **self._task_data(task))

    def v2_runner_on_start(self, host, task):
        name = host.get_name()
        self._hosts[name] = host
        self._host_start[(name, str(task._uuid))] = time.monotonic()
        self._started_tasks[(name, str(task._uuid))] = task
        self._feed("runner_on_start", host=name, task_uuid=str(task._uuid))

    def _result(self, event, result, **extra):
        host = result.host.get_name()
        self._started_tasks.pop((host, str(result.task._uuid)), None)
        started = self._host_start.pop((host, str(result.task._uuid)), None)
        duration = round(time.monotonic() - started, 3) if started is not None else None
        self._feed(event, host=host, res=result.result, duration=duration,
                   **dict(self._task_data(result.task), **extra))

    def v2_runner_on_ok(self, result):
        self._result("runner_on_ok", result)
        res = result.result
        if isinstance(res, dict) and res.get("mtrt_kind") == "run_summary":  # stage 99: the summary so far
            for line in report.summary_lines(self.builder.report(), cluster=res.get("cluster")):
                self._display.display(line)

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
        if self._interrupted_at is not None:  # the recap came after all: still a cut-short run
            self._finish_cut_short()
            return
        self.builder.finish()
        self._write()
