#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_containers
short_description: Bring every node container of a cluster to its spec in one run
description:
  - Reads the docker host once (this cluster's containers, the image and the network), decides per
    container whether it is current, and creates, recreates, starts or removes the ones that are not,
    all in parallel. One module run serves the whole cluster, where a loop of
    M(community.docker.docker_container) costs one module run per node.
  - A container is current when it carries this cluster's label, its C(mtrt.spec_hash) label equals
    the fingerprint of its spec (every option below, the image ID and the content of O(containers[].hash_files)),
    it runs the current ID of its image, it sits on the network (same network ID) with its address, and
    (O(state=started)) it is running. Otherwise it is recreated; a stopped or paused current one is
    only started.
  - Containers are found by exact name and label. A container with a wanted name that is not labelled
    as this cluster's is never touched; the module fails before changing anything (with O(state=absent)
    it warns and leaves it).
  - Bind sources must exist on the docker host before anything changes (docker would otherwise create
    missing ones as root-owned directories).
  - Uses the docker API client of community.docker, so the usual docker connection options apply.
author:
  - mpi-trt-ansible contributors
version_added: "1.1.0"
extends_documentation_fragment:
  - community.docker.docker.api_documentation
options:
  cluster:
    description: Cluster name, written to the C(mtrt.cluster) label of every container.
    type: str
    required: true
  state:
    description:
      - V(started) runs every container; V(present) creates them without starting new ones
        (e.g. to inspect a GPU request on a host without the NVIDIA runtime); V(absent) removes them.
    type: str
    choices: [started, present, absent]
    default: started
  prune:
    description: Also remove containers labelled as this cluster's whose name is not in O(containers).
    type: bool
    default: true
  create_dirs:
    description:
      - Bind sources to create as directories (mode 0755) on the docker host when they are missing, e.g.
        the shared directory. Every other bind source must already exist.
    type: list
    elements: path
    default: []
  parallel:
    description: Containers changed at the same time.
    type: int
    default: 16
  containers:
    description: One spec per container.
    type: list
    elements: dict
    required: true
    suboptions:
      name: {description: Container name., type: str, required: true}
      hostname: {description: "Hostname (default the name; none with O(containers[].network=host)).", type: str}
      image: {description: Image reference; it must exist on the docker host (nothing is pulled)., type: str}
      network:
        description:
          - Network the container is attached to (its only one).
          - V(host) runs it on the machine's own network stack (C(cluster_mode) V(docker_per_host)); it then has no
            address, hostname or peers of its own, and none of them is part of its fingerprint.
        type: str
      ip: {description: Static IPv4 address on that network (not with V(host))., type: str}
      etc_hosts: {description: Host name to address, added to /etc/hosts (C(--add-host); not with V(host))., type: dict}
      ipc: {description: "IPC namespace (C(--ipc)): V(host) shares the machine's; unset keeps a private one.", type: str}
      devices:
        description: "Devices passed in (C(--device)), each C(/dev/host[:/dev/container][:rwm]), e.g. C(/dev/infiniband)."
        type: list
        elements: str
      cap_add: {description: "Capabilities added (C(--cap-add)), e.g. C(IPC_LOCK); never SYS_ADMIN or ALL.", type: list, elements: str}
      binds: {description: "C(/host:/container[:ro|rw]) bind mounts.", type: list, elements: str}
      shm_size: {description: Size of /dev/shm (e.g. C(1g))., type: str}
      ulimits: {description: "C(name:soft:hard) entries.", type: list, elements: str}
      env: {description: Environment variables., type: dict}
      labels:
        description: Labels (C(mtrt.cluster), C(mtrt.spec_hash) and C(mtrt.spec), the document hashed, are set by the module).
        type: dict
      gpus: {description: "GPU ids of the docker host (C(--gpus device=...)).", type: list, elements: int}
      restart_policy: {description: Docker restart policy., type: str, default: unless-stopped}
      hash_files:
        description: Files on the docker host whose content is part of the fingerprint (what the entrypoint installs at start).
        type: list
        elements: str
  scope:
    description:
      - Labels (name to value) a container of the cluster must carry to be pruned. With one node container per
        machine each machine's run names its own (C(mtrt.docker_host)), so it never removes another machine's.
    type: dict
    default: {}
  known:
    description:
      - A fresh listing of the docker host (the result of M(community.docker.docker_host_info) with
        C(containers), C(images), C(networks) and C(verbose_output)). When it shows every container as
        wanted, the action plugin returns at once without running the module; otherwise, and in check
        or diff mode, the module reads docker itself. Pass it only while nothing changed the images or
        the network since it was taken.
    type: dict
  wait_port:
    description:
      - After containers were created, recreated, started or unpaused, wait until each of them accepts TCP
        connections on this port of its O(containers[].ip) (its sshd), so that the next stage can ssh to it
        at once; a container that does not within O(wait_timeout_s) fails the task, named with its address.
      - V(0) skips the wait, and so does a container without an address (O(containers[].network=host)).
        The docker host must reach the containers' network (it does for its own bridge networks).
    type: int
    default: 0
  wait_timeout_s:
    description: Bound on that wait, for all containers together, in seconds.
    type: int
    default: 60
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Run two nodes
  node_containers:
    cluster: mtrt
    containers:
      - {name: node1, image: "mtrt-node:mtrt", network: network_my, ip: 192.168.123.111,
         etc_hosts: {node2: 192.168.123.112}, gpus: [0]}
      - {name: node2, image: "mtrt-node:mtrt", network: network_my, ip: 192.168.123.112,
         etc_hosts: {node1: 192.168.123.111}, gpus: [1]}

- name: Remove them (and any other container of the cluster)
  node_containers:
    cluster: mtrt
    state: absent
    containers: [{name: node1}, {name: node2}]
"""

RETURN = r"""
mtrt_kind:
  description: Always C(node_containers).
  returned: always
  type: str
containers:
  description: One entry per container of O(containers), then one per pruned container.
  returned: always
  type: list
  elements: dict
  sample: [{name: node1, action: create, reasons: [no container], id: 3f2c..., ip: 192.168.123.111, ok: true}]
  contains:
    action: {description: "none, create, recreate, start, unpause or remove.", type: str, returned: always}
    reasons: {description: Why the action was needed., type: list, elements: str, returned: always}
    ok: {description: Whether the action succeeded (true in check mode)., type: bool, returned: always}
    error: {description: Docker's error when it did not., type: str, returned: when failed}
counts:
  description: Number of containers per action.
  returned: always
  type: dict
  sample: {none: 6, create: 2}
image_id:
  description: ID of the image the containers run (empty for O(state=absent)).
  returned: always
  type: str
duration_s:
  description: Seconds the module took.
  returned: always
  type: float
created_dirs:
  description: Directories of O(create_dirs) that were missing and were created (would be, in check mode).
  returned: always
  type: list
  elements: str
port_ready_s:
  description: Seconds from the end of the container changes until every changed container accepted connections
    on O(wait_port) (null when nothing was waited for).
  returned: always
  type: float
decided_from:
  description:
    - V(docker) when the module read docker itself; V(listing) when the action plugin found every
      container current in the listing given as C(known) and did not start the module.
  returned: always
  type: str
"""

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.mtrt_containers import (
    LABEL_CLUSTER, SpecError, bind_sources, create_body, fingerprint_doc, normalize_spec, plan)
from ansible.module_utils.mtrt_fileio import sha256_of
from ansible.module_utils.mtrt_ssh import wait_for_port
from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient, RequestException)
from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException, NotFound

_SPEC_OPTIONS = dict(
    name=dict(type="str", required=True), hostname=dict(type="str"), image=dict(type="str"),
    network=dict(type="str"), ip=dict(type="str"), etc_hosts=dict(type="dict"),
    binds=dict(type="list", elements="str"), shm_size=dict(type="str"),
    ulimits=dict(type="list", elements="str"), env=dict(type="dict"), labels=dict(type="dict"),
    gpus=dict(type="list", elements="int"), restart_policy=dict(type="str", default="unless-stopped"),
    hash_files=dict(type="list", elements="str"), ipc=dict(type="str"), devices=dict(type="list", elements="str"),
    cap_add=dict(type="list", elements="str"))


def _list(client, filters):
    return client.get_json("/containers/json", params={"all": 1, "filters": json.dumps(filters)})


def _apply(client, item, spec, cluster, doc, state):
    """Carry out one planned action; returns an error string or None."""
    action, cid = item["action"], item.get("id")
    try:
        if action in ("remove", "recreate"):
            try:
                client.delete_call("/containers/{0}", cid, params={"force": 1})
            except NotFound:
                pass
        if action in ("create", "recreate"):
            created = client.post_json_to_json("/containers/create", data=create_body(spec, cluster, doc),
                                               params={"name": spec["name"]})
            cid = item["id"] = created["Id"]
        if action == "unpause":
            client.post_call("/containers/{0}/unpause", cid)
        elif action == "start" or (action in ("create", "recreate") and state == "started"):
            client.post_call("/containers/{0}/start", cid)
    except (DockerException, RequestException) as exc:
        return str(exc)
    return None


def main():
    client = AnsibleDockerClient(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            state=dict(type="str", default="started", choices=["started", "present", "absent"]),
            prune=dict(type="bool", default=True),
            create_dirs=dict(type="list", elements="path", default=[]),
            parallel=dict(type="int", default=16),
            containers=dict(type="list", elements="dict", required=True, options=_SPEC_OPTIONS),
            scope=dict(type="dict", default={}),
            wait_port=dict(type="int", default=0),
            wait_timeout_s=dict(type="int", default=60),
        ),
        supports_check_mode=True,
        min_docker_api_version="1.40",
    )
    module = client.module
    params = module.params
    started_at = time.monotonic()
    cluster, state = params["cluster"], params["state"]
    result = dict(mtrt_kind="node_containers", changed=False, containers=[], counts={}, image_id="",
                  duration_s=0.0, decided_from="docker", created_dirs=[], port_ready_s=None)

    try:
        # Removal needs only the names; everything else is checked where it is used.
        specs = ([{"name": c["name"]} for c in params["containers"]] if state == "absent" else
                 [normalize_spec({k: v for k, v in c.items() if v is not None}) for c in params["containers"]])
    except SpecError as exc:
        module.fail_json(msg=str(exc), **result)
    names = [s["name"] for s in specs]
    if len(set(names)) != len(names):
        module.fail_json(msg="container names repeat: %s" % ", ".join(sorted({n for n in names if names.count(n) > 1})),
                         **result)

    image_ids, network_ids, docs = {}, {}, {}
    try:
        if state != "absent":
            result["created_dirs"] = [d for d in params["create_dirs"] if not os.path.isdir(d)]
            if not module.check_mode:
                for path in result["created_dirs"]:
                    os.makedirs(path, mode=0o755, exist_ok=True)
                    os.chmod(path, 0o755)
            missing = sorted({p for s in specs for p in bind_sources(s) if not os.path.exists(p)}
                             - set(result["created_dirs"]))
            # In check mode the earlier stages wrote nothing: what they would make is not an error here.
            if missing and not module.check_mode:
                module.fail_json(msg="bind source(s) missing on the docker host: %s. Run the stages that create "
                                     "them first (ssh_keys renders the keys and configuration; the shared "
                                     "directory is created by the node_containers role)." % ", ".join(missing),
                                 **result)
            for ref in sorted({s["image"] for s in specs}):
                try:
                    image_ids[ref] = client.get_json("/images/{0}/json", ref)["Id"]
                except NotFound:
                    if not module.check_mode:
                        module.fail_json(msg="image %s is not on the docker host and nothing is pulled: run the "
                                             "node_image stage (ansible-playbook site.yml --tags node_image)" % ref,
                                         **result)
                    image_ids[ref] = None
            for net in sorted({s["network"] for s in specs}):
                try:
                    network_ids[net] = client.get_json("/networks/{0}", net)["Id"]
                except NotFound:
                    if not module.check_mode:
                        module.fail_json(msg="network %s does not exist: run the cluster_network stage first" % net,
                                         **result)
                    network_ids[net] = None
            digests = {p: sha256_of(p) for p in sorted({p for s in specs for p in s["hash_files"]})}
            docs = {s["name"]: fingerprint_doc(s, image_ids[s["image"]], digests) for s in specs}
        listed = _list(client, {"label": ["%s=%s" % (LABEL_CLUSTER, cluster)]})
        if names:
            seen = {e["Id"] for e in listed}
            listed += [e for e in _list(client, {"name": ["^/%s$" % re.escape(n) for n in names]})
                       if e["Id"] not in seen]
    except (DockerException, RequestException) as exc:
        module.fail_json(msg="docker API error while reading the cluster: %s" % exc, **result)

    actions, conflicts = plan(specs, listed, cluster, state, image_ids, network_ids, docs,
                              prune=params["prune"], scope=params["scope"])
    if conflicts and state != "absent":
        module.fail_json(msg="; ".join(conflicts), **result)
    for conflict in conflicts:
        module.warn("left alone: " + conflict)
    spec_by_name = {s["name"]: s for s in specs}
    todo = [a for a in actions if a["action"] != "none"]
    for a in actions:
        a["ok"] = True
        if a["name"] in spec_by_name and state != "absent":
            a["ip"] = spec_by_name[a["name"]].get("ip")
    result["image_id"] = (next(iter(image_ids.values()), "") or "") if len(image_ids) == 1 else ""
    result["changed"] = bool(todo or result["created_dirs"])
    if module._diff:
        result["diff"] = {
            "before": {a["name"]: ("absent" if a["action"] == "create" else "present") for a in todo},
            "after": {a["name"]: ("absent" if a["action"] == "remove" else "%s (%s)" % (
                a["action"], "; ".join(a["reasons"]))) for a in todo},
        }

    if todo and not module.check_mode:
        def work(item):
            spec = spec_by_name.get(item["name"])
            return item, _apply(client, item, spec, cluster, docs.get(item["name"]), state)

        with ThreadPoolExecutor(max_workers=max(1, min(params["parallel"], len(todo)))) as pool:
            for item, error in pool.map(work, todo):
                if error:
                    item["ok"] = False
                    item["error"] = error

    result["containers"] = actions
    for a in actions:
        result["counts"][a["action"]] = result["counts"].get(a["action"], 0) + 1
    failed = [a for a in actions if not a["ok"]]
    if failed:
        result["duration_s"] = round(time.monotonic() - started_at, 3)
        module.fail_json(msg="docker refused %d of %d container change(s): %s" % (
            len(failed), len(todo), "; ".join("%s (%s): %s" % (a["name"], a["action"], a["error"]) for a in failed)),
            **result)
    started = [a for a in todo if a["action"] != "remove" and a.get("ip")]
    if params["wait_port"] and state == "started" and started and not module.check_mode:
        waited = time.monotonic()
        deadline = waited + params["wait_timeout_s"]
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(started)))) as pool:
            answered = list(pool.map(lambda a: wait_for_port(a["ip"], params["wait_port"], deadline), started))
        silent = [(a["name"], a["ip"]) for a, ok in zip(started, answered) if not ok]
        result["port_ready_s"] = round(time.monotonic() - waited, 3)
        if silent:
            result["duration_s"] = round(time.monotonic() - started_at, 3)
            module.fail_json(msg="%s started, but nothing accepted connections on port %d within %ds: %s. Its sshd "
                                 "did not come up: read docker logs <container>." % (
                                     ", ".join(n for n, _ip in silent), params["wait_port"], params["wait_timeout_s"],
                                     ", ".join("%s at %s" % (n, ip) for n, ip in silent)), **result)
    result["duration_s"] = round(time.monotonic() - started_at, 3)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
