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
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

try:
    from ansible.module_utils.mtrt_proc import descendants, kill_tree
except ImportError:  # shipped without Ansible: the controller loads mtrt_proc beside this file
    from mtrt_proc import descendants, kill_tree

DEFAULT_DIR = "/tmp/mtrt-launch"
MODULE_WAIT_S = 5.0


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
    """``<dir>/mpi_hello-1234.pid`` holding ``5678`` -> ``{file, kind, module_pid, pid}``; None for
    another file."""
    name = os.path.basename(path)
    if not name.endswith(".pid"):
        return None
    kind, _, module_pid = name[:-4].rpartition("-")
    if not kind or not module_pid.isdigit():
        return None
    try:
        pid = int((text or "").strip() or 0)
    except ValueError:
        pid = 0
    return {"file": path, "kind": kind, "module_pid": int(module_pid), "pid": pid}


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


def stop_one(launch, grace_s):
    """Stop one launch (a :func:`read_launches` entry); returns the entry with what happened."""
    pid, module_pid = launch["pid"], launch["module_pid"]
    out = dict(launch, was_running=False, stopped=[], left_running=[], skipped=None)
    state = _stat(pid) if pid > 0 else None
    module_started_it = False
    if state is not None and state[0] not in ("Z", "X"):
        if state[2] != pid:
            out["skipped"] = ("pid %d does not lead its own session, so it is not the launch this file "
                              "recorded (the pid was reused)" % pid)
        else:
            module_started_it = state[1] == module_pid
            out["was_running"] = True
            out["stopped"] = [pid] + descendants(pid, pid)
            out["left_running"] = kill_tree(pid, pgid=pid, grace_s=grace_s)
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
    if not _running(module_pid) or out["was_running"]:
        try:
            os.unlink(launch["file"])
        except OSError:
            pass
    return out


def stop_launches(pid_dir=None, known=(), grace_s=3.0):
    """Stop every launch recorded in ``pid_dir`` (default ``$MTRT_LAUNCH_DIR``, else /tmp/mtrt-launch)
    and in ``known``; returns ``{pid_dir, launches: [...]}``."""
    pid_dir = pid_dir or os.environ.get("MTRT_LAUNCH_DIR") or DEFAULT_DIR
    return {"pid_dir": pid_dir, "launches": [stop_one(entry, grace_s) for entry in read_launches(pid_dir, known)]}


def main(argv=None):
    """``[json options]``: ``{"pid_dir": ..., "known": [...], "grace_s": ...}``; prints the result as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    options = json.loads(argv[0]) if argv else {}
    result = stop_launches(options.get("pid_dir"), options.get("known") or (), float(options.get("grace_s", 3.0)))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
