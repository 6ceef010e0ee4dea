#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Check that the launcher reaches every node, and every node its neighbour, over SSH."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ssh_mesh_check
short_description: Verify the cluster's SSH mesh with strict host key checking
description:
  - From the node it runs on (the launcher), reaches every peer over ssh in parallel, retrying while sshd
    is still starting until O(timeout_s), and checks that each peer answers with its own name.
  - With O(ring) (and two peers or more), each peer is reached as the first hop of C(launcher -> peer ->
    next peer), so one connection chain proves the launcher's hop to the peer and the peer's client side
    (key, known_hosts, ssh_config) towards its neighbour, 2N ssh connections for the whole mesh instead
    of N*N. Only when a chain fails are the direct hops of the peers involved checked on their own, to
    say which hop broke.
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
  port:
    description:
      - Port sshd listens on. Before the first ssh attempt to a peer, the check waits (until O(timeout_s))
        for that port to accept TCP connections, which notices a starting sshd sooner than ssh retries.
      - V(0) skips the wait.
    type: int
    default: 22
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
  description:
    - One entry per peer reached from the launcher (ok, answered_as, attempts, seconds, cause, fix).
    - C(via) is V(ring) when the hop was proven as the first hop of a passing ring chain (C(answered_as) is
      then the name the peer gave as the last hop of its predecessor's chain), V(direct) when it was checked alone.
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
failed_nodes:
  description: Every node named in O(peers) that takes part in a failed hop (both ends of C(a->b)), once each,
    in the order of O(peers).
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


def _check_all(hop_lists, deadline, connect_timeout, port=None):
    workers = max(1, min(32, len(hop_lists)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda hops: probe(hops, deadline, connect_timeout, port=port), hop_lists))


def _failures(results):
    failed = []
    for res in results:
        name = "->".join(res["hops"])
        if not res["ok"]:
            failed.append((name, res["cause"], res["fix"]))
        elif res["answered_as"] and res["answered_as"].split(".")[0] != res["hops"][-1].split(".")[0]:
            res["ok"] = False
            res["cause"] = "%s answered as %s" % (res["hops"][-1], res["answered_as"])
            res["fix"] = "two nodes share an address or name: check node_ip values in the inventory"
            failed.append((name, res["cause"], res["fix"]))
    return failed


def _attribute(peers, ring, deadline, connect, port):
    """Direct results for ``peers`` after ``ring`` (one chain per peer, in order) was checked.

    A peer whose chain passed was reached by its first hop; the peers of failed chains (first
    and second hop) are checked directly, so the failure lands on the hop that broke.
    """
    n = len(peers)
    suspects = sorted({i for i, res in enumerate(ring) if not res["ok"]}
                      | {(i + 1) % n for i, res in enumerate(ring) if not res["ok"]})
    # A peer whose own chain found its sshd port closed is down: that is its direct result already.
    known = {i: dict(ring[i], hops=[peers[i]]) for i in suspects if ring[i].get("first_hop_down")}
    ask = [i for i in suspects if i not in known]
    checked = dict(zip(ask, _check_all([[peers[i]] for i in ask], deadline, connect, port=port)))
    checked.update(known)
    direct = []
    for i, peer in enumerate(peers):
        if i in checked:
            direct.append(dict(checked[i], via="direct"))
        else:
            previous = ring[(i - 1) % n]
            direct.append(dict(ok=True, hops=[peer], answered_as=previous["answered_as"] if previous["ok"] else None,
                               attempts=ring[i]["attempts"], seconds=ring[i]["seconds"], cause=None, fix=None,
                               via="ring"))
    return direct


def main():
    module = AnsibleModule(
        argument_spec=dict(
            peers=dict(type="list", elements="str", required=True),
            timeout_s=dict(type="int", default=60),
            connect_timeout_s=dict(type="int", default=5),
            ring=dict(type="bool", default=True),
            port=dict(type="int", default=22),
        ),
        supports_check_mode=True,
    )
    peers = module.params["peers"]
    result = dict(mtrt_kind="ssh_mesh", changed=False, direct=[], ring=[], failed_peers=[], failed_nodes=[],
                  duration_s=0.0)
    if module.check_mode:
        module.exit_json(**result)

    started = time.monotonic()
    deadline = started + module.params["timeout_s"]
    connect = module.params["connect_timeout_s"]
    port = module.params["port"]
    if module.params["ring"] and len(peers) > 1:
        result["ring"] = _check_all([[p, peers[(i + 1) % len(peers)]] for i, p in enumerate(peers)],
                                    deadline, connect, port=port)
        ring_failed = _failures(result["ring"])
        result["direct"] = _attribute(peers, result["ring"], time.monotonic() + connect + 5, connect, port)
        direct_failed = _failures(result["direct"])
        # A broken direct hop explains the chains through it; report those chains only otherwise.
        broken = {name for name, _, _ in direct_failed}
        failed = direct_failed + [f for f in ring_failed if f[0].split("->")[0] not in broken
                                  and f[0].split("->")[1] not in broken]
    else:
        result["direct"] = [dict(r, via="direct") for r in _check_all([[p] for p in peers], deadline, connect,
                                                                       port=port)]
        failed = _failures(result["direct"])
    result["failed_peers"] = [name for name, _, _ in failed]
    involved = {node for name in result["failed_peers"] for node in name.split("->")}
    result["failed_nodes"] = [p for p in peers if p in involved]
    result["duration_s"] = round(time.monotonic() - started, 3)
    if failed:
        module.fail_json(msg="SSH mesh check failed: " + "; ".join(
            "%s: %s (fix: %s)" % item for item in failed), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
