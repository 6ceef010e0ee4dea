# -*- coding: utf-8 -*-
"""Bounded process execution shared by the project's modules.

Plain Python (no Ansible imports) so it can be unit-tested directly. Every
command a module starts (mpirun, engine builds, run.py) goes through
``run_bounded`` so that no stage can hang a playbook: on time-out the whole
process group is killed and the caller gets what was printed so far.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

TAIL_LINES = 40


def tail(text, lines=TAIL_LINES):
    """Return the last ``lines`` lines of ``text`` (str, never None)."""
    if not text:
        return ""
    parts = text.rstrip("\n").splitlines()
    return "\n".join(parts[-lines:])


def _kill_group(proc, grace_s=3.0):
    """SIGTERM the process group, then SIGKILL whatever is left."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_bounded(argv, timeout_s, env=None, cwd=None, stdin_text=None):
    """Run ``argv`` in its own process group with a deadline.

    Returns a dict: rc (int, -9 style negative on signal, None when timed
    out), stdout, stderr (str), duration_s (float), timed_out (bool).
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
        text=True,
        errors="replace",
    )
    timed_out = False
    try:
        out, err = proc.communicate(input=stdin_text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        out, err = proc.communicate()
    return {
        "rc": None if timed_out else proc.returncode,
        "stdout": out or "",
        "stderr": err or "",
        "duration_s": round(time.monotonic() - started, 3),
        "timed_out": timed_out,
    }
