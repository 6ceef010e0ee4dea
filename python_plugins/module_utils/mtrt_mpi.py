# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Open MPI helpers shared by the modules that launch mpirun.

Plain Python: hostfile parsing, the rank -> host placement Open MPI uses by
default (fill each host's slots in hostfile order), and mpirun's argv.
"""

from __future__ import annotations

import os
import re
import shutil

_SLOTS_RE = re.compile(r"^slots\s*=\s*(\d+)$")


class HostfileError(ValueError):
    """A hostfile line that Open MPI would not accept."""


def parse_hostfile(text):
    """Parse an Open MPI hostfile into ``[(host, slots), ...]``.

    Accepts ``host``, ``host slots=N`` and comments. A host without slots
    counts as one slot, as Open MPI does for plain hostfiles.
    """
    hosts = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        slots = 1
        for field in fields[1:]:
            match = _SLOTS_RE.match(field)
            if match:
                slots = int(match.group(1))
            elif not field.startswith("max_slots="):
                raise HostfileError(
                    "hostfile line %d: unknown field %r in %r" % (lineno, field, raw)
                )
        if slots < 1:
            raise HostfileError("hostfile line %d: slots must be >= 1 in %r" % (lineno, raw))
        hosts.append((fields[0], slots))
    return hosts


def render_hostfile(hosts_slots):
    """Render ``[(host, slots)]`` as hostfile text."""
    return "".join("%s slots=%d\n" % (host, slots) for host, slots in hosts_slots)


def expected_placement(hosts_slots, np):
    """Rank -> host map that Open MPI's default by-slot mapping produces.

    Ranks fill the first host's slots, then the next host's, in hostfile
    order. Returns None when ``np`` exceeds the slots (mpirun would refuse).
    """
    placement = {}
    rank = 0
    for host, slots in hosts_slots:
        for _ in range(slots):
            if rank >= np:
                return placement
            placement[rank] = host
            rank += 1
    if rank < np:
        return None
    return placement


def mpirun_argument_spec(timeout_s=120):
    """Argument spec of the options every mpirun-launching module shares.

    Documented once in the ``mtrt_mpirun`` doc fragment; a module adds its own
    options (script, sizes, ...) to this dict.
    """
    return dict(
        hostfile=dict(type="path"),
        hosts=dict(type="list", elements="str"),
        np=dict(type="int"),
        python=dict(type="str", default="python3"),
        mpirun=dict(type="str", default="mpirun"),
        timeout_s=dict(type="int", default=timeout_s),
        mca=dict(type="dict", default={}),
        env=dict(type="dict", default={}),
        extra_args=dict(type="list", elements="str", default=[]),
    )


def hosts_from_params(params):
    """``[(host, slots)]`` from a module's ``hostfile`` (read here) or ``hosts`` option.

    Raises OSError or HostfileError when the hostfile cannot be used.
    """
    if params.get("hostfile"):
        with open(params["hostfile"]) as handle:
            return parse_hostfile(handle.read())
    hosts = []
    for item in params.get("hosts") or []:
        name, _, slots = item.partition(":")
        hosts.append((name, int(slots or 1)))
    return hosts


def module_hosts(module, kind):
    """``hosts_from_params`` for an AnsibleModule: fails the task (naming the hostfile) on a bad one."""
    try:
        return hosts_from_params(module.params)
    except (OSError, HostfileError) as exc:
        module.fail_json(msg="cannot use hostfile %s: %s" % (module.params.get("hostfile"), exc),
                         mtrt_kind=kind)


def running_as_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0


def mpirun_argv(command, np, hostfile=None, hosts=None, mca=None, env_names=None,
                extra_args=None, mpirun="mpirun", as_root=None):
    """Build the mpirun argv.

    ``hosts`` is a list of (host, slots) used as ``--host h:s,...`` when no
    hostfile is given. ``--allow-run-as-root`` is added only when running as
    root. ``mca`` is a mapping of MCA parameter -> value; ``env_names`` are
    exported to every rank with ``-x``.
    """
    if as_root is None:
        as_root = running_as_root()
    argv = [mpirun]
    if as_root:
        argv.append("--allow-run-as-root")
    if hostfile:
        argv += ["--hostfile", hostfile]
    elif hosts:
        argv += ["--host", ",".join("%s:%d" % (h, s) for h, s in hosts)]
    argv += ["-np", str(int(np))]
    for key in sorted(mca or {}):
        argv += ["--mca", str(key), str(mca[key])]
    for name in env_names or []:
        argv += ["-x", str(name)]
    argv += list(extra_args or [])
    command = list(command)
    if command and os.sep not in command[0]:
        # The program every rank runs (python3, ...) is resolved where mpirun
        # starts, so ranks run the same interpreter the launcher sees even when
        # a remote shell or the launch environment would pick another one.
        command[0] = shutil.which(command[0]) or command[0]
    return argv + command
