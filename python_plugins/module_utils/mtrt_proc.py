# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Bounded process execution: the one way the project's modules run a command on a node.

Plain Python (no Ansible imports). ``run_bounded`` gives every command a real
bound: when the deadline passes, the whole process tree it started is killed
(its process group *and* every descendant that left the group, such as the ssh
clients Open MPI starts for remote daemons), and the output read so far comes
back. Pipes are read by threads whose joins are bounded too, so a process that
escaped and still holds a pipe cannot stall the caller.

``start_detached`` / ``stop_detached`` do the same for long-running servers:
started in a new session with a pid file and a log, stopped by that pid (never
by name), with the tree verified gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

TAIL_LINES = 40
# Seconds between SIGTERM and SIGKILL, and how long reading may go on after the kill.
KILL_GRACE_S = 3.0
DRAIN_S = 2.0


def tail(text, lines=TAIL_LINES):
    """Return the last ``lines`` lines of ``text`` (str, never None)."""
    if not text:
        return ""
    parts = text.rstrip("\n").splitlines()
    return "\n".join(parts[-lines:])


# --------------------------------------------------------------------------- process trees
def _process_table():
    """``[(pid, ppid, session)]`` of every process /proc shows (empty where there is no /proc)."""
    table = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as handle:
                stat = handle.read().decode("ascii", "replace")
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3 and fields[1].isdigit() and fields[3].isdigit():
            table.append((int(entry), int(fields[1]), int(fields[3])))
    return table


def descendants(pid, session=None):
    """Every live descendant of ``pid``, plus (with ``session``) every process of that session.

    A process whose parent died is adopted by init and is no longer a descendant;
    the session still finds it (Open MPI's ssh clients change their process group,
    not their session).
    """
    table = _process_table()
    children = {}
    for child, parent, _sid in table:
        children.setdefault(parent, []).append(child)
    out, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        if child in out:
            continue
        out.append(child)
        todo.extend(children.get(child, []))
    if session is not None:
        out += [p for p, _ppid, sid in table if sid == session and p != pid and p not in out]
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purpose
        with open("/proc/%d/stat" % pid, "rb") as handle:
            return handle.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def _signal_all(pgid, pids, sig):
    if pgid is not None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(pid, pgid=None, grace_s=KILL_GRACE_S, proc=None):
    """SIGTERM ``pid``'s process group, its session and every descendant, then SIGKILL what is left.

    ``pid`` must lead its session (``start_new_session``), as every command here does.

    Returns the pids that were still alive after SIGKILL (normally none).
    """
    session = pgid if pgid is not None else pid
    tree = descendants(pid, session)
    _signal_all(session, [pid] + tree, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()
        tree = [p for p in set(tree + descendants(pid, session)) if _alive(p)]
        if not tree and not _alive(pid):
            return []
        time.sleep(0.05)
    tree = sorted(set(tree + descendants(pid, session)))
    _signal_all(pgid if pgid is not None else pid, [pid] + tree, signal.SIGKILL)
    if proc is not None:
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    time.sleep(0.05)
    return [p for p in tree if _alive(p)]


# --------------------------------------------------------------------------- bounded run
def _reader(stream, sink):
    try:
        for chunk in iter(lambda: stream.read(8192), b""):
            sink.append(chunk)
    except (OSError, ValueError):
        pass


def run_bounded(argv, timeout_s, env=None, cwd=None, stdin_text=None, on_start=None):
    """Run ``argv`` in its own session with a deadline on the whole process tree.

    Returns a dict: rc (int, negative for a signal, None when timed out), stdout,
    stderr (str), duration_s (float), timed_out (bool), pid (int), left_running
    (pids that could not be killed; normally []).
    ``on_start(pid)`` is called once the process runs (e.g. to write a pid file).
    """
    started = time.monotonic()
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update({k: str(v) for k, v in env.items()})
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=full_env,
        start_new_session=True,
    )
    if on_start is not None:
        on_start(proc.pid)
    out, err = [], []
    readers = [threading.Thread(target=_reader, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=_reader, args=(proc.stderr, err), daemon=True)]
    for thread in readers:
        thread.start()
    if stdin_text is not None:
        try:
            proc.stdin.write(stdin_text.encode())
            proc.stdin.close()
        except OSError:
            pass
    timed_out, left = False, []
    try:
        proc.wait(timeout=max(float(timeout_s), 0.0))
    except subprocess.TimeoutExpired:
        timed_out = True
        left = kill_tree(proc.pid, pgid=proc.pid, proc=proc)
    # A descendant that left the group (an ssh client of mpirun) may still hold
    # the pipes: reading waits for it a little, then gives up on it.
    for thread in readers:
        thread.join(timeout=DRAIN_S)
    if any(thread.is_alive() for thread in readers):
        left = sorted(set(left) | set(kill_tree(proc.pid, pgid=proc.pid, grace_s=0.5)))
        for thread in readers:
            thread.join(timeout=0.5)
    for stream in (proc.stdout, proc.stderr):
        try:
            stream.close()
        except OSError:
            pass
    return {
        "rc": None if timed_out else proc.returncode,
        "stdout": b"".join(out).decode("utf-8", "replace"),
        "stderr": b"".join(err).decode("utf-8", "replace"),
        "duration_s": round(time.monotonic() - started, 3),
        "timed_out": timed_out,
        "pid": proc.pid,
        "left_running": left,
    }


# --------------------------------------------------------------------------- detached servers
def start_detached(argv, log_path, pid_path, env=None, cwd=None):
    """Start ``argv`` in a new session, output appended to ``log_path``, its pid in ``pid_path``.

    Returns the pid. The process outlives the caller (and the play).
    """
    full_env = dict(os.environ)
    full_env.update({k: str(v) for k, v in (env or {}).items()})
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=cwd, env=full_env, start_new_session=True, close_fds=True)
    tmp = pid_path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write("%d\n" % proc.pid)
    os.replace(tmp, pid_path)
    return proc.pid


def read_pid(pid_path):
    """The pid in ``pid_path`` when that process still runs, else None."""
    try:
        with open(pid_path) as handle:
            pid = int(handle.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _alive(pid) else None


def stop_detached(pid_path, grace_s=10.0):
    """Stop the process of ``pid_path`` and its whole tree: SIGTERM (mpirun forwards it to every
    rank), up to ``grace_s`` seconds, then SIGKILL. Removes the pid file.

    Returns dict(pid, was_running, left_running).
    """
    pid = read_pid(pid_path)
    result = {"pid": pid, "was_running": pid is not None, "left_running": []}
    if pid is not None:
        result["left_running"] = kill_tree(pid, pgid=pid, grace_s=grace_s)
    try:
        os.unlink(pid_path)
    except OSError:
        pass
    return result
