# SPDX-License-Identifier: Apache-2.0
"""The inventory's view of the nodes: one schema, one place.

Every stage reads the nodes through :func:`node_list` (the ``cluster_node_list``
filter, the ``cluster_nodes`` default): the per-node variables with their
defaults applied and their spellings normalised. Values that cannot be read
are kept as given, so preflight can name them; nothing later runs until it
has passed.
"""

from __future__ import annotations

import re

# Per-node variables and their defaults (roles/cluster mirrors them
# for tasks that run on the node itself).
NODE_DEFAULTS = {"node_slots": 1, "node_gpus": []}
# The inventory groups the plays run on: the nodes, and the machines that run
# their containers (cluster_mode docker_per_host; playbooks 38, 40, teardown).
# With localhost these are every host a play targets, so every one of them must
# see one value of each cluster-wide variable.
PLAY_GROUPS = ("nodes", "docker_hosts")
_INT_RE = re.compile(r"^\s*\d+\s*$")


def _int_or_raw(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.match(value):
        return int(value)
    return value


def normalize_gpus(value):
    """``[0, 1]``, ``(0, 1)`` (INI ``node_gpus=0,1``), ``"0,1"``, ``1`` or ``"1"`` -> ``[0, 1]`` / ``[1]``.

    Returns the value unchanged when an element is not a GPU index, so that
    preflight reports it as the user wrote it.
    """
    if value is None:
        return []
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        text = value.strip().strip("[]")
        items = [part for part in (p.strip() for p in text.split(",")) if part] if text else []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        return value
    out = [_int_or_raw(item) for item in items]
    if any(isinstance(g, bool) or not isinstance(g, int) for g in out):
        return value
    return out


def play_hosts(groups, nodes=()):
    """Every host a play targets, in order: the hosts of :data:`PLAY_GROUPS`, the docker hosts the
    nodes name (``node_docker_host``) and ``localhost`` (the controller), each once.

    ``groups``: Ansible's groups; ``nodes``: :func:`node_list`'s entries.
    """
    hosts = []
    for group in PLAY_GROUPS:
        hosts += list((groups or {}).get(group) or [])
    hosts += [n["docker_host"] for n in nodes or () if isinstance(n, dict) and isinstance(n.get("docker_host"), str)]
    hosts.append("localhost")
    return list(dict.fromkeys(hosts))


def node_list(names, hostvars):
    """``[{name, ip, slots, gpus, mpi_host, fabric_ifname, docker_host}]`` of the inventory hosts ``names``.

    ``fabric_ifname`` (``node_fabric_ifname``) and ``docker_host`` (``node_docker_host``) are None when
    unset; they matter only when the cluster spans several machines (cluster_mode hosts, docker_per_host).

    ``hostvars`` is Ansible's hostvars (or any mapping of name -> mapping).
    """
    nodes = []
    for name in names or []:
        host = hostvars[name]
        nodes.append({
            "name": name,
            "ip": host.get("node_ip"),
            "slots": _int_or_raw(host.get("node_slots", NODE_DEFAULTS["node_slots"])),
            "gpus": normalize_gpus(host.get("node_gpus", NODE_DEFAULTS["node_gpus"])),
            "mpi_host": host.get("node_mpi_host") or name,
            "fabric_ifname": host.get("node_fabric_ifname") or None,
            "docker_host": host.get("node_docker_host") or None,
        })
    return nodes
