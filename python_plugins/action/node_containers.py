# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""node_containers: bring the node containers to their specs, inside the controller process where it can.

On this machine's docker engine (docker mode: the task runs on localhost) the action does the module's
work itself, through the Docker SDK: the same read, plan, changes and sshd wait
(``mpi_trt_ansible/containers_run.py``, which the module runs too), check and diff mode included, without
the module's payload, Python start and imports. On another docker host (docker_per_host: the task is
delegated there), or when the task passes community.docker's connection options, the module runs there.

Before that, on a re-run of an unchanged cluster: preflight has listed this cluster's containers, the
images and the networks moments before; given that listing as ``known``, this action makes the same
decision from it (same specs, fingerprints and plan, from ``module_utils/mtrt_containers.py``) and asks
docker nothing when every container is as wanted. The caller passes ``known`` only while no earlier
stage of the run changed an image or the network.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from mpi_trt_ansible import containers as mtrt_containers
from mpi_trt_ansible import containers_run
from mpi_trt_ansible.fileio import sha256_of
from mpi_trt_ansible.preflight import facts

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
                                              image_ids, network_ids, docs, prune=args.get("prune", True),
                                              scope=args.get("scope"))
    if conflicts or any(a["action"] != "none" for a in actions):
        return None
    ips = {s["name"]: s.get("ip") for s in specs}
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
        if self._connection.transport in _LOCAL and not set(args) - set(containers_run.ARGUMENT_SPEC):
            result.update(self._converge_here(args))
            return result
        result.update(self._execute_module(module_name="node_containers", module_args=args, task_vars=task_vars))
        return result

    def _converge_here(self, args):
        """The module's work on this machine's docker engine, in this process (Docker SDK)."""
        checked = ArgumentSpecValidator(containers_run.ARGUMENT_SPEC).validate(args)
        if checked.error_messages:
            raise AnsibleActionFail("node_containers: %s" % "; ".join(checked.error_messages))
        try:
            docker, client = facts.docker_client()
        except facts.DockerUnavailable as exc:
            raise AnsibleActionFail("node_containers: the docker engine cannot be asked: %s" % exc) from exc
        import requests  # the Docker SDK's HTTP layer: its errors mean docker could not be reached

        warnings = []
        try:
            if _version(client.api_version) < _version(containers_run.MIN_API_VERSION):
                return dict(failed=True, changed=False, mtrt_kind="node_containers",
                            msg="node_containers needs docker API %s or later; this engine speaks %s"
                                % (containers_run.MIN_API_VERSION, client.api_version))
            out = containers_run.converge(
                containers_run.SdkApi(client), checked.validated_parameters, check_mode=bool(self._task.check_mode),
                diff=bool(self._task.diff), errors=(docker.errors.DockerException, requests.RequestException),
                not_found=docker.errors.NotFound, warn=warnings.append)
        except containers_run.Failed as exc:
            out = dict(exc.result, failed=True, msg=exc.msg)
        finally:
            client.close()
        if warnings:
            out["warnings"] = warnings
        return out


def _version(text):
    return tuple(int(part) for part in str(text).split(".") if part.isdigit())
