# SPDX-License-Identifier: Apache-2.0
"""The GPU layout rule of the inventory: one rank per GPU on every node that has GPUs pinned."""

from __future__ import annotations


def layout_problems(nodes):
    """Inventory check for GPU stages: nodes that give more MPI slots than they have pinned GPUs.

    ``nodes``: [{name, slots, gpus}] (``gpus``: the pinned GPU ids, or their
    count). Nodes without pinned GPUs (``[]``, 0 or None: counted only at run
    time, by the rank -> GPU check) and values that are not numbers (preflight
    names those elsewhere) are skipped. Returns [{variable, value, message, fix}].
    """
    problems = []
    for node in nodes or []:
        name, slots, gpus = node.get("name"), node.get("slots"), node.get("gpus")
        if isinstance(gpus, bool) or isinstance(slots, bool) or not isinstance(slots, int):
            continue
        if isinstance(gpus, int):
            count, shown = gpus, "%d GPU%s" % (gpus, "" if gpus == 1 else "s")
        elif isinstance(gpus, (list, tuple)) and all(isinstance(g, int) and not isinstance(g, bool)
                                                     for g in gpus):
            count, shown = len(gpus), "node_gpus %s" % list(gpus)
        else:
            continue
        if count <= 0 or slots <= count:
            continue
        variable = "node_slots (%s)" % name
        problems.append({
            "variable": variable, "value": slots,
            "message": "%s is %d, but %s has %d GPU%s pinned (%s): %d ranks would share GPUs, which NCCL "
                       "refuses ('Duplicate GPU detected') and TensorRT-LLM does not do (one rank per GPU)."
                       % (variable, slots, name, count, "" if count == 1 else "s", shown, slots),
            "fix": "Set node_slots to %d on host %s, or pin %d GPUs to it with node_gpus."
                   % (count, name, slots),
        })
    return problems
