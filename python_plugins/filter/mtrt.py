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


def peer_hosts(nodes, hostvars, me, key="node_ip"):
    """``{peer: ip}`` for every node in ``nodes`` except ``me`` (``--add-host``)."""
    return {node: hostvars[node][key] for node in nodes if node != me}


class FilterModule(object):
    def filters(self):
        return {"docker_ulimits": docker_ulimits, "peer_hosts": peer_hosts}
