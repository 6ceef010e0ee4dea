# SPDX-License-Identifier: Apache-2.0
"""The action in front of every mpirun module: run the module on the launcher, and when its launch fails,
find out on the controller why the silent ranks did not answer.

The module (``mpi_hello``, ``mpi_collectives``, ``gpu_check``, ...) runs on the launcher as it always
did. When it fails with ranks that never printed, or times out, this action asks what only the
controller can see: each of those nodes' state as docker records it (paused, exited with its code,
OOM-killed, restarting, removed) and the last lines of its log, and the ssh check from the launcher to
each of them (to name the broken hop: refused, unreachable, host key). It adds a ``diagnosis`` table to
the result and a sentence per node to the message. A passing launch costs nothing extra.

Each mpirun module's action plugin is this class (``python_plugins/action/<module>.py``).
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from mpi_trt_ansible import diagnose

SSH_CHECK_TIMEOUT_S = 10


class LaunchAction(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        result.update(self._execute_module(module_args=dict(self._task.args), task_vars=task_vars))
        if not result.get("failed") or self._task.check_mode or "ranks_silent" not in result:
            return result
        timed_out = bool(result.get("timed_out"))
        if not (timed_out or result.get("ranks_silent")):
            return result  # every rank answered: the launch's own message says what went wrong
        nodes = self._nodes(task_vars)
        # Silent ranks point at their nodes; a timeout can be any node's doing, so every node with
        # ranks is looked at then.
        candidates = diagnose.ranks_by_node(result, nodes, silent_only=not timed_out)
        if not candidates:
            return result
        mode = self._var(task_vars, "cluster_mode")
        inspects, logs = self._docker_states(candidates) if mode == "docker" else (None, None)
        silent = diagnose.silent_by_node(result, nodes)
        # ssh from the launcher names a broken hop; a node docker already explains needs no check.
        to_probe = [n for n in candidates if (inspects is None or diagnose.docker_state(inspects.get(n))[0] == "running")
                    and (n in silent or timed_out)]
        ssh = self._ssh(to_probe, task_vars) if mode != "local" and to_probe else None
        table = diagnose.rows(result, nodes, candidates, inspects, logs, ssh)
        if not table:
            return result
        result["diagnosis"] = table
        result["msg"] = "%s Nodes: %s." % (result.get("msg", "").rstrip(), "; ".join(diagnose.sentences(table)))
        return result

    def _var(self, task_vars, name):
        """A project variable as the play sees it (every play loads roles/cluster, which defaults it);
        None when it cannot be read: the diagnosis then leaves that part out."""
        if name not in task_vars:
            return None
        try:
            return self._templar.template(task_vars[name])
        except Exception:  # noqa: BLE001 - a diagnosis never hides the failure it explains
            return None

    def _nodes(self, task_vars):
        nodes = self._var(task_vars, "cluster_nodes") or []
        return [dict(n) for n in nodes if isinstance(n, dict) and n.get("name")]

    @staticmethod
    def _docker_states(silent):
        """``docker inspect`` and the last log lines of each node's container, from the controller."""
        try:
            import docker
            client = docker.APIClient(version="auto", timeout=10)
        except Exception:  # noqa: BLE001 - no engine reachable: nothing more to say
            return None, None
        inspects, logs = {}, {}
        try:
            for node in silent:
                try:
                    inspects[node] = client.inspect_container(node)
                except docker.errors.NotFound:
                    inspects[node] = None
                    continue
                except docker.errors.APIError:
                    continue
                try:
                    text = client.logs(node, tail=5, timestamps=False)
                    logs[node] = text.decode("utf-8", "replace").splitlines()
                except docker.errors.APIError:
                    pass
        finally:
            client.close()
        return inspects, logs

    def _ssh(self, silent, task_vars):
        """The ssh check from the launcher to each node with silent ranks (names the broken hop)."""
        port = self._var(task_vars, "cluster_ssh_port")  # its default is the mode's (22, 2233 in docker_per_host)
        if port is None:
            return None
        checked = self._execute_module(
            module_name="ssh_mesh_check", task_vars=task_vars,
            module_args={"peers": sorted(silent), "ring": False, "timeout_s": SSH_CHECK_TIMEOUT_S,
                         "connect_timeout_s": 5, "port": int(port)})
        return {entry["hops"][-1]: entry for entry in checked.get("direct") or [] if entry.get("hops")}
