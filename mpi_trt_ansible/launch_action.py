# SPDX-License-Identifier: Apache-2.0
"""The action in front of every mpirun module: run the module on the launcher, and when its launch fails,
find out on the controller why the silent (or killed) ranks did not answer.

The module (``mpi_hello``, ``mpi_collectives``, ``gpu_check``, ``trtllm_inference_run``, ...) runs on the
launcher as it always did. When it fails with ranks that never printed, ranks mpirun saw die on a
signal (a rank that printed and was then OOM-killed), or times out, this action asks what only the
controller can see: each of those nodes' state as docker records it (paused, exited with its code,
OOM-killed, restarting, removed; a process OOM-killed inside a running node shows as docker's ``oom``
event of the launch's time) and the last lines of its log, and the ssh check from the launcher to
each of them (to name the broken hop: refused, unreachable, host key), bounded by what is left of the
stage's deadline (the launch's bound plus ``STAGE_SLACK_S``). It adds a ``diagnosis`` table to the
result and a sentence per node to the message, and after a timeout ``heal_may_help`` (false when every
node runs and answers ssh: a rank hung, which no SSH healing and no second launch can fix). A passing
launch costs nothing extra.

Each mpirun module's action plugin is this class (``python_plugins/action/<module>.py``).
"""

from __future__ import annotations

import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from mpi_trt_ansible import diagnose, direct
from mpi_trt_ansible.preflight import facts

# The ssh check's own bound; within a launch's stage deadline it gets what is left, at least the floor.
SSH_CHECK_TIMEOUT_S = 10
SSH_CHECK_FLOOR_S = 3
# What a launch may take beyond its timeout_s before its stage is late: the kill's grace and drain, the
# stop on its nodes (mtrt_proc.KILL_GRACE_S + DRAIN_S, mtrt_launch_stop.REMOTE_TIMEOUT_S) and the diagnosis.
STAGE_SLACK_S = 14


class LaunchAction(ActionBase):
    """Run the task's launch module on the launcher; diagnose a failed launch from the controller.

    Reuse: any module that launches through ``module_utils/mtrt_launch.py`` (its result carries
    ``expected_placement``, ``ranks_silent``, ``ranks_signalled``, ``rank_tails``, ``timed_out``) gets the
    diagnosis by an action plugin of the module's name holding one line::

        from mpi_trt_ansible.launch_action import LaunchAction as ActionModule  # noqa: F401

    (``python_plugins/action/mpi_hello.py`` and the others are exactly that). A module whose launch does
    not follow the ``timeout_s`` option names its bound in ``BOUND_ARG`` of a subclass.
    """

    TRANSFERS_FILES = False
    BOUND_ARG = "timeout_s"

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        started, started_wall = time.monotonic(), time.time()
        result.update(self._launch(task_vars))
        if not result.get("failed") or self._task.check_mode or "ranks_silent" not in result:
            return result
        timed_out = bool(result.get("timed_out"))
        if not (timed_out or result.get("ranks_silent") or result.get("ranks_signalled")):
            return result  # every rank answered and none died: the launch's own message says what went wrong
        nodes = self._nodes(task_vars)
        # Silent ranks and ranks killed by a signal point at their nodes; a timeout can be any node's
        # doing, so every node with ranks is looked at then.
        candidates = diagnose.candidates(result, nodes)
        if not candidates:
            return result
        mode = self._var(task_vars, "cluster_mode")
        inspects, logs, ooms = (self._docker_states(candidates, since=started_wall) if mode == "docker"
                                else (None, None, None))
        silent = diagnose.silent_by_node(result, nodes)
        # ssh from the launcher names a broken hop; a node docker already explains needs no check.
        explained_by_docker = inspects is not None and any(
            diagnose.docker_state(inspects.get(n))[0] != "running" for n in candidates)
        # After a timeout every running node is checked, unless docker already names a node that is down
        # (paused, exited...): that explains the hang, and the check would only spend the stage's time.
        to_probe = [n for n in candidates
                    if (inspects is None or diagnose.docker_state(inspects.get(n))[0] == "running")
                    and (n in silent or (timed_out and not explained_by_docker))]
        ssh = None
        if mode != "local" and to_probe:
            # within the stage's one deadline: the launch's bound and its slack, never less than the floor
            bound = self._bound(result)
            left = started + bound + STAGE_SLACK_S - time.monotonic() if bound else SSH_CHECK_TIMEOUT_S
            ssh = self._ssh(to_probe, task_vars, max(SSH_CHECK_FLOOR_S, min(SSH_CHECK_TIMEOUT_S, int(left))))
        table = diagnose.rows(result, nodes, candidates, inspects, logs, ssh, ooms)
        if timed_out:
            # A rank that hangs while every node runs and answers ssh: the SSH mesh cannot heal that, and a
            # second launch would hang as long again (the hello's rescue reads this and skips both).
            result["heal_may_help"] = not diagnose.hang_only(result, table, ssh)
        if not table:
            return result
        result["diagnosis"] = table
        result["msg"] = "%s Nodes: %s." % (result.get("msg", "").rstrip(), "; ".join(diagnose.sentences(table)))
        if result.get("heal_may_help") is False:
            result["msg"] += (" Every node runs and answers ssh, so a rank hung: the SSH mesh check and a "
                              "second launch cannot help and are skipped.")
        return result

    def _launch(self, task_vars):
        """The module's result: from a direct launch where it may run (``mpi_trt_ansible.direct``), else
        from the module run."""
        name = self._task.action.rsplit(".", 1)[-1]
        args = dict(self._task.args)
        interpreter = self._var(task_vars, "ansible_python_interpreter")
        why_not = direct.eligible(self._task, self._connection, self._play_context, interpreter)
        wanted = self._var(task_vars, "cluster_mpi_direct_launch")  # None outside the project's plays: on
        if not why_not and wanted is not None and not boolean(wanted, strict=False):
            why_not = "cluster_mpi_direct_launch is false"
        path = None if why_not else self._shared_loader_obj.module_loader.find_plugin(name)
        if not why_not and not path:
            why_not = "module %s not found" % name
        if not why_not:
            try:
                return self._direct(name, interpreter, direct.prepare(name, path, args,
                                                                      check_mode=self._task.check_mode))
            except direct.NotDirect as exc:
                why_not = str(exc)  # bad arguments: the module run reports them, as it always did
        result = self._execute_module(module_args=args, task_vars=task_vars)
        result.update(mtrt_direct=False, mtrt_direct_why=why_not)
        return result

    def _direct(self, name, interpreter, text):
        """Run a prepared direct launch through the task's connection (the interpreter reads stdin)."""
        res = self._low_level_execute_command("%s -" % interpreter, in_data=text.encode("utf-8"), sudoable=False)
        found = direct.result_of(res.get("stdout"))
        if found is None:
            return {"failed": True, "changed": False, "rc": res.get("rc"), "mtrt_direct": True,
                    "msg": "%s: the direct launch on %s printed no result (rc=%s): %s" % (
                        name, self._task.delegate_to or "the launcher", res.get("rc"),
                        (res.get("stderr") or res.get("stdout") or "").strip()[-2000:] or "(no output)")}
        found["mtrt_direct"] = True
        return found

    def _bound(self, result):
        try:
            return float(self._templar.template(self._task.args.get(self.BOUND_ARG)) or 0)
        except (TypeError, ValueError, Exception):  # noqa: BLE001 - a diagnosis never hides the failure
            return 0.0

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
    def _docker_states(candidates, since=None):
        """``docker inspect``, the last log lines and the ``oom`` events since ``since`` (epoch seconds, the
        launch's start) of each node's container, from the controller."""
        try:
            docker, client = facts.docker_client(timeout_s=10)
        except Exception:  # noqa: BLE001 - no engine reachable: nothing more to say
            return None, None, None
        inspects, logs, ooms = {}, {}, {}
        try:
            for node in candidates:
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
            if since is not None and inspects:
                try:
                    events = client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                                           filters={"event": "oom", "type": "container"})
                    for event in events:
                        name = ((event.get("Actor") or {}).get("Attributes") or {}).get("name")
                        if name in inspects:
                            ooms[name] = ooms.get(name, 0) + 1
                except Exception:  # noqa: BLE001 - no events: inspect's OOMKilled still counts
                    pass
        finally:
            client.close()
        return inspects, logs, ooms

    def _ssh(self, silent, task_vars, timeout_s=SSH_CHECK_TIMEOUT_S):
        """The ssh check from the launcher to each node with silent ranks (names the broken hop)."""
        port = self._var(task_vars, "cluster_ssh_port")  # its default is the mode's (22, 2233 in docker_per_host)
        if port is None:
            return None
        checked = self._execute_module(
            module_name="ssh_mesh_check", task_vars=task_vars,
            module_args={"peers": sorted(silent), "ring": False, "timeout_s": int(timeout_s),
                         "connect_timeout_s": max(1, min(5, int(timeout_s) - 1)), "port": int(port)})
        return {entry["hops"][-1]: entry for entry in checked.get("direct") or [] if entry.get("hops")}
