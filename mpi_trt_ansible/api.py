# SPDX-License-Identifier: Apache-2.0
"""Run the pipeline from Python through ansible-runner; get typed progress and results.

``start_pipeline`` starts a run in a thread and returns a :class:`RunHandle`
(wait, cancel, status, result); ``run_pipeline`` is the blocking form. Progress
arrives at ``on_event`` (called on the runner's thread) as :class:`StageStarted`,
:class:`TaskResult`, :class:`StageFinished` and finally :class:`RunFinished`.
The :class:`RunResult` is built from the runner's events and the run report
(``report.json``, written by the project's ``run_report`` callback); when no
report was written it is built from the events alone, with the same code
(:mod:`mpi_trt_ansible.report`). Nothing parses Ansible's text output.

Cancel and timeout interrupt ansible-playbook the way Ctrl-C does (SIGINT), so its
run_report callback stops the launches still running and writes a report marked
``interrupted``; only when it has not ended ``CANCEL_GRACE_S`` seconds later does the
runner kill it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import ansible_runner

from mpi_trt_ansible import report as report_lib

LOG = logging.getLogger(__name__)
SITE_PLAYBOOK = "site.yml"
TEARDOWN_PLAYBOOK = "playbooks/teardown.yml"
SERVE_PLAYBOOK = "playbooks/95_triton_serve.yml"
_CALLBACK_DIR = Path("python_plugins/callback")
# Seconds an interrupted ansible-playbook gets to stop its launches and write its report.
CANCEL_GRACE_S = 45


# --- progress events ---------------------------------------------------------------

@dataclass(frozen=True)
class StageStarted:
    """A stage (play) started running tasks."""

    stage: str
    name: str
    number: Optional[str]
    type: str = field(default="stage_started", init=False)


@dataclass(frozen=True)
class TaskResult:
    """One host's result of one task; ``mtrt`` holds its project module results (scrubbed)."""

    stage: str
    host: str
    task: str
    action: Optional[str]
    status: str  # ok | changed | failed | skipped | unreachable | ignored
    changed: bool
    duration_s: Optional[float]
    message: Optional[str]
    mtrt: tuple = ()
    type: str = field(default="task_result", init=False)


@dataclass(frozen=True)
class StageFinished:
    """A stage ended; counts are per host and task (``ok`` includes ``changed``)."""

    stage: str
    name: str
    status: str  # ok | failed | canceled | timeout
    ok: int
    changed: int
    failed: int
    skipped: int
    unreachable: int
    ignored: int
    duration_s: Optional[float]
    type: str = field(default="stage_finished", init=False)


@dataclass(frozen=True)
class RunFinished:
    """The run is over; ``result`` is the same object ``RunHandle.result()`` returns."""

    status: str
    rc: Optional[int]
    result: "RunResult"
    type: str = field(default="run_finished", init=False)


Event = Any  # StageStarted | TaskResult | StageFinished | RunFinished


def _progress(note):
    """A builder progress note (dict) -> its dataclass."""
    note = dict(note)
    kind = note.pop("type")
    if kind == "stage_started":
        return StageStarted(stage=note["stage"], name=note["name"], number=note["number"])
    if kind == "task_result":
        return TaskResult(**dict(note, mtrt=tuple(note["mtrt"])))
    return StageFinished(**note)


# --- the result ------------------------------------------------------------------------

@dataclass(frozen=True)
class StageResult:
    """One stage's outcome, from the report's ``stages`` list."""

    key: str
    name: str
    number: Optional[str]
    roles: list
    tags: list
    status: str
    tasks_run: int
    counts: dict
    duration_s: Optional[float]
    tasks: list

    @property
    def changed(self):
        return self.counts.get("changed", 0)

    @property
    def failed(self):
        return self.counts.get("failed", 0) + self.counts.get("unreachable", 0)


@dataclass(frozen=True)
class ModuleResult:
    """One project module result (``mtrt_kind`` set) of one host."""

    stage: str
    host: str
    task: str
    kind: str
    status: str
    data: dict


@dataclass(frozen=True)
class Failure:
    """A failed or unreachable task on one host.

    ``explained``: the known raw errors in its output, each ``{raw, cause, fix}``;
    ``diagnosis``: for a failed launch, the ranks that did not answer traced to their node
    (``{host, ranks, state, exit_code, oom_killed, ssh, log_tail}``); ``kind``: the
    ``mtrt_kind`` of the failed result (None for a builtin task).
    """

    host: str
    task: str
    message: str
    stage: str
    status: str
    kind: Optional[str] = None
    explained: tuple = ()
    diagnosis: tuple = ()


@dataclass(frozen=True)
class HelloResult:
    """The MPI hello outcome (the last ``mpi_hello`` result of the run)."""

    launcher: str
    world_size: Optional[int]
    ranks_per_host: dict
    missing_ranks: list
    ranks: list
    duration_s: Optional[float]
    ok: bool


@dataclass(frozen=True)
class ServingResult:
    """What the serving stage left (``report.kinds.serve.serving_outcome`` of the run's results).

    ``instances``: each server as ``{name, host, hosts, ranks: [{rank, node, slot, gpu}], gpus,
    ports: {http, grpc, metrics}, action, pid, time_to_ready_s, endpoint}``; ``loadtest``: the load
    test's figures (``per_instance``, ``latency_s`` p50/p95/p99/max, ``tokens_per_s``, ``errors``, ...)
    or None; ``stopped``: servers of an earlier plan that this run stopped.
    """

    mode: Optional[str]
    endpoint: Optional[str]
    instances: list
    stopped: list
    loadtest: Optional[dict]


@dataclass
class RunResult:
    """The typed outcome of one run."""

    status: str  # successful | failed | canceled | timeout | error
    rc: Optional[int]  # ansible-playbook's (99 when it stopped on the interrupt), 254 when killed
    playbook: str
    started_at: Optional[str]
    ended_at: Optional[str]
    duration_s: Optional[float]
    stages: dict  # key -> StageResult, in run order
    results: list  # ModuleResult
    failures: list  # Failure
    hosts: dict  # host -> recap counts
    report: dict  # the report dict itself (report.json's content)
    report_json: Optional[str] = None
    report_md: Optional[str] = None
    artifact_dir: Optional[str] = None

    @property
    def ok(self):
        return self.status == "successful"

    def stage(self, tag):
        """The stage whose key, one of whose roles or tags is ``tag`` (None if it did not run)."""
        if tag in self.stages:
            return self.stages[tag]
        return next((s for s in self.stages.values() if tag in s.roles or tag in s.tags), None)

    def by_kind(self, kind):
        """``{host: data}`` of the last ``kind`` result per host."""
        return {r.host: r.data for r in self.results if r.kind == kind}

    @property
    def hello(self):
        """The last ``mpi_hello`` result as a :class:`HelloResult`, or None."""
        found = [r for r in self.results if r.kind == "mpi_hello"]
        if not found:
            return None
        last, data = found[-1], found[-1].data
        return HelloResult(
            launcher=last.host, world_size=data.get("world_size"),
            ranks_per_host=dict(data.get("ranks_per_host") or {}),
            missing_ranks=list(data.get("missing_ranks") or []), ranks=list(data.get("ranks") or []),
            duration_s=data.get("duration_s"),
            ok=last.status not in ("failed", "unreachable") and not data.get("missing_ranks"))

    @property
    def serving(self):
        """The serving stage's endpoint, servers and load test as a :class:`ServingResult`, or None."""
        from mpi_trt_ansible.report.kinds.serve import serving_outcome

        outcome = serving_outcome((r.kind, r.data) for r in self.results)
        return ServingResult(**outcome) if outcome else None

    @classmethod
    def from_report(cls, report, status, rc, report_json=None, report_md=None, artifact_dir=None):
        """Build from a report dict; the runner's ``status``/``rc`` win over the report's."""
        run = report.get("run") or {}
        fields = {f.name for f in dataclasses.fields(StageResult)}
        stages = {s["key"]: StageResult(**dict({"tags": []}, **{k: v for k, v in s.items() if k in fields}))
                  for s in report.get("stages") or []}
        results = [ModuleResult(stage=stage, host=host, task=e["task"], kind=e["kind"],
                                status=e["status"], data=e["result"])
                   for stage, by_host in (report.get("results") or {}).items()
                   for host, entries in by_host.items() for e in entries]
        failures = [Failure(host=f["host"], task=f["task"], message=f["message"], stage=f["stage"],
                            status=f["status"], kind=f.get("kind"), explained=tuple(f.get("explained") or ()),
                            diagnosis=tuple(f.get("diagnosis") or ())) for f in report.get("failures") or []]
        return cls(status=status or run.get("status"), rc=rc, playbook=run.get("playbook", ""),
                   started_at=run.get("started_at"), ended_at=run.get("ended_at"),
                   duration_s=run.get("duration_s"), stages=stages, results=results,
                   failures=failures, hosts=report.get("hosts") or {}, report=report,
                   report_json=report_json, report_md=report_md, artifact_dir=artifact_dir)


# --- locating the project ---------------------------------------------------------------

def find_project_dir(project_dir=None):
    """The repo holding the Ansible content: ``project_dir``, ``$MTRT_PROJECT_DIR``,
    this package's parent directory or the working directory, the first that has the
    project's run_report callback."""
    explicit = project_dir or os.environ.get("MTRT_PROJECT_DIR")
    candidates = [explicit] if explicit else [Path(__file__).resolve().parents[1], Path.cwd()]
    for candidate in candidates:
        path = Path(candidate).expanduser().resolve()
        if (path / _CALLBACK_DIR / "run_report.py").is_file():
            return path
    raise FileNotFoundError("no mpi-trt-ansible project found in %s; pass project_dir"
                            % ", ".join(str(c) for c in candidates))


def state_home():
    """``$MTRT_STATE_HOME`` or ``~/.local/state/mpi-trt-ansible`` (as in group_vars)."""
    return Path(os.environ.get("MTRT_STATE_HOME") or "~/.local/state/mpi-trt-ansible").expanduser()


def default_private_data_dir():
    """Where runs keep their runner artifacts and reports unless told otherwise."""
    return state_home() / "runner"


# --- running --------------------------------------------------------------------------------

class _Run:
    """Per-run state shared by the runner's callbacks: events -> progress -> result, and the
    interrupt of ansible-playbook (cancel, timeout)."""

    def __init__(self, on_event, report_dir, ident):
        self.builder = report_lib.ReportBuilder()
        self.on_event = on_event
        self.report_json = Path(report_dir) / ident / "report.json"
        self.result = None
        self.lock = threading.Lock()
        self.pid = None  # ansible-playbook's, from its events
        self.stop_reason = None  # canceled | timeout
        self.interrupted_at = None

    def interrupt(self, reason):
        """Stop the run as Ctrl-C does (SIGINT to ansible-playbook); the first reason given wins."""
        with self.lock:
            if self.stop_reason is not None:
                return
            self.stop_reason, self.interrupted_at = reason, time.monotonic()
            pid = self.pid
        if pid:
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass

    def should_kill(self):
        """The runner's cancel callback: kill once the interrupted run had its grace (or no pid to signal)."""
        if self.stop_reason is None:
            return False
        return self.pid is None or time.monotonic() - self.interrupted_at > CANCEL_GRACE_S

    def emit(self, event):
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a caller's bug must not break the run
            LOG.exception("on_event raised for %s", event.type)

    def event_handler(self, event):
        if self.pid is None and isinstance(event.get("pid"), int):
            self.pid = event["pid"]
            if self.stop_reason is not None:  # interrupted before the first event: signal now
                reason, self.stop_reason = self.stop_reason, None
                self.interrupt(reason)
        for note in self.builder.feed(event):
            self.emit(_progress(note))
        return True  # keep the event in the artifacts

    def finish(self, runner):
        """Build the result once (runner's finished callback, or result() after a crash)."""
        with self.lock:
            if self.result is not None:
                return self.result
            status = self.stop_reason or (runner.status if runner.status in (
                "successful", "failed", "canceled", "timeout") else "error")
            closed = status if status in ("canceled", "timeout") else None
            for note in self.builder.finish(closed):
                self.emit(_progress(note))
            if self.report_json.is_file():
                report = json.loads(self.report_json.read_text(encoding="utf-8"))
                paths = dict(report_json=str(self.report_json),
                             report_md=str(self.report_json.with_name("report.md")))
            else:
                report, paths = self.builder.report(), {}
            self.result = RunResult.from_report(report, status, runner.rc,
                                                artifact_dir=runner.config.artifact_dir, **paths)
        self.emit(RunFinished(status=self.result.status, rc=self.result.rc, result=self.result))
        return self.result


class RunHandle:
    """A run in progress: ``wait``, ``cancel``, ``status``, ``result``."""

    def __init__(self, thread, runner, run, ident, timer=None):
        self._thread, self._runner, self._run, self._timer = thread, runner, run, timer
        self.ident = ident

    @property
    def status(self):
        """The runner's status: starting, running, successful, failed, canceled, timeout."""
        return self._runner.status

    @property
    def done(self):
        return not self._thread.is_alive()

    def cancel(self):
        """Stop the run as Ctrl-C would: ansible-playbook stops what it started and writes its
        report (``interrupted``); the runner kills it if it has not ended ``CANCEL_GRACE_S`` later."""
        self._run.interrupt("canceled")

    def wait(self, timeout=None):
        """Wait up to ``timeout`` seconds; True when the run is over."""
        self._thread.join(timeout)
        return self.done

    def result(self, timeout=None):
        """The :class:`RunResult`; waits for the end (TimeoutError after ``timeout``)."""
        if not self.wait(timeout):
            raise TimeoutError("run %s still running after %s s" % (self.ident, timeout))
        if self._timer is not None:
            self._timer.cancel()
        return self._run.finish(self._runner)


def _resolve_inventory(inventory, project):
    """Absolute inventory path(s): runner would read a relative one against its own dirs."""
    if inventory is None:
        return None
    paths = [inventory] if isinstance(inventory, (str, os.PathLike)) else list(inventory)
    resolved = []
    for item in paths:
        path = Path(item).expanduser()
        if not path.is_absolute():
            path = next((base / path for base in (Path.cwd(), project) if (base / path).exists()), path)
        resolved.append(str(path.resolve()) if path.exists() else str(item))
    return resolved[0] if isinstance(inventory, (str, os.PathLike)) else resolved


def start_pipeline(inventory=None, stages=None, extravars=None, on_event=None,
                   private_data_dir=None, timeout=None, playbook=SITE_PLAYBOOK,
                   project_dir=None, report_dir=None, quiet=True) -> RunHandle:
    """Start ``playbook`` (default the whole pipeline) in the background.

    ``inventory``: path (relative to the working directory or the project) or list
    of paths; None uses the project's ansible.cfg default. ``stages``: tags to run
    (e.g. ``["mpi_hello"]``; preflight always runs). ``extravars``: dict passed as
    ``-e``. ``on_event(event)``: progress callback. ``timeout``: seconds before the
    run is interrupted (status ``timeout``; see :meth:`RunHandle.cancel`). ``report_dir``:
    where the callback writes ``<ident>/report.{json,md}`` (default ``<private_data_dir>/reports``).
    """
    project = find_project_dir(project_dir)
    inventory = _resolve_inventory(inventory, project)
    private_data_dir = Path(private_data_dir or default_private_data_dir()).expanduser()
    private_data_dir.mkdir(parents=True, exist_ok=True)
    report_dir = Path(report_dir or private_data_dir / "reports").expanduser().resolve()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    ident = "%s-%s" % (stamp, uuid.uuid4().hex[:8])
    run = _Run(on_event, report_dir, ident)
    envvars = {
        # runner appends its own callback dir (awx_display) to this; nothing else to keep
        "ANSIBLE_CALLBACK_PLUGINS": str(project / _CALLBACK_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": "run_report",
        "MTRT_REPORT_DIR": str(report_dir),
        "MTRT_RUN_ID": ident,
    }
    bindir = str(Path(sys.executable).parent)
    if (Path(bindir) / "ansible-playbook").is_file():  # this venv's, even when not activated
        envvars["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", os.defpath)])
    thread, runner = ansible_runner.run_async(
        # suppress_env_files: otherwise runner saves envvars/extravars under
        # <private_data_dir>/env once and every later run reads those stale files
        suppress_env_files=True, private_data_dir=str(private_data_dir), project_dir=str(project),
        playbook=playbook, inventory=inventory, tags=",".join(stages) if stages else None,
        extravars=extravars or None, envvars=envvars, ident=ident,
        timeout=timeout + CANCEL_GRACE_S if timeout else None, quiet=quiet,  # the runner's kill: a backstop
        event_handler=run.event_handler, cancel_callback=run.should_kill, finished_callback=run.finish)
    timer = None
    if timeout:
        timer = threading.Timer(timeout, run.interrupt, args=("timeout",))
        timer.daemon = True
        timer.start()
    return RunHandle(thread, runner, run, ident, timer)


def run_pipeline(inventory=None, stages=None, extravars=None, on_event=None,
                 private_data_dir=None, timeout=None, **kwargs) -> RunResult:
    """Run and wait; same arguments as :func:`start_pipeline`."""
    return start_pipeline(inventory=inventory, stages=stages, extravars=extravars,
                          on_event=on_event, private_data_dir=private_data_dir,
                          timeout=timeout, **kwargs).result()


def latest_report(report_dir=None):
    """The newest report under ``report_dir`` (default the API's) as a dict, or None."""
    return report_lib.read_latest(Path(report_dir or default_private_data_dir() / "reports"))
