# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Small filters that keep the roles' YAML readable."""

from __future__ import annotations

import re

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


_OMPI_RELEASE = re.compile(r"(?m)^(?:ompi:version:full:|\S+ \(Open MPI\) |Open MPI v?)(\d+)\.(\d+)\S*")


def openmpi_release(text, image=""):
    """``ompi_info --parsable --version`` (or ``mpirun --version``) output -> ``{image, version, major}``.

    What the node image role records about an image's Open MPI; version and major are None when the
    output names no Open MPI (another MPI, or none).
    """
    match = _OMPI_RELEASE.search(str(text or ""))
    if not match:
        return {"image": image, "version": None, "major": None}
    version = match.group(0).split(":")[-1].split()[-1].lstrip("v")
    return {"image": image, "version": version, "major": int(match.group(1))}


def cluster_node_list(names, hostvars):
    """The nodes ``names`` with their settings and defaults (``mpi_trt_ansible.inventory.node_list``)."""
    return node_list(names, hostvars)


def node_refs(names):
    """``['node1']`` -> ``[{'name': 'node1'}]``: what node_containers needs to remove a node's container."""
    return [{"name": name} for name in names]


def node_container_specs(nodes, image, network, binds, hash_files, shm_size=None, ulimits=None, env=None,
                         labels=None, peers=None, env_by_node=None, ipc=None, devices=None, cap_add=None):
    """One ``node_containers`` spec per node of ``[{name, ip, gpus}]``.

    Every node gets the same image, network, mounts and limits; each its own name, address and
    GPUs, every other node of ``peers`` (default ``nodes``) in ``/etc/hosts``, the environment of
    ``env_by_node[name]`` on top of ``env``, and the label ``mtrt.node``. ``{node}`` in ``binds`` and
    ``hash_files`` is replaced by the node's name (its host key files). On the ``host`` network a
    container has no address, hostname or peers of its own. ``ipc``, ``devices`` and ``cap_add``
    are set only when given.
    """
    specs = []
    peers = nodes if peers is None else peers
    for node in nodes:
        name = node["name"]
        spec = {
            "name": name, "hostname": name, "image": image, "network": network, "ip": node["ip"],
            "etc_hosts": {peer["name"]: peer["ip"] for peer in peers if peer["name"] != name},
            "binds": [b.replace("{node}", name) for b in binds],
            "hash_files": [f.replace("{node}", name) for f in hash_files],
            "shm_size": shm_size, "ulimits": docker_ulimits(ulimits),
            "env": dict(env or {}, **((env_by_node or {}).get(name) or {})),
            "labels": dict(labels or {}, **{"mtrt.node": name}),
            "gpus": [int(g) for g in node.get("gpus") or []],
        }
        if network == "host":
            for key in ("hostname", "ip", "etc_hosts"):
                del spec[key]
        for key, value in (("ipc", ipc), ("devices", list(devices or [])), ("cap_add", list(cap_add or []))):
            if value:
                spec[key] = value
        specs.append(spec)
    return specs


class FilterModule(object):
    def filters(self):
        return {"docker_ulimits": docker_ulimits, "cluster_node_list": cluster_node_list, "node_refs": node_refs,
                "node_container_specs": node_container_specs, "openmpi_release": openmpi_release}
