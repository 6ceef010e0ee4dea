#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: triton_serve_instance
short_description: Start, check or stop one Triton server (one mpirun of tritonserver ranks)
description:
  - Runs on rank 0's node of one server of the serving plan (C(triton_serve_plan)). The server is one
    C(mpirun) with its own hostfile and one application context per rank, pinned to the rank's node;
    rank 0 opens HTTP, gRPC and metrics on its own ports, ranks >= 1 open none and load only the engine
    model; every rank has its own shm prefix (facts in docs/serving.md).
  - The command line, the server's hostfile and the detached start come from the project's one launcher
    (module_utils/mtrt_launch.py, its form with one application context per rank), and so do the result's
    launch keys (see the notes).
  - V(started) - when the server runs with the same command line, environment, hostfile and model
    repository (a fingerprint kept in its launch record) and answers C(/v2/health/ready), nothing is done
    (C(changed=false)). Otherwise a running old server is stopped, rank 0's ports are checked free, mpirun
    is started detached (it keeps serving after the play; pid, launch record and log in
    O(run_dir)/<name>/) and the module waits, within O(timeout_s), for C(/v2/health/ready), the
    server's identity (C(GET /v2)), every model's C(ready) and one real generate request. A rank that exits,
    a port in use or the deadline fails the task naming the instance, host, rank, the known causes
    (C(explained)) and the log's last lines, and stops what was started.
  - V(stopped) - signals the server's own mpirun by pid (never by name, since several servers share a node),
    which stops every rank on every node; waits within O(stop_timeout_s), then kills what is left, and
    checks on every node of the server that no tritonserver, backend stub or spawned worker of it remains.
  - V(checked) - changes nothing; says what V(started) would do and fails when rank 0's ports are held by
    anything other than this server, or tritonserver is missing.
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  server:
    description: The server's entry of the serving plan (name, ranks, ports, repo, shm_prefix, server_id, env).
    type: dict
    required: true
  state:
    description: V(started), V(stopped) or V(checked).
    type: str
    choices: [started, stopped, checked]
    default: started
  run_dir:
    description: Directory of the per-server pid records, hostfiles and logs on this node.
    type: path
    required: true
  tritonserver:
    description: Path of tritonserver on every node.
    type: str
    default: /opt/tritonserver/bin/tritonserver
  server_args:
    description: Extra tritonserver arguments for every rank.
    type: list
    elements: str
    default: []
  log_verbose:
    description: tritonserver C(--log-verbose) level (0 leaves it out).
    type: int
    default: 0
  config_hash:
    description: Fingerprint of the server's model repository (C(triton_serve_repo)); a change restarts it.
    type: str
    default: ""
  stop_timeout_s:
    description: Bound on a stop until mpirun is gone (then what is left is killed).
    type: int
    default: 30
  probe_prompt:
    description: Text of the readiness probe's generate request.
    type: str
    default: ping
  models:
    description: Models whose C(/v2/models/<m>/ready) must answer 200 on rank 0.
    type: list
    elements: str
    default: [preprocessing, tensorrt_llm, postprocessing, ensemble]
  force:
    description: Restart even when nothing changed.
    type: bool
    default: false
  ours:
    description: >-
      shm prefixes of other servers of this cluster that are stopped before this one starts (dropped from
      the plan); the ports they hold do not count as taken.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - mtrt_mpirun.launch
  - mtrt_mpirun.contexts
notes:
  - "Check mode: supported; reports the action (V(started), V(restarted), V(unchanged), V(stopped)) without doing it."
"""

EXAMPLES = r"""
- name: Start one server and wait until it answers
  triton_serve_instance:
    server: "{{ triton_serve_plan.servers[0] }}"
    run_dir: /var/lib/mtrt-serve
    mca: {btl_tcp_if_include: 192.168.140.0/24}
    timeout_s: 300
    config_hash: "{{ triton_serve_repos.hashes['inst0'] }}"
  delegate_to: "{{ triton_serve_plan.servers[0].host }}"

- name: Stop it
  triton_serve_instance:
    server: "{{ triton_serve_plan.servers[0] }}"
    run_dir: /var/lib/mtrt-serve
    state: stopped
  delegate_to: "{{ triton_serve_plan.servers[0].host }}"
"""

RETURN = r"""
# Besides the launch keys every mpirun module returns (see the mtrt_mpirun.contexts notes):
mtrt_kind:
  description: Always C(triton_serve_instance).
  returned: always
  type: str
  sample: triton_serve_instance
name:
  description: The server's name.
  returned: always
  type: str
  sample: inst0
host:
  description: Rank 0's node (where mpirun runs).
  returned: always
  type: str
state:
  description: The requested state.
  returned: always
  type: str
action:
  description: >-
    What was (or would be) done - V(started), V(restarted), V(unchanged), V(stopped), V(absent) (nothing
    was running), V(checked).
  returned: always
  type: str
  sample: started
reason:
  description: Why a start or restart was needed (not running, changed settings, not answering, forced).
  returned: always
  type: str
pid:
  description: mpirun's pid (null when not running).
  returned: always
  type: int
endpoint:
  description: Rank 0's HTTP endpoint as seen from its node.
  returned: always
  type: str
  sample: http://127.0.0.1:8000
ports:
  description: Rank 0's C(http), C(grpc) and C(metrics) ports.
  returned: always
  type: dict
ranks:
  description: The rank table - C(rank), C(node), C(slot), C(gpu).
  returned: always
  type: list
  elements: dict
hosts:
  description: The nodes the server's ranks run on.
  returned: always
  type: list
  elements: str
world_size:
  description: MPI processes mpirun starts.
  returned: always
  type: int
time_to_ready_s:
  description: Seconds from mpirun's start to the first answered generate request (this start, else the recorded one).
  returned: always
  type: float
readiness:
  description: Seconds into the start at which each readiness step passed (health, identity, model:<m>, generate).
  returned: always
  type: dict
probe_text:
  description: The readiness probe's answer.
  returned: always
  type: str
log:
  description: Path of the server's log on its node.
  returned: always
  type: str
log_tail:
  description: Last lines of the log (on a failure).
  returned: always
  type: str
failed_rank:
  description: On a failure, C(rank), C(host), C(reason) and that rank's last C(lines), where the log says.
  returned: always
  type: dict
conflicts:
  description: Rank 0's ports held by something else - C(port), C(key), C(pids), C(cmd).
  returned: always
  type: list
  elements: dict
would:
  description: With O(state=checked), the action V(started) would take (V(started), V(restarted), V(unchanged)).
  returned: when O(state=checked)
  type: str
running_upstream:
  description: With O(state=checked), the address the running server was started to answer at (the proxy
    keeps sending there until it restarts); absent when it does not run.
  returned: when O(state=checked) and the server runs
  type: str
leftovers:
  description: After a stop, processes of the server that outlived mpirun and were killed - C(host), C(pids).
  returned: always
  type: list
  elements: dict
"""

import json
import os
import signal
import subprocess
import time

from ansible.module_utils import mtrt_launch
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_explain import explain, format_explained
from ansible.module_utils.mtrt_fileio import atomic_write
from ansible.module_utils.mtrt_proc import descendants, kill_tree
from ansible.module_utils.mtrt_serve_http import generate_body, request, wait_ready
from ansible.module_utils.mtrt_serve_launch import (failing_rank, fingerprint, listening, marked, port_conflicts,
                                                    proc_start_ticks, record_alive, server_launch, tail)

KIND = "triton_serve_instance"
LOG_BYTES = 262144


class Instance:
    def __init__(self, module):
        self.module = module
        p = module.params
        self.p = p
        self.server = p["server"]
        self.name = self.server["name"]
        self.dir = os.path.join(p["run_dir"], self.name)
        self.record_path = os.path.join(self.dir, "launch.json")
        self.hostfile = os.path.join(self.dir, "hostfile")
        self.log = os.path.join(self.dir, "server.log")
        self.pid_file = os.path.join(self.dir, "mpirun.pid")
        try:
            self.launch = server_launch(self.server, p, self.hostfile, p["tritonserver"],
                                        extra_args=p["server_args"], log_verbose=p["log_verbose"])
        except mtrt_launch.LaunchError as exc:
            module.fail_json(msg="instance %s: %s" % (self.name, exc), mtrt_kind=KIND, name=self.name,
                             problems=[str(exc)])
        self.argv = self.launch.argv
        self.env = self.launch.env
        self.fingerprint = fingerprint(self.argv, self.env, self.launch.hostfile_text, p["config_hash"])
        self.endpoint = "http://127.0.0.1:%d" % self.server["http_port"]
        self.result = mtrt_launch.detached_result(KIND, self.launch)
        self.result.update(
            name=self.name, host=self.server["host"], state=p["state"],
            action=None, reason="", pid=None, endpoint=self.endpoint,
            ports={"http": self.server["http_port"], "grpc": self.server["grpc_port"],
                   "metrics": self.server["metrics_port"]},
            ranks=[{k: r.get(k) for k in ("rank", "node", "slot", "gpu")} for r in self.server["ranks"]],
            hosts=list(self.server["hosts"]), world_size=len(self.server["ranks"]), time_to_ready_s=None,
            readiness={}, probe_text=None, log=self.log, log_tail="", failed_rank={},
            conflicts=[], leftovers=[])

    # -- records --------------------------------------------------------------------------
    def read_record(self):
        try:
            with open(self.record_path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def write_record(self, record):
        os.makedirs(self.dir, exist_ok=True)
        atomic_write(self.record_path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode(), 0o644)

    def fail(self, msg, **extra):
        self.result.update(extra)
        if not self.result.get("problems"):
            self.result["problems"] = [msg.split("\n", 1)[0]]
        self.module.fail_json(msg=msg, **self.result)

    # -- decisions ------------------------------------------------------------------------
    def decide(self, record):
        """``(action, reason)`` that V(started) takes."""
        alive = record_alive(record)
        if not alive:
            return "started", ("its mpirun (pid %s) is gone" % record["pid"]) if record and record.get("pid") else "not running"
        if self.p["force"]:
            return "restarted", "forced"
        if record.get("fingerprint") != self.fingerprint:
            return "restarted", "its settings or model repository changed"
        status, _h, _b = request(self.endpoint + "/v2/health/ready", timeout=5)
        if status != 200:
            return "restarted", "it runs but /v2/health/ready answers %s" % (status or "nothing")
        return "unchanged", "running with these settings and answering"

    def check_programs(self):
        if not os.path.exists(self.launch.mpirun):
            self.fail("instance %s: mpirun not found on %s (rank 0's node): %s. Install Open MPI there (the node "
                      "image has it) or set the mpirun option to its path." % (self.name, self.server["host"],
                                                                              self.p["mpirun"]))
        path = self.p["tritonserver"]
        if os.sep in path and not os.access(path, os.X_OK):
            self.fail("instance %s: %s is not on %s (rank 0's node). Build the node image with "
                      "cluster_image_triton: true, or use NVIDIA's Triton TensorRT-LLM image as cluster_image_base "
                      "(or set cluster_serve_tritonserver)." % (self.name, path, self.server["host"]))

    def check_ports(self):
        conflicts = port_conflicts(self.server, listening(), ours=self.p["ours"])
        self.result["conflicts"] = conflicts
        if conflicts:
            self.fail("instance %s: port%s %s on %s already in use (%s); nothing was started. Free the port%s or "
                      "move the instance (cluster_serve_http_port/grpc_port/metrics_port, cluster_serve_port_stride, "
                      "or the instance's own ports)."
                      % (self.name, "s" if len(conflicts) > 1 else "",
                         ", ".join("%s=%d" % (c["key"], c["port"]) for c in conflicts), self.server["host"],
                         "; ".join("port %d held by pid %s: %s" % (c["port"], ",".join(map(str, c["pids"])) or "?",
                                                                    c["cmd"]) for c in conflicts),
                         "s" if len(conflicts) > 1 else ""))

    # -- stop ------------------------------------------------------------------------------
    def _remote_marked(self, host, patterns):
        """pids on another node whose command line matches one of ``patterns`` (over the cluster's ssh)."""
        regex = "|".join("[%s]%s" % (p[0], p[1:]) for p in patterns)
        proc = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", host,
                               "pgrep -f -- '%s' || true" % regex.replace("'", "")],
                              capture_output=True, text=True, timeout=20)
        if proc.returncode not in (0, 1):
            return None, proc.stderr.strip()[-200:]
        return [int(x) for x in proc.stdout.split() if x.isdigit()], ""

    def _remote_kill(self, host, found):
        subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", host,
                        "kill -9 %s 2>/dev/null || true" % " ".join(str(p) for p in found)],
                       capture_output=True, text=True, timeout=20)

    def stop(self, record):
        """Stop a running server and make sure none of its processes is left on any node."""
        markers = [self.server["shm_prefix"], self.server["repo"].rstrip("/") + "/"]
        pid = int(record["pid"]) if record and record.get("pid") else None
        local = {}
        sent = bool(pid) and record_alive(record)
        if sent:
            for child in descendants(pid, pid):
                local[child] = proc_start_ticks(child)
        for found in markers:
            for other in marked(found):
                local.setdefault(other, proc_start_ticks(other))
        if sent:
            # SIGTERM to mpirun (it forwards it to every rank on every node), then SIGKILL to
            # whatever of its tree is left after the bound.
            self.result["left_running"] = kill_tree(pid, pgid=pid, grace_s=self.p["stop_timeout_s"])
        # What outlived mpirun: this node's processes it had (or that carry the server's marks)...
        leftovers = []
        grace = time.monotonic() + 5
        while True:
            alive = [p for p, ticks in local.items() if ticks is not None and proc_start_ticks(p) == ticks]
            if not alive or time.monotonic() > grace:
                break
            time.sleep(0.1)
        if alive:
            for p in alive:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            leftovers.append({"host": self.server["host"], "pids": sorted(alive)})
        # ... and the other nodes' ranks.
        me = self.server["ranks"][0]["mpi_host"]
        for host in sorted({r["mpi_host"] for r in self.server["ranks"]} - {me}):
            found, err = [], ""
            for _ in range(25):
                found, err = self._remote_marked(host, markers)
                if found == []:
                    break
                time.sleep(0.2)
            if found is None:
                self.fail("instance %s: stopped, but the processes of %s could not be listed over ssh: %s"
                          % (self.name, host, err))
            if found:
                self._remote_kill(host, found)
                leftovers.append({"host": host, "pids": found})
        self.result["leftovers"] = leftovers
        if record:
            record.update(pid=None, stopped_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
            self.write_record(record)
        try:
            os.unlink(self.pid_file)
        except OSError:
            pass
        return sent

    # -- start -----------------------------------------------------------------------------
    def log_since_start(self):
        """The log's text since the last start (its last 256 KiB)."""
        try:
            with open(self.log, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - LOG_BYTES))
                return mtrt_launch.last_start(handle.read().decode("utf-8", "replace"))
        except OSError:
            return ""

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        t0 = time.monotonic()
        pid, ticks = mtrt_launch.start_detached(self.launch, self.log, self.pid_file, cwd="/")
        record = {"pid": pid, "start_ticks": ticks, "marker": self.server["shm_prefix"],
                  "fingerprint": self.fingerprint, "argv": self.argv, "env": sorted(self.env),
                  "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "time_to_ready_s": None,
                  "server_id": self.server["server_id"], "upstream": self.server.get("upstream")}
        self.write_record(record)
        self.result["pid"] = pid
        probe = generate_body(self.p["probe_prompt"], 1)
        ready = wait_ready(self.endpoint, "%s-r0" % self.server["server_id"], self.p["models"], probe,
                           deadline=t0 + self.p["timeout_s"], alive=lambda: record_alive(record))
        self.result["readiness"] = ready["phases"]
        if not ready["ready"]:
            self.failed_start(record, ready, t0)
        record["time_to_ready_s"] = round(time.monotonic() - t0, 3)
        self.write_record(record)
        mtrt_launch.record_detached(self.result, self.launch, self.log_since_start(),
                                    duration_s=record["time_to_ready_s"])
        self.result.update(time_to_ready_s=record["time_to_ready_s"], probe_text=ready["text"])

    def failed_start(self, record, ready, t0):
        """Stop what was started and fail naming the instance, its host, the rank, the known causes and the
        log's last lines (of the failing rank where the log says which)."""
        exited = ready["phase"] == "exited" or not record_alive(record)
        if exited:
            time.sleep(0.5)  # let mpirun write its notice of the failed rank
        pid = record["pid"]
        self.stop(record)
        rc = mtrt_launch.exit_status(pid)
        text = self.log_since_start()
        why = failing_rank(text, self.server)
        mtrt_launch.record_detached(self.result, self.launch, text, rc=rc, timed_out=not exited,
                                    duration_s=time.monotonic() - t0, left_running=self.result["left_running"])
        where = ("rank %d on %s %s" % (why["rank"], why["host"], why["reason"])
                 if why["rank"] is not None else "rank 0 on %s" % self.server["host"])
        if exited:
            msg = "instance %s: mpirun exited%s before the server was ready (%s)" % (
                self.name, " with %s" % rc if rc not in (None, 0) else "", where)
        else:
            msg = ("instance %s: not ready within %ds (cluster_serve_ready_timeout_s) - stuck at %s (last answer: "
                   "%s %s); %s; it was stopped" % (self.name, self.p["timeout_s"], ready["phase"],
                                                   ready["status"], ready["detail"][:200], where))
        parts = [msg]
        silent = self.result["ranks_silent"]
        if silent and len(silent) < len(self.launch.placement):
            parts.append("rank(s) %s never printed anything" % self.launch.hosts_of_ranks(silent))
        # The failing rank's own errors are what the message explains (a CPU server also logs harmless GPU
        # lines on every rank); the result keeps every explained line, the failing rank's first.
        own = explain("\n".join(why["lines"]))
        self.result["explained"] = own + [e for e in self.result["explained"] if e not in own]
        if own or self.result["explained"]:
            parts.append(format_explained(own or self.result["explained"], limit=2).rstrip("."))
        lines = "\n".join(why["lines"]) if why["lines"] else tail(self.log, 15)
        self.result["problems"] = [msg]
        self.fail("%s. Last lines%s:\n%s" % (". ".join(parts), " of rank %d" % why["rank"]
                                             if why["rank"] is not None else "", lines),
                  log_tail=tail(self.log, 40), failed_rank=why, pid=None)

    # -- states ----------------------------------------------------------------------------
    def run(self):
        record = self.read_record()
        state = self.p["state"]
        if state == "stopped":
            if not record_alive(record):
                self.result["action"] = "absent"
                if not self.module.check_mode and record:
                    self.stop(record)  # also sweeps processes of a mpirun that died uncleanly
                    self.result["changed"] = bool(self.result["leftovers"])
                return self.result
            self.result.update(action="stopped", changed=True, pid=int(record["pid"]))
            if not self.module.check_mode:
                self.stop(record)
                self.result["pid"] = None
            return self.result
        action, reason = self.decide(record)
        self.result.update(reason=reason)
        if state == "checked":
            self.result["action"] = "checked"
            self.result["would"] = action
            if action != "unchanged":
                self.check_programs()
                self.check_ports()
            if record_alive(record):
                self.result.update(pid=int(record["pid"]), time_to_ready_s=record.get("time_to_ready_s"),
                                   running_upstream=record.get("upstream"))
            return self.result
        self.result["action"] = action
        if action == "unchanged":
            self.result.update(pid=int(record["pid"]), time_to_ready_s=record.get("time_to_ready_s"))
            return self.result
        self.result["changed"] = True
        if self.module.check_mode:
            return self.result
        self.check_programs()
        if action == "restarted" or record:
            # A restart stops the old server; a server whose mpirun died may have left ranks on
            # other nodes (mpirun killed hard): both are swept before the new start.
            self.stop(record)
        self.check_ports()
        self.start()
        return self.result


def main():
    module = AnsibleModule(
        argument_spec=mtrt_launch.context_argument_spec(
            timeout_s=300,
            server=dict(type="dict", required=True),
            state=dict(type="str", default="started", choices=["started", "stopped", "checked"]),
            run_dir=dict(type="path", required=True),
            tritonserver=dict(type="str", default="/opt/tritonserver/bin/tritonserver"),
            server_args=dict(type="list", elements="str", default=[]),
            log_verbose=dict(type="int", default=0),
            config_hash=dict(type="str", default=""),
            stop_timeout_s=dict(type="int", default=30),
            probe_prompt=dict(type="str", default="ping"),
            models=dict(type="list", elements="str",
                        default=["preprocessing", "tensorrt_llm", "postprocessing", "ensemble"]),
            force=dict(type="bool", default=False),
            ours=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    missing = [k for k in ("name", "ranks", "hosts", "host", "http_port", "grpc_port", "metrics_port", "repo",
                           "shm_prefix", "server_id") if k not in module.params["server"]]
    if missing:
        module.fail_json(msg="server is not a serving plan entry: it lacks %s" % ", ".join(missing), mtrt_kind=KIND)
    # rc stays null while mpirun runs detached (or nothing ran): say failed=false, or Ansible reads it as a failure.
    module.exit_json(**dict(Instance(module).run(), failed=False))


if __name__ == "__main__":
    main()
