# SPDX-License-Identifier: Apache-2.0
"""Serving topology (stage 95): where each Triton server's ranks run, and what preflight refuses.

Pure functions, standard library only: ``serve_problems(settings, nodes)`` returns every problem
of the serving settings at once as ``{variable, value, message, fix}`` (the shape of preflight's
other checks) and ``serve_plan(settings, nodes)`` the placement the serving stage acts on. Both
read the same parse, so what preflight accepts is exactly what the stage runs.

``settings`` maps variable names to values: the ``cluster_serve_*`` settings plus the few
cluster values they depend on (:data:`SETTINGS` lists every name read; a missing one takes the
project default, except that the checks against sshd's port, the cluster subnet and the mode are
made only when ``cluster_ssh_port``, ``cluster_network_subnet`` and ``cluster_mode`` are given).
``nodes`` are ``cluster_nodes`` entries ``{name, ip, slots, gpus}``.

Two modes, as in the TensorRT-LLM backend's documentation (facts: docs/serving.md):

- ``leader``: ``cluster_serve_instances`` servers, each one ``mpirun`` of world size tp x pp, one
  tritonserver per rank, rank 0 takes requests on its own HTTP/gRPC/metrics ports. A server's
  ranks sit on slots ``node:slot`` (a count places them on consecutive slots in node order; a
  list names them). A rank on slot ``s`` uses the node's GPU ``s``: a server whose ranks share one
  node gets ``gpu_device_ids`` listing them; one spread over nodes gets none (the runtime then uses
  GPU ``rank % gpus_per_node``, so each rank's slot must be that GPU).
- ``orchestrator``: one tritonserver (world size 1, ``TRTLLM_ORCHESTRATOR=1``) whose backend spawns
  a worker per GPU; the instances are GPU sets (``gpu_device_ids`` ``"0,1;2,3"``, one model instance
  each) and must all be on the orchestrator's node, unless spawning is off
  (``cluster_serve_orchestrator_spawn: false``): then one mpirun starts the orchestrator and every
  participant as ranks ``1..`` (``participant_ids``), which may span nodes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from mpi_trt_ansible import trtllm

# Every setting the functions read, with the project default used when it is missing.
SETTINGS = {
    "cluster_name": "mtrt",
    "cluster_mode": "docker",
    "cluster_ssh_port": 22,
    "cluster_network_subnet": "192.168.123.0/24",
    "cluster_network_gateway": "192.168.123.1",
    "cluster_trtllm_tp_size": 2,
    "cluster_trtllm_pp_size": 1,
    "cluster_trtllm_gpus_per_node": 0,
    "cluster_serve_enabled": False,
    "cluster_serve_mode": "leader",
    "cluster_serve_instances": 1,
    "cluster_serve_http_port": 8000,
    "cluster_serve_grpc_port": 8001,
    "cluster_serve_metrics_port": 8002,
    "cluster_serve_port_stride": 10,
    "cluster_serve_orchestrator_node": "",
    "cluster_serve_orchestrator_spawn": True,
    "cluster_serve_orchestrator_name": "orchestrator",
    "cluster_serve_repo_root": "/TRTDir/triton/mtrt",
    "cluster_serve_proxy_enabled": True,
    "cluster_serve_proxy_address": "127.0.0.1",
    "cluster_serve_proxy_port": 8080,
    "cluster_serve_proxy_listen_port": 8080,
    "cluster_serve_proxy_ip": "",
}
MODES = ("leader", "orchestrator")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")
PORT_KEYS = ("http_port", "grpc_port", "metrics_port")
INSTANCE_KEYS = frozenset(("name", "slots", "gpu_device_ids") + PORT_KEYS)
# The models of the TensorRT-LLM ensemble; ranks >= 1 load only the engine's model.
ENGINE_MODEL = "tensorrt_llm"


class ServeError(ValueError):
    """The serving settings have problems; ``problems`` lists them."""

    def __init__(self, problems):
        super().__init__("; ".join(p["message"] for p in problems))
        self.problems = problems


def _get(settings, name):
    value = settings.get(name, SETTINGS[name])
    return SETTINGS[name] if value is None else value


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value):
    if _is_int(value):
        return value
    if isinstance(value, str) and re.match(r"^\s*\d+\s*$", value):
        return int(value)
    return None


def _as_bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def gpus_per_node(settings, node):
    """GPUs a node's ranks can use (0 = none known): the one rule of the TensorRT-LLM stages,
    ``trtllm.node_gpus`` (cluster_trtllm_gpus_per_node when set, else the node's pinned GPUs)."""
    return trtllm.node_gpus(node, _as_int(_get(settings, "cluster_trtllm_gpus_per_node")) or 0)


def shm_prefix(cluster, name):
    """Prefix of a server's Python-backend shm regions; ``<prefix><rank>-`` per rank.

    It appears in every rank's tritonserver command line and in each backend stub's, so it
    also finds a server's processes (several servers share a node). A hash of the cluster and
    the name keeps it unique where the readable part alone would not be.
    """
    digest = hashlib.sha256(("%s\0%s" % (cluster, name)).encode()).hexdigest()[:8]
    return "mtrt-%s-%s-r" % (name, digest)


class _Parse:
    """One pass over the settings: the problems and the servers they describe."""

    def __init__(self, settings, nodes):
        self.settings = settings
        self.nodes = {n["name"]: n for n in nodes or []}
        self.order = [n["name"] for n in nodes or []]
        self.problems = []
        self.servers = []
        self.mode = str(_get(settings, "cluster_serve_mode"))
        self.tp = _as_int(_get(settings, "cluster_trtllm_tp_size"))
        self.pp = _as_int(_get(settings, "cluster_trtllm_pp_size"))
        self.cluster = str(_get(settings, "cluster_name"))
        self.spawn = _as_bool(_get(settings, "cluster_serve_orchestrator_spawn"))
        self._run()

    def add(self, variable, value, message, fix):
        self.problems.append({"variable": variable, "value": value, "message": message, "fix": fix})

    # -- parsing ------------------------------------------------------------------------
    def _slot(self, text, where):
        node, sep, slot = str(text).rpartition(":")
        index = _as_int(slot) if sep else None
        if not sep or index is None:
            self.add("cluster_serve_instances", text, "%s: slot %r is not NODE:SLOT" % (where, text),
                     "Write each slot as the node's inventory name and a slot index, e.g. %s:0."
                     % (self.order[0] if self.order else "node1"))
            return None
        if node not in self.nodes:
            self.add("cluster_serve_instances", text, "%s: slot %r names node %r, which is not in groups['nodes'] "
                     "(nodes: %s)" % (where, text, node, ", ".join(self.order) or "none"),
                     "Use one of the inventory's nodes.")
            return None
        slots = _as_int(self.nodes[node].get("slots")) or 0
        if index >= slots:
            self.add("cluster_serve_instances", text, "%s: slot %r does not exist: %s has node_slots=%d (slots 0-%d)"
                     % (where, text, node, slots, slots - 1),
                     "Pick a slot below node_slots, or raise node_slots of %s." % node)
            return None
        return (node, index)

    def _free_slots(self, only=None):
        for name in self.order:
            if only is not None and name != only:
                continue
            for index in range(_as_int(self.nodes[name].get("slots")) or 0):
                yield (name, index)

    def _specs(self, per_set, only_node=None):
        """The instances as ``[{name, slots, gpu_device_ids?, ports?}]`` (None where unreadable)."""
        raw = _get(self.settings, "cluster_serve_instances")
        count = _as_int(raw)
        if count is not None:
            if count < 1:
                self.add("cluster_serve_instances", raw, "cluster_serve_instances=%r: at least one instance is "
                         "needed" % raw, "Set a count >= 1 or a list of instances.")
                return None
            free = list(self._free_slots(only_node))
            need = count * per_set
            if need > len(free):
                where = ("node %s has" % only_node) if only_node else "the nodes have"
                self.add("cluster_serve_instances", raw,
                         "cluster_serve_instances=%d x %d ranks (tp x pp = %d x %d) = %d slots, but %s %d (%s)"
                         % (count, per_set, self.tp, self.pp, need, where, len(free),
                            ", ".join("%s:%s" % (n, self.nodes[n].get("slots")) for n in self.order
                                      if only_node in (None, n))),
                         "Lower cluster_serve_instances, or add slots (node_slots) or nodes.")
                return None
            return [{"name": "inst%d" % k, "slots": free[k * per_set:(k + 1) * per_set]} for k in range(count)]
        if not isinstance(raw, list) or not raw:
            self.add("cluster_serve_instances", raw, "cluster_serve_instances=%r is neither a count nor a list of "
                     "instances" % (raw,), "Set a count (e.g. 2) or a list of {slots: [node:slot, ...]}.")
            return None
        specs = []
        for k, item in enumerate(raw):
            where = "cluster_serve_instances[%d]" % k
            if isinstance(item, list):
                item = {"slots": item}
            if not isinstance(item, dict) or not isinstance(item.get("slots"), list):
                self.add("cluster_serve_instances", item, "%s=%r has no slots list" % (where, item),
                         "Give each instance slots: [node:slot, ...] (one per rank, rank 0 first).")
                specs.append(None)
                continue
            unknown = sorted(set(item) - INSTANCE_KEYS)
            if unknown:
                self.add("cluster_serve_instances", item, "%s has unknown keys %s" % (where, ", ".join(unknown)),
                         "Use only %s." % ", ".join(sorted(INSTANCE_KEYS)))
            slots = [self._slot(s, where) for s in item["slots"]]
            spec = dict(item, name=str(item.get("name", "inst%d" % k)), slots=slots)
            if None in slots:
                spec = None
            specs.append(spec)
        return specs

    # -- checks ------------------------------------------------------------------------
    def _run(self):
        if self.mode not in MODES:
            self.add("cluster_serve_mode", self.mode, "cluster_serve_mode=%r is not one of %s"
                     % (self.mode, ", ".join(MODES)), "Set cluster_serve_mode to leader or orchestrator.")
            return
        for var, value in (("cluster_trtllm_tp_size", self.tp), ("cluster_trtllm_pp_size", self.pp)):
            if value is None or value < 1:
                self.add(var, _get(self.settings, var), "%s=%r is not a positive integer"
                         % (var, _get(self.settings, var)), "Set %s to the engine's parallelism." % var)
        if self.problems:
            return
        if not self.order:
            self.add("groups['nodes']", [], "serving needs at least one node", "Add nodes to the inventory.")
            return
        per_set = self.tp * self.pp
        orch_node = None
        if self.mode == "orchestrator":
            orch_node = str(_get(self.settings, "cluster_serve_orchestrator_node") or self.order[0])
            if orch_node not in self.nodes:
                self.add("cluster_serve_orchestrator_node", orch_node,
                         "cluster_serve_orchestrator_node=%r is not in groups['nodes'] (%s)"
                         % (orch_node, ", ".join(self.order)), "Name one of the inventory's nodes.")
                return
        specs = self._specs(per_set, orch_node if self.mode == "orchestrator" and self.spawn else None)
        if specs is None:
            return
        if self.mode == "orchestrator" and not NAME_RE.match(str(_get(self.settings, "cluster_serve_orchestrator_name"))):
            name = _get(self.settings, "cluster_serve_orchestrator_name")
            self.add("cluster_serve_orchestrator_name", name, "cluster_serve_orchestrator_name=%r must be 1-31 of "
                     "a-z, 0-9, _ and -" % (name,), "Rename it (it names the model repository and run directory).")
        self._check_names(specs)
        self._check_ranks(specs, per_set)
        self._check_overlap(specs)
        if self.mode == "orchestrator":
            self._check_orchestrator(specs, orch_node)
        good = [s for s in specs if s is not None]
        if len(good) != len(specs) or self.problems:
            return
        self._gpu_ids(good)
        if self.problems:
            return
        if self.mode == "leader":
            self.servers = [self._leader_server(k, spec) for k, spec in enumerate(good)]
        else:
            self.servers = [self._orchestrator_server(good, orch_node)]
        self._check_ports()
        self._check_proxy()

    def _check_names(self, specs):
        seen = {}
        for k, spec in enumerate(specs):
            if spec is None:
                continue
            name = spec["name"]
            if not NAME_RE.match(name):
                self.add("cluster_serve_instances", name, "cluster_serve_instances[%d]: name %r must be 1-31 of "
                         "a-z, 0-9, _ and -, starting with a letter or digit" % (k, name),
                         "Rename the instance (it names its model repository and run directory).")
            if name in seen:
                self.add("cluster_serve_instances", name, "cluster_serve_instances[%d] and [%d] are both named %r"
                         % (seen[name], k, name), "Give every instance its own name.")
            seen.setdefault(name, k)

    def _check_ranks(self, specs, per_set):
        for k, spec in enumerate(specs):
            if spec is None:
                continue
            if len(spec["slots"]) != per_set:
                what = "GPU set" if self.mode == "orchestrator" else "instance"
                self.add("cluster_serve_instances", [_slot_text(s) for s in spec["slots"]],
                         "%s %r has %d slots but tp x pp = %d x %d = %d ranks: every %s needs exactly one slot "
                         "per rank" % (what, spec["name"], len(spec["slots"]), self.tp, self.pp, per_set, what),
                         "Give %r %d slots, or build the engine with cluster_trtllm_tp_size x "
                         "cluster_trtllm_pp_size = %d." % (spec["name"], per_set, len(spec["slots"])))

    def _check_overlap(self, specs):
        owner = {}
        for spec in specs:
            if spec is None:
                continue
            for slot in spec["slots"]:
                if slot in owner:
                    other = owner[slot]
                    self.add("cluster_serve_instances", _slot_text(slot),
                             "slot %s is taken twice: by %r and by %r (overlapping slots share a GPU)"
                             % (_slot_text(slot), other, spec["name"]) if other != spec["name"] else
                             "slot %s appears twice in instance %r" % (_slot_text(slot), other),
                             "Give every rank of every instance its own slot.")
                else:
                    owner[slot] = spec["name"]

    def _check_orchestrator(self, specs, orch_node):
        if self.spawn:
            away = sorted({_slot_text(s) for spec in specs if spec for s in spec["slots"] if s[0] != orch_node})
            if away:
                self.add("cluster_serve_mode", "orchestrator",
                         "cluster_serve_mode=orchestrator spawns every worker on the orchestrator's node %s "
                         "(MPI_Comm_spawn), but slots %s are on other nodes" % (orch_node, ", ".join(away)),
                         "Keep the GPU sets on %s, use cluster_serve_mode: leader across nodes, or set "
                         "cluster_serve_orchestrator_spawn: false (the multi-node form: one mpirun starts the "
                         "orchestrator and every participant, listed in participant_ids)." % orch_node)

    def _gpu_ids(self, specs):
        for spec in specs:
            nodes = sorted({s[0] for s in spec["slots"]})
            explicit = spec.get("gpu_device_ids")
            if explicit is not None:
                ids = [_as_int(g) for g in explicit] if isinstance(explicit, list) else [None]
                if None in ids or len(ids) != len(spec["slots"]):
                    self.add("cluster_serve_instances", explicit,
                             "instance %r: gpu_device_ids=%r must list %d GPU indexes (tp x pp, one per rank)"
                             % (spec["name"], explicit, len(spec["slots"])),
                             "List one GPU index per rank, or leave gpu_device_ids out (one per slot).")
                    continue
            elif len(nodes) == 1:
                ids = [s[1] for s in spec["slots"]]
            else:
                ids = None
            spec["gpu_device_ids"] = ids
            if ids is not None:
                if len(set(ids)) != len(ids):
                    self.add("cluster_serve_instances", ids, "instance %r: gpu_device_ids %s are not unique"
                             % (spec["name"], _ids_text(ids)), "Give every rank its own GPU.")
                if len(nodes) > 1:
                    self.add("cluster_serve_instances", ids, "instance %r spans nodes %s: gpu_device_ids apply to "
                             "every rank of one config, so they cannot name each node's GPUs"
                             % (spec["name"], ", ".join(nodes)),
                             "Leave gpu_device_ids out for an instance across nodes (each rank then uses GPU "
                             "rank %% gpus_per_node), or keep its ranks on one node.")
                for node in nodes:
                    gpn = gpus_per_node(self.settings, self.nodes[node])
                    bad = [g for g in ids if gpn and g >= gpn]
                    if bad:
                        self.add("cluster_serve_instances", ids, "instance %r: GPU ids %s do not exist on %s, "
                                 "which has %d GPU(s) (ids 0-%d)" % (spec["name"], _ids_text(bad), node, gpn, gpn - 1),
                                 "Use slots (or gpu_device_ids) below the node's GPU count, or pin more GPUs "
                                 "(node_gpus).")
            elif self.mode == "leader":
                self._check_rank_devices(spec)
        # Two instances on one node must not name the same GPU.
        used = {}
        for spec in specs:
            ids = spec.get("gpu_device_ids")
            if ids is None:
                continue
            node = spec["slots"][0][0]
            for gpu in ids:
                other = used.setdefault((node, gpu), spec["name"])
                if other != spec["name"]:
                    self.add("cluster_serve_instances", gpu, "GPU %d of %s is used by instances %r and %r"
                             % (gpu, node, other, spec["name"]), "Give each instance its own GPUs.")

    def _check_rank_devices(self, spec):
        """An instance across nodes has no gpu_device_ids: each rank uses the GPU the runtime picks,
        ``rank % gpus_per_node`` (trtllm.rank_devices, one value for every node), so it must sit on the
        slot of that GPU."""
        nodes = [node for node, _slot in spec["slots"]]
        counts = {node: gpus_per_node(self.settings, self.nodes[node]) for node in nodes}
        if not any(counts.values()):
            return  # no GPUs known (CPU nodes): nothing to place
        if len(set(counts.values())) > 1:
            self.add("cluster_serve_instances", [_slot_text(s) for s in spec["slots"]],
                     "instance %r spans nodes that see different numbers of GPUs (%s); every rank picks GPU "
                     "rank %% gpus_per_node with one value for all nodes"
                     % (spec["name"], ", ".join("%s=%d" % kv for kv in sorted(counts.items()))),
                     "Give its nodes the same number of GPUs (node_gpus), or set cluster_trtllm_gpus_per_node.")
            return
        gpn = next(iter(counts.values()))
        # One slot per context: rank r lands on the r-th slot of the list, as the server's launch pins it.
        devices = trtllm.rank_devices([(node, 1) for node in nodes], len(nodes), gpn)
        for rank, (node, slot) in enumerate(spec["slots"]):
            device = devices[rank]["device"]
            if slot != device:
                self.add("cluster_serve_instances", _slot_text((node, slot)),
                         "instance %r spans nodes, so rank %d uses GPU rank %% gpus_per_node = %d on %s, "
                         "but it is placed on slot %d" % (spec["name"], rank, device, node, slot),
                         "Place rank %d on %s:%d." % (rank, node, device))

    # -- servers -------------------------------------------------------------------------
    def _rank(self, rank, node, slot, gpu):
        entry = self.nodes[node]
        return {"rank": rank, "node": node, "mpi_host": entry.get("mpi_host") or node, "ip": entry.get("ip"),
                "slot": slot, "gpu": gpu}

    def _ports(self, index, spec):
        stride = _as_int(_get(self.settings, "cluster_serve_port_stride"))
        stride = 10 if stride is None else stride
        ports = {}
        for key in PORT_KEYS:
            base = _get(self.settings, "cluster_serve_%s" % key)
            value = spec.get(key) if spec.get(key) is not None else (
                _as_int(base) + index * stride if _as_int(base) is not None else base)
            ports[key] = _as_int(value) if _as_int(value) is not None else value
        return ports

    def _common(self, name, ranks, ports):
        root = str(_get(self.settings, "cluster_serve_repo_root")).rstrip("/")
        hosts = []
        for r in ranks:
            if r["node"] not in hosts:
                hosts.append(r["node"])
        first = ranks[0]
        server = {"name": name, "host": first["node"], "ip": first["ip"], "mpi_host": first["mpi_host"],
                  "ranks": ranks, "hosts": hosts, "world_size": len(ranks),
                  "repo": "%s/%s" % (root, name), "shm_prefix": shm_prefix(self.cluster, name),
                  "server_id": "mtrt-%s-%s" % (self.cluster, name)}
        server.update(ports)
        return server

    def _leader_server(self, index, spec):
        ids = spec["gpu_device_ids"]
        ranks = [self._rank(r, node, slot, ids[r] if ids else slot)
                 for r, (node, slot) in enumerate(spec["slots"])]
        server = self._common(spec["name"], ranks, self._ports(index, spec))
        server.update(mode="leader", index=index, gpu_device_ids=ids, participant_ids=None, gpu_sets=None,
                      instance_count=1, env={})
        return server

    def _orchestrator_server(self, specs, orch_node):
        sets = [spec["gpu_device_ids"] or [s[1] for s in spec["slots"]] for spec in specs]
        ranks = [self._rank(0, orch_node, None, None)]
        participants = None
        if not self.spawn:
            participants = []
            for spec, ids in zip(specs, sets):
                mine = []
                for (node, slot), gpu in zip(spec["slots"], ids):
                    mine.append(len(ranks))
                    ranks.append(self._rank(len(ranks), node, slot, gpu))
                participants.append(mine)
        name = str(_get(self.settings, "cluster_serve_orchestrator_name"))
        server = self._common(name, ranks, self._ports(0, {}))
        server.update(mode="orchestrator", index=0, gpu_device_ids=None, participant_ids=participants,
                      gpu_sets=sets, set_names=[s["name"] for s in specs], instance_count=len(sets),
                      env={"TRTLLM_ORCHESTRATOR": "1", "TRTLLM_ORCHESTRATOR_SPAWN_PROCESSES": "1" if self.spawn else "0"},
                      spawn=self.spawn, spawn_slots=sum(len(s) for s in sets) if self.spawn else 0)
        return server

    def _check_ports(self):
        ssh = _as_int(self.settings.get("cluster_ssh_port"))
        local = str(self.settings.get("cluster_mode")) == "local"
        proxy_on = self.mode == "leader" and _as_bool(_get(self.settings, "cluster_serve_proxy_enabled"))
        taken = {}
        if ssh:
            for node in self.order:
                taken[(node, ssh)] = "sshd (cluster_ssh_port)"
        if local and proxy_on:
            port = _as_int(_get(self.settings, "cluster_serve_proxy_port"))
            if port:
                for node in self.order:
                    taken.setdefault((node, port), "the proxy (cluster_serve_proxy_port)")
        for server in self.servers:
            for key in PORT_KEYS:
                port = server[key]
                var = "cluster_serve_%s" % key
                if not _is_int(port) or not 1 <= port <= 65535:
                    self.add(var, port, "instance %r: %s=%r is not a TCP port (1-65535)" % (server["name"], key, port),
                             "Set %s (or the instance's %s) to a free port." % (var, key))
                    continue
                what = "%s of instance %r" % (key, server["name"])
                other = taken.get((server["host"], port))
                if other:
                    self.add(var, port, "port %d on %s is wanted twice: %s and %s" % (port, server["host"], other, what),
                             "Give every instance on %s its own ports (cluster_serve_port_stride, or the instance's "
                             "http_port/grpc_port/metrics_port)." % server["host"])
                else:
                    taken[(server["host"], port)] = what

    def _check_proxy(self):
        if self.mode != "leader" or not _as_bool(_get(self.settings, "cluster_serve_proxy_enabled")):
            return
        for var in ("cluster_serve_proxy_port", "cluster_serve_proxy_listen_port"):
            port = _as_int(_get(self.settings, var))
            if port is None or not 1 <= port <= 65535:
                self.add(var, _get(self.settings, var), "%s=%r is not a TCP port (1-65535)"
                         % (var, _get(self.settings, var)), "Set %s to a free port." % var)
        try:
            ipaddress.IPv4Address(str(_get(self.settings, "cluster_serve_proxy_address")))
        except ValueError:
            self.add("cluster_serve_proxy_address", _get(self.settings, "cluster_serve_proxy_address"),
                     "cluster_serve_proxy_address=%r is not an IPv4 address"
                     % _get(self.settings, "cluster_serve_proxy_address"),
                     "Publish the proxy on 127.0.0.1 (the default) or another address of the docker host.")
        if str(self.settings.get("cluster_mode")) != "docker" or not self.settings.get("cluster_network_subnet"):
            return
        ip = proxy_ip(self.settings)
        try:
            net = ipaddress.IPv4Network(str(_get(self.settings, "cluster_network_subnet")), strict=False)
            addr = ipaddress.IPv4Address(str(ip))
        except ValueError:
            self.add("cluster_serve_proxy_ip", ip, "cluster_serve_proxy_ip=%r is not an IPv4 address" % (ip,),
                     "Set cluster_serve_proxy_ip to a free address of cluster_network_subnet, or leave it empty.")
            return
        users = [n for n in self.order if str(self.nodes[n].get("ip")) == str(addr)]
        if str(_get(self.settings, "cluster_network_gateway")) == str(addr):
            users.append("the gateway (cluster_network_gateway)")
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            self.add("cluster_serve_proxy_ip", str(addr), "cluster_serve_proxy_ip=%s is not a host address of "
                     "cluster_network_subnet %s" % (addr, net), "Pick a free address inside %s." % net)
        elif users:
            self.add("cluster_serve_proxy_ip", str(addr), "cluster_serve_proxy_ip=%s is already %s"
                     % (addr, " and ".join(users)), "Pick an address no node uses, or leave it empty (the "
                     "subnet's last host address).")


def _slot_text(slot):
    return "%s:%s" % slot if isinstance(slot, tuple) else str(slot)


def _ids_text(ids):
    return ",".join(str(i) for i in ids)


def proxy_ip(settings):
    """The proxy container's address: cluster_serve_proxy_ip, else the subnet's last host address."""
    ip = _get(settings, "cluster_serve_proxy_ip")
    if ip:
        return str(ip)
    try:
        net = ipaddress.IPv4Network(str(_get(settings, "cluster_network_subnet")), strict=False)
    except ValueError:
        return ""
    return str(net.broadcast_address - 1)


def _reach(settings, server):
    """Address rank 0 of a server answers on: its node's IP (docker mode), this machine (local mode)."""
    if str(_get(settings, "cluster_mode")) == "local":
        return "127.0.0.1"
    return str(server["ip"] or server["host"])


def serve_problems(settings, nodes):
    """Every problem of the serving settings: ``[{variable, value, message, fix}]`` ([] when fine).

    Nothing is checked while ``cluster_serve_enabled`` is false.
    """
    if not _as_bool(_get(settings, "cluster_serve_enabled")):
        return []
    return _Parse(settings, nodes).problems


def serve_plan(settings, nodes):
    """The servers to run and the proxy in front; raises :class:`ServeError` listing the problems.

    ``{mode, world_size, servers: [...], proxy: {...}, endpoint}``; ``proxy`` has ``upstreams`` (rank 0
    of each server, in nginx.conf) and ``container`` (what the proxy container is created with: its
    published address and port, listen port and IP); each server has its name,
    rank 0's host/ip/ports, ``upstream`` (the address the proxy reaches rank 0 at), ``ranks`` ``[{rank, node, mpi_host, ip, slot, gpu}]``, ``hosts``,
    ``repo``, ``shm_prefix``, ``server_id``, GPU ids (``gpu_device_ids`` in leader mode,
    ``gpu_sets`` and ``participant_ids`` in orchestrator mode) and the backend ``env``.
    """
    parse = _Parse(settings, nodes)
    if parse.problems:
        raise ServeError(parse.problems)
    for server in parse.servers:
        server["upstream"] = "%s:%d" % (_reach(settings, server), server["http_port"])
    mode = parse.mode
    proxy_on = mode == "leader" and _as_bool(_get(settings, "cluster_serve_proxy_enabled"))
    proxy = {"enabled": proxy_on,
             "address": str(_get(settings, "cluster_serve_proxy_address")),
             "port": _as_int(_get(settings, "cluster_serve_proxy_port")),
             "listen_port": _as_int(_get(settings, "cluster_serve_proxy_listen_port")),
             "ip": proxy_ip(settings) if str(_get(settings, "cluster_mode")) == "docker" else "127.0.0.1",
             "upstreams": [{"name": s["name"], "address": s["upstream"]} for s in parse.servers]}
    # What the proxy container is created with (a change means a new container); the upstreams are not:
    # they live in nginx.conf, which is rewritten and reloaded, so in-flight requests finish.
    proxy["container"] = {k: proxy[k] for k in ("address", "port", "listen_port", "ip")}
    first = parse.servers[0]
    endpoint = ("http://%s:%d" % (proxy["address"], proxy["port"]) if proxy_on
                else "http://%s:%d" % (_reach(settings, first), first["http_port"]))
    return {"mode": mode, "tp_size": parse.tp, "pp_size": parse.pp, "world_size": parse.tp * parse.pp,
            "servers": parse.servers, "proxy": proxy, "endpoint": endpoint}
