# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Parsers and verdicts for the GPU check: nvidia-smi, the rank -> device probe, NCCL all-reduce.

Plain Python (no I/O). Inputs are the texts the tools print:
``nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id
--format=csv,noheader,nounits``, ``nvidia-smi topo -m``, ``nvidia-smi nvlink -s``,
and the JSON lines of roles/gpu_check/files/mtrt_rank_device.py and
mtrt_nccl_allreduce.py (with NCCL_DEBUG=INFO lines mixed in). Raw NCCL/CUDA/docker messages
are explained by module_utils/mtrt_explain.py (the one table for every stage); the inventory's
GPU layout rule is preflight's (mpi_trt_ansible/preflight/gpus.py).
"""

from __future__ import annotations

import re

from ansible.module_utils.mtrt_collectives import OutputError, find_marked_json, single_document

QUERY_FIELDS = ("index", "uuid", "name", "memory_total_mib", "pci_bus_id")
QUERY_GPU_ARGS = ["--query-gpu=index,uuid,name,memory.total,pci.bus_id",
                  "--format=csv,noheader,nounits"]
RANK_DEVICE_MARKER = "MTRT-RANK-DEVICE "
RANK_DEVICE_RANK_MARKER = "MTRT-RANK-DEVICE-RANK "
NCCL_MARKER = "MTRT-NCCL-ALLREDUCE "
NCCL_ERROR_MARKER = "MTRT-NCCL-ALLREDUCE-ERROR "
NVLINK_GBPS = {"H100": 450.0, "H200": 450.0, "H800": 200.0, "A100": 300.0, "A800": 200.0,
               "B200": 900.0, "GB200": 900.0}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BUS_ID = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z-]+$")
_DEVICE_COL = re.compile(r"^(GPU\d+|NIC\d+|mlx\d+_\d+)$")
_LINK = re.compile(r"^(X|SYS|NODE|PHB|PXB|PIX|SOC|PHB|NV\d+|N/A)$")
_NVL_GPU = re.compile(r"^GPU (\d+): (.*?) \(UUID: ([^)]+)\)")
_NVL_LINK = re.compile(r"^\s*Link (\d+): (.*)$")
_NCCL_VIA = re.compile(r"NCCL INFO Channel \d+/\d+ : \d+\[\d+\] -> \d+\[\d+\](?:\s*\[\w+\])? via (\S+)")
_NCCL_NVLS = re.compile(r"NCCL INFO .*?(\d+) nvls channels")
_NCCL_NODES = re.compile(r"NCCL INFO comm 0x[0-9a-f]+ rank \d+ nRanks \d+ nNodes (\d+)")


class GpuParseError(ValueError):
    """Tool output that is not what the parser expects."""


def human_bytes(size):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return "%d %s" % (size >> shift, unit)
    return "%d B" % size


# --- nvidia-smi ------------------------------------------------------------------

def parse_query_gpu(text):
    """``--query-gpu`` CSV -> [{index, uuid, name, memory_total_mib, pci_bus_id}].

    "No devices were found" and empty output give []. Anything else that is
    not a GPU row raises GpuParseError naming the line.
    """
    gpus = []
    for lineno, line in enumerate((text or "").splitlines(), 1):
        if not line.strip() or line.strip() == "No devices were found":
            continue
        fields = [f.strip() for f in line.split(",")]
        bad = len(fields) != len(QUERY_FIELDS)
        if not bad:
            index, uuid, name, memory, bus_id = fields
            bad = not (index.isdigit() and _UUID.match(uuid) and name and memory.isdigit()
                       and _BUS_ID.match(bus_id))
        if bad:
            raise GpuParseError("nvidia-smi --query-gpu line %d is not a GPU row (%s): %.160r"
                                % (lineno, ", ".join(QUERY_FIELDS), line))
        gpus.append({"index": int(index), "uuid": uuid, "name": name,
                     "memory_total_mib": int(memory), "pci_bus_id": bus_id})
    if len({g["index"] for g in gpus}) != len(gpus):
        raise GpuParseError("nvidia-smi --query-gpu lists an index twice: %s"
                            % [g["index"] for g in gpus])
    return gpus


def parse_topo(text):
    """``nvidia-smi topo -m`` -> {devices, gpus, links: {a: {b: kind}}, affinity: {dev: {col: val}}}."""
    lines = [_ANSI.sub("", line) for line in (text or "").splitlines()]
    header_at = next((i for i, line in enumerate(lines) if line.strip().startswith("GPU0")), None)
    if header_at is None:
        raise GpuParseError("nvidia-smi topo -m: no header row starting with GPU0: %.160r"
                            % "\n".join(lines[:3]))
    header = [h.strip() for h in lines[header_at].split("\t") if h.strip()]
    devices = [h for h in header if _DEVICE_COL.match(h)]
    extra = header[len(devices):]
    if header[:len(devices)] != devices:
        raise GpuParseError("nvidia-smi topo -m: device columns are not first in %r" % header)
    links, affinity = {}, {}
    for line in lines[header_at + 1:]:
        if not line.strip() or line.strip().startswith("Legend"):
            break
        fields = [f.strip() for f in line.split("\t")]
        name, values = fields[0], fields[1:]
        if name not in devices or len(values) < len(devices):
            raise GpuParseError("nvidia-smi topo -m: row %r does not fit the header %r" % (line, header))
        cells = values[:len(devices)]
        for peer, cell in zip(devices, cells):
            if not _LINK.match(cell):
                raise GpuParseError("nvidia-smi topo -m: %s -> %s is %r, not a link kind "
                                    "(X, NV#, PIX, PXB, PHB, NODE, SYS)" % (name, peer, cell))
        links[name] = {peer: cell for peer, cell in zip(devices, cells) if peer != name}
        rest = [v for v in values[len(devices):] if v]
        affinity[name] = dict(zip(extra, rest))
    missing = [d for d in devices if d not in links]
    if missing:
        raise GpuParseError("nvidia-smi topo -m: no row for %s" % ", ".join(missing))
    return {"devices": devices, "gpus": [d for d in devices if d.startswith("GPU")],
            "links": links, "affinity": affinity}


def parse_nvlink_status(text):
    """``nvidia-smi nvlink -s`` -> {"GPU0": {name, uuid, links, active, link_gbps, total_gbps}}."""
    gpus, current = {}, None
    for line in (text or "").splitlines():
        head = _NVL_GPU.match(line)
        if head:
            current = {"name": head.group(2), "uuid": head.group(3), "links": 0, "active": 0,
                       "link_gbps": [], "total_gbps": 0.0}
            gpus["GPU" + head.group(1)] = current
            continue
        link = _NVL_LINK.match(line)
        if link and current is not None:
            current["links"] += 1
            speed = re.match(r"([\d.]+) GB/s", link.group(2).strip())
            if speed:
                current["active"] += 1
                current["link_gbps"].append(float(speed.group(1)))
                current["total_gbps"] = round(current["total_gbps"] + float(speed.group(1)), 3)
    return gpus


def nvlink_summary(topo, status=None):
    """How the GPUs of one node are linked: pairs, NVLink pairs, the thinnest NVLink bond."""
    gpus = topo["gpus"]
    pairs = []
    for i, a in enumerate(gpus):
        for b in gpus[i + 1:]:
            kind = topo["links"][a][b]
            pairs.append({"a": a, "b": b, "link": kind,
                          "nvlinks": int(kind[2:]) if kind.startswith("NV") else 0})
    nv = [p["nvlinks"] for p in pairs if p["nvlinks"]]
    return {
        "gpu_count": len(gpus), "pairs": pairs, "nvlink_pairs": len(nv),
        "all_pairs_nvlink": bool(pairs) and len(nv) == len(pairs),
        "min_nvlinks": min(nv) if nv else 0,
        "active_links": {g: s["active"] for g, s in (status or {}).items()},
    }


def nvlink_limit_gbps(gpu_name):
    """Per-direction NVLink bandwidth by GPU model name, None when unknown."""
    for model, gbps in sorted(NVLINK_GBPS.items(), key=lambda kv: -len(kv[0])):
        if re.search(r"\b%s\b" % model, gpu_name or ""):
            return gbps
    return None


# --- rank -> device probe ----------------------------------------------------------

def parse_rank_device(text, expected_world=None):
    """Probe output -> {world_size, ranks, problems, warnings}.

    Accepts rank 0's gathered line or one line per rank (no mpi4py). Ranks that
    would share one GPU are a problem: NCCL refuses them ("Duplicate GPU
    detected") and TensorRT-LLM runs one rank per GPU.
    """
    docs = find_marked_json(text, RANK_DEVICE_MARKER)
    if docs:
        ranks = single_document(text, RANK_DEVICE_MARKER, expected_world).get("ranks") or []
    else:
        ranks = find_marked_json(text, RANK_DEVICE_RANK_MARKER)
        if not ranks:
            raise OutputError("no %r line in the output: the probe did not run (see the output tail)"
                              % RANK_DEVICE_MARKER.strip())
    for i, rank in enumerate(ranks):
        if not isinstance(rank, dict) or not all(k in rank for k in ("rank", "host", "device", "exists")):
            raise OutputError("rank record %d lacks rank/host/device/exists: %.160r" % (i, rank))
    ranks = sorted(ranks, key=lambda r: r["rank"])
    world = expected_world if expected_world is not None else len(ranks)
    problems = []
    seen = [r["rank"] for r in ranks]
    missing = [r for r in range(world) if r not in seen]
    if missing or len(seen) != len(set(seen)):
        problems.append("ranks answered %s, expected 0..%d once each (missing %s)"
                        % (seen, world - 1, missing or "none"))
    singletons = [r["rank"] for r in ranks if r.get("world_size") not in (None, world)]
    if singletons and world > 1:
        problems.append("ranks %s saw world size 1: mpirun and mpi4py use different MPI libraries"
                        % singletons)
    for r in ranks:
        if not r["exists"]:
            problems.append(missing_device_message(r))
    problems += shared_gpu_messages(ranks)
    return {"world_size": len(ranks), "ranks": ranks, "problems": problems, "warnings": []}


def _physical_gpu(r):
    """What identifies the GPU a rank uses: its UUID, else (host, index behind CUDA_VISIBLE_DEVICES)."""
    if r.get("device_uuid"):
        return ("uuid", r["device_uuid"])
    index = r["device"]
    cvd = [d.strip() for d in str(r.get("cuda_visible_devices") or "").split(",") if d.strip()]
    if r.get("cuda_visible_devices") is not None and isinstance(index, int) and 0 <= index < len(cvd):
        index = cvd[index]
    return ("host", r["host"], index)


def shared_gpu_messages(ranks):
    """One problem per GPU that more than one rank would use (ranks whose GPU exists)."""
    users = {}
    for r in ranks:
        if r.get("exists"):
            users.setdefault(_physical_gpu(r), []).append(r)
    out = []
    for key, who in sorted(users.items(), key=lambda kv: kv[1][0]["rank"]):
        if len(who) < 2:
            continue
        names = ", ".join(str(r["rank"]) for r in who)
        hosts = sorted({r["host"] for r in who})
        gpu, uuid = (who[0]["device"], "%s; " % key[1]) if key[0] == "uuid" else (key[2], "")
        if len(hosts) > 1:
            out.append("Ranks %s share GPU %s across nodes %s (one physical GPU pinned to several "
                       "containers); NCCL refuses two ranks on one GPU ('Duplicate GPU detected') and "
                       "TensorRT-LLM needs one rank per GPU: give each node its own GPUs (node_gpus)"
                       % (", ".join("%s (%s)" % (r["rank"], r["host"]) for r in who), key[1], ", ".join(hosts)))
            continue
        host, first = hosts[0], who[0]
        count = first.get("visible_count") or 0
        per_node = first.get("gpus_per_node")
        fix = ("set node_slots on %s to %d (the GPUs it has: node_slots <= GPUs on that node) or give %s "
               "%d GPUs (node_gpus)" % (host, count, host, sum(1 for r in ranks if r["host"] == host)))
        if isinstance(per_node, int) and 0 < per_node < count:
            fix += ", or raise gpus_per_node from %d to %d (cluster_trtllm_gpus_per_node)" % (per_node, count)
        out.append("Ranks %s on %s share GPU %s (%srank %% gpus_per_node %s; %s has %d GPU%s); NCCL refuses "
                   "two ranks on one GPU ('Duplicate GPU detected') and TensorRT-LLM needs one rank per "
                   "GPU: %s" % (names, host, gpu, uuid, per_node, host, count, "" if count == 1 else "s", fix))
    return out


def missing_device_message(r):
    """'Rank 1 (node2) asked for GPU 1, but node2 has 1 GPU; set ...'"""
    count = r.get("visible_count") or 0
    cvd = r.get("cuda_visible_devices")
    seen = "CUDA_VISIBLE_DEVICES=%s" % cvd if cvd is not None else "CUDA_VISIBLE_DEVICES unset"
    has = "has %d GPU%s" % (count, "" if count == 1 else "s") if count else "has no GPU visible"
    fix = ("set gpus_per_node to %d (cluster_trtllm_gpus_per_node) or lower node_slots on %s to %d, so no "
           "rank asks for a GPU the node lacks" % (count, r["host"], count) if count else
           "give %s GPUs (node_gpus in the inventory; nvidia-container-toolkit on the docker host)"
           % r["host"])
    why = "; probe error: %s" % r["error"] if r.get("error") else ""
    return "Rank %s (%s) asked for GPU %s (rank %% gpus_per_node %s), but %s %s (%s); %s%s" % (
        r["rank"], r["host"], r["device"], r.get("gpus_per_node"), r["host"], has, seen, fix, why)


# --- NCCL all-reduce ----------------------------------------------------------------

def parse_nccl_transport(text):
    """NCCL_DEBUG=INFO lines -> {transports, channels, nvls_channels, nodes}."""
    channels = {}
    for match in _NCCL_VIA.finditer(text or ""):
        channels[match.group(1)] = channels.get(match.group(1), 0) + 1
    kinds = {path.split("/", 1)[0] for path in channels}
    nvls = [int(m) for m in _NCCL_NVLS.findall(text or "")]
    if nvls and max(nvls) > 0:
        kinds.add("NVLS")
    nodes = [int(m) for m in _NCCL_NODES.findall(text or "")]
    return {"transports": sorted(kinds), "channels": channels,
            "nvls_channels": max(nvls) if nvls else None, "nodes": max(nodes) if nodes else None}


def parse_rank_errors(text):
    """Per-rank failures the all-reduce script printed -> ['rank 1 (vm, cuda:1): Error: ...']."""
    out = []
    for doc in find_marked_json(text, NCCL_ERROR_MARKER):
        out.append("rank %s (%s%s): %s" % (doc.get("rank"), doc.get("host"),
                                           ", %s" % doc["device"] if doc.get("device") else "",
                                           doc.get("error") or "unknown error"))
    return out


def parse_nccl_allreduce(text, expected_world=None):
    """Script output (NCCL log mixed in) -> {world_size, nothing_to_measure, rows, largest, transport, ...}.

    Reads format 1 (the first script: host clock, fixed iterations) and 2 (CUDA
    events, scaled iterations, ``method``; one rank: ``nothing_to_measure``).
    """
    doc = single_document(text, NCCL_MARKER, expected_world)
    rows = doc.get("rows")
    nothing = doc.get("nothing_to_measure") is True or (doc.get("world_size") == 1 and rows == [])
    if nothing:
        if doc.get("world_size") != 1:
            raise OutputError("the all-reduce document says nothing to measure with world size %r"
                              % doc.get("world_size"))
        rows = []
    elif not isinstance(rows, list) or not rows:
        raise OutputError("the all-reduce document has no rows")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not all(
                isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool)
                for k in ("size_bytes", "time_us", "busbw_gbps")):
            raise OutputError("all-reduce row %d lacks size_bytes/time_us/busbw_gbps: %.160r" % (i, row))
    largest = {}
    if rows:
        big = max(rows, key=lambda r: r["size_bytes"])
        largest = {"size_bytes": big["size_bytes"], "busbw_gbps": big["busbw_gbps"],
                   "algbw_gbps": big.get("algbw_gbps")}
    problems = ["all_reduce at %s: ranks %s got a wrong sum" % (human_bytes(r["size_bytes"]), r.get("bad_ranks"))
                for r in rows if r.get("correct") is not True]
    return {
        "world_size": doc.get("world_size"), "nothing_to_measure": nothing,
        "reason": doc.get("reason") or "", "backend": doc.get("backend"), "torch": doc.get("torch"),
        "nccl": doc.get("nccl"), "ranks": doc.get("ranks") or [], "env": doc.get("env") or {},
        "method": doc.get("method") or {"timer": "host_clock", "format": doc.get("version")},
        "rows": rows, "largest": largest, "transport": parse_nccl_transport(text), "problems": problems,
    }


def judge_allreduce(parsed, link_gbps=None, nvlink_expected=False, min_busbw_gbps=0.0):
    """(verdict sentence, problems, findings) for a parsed all-reduce result.

    The NVLink limit ``link_gbps`` is named only when ``nvlink_expected`` (the
    node has two or more GPUs joined by NVLink) and NCCL saw a single node.
    """
    findings = []
    if parsed.get("nothing_to_measure"):
        verdict = ("all_reduce over 1 rank: nothing to measure (an all-reduce over a single rank moves no "
                   "data); give the run 2 or more ranks, one per GPU, to measure NCCL bandwidth.")
        if min_busbw_gbps:
            findings.append("the busbw floor of %.1f GB/s (gpu_check_min_busbw_gbps) was not checked: one "
                            "rank has no bandwidth to measure" % min_busbw_gbps)
        return verdict, [], findings
    big = parsed["largest"]
    transport = parsed["transport"]
    kinds = transport["transports"]
    if parsed.get("backend") == "gloo":
        via = "gloo (CPU, no NCCL)"
    else:
        via = "/".join(kinds) or "an unknown transport (set NCCL_DEBUG=INFO)"
    verdict = "all_reduce over %s ranks: %.1f GB/s busbw at %s via %s" % (
        parsed["world_size"], big["busbw_gbps"], human_bytes(big["size_bytes"]), via)
    one_node = transport.get("nodes") in (None, 1)
    if link_gbps and nvlink_expected and one_node:
        verdict += " (%d%% of the %.0f GB/s NVLink limit per direction)" % (
            round(100.0 * big["busbw_gbps"] / link_gbps), link_gbps)
    problems = []
    if nvlink_expected and one_node and kinds and not {"P2P", "NVLS"} & set(kinds):
        verdict += ("; NVLink not used: NCCL went through %s, as when ranks sit in separate containers "
                    "on one host or peer access is off (expect ~9 GB/s instead of ~370)" % via)
    if min_busbw_gbps and big["busbw_gbps"] < min_busbw_gbps:
        problems.append("busbw %.1f GB/s at %s is under the %.1f GB/s floor (gpu_check_min_busbw_gbps)"
                        % (big["busbw_gbps"], human_bytes(big["size_bytes"]), min_busbw_gbps))
    return verdict + ".", problems, findings
