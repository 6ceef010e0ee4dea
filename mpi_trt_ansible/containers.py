# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Node container specs, their fingerprint, and the plan that brings docker to them.

Plain Python (no Ansible imports, no I/O): the ``node_containers`` module reads docker and the
files, this module decides. A container is created once from a spec and never edited in place,
so a fingerprint of the spec (plus the image ID and the content of the files its entrypoint
installs at start) stored in the label ``mtrt.spec_hash`` tells whether the running container
is the wanted one. What can change without recreating a container (its state, its network
endpoint, its image tag moving to a new ID) is read from docker's listing as well.
"""

from __future__ import annotations

import hashlib
import json
import re

LABEL_CLUSTER = "mtrt.cluster"
LABEL_NODE = "mtrt.node"
LABEL_HASH = "mtrt.spec_hash"
# The document the hash is taken of, as compact JSON: says what changed when the hash differs.
LABEL_SPEC = "mtrt.spec"

def tagged(ref):
    """An image reference as docker's listing spells it in RepoTags: without a tag, ``:latest``."""
    return ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest"


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*$", re.IGNORECASE)
_ULIMIT_RE = re.compile(r"^([a-z_]+):(-?\d+):(-?\d+)$")
_SPEC_KEYS = ("name", "hostname", "image", "network", "ip", "etc_hosts", "binds", "shm_size", "ulimits",
              "env", "labels", "gpus", "restart_policy", "hash_files", "ipc", "devices", "cap_add")
# The network of a node container that uses its machine's own network stack (cluster_mode
# docker_per_host, as NVIDIA's multi-node recipes run it): no address, hostname or peers of its own.
HOST_NETWORK = "host"
_DEVICE_RE = re.compile(r"^(/[^:]+)(?::(/[^:]+))?(?::([rwm]+))?$")
_CAP_RE = re.compile(r"^[A-Z_]+$")


class SpecError(ValueError):
    """A container spec that docker cannot be given; the message names the container and the field."""


def size_to_bytes(value):
    """``"1g"`` -> 1073741824 (docker's binary units: b, k, m, g, t; a bare number is bytes)."""
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise SpecError("size %r is not a number with an optional unit b, k, m, g or t (e.g. 1g)" % (value,))
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def normalize_spec(spec):
    """A spec with every field present and checked; raises SpecError naming the container and field."""
    name = spec.get("name")
    if not name or not isinstance(name, str):
        raise SpecError("every container needs a name (got %r)" % (name,))
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise SpecError("container %s: unknown field(s) %s" % (name, ", ".join(unknown)))
    host_network = spec.get("network") == HOST_NETWORK
    for key in ("image", "network") + (() if host_network else ("ip",)):
        if not spec.get(key):
            raise SpecError("container %s: %s is required" % (name, key))
    out = {
        "name": name,
        "hostname": spec.get("hostname") or name,
        "image": spec["image"],
        "network": spec["network"],
        "ip": spec.get("ip"),
        "etc_hosts": {str(k): str(v) for k, v in (spec.get("etc_hosts") or {}).items()},
        "binds": [str(b) for b in spec.get("binds") or []],
        "shm_size": None,
        "ulimits": sorted(str(u) for u in spec.get("ulimits") or []),
        "env": {str(k): str(v) for k, v in (spec.get("env") or {}).items()},
        "labels": {str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
        "gpus": [int(g) for g in spec.get("gpus") or []],
        "restart_policy": spec.get("restart_policy") or "unless-stopped",
        "hash_files": [str(p) for p in spec.get("hash_files") or []],
    }
    if host_network:
        # The machine's hostname and addresses are the container's: none of them is the spec's, so
        # none is in its fingerprint (docker refuses a hostname with host networking anyway).
        for key in ("hostname", "ip", "etc_hosts"):
            del out[key]
    # Set only where asked, so that a spec without them fingerprints as it always did.
    if spec.get("ipc"):
        if spec["ipc"] not in ("host", "private", "shareable"):
            raise SpecError("container %s: ipc %r is not host, private or shareable" % (name, spec["ipc"]))
        out["ipc"] = spec["ipc"]
    if spec.get("devices"):
        out["devices"] = []
        for device in spec["devices"]:
            match = _DEVICE_RE.match(str(device))
            if not match:
                raise SpecError("container %s: device %r is not /dev/host[:/dev/container][:rwm]" % (name, device))
            out["devices"].append("%s:%s:%s" % (match.group(1), match.group(2) or match.group(1),
                                                match.group(3) or "rwm"))
    if spec.get("cap_add"):
        caps = sorted({str(c).upper().replace("CAP_", "", 1) for c in spec["cap_add"]})
        bad = [c for c in caps if not _CAP_RE.match(c) or c in ("SYS_ADMIN", "ALL")]
        if bad:
            raise SpecError("container %s: capabilities %s are not added to node containers (no privileged "
                            "containers)" % (name, ", ".join(bad)))
        out["cap_add"] = caps
    if spec.get("shm_size") not in (None, ""):
        try:
            out["shm_size"] = size_to_bytes(spec["shm_size"])
        except SpecError as exc:
            raise SpecError("container %s: shm_size: %s" % (name, exc))
    for item in out["ulimits"]:
        if not _ULIMIT_RE.match(item):
            raise SpecError("container %s: ulimit %r is not name:soft:hard" % (name, item))
    for bind in out["binds"]:
        parts = bind.split(":")
        if len(parts) not in (2, 3) or not parts[0].startswith("/") or not parts[1].startswith("/"):
            raise SpecError("container %s: bind %r is not /host/path:/container/path[:ro|rw]" % (name, bind))
    for key in (LABEL_CLUSTER, LABEL_HASH, LABEL_SPEC):
        if key in out["labels"]:
            raise SpecError("container %s: label %s is set by the module, not the spec" % (name, key))
    return out


def bind_sources(spec):
    """Host paths of a normalized spec's binds."""
    return [bind.split(":")[0] for bind in spec["binds"]]


def fingerprint_doc(spec, image_id, file_digests):
    """What a container is created from: a normalized spec, the image ID it runs and the content of its
    hash_files (``file_digests``: path -> sha256 hex, or None for a missing file)."""
    return {"spec": {k: v for k, v in spec.items() if k != "hash_files"}, "image_id": image_id,
            "files": {path: file_digests.get(path) for path in spec["hash_files"]}}


def _canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def doc_hash(doc):
    """sha256 hex of a fingerprint document (the ``mtrt.spec_hash`` label)."""
    return hashlib.sha256(_canonical(doc).encode()).hexdigest()


def spec_hash(spec, image_id, file_digests):
    """Fingerprint of a normalized spec, the image ID it runs and the content of its hash_files."""
    return doc_hash(fingerprint_doc(spec, image_id, file_digests))


def _short(value):
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def explain(old_doc, new_doc):
    """What differs between two fingerprint documents, one short phrase per field; [] when unknown."""
    if not isinstance(old_doc, dict) or not isinstance(new_doc, dict):
        return []
    out = []
    old_spec, new_spec = old_doc.get("spec") or {}, new_doc.get("spec") or {}
    for key in sorted(set(old_spec) | set(new_spec)):
        before, after = old_spec.get(key), new_spec.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            out.append("%s %s changed" % (key, ", ".join(changed)))
        elif isinstance(before, list) and isinstance(after, list):
            gone = [x for x in before if x not in after]
            new = [x for x in after if x not in before]
            out.append("%s%s%s" % (key, "".join(" -%s" % _short(x) for x in gone), "".join(" +%s" % _short(x) for x in new)))
        else:
            out.append("%s %s -> %s" % (key, _short(before), _short(after)))
    if old_doc.get("image_id") != new_doc.get("image_id"):
        out.append("image ID %s -> %s" % (str(old_doc.get("image_id"))[:19], str(new_doc.get("image_id"))[:19]))
    old_files, new_files = old_doc.get("files") or {}, new_doc.get("files") or {}
    changed = sorted(p for p in set(old_files) | set(new_files) if old_files.get(p) != new_files.get(p))
    if changed:
        out.append("content of %s" % ", ".join(p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1] if "/" in p else p
                                              for p in changed))
    return out


def create_body(spec, cluster, doc):
    """The JSON of ``POST /containers/create`` (docker API >= 1.40) for a normalized spec and its
    fingerprint document (written to the labels)."""
    host_network = spec["network"] == HOST_NETWORK
    host_config = {
        "Binds": spec["binds"],
        "NetworkMode": spec["network"],
        "RestartPolicy": {"Name": spec["restart_policy"]},
        "ExtraHosts": ["%s:%s" % (peer, ip) for peer, ip in sorted(spec.get("etc_hosts", {}).items())],
        "Ulimits": [dict(zip(("Name", "Soft", "Hard"), (n, int(s), int(h))))
                    for n, s, h in (u.split(":") for u in spec["ulimits"])],
        "Privileged": False,
    }
    if host_network:
        del host_config["ExtraHosts"]
    if spec.get("ipc"):
        host_config["IpcMode"] = spec["ipc"]
    if spec.get("devices"):
        host_config["Devices"] = [dict(zip(("PathOnHost", "PathInContainer", "CgroupPermissions"), d.split(":")))
                                  for d in spec["devices"]]
    if spec.get("cap_add"):
        host_config["CapAdd"] = list(spec["cap_add"])
    if spec["shm_size"] is not None:
        host_config["ShmSize"] = spec["shm_size"]
    if spec["gpus"]:
        # docker run --gpus device=1,2
        host_config["DeviceRequests"] = [{"Driver": "nvidia", "DeviceIDs": [str(g) for g in spec["gpus"]],
                                          "Capabilities": [["gpu"]]}]
    labels = dict(spec["labels"])
    labels[LABEL_CLUSTER] = cluster
    labels[LABEL_HASH] = doc_hash(doc)
    labels[LABEL_SPEC] = _canonical(doc)
    body = {
        "Hostname": spec.get("hostname"),
        "Image": spec["image"],
        "Env": ["%s=%s" % kv for kv in sorted(spec["env"].items())],
        "Labels": labels,
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": {spec["network"]: {"IPAMConfig": {"IPv4Address": spec.get("ip")}}}},
    }
    if host_network:
        del body["Hostname"], body["NetworkingConfig"]
    return body


def container_name(entry):
    """The name of a ``GET /containers/json`` entry, without docker's leading slash."""
    names = entry.get("Names") or []
    return names[0].lstrip("/") if names else ""


def endpoint_problem(entry, network, network_id, ip):
    """Why a listed container is not on ``network`` (ID ``network_id``) with address ``ip``; None if it is."""
    endpoints = ((entry.get("NetworkSettings") or {}).get("Networks")) or {}
    ep = endpoints.get(network)
    if not ep:
        return "not attached to network %s" % network
    if network == HOST_NETWORK:
        return None  # the machine's own network stack: no address of its own
    if network_id and ep.get("NetworkID") and ep["NetworkID"] != network_id:
        return "attached to an older network %s (recreated since)" % network
    have = ((ep.get("IPAMConfig") or {}).get("IPv4Address")) or ep.get("IPAddress")
    if have != ip:
        return "has address %s on %s, not %s" % (have or "none", network, ip)
    return None


def plan(specs, listed, cluster, state, image_ids, network_ids, docs, prune=True, scope=None):
    """What to do for every container, as ``(actions, conflicts)``.

    ``specs``: normalized specs; ``listed``: ``GET /containers/json?all=1`` entries of this cluster
    and of every spec's name; ``image_ids``: image ref -> ID (None when missing); ``network_ids``:
    network name -> ID (None when missing); ``docs``: container name -> fingerprint document.

    Each action is a dict(name, action, reasons, id): action is one of ``none``, ``create``,
    ``recreate``, ``start``, ``unpause``, ``remove``. ``conflicts`` lists containers that have a
    wanted name but belong to something else: they are never touched. ``scope`` (labels) limits
    pruning to the cluster's containers that carry them all: with one node container per machine
    (docker_per_host), each machine's run prunes only what it runs itself.
    """
    by_name = {}
    for entry in listed:
        by_name.setdefault(container_name(entry), entry)
    wanted = {s["name"] for s in specs}
    actions, conflicts = [], []
    for spec in specs:
        entry = by_name.get(spec["name"])
        labels = (entry or {}).get("Labels") or {}
        if entry is not None and labels.get(LABEL_CLUSTER) != cluster:
            owner = labels.get(LABEL_CLUSTER)
            conflicts.append("a container named %s already exists and is %s (id %s): remove or rename it, or "
                             "give the node another inventory name" % (
                                 spec["name"], "of cluster %s" % owner if owner else "not managed by this project",
                                 (entry.get("Id") or "")[:12]))
            continue
        if state == "absent":
            if entry is not None:
                actions.append(dict(name=spec["name"], action="remove", reasons=["state is absent"],
                                    id=entry.get("Id")))
            else:
                actions.append(dict(name=spec["name"], action="none", reasons=[], id=None))
            continue
        if entry is None:
            actions.append(dict(name=spec["name"], action="create", reasons=["no container"], id=None))
            continue
        reasons = []
        if labels.get(LABEL_HASH) != doc_hash(docs[spec["name"]]):
            try:
                what = explain(json.loads(labels.get(LABEL_SPEC) or "null"), docs[spec["name"]])
            except ValueError:
                what = []
            reasons.append("its configuration differs: %s" % "; ".join(what) if what
                           else "its configuration differs (label %s)" % LABEL_HASH)
        image_id = image_ids.get(spec["image"])
        if not reasons and image_id and entry.get("ImageID") != image_id:
            reasons.append("it runs another image than %s" % spec["image"])
        problem = endpoint_problem(entry, spec["network"], network_ids.get(spec["network"]), spec.get("ip"))
        if problem:
            reasons.append("it " + problem)
        status = entry.get("State")
        if status == "dead":
            reasons.append("it is dead")
        if reasons:
            actions.append(dict(name=spec["name"], action="recreate", reasons=reasons, id=entry.get("Id")))
        elif state == "started" and status == "paused":
            actions.append(dict(name=spec["name"], action="unpause", reasons=["it is paused"], id=entry.get("Id")))
        elif state == "started" and status not in ("running", "restarting"):
            actions.append(dict(name=spec["name"], action="start", reasons=["it is %s" % status],
                                id=entry.get("Id")))
        else:
            actions.append(dict(name=spec["name"], action="none", reasons=[], id=entry.get("Id")))
    if prune:
        for name, entry in sorted(by_name.items()):
            labels = entry.get("Labels") or {}
            if name not in wanted and labels.get(LABEL_CLUSTER) == cluster \
                    and all(labels.get(k) == v for k, v in (scope or {}).items()):
                actions.append(dict(name=name, action="remove", id=entry.get("Id"), reasons=[
                    "it belongs to cluster %s" % cluster if state == "absent"
                    else "its node is not in the inventory"]))
    return actions, conflicts
