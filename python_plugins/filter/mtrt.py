# -*- coding: utf-8 -*-
"""Small filters that keep the roles' YAML readable."""

from __future__ import annotations

DOCUMENTATION = ""


def docker_ulimits(limits):
    """``{memlock: -1, stack: 67108864}`` -> ``['memlock:-1:-1', 'stack:67108864:67108864']``.

    A value may also be ``"soft:hard"``. Sorted, so the container's desired
    state never changes with dict order.
    """
    out = []
    for name in sorted(limits or {}):
        value = str(limits[name])
        out.append("%s:%s" % (name, value if ":" in value else "%s:%s" % (value, value)))
    return out


def cluster_nodes(names, hostvars):
    """``[{name, ip, gpus}]`` of the inventory nodes ``names`` (their ``node_ip`` and ``node_gpus``)."""
    out = []
    for name in names:
        host = hostvars[name]
        out.append({"name": name, "ip": host.get("node_ip"), "gpus": list(host.get("node_gpus") or [])})
    return out


def node_container_specs(nodes, image, network, binds, hash_files, shm_size=None, ulimits=None, env=None,
                         labels=None):
    """One ``node_containers`` spec per node of ``[{name, ip, gpus}]``.

    Every node gets the same image, network, mounts and limits; each its own name, address and
    GPUs, every other node in ``/etc/hosts``, and the label ``mtrt.node``. ``{node}`` in ``binds``
    and ``hash_files`` is replaced by the node's name (its host key files).
    """
    specs = []
    for node in nodes:
        name = node["name"]
        specs.append({
            "name": name, "hostname": name, "image": image, "network": network, "ip": node["ip"],
            "etc_hosts": {peer["name"]: peer["ip"] for peer in nodes if peer["name"] != name},
            "binds": [b.replace("{node}", name) for b in binds],
            "hash_files": [f.replace("{node}", name) for f in hash_files],
            "shm_size": shm_size, "ulimits": docker_ulimits(ulimits), "env": dict(env or {}),
            "labels": dict(labels or {}, **{"mtrt.node": name}),
            "gpus": [int(g) for g in node.get("gpus") or []],
        })
    return specs


class FilterModule(object):
    def filters(self):
        return {"docker_ulimits": docker_ulimits, "cluster_nodes": cluster_nodes,
                "node_container_specs": node_container_specs}
