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

from ansible.module_utils.mtrt_containers_run import ARGUMENT_SPEC, MIN_API_VERSION, Failed, converge
from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient, RequestException)
from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException, NotFound


def main():
    client = AnsibleDockerClient(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                                 min_docker_api_version=MIN_API_VERSION)
    module = client.module
    try:
        result = converge(client, module.params, check_mode=module.check_mode, diff=module._diff,
                          errors=(DockerException, RequestException), not_found=NotFound, warn=module.warn)
    except Failed as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
