# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""hosts_preflight: compare what every machine of the cluster has, inside the controller process.

The rules are ``mpi_trt_ansible/hosts.py`` (plain Python); the facts come from the ``hosts_preflight_facts``
module run on every machine, registered there under one of ``facts_vars``. Documentation:
``python_plugins/modules/hosts_preflight.py``.
"""

from __future__ import annotations

from ansible.errors import AnsibleError

from mpi_trt_ansible import hosts as rules
from mpi_trt_ansible import trtllm
from mpi_trt_ansible.containers import SpecError, size_to_bytes
from mpi_trt_ansible.preflight import runtime
from mpi_trt_ansible.preflight.problems import format_problems
from mpi_trt_ansible.spec_action import SpecAction

ARGUMENT_SPEC = dict(
    nodes=dict(type="list", elements="dict", required=True),
    settings=dict(type="dict", required=True),
    facts=dict(type="dict"),
    facts_vars=dict(type="list", elements="str", default=["hosts_preflight_facts"]),
)


def _facts_of(task_vars, machine, names):
    host = (task_vars.get("hostvars") or {}).get(machine)
    if host is None:
        return None
    for name in names:
        value = host.get(name)
        if isinstance(value, dict) and not value.get("skipped"):
            return dict(value)
    return None


def trtllm_checks(nodes, settings, facts_by_host):
    """Hosts mode: the TensorRT-LLM request against the version the machines' interpreter holds.

    The first preflight play cannot read the machines; here their facts say which tensorrt_llm the ranks
    run (the launcher's machine; the machines that differ are named by the version comparison) and which
    GPUs there are, so the version-dependent refusals come before anything changes. ``settings["trtllm"]``:
    the cluster_trtllm_* values. Returns ``(problems, version)``.
    """
    values = settings.get("trtllm")
    if settings.get("mode") != "hosts" or not isinstance(values, dict):
        return [], None
    usable = [h for h in rules.machines(nodes, "hosts") if isinstance(facts_by_host.get(h), dict)
              and not facts_by_host[h].get("unreachable") and not facts_by_host[h].get("failed")]
    if not usable:
        return [], None
    machine = settings.get("launcher") if settings.get("launcher") in usable else usable[0]
    py = facts_by_host[machine].get("python") or {}
    info = {"found": bool(py.get("found")), "python": settings.get("python") or "python3",
            "tensorrt_llm": py.get("tensorrt_llm"), "error": py.get("error")}
    gpus = sorted({g for h in usable for g in facts_by_host[h].get("gpus") or []})
    runs, version, problems = runtime.trtllm_gate(values.get("cluster_trtllm_enabled", "auto"), gpus, info,
                                                  "on host %s" % machine, host=machine,
                                                  gpus_where="the machines %s" % ", ".join(usable))
    if runs:
        settings_ = {k: v for k, v in values.items() if k.startswith("cluster_trtllm_")}
        problems = problems + [dict(p, host=p.get("host") or machine)
                               for p in trtllm.request_problems(settings_, nodes, version=version)]
    return problems, version


def run_checks(nodes, settings, facts_by_host):
    """The action's result for nodes, settings and the machines' facts (no Ansible needed)."""
    settings = dict(settings)
    shm = settings.get("shm_min")
    problems = []
    try:
        settings["shm_min_bytes"] = size_to_bytes(shm) if shm not in (None, "", 0, "0") else 0
    except SpecError as exc:
        settings["shm_min_bytes"] = 0
        problems.append({"variable": "cluster_hosts_shm_min", "value": shm,
                         "message": "cluster_hosts_shm_min: %s" % exc, "fix": "Set it to e.g. 1g."})
    problems += rules.hosts_problems(facts_by_host, settings, nodes)
    trtllm_problems, trtllm_version = trtllm_checks(nodes, settings, facts_by_host)
    problems += trtllm_problems
    mode = settings.get("mode")
    machines = rules.machines(nodes, mode)
    usable = {h: f for h, f in facts_by_host.items() if isinstance(f, dict)
              and not f.get("unreachable") and not f.get("failed")}
    gpus = sorted({g for f in usable.values() for g in f.get("gpus") or []})
    msg = format_problems(problems).replace("Preflight found", "Preflight across hosts found", 1)
    table = rules.versions_table({h: facts_by_host.get(h) or {"unreachable": True} for h in machines})
    if problems and mode == "hosts":
        msg += "\nVersions per host:\n" + table
    return dict(changed=False, ok=not problems, failed=bool(problems), problems=problems, msg=msg,
                mtrt_kind="hosts_preflight", mode=mode, machines=machines, versions_table=table,
                versions={h: rules.version_row(f) for h, f in sorted(usable.items())},
                nodes=rules.node_handoff(facts_by_host, nodes, mode), openmpi_major=rules.openmpi_major(usable),
                gpus=gpus, tensorrt_llm=trtllm_version)


class ActionModule(SpecAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def compute(self, params, task_vars):
        nodes, settings = params["nodes"], params["settings"]
        facts = params["facts"]
        if facts is None:
            facts = {m: _facts_of(task_vars, m, params["facts_vars"])
                     for m in rules.machines(nodes, settings.get("mode"))}
            facts = {m: f for m, f in facts.items() if f is not None}
        if settings.get("mode") == "hosts" and "trtllm" not in settings:
            settings = dict(settings, trtllm=self._trtllm_settings(task_vars))
        return run_checks(nodes, settings, facts)

    def _trtllm_settings(self, task_vars):
        """The cluster_trtllm_* values as the plays see them (one that cannot be templated was named by
        the first preflight play and is left out here)."""
        out = {}
        for name in sorted(k for k in task_vars if isinstance(k, str) and k.startswith("cluster_trtllm_")):
            try:
                out[name] = self._templar.template(task_vars[name])
            except AnsibleError:
                continue
        return out
