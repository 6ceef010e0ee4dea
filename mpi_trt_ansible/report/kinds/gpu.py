# SPDX-License-Identifier: Apache-2.0
"""Sections of the GPU check (stage 75): GPUs of a node, rank -> GPU, NCCL all-reduce."""

from __future__ import annotations

from ..mdtext import bullets, size, table, yes
from . import renderer
from .mpi import launch_line

# How the all-reduce was timed, in the order a person reads it (method keys; others follow).
_METHOD_ORDER = ("timer", "stream", "in_place", "dtype", "op", "warmup_iters", "min_iters", "max_iters",
                 "target_s", "rank_time", "windows")


def method_sentence(method):
    """``Method: timer cuda_events, stream dedicated, ...`` from the check's ``method`` dict."""
    if not isinstance(method, dict) or not method:
        return []
    keys = [k for k in _METHOD_ORDER if k in method] + sorted(k for k in method if k not in _METHOD_ORDER)
    return ["Method: %s." % ", ".join("%s %s" % (k.replace("_", " "), yes(method[k]) if isinstance(method[k], bool)
                                                 else method[k]) for k in keys), ""]


@renderer("gpu_rank_device", title="Rank to GPU")
def gpu_rank_device(data, where=None):
    ranks = [r for r in data.get("ranks") or [] if isinstance(r, dict)]
    found = sum(1 for r in ranks if r.get("exists") is True)
    lines = ["World size %s; %d of %d ranks found their GPU; %s." % (
        data.get("world_size"), found, len(ranks), launch_line(data)), ""]
    lines += bullets("Problem", data.get("problems")) + bullets("Finding", data.get("findings"))
    keys = ("rank", "host", "local_rank", "device", "device_name", "exists", "error")
    if ranks:
        lines += table(["Rank", "Host", "Local rank", "Device", "Device name", "Exists", "Error"],
                       [[yes(r.get(k)) if k == "exists" else r.get(k) for k in keys] for r in ranks])
    return lines


@renderer("nccl_allreduce", title="NCCL all-reduce")
def nccl_allreduce(data, where=None):
    lines = ["%s" % (data.get("verdict") or "No verdict."), ""]
    if data.get("nothing_to_measure"):
        lines += ["Nothing to measure: the all-reduce ran on one rank, so no bandwidth was measured "
                  "(give the check two or more GPUs).", ""]
    transport = data.get("transport") or {}
    if transport:
        channels = ", ".join("%s: %s" % kv for kv in (transport.get("channels") or {}).items()) or "none"
        lines += ["Transport: %s (channels %s; NVLS channels %s; %s node(s))." % (
            ", ".join(transport.get("transports") or []) or "unknown", channels,
            transport.get("nvls_channels"), transport.get("nodes")), ""]
    versions = data.get("versions") or {}
    ranks = [r for r in data.get("ranks") or [] if isinstance(r, dict)]
    lines += ["Versions: torch %s, NCCL %s; %d ranks (%s); %s." % (
        versions.get("torch"), versions.get("nccl"), len(ranks),
        ", ".join("%s %s@%s" % (r.get("rank"), r.get("device"), r.get("host")) for r in ranks) or "none",
        launch_line(data)), ""]
    lines += method_sentence(data.get("method"))
    lines += bullets("Problem", data.get("problems")) + bullets("Finding", data.get("findings"))
    rows = [r for r in data.get("results") or [] if isinstance(r, dict)]
    if rows:
        lines += table(["Size", "Time (us)", "Alg bw (GB/s)", "Bus bw (GB/s)", "Correct"],
                       [[size(r.get("size_bytes")), r.get("time_us"), r.get("algbw_gbps"), r.get("busbw_gbps"),
                         yes(r.get("correct"))] for r in rows])
    return lines


@renderer("gpu_facts", title="GPUs")
def gpu_facts(data, where=None):
    if not data.get("present"):
        return ["No GPU: %s" % (data.get("reason") or "nvidia-smi listed none"), ""]
    keys = ("index", "name", "memory_total_mib", "pci_bus_id", "uuid")
    lines = ["%s GPU(s)." % data.get("count"), ""]
    lines += table(["Index", "Name", "Memory (MiB)", "Bus id", "UUID"],
                   [[g.get(k) for k in keys] for g in data.get("gpus") or [] if isinstance(g, dict)])
    nvlink = data.get("nvlink") or {}
    limit = data.get("nvlink_limit_gbps")
    limit = "; limit %s GB/s per direction" % limit if limit else ""
    if nvlink.get("nvlink_pairs"):
        pairs = [p for p in nvlink.get("pairs") or [] if isinstance(p, dict)]
        links = ", ".join("%s-%s %s" % (p.get("a"), p.get("b"), p.get("link")) for p in pairs if p.get("nvlinks"))
        lines += ["NVLink: %s of %d GPU pair(s) linked (%s), at least %s links per linked pair%s." % (
            "all" if nvlink.get("all_pairs_nvlink") else nvlink.get("nvlink_pairs"), len(pairs), links,
            nvlink.get("min_nvlinks"), limit), ""]
    elif data.get("topology_error"):
        lines += ["NVLink: unknown (%s)." % data["topology_error"], ""]
    else:
        lines += ["NVLink: none between these GPUs%s." % limit, ""]
    return lines
