# SPDX-License-Identifier: Apache-2.0
"""The cluster's docker network, read and brought to its spec inside the controller process.

Stage 20's ``cluster_network`` action (``python_plugins/action/cluster_network.py``) calls
:func:`ensure` with one Docker SDK client: no module is built, shipped or started for one API call.
It does what ``community.docker.docker_network`` does with the options stage 20 used
(``driver``, one ``ipam_config`` entry with ``subnet`` and ``gateway``, ``labels``, ``state: present``,
no ``connected`` list): a missing network is created; one that differs in driver, subnet, gateway
or one of the wanted labels (labels it has besides those are kept, as docker_network keeps them) is
removed, every container on it disconnected first, and created again; a network as wanted is left
alone. Check mode changes nothing and says what would change; diff mode gives the network before and after.
"""

from __future__ import annotations


def wanted(name, subnet, gateway, labels=None, driver="bridge"):
    """The network as stage 20 wants it."""
    return {"name": name, "driver": driver, "subnet": subnet, "gateway": gateway,
            "labels": {str(k): str(v) for k, v in (labels or {}).items()}}


def state(inspect):
    """What the network is, in :func:`wanted`'s shape (plus the containers on it); ``{}`` when absent."""
    if not inspect:
        return {}
    configs = ((inspect.get("IPAM") or {}).get("Config")) or []
    first = configs[0] if configs else {}
    return {"name": inspect.get("Name"), "driver": inspect.get("Driver"), "subnet": first.get("Subnet"),
            "gateway": first.get("Gateway"), "labels": dict(inspect.get("Labels") or {}),
            "subnets": len(configs),
            "containers": sorted(c.get("Name") for c in (inspect.get("Containers") or {}).values()
                                 if c.get("Name"))}


def differences(have, want):
    """The settings in which the network ``have`` (:func:`state`) is not ``want``; [] when it is."""
    found = []
    if have.get("driver") != want["driver"]:
        found.append("driver %s (wanted %s)" % (have.get("driver"), want["driver"]))
    if have.get("subnets", 1) != 1 or have.get("subnet") != want["subnet"]:
        found.append("subnet %s (wanted %s)" % (have.get("subnet"), want["subnet"]))
    if have.get("gateway") != want["gateway"]:
        found.append("gateway %s (wanted %s)" % (have.get("gateway"), want["gateway"]))
    for key, value in sorted(want["labels"].items()):
        if (have.get("labels") or {}).get(key) != value:
            found.append("label %s=%s (wanted %s)" % (key, (have.get("labels") or {}).get(key), value))
    return found


def plan(have, want):
    """The actions that bring the network to ``want``, in order: ``[]`` when it is as wanted."""
    if not have:
        return [{"action": "create", "name": want["name"]}]
    if not differences(have, want):
        return []
    return ([{"action": "disconnect", "name": want["name"], "container": c} for c in have.get("containers", [])]
            + [{"action": "remove", "name": want["name"]}, {"action": "create", "name": want["name"]}])


def describe(action):
    """One action in words (as docker_network words its ``actions``)."""
    if action["action"] == "disconnect":
        return "Disconnected container %s" % action["container"]
    if action["action"] == "remove":
        return "Removed network %s" % action["name"]
    return "Created network %s" % action["name"]


def _shown(have):
    """The network as a diff shows it."""
    if not have:
        return {"exists": False}
    return dict({k: have.get(k) for k in ("driver", "subnet", "gateway", "labels")}, exists=True,
                containers=have.get("containers", []))


def _inspect(client, name, not_found):
    try:
        return client.inspect_network(name)
    except not_found:
        return None


def ensure(client, want, check_mode=False, not_found=LookupError):
    """Bring the network to ``want`` through ``client`` (a Docker SDK ``APIClient``); return the result keys:
    ``changed``, ``actions`` (in words), ``differences``, ``network`` (docker's inspect after, or before in
    check mode; None when absent) and ``diff`` (before/after). ``not_found``: the client's NotFound error."""
    found = _inspect(client, want["name"], not_found)
    before = state(found)
    steps = plan(before, want)
    if steps and not check_mode:
        for step in steps:
            if step["action"] == "disconnect":
                client.disconnect_container_from_network(step["container"], want["name"], force=True)
            elif step["action"] == "remove":
                client.remove_network(want["name"])
            else:
                client.create_network(
                    want["name"], driver=want["driver"], labels=want["labels"] or None,
                    ipam={"Driver": "default", "Config": [{"Subnet": want["subnet"], "Gateway": want["gateway"]}]})
        found = _inspect(client, want["name"], not_found)
    after = dict(want, containers=[]) if steps else before
    return {
        "changed": bool(steps),
        "actions": [describe(s) for s in steps],
        "differences": differences(before, want) if before else [],
        "network": found,
        "diff": {"before": _shown(before), "after": _shown(after)},
    }
