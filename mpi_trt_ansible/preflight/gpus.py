# SPDX-License-Identifier: Apache-2.0
"""The GPU layout rules of the inventory: one rank per GPU on every node that has GPUs pinned, and in local mode
one rank per GPU this machine lets its ranks see (CUDA_VISIBLE_DEVICES respected)."""

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


def visible_gpus(host_gpus, cuda_visible_devices=None):
    """The GPUs a process of this machine sees: ``host_gpus`` (nvidia-smi's indexes) as CUDA_VISIBLE_DEVICES
    narrows them (indexes, or ``GPU-``/``MIG-`` UUIDs; CUDA stops at the first entry that is invalid or
    repeated). Unset: every GPU; no GPU here: none."""
    host_gpus = [g for g in host_gpus or [] if isinstance(g, int) and not isinstance(g, bool)]
    if cuda_visible_devices is None or not host_gpus:
        return list(host_gpus)
    out = []
    for entry in str(cuda_visible_devices).split(","):
        entry = entry.strip()
        if entry.isdigit() and int(entry) in host_gpus and int(entry) not in out:
            out.append(int(entry))
        elif entry.startswith(("GPU-", "MIG-")) and entry not in out and len(out) < len(host_gpus):
            out.append(entry)
        else:
            break
    return out


def local_problems(nodes, host_gpus, cuda_visible_devices=None):
    """Local mode: the node is this machine, and its ranks share the GPUs this machine lets them see.

    Nothing pins GPUs to a local node (``node_gpus`` [] there): its GPUs are the host's, narrowed by
    CUDA_VISIBLE_DEVICES. Where it sees any, the GPU stage (75) runs, and TensorRT-LLM where it is there:
    more ranks (node_slots) than GPUs would put two ranks on one GPU. A node with GPUs pinned is judged
    by :func:`layout_problems`, and its ids must be GPUs this machine has (a real one-GPU run with
    ``node_gpus: [0, 1]`` otherwise passed preflight, ran the hello and the collectives, and failed in stage
    75). Returns [{variable, value, message, fix, host}].
    """
    visible = visible_gpus(host_gpus, cuda_visible_devices)
    problems = []
    for node in nodes or []:
        name, slots = node.get("name"), node.get("slots")
        if node.get("gpus"):
            problems += _pinned_here(node, host_gpus)
            continue
        if isinstance(slots, bool) or not isinstance(slots, int):
            continue
        if not visible or slots <= len(visible):
            continue
        count = len(visible)
        shown = "nvidia-smi lists GPU%s %s" % ("" if len(host_gpus) == 1 else "s", ", ".join(map(str, host_gpus)))
        if cuda_visible_devices is not None:
            shown += "; CUDA_VISIBLE_DEVICES=%s leaves %s" % (cuda_visible_devices, ", ".join(map(str, visible)))
        variable = "node_slots (%s)" % name
        problems.append({
            "variable": variable, "value": slots, "host": name,
            "message": "%s is %d, but local mode runs the ranks on localhost, which lets them see %d GPU%s (%s): "
                       "%d ranks would share GPUs, which NCCL refuses ('Duplicate GPU detected') and "
                       "TensorRT-LLM does not do (one rank per GPU)."
                       % (variable, slots, count, "" if count == 1 else "s", shown, slots),
            "fix": "Set node_slots to %d on host %s (one rank per GPU), or let the ranks see %d GPUs "
                   "(CUDA_VISIBLE_DEVICES, in the environment of ansible-playbook)." % (count, name, slots),
        })
    return problems


def _pinned_here(node, host_gpus):
    """A local node's pinned ids (``node_gpus``) against the GPUs nvidia-smi lists on this machine."""
    name, gpus = node.get("name"), node.get("gpus")
    if not isinstance(gpus, list):
        return []  # the layout rule names the malformed value
    variable = "node_gpus (%s)" % name
    if not host_gpus:
        return [{"variable": variable, "value": gpus, "host": name,
                 "message": "%s is %r, but this machine (local mode) shows no GPU: nvidia-smi is missing or lists "
                            "none." % (variable, gpus),
                 "fix": "Install the NVIDIA driver here, or set node_gpus: [] on host %s (the hello and the "
                        "collectives still run)." % name}]
    missing = [g for g in gpus if isinstance(g, int) and not isinstance(g, bool) and g >= 0 and g not in host_gpus]
    if not missing:
        return []
    return [{"variable": variable, "value": gpus, "host": name,
             "message": "%s is %r, but this machine (local mode) has no GPU %s: nvidia-smi lists GPU%s %s."
                        % (variable, gpus, ", ".join(map(str, missing)), "" if len(host_gpus) == 1 else "s",
                           ", ".join(map(str, host_gpus))),
             "fix": "Use ids from %r in node_gpus on host %s (and at most that many node_slots)."
                    % (host_gpus, name)}]
