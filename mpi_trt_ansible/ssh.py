# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Probe SSH reachability between nodes with host key checking left on.

Plain Python. ``classify_ssh_error`` turns ssh's stderr into a cause and a
fix; ``probe`` retries transient failures (sshd still starting) until a
deadline and gives up at once on permanent ones (a changed host key).
"""

from __future__ import annotations

import socket
import subprocess
import time

TRANSIENT = "transient"
PERMANENT = "permanent"

_CAUSES = (
    ("Host key verification failed", PERMANENT,
     "the host key of {peer} is not the one in known_hosts (container replaced or key changed)",
     "re-run the ssh_keys and node_containers stages (ansible-playbook site.yml); host checking stays on"),
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", PERMANENT,
     "the host key of {peer} changed since the mesh was built",
     "re-run the ssh_keys and node_containers stages (ansible-playbook site.yml); host checking stays on"),
    ("Permission denied", PERMANENT,
     "{peer} refused the cluster key",
     "re-run the node_containers stage so the node installs the current authorized_keys"),
    ("Could not resolve hostname", PERMANENT,
     "{peer} does not resolve",
     "check the node name in the inventory and that the node's container is on the cluster network"),
    ("Connection refused", TRANSIENT, "sshd on {peer} is not accepting connections",
     "check that the node container runs (docker ps) and sshd is its main process"),
    ("Connection timed out", TRANSIENT, "{peer} did not answer in time",
     "check the node container and the network"),
    ("No route to host", TRANSIENT, "no route to {peer}", "check the node's IP and the docker network"),
    ("Connection closed", TRANSIENT, "{peer} closed the connection (sshd starting?)",
     "check the node container's logs"),
    ("Connection reset", TRANSIENT, "{peer} reset the connection (sshd starting?)",
     "check the node container's logs"),
)


def classify_ssh_error(stderr, peer):
    """Return (kind, cause, fix) for an ssh failure's stderr."""
    for needle, kind, cause, fix in _CAUSES:
        if needle in (stderr or ""):
            return kind, cause.format(peer=peer), fix.format(peer=peer)
    text = (stderr or "").strip().splitlines()
    return TRANSIENT, "ssh to %s failed: %s" % (peer, text[-1] if text else "no output"), \
        "check the node container and its sshd logs (docker logs %s)" % peer


def ssh_argv(hops, command, connect_timeout=5):
    """argv for running ``command`` through a chain of ssh hops."""
    argv = []
    for hop in hops:
        argv += ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % connect_timeout, hop]
    return argv + list(command)


def wait_for_port(host, port, deadline, connector=None, sleep=time.sleep, clock=time.monotonic, poll_s=0.05,
                  errors=None):
    """Poll until ``host:port`` accepts a TCP connection or the deadline passes; True when it did.

    Far cheaper than an ssh attempt, so a node whose sshd is still starting is noticed within
    ``poll_s`` of listening instead of after a retry back-off. ``errors``: a list that gets the last
    connection error's words (``Connection refused``, ``No route to host``, ...) when it never opened.
    """
    while True:
        timeout = max(0.05, min(1.0, deadline - clock()))
        if connector is not None:
            error = None if connector(host, port, timeout) else "Connection timed out"
        else:
            error = _connect_error(host, port, timeout)
        if error is None:
            return True
        if clock() >= deadline:
            if errors is not None:
                errors.append(error)
            return False
        sleep(poll_s)


def probe(hops, deadline, connect_timeout=5, runner=None, sleep=time.sleep, clock=time.monotonic, port=None,
          connector=None):
    """Run ``hostname`` through ``hops`` until it answers or the deadline passes.

    With ``port``, first waits (until the deadline) for the first hop to accept TCP connections on it;
    when it never does, the first hop is down and no ssh runs (``first_hop_down``: the caller need not
    check that hop again). Returns dict(ok, hops, answered_as, attempts, seconds, cause, fix).
    """
    runner = runner or _run
    started = clock()
    attempts = 0
    if port:
        errors = []
        if not wait_for_port(hops[0], port, deadline, connector=connector, sleep=sleep, clock=clock, errors=errors):
            # The words ssh itself would print, so the cause reads the same as an ssh failure's.
            err = "ssh: connect to host %s port %d: %s" % (hops[0], port, errors[-1] if errors else "timed out")
            _kind, cause, fix = classify_ssh_error(err, hops[0])
            return dict(ok=False, hops=list(hops), answered_as=None, attempts=0, first_hop_down=True,
                        seconds=round(clock() - started, 3), cause=cause, fix=fix, stderr=err)
    while True:
        attempts += 1
        rc, out, err = runner(ssh_argv(hops, ["hostname"], connect_timeout), connect_timeout * len(hops) + 5)
        if rc == 0:
            return dict(ok=True, hops=list(hops), answered_as=out.strip(), attempts=attempts,
                        seconds=round(clock() - started, 3), cause=None, fix=None)
        kind, cause, fix = classify_ssh_error(err, hops[-1])
        if kind == PERMANENT or clock() >= deadline:
            return dict(ok=False, hops=list(hops), answered_as=None, attempts=attempts,
                        seconds=round(clock() - started, 3), cause=cause, fix=fix,
                        stderr=(err or "").strip()[-500:])
        sleep(min(0.1 * attempts, 1.0))


def _connect_error(host, port, timeout):
    """None when ``host:port`` accepts a TCP connection, else the error's words."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return "Connection timed out"
    except OSError as exc:
        return exc.strerror or str(exc)


def _run(argv, timeout):
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return 255, "", "Connection timed out (no answer in %ss)" % timeout
    return proc.returncode, proc.stdout, proc.stderr
