#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_preflight
short_description: Check a cluster topology before anything is created
description:
  - Validates the cluster contract (network, nodes, GPUs, MPI world, SSH, shared directory, ulimits,
    optional TensorRT-LLM world size) against facts the caller gathered on the docker host
    (existing docker networks, host routes, GPUs, hard limits).
  - Reports B(every) problem at once. Each names the variable, its value and the fix.
  - Changes nothing; C(changed) is always false. Fails when any problem is found.
  - Values given as V(null) count as unset variables and are reported.
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  cluster_name:
    description: Name of the cluster (C(cluster_name)).
    type: str
  mode:
    description:
      - C(cluster_mode), V(docker), V(local), V(hosts) or V(docker_per_host).
      - Network and docker-host ulimit checks run only in docker mode, SSH checks in every mode but local;
        local mode allows one node. The machines of V(hosts) and V(docker_per_host) are checked by
        M(hosts_preflight) on facts read from each.
    type: str
    default: docker
  network:
    description: The cluster's docker network.
    type: dict
    suboptions:
      name:
        description: C(cluster_network_name).
        type: str
      subnet:
        description: C(cluster_network_subnet), IPv4 CIDR network address.
        type: str
      gateway:
        description: C(cluster_network_gateway).
        type: str
  nodes:
    description: One entry per host of the C(nodes) group.
    type: list
    elements: dict
    suboptions:
      name:
        description: Inventory name (container name and hostname).
        type: str
      ip:
        description: C(node_ip).
        type: str
      gpus:
        description: C(node_gpus), GPU ids of the docker host pinned to the node.
        type: list
        elements: int
      slots:
        description: C(node_slots), MPI slots.
        type: int
      mpi_host:
        description: The name the hostfile uses for the node (C(node_mpi_host), default its inventory name).
        type: str
      docker_host:
        description: Inventory name of the docker host that runs the node (the controller).
        type: str
        default: localhost
      fabric_ifname:
        description: C(node_fabric_ifname) (checked by the preflight across hosts, not here).
        type: str
  ssh:
    description: SSH between nodes.
    type: dict
    suboptions:
      user:
        description: C(cluster_ssh_user).
        type: str
      port:
        description: C(cluster_ssh_port).
        type: int
      kex_algorithms:
        description: C(cluster_ssh_kex_algorithms), a list of OpenSSH key exchange names (C(ssh -Q kex)).
        type: raw
  shared:
    description: The shared host directory.
    type: dict
    suboptions:
      host_dir:
        description: C(cluster_shared_host_dir).
        type: str
      exists:
        description: Whether O(shared.host_dir) exists on the docker host (V(null) = not checked).
        type: bool
      create:
        description: C(cluster_shared_host_dir_create).
        type: bool
      mount:
        description: C(cluster_shared_mount), path inside the containers.
        type: str
  mpi:
    description: The MPI launch.
    type: dict
    suboptions:
      np:
        description: Ranks to launch; V(null) means the sum of all node slots.
        type: int
      launcher:
        description: C(cluster_mpi_launcher), must be one of the nodes.
        type: str
  trtllm:
    description: Optional TensorRT-LLM world contract, checked when O(trtllm.enabled=true).
    type: dict
    suboptions:
      enabled:
        description: Check the TensorRT-LLM settings.
        type: bool
        default: false
      tp_size:
        description: Tensor parallel size; tp_size x pp_size must equal np.
        type: int
      pp_size:
        description: Pipeline parallel size.
        type: int
      model_dir:
        description: Model or checkpoint directory, as seen from the nodes.
        type: str
      model_dir_exists_on:
        description: Node name -> whether O(trtllm.model_dir) exists there (false is reported).
        type: dict
  ulimits:
    description: C(cluster_ulimits), ulimit name -> value (-1 = unlimited).
    type: dict
  docker_networks:
    description:
      - Existing docker networks on the docker host, in the shape of C(docker network inspect) or
        C(community.docker.docker_host_info) with C(networks=true, verbose_output=true)
        (C(Name), C(Id), C(Driver), C(IPAM.Config[].Subnet/Gateway), C(Options)),
        or V({name, id, subnets, bridge}).
      - The same name with the same subnet is the cluster's own network and is fine.
    type: list
    elements: dict
  host_routes:
    description:
      - Routes of the docker host, each a CIDR string or a dict with C(dst) and C(dev) (the output of
        C(ip -j route) fits). The default route and routes on docker bridges are ignored.
    type: list
    elements: raw
  proc_net_route:
    description: Text of the docker host's C(/proc/net/route); parsed and added to O(host_routes).
    type: str
  docker_hosts:
    description:
      - Docker host name -> facts, V({gpus, ulimits}). C(gpus) is a list of GPU ids, a count, or V(null)/V([])
        for none; C(ulimits) maps ulimit name -> the hard limit the engine can grant (-1 = unlimited).
      - Instead of C(ulimits), C(proc_status) and C(proc_limits) may carry the text of the docker daemon's
        C(/proc/PID/status) and C(/proc/PID/limits); its hard limits count only when it lacks CAP_SYS_RESOURCE.
      - Hosts not listed are not compared against.
    type: dict
  var_names:
    description: Overrides of the variable names used in messages, keyed by spec path (e.g. C(mpi.np)).
    type: dict
notes:
  - The checks live in C(module_utils/mtrt_topology.py) (C(validate), C(format_problems)).
  - "Check mode: supported (the module never changes anything)."
  - An action plugin (C(python_plugins/action/cluster_preflight.py)) runs the checks inside the controller
    process, so no module is shipped or started; this file holds the documentation only.
"""

EXAMPLES = r"""
- name: Check the cluster topology
  cluster_preflight:
    cluster_name: "{{ cluster_name }}"
    mode: "{{ cluster_mode }}"
    network:
      name: "{{ cluster_network_name }}"
      subnet: "{{ cluster_network_subnet }}"
      gateway: "{{ cluster_network_gateway }}"
    nodes: >-
      {% set out = [] %}{% for n in groups['nodes'] %}{% set _ = out.append({'name': n,
      'ip': hostvars[n]['node_ip'] | default(none), 'gpus': hostvars[n]['node_gpus'] | default(none),
      'slots': hostvars[n]['node_slots'] | default(none), 'docker_host': cluster_docker_host})
      %}{% endfor %}{{ out }}
    ssh: {user: "{{ cluster_ssh_user }}", port: "{{ cluster_ssh_port }}"}
    shared:
      host_dir: "{{ cluster_shared_host_dir }}"
      exists: "{{ preflight_shared_stat.stat.exists }}"
      create: "{{ cluster_shared_host_dir_create }}"
      mount: "{{ cluster_shared_mount }}"
    mpi: {np: "{{ cluster_mpi_np }}", launcher: "{{ cluster_mpi_launcher }}"}
    ulimits: "{{ cluster_ulimits }}"
    docker_networks: "{{ preflight_docker.networks }}"
    proc_net_route: "{{ preflight_route.content | b64decode }}"
    docker_hosts:
      localhost: {gpus: [0, 1], ulimits: {nofile: 1048576, memlock: -1}}

- name: Check a hand-written topology
  cluster_preflight:
    network: {name: network_my, subnet: 192.168.123.0/24, gateway: 192.168.123.1}
    nodes:
      - {name: node1, ip: 192.168.123.111, gpus: [], slots: 2}
      - {name: node2, ip: 192.168.123.112, gpus: [], slots: 2}
    ssh: {user: root, port: 22}
    shared: {host_dir: /srv/trt, create: true, mount: /TRTDir}
    mpi: {launcher: node1}
"""

RETURN = r"""
ok:
  description: True when no problem was found.
  returned: always
  type: bool
  sample: false
problems:
  description: Every problem found; each names the variable, its value, what is wrong and the fix.
  returned: always
  type: list
  elements: dict
  sample:
    - variable: node_ip (node2)
      value: 192.168.123.1
      message: node_ip (node2) 192.168.123.1 equals cluster_network_gateway (the bridge itself).
      fix: "Give node2 a free address in 192.168.123.0/24, e.g. node_ip: 192.168.123.2."
checked:
  description: What was checked, as counts.
  returned: always
  type: dict
  sample: {mode: docker, nodes: 2, slots: 4, np: 4, gpus: 0, docker_networks: 3, host_routes: 3,
           docker_hosts: [localhost], ulimits: 2, trtllm: false}
msg:
  description: One numbered message listing every problem with its fix.
  returned: always
  type: str
  sample: "Preflight found no problems."
mtrt_kind:
  description: Result kind for the run-report callback.
  returned: always
  type: str
  sample: preflight
"""
