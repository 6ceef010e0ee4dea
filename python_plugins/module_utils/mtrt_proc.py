# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Bounded process execution: the one way the project's modules run a command on a node.

Plain Python (no Ansible imports). ``run_bounded`` gives every command a real
bound: when the deadline passes, the whole process tree it started is killed
(its process group *and* every descendant that left the group, such as the ssh
clients Open MPI starts for remote daemons), and the output read so far comes
back. Pipes are read by one selector loop against the same deadline (no reader
thread to join or close under), so a process that escaped and still holds a pipe
cannot stall the caller; it is found by the pipe it holds and killed too.

``start_detached`` / ``stop_detached`` do the same for long-running servers:
started in a new session with a pid file and a log, stopped by that pid (never
by name), with the tree verified gone.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
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
def _pipe_inode(fd):
    """The inode of the pipe ``fd`` is an end of (``pipe:[N]`` in /proc), or None."""
    try:
        link = os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return None
    return link if link.startswith("pipe:[") else None


def pipe_holders(links, exclude=()):
    """pids of the processes holding one of the pipes ``links`` (``pipe:[N]``) open.

    A process that left the session and was adopted by init (``setsid cmd &``) is no
    descendant any more, but it still holds the output pipe it inherited: this finds it.
    """
    links = {link for link in links if link}
    found = []
    if not links:
        return found
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    me = os.getpid()
    for entry in entries:
        if not entry.isdigit() or int(entry) == me or int(entry) in exclude:
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % entry)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%s/fd/%s" % (entry, fd)) in links:
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return found


class _Pipes:
    """The child's stdout/stderr (and stdin) read and written by one selector loop, never by threads.

    A thread blocked in read() on a pipe that an escaped process holds can be neither joined nor
    closed under (a buffered reader's close waits for the lock the read holds); a selector loop
    with a deadline just stops looking.
    """

    def __init__(self, proc, stdin_bytes):
        self.selector = selectors.DefaultSelector()
        self.chunks = {}
        self.links = set()
        for name in ("stdout", "stderr"):
            stream = getattr(proc, name)
            fd = stream.fileno()
            self.links.add(_pipe_inode(fd))
            os.set_blocking(fd, False)
            self.chunks[name] = []
            self.selector.register(fd, selectors.EVENT_READ, name)
        self.stdin, self.pending = None, b""
        if proc.stdin is not None:
            self.stdin, self.pending = proc.stdin, stdin_bytes or b""
            fd = proc.stdin.fileno()
            os.set_blocking(fd, False)
            if self.pending:
                self.selector.register(fd, selectors.EVENT_WRITE, "stdin")
            else:
                self._close_stdin()
        self.streams = (proc.stdout, proc.stderr)

    @property
    def open(self):
        return any(key.data != "stdin" for key in self.selector.get_map().values())

    def _close_stdin(self):
        try:
            self.selector.unregister(self.stdin.fileno())
        except (KeyError, ValueError, OSError):
            pass
        try:
            self.stdin.close()
        except OSError:
            pass
        self.pending = b""

    def pump(self, until):
        """Read (and write stdin) until ``until`` (monotonic) or every output pipe reached EOF."""
        while self.selector.get_map():
            left = until - time.monotonic()
            if left <= 0:
                return
            for key, _events in self.selector.select(min(left, 0.2)):
                if key.data == "stdin":
                    try:
                        sent = os.write(key.fd, self.pending[:65536])
                        self.pending = self.pending[sent:]
                    except BlockingIOError:
                        continue
                    except OSError:  # the child closed its stdin
                        self.pending = b""
                    if not self.pending:
                        self._close_stdin()
                    continue
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    self.chunks[key.data].append(data)
                else:
                    self.selector.unregister(key.fd)
            if not self.open:
                return

    def close(self):
        """Stop reading; our ends closed (no thread holds them, so this never waits)."""
        if self.stdin is not None:
            self._close_stdin()
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fd)
        self.selector.close()
        for stream in self.streams:
            try:
                stream.close()
            except OSError:
                pass

    def text(self, name):
        return b"".join(self.chunks[name]).decode("utf-8", "replace")


def _tree(proc, pipes):
    """Every process of the command's tree still alive: descendants, its session, and whatever holds
    its output pipes (also what left the session)."""
    tree = descendants(proc.pid, proc.pid)
    tree += [p for p in pipe_holders(pipes.links, exclude=[proc.pid]) if p not in tree]
    return [p for p in tree if _alive(p)]


def run_bounded(argv, timeout_s, env=None, cwd=None, stdin_text=None, on_start=None, on_timeout=None):
    """Run ``argv`` in its own session with a deadline on the whole process tree.

    Returns a dict: rc (int, negative for a signal, None when timed out), stdout,
    stderr (str), duration_s (float), timed_out (bool), pid (int), left_running
    (pids that could not be killed; normally []), stopped (pids of the tree that were
    signalled: at the deadline, or stragglers still holding the output after the command ended).
    ``on_start(pid)`` is called once the process runs (e.g. to write a pid file);
    ``on_timeout(pids)`` at the deadline with the tree's pids, just before they are signalled (what they
    show, e.g. the command lines of mpirun's ssh clients, is gone afterwards).

    The whole call takes at most ``timeout_s + KILL_GRACE_S + DRAIN_S`` and a little: output is
    read by one selector loop against the deadline; at the deadline the tree gets SIGTERM (reading
    goes on), SIGKILL after the grace; once the command has ended, anything still holding its
    output is given ``DRAIN_S`` and then killed too, and reading stops whatever happens.
    """
    started = time.monotonic()
    deadline = started + max(float(timeout_s), 0.0)
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
    pipes = _Pipes(proc, stdin_text.encode() if stdin_text is not None else None)
    timed_out, stopped = False, []
    try:
        # 1. until the command ends (and its output closes) or the deadline passes
        while proc.poll() is None and time.monotonic() < deadline:
            pipes.pump(min(deadline, time.monotonic() + 0.2) if pipes.open else time.monotonic())
            if not pipes.open:
                try:
                    proc.wait(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    pass
        if proc.poll() is None:
            # 2. the deadline: SIGTERM to the tree, reading on; SIGKILL to what is left after the grace
            timed_out = True
            stopped = [proc.pid] + _tree(proc, pipes)
            if on_timeout is not None:
                on_timeout(list(stopped))
            _signal_all(proc.pid, stopped, signal.SIGTERM)
            grace = time.monotonic() + KILL_GRACE_S
            while time.monotonic() < grace and (proc.poll() is None or _tree(proc, pipes)):
                pipes.pump(min(grace, time.monotonic() + 0.1))
                time.sleep(0.02 if not pipes.open else 0)
            left = _tree(proc, pipes)
            if proc.poll() is None or left:
                stopped = sorted(set(stopped) | set(left))
                _signal_all(proc.pid, [proc.pid] + left, signal.SIGKILL)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        # 3. the command ended: what it left holding the output gets DRAIN_S, then is killed
        pipes.pump(time.monotonic() + DRAIN_S)
        if pipes.open:
            left = _tree(proc, pipes)
            if left:
                stopped = sorted(set(stopped) | set(left))
                _signal_all(None, left, signal.SIGKILL)
            pipes.pump(time.monotonic() + 0.5)
    except Exception:  # a fault of this loop: never leave the tree behind
        _signal_all(proc.pid, [proc.pid] + descendants(proc.pid, proc.pid), signal.SIGKILL)
        raise
    finally:
        # On KeyboardInterrupt the launch runs on: the interrupt path stops it by its pid file and
        # reports what it stopped (mtrt_launch_stop).
        pipes.close()
    if stopped:
        time.sleep(0.05)
    left_running = sorted(p for p in set(stopped) if p != proc.pid and _alive(p))
    if proc.poll() is None:
        left_running.insert(0, proc.pid)
    return {
        "rc": None if timed_out else proc.returncode,
        "stdout": pipes.text("stdout"),
        "stderr": pipes.text("stderr"),
        "duration_s": round(time.monotonic() - started, 3),
        "timed_out": timed_out,
        "pid": proc.pid,
        "left_running": left_running,
        "stopped": sorted(set(stopped)),
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
