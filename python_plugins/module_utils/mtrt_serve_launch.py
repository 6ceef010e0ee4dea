# SPDX-License-Identifier: Apache-2.0
"""Starting, finding and stopping one Triton server (one mpirun) on the node that runs it.

Plain Python, no Ansible imports. A server is the ``serve_plan`` entry of mpi_trt_ansible.serving:
its name, rank table (``[{rank, node, mpi_host, slot, gpu}]``), rank 0's ports, model
repository, shm prefix and server id. What each piece follows (docs/serving.md):

- every rank is one tritonserver; rank 0 keeps the default model control (it loads the whole
  ensemble) and opens HTTP, gRPC and metrics on its own ports; ranks >= 1 open none
  (``--allow-http=false --allow-grpc=false --allow-metrics=false``) and load only the engine
  model (``--model-control-mode=explicit --load-model=tensorrt_llm``);
- every rank gets ``--disable-auto-complete-config`` and its own Python-backend shm prefix
  (``<server prefix><rank>-``), which also appears in its backend stubs' command lines, so a
  server's processes can be found by it on any node;
- one mpirun per server, built by the project's one launcher (``mtrt_launch.ContextLaunch``): the
  server's own hostfile (each of its hosts with as many slots as it has ranks there) and one
  application context per rank pinned to its host (``--host host:slots``), so rank r runs exactly
  where the plan put it; ``--tag-output`` marks each log line with its rank.

The launcher also starts it detached (``mtrt_launch.start_detached``: hostfile, start line in the
log, new session, pid file) and reads its log into the shared launch keys
(``mtrt_launch.record_detached``); a stop kills the tree with ``mtrt_proc.kill_tree``. What is this
module's own is each rank's tritonserver argv, the launch record that ties a pid to its start time
and its server (a pid file alone could name a reused pid after a node restart), the ports and
processes found in /proc, and which rank failed, read from the log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from ansible.module_utils.mtrt_launch import ContextLaunch, last_start, split_tagged

ENGINE_MODEL = "tensorrt_llm"
TAIL_LINES = 30
_NOTICED_RE = re.compile(r"process rank (\d+) with PID \d+ on node (\S+) exited on signal (\d+)(?: \((\w+)\))?")
_EXITCODE_RE = re.compile(r"Process name:\s*\[\[\d+,\d+\],(\d+)\]\s*\n\s*Exit code:\s*(-?\d+)")
# Open MPI's [proc-exit-no-sync] / [proc-ordered-abort] notices (the line breaks after "on").
_IMPROPER_RE = re.compile(r"process rank (\d+) with PID \d+ on\s+node (\S+) (exiting improperly|calling \"abort\")")
_ERROR_RE = re.compile(r"(^E\d{4} |error|Error|ERROR|Traceback|Exception|already in use|failed|Failed)")


# --- command lines ---------------------------------------------------------------------------
def rank_argv(server, rank, tritonserver, extra_args=(), log_verbose=0):
    """tritonserver's argv for one rank of ``server``."""
    argv = [tritonserver, "--model-repository=%s" % server["repo"], "--id=%s-r%d" % (server["server_id"], rank)]
    if rank == 0:
        argv += ["--http-port=%d" % server["http_port"], "--grpc-port=%d" % server["grpc_port"],
                 "--metrics-port=%d" % server["metrics_port"]]
    else:
        argv += ["--allow-http=false", "--allow-grpc=false", "--allow-metrics=false",
                 "--model-control-mode=explicit", "--load-model=%s" % ENGINE_MODEL]
    argv += ["--disable-auto-complete-config",
             "--backend-config=python,shm-region-prefix-name=%s%d-" % (server["shm_prefix"], rank)]
    if log_verbose:
        argv.append("--log-verbose=%d" % int(log_verbose))
    return argv + list(extra_args)


def server_launch(server, params, hostfile, tritonserver, extra_args=(), log_verbose=0):
    """The one mpirun of a server, as the project's launcher builds it (``mtrt_launch.ContextLaunch``):
    one application context per rank, pinned to the rank's host, and the server's own hostfile.

    ``params``: the launch options (mpirun, mca, env, extra_args, tag_output; ``context_argument_spec``).
    An orchestrator that spawns its workers gets the slots they take on its node too (Open MPI
    refuses a spawn without free slots).
    """
    contexts = [(entry["mpi_host"], rank_argv(server, entry["rank"], tritonserver, extra_args, log_verbose))
                for entry in server["ranks"]]
    return ContextLaunch(params, contexts, hostfile, env=launch_env(server, params.get("env")),
                         extra_slots=int(server.get("spawn_slots") or 0),
                         names=[entry.get("node") for entry in server["ranks"]])


def launch_env(server, env):
    """Environment of every rank: the server's backend switches (orchestrator) and the user's."""
    out = dict(server.get("env") or {})
    out.update({str(k): str(v) for k, v in (env or {}).items()})
    return out


def fingerprint(argv, env, hostfile, config_hash):
    """What a running server was started with; a difference means a restart."""
    doc = json.dumps({"argv": argv, "env": env, "hostfile": hostfile, "config": config_hash}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


# --- processes ---------------------------------------------------------------------------------
def proc_start_ticks(pid, proc="/proc"):
    """Start time of a process (clock ticks since boot); None when it does not exist."""
    try:
        with open("%s/%d/stat" % (proc, pid)) as handle:
            text = handle.read()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    state, ticks = fields[0], fields[19]
    if state in ("Z", "X"):
        return None
    return int(ticks)


def proc_cmdline(pid, proc="/proc"):
    try:
        with open("%s/%d/cmdline" % (proc, pid), "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def pids(proc="/proc"):
    out = []
    for name in os.listdir(proc):
        if name.isdigit():
            out.append(int(name))
    return sorted(out)


def marked(marker, proc="/proc", exclude=()):
    """Processes of this node whose command line contains ``marker`` (a server's shm prefix)."""
    found = []
    for pid in pids(proc):
        if pid in exclude or pid == os.getpid():
            continue
        if marker in proc_cmdline(pid, proc) and proc_start_ticks(pid, proc) is not None:
            found.append(pid)
    return found


def record_alive(record, proc="/proc"):
    """Whether the mpirun a launch record names still runs (same pid, same start, same marker).

    A process whose command line reads empty, with the recorded pid and start time, is the one
    started: /proc shows a process before exec has set its arguments.
    """
    if not record or not record.get("pid") or record.get("start_ticks") is None:
        return False
    pid = int(record["pid"])
    if proc_start_ticks(pid, proc) != record.get("start_ticks"):
        return False
    cmdline = proc_cmdline(pid, proc)
    return not cmdline or record.get("marker", "") in cmdline


# --- listening sockets ------------------------------------------------------------------------
def parse_proc_net_tcp(text):
    """``/proc/net/tcp`` or ``tcp6`` -> ``[(port, inode)]`` of the sockets in LISTEN state."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != "0A":
            continue
        port = int(fields[1].rsplit(":", 1)[1], 16)
        out.append((port, int(fields[9])))
    return out


def listening(proc="/proc"):
    """``{port: [pid, ...]}`` of the TCP ports something listens on (pids where they can be read)."""
    inodes = {}
    for name in ("tcp", "tcp6"):
        try:
            with open("%s/net/%s" % (proc, name)) as handle:
                for port, inode in parse_proc_net_tcp(handle.read()):
                    inodes.setdefault(inode, port)
        except OSError:
            continue
    ports = {port: [] for port in inodes.values()}
    for pid in pids(proc):
        fd_dir = "%s/%d/fd" % (proc, pid)
        try:
            links = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in links:
            try:
                target = os.readlink("%s/%s" % (fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in inodes and pid not in ports[inodes[inode]]:
                    ports[inodes[inode]].append(pid)
    return ports


def port_conflicts(server, ports_in_use, proc="/proc", ours=()):
    """Rank 0's ports that something other than this server holds: ``[{port, key, pids, cmd}]``.

    A process whose command line carries this server's shm prefix, or one of ``ours`` (servers
    about to be stopped), does not count.
    """
    marks = [server["shm_prefix"]] + [m for m in ours if m]
    out = []
    for key in ("http_port", "grpc_port", "metrics_port"):
        port = server[key]
        holders = ports_in_use.get(port)
        if holders is None:
            continue
        mine = [p for p in holders if any(m in proc_cmdline(p, proc) for m in marks)]
        if holders and len(mine) == len(holders):
            continue
        others = [p for p in holders if p not in mine]
        out.append({"port": port, "key": key, "pids": others,
                    "cmd": proc_cmdline(others[0], proc)[:160] if others else "(a process this user cannot see)"})
    return out


# --- logs ---------------------------------------------------------------------------------------
def tail(path, lines=TAIL_LINES, max_bytes=262144):
    """The last ``lines`` lines of a file ("" when missing)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def failing_rank(log_text, server):
    """Which rank failed and why, from mpirun's notices and the ranks' tagged lines.

    Returns ``{rank, host, reason, lines}``; rank/host None when the log does not say.
    """
    text = last_start(log_text)
    hosts = {e["rank"]: e["node"] for e in server["ranks"]}
    rank, reason = None, ""
    noticed = _NOTICED_RE.search(text)
    if noticed:
        rank = int(noticed.group(1))
        reason = "exited on signal %s%s" % (noticed.group(3), " (%s)" % noticed.group(4) if noticed.group(4) else "")
    code = _EXITCODE_RE.search(text)
    if rank is None and code:
        rank = int(code.group(1))
        reason = "exited with code %s" % code.group(2)
    improper = _IMPROPER_RE.search(text)
    if rank is None and improper:
        rank = int(improper.group(1))
        reason = "exited without finalizing MPI" if improper.group(3) == "exiting improperly" else "called abort"
    _plain, per_rank = split_tagged(text)
    if rank is None:
        for r in sorted(per_rank):
            if any(_ERROR_RE.search(line) for line in per_rank[r][-20:]):
                rank = r
                reason = "reported an error"
                break
    lines = []
    if rank is not None:
        said = [line for line in per_rank.get(rank, []) if line.strip()]
        errors = [line for line in said if _ERROR_RE.search(line)]
        lines = (errors or said)[-8:]
    return {"rank": rank, "host": hosts.get(rank), "reason": reason, "lines": lines}
