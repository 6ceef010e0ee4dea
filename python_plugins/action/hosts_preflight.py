# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""hosts_preflight: compare what every machine of the cluster has, inside the controller process.

The rules are ``mpi_trt_ansible/hosts.py`` (plain Python); the facts come from the ``hosts_preflight_facts``
module run on every machine, registered there under one of ``facts_vars``. Documentation:
``python_plugins/modules/hosts_preflight.py``.
"""

from __future__ import annotations

from mpi_trt_ansible import hosts as rules
from mpi_trt_ansible.containers import SpecError, size_to_bytes
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
                gpus=gpus)


class ActionModule(SpecAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def compute(self, params, task_vars):
        nodes, settings = params["nodes"], params["settings"]
        facts = params["facts"]
        if facts is None:
            facts = {m: _facts_of(task_vars, m, params["facts_vars"])
                     for m in rules.machines(nodes, settings.get("mode"))}
            facts = {m: f for m, f in facts.items() if f is not None}
        return run_checks(nodes, settings, facts)
