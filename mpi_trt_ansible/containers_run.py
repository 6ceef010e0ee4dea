# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Bring docker to the node containers' specs: read, plan, act, wait for sshd - through any docker API client.

One implementation for both places stage 40 runs: the ``node_containers`` module on a docker host
(``python_plugins/modules/node_containers.py``, with community.docker's ``AnsibleDockerClient``), and
the ``node_containers`` action inside the controller process (the Docker SDK through
:class:`SdkApi`), where a module run would cost its payload, a Python start and its imports. Also
``python_plugins/module_utils/mtrt_containers_run.py`` (a link to this file) inside the module.

``api`` needs four calls, as community.docker's client names them: ``get_json(path, *args, params=)``,
``post_json_to_json(path, *args, data=, params=)``, ``delete_call(path, *args, params=)``,
``post_call(path, *args)``; ``errors`` are the exceptions that mean docker refused or could not be
reached, ``not_found`` the one that means a missing object.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

try:  # inside the module (AnsiballZ)
    from ansible.module_utils.mtrt_containers import (
        LABEL_CLUSTER, SpecError, bind_sources, create_body, fingerprint_doc, normalize_spec, plan)
    from ansible.module_utils.mtrt_fileio import sha256_of
    from ansible.module_utils.mtrt_ssh import wait_for_port
except ImportError:  # the controller
    from mpi_trt_ansible.containers import (
        LABEL_CLUSTER, SpecError, bind_sources, create_body, fingerprint_doc, normalize_spec, plan)
    from mpi_trt_ansible.fileio import sha256_of
    from mpi_trt_ansible.ssh import wait_for_port

SPEC_OPTIONS = dict(
    name=dict(type="str", required=True), hostname=dict(type="str"), image=dict(type="str"),
    network=dict(type="str"), ip=dict(type="str"), etc_hosts=dict(type="dict"),
    binds=dict(type="list", elements="str"), shm_size=dict(type="str"),
    ulimits=dict(type="list", elements="str"), env=dict(type="dict"), labels=dict(type="dict"),
    gpus=dict(type="list", elements="int"), restart_policy=dict(type="str", default="unless-stopped"),
    hash_files=dict(type="list", elements="str"), ipc=dict(type="str"), devices=dict(type="list", elements="str"),
    cap_add=dict(type="list", elements="str"))
# The module's own options (besides community.docker's connection options); the action validates the same.
ARGUMENT_SPEC = dict(
    cluster=dict(type="str", required=True),
    state=dict(type="str", default="started", choices=["started", "present", "absent"]),
    prune=dict(type="bool", default=True),
    create_dirs=dict(type="list", elements="path", default=[]),
    parallel=dict(type="int", default=16),
    containers=dict(type="list", elements="dict", required=True, options=SPEC_OPTIONS),
    scope=dict(type="dict", default={}),
    wait_port=dict(type="int", default=0),
    wait_timeout_s=dict(type="int", default=60),
)
MIN_API_VERSION = "1.40"


class Failed(Exception):
    """The run stops here: ``msg`` says why; the result so far goes with it."""

    def __init__(self, msg, result):
        super().__init__(msg)
        self.msg, self.result = msg, result


def _list(api, filters):
    return api.get_json("/containers/json", params={"all": 1, "filters": json.dumps(filters)})


def _apply(api, item, spec, cluster, doc, state, errors, not_found):
    """Carry out one planned action; returns an error string or None."""
    action, cid = item["action"], item.get("id")
    try:
        if action in ("remove", "recreate"):
            try:
                api.delete_call("/containers/{0}", cid, params={"force": 1})
            except not_found:
                pass
        if action in ("create", "recreate"):
            created = api.post_json_to_json("/containers/create", data=create_body(spec, cluster, doc),
                                            params={"name": spec["name"]})
            cid = item["id"] = created["Id"]
        if action == "unpause":
            api.post_call("/containers/{0}/unpause", cid)
        elif action == "start" or (action in ("create", "recreate") and state == "started"):
            api.post_call("/containers/{0}/start", cid)
    except errors as exc:
        return str(exc)
    return None


def _read(api, params, specs, names, result, check_mode, errors, not_found):
    """Images, networks, fingerprints and the containers docker lists (this cluster's, or of these names)."""
    image_ids, network_ids, docs = {}, {}, {}
    try:
        if params["state"] != "absent":
            result["created_dirs"] = [d for d in params["create_dirs"] if not os.path.isdir(d)]
            if not check_mode:
                for path in result["created_dirs"]:
                    os.makedirs(path, mode=0o755, exist_ok=True)
                    os.chmod(path, 0o755)
            missing = sorted({p for s in specs for p in bind_sources(s) if not os.path.exists(p)}
                             - set(result["created_dirs"]))
            # In check mode the earlier stages wrote nothing: what they would make is not an error here.
            if missing and not check_mode:
                raise Failed("bind source(s) missing on the docker host: %s. Run the stages that create them "
                             "first (ssh_keys renders the keys and configuration; the shared directory is "
                             "created by the node_containers role)." % ", ".join(missing), result)
            for ref in sorted({s["image"] for s in specs}):
                try:
                    image_ids[ref] = api.get_json("/images/{0}/json", ref)["Id"]
                except not_found:
                    if not check_mode:
                        raise Failed("image %s is not on the docker host and nothing is pulled: run the node_image "
                                     "stage (ansible-playbook site.yml --tags node_image)" % ref, result)
                    image_ids[ref] = None
            for net in sorted({s["network"] for s in specs}):
                try:
                    network_ids[net] = api.get_json("/networks/{0}", net)["Id"]
                except not_found:
                    if not check_mode:
                        raise Failed("network %s does not exist: run the cluster_network stage first" % net, result)
                    network_ids[net] = None
            digests = {p: sha256_of(p) for p in sorted({p for s in specs for p in s["hash_files"]})}
            docs = {s["name"]: fingerprint_doc(s, image_ids[s["image"]], digests) for s in specs}
        listed = _list(api, {"label": ["%s=%s" % (LABEL_CLUSTER, params["cluster"])]})
        if names:
            seen = {e["Id"] for e in listed}
            listed += [e for e in _list(api, {"name": ["^/%s$" % re.escape(n) for n in names]})
                       if e["Id"] not in seen]
    except errors as exc:
        raise Failed("docker API error while reading the cluster: %s" % exc, result)
    return image_ids, network_ids, docs, listed


def converge(api, params, check_mode=False, diff=False, errors=(Exception,), not_found=LookupError, warn=None):
    """Bring docker to ``params`` (validated against ARGUMENT_SPEC); return the result. Raises Failed."""
    started_at = time.monotonic()
    cluster, state = params["cluster"], params["state"]
    result = dict(mtrt_kind="node_containers", changed=False, containers=[], counts={}, image_id="",
                  duration_s=0.0, decided_from="docker", created_dirs=[], port_ready_s=None)
    try:
        # Removal needs only the names; everything else is checked where it is used.
        specs = ([{"name": c["name"]} for c in params["containers"]] if state == "absent" else
                 [normalize_spec({k: v for k, v in c.items() if v is not None}) for c in params["containers"]])
    except SpecError as exc:
        raise Failed(str(exc), result)
    names = [s["name"] for s in specs]
    if len(set(names)) != len(names):
        raise Failed("container names repeat: %s" % ", ".join(sorted({n for n in names if names.count(n) > 1})),
                     result)
    image_ids, network_ids, docs, listed = _read(api, params, specs, names, result, check_mode, errors, not_found)

    actions, conflicts = plan(specs, listed, cluster, state, image_ids, network_ids, docs,
                              prune=params["prune"], scope=params["scope"])
    if conflicts and state != "absent":
        raise Failed("; ".join(conflicts), result)
    for conflict in conflicts:
        if warn is not None:
            warn("left alone: " + conflict)
    spec_by_name = {s["name"]: s for s in specs}
    todo = [a for a in actions if a["action"] != "none"]
    for a in actions:
        a["ok"] = True
        if a["name"] in spec_by_name and state != "absent":
            a["ip"] = spec_by_name[a["name"]].get("ip")
    result["image_id"] = (next(iter(image_ids.values()), "") or "") if len(image_ids) == 1 else ""
    result["changed"] = bool(todo or result["created_dirs"])
    if diff:
        result["diff"] = {
            "before": {a["name"]: ("absent" if a["action"] == "create" else "present") for a in todo},
            "after": {a["name"]: ("absent" if a["action"] == "remove" else "%s (%s)" % (
                a["action"], "; ".join(a["reasons"]))) for a in todo},
        }

    if todo and not check_mode:
        def work(item):
            spec = spec_by_name.get(item["name"])
            return item, _apply(api, item, spec, cluster, docs.get(item["name"]), state, errors, not_found)

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
        raise Failed("docker refused %d of %d container change(s): %s" % (
            len(failed), len(todo), "; ".join("%s (%s): %s" % (a["name"], a["action"], a["error"]) for a in failed)),
            result)
    started = [a for a in todo if a["action"] != "remove" and a.get("ip")]
    if params["wait_port"] and state == "started" and started and not check_mode:
        waited = time.monotonic()
        deadline = waited + params["wait_timeout_s"]
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(started)))) as pool:
            answered = list(pool.map(lambda a: wait_for_port(a["ip"], params["wait_port"], deadline), started))
        silent = [(a["name"], a["ip"]) for a, ok in zip(started, answered) if not ok]
        result["port_ready_s"] = round(time.monotonic() - waited, 3)
        if silent:
            result["duration_s"] = round(time.monotonic() - started_at, 3)
            raise Failed("%s started, but nothing accepted connections on port %d within %ds: %s. Its sshd did not "
                         "come up: read docker logs <container>." % (
                             ", ".join(n for n, _ip in silent), params["wait_port"], params["wait_timeout_s"],
                             ", ".join("%s at %s" % (n, ip) for n, ip in silent)), result)
    result["duration_s"] = round(time.monotonic() - started_at, 3)
    return result


class SdkApi:
    """The four calls :func:`converge` makes, on a Docker SDK ``APIClient`` (the controller's client)."""

    def __init__(self, client):
        self._client = client

    def _url(self, path, args):
        return self._client._url(path, *args)

    def get_json(self, path, *args, params=None):
        return self._client._result(self._client._get(self._url(path, args), params=params), json=True)

    def post_json_to_json(self, path, *args, data=None, params=None):
        return self._client._result(self._client._post_json(self._url(path, args), data=data, params=params),
                                    json=True)

    def delete_call(self, path, *args, params=None):
        self._client._raise_for_status(self._client._delete(self._url(path, args), params=params))

    def post_call(self, path, *args, params=None):
        self._client._raise_for_status(self._client._post(self._url(path, args), params=params))
