#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Check that the launcher reaches every node, and every node its neighbour, over SSH."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ssh_mesh_check
short_description: Verify the cluster's SSH mesh with strict host key checking
description:
  - From the node it runs on (the launcher), opens C(ssh peer hostname) to every peer in parallel, retrying
    while sshd is still starting until O(timeout_s), and checks that each peer answers with its own name.
  - With O(ring), also checks C(peer -> next peer) through the launcher, so every node's client side (key,
    known_hosts, ssh_config) is exercised once, with 2N connections instead of N*N.
  - Uses the nodes' ssh configuration as it is (BatchMode, StrictHostKeyChecking yes); never weakens it.
    Fails naming each peer, the cause and the fix. Never changes anything.
author: mpi-trt-ansible
version_added: "1.0.0"
options:
  peers:
    description: Node names to reach, in cluster order.
    type: list
    elements: str
    required: true
  timeout_s:
    description: Deadline in seconds for every peer to answer (covers sshd start-up).
    type: int
    default: 60
  connect_timeout_s:
    description: ssh ConnectTimeout of each attempt.
    type: int
    default: 5
  ring:
    description: Also check each peer's hop to the next peer.
    type: bool
    default: true
notes:
  - Supports check mode (nothing is contacted).
"""

EXAMPLES = r"""
- name: Check the SSH mesh from the launcher
  ssh_mesh_check:
    peers: "{{ groups['nodes'] }}"
    timeout_s: 60
"""

RETURN = r"""
mtrt_kind:
  description: Always C(ssh_mesh).
  returned: always
  type: str
direct:
  description: One entry per peer reached from the launcher (ok, answered_as, attempts, seconds, cause, fix).
  returned: always
  type: list
  elements: dict
ring:
  description: One entry per hop C(peer -> next peer) checked through the launcher.
  returned: always
  type: list
  elements: dict
failed_peers:
  description: Peers (or hops as C(a->b)) that did not answer correctly.
  returned: always
  type: list
  elements: str
duration_s:
  description: Seconds the check took.
  returned: always
  type: float
"""

import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_ssh import probe


def _check_all(hop_lists, deadline, connect_timeout):
    workers = max(1, min(32, len(hop_lists)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda hops: probe(hops, deadline, connect_timeout), hop_lists))


def _failures(results):
    failed = []
    for res in results:
        name = "->".join(res["hops"])
        if not res["ok"]:
            failed.append((name, res["cause"], res["fix"]))
        elif res["answered_as"].split(".")[0] != res["hops"][-1].split(".")[0]:
            res["ok"] = False
            res["cause"] = "%s answered as %s" % (res["hops"][-1], res["answered_as"])
            res["fix"] = "two nodes share an address or name: check node_ip values in the inventory"
            failed.append((name, res["cause"], res["fix"]))
    return failed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            peers=dict(type="list", elements="str", required=True),
            timeout_s=dict(type="int", default=60),
            connect_timeout_s=dict(type="int", default=5),
            ring=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    peers = module.params["peers"]
    result = dict(mtrt_kind="ssh_mesh", changed=False, direct=[], ring=[], failed_peers=[], duration_s=0.0)
    if module.check_mode:
        module.exit_json(**result)

    started = time.monotonic()
    deadline = started + module.params["timeout_s"]
    connect = module.params["connect_timeout_s"]
    result["direct"] = _check_all([[p] for p in peers], deadline, connect)
    failed = _failures(result["direct"])
    if not failed and module.params["ring"] and len(peers) > 1:
        hops = [[p, peers[(i + 1) % len(peers)]] for i, p in enumerate(peers)]
        result["ring"] = _check_all(hops, time.monotonic() + connect * 2 + 5, connect)
        failed = _failures(result["ring"])
    result["failed_peers"] = [name for name, _, _ in failed]
    result["duration_s"] = round(time.monotonic() - started, 3)
    if failed:
        module.fail_json(msg="SSH mesh check failed: " + "; ".join(
            "%s: %s (fix: %s)" % item for item in failed), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
