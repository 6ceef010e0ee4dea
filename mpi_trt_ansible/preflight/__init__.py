# SPDX-License-Identifier: Apache-2.0
"""Preflight: every check that needs no running node, before anything is created.

:func:`check` takes a *view* of the run, which the ``preflight_check`` action builds from the
play's variables and the controller's facts:

    values       {variable: value} every contract variable as the controller's plays see it
    defaults     {variable: value} the project defaults (roles/cluster), templated
    host_values  {host: {variable: value}} the cluster_* variables each host's inventory sets
    role_values  {host: {variable: value}} stage-role variables the inventory or -e sets
    node_values  {node: {variable: value}} the node_* variables each node sets
    docker_host_values  {docker host: {variable: value}} docker_dir, docker_url as each docker host sets them
    nodes        cluster_nodes: [{name, ip, slots, gpus, mpi_host}]
    facts        {docker: listing or None, docker_error, host_gpus, cuda_visible_devices (the controller's,
                  None: unset), dockerd_ulimits, routes, shared_exists, mmdebstrap, runtime,
                  dirs: {path here: is a directory} of the model and tokenizer (preflight.model)}
                 (runtime: what the ranks' interpreter holds, read by preflight.runtime; None: not read)
    check_mode   bool
    roles_dir    where the roles' argument specs are

and returns the problems (each naming the variable, its host where it has one, the value and the
fix), one message listing them all, and what the later stages need from this run (the docker
listing, the host's GPUs, the hosts of the later plays).
"""

from __future__ import annotations

import importlib

from mpi_trt_ansible import settled
from mpi_trt_ansible.containers import tagged
from mpi_trt_ansible.preflight import contract, gpus, model, runtime, topology
from mpi_trt_ansible.preflight.problems import format_problems, with_host

__all__ = ["check", "format_problems", "stage_hosts"]

# The node_* variables the topology checks own (with their own messages).
_TOPOLOGY_NODE_VARS = ("node_ip", "node_slots", "node_gpus")


def _optional(module, function):
    """A rule another part of the project provides (``module.function``), or None before it exists."""
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        return None


def trtllm_runs(values, host_gpus):
    """Whether the TensorRT-LLM stages will run as far as the GPUs say (see :func:`trtllm_decision`)."""
    mode = str(values.get("cluster_trtllm_enabled")).lower()
    return mode == "true" or (mode == "auto" and bool(host_gpus))


def runtime_where(values):
    """Where the ranks' interpreter is read in this mode: (words for messages, the base image or None)."""
    mode = values.get("cluster_mode")
    if mode in ("docker", "docker_per_host"):
        base = values.get("cluster_image_base") or ""
        return ("in image %s on the docker host localhost" % (base or "of the offline Debian base"), base or "")
    return "on localhost (local mode: this machine is the node)", None


def trtllm_decision(values, facts):
    """``(runs, version, problems)``: whether the TensorRT-LLM stages run, with which tensorrt_llm, and what
    refuses ``cluster_trtllm_enabled: true``, from the GPUs and the ranks' interpreter (facts["runtime"])."""
    mode = values.get("cluster_mode")
    host_gpus = facts.get("host_gpus") or []
    if mode == "local":  # the ranks run here and see what CUDA_VISIBLE_DEVICES leaves them
        host_gpus = gpus.visible_gpus(host_gpus, facts.get("cuda_visible_devices"))
    info = facts.get("runtime") if mode in ("docker", "docker_per_host", "local") else None
    where, _ = runtime_where(values)
    # The GPUs the ranks can have are this machine's in docker and local mode; with several machines the
    # preflight across hosts reads theirs (and the TensorRT-LLM of hosts mode).
    here = mode in ("docker", "local")
    runs, version, problems = runtime.trtllm_gate(values.get("cluster_trtllm_enabled", "auto"), host_gpus, info,
                                                  where, gpus_where="the docker host localhost" if mode == "docker"
                                                  else "localhost" if here else None)
    return runs and trtllm_runs(values, host_gpus), version, problems


def topology_spec(values, nodes, facts, docker_host="localhost"):
    """The topology checks' spec from the contract values, the nodes and the facts."""
    mode = values.get("cluster_mode")
    return {
        "cluster_name": values.get("cluster_name"),
        "mode": mode,
        "network": {"name": values.get("cluster_network_name"), "subnet": values.get("cluster_network_subnet"),
                    "gateway": values.get("cluster_network_gateway")},
        # The machine whose GPUs a node pins: the docker host; with several machines, the node itself
        # (hosts) or its node_docker_host (docker_per_host).
        "nodes": [dict(n, docker_host=n.get("name") if mode == "hosts" else n.get("docker_host")
                       if mode == "docker_per_host" else docker_host) for n in nodes],
        "ssh": {"user": values.get("cluster_ssh_user"), "port": contract._as_int(values.get("cluster_ssh_port")),
                "kex_algorithms": values.get("cluster_ssh_kex_algorithms")},
        # With several machines the shared directory is on each of them (the preflight across hosts).
        "shared": {"host_dir": values.get("cluster_shared_host_dir"),
                   "exists": facts.get("shared_exists") if mode in ("docker", "local") else None,
                   "create": contract._as_bool(values.get("cluster_shared_host_dir_create")),
                   "mount": values.get("cluster_shared_mount")},
        "mpi": {"np": None, "launcher": values.get("cluster_mpi_launcher")},
        "ulimits": values.get("cluster_ulimits") if isinstance(values.get("cluster_ulimits"), dict) else {},
        "docker_networks": ((facts.get("docker") or {}).get("networks") or []) if mode == "docker" else [],
        "host_routes": facts.get("routes") or [],
        "docker_hosts": {docker_host: {"gpus": facts.get("host_gpus") or [],
                                       "ulimits": facts.get("dockerd_ulimits") or {}}} if mode == "docker" else {},
    }


def _image_problems(values, facts):
    """The base image must already be on the docker host (nothing is pulled)."""
    base = values.get("cluster_image_base") or ""
    images = (facts.get("docker") or {}).get("images") or []
    tags = {tag for image in images for tag in image.get("RepoTags") or []}
    if base:
        wanted = tagged(base)
        if wanted not in tags:
            return [{"variable": "cluster_image_base", "value": base,
                     "message": "cluster_image_base %r is not on the docker host, and nothing is pulled." % base,
                     "fix": "Load it first (docker load -i image.tar, or docker pull where a registry is reachable), "
                            "or set cluster_image_base: \"\" to build the offline Debian base."}]
        return []
    has_base = any((image.get("Labels") or {}).get("mtrt.role") == "base" for image in images)
    if not has_base and not facts.get("mmdebstrap"):
        return [{"variable": "cluster_image_base", "value": base,
                 "message": "cluster_image_base is empty, so the node image is built on an offline Debian base, "
                            "but mmdebstrap is not installed on the controller and no such base exists yet.",
                 "fix": "Install mmdebstrap (apt-get install mmdebstrap; scripts/bootstrap.sh does), or set "
                        "cluster_image_base to an image on the docker host (e.g. tensorrt_llm/release:latest)."}]
    return []


def stage_hosts(values, nodes, facts, check_mode=False):
    """The hosts each later kind of play runs on.

    MPI stages run on the launcher alone; the GPU and TensorRT-LLM stages on every node only where a
    container can have a GPU (else the launcher alone, which says why they skip). In check mode
    nothing starts, so before the launcher's container runs no stage can ask a node.
    """
    launcher = values.get("cluster_mpi_launcher")
    names = [n["name"] for n in nodes]
    runs = True
    if values.get("cluster_mode") == "docker" and check_mode:
        running = [c for c in (facts.get("docker") or {}).get("containers") or []
                   if "/%s" % launcher in (c.get("Names") or []) and c.get("State") == "running"]
        runs = bool(running)
    # The machines the preflight across hosts reads, in the modes on several ([] otherwise).
    machines = list(values.get("cluster_machines") or []) if values.get("cluster_mode") in ("hosts",
                                                                                          "docker_per_host") else []
    if not runs:
        return {"launcher": [], "gpu": [], "trtllm": [], "nodes_run": False, "machines": machines}
    host_gpus = facts.get("host_gpus") or []
    mode = str(values.get("cluster_trtllm_enabled")).lower()
    return {
        "launcher": [launcher],
        "gpu": names if host_gpus else [launcher],
        "trtllm": names if mode != "false" and (mode != "auto" or host_gpus) else [launcher],
        "nodes_run": True,
        "machines": machines,
    }


def _role_problems(role_values, role_specs, hosts):
    """Stage-role variables that do not fit their role's spec; a value all ``hosts`` have is named once."""
    seen = {}
    for host, values in sorted(role_values.items()):
        for problem in contract.check_values(values, role_specs):
            key = (problem["variable"], repr(problem["value"]))
            seen.setdefault(key, (problem, []))[1].append(host)
    out = []
    for (name, _), (problem, where_set) in seen.items():
        if len(where_set) < hosts:
            where = ", ".join(where_set)
            problem = dict(problem, variable="%s (%s)" % (name, where),
                           message=problem["message"].replace(name, "%s (%s)" % (name, where), 1))
        out.append(problem)
    return out


def _first_per_variable(problems):
    """One problem per variable: the contract's type or range check and a topology check can both
    refuse the same value (cluster_ssh_port 0); the first says it."""
    seen, out = set(), []
    for problem in problems:
        key = (problem["variable"], repr(problem["value"]))
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out


def check(view):
    """Every problem of the run's view (see the module docstring), and what later stages need."""
    values, nodes, facts = view.get("values") or {}, view.get("nodes") or [], view.get("facts") or {}
    specs = contract.load_specs(view["roles_dir"])
    problems = list(view.get("errors") or [])
    docker = values.get("cluster_mode") == "docker"
    # docker_per_host builds the node image on the controller too (stage 38 takes it to every machine).
    builds_image = values.get("cluster_mode") in ("docker", "docker_per_host")
    cluster_specs = dict(specs["cluster"])
    will_run_trtllm, trtllm_version, trtllm_gate = trtllm_decision(values, facts)
    if not will_run_trtllm:
        cluster_specs = {k: v for k, v in cluster_specs.items()
                         if not k.startswith("cluster_trtllm_") or k == "cluster_trtllm_enabled"}
    problems += contract.check_values(values, cluster_specs)
    node_specs = {k: v for k, v in specs["node"].items() if k not in _TOPOLOGY_NODE_VARS}
    for node, node_values in sorted((view.get("node_values") or {}).items()):
        problems += contract.check_values(node_values, node_specs, where="on host %s" % node, host=node)
    problems += contract.docker_host_problems(view.get("docker_host_values") or {}, specs.get("docker_host") or {})
    role_specs = {name: dict(spec, _role=role) for name, (role, spec) in specs["roles"].items()}
    problems += _role_problems(view.get("role_values") or {}, role_specs, len(view.get("host_values") or {}))
    problems += contract.one_view(view.get("host_values") or {}, view.get("defaults") or {})
    if builds_image and facts.get("docker") is None:
        problems.append({"variable": "cluster_mode", "value": values.get("cluster_mode"),
                         "message": "cluster_mode is %s, but the docker engine cannot be asked: %s."
                                    % (values.get("cluster_mode"), facts.get("docker_error") or "no answer"),
                         "fix": "Start the docker engine on this machine (and let this user use its socket), or set "
                                "cluster_mode: local to use this machine directly."})
    problems += topology.validate(topology_spec(values, nodes, facts))
    problems += gpus.layout_problems(nodes)
    trtllm_nodes = nodes
    if values.get("cluster_mode") == "local":
        problems += gpus.local_problems(nodes, facts.get("host_gpus") or [], facts.get("cuda_visible_devices"))
        # The local node's GPUs are the ones this machine lets its ranks see (nothing pins them).
        visible = gpus.visible_gpus(facts.get("host_gpus") or [], facts.get("cuda_visible_devices"))
        trtllm_nodes = [n if n.get("gpus") else dict(n, gpus=visible) for n in nodes]
    if builds_image and facts.get("docker") is not None:
        problems += _image_problems(values, facts)
    if values.get("cluster_mode") in ("docker", "docker_per_host", "local"):
        where, image = runtime_where(values)
        problems += runtime.probe_error_problems(facts.get("runtime"), values.get("cluster_mpi_python"), where,
                                                 image=image)
        # Stage 60 and every later MPI stage run cluster_mpi_python on every rank.
        problems += runtime.mpi4py_problems(facts.get("runtime"), values.get("cluster_mpi_python"), where,
                                            image=image)
    problems += trtllm_gate
    if will_run_trtllm:
        request_problems = _optional("mpi_trt_ansible.trtllm", "request_problems")
        if request_problems is not None:
            settings = {k: v for k, v in values.items() if k.startswith("cluster_trtllm_")}
            # The version the ranks' interpreter holds (read above): the version-dependent refusals
            # (served versions, family, pp limits, routing, beams) come before anything is created.
            problems += request_problems(settings, trtllm_nodes, version=trtllm_version)
        if values.get("cluster_mode") in ("docker", "local"):
            problems += model.problems(values, facts.get("dirs") or {})
    if contract._as_bool(values.get("cluster_serve_enabled")):
        serve_problems = _optional("mpi_trt_ansible.serving", "serve_problems")
        if serve_problems is not None:
            problems += serve_problems(values, nodes)  # every setting: ports, mode, network included
    problems = [with_host(p, [n.get("name") for n in nodes]) for p in _first_per_variable(problems)]
    found_settled = settled_verdict(values, nodes, facts, view.get("settled")) if not problems else None
    info = facts.get("runtime") or {}
    checked = dict(topology.checked(topology_spec(values, nodes, facts)),
                   variables=len(values), trtllm=will_run_trtllm, tensorrt_llm=trtllm_version,
                   runtime_cached=info.get("cached"))
    return {
        "changed": False, "failed": bool(problems), "ok": not problems, "problems": problems,
        "msg": format_problems(problems), "mtrt_kind": "preflight", "checked": checked,
        "docker": facts.get("docker") or {} if builds_image else {},
        "mtrt_handoff": ["docker"],  # the listing is for the later stages, not for the report
        "host_gpus": facts.get("host_gpus") or [],
        "stage_hosts": dict(stage_hosts(values, nodes, facts, view.get("check_mode")),
                            settled=bool(found_settled and found_settled["ok"])),
        "settled": found_settled or {"ok": False, "reason": "not in this mode", "digest": "", "full_run": False,
                                     "stages": []},
    }


def settled_verdict(values, nodes, facts, inputs):
    """Whether stages 10-50 are settled (``mpi_trt_ansible.settled``): ``{ok, reason, digest, stages}``.

    ``inputs``: what the action read, ``{digest, record}`` (docker mode), ``{asked: [stage tags]}`` when the
    run names one of those stages by tag (it then runs), or None (another mode: they run).
    """
    if not inputs or facts.get("docker") is None:
        return None
    if inputs.get("asked"):
        return {"ok": False, "reason": "asked for by tag (%s)" % ", ".join(inputs["asked"]), "digest": "",
                "full_run": False, "stages": []}
    ok, reason = settled.verdict(inputs.get("record"), inputs["digest"], facts["docker"],
                                 "%s:%s" % (values.get("cluster_image_name"), values.get("cluster_name")),
                                 values.get("cluster_network_name"), [n["name"] for n in nodes],
                                 values.get("cluster_state_dir"), values.get("cluster_image_base") or "")
    return {"ok": ok, "reason": reason, "digest": inputs["digest"], "full_run": bool(inputs.get("full_run")),
            "stages": [key for _number, key in settled.STAGES] if ok else []}
