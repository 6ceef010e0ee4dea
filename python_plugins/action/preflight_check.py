# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""preflight_check: every check that needs no running node, inside the controller process.

It reads what it checks itself: the play's variables (every variable of the inventory contract,
templated as the plays see them), each host's own inventory values (for one view of the cluster),
and the controller's facts (the docker engine's listing through the Docker SDK, dockerd's limits,
routes, GPUs). No module is built, shipped or started. The rules live in the mpi_trt_ansible
package (``mpi_trt_ansible.preflight``); the documentation in ``python_plugins/modules/preflight_check.py``.
"""

from __future__ import annotations

import glob
import os
import shutil

from ansible import context
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.ansible_release import __version__ as ansible_version
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

try:
    from mpi_trt_ansible import inventory, preflight, settled
    from mpi_trt_ansible.preflight import contract, facts, model, runtime
except ImportError as exc:  # pragma: no cover - the controller's Python lacks the project package
    raise AnsibleError(
        "the mpi_trt_ansible package is not importable by this ansible-playbook (%s): run scripts/bootstrap.sh "
        "and use .venv/bin/ansible-playbook, or pip install -e . into the Python that runs Ansible" % exc) from exc

_LOCAL = ("local", "ansible.builtin.local")
_PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ROLES_DIR = os.path.join(_PROJECT_DIR, "roles")


def _raw_defaults(roles_dir):
    """The project defaults as written (roles/cluster/defaults/main/*.yml, in load order)."""
    merged = {}
    for path in sorted(glob.glob(os.path.join(roles_dir, "cluster", "defaults", "main", "*.yml"))):
        merged.update(contract.load_yaml(path) or {})
    return merged


def _plain(value):
    """A value as plain Python (Ansible's tagged str/list/dict become builtins) for comparing and reporting."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roles_dir",))

    def _template(self, value):
        return _plain(self._templar.template(value))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if self._connection.transport not in _LOCAL:
            raise AnsibleActionFail("preflight_check reads the controller's facts: run it on localhost")
        roles_dir = self._task.args.get("roles_dir") or _ROLES_DIR
        specs = contract.load_specs(roles_dir)

        values, errors = {}, []
        for name in sorted(specs["cluster"]):
            if name not in task_vars:
                continue
            try:
                values[name] = self._template(task_vars[name])
            except AnsibleError as exc:
                errors.append({"variable": name, "value": _plain(task_vars[name]),
                               "message": "%s cannot be evaluated: %s." % (name, str(exc).splitlines()[0]),
                               "fix": "Correct the expression of %s in the inventory, or remove it to use the "
                                      "project default." % name})
        nodes = values.get("cluster_nodes") or []

        hostvars, groups = task_vars.get("hostvars") or {}, task_vars.get("groups") or {}
        host_values, node_values, role_values, docker_host_values = {}, {}, {}, {}
        # Nodes whose inventory sets no ansible_connection (the role gives them their mode's), each with
        # the interpreter it sets, if any: read here, where every host's own values are read anyway.
        unconnected = []
        node_names = list(groups.get("nodes") or [])
        docker_hosts = set(groups.get("docker_hosts") or []) | {n.get("docker_host") for n in nodes
                                                                 if isinstance(n, dict) and n.get("docker_host")}
        # One view of the cluster: every host a play targets (the nodes, the docker hosts, the controller).
        for host in inventory.play_hosts(groups, nodes):
            try:
                raw = hostvars.raw_get(host)
            except (KeyError, AttributeError, AnsibleError):
                continue
            keys = [k for k in raw if isinstance(k, str)]
            host_values[host] = {k: _plain(raw[k]) for k in keys if k.startswith("cluster_")}
            set_roles = {k: raw[k] for k in keys if k in specs["roles"]}
            if set_roles:
                role_values[host] = {k: self._safe_template(v) for k, v in set_roles.items()}
            if host in node_names:
                node_values[host] = {k: self._safe_template(raw[k]) for k in keys if k in specs["node"]}
                if "ansible_connection" not in raw:
                    python = raw.get("ansible_python_interpreter")
                    unconnected.append({"name": host,
                                        "python": self._safe_template(python) if python is not None else None})
            if host in docker_hosts:
                docker_host_values[host] = {k: self._safe_template(raw[k]) for k in keys if k in specs["docker_host"]}
        # A host that sets nothing sees the project default, rendered as the plays render it.
        defaults = {k: self._safe_template(trust_as_template(v) if isinstance(v, str) else v)
                    for k, v in _raw_defaults(roles_dir).items()
                    if any(k in values_ for values_ in host_values.values())}

        view = {
            "values": values, "defaults": defaults, "host_values": host_values, "role_values": role_values,
            "node_values": node_values, "docker_host_values": docker_host_values, "nodes": nodes, "errors": errors,
            "check_mode": bool(self._task.check_mode), "roles_dir": roles_dir, "facts": self._facts(values),
        }
        view["settled"] = self._settled_inputs(values, specs, task_vars, view["facts"])
        result.update(preflight.check(view))
        result["unconnected_nodes"] = unconnected
        return result

    def _settled_inputs(self, values, specs, task_vars, found):
        """What decides whether stages 10-50 are settled (docker mode): the digest of their inputs and the
        record the last full run left (``mpi_trt_ansible.settled``); None in the other modes."""
        if values.get("cluster_mode") != "docker" or found.get("docker") is None or not values.get("cluster_settle"):
            return None
        stage_tags = {key for _number, key in settled.STAGES}
        asked = sorted(set(task_vars.get("ansible_run_tags") or ["all"]) & stage_tags)
        if asked:
            return {"asked": asked}
        parts = {
            "settings": values,
            # Every stage-role variable as the plays see it (the inventory's and -e's included).
            "roles": {name: self._safe_template(task_vars[name]) for name in specs["roles"] if name in task_vars},
            "project": settled.project_digest(_PROJECT_DIR),
            "ansible": ansible_version,
        }
        state_dir = values.get("cluster_state_dir")
        return {"digest": settled.inputs_digest(parts),
                "record": settled.read_record(state_dir) if isinstance(state_dir, str) and state_dir else None,
                # Stage 40 records only in a run that runs every stage before it (the command line's playbooks).
                "full_run": settled.full_run(context.CLIARGS.get("args") or (), task_vars.get("ansible_run_tags"),
                                             task_vars.get("ansible_skip_tags"))}

    def _safe_template(self, value):
        try:
            return self._template(value)
        except AnsibleError:
            return _plain(value)

    @staticmethod
    def _facts(values):
        """What the controller (the docker host in docker mode) says about itself."""
        shared = values.get("cluster_shared_host_dir")
        found = {"host_gpus": facts.host_gpus(), "routes": facts.routes(),
                 # Local mode: the ranks inherit this environment (mpirun starts under this process).
                 "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                 "shared_exists": os.path.isdir(shared) if isinstance(shared, str) and shared else None,
                 "mmdebstrap": bool(shutil.which("mmdebstrap")), "docker": None, "docker_error": None,
                 "dockerd_ulimits": {},
                 # The model and tokenizer directories as this machine has them (docker and local mode).
                 "dirs": {here: model.dir_state(here) for _, here in model.paths(values).values()}}
        if values.get("cluster_mode") in ("docker", "docker_per_host"):  # docker_per_host: the image is built here
            found["dockerd_ulimits"] = facts.dockerd_limits()
            try:
                found["docker"] = facts.docker_listing(values.get("cluster_name"))
            except facts.DockerUnavailable as exc:
                found["docker_error"] = str(exc)
        found["runtime"] = ActionModule._runtime(values, found)
        return found

    @staticmethod
    def _runtime(values, found):
        """What the ranks' interpreter holds (TensorRT-LLM version, mpi4py), read before anything exists.

        Local mode: cluster_mpi_python here (again only when its files changed). Docker modes: in the base image, once per image ID (kept in
        the state directory); the offline base by construction. None where it cannot be read (hosts mode
        reads every machine in the preflight across hosts; a base image that is missing is refused).
        """
        python = values.get("cluster_mpi_python")
        if not isinstance(python, str) or not python:
            return None
        mode = values.get("cluster_mode")
        state_dir = values.get("cluster_state_dir")
        state_dir = state_dir if isinstance(state_dir, str) and state_dir else None
        if mode == "local":
            return runtime.cached_local_probe(python, state_dir)
        if mode not in ("docker", "docker_per_host") or found.get("docker") is None:
            return None
        base = values.get("cluster_image_base") or ""
        if not isinstance(base, str):
            return None
        if not base:
            return runtime.offline_base(python)
        image_id = runtime.image_id(found["docker"], base)
        if image_id is None:
            return None
        return runtime.cached_image_probe(image_id, python, state_dir, label=str(values.get("cluster_name") or ""))
