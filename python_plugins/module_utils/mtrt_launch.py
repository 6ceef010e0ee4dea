# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""The one launcher of every mpirun the project starts (hello, collectives, GPU checks, run.py, serving).

Plain Python apart from :func:`run_module`, which drives an AnsibleModule. What it
owns, so that no module re-implements it:

* the shared options (:func:`argument_spec`, documented by the ``mtrt_mpirun`` doc fragment);
* the hosts (a hostfile or ``host:slots`` strings) and Open MPI's by-slot placement of the ranks;
* the argv: mpirun and the ranks' interpreter resolved to absolute paths on the launcher (every
  rank runs the same ones), ``--allow-run-as-root`` only as root, ``--hostfile`` / ``--host``,
  ``-np``, ``--mca`` pairs, ``-x`` for every exported variable, ``--tag-output`` so each line
  says which rank printed it;
* the bounded run (``mtrt_proc.run_bounded``: the whole process tree is killed at the deadline),
  then, after a timeout, what the launch started on every node of its placement (Open MPI's
  daemon and the ranks under it), found by the launch's own markers and stopped over the
  cluster's ssh (``mtrt_launch_stop.stop_on_nodes``; ``stopped_on_nodes`` says what was stopped
  where); a pid file per launch while it runs (its pid, id and hosts: an interrupted play stops
  it, and what it started on its nodes, the same way), and the split of the tagged output into
  plain stdout/stderr plus each rank's last lines;
* the result keys every launch returns and its failure messages, with the known raw errors
  explained (``mtrt_explain``) and the ranks that never printed named with their host.

A stage module supplies its options, the command every rank runs and a ``judge`` that parses the
output into result keys and problems; :func:`run_module` does the rest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid

from ansible.module_utils.mtrt_explain import explain, format_explained, signalled_ranks
from ansible.module_utils.mtrt_launch_stop import (LAUNCH_ID_ENV, daemon_tokens, describe_nodes, ssh_args_of,
                                                   stop_on_nodes)
from ansible.module_utils.mtrt_proc import run_bounded, tail
from ansible.module_utils.mtrt_rules import HostfileError, by_slot_placement, parse_hostfile, ranks_on_hosts

# Where a launch's pid file lives while it runs (one per launch); an interrupted run stops them by pid
# (module_utils/mtrt_launch_stop.py, driven by mpi_trt_ansible/interrupt.py).
PID_DIR = os.environ.get("MTRT_LAUNCH_DIR", "/tmp/mtrt-launch")
# Open MPI's --tag-output prefix. It starts every line a rank prints, and again every 4 KiB inside a
# long line (each output chunk is tagged), so tags are stripped wherever they stand.
_TAG_RE = re.compile(r"\[(\d+),(\d+)\]<(stdout|stderr)>:")
RANK_TAIL_LINES = 5
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


class LaunchError(ValueError):
    """A launch that cannot be started as asked (no such hostfile, more ranks than slots...)."""


# Options of every launch (doc fragment mtrt_mpirun.launch).
def _launch_spec(timeout_s):
    return dict(
        mpirun=dict(type="str", default="mpirun"),
        timeout_s=dict(type="int", default=timeout_s),
        mca=dict(type="dict", default={}),
        env=dict(type="dict", default={}),
        extra_args=dict(type="list", elements="str", default=[]),
        tag_output=dict(type="bool", default=True),
    )


# Options every mpirun-launching module shares; documented once in doc_fragments/mtrt_mpirun.py (the
# placement in its DOCUMENTATION, the launch in LAUNCH).
def argument_spec(timeout_s=120, **own):
    spec = dict(
        hostfile=dict(type="path"),
        hosts=dict(type="list", elements="str"),
        np=dict(type="int"),
        python=dict(type="str", default="python3"),
        **_launch_spec(timeout_s)
    )
    spec.update(own)
    return spec


def hosts_of(params):
    """``[(host, slots)]`` from ``params['hostfile']`` (read here) or ``params['hosts']``."""
    if params.get("hostfile"):
        try:
            with open(params["hostfile"]) as handle:
                hosts = parse_hostfile(handle.read())
        except OSError as exc:
            raise LaunchError("cannot read hostfile %s: %s" % (params["hostfile"], exc.strerror or exc))
        except HostfileError as exc:
            raise LaunchError("hostfile %s: %s" % (params["hostfile"], exc))
    else:
        hosts = []
        for item in params.get("hosts") or []:
            name, _, slots = str(item).partition(":")
            if not name or (slots and not slots.isdigit()):
                raise LaunchError("hosts entry %r is not name[:slots]" % item)
            hosts.append((name, int(slots or 1)))
    if not hosts:
        raise LaunchError("no hosts: give a hostfile with at least one host, or hosts")
    return hosts


def running_as_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _absolute(program):
    """``program`` resolved on the launcher (as given when it is a path or not found)."""
    if os.sep in program:
        return program
    return shutil.which(program) or program


class Launch:
    """One planned mpirun: hosts, ranks, where each rank lands, the argv and its environment."""

    def __init__(self, params, command, env=None):
        self.params = params
        self.hosts = hosts_of(params)
        self.slots = sum(s for _, s in self.hosts)
        self.np = params.get("np") or self.slots
        placement = by_slot_placement(self.hosts, self.np)
        if placement is None:
            raise LaunchError("np=%d ranks requested but the hosts give %d slots (%s): lower np or raise node_slots"
                              % (self.np, self.slots, self.layout()))
        # "localhost" in a hostfile is the launcher itself, which ranks report by its real name.
        me = socket.gethostname()
        self.placement = {r: (me if h in _LOCAL_NAMES else h) for r, h in placement.items()}
        self.env = dict(env if env is not None else params.get("env") or {})
        # Every rank carries the launch's own id: what marks its processes on any node (never a name).
        self.launch_id = "%d-%s" % (os.getpid(), uuid.uuid4().hex[:12])
        self.env[LAUNCH_ID_ENV] = self.launch_id
        self.mpirun = _absolute(params.get("mpirun") or "mpirun")
        command = [str(c) for c in command]
        if command:
            # The program every rank runs (python3, ...) is resolved where mpirun starts, so
            # every rank runs the interpreter the launcher sees, whatever a remote shell's PATH says.
            command[0] = _absolute(command[0])
        self.command = command
        self.argv = self._argv()

    def layout(self):
        return ", ".join("%s:%d" % hs for hs in self.hosts)

    def _head(self):
        """mpirun, ``--allow-run-as-root`` only as root, ``--tag-output`` unless turned off."""
        argv = [self.mpirun]
        if running_as_root():
            argv.append("--allow-run-as-root")
        if self.params.get("tag_output", True):
            argv.append("--tag-output")
        return argv

    def _options(self):
        """The MCA parameters, the exported environment (sorted; the launch's id last) and the extra args."""
        p = self.params
        argv = []
        for key in sorted(p.get("mca") or {}):
            argv += ["--mca", str(key), str(p["mca"][key])]
        for name in sorted(n for n in self.env if n != LAUNCH_ID_ENV):
            argv += ["-x", str(name)]
        if LAUNCH_ID_ENV in self.env:
            argv += ["-x", LAUNCH_ID_ENV]
        return argv + [str(a) for a in p.get("extra_args") or []]

    def _argv(self):
        p = self.params
        argv = self._head()
        if p.get("hostfile"):
            argv += ["--hostfile", p["hostfile"]]
        else:
            argv += ["--host", ",".join("%s:%d" % hs for hs in self.hosts)]
        argv += ["-np", str(int(self.np))]
        return argv + self._options() + self.command

    def hosts_of_ranks(self, ranks):
        """``'0-1 on node1, 2 on node2'`` for ``ranks``."""
        return ranks_on_hosts(ranks, self.placement)


def split_tagged(text):
    """Open MPI ``--tag-output`` text -> (plain text, {rank: [lines]}).

    Open MPI tags each chunk it forwards, so a rank's long line can arrive in pieces with other
    ranks' pieces between them on the same physical line; a physical line's newline ends the line
    of the rank whose tag came last. Each piece goes to its own rank's line, and each line is
    complete when its newline comes (or at the end of the text). Lines without a tag (mpirun's
    own messages) stay in the plain text, untouched. The plain text lists lines as they completed.
    """
    plain, per_rank, pending = [], {}, {}
    for line in text.splitlines():
        if not _TAG_RE.match(line):
            plain.append(line)
            continue
        pieces = _TAG_RE.split(line)  # ['', job, rank, stream, text, job, rank, stream, text, ...]
        rank = None
        for i in range(1, len(pieces), 4):
            rank = int(pieces[i + 1])
            pending[rank] = pending.get(rank, "") + pieces[i + 3]
        body = pending.pop(rank)
        plain.append(body)
        per_rank.setdefault(rank, []).append(body)
    for rank in sorted(pending):  # pieces whose newline never came
        plain.append(pending[rank])
        per_rank.setdefault(rank, []).append(pending[rank])
    return "\n".join(plain) + ("\n" if plain else ""), per_rank


def base_result(kind, launch=None, argv=None):
    """The keys every launch result carries, before it ran."""
    return dict(
        mtrt_kind=kind, changed=False, command=launch.argv if launch else (argv or []), rc=None,
        timed_out=False, duration_s=0.0, np=launch.np if launch else 0,
        expected_placement={str(r): h for r, h in (launch.placement if launch else {}).items()},
        ranks_seen=[], ranks_silent=[], ranks_signalled=[], rank_tails={}, left_running=[], stopped_on_nodes=[],
        explained=[],
        problems=[], stdout_tail="", stderr_tail="")


def execute(launch, timeout_s, pid_dir=PID_DIR, name="launch"):
    """Run ``launch`` bounded; return the run dict with stdout/stderr untagged and per-rank lines.

    After a timeout, what the launch started on the nodes of its placement is stopped there too
    (``stopped_on_nodes`` in the run dict: ``[{host, stopped, left_running, error, seconds}]``).
    """
    pid_path = None
    if pid_dir:
        try:
            os.makedirs(pid_dir, mode=0o700, exist_ok=True)
            pid_path = os.path.join(pid_dir, "%s-%d.pid" % (name, os.getpid()))
        except OSError:
            pid_path = None
    launch_id = getattr(launch, "launch_id", None)
    hosts = sorted(set((getattr(launch, "placement", None) or {}).values()))
    ssh_args = ssh_args_of((getattr(launch, "params", None) or {}).get("mca"))
    tokens = []

    def remember(pid):
        if pid_path:
            about = {"launch_id": launch_id, "hosts": hosts, "ssh_args": ssh_args}
            with open(pid_path, "w") as handle:
                handle.write("%d\n%s\n" % (pid, json.dumps(about)))

    def note_daemons(pids):
        tokens.extend(daemon_tokens(pids))

    try:
        run = run_bounded(launch.argv, timeout_s, env=launch.env or None, on_start=remember,
                          on_timeout=note_daemons)
        run["stopped_on_nodes"] = []
        if run["timed_out"] and hosts and (launch_id or tokens):
            run["stopped_on_nodes"] = stop_on_nodes(hosts, launch_id, tokens, ssh_args=ssh_args)
    finally:
        if pid_path:
            try:
                os.unlink(pid_path)
            except OSError:
                pass
    out, out_ranks = split_tagged(run["stdout"])
    err, err_ranks = split_tagged(run["stderr"])
    per_rank = {r: out_ranks.get(r, []) + err_ranks.get(r, []) for r in set(out_ranks) | set(err_ranks)}
    run.update(stdout=out, stderr=err, per_rank=per_rank)
    return run


def record(result, launch, run):
    """Fill ``result`` with what every launch reports about its run."""
    seen = sorted(r for r in run["per_rank"] if r in launch.placement)
    result.update(
        rc=run["rc"], timed_out=run["timed_out"], duration_s=run["duration_s"],
        left_running=run["left_running"], stopped_on_nodes=run.get("stopped_on_nodes") or [], ranks_seen=seen,
        ranks_silent=sorted(set(launch.placement) - set(seen)),
        rank_tails={str(r): lines[-RANK_TAIL_LINES:] for r, lines in sorted(run["per_rank"].items())},
        stdout_tail=tail(run["stdout"]), stderr_tail=tail(run["stderr"]),
        explained=explain(run["stdout"] + "\n" + run["stderr"]),
        ranks_signalled=signalled_ranks(run["stdout"] + "\n" + run["stderr"]))


def failure_message(kind, launch, result, problems, bound_name="timeout_s", advice=None):
    """What failed first (the timeout, or the problems the output shows), then where, which ranks
    never printed and on which host, each silent-or-not rank's last line on a timeout, the
    explained causes, and the raw tail they came from."""
    where = "%s: np=%d on %s" % (kind, launch.np, launch.layout())
    parts = []
    if result["timed_out"]:
        parts.append("%s timed out after %ds and every process it started was killed; %s (%s)"
                     % (kind, launch.params.get("timeout_s") or 0,
                        advice or "raise %s if the work needs longer" % bound_name, where))
        if result["left_running"]:
            parts.append("pids %s could not be killed" % ", ".join(map(str, result["left_running"])))
        if result.get("stopped_on_nodes"):
            parts.append("on its nodes afterwards: %s" % describe_nodes(result["stopped_on_nodes"]))
        parts += list(problems or [])
    else:
        parts += list(problems or [])
        parts.append("%s, mpirun exited with %s" % (where, result["rc"]))
    failed = result["timed_out"] or result["rc"] not in (0, None)
    if result["ranks_silent"] and failed:
        parts.append("rank(s) %s never printed anything" % launch.hosts_of_ranks(result["ranks_silent"]))
    if result["timed_out"]:
        if result["ranks_seen"]:
            parts.append("rank(s) that had answered: %s" % ", ".join(
                "%d@%s" % (r, launch.placement.get(r, "?")) for r in result["ranks_seen"]))
        for rank in result["ranks_seen"][:4]:
            last = (result["rank_tails"].get(str(rank)) or [""])[-1]
            parts.append("rank %d (%s) last printed %r" % (rank, launch.placement.get(rank, "?"), last[:160]))
    if result["explained"]:
        parts.append(format_explained(result["explained"], limit=3))
    if not result["explained"] and failed:
        parts.append("output tail: %s" % (tail((result["stdout_tail"] + "\n" + result["stderr_tail"]).strip(), 8)
                                          or "(empty)"))
    return ". ".join(p.rstrip(".") for p in parts) + "."


def run_module(module, kind, command, judge, env=None, check=None, bound_name="timeout_s", advice=None,
               defaults=None):
    """Drive one launch inside ``module``: plan, check mode, run, judge, exit or fail.

    ``command``: what every rank runs, e.g. ``[python, script, args...]``.
    ``judge(run, launch, result) -> problems``: parses the run into ``result`` keys.
    ``check(launch) -> problems``: refusals before anything starts (optional).
    ``defaults``: the module's own result keys with their empty values (every result carries them).
    ``bound_name`` / ``advice``: the variable that sets the bound, and what a timeout message advises.
    """
    params = module.params
    try:
        launch = Launch(params, command, env=env)
    except LaunchError as exc:
        result = dict(base_result(kind, argv=[params.get("mpirun") or "mpirun"] + [str(c) for c in command]),
                      **(defaults or {}))
        module.fail_json(msg="%s (%s)" % (exc, kind), **dict(result, problems=[str(exc)]))
    result = dict(base_result(kind, launch), **(defaults or {}))
    problems = list(check(launch) if check else [])
    if problems:
        module.fail_json(msg="%s (%s)" % ("; ".join(problems), kind), **dict(result, problems=problems))
    if not os.path.exists(launch.mpirun):
        msg = ("%s: mpirun not found on the launcher (%s): install Open MPI there (the node image has it)"
               % (kind, params.get("mpirun")))
        module.fail_json(msg=msg, **dict(result, problems=[msg]))
    if module.check_mode:
        # rc stays null (nothing ran); say failed=false, or Ansible reads a non-zero rc as a failure.
        module.exit_json(skipped_reason="check mode: mpirun not started", failed=False, **result)
    run = execute(launch, params["timeout_s"], name=kind)
    record(result, launch, run)
    if run["timed_out"]:
        problems = []
        try:
            problems = judge(run, launch, result) or []
        except Exception:  # noqa: BLE001 - what a killed run printed may not parse; the timeout is the news
            pass
        module.fail_json(msg=failure_message(kind, launch, result, problems, bound_name, advice),
                         **dict(result, problems=problems + ["timed out"]))
    try:
        problems = judge(run, launch, result) or []
    except ValueError as exc:  # a parser found no usable output (its message says what was missing)
        problems = [str(exc)]
    result["problems"] = problems
    if problems or run["rc"] != 0:
        module.fail_json(msg=failure_message(kind, launch, result, problems, bound_name, advice), **result)
    module.exit_json(**result)


# =====================================================================================================
# One application context per rank, started detached (serving: one tritonserver per rank).
#
# An additive form beside the one-command launch above, which it leaves unchanged. Its interface:
#
# * ``context_argument_spec(timeout_s, **own)``: the options such a launch shares with every launch
#   (mpirun, timeout_s, mca, env, extra_args, tag_output); documented by the ``mtrt_mpirun.contexts``
#   doc fragment. The hosts and the ranks come from the contexts, not from options.
# * ``ContextLaunch(params, contexts, hostfile, env=None, extra_slots=0, names=None)``: ``contexts`` is
#   ``[(host, argv)]`` in rank order (rank r is context r, ``-n 1 --host host:slots`` each, joined by
#   ``:``); ``hostfile`` is where the launch's own hostfile goes (each host once, with the slots its
#   contexts take, plus ``extra_slots`` on rank 0's host for processes the job spawns);
#   ``names`` gives each rank's host as the inventory names it (default: the context's host).
#   It is a :class:`Launch` (``argv``, ``env``, ``np``, ``placement``, ``layout()``, ``hosts_of_ranks()``),
#   plus ``hostfile_text``.
# * ``detached_result(kind, launch)``: ``base_result``'s keys plus ``detached: true`` (the report then
#   reads a null rc as "still running", not "not started").
# * ``start_detached(launch, log_path, pid_path, cwd="/")``: writes the hostfile and a start line to the
#   log, starts mpirun in a new session (mtrt_proc.start_detached), waits (bounded) until its command line
#   is readable in /proc, and returns ``(pid, start_ticks)``; the process outlives the caller.
# * ``exit_status(pid)``: mpirun's exit code once it ended (the caller started it), else None.
# * ``last_start(text)``: a detached launch's log since its last start line.
# * ``record_detached(result, launch, log_text, ...)``: the shared launch keys (rc, timed_out,
#   duration_s, ranks_seen/ranks_silent, rank_tails, left_running, explained, stdout_tail,
#   stderr_tail = mpirun's own lines) read from a detached launch's log.
# =====================================================================================================
START_MARK = "==== mtrt start "
_EXEC_WAIT_S = 5.0


def context_argument_spec(timeout_s=300, **own):
    """Options of a launch with one context per rank (fragments ``mtrt_mpirun.launch`` and ``.contexts``)."""
    spec = _launch_spec(timeout_s)
    spec.update(own)
    return spec


class ContextLaunch(Launch):
    """One planned mpirun with one application context per rank, each pinned to its host."""

    def __init__(self, params, contexts, hostfile, env=None, extra_slots=0, names=None):  # noqa: D107
        # Launch.__init__ reads the hosts from options; here they come from the contexts.
        self.params = params
        if not contexts:
            raise LaunchError("no ranks: a launch needs at least one context")
        counts = []
        for host, _argv in contexts:
            if not host:
                raise LaunchError("a context has no host")
            for item in counts:
                if item[0] == host:
                    item[1] += 1
                    break
            else:
                counts.append([str(host), 1])
        counts[0][1] += int(extra_slots or 0)
        self.hosts = [(h, n) for h, n in counts]
        self.slots = sum(n for _, n in self.hosts)
        self.np = len(contexts)
        names = list(names or [])
        self.placement = {r: str(names[r] if r < len(names) and names[r] else host)
                          for r, (host, _argv) in enumerate(contexts)}
        self.env = dict(env if env is not None else params.get("env") or {})
        self.mpirun = _absolute(params.get("mpirun") or "mpirun")
        self.hostfile = hostfile
        self.hostfile_text = "".join("%s slots=%d\n" % hs for hs in self.hosts)
        self.contexts = []
        for host, argv in contexts:
            argv = [str(a) for a in argv]
            if argv:
                argv[0] = _absolute(argv[0])
            self.contexts.append((str(host), argv))
        self.command = None
        self.argv = self._argv()

    def _argv(self):
        argv = self._head() + ["--hostfile", self.hostfile] + self._options()
        slots = dict(self.hosts)
        for rank, (host, command) in enumerate(self.contexts):
            if rank:
                argv.append(":")
            # host:N with N = the host's slots in the hostfile: a bare host means one slot, and a second
            # rank (or a spawned process) there would find the node "already filled".
            argv += ["-n", "1", "--host", "%s:%d" % (host, slots[host])] + command
        return argv


def detached_result(kind, launch):
    """The keys every launch result carries (``base_result``), for a launch that runs detached."""
    return dict(base_result(kind, launch), detached=True)


def start_line(argv):
    """The line written to a detached launch's log before each start (``last_start`` finds it)."""
    import time
    return "%s%s: %s\n" % (START_MARK, time.strftime("%Y-%m-%dT%H:%M:%S"), " ".join(argv))


def last_start(text):
    """A detached launch's log text since its last start line (older runs left out)."""
    index = (text or "").rfind(START_MARK)
    return text[index:] if index >= 0 else (text or "")


def _start_ticks_and_cmdline(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read()
    except (OSError, ValueError):
        return None, b""
    return int(stat[stat.rindex(")") + 2:].split()[19]), cmdline


def start_detached(launch, log_path, pid_path, cwd="/"):
    """Start ``launch`` detached: its hostfile written, a start line in ``log_path``, mpirun in a new session.

    Returns ``(pid, start_ticks)``. It returns once the new program's command line can be read in
    /proc (a process is visible there before exec has set its arguments; bounded by 5 s), so a caller
    that identifies the process by its command line never mistakes a fresh start for a dead one.
    """
    import time
    from ansible.module_utils.mtrt_fileio import atomic_write
    from ansible.module_utils.mtrt_proc import start_detached as _start

    os.makedirs(os.path.dirname(os.path.abspath(launch.hostfile)), exist_ok=True)
    atomic_write(launch.hostfile, launch.hostfile_text.encode(), 0o644)
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "a") as log:
        log.write(start_line(launch.argv))
    pid = _start(launch.argv, log_path, pid_path, env=launch.env, cwd=cwd)
    deadline = time.monotonic() + _EXEC_WAIT_S
    ticks, cmdline = _start_ticks_and_cmdline(pid)
    while not cmdline and ticks is not None and time.monotonic() < deadline:
        time.sleep(0.01)
        ticks, cmdline = _start_ticks_and_cmdline(pid)
    return pid, ticks


def exit_status(pid):
    """The exit code of ``pid`` (a child this process started) once it ended: negative for a signal;
    None while it runs or when it is not this process's child."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if not done:
        return None
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else None


def record_detached(result, launch, log_text, rc=None, timed_out=False, duration_s=0.0, left_running=()):
    """Fill ``result`` with the shared launch keys, read from a detached launch's log (its last start).

    The log holds the ranks' tagged lines and mpirun's own (untagged) ones: ``stdout_tail`` is the
    untagged text of the whole log, ``stderr_tail`` mpirun's own lines, as the report shows them.
    """
    text = last_start(log_text)
    lines = text.splitlines()
    if lines and lines[0].startswith(START_MARK):
        lines = lines[1:]
    text = "\n".join(lines) + ("\n" if lines else "")
    plain, per_rank = split_tagged(text)
    own = "\n".join(line for line in lines if not _TAG_RE.match(line))
    seen = sorted(r for r in per_rank if r in launch.placement)
    result.update(
        rc=rc, timed_out=bool(timed_out), duration_s=round(float(duration_s or 0.0), 3),
        left_running=list(left_running or []), ranks_seen=seen,
        ranks_silent=sorted(set(launch.placement) - set(seen)),
        rank_tails={str(r): lines_[-RANK_TAIL_LINES:] for r, lines_ in sorted(per_rank.items())},
        stdout_tail=tail(plain), stderr_tail=tail(own), explained=explain(plain))
    return result
