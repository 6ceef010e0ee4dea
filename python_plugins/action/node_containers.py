# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""node_containers: skip the module when a fresh listing already shows every container as wanted.

The module (``python_plugins/modules/node_containers.py``) reads docker and brings every node
container to its spec. On a re-run of an unchanged cluster it finds nothing to do, yet costs a
module run. Preflight has listed this cluster's containers, the images and the networks moments
before; given that listing as ``known``, this action makes the module's own decision (same specs,
fingerprints and plan, from ``module_utils/mtrt_containers.py``) inside the controller process,
and runs the module only when some container would change, when the listing cannot tell, or in
check/diff mode. The caller passes ``known`` only while no earlier stage of the run changed an
image or the network.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from mpi_trt_ansible import containers as mtrt_containers
from mpi_trt_ansible.fileio import sha256_of

_LOCAL = ("local", "ansible.builtin.local")


def listing_is_current(args, known):
    """``(actions, image_id)`` when ``known`` (docker_host_info: containers, images, networks) shows
    every container as wanted and nothing to prune; None when the module must decide."""
    state = args.get("state") or "started"
    if state not in ("started", "present") or not isinstance(known, dict):
        return None
    specs = [mtrt_containers.normalize_spec({k: v for k, v in c.items() if v is not None})
             for c in args.get("containers") or []]
    if any(not os.path.exists(p) for s in specs for p in mtrt_containers.bind_sources(s)) \
            or any(not os.path.isdir(d) for d in args.get("create_dirs") or []):
        return None
    image_ids = {}
    for ref in {s["image"] for s in specs}:
        ids = [i.get("Id") for i in known.get("images") or [] if ref in (i.get("RepoTags") or [])]
        if len(ids) != 1:
            return None
        image_ids[ref] = ids[0]
    network_ids = {n.get("Name"): n.get("Id") for n in known.get("networks") or []}
    if any(not network_ids.get(s["network"]) for s in specs):
        return None
    digests = {p: sha256_of(p) for s in specs for p in s["hash_files"]}
    docs = {s["name"]: mtrt_containers.fingerprint_doc(s, image_ids[s["image"]], digests) for s in specs}
    actions, conflicts = mtrt_containers.plan(specs, known.get("containers") or [], args.get("cluster"), state,
                                              image_ids, network_ids, docs, prune=args.get("prune", True))
    if conflicts or any(a["action"] != "none" for a in actions):
        return None
    ips = {s["name"]: s["ip"] for s in specs}
    for a in actions:
        a.update(ok=True, ip=ips[a["name"]])
    return actions, (next(iter(image_ids.values())) if len(image_ids) == 1 else "")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        known = args.pop("known", None)
        if known is not None and self._connection.transport in _LOCAL and not self._task.check_mode \
                and not self._task.diff:
            try:
                current = listing_is_current(args, known)
            except mtrt_containers.SpecError:
                current = None  # the module reports bad specs with its own message
            if current is not None:
                actions, image_id = current
                result.update(changed=False, mtrt_kind="node_containers", containers=actions,
                              counts={"none": len(actions)}, image_id=image_id, duration_s=0.0,
                              decided_from="listing", created_dirs=[])
                return result
        result.update(self._execute_module(module_name="node_containers", module_args=args, task_vars=task_vars))
        return result
