# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Filters of the TensorRT-LLM stages (80, 90): the decisions and checks in Python, not Jinja.

Each wraps one function of mpi_trt_ansible.trtllm, where the rules live once.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

try:
    from mpi_trt_ansible import trtllm
except ImportError as exc:  # pragma: no cover - the controller's Python lacks the project package
    raise AnsibleFilterError(
        "the mpi_trt_ansible package is not importable by this ansible-playbook (%s): run "
        "scripts/bootstrap.sh and use .venv/bin/ansible-playbook" % exc) from exc

DOCUMENTATION = ""


def trtllm_stage_decision(mode, host_gpus, node_facts, nodes, gpus_per_node=0):
    """{run, fail, reason}: whether stages 80/90 run (see trtllm.stage_decision)."""
    return trtllm.stage_decision(mode, host_gpus, node_facts, nodes, gpus_per_node)


def _dirs(stat_results):
    """{node: registered stat loop} -> {node: {path: is a directory}}."""
    out = {}
    for node, reg in (stat_results or {}).items():
        out[node] = {r["item"]: bool((r.get("stat") or {}).get("isdir")) for r in (reg or {}).get("results", [])}
    return out


def trtllm_problems(settings, nodes, version=None, node_facts=None, stat_results=None):
    """Every problem of the request on these nodes with this version, plus what only the nodes show.

    ``stat_results``: {node: the registered stat loop over the model and tokenizer dirs}.
    """
    out = trtllm.request_problems(settings, nodes, version)
    if node_facts is not None or stat_results is not None:
        out += trtllm.node_problems(node_facts or {}, _dirs(stat_results), settings)
    return out


def trtllm_format_problems(problems):
    return trtllm.format_problems(problems)


def trtllm_engine_request(settings, version, gpus_per_node):
    """The engine identity, built once (stage 80 builds it, stage 90 runs it)."""
    return trtllm.engine_request(settings, version, gpus_per_node)


def trtllm_node_gpus(node, gpus_per_node=0):
    return trtllm.node_gpus(node, gpus_per_node)


def _short(text, width):
    text = re.sub(r"\s+", " ", str(text or "")).strip()
    return text if len(text) <= width else text[:width - 3] + "..."


def trtllm_run_summary(result):
    """One line of what the model answered (stage 90)."""
    world = result.get("world") or {}
    hosts = sorted({r["host"] for r in (world.get("ranks") or {}).values()})
    line = "%s ranks on %s (gpus_per_node=%s, %s%s) in %ss" % (
        world.get("np"), ", ".join(hosts), world.get("gpus_per_node"), world.get("gpus_per_node_fix"),
        ", py session" if result.get("use_py_session") else "", result.get("duration_s"))
    for prompt in result.get("prompts") or []:
        first = (prompt.get("outputs") or [{}])[0]
        line += " | %s -> %s" % (_short(prompt.get("input_text"), 60), _short(first.get("text"), 120))
    if result.get("latency_s") is not None:
        line += " | latency %ss" % result["latency_s"]
    return line


class FilterModule:
    def filters(self):
        return {
            "trtllm_stage_decision": trtllm_stage_decision,
            "trtllm_problems": trtllm_problems,
            "trtllm_format_problems": trtllm_format_problems,
            "trtllm_engine_request": trtllm_engine_request,
            "trtllm_node_gpus": trtllm_node_gpus,
            "trtllm_run_summary": trtllm_run_summary,
        }
