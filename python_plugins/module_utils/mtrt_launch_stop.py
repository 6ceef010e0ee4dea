# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Stop the mpirun launches of an interrupted run, on the launcher, by the pids in their pid files.

Plain Python (standard library and ``mtrt_proc``). The controller ships this file with
``mtrt_proc.py`` to the launcher's Python and runs :func:`main` there
(``mpi_trt_ansible/interrupt.py``: ``docker exec -i``, ssh, or a local process); no module
uses it.

Every launch writes ``<pid dir>/<kind>-<module pid>.pid`` holding mpirun's pid while it runs
(``mtrt_launch.execute``; the directory is ``$MTRT_LAUNCH_DIR``, default /tmp/mtrt-launch).
Nothing is chosen by name. A pid is stopped only while it leads its own session, as every
launch does (``mtrt_proc.run_bounded`` starts it with ``start_new_session``): a pid that
was reused by something else is left alone. Stopping is ``mtrt_proc.kill_tree``: SIGTERM to
the session and every descendant (mpirun forwards it to the ranks and stops its remote
daemons), SIGKILL after the grace. The module that started the launch then ends by
itself; it is sent SIGTERM when it does not within a few seconds.

What a launch started on the other nodes of its placement (Open MPI's daemon, orted or prted, and
the ranks under it) is stopped there too, over the cluster's ssh from the launcher, the
connection mpirun itself used (:func:`stop_on_nodes`): by the launch's own marker, never by name.
The marker is the job id (Open MPI 4: ``ess_base_jobid``) or namespace (5: ``ess_base_nspace``)
that mpirun's ssh clients pass on each daemon's command line, read from the launch's process tree
before it is killed, and the ``MTRT_LAUNCH_ID`` every rank's environment carries
(``mtrt_launch.Launch`` exports it). The launcher (``mtrt_launch.execute``) does the same after a
timeout. Each node is bounded (``REMOTE_TIMEOUT_S``); a node that does not answer (paused,
stopped) is reported, not waited for: its daemon ends itself once it notices that mpirun is gone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time

try:
    from ansible.module_utils.mtrt_proc import descendants, kill_tree, run_bounded
except ImportError:  # shipped without Ansible: the controller loads mtrt_proc beside this file
    from mtrt_proc import descendants, kill_tree, run_bounded

DEFAULT_DIR = "/tmp/mtrt-launch"
MODULE_WAIT_S = 5.0
# The environment variable every rank of a launch carries (its value is the launch's own id).
LAUNCH_ID_ENV = "MTRT_LAUNCH_ID"
# Seconds one node may take to answer and stop what the launch left there (ssh connect included).
REMOTE_TIMEOUT_S = 5.0
REMOTE_CONNECT_TIMEOUT_S = 2
REMOTE_GRACE_S = 1.0
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
# Open MPI's daemon command line (mpirun's ssh client carries it): the job id (4.x) or namespace (5.x).
_DAEMON_TOKEN_RE = re.compile(r"\b(?:ess_base_jobid|ess_base_nspace)[\s\"']+([^\s\"';]+)")

# Runs on each node with the node's python3 (standard library only); reads its options from the
# JSON literal below, so nothing of the marker stands in its own command line.
_NODE_PROGRAM = r"""
import json, os, signal, socket, time
CFG = json.loads(%r)
ENV = CFG["env"].encode()
TOKENS = set(t.encode() for t in CFG["tokens"])


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def table():
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read("/proc/%%s/stat" %% entry).decode("ascii", "replace")
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 1 and fields[0] not in ("Z", "X"):
                out[int(entry)] = int(fields[1])
    return out


def alive(pid):
    stat = read("/proc/%%d/stat" %% pid).decode("ascii", "replace")
    return bool(stat) and stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


procs = table()
skip, pid = set(), os.getpid()
while pid in procs and pid not in skip:  # this program and its ancestors
    skip.add(pid)
    pid = procs[pid]
matched = []
for pid in procs:
    if pid in skip:
        continue
    argv = read("/proc/%%d/cmdline" %% pid).split(b"\0")
    if (TOKENS and TOKENS.intersection(argv)) or (ENV and ENV in read("/proc/%%d/environ" %% pid).split(b"\0")):
        matched.append(pid)
children = {}
for pid, ppid in procs.items():
    children.setdefault(ppid, []).append(pid)
tree, todo = [], list(matched)
while todo:
    pid = todo.pop()
    if pid in tree or pid in skip:
        continue
    tree.append(pid)
    todo.extend(children.get(pid, []))
found = [{"pid": pid, "cmd": b" ".join(a for a in read("/proc/%%d/cmdline" %% pid).split(b"\0") if a)
          .decode("utf-8", "replace")[:160]} for pid in sorted(tree)]
for sig, wait in ((signal.SIGTERM, CFG["grace_s"]), (signal.SIGKILL, 1.0)):
    live = [p for p in tree if alive(p)]
    for p in live:
        try:
            os.kill(p, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while live and time.monotonic() < deadline and any(alive(p) for p in live):
        time.sleep(0.05)
print(json.dumps({"node": socket.gethostname(), "found": found, "left_running": [p for p in tree if alive(p)]}))
"""


def _stat(pid):
    """``(state, ppid, session)`` of ``pid`` from /proc, or None when there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            text = handle.read().decode("ascii", "replace")
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2:].split()
    try:
        return fields[0], int(fields[1]), int(fields[3])
    except (IndexError, ValueError):
        return None


def _running(pid):
    state = _stat(pid) if pid else None
    return state is not None and state[0] not in ("Z", "X")


def parse_launch(path, text):
    """``<dir>/mpi_hello-1234.pid`` holding ``5678`` (and, on a second line, the launch's JSON: its
    ``launch_id``, ``hosts`` and ``ssh_args``) -> ``{file, kind, module_pid, pid, launch_id, hosts,
    ssh_args}``; None for another file."""
    name = os.path.basename(path)
    if not name.endswith(".pid"):
        return None
    kind, _, module_pid = name[:-4].rpartition("-")
    if not kind or not module_pid.isdigit():
        return None
    first, _, rest = (text or "").strip().partition("\n")
    try:
        pid = int(first.strip() or 0)
    except ValueError:
        pid = 0
    try:
        about = json.loads(rest) if rest.strip() else {}
    except ValueError:
        about = {}
    return {"file": path, "kind": kind, "module_pid": int(module_pid), "pid": pid,
            "launch_id": about.get("launch_id") if isinstance(about, dict) else None,
            "hosts": list(about.get("hosts") or []) if isinstance(about, dict) else [],
            "ssh_args": list(about.get("ssh_args") or []) if isinstance(about, dict) else []}


def read_launches(pid_dir, known=()):
    """The launches of the pid files in ``pid_dir`` and of ``known`` (``{file, text}`` read
    earlier; their file may be gone since): ``[{file, kind, module_pid, pid}]``."""
    found, files = [], set()
    try:
        names = sorted(os.listdir(pid_dir))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(pid_dir, name)
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError:
            continue
        entry = parse_launch(path, text)
        if entry is not None:
            found.append(entry)
            files.add(path)
    for item in known or ():
        entry = parse_launch(item.get("file") or "", item.get("text"))
        if entry is not None and entry["file"] not in files:
            found.append(entry)
            files.add(entry["file"])
    return found


def daemon_tokens(pids):
    """The Open MPI job ids / namespaces on the command lines of ``pids`` (mpirun's ssh clients carry
    each daemon's command line): what marks that launch's daemons on the other nodes."""
    tokens = []
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                text = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        for token in _DAEMON_TOKEN_RE.findall(text):
            if token not in tokens:
                tokens.append(token)
    return tokens


def node_program(launch_id, tokens, grace_s=REMOTE_GRACE_S):
    """The program that stops, on one node, every process marked by ``launch_id`` (in its environment)
    or ``tokens`` (on its command line), with what runs under them; it prints one JSON line."""
    options = {"env": "%s=%s" % (LAUNCH_ID_ENV, launch_id) if launch_id else "", "tokens": list(tokens or []),
               "grace_s": float(grace_s)}
    return _NODE_PROGRAM % json.dumps(options)


def _is_local(host):
    return host in _LOCAL_NAMES or host == socket.gethostname() or host.split(".")[0] == socket.gethostname()


def stop_on_nodes(hosts, launch_id, tokens, timeout_s=REMOTE_TIMEOUT_S, ssh_args=(), python="python3"):
    """Stop what a launch started on each of ``hosts`` (its placement's hosts), in parallel, each bounded
    by ``timeout_s``: the launcher itself by a local Python, every other host over ssh as mpirun reached
    it (BatchMode, the cluster's ssh_config and pinned host keys; ``ssh_args`` as mpirun's plm_rsh_args).

    Returns ``[{host, stopped: [{pid, cmd}], left_running: [pids], error, seconds}]``, in ``hosts`` order.
    Nothing is done (and ``[]`` returned) without a marker.
    """
    if not launch_id and not tokens:
        return []
    program = node_program(launch_id, tokens)
    hosts = list(dict.fromkeys(h for h in hosts if h))
    results = [None] * len(hosts)

    def work(i, host):
        if _is_local(host):
            argv = [sys.executable or python, "-"]
        else:
            argv = (["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % REMOTE_CONNECT_TIMEOUT_S]
                    + list(ssh_args) + [host, python, "-"])
        entry = {"host": host, "stopped": [], "left_running": [], "error": None, "seconds": None}
        try:
            run = run_bounded(argv, timeout_s, stdin_text=program)
        except OSError as exc:
            entry["error"] = "%s: %s" % (argv[0], exc)
            results[i] = entry
            return
        entry["seconds"] = run["duration_s"]
        lines = [line for line in run["stdout"].splitlines() if line.startswith("{")]
        try:
            answer = json.loads(lines[-1])
            entry.update(stopped=answer.get("found") or [], left_running=answer.get("left_running") or [])
        except (IndexError, ValueError):
            why = "no answer in %ss" % timeout_s if run["timed_out"] else "rc %s" % run["rc"]
            last = (run["stderr"].strip().splitlines() or [""])[-1]
            entry["error"] = "%s%s" % (why, ": %s" % last[:200] if last else "")
        results[i] = entry

    threads = [threading.Thread(target=work, args=(i, h), daemon=True) for i, h in enumerate(hosts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s + 10)
    return [r or {"host": h, "stopped": [], "left_running": [], "error": "no answer in %ss" % timeout_s,
                  "seconds": None} for r, h in zip(results, hosts)]


def ssh_args_of(mca):
    """mpirun's own extra ssh arguments (the ``plm_rsh_args`` MCA parameter), for the same connection."""
    return shlex.split(str((mca or {}).get("plm_rsh_args") or ""))


def describe_nodes(entries):
    """'fnode2: stopped orted (pid 41), python3 (pid 47); fnode1: nothing left' for a message."""
    parts = []
    for entry in entries or []:
        if entry.get("error"):
            parts.append("%s: not reached (%s)" % (entry["host"], entry["error"]))
            continue
        stopped = entry.get("stopped") or []
        text = "%s: %s" % (entry["host"], "stopped %s" % ", ".join(
            "%s (pid %s)" % (os.path.basename(str(p.get("cmd") or "?").split(" ")[0]), p.get("pid"))
            for p in stopped[:6]) + (" and %d more" % (len(stopped) - 6) if len(stopped) > 6 else "")
            if stopped else "nothing left")
        if entry.get("left_running"):
            text += ", STILL RUNNING: pids %s" % ", ".join(map(str, entry["left_running"]))
        parts.append(text)
    return "; ".join(parts)


def stop_one(launch, grace_s):
    """Stop one launch (a :func:`read_launches` entry); returns the entry with what happened."""
    pid, module_pid = launch["pid"], launch.get("module_pid")
    out = dict(launch, was_running=False, stopped=[], left_running=[], skipped=None, nodes=[])
    state = _stat(pid) if pid > 0 else None
    module_started_it = False
    tokens = []
    if state is not None and state[0] not in ("Z", "X"):
        if state[2] != pid:
            out["skipped"] = ("pid %d does not lead its own session, so it is not the launch this file "
                              "recorded (the pid was reused)" % pid)
        else:
            module_started_it = state[1] == module_pid
            out["was_running"] = True
            out["stopped"] = [pid] + descendants(pid, pid)
            tokens = daemon_tokens(out["stopped"])
            out["left_running"] = kill_tree(pid, pgid=pid, grace_s=grace_s)
    if out["skipped"] is None and launch.get("hosts") and (out["was_running"] or launch.get("launch_id")):
        # what the launch started on its nodes (daemons, ranks), whether or not mpirun still ran
        out["nodes"] = stop_on_nodes(launch["hosts"], launch.get("launch_id"), tokens,
                                     ssh_args=launch.get("ssh_args") or ())
    if module_started_it:
        deadline = time.monotonic() + MODULE_WAIT_S
        while _running(module_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(module_pid):
            try:
                os.kill(module_pid, signal.SIGTERM)
            except OSError:
                pass
            time.sleep(0.5)
    if not (module_pid and _running(module_pid)) or out["was_running"]:
        try:
            os.unlink(launch["file"])
        except OSError:
            pass
    return out


def read_servers(serve_dirs, run_age_s):
    """The serving launches started within the last ``run_age_s`` seconds (this run's): each
    ``<serve dir>/<server>/mpirun.pid`` that ``triton_serve_instance`` writes when it starts a server
    (``mtrt_proc.start_detached``), younger than the run by the node's own clock, with the hosts of the
    server's ``hostfile`` beside it: ``[{file, kind: serve:<server>, module_pid: None, pid, hosts}]``."""
    found = []
    if run_age_s is None:
        return found
    now = time.time()
    for base in serve_dirs or ():
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for name in names:
            path = os.path.join(base, name, "mpirun.pid")
            try:
                age = now - os.stat(path).st_mtime
                with open(path) as handle:
                    pid = int(handle.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if age > float(run_age_s) + 2:
                continue  # started by an earlier run: serving outlives its play on purpose
            hosts = []
            try:
                with open(os.path.join(base, name, "hostfile")) as handle:
                    hosts = [line.split()[0] for line in handle if line.strip() and not line.startswith("#")]
            except OSError:
                pass
            found.append({"file": path, "kind": "serve:%s" % name, "module_pid": None, "pid": pid,
                          "launch_id": None, "hosts": hosts, "ssh_args": []})
    return found


def stop_launches(pid_dir=None, known=(), grace_s=3.0, serve_dirs=(), run_age_s=None):
    """Stop every launch recorded in ``pid_dir`` (default ``$MTRT_LAUNCH_DIR``, else /tmp/mtrt-launch)
    and in ``known``, and every server of ``serve_dirs`` this run started (:func:`read_servers`);
    returns ``{pid_dir, launches: [...]}``."""
    pid_dir = pid_dir or os.environ.get("MTRT_LAUNCH_DIR") or DEFAULT_DIR
    entries = read_launches(pid_dir, known) + read_servers(serve_dirs, run_age_s)
    return {"pid_dir": pid_dir, "launches": [stop_one(entry, grace_s) for entry in entries]}


def main(argv=None):
    """``[json options]``: ``{"pid_dir": ..., "known": [...], "grace_s": ..., "serve_dirs": [...],
    "run_age_s": ...}``; prints the result as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    options = json.loads(argv[0]) if argv else {}
    result = stop_launches(options.get("pid_dir"), options.get("known") or (), float(options.get("grace_s", 3.0)),
                           options.get("serve_dirs") or (), options.get("run_age_s"))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
