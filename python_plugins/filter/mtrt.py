# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Small filters that keep the roles' YAML readable."""

from __future__ import annotations

from mpi_trt_ansible.inventory import node_list

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


def cluster_node_list(names, hostvars):
    """The nodes ``names`` with their settings and defaults (``mpi_trt_ansible.inventory.node_list``)."""
    return node_list(names, hostvars)


def node_refs(names):
    """``['node1']`` -> ``[{'name': 'node1'}]``: what node_containers needs to remove a node's container."""
    return [{"name": name} for name in names]


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
        return {"docker_ulimits": docker_ulimits, "cluster_node_list": cluster_node_list, "node_refs": node_refs,
                "node_container_specs": node_container_specs}
