# SPDX-License-Identifier: Apache-2.0
"""What an interrupted run stops: the mpirun launches still running on the hosts it was working on.

Controller-side and plain Python; the ``run_report`` callback calls it from its interrupt
path (docs/ARCHITECTURE.md, "Interrupted runs"). A launch runs only inside a task, so the
hosts to clean are those with a task in flight when the interrupt came; each is reached
the way the run reached it:

- ``local`` (local mode, the controller itself): a local Python process;
- ``docker`` (``community.docker.docker``, docker mode): ``docker exec -i <container>``;
- ``ssh`` (hosts mode): ``ssh`` with the host's inventory settings (BatchMode, the known
  hosts the run uses: host key checking stays on).

On the host, ``module_utils/mtrt_launch_stop.py`` (shipped on stdin with ``mtrt_proc.py``,
whose ``kill_tree`` does the stopping) reads the launch pid files and stops each launch's
process tree by pid, then what it started on its other hosts; and the servers this run started
there (``<cluster_serve_run_dir>/<server>/mpirun.pid`` younger than the run, by the host's own
clock), which otherwise outlive the play on purpose. In local mode the launches' own modules are interrupted with
ansible-playbook and remove their pid files as they go, so the callback reads the pid
directory first (:func:`snapshot`, in its SIGINT handler) and passes what it found as
``known``. Each host is bounded by ``timeout_s``; hosts are cleaned in parallel.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

_SOURCES = ("mtrt_proc", "mtrt_launch_stop")
_LOADER = """\
import json, sys, types
def _load(name, source):
    module = types.ModuleType(name)
    module.__file__ = name + ".py"
    sys.modules[name] = module
    exec(compile(source, name + ".py", "exec"), module.__dict__)
    return module
%s
sys.modules["mtrt_launch_stop"].main(sys.argv[1:])
"""
TIMEOUT_S = 30.0


@dataclass
class Target:
    """How to reach one host: ``via`` local, docker or ssh (or None with ``error``)."""

    host: str
    via: str | None
    address: str | None = None
    python: str = "python3"
    user: str | None = None
    port: int | None = None
    key_file: str | None = None
    extra_args: list = field(default_factory=list)
    pid_dir: str | None = None
    known: list = field(default_factory=list)  # snapshot() entries of a local pid dir, read earlier
    serve_dirs: list = field(default_factory=list)  # cluster_serve_run_dir: servers this run started there
    error: str | None = None

    def describe(self):
        if self.via == "docker":
            return "docker exec %s" % self.address
        if self.via == "ssh":
            return "ssh %s%s" % ("%s@" % self.user if self.user else "", self.address)
        return self.via or "-"


def _plain_python(value, default):
    text = str(value or "").strip()
    return text if text and " " not in text and not text.startswith("auto") and "{" not in text else default


def target_for(host, hostvars, local_python=None):
    """The :class:`Target` of ``host`` from its (templated) variables: ``ansible_connection``,
    ``ansible_host``, ``ansible_user``, ``ansible_port``, the ssh and docker connection variables,
    ``ansible_python_interpreter`` and ``cluster_serve_run_dir`` (where servers keep their pid files)."""
    hv = hostvars or {}
    target = _target_for(host, hv, local_python)
    serve_dir = str(hv.get("cluster_serve_run_dir") or "").strip()
    if serve_dir.startswith("/") and "{" not in serve_dir:
        target.serve_dirs = [serve_dir]
    return target


def _target_for(host, hv, local_python=None):
    connection = str(hv.get("ansible_connection") or "ssh").rsplit(".", 1)[-1]
    python = _plain_python(hv.get("ansible_python_interpreter"), "python3")
    if connection == "local":
        return Target(host, "local", python=local_python or sys.executable)
    if connection in ("docker", "docker_api"):
        return Target(host, "docker", address=str(hv.get("ansible_docker_host") or hv.get("ansible_host") or host),
                      python=python, user=hv.get("ansible_docker_user") or hv.get("ansible_user"),
                      extra_args=shlex.split(str(hv.get("ansible_docker_extra_args") or "")))
    if connection in ("ssh", "smart", "paramiko", "paramiko_ssh"):
        key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
        extra = shlex.split(str(hv.get("ansible_ssh_common_args") or "")) + shlex.split(
            str(hv.get("ansible_ssh_extra_args") or ""))
        port = hv.get("ansible_port") or hv.get("ansible_ssh_port")
        return Target(host, "ssh", address=str(hv.get("ansible_host") or host), python=python,
                      user=hv.get("ansible_user") or hv.get("ansible_ssh_user"),
                      port=int(port) if str(port or "").isdigit() else None,
                      key_file=str(key) if key else None, extra_args=extra)
    return Target(host, None, error="connection %s: no way to reach the host to stop its launches" % connection)


def command(target, options):
    """The argv that runs the stopper on ``target`` with ``options`` (a JSON-able dict)."""
    arg = json.dumps(options)
    if target.via == "local":
        return [target.python, "-", arg]
    if target.via == "docker":
        argv = ["docker"] + list(target.extra_args) + ["exec", "-i"]
        if target.user:
            argv += ["-u", str(target.user)]
        return argv + [target.address, target.python, "-", arg]
    if target.via == "ssh":
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if target.port:
            argv += ["-p", str(target.port)]
        if target.user:
            argv += ["-l", str(target.user)]
        if target.key_file:
            argv += ["-i", target.key_file]
        return argv + list(target.extra_args) + [target.address, " ".join(
            shlex.quote(a) for a in (target.python, "-", arg))]
    raise ValueError(target.error or "no way to reach %s" % target.host)


def payload(module_utils_dir):
    """The Python program the stopper runs as (mtrt_proc and mtrt_launch_stop, loaded by name).

    ``module_utils_dir``: the project's ``python_plugins/module_utils``, which the caller knows (the
    callback passes its own plugin tree); the package does not look for it beside itself, since an
    installed package has no plugin tree there."""
    base = Path(module_utils_dir)
    loads = "\n".join("_load(%r, %r)" % (name, (base / (name + ".py")).read_text(encoding="utf-8"))
                      for name in _SOURCES)
    return _LOADER % loads


def snapshot(pid_dir):
    """The pid files in a local ``pid_dir`` as they are now: ``[{file, text}]``.

    One directory listing, no parsing (the stopper parses them): safe in a signal handler."""
    found = []
    try:
        names = sorted(os.listdir(pid_dir)) if pid_dir else []
    except OSError:
        return found
    for name in names:
        path = os.path.join(pid_dir, name)
        try:
            with open(path) as handle:
                found.append({"file": path, "text": handle.read(8192)})
        except OSError:
            continue
    return found


def _stop_one(target, program, options, timeout_s):
    entry = {"host": target.host, "via": target.describe(), "launches": [], "error": None}
    try:
        argv = command(target, options)
        proc = subprocess.run(argv, input=program, capture_output=True, text=True, timeout=timeout_s)
    except ValueError as exc:
        entry["error"] = str(exc)
        return entry
    except (OSError, subprocess.TimeoutExpired) as exc:
        entry["error"] = "%s: %s" % (" ".join(argv[:4]), exc)
        return entry
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        entry["error"] = "rc %s: %s" % (proc.returncode, (proc.stderr or proc.stdout).strip()[-300:] or "no output")
        return entry
    entry["pid_dir"] = result.get("pid_dir")
    entry["launches"] = result.get("launches") or []
    return entry


def stop_launches(targets, module_utils_dir, timeout_s=TIMEOUT_S, grace_s=3.0, run_age_s=None):
    """Stop the launches on every target, in parallel, with the stopper read from ``module_utils_dir``
    (see :func:`payload`); one entry per target, in order:
    ``{host, via, pid_dir, launches: [{kind, pid, module_pid, was_running, stopped, left_running,
    skipped, nodes}], error}``. ``run_age_s`` (the run's age): servers started within it in a target's
    ``serve_dirs`` are this run's, and are stopped too (kind ``serve:<server>``)."""
    program = payload(module_utils_dir)
    results = [None] * len(targets)

    def work(i, target):
        options = {"grace_s": grace_s, "known": list(target.known), "serve_dirs": list(target.serve_dirs),
                   "run_age_s": run_age_s}
        if target.pid_dir:
            options["pid_dir"] = target.pid_dir
        results[i] = _stop_one(target, program, options, timeout_s)

    threads = [threading.Thread(target=work, args=(i, t), daemon=True) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s + 5)
    return [r or {"host": t.host, "via": t.describe(), "launches": [], "error": "no answer within %s s" % timeout_s}
            for r, t in zip(results, targets)]
