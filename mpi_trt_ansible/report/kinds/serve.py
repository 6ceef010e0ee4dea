# SPDX-License-Identifier: Apache-2.0
"""Sections of the serving stage (95 triton_serve) and of the node image's tritonserver unpack.

``serving_outcome`` is the one reading of a run's serving results (the endpoint, each server's
hosts, ranks, GPUs, ports, what was done and its time to ready, the load test's figures); the
Markdown below, the console summary and the API's ``RunResult.serving`` all use it.
"""

from __future__ import annotations

from ..mdtext import code, table
from . import renderer


def serving_outcome(results):
    """``results``: ``(kind, data)`` pairs in run order. None when serving did not run.

    Returns ``{mode, endpoint, instances: [...], stopped: [...], loadtest: {...} or None}``; an
    instance is the last result of a server of the plan (a start, a restart, an unchanged check, a
    stop), as ``{name, host, hosts, ranks: [{rank, node, slot, gpu}], gpus, ports, action, pid,
    time_to_ready_s, endpoint}``; ``stopped`` names the servers the plan no longer has that were
    stopped.
    """
    plan, instances, loadtest = None, {}, None
    for kind, data in results:
        if kind == "triton_serve_plan" and data.get("plan"):
            plan = data["plan"]
        elif kind == "triton_serve_instance" and data.get("name"):
            entry = {
                "name": data["name"], "host": data.get("host"), "hosts": list(data.get("hosts") or []),
                "ranks": list(data.get("ranks") or []),
                "gpus": [r.get("gpu") for r in data.get("ranks") or []],
                "ports": dict(data.get("ports") or {}),
                "action": data.get("would") if data.get("action") == "checked" else data.get("action"),
                "pid": data.get("pid"), "time_to_ready_s": data.get("time_to_ready_s"),
                "endpoint": data.get("endpoint"),
            }
            if data.get("action") == "checked" and data["name"] in instances:
                continue  # a check before the start: the start says more
            instances[data["name"]] = entry
        elif kind == "triton_serve_loadtest":
            loadtest = {k: data.get(k) for k in ("url", "requests", "concurrency", "ok", "errors", "first_error",
                                                 "per_instance", "retried", "wall_s", "requests_per_s", "latency_s",
                                                 "tokens", "tokens_per_s", "longest_gap_s")}
    if plan is None and not instances and loadtest is None:
        return None
    planned = [srv["name"] for srv in (plan or {}).get("servers") or []] if plan else list(instances)
    return {"mode": (plan or {}).get("mode"), "endpoint": (plan or {}).get("endpoint"),
            "instances": [instances[n] for n in planned if n in instances],
            "stopped": sorted(n for n, i in instances.items() if n not in planned and i["action"] == "stopped"),
            "loadtest": loadtest}


def summary_line(outcome):
    """One console line of a run's serving, or None."""
    if not outcome:
        return None
    parts = []
    for inst in outcome["instances"]:
        ranks = ",".join("%s@%s" % (r.get("rank"), r.get("node")) for r in inst["ranks"])
        ready = ", ready in %ss" % inst["time_to_ready_s"] if inst.get("time_to_ready_s") is not None else ""
        parts.append("%s %s (ranks %s, http %s)%s" % (inst["name"], inst["action"], ranks,
                                                      inst["ports"].get("http"), ready))
    line = "  serving (%s) at %s: %s" % (outcome.get("mode") or "?", outcome.get("endpoint") or "?",
                                         "; ".join(parts) or "no server")
    if outcome.get("stopped"):
        line += "; stopped %s" % ", ".join(outcome["stopped"])
    load = outcome.get("loadtest")
    if load:
        lat = load.get("latency_s") or {}
        line += " | load test %s/%s ok, p50 %ss p99 %ss, %s tokens/s, %s errors" % (
            load.get("ok"), load.get("requests"), lat.get("p50"), lat.get("p99"), load.get("tokens_per_s"),
            load.get("errors"))
    return line


@renderer("triton_serve_plan", title="Serving plan")
def serve_plan(data, where=None):
    plan = data.get("plan") or {}
    if not plan:
        return ["No plan: %s" % (data.get("msg") or "the settings have problems"), ""]
    rows = []
    for server in plan.get("servers") or []:
        rows.append([server.get("name"), server.get("host"),
                     ", ".join("%s@%s" % (r.get("rank"), r.get("node")) for r in server.get("ranks") or []),
                     server.get("gpu_device_ids") or server.get("gpu_sets") or "rank % gpus_per_node",
                     "%s / %s / %s" % (server.get("http_port"), server.get("grpc_port"), server.get("metrics_port")),
                     server.get("repo")])
    lines = ["%s mode, tp x pp = %s x %s; endpoint %s%s." % (
        plan.get("mode"), plan.get("tp_size"), plan.get("pp_size"), code(plan.get("endpoint")),
        " (nginx at %s, servers %s)" % (code((plan.get("proxy") or {}).get("ip")), ", ".join(
            u.get("address", "") for u in (plan.get("proxy") or {}).get("upstreams") or []))
        if (plan.get("proxy") or {}).get("enabled") else ""), ""]
    return lines + table(["server", "rank 0 on", "ranks", "GPU ids", "HTTP / gRPC / metrics", "repository"], rows)


@renderer("triton_serve_repo", title="Model repositories")
def serve_repo(data, where=None):
    engine = data.get("engine") or {}
    rows = [[r.get("name"), r.get("path"), "written %d, removed %d" % (len(r.get("written") or []),
                                                                        len(r.get("removed") or []))
             if r.get("changed") else "unchanged", code((r.get("hash") or "")[:16])] for r in data.get("repos") or []]
    return (["Engine %s (tp %s, pp %s)." % (code(engine.get("dir")), engine.get("tp"), engine.get("pp")), ""]
            + table(["server", "repository", "files", "fingerprint"], rows))


@renderer("triton_serve_instance", title="Server")
def serve_instance(data, where=None):
    ranks = ", ".join("%s on %s (slot %s, GPU %s)" % (r.get("rank"), r.get("node"), r.get("slot"), r.get("gpu"))
                      for r in data.get("ranks") or [])
    ports = data.get("ports") or {}
    action = data.get("action")
    if action == "checked":
        head = "%s: checked on %s - it would be %s%s." % (
            data.get("name"), data.get("host"), data.get("would"),
            "; ports held by others: %s" % ", ".join("%s (pid %s)" % (c.get("port"), c.get("pids"))
                                                     for c in data["conflicts"]) if data.get("conflicts") else "")
    else:
        head = "%s: %s%s%s." % (data.get("name"), action, " (%s)" % data["reason"] if data.get("reason") else "",
                                ", ready in %s s" % data["time_to_ready_s"] if data.get("time_to_ready_s") else "")
    lines = [head, "",
             "Ranks: %s; HTTP %s, gRPC %s, metrics %s on %s; mpirun pid %s." % (
                 ranks, ports.get("http"), ports.get("grpc"), ports.get("metrics"), data.get("host"), data.get("pid")),
             ""]
    if data.get("readiness"):
        lines += ["Readiness (s into the start): %s." % ", ".join("%s %s" % kv for kv in data["readiness"].items()),
                  ""]
    if data.get("leftovers"):
        lines += ["Killed after mpirun was gone: %s." % "; ".join(
            "pids %s on %s" % (", ".join(map(str, x.get("pids") or [])), x.get("host")) for x in data["leftovers"]),
            ""]
    if data.get("failed_rank", {}).get("rank") is not None:
        fr = data["failed_rank"]
        lines += ["Failed: rank %s on %s %s." % (fr.get("rank"), fr.get("host"), fr.get("reason")), ""]
    return lines


@renderer("triton_serve_loadtest", title="Load test")
def serve_loadtest(data, where=None):
    lat = data.get("latency_s") or {}
    lines = ["%s requests, %s at a time, to %s: %s answered, %s failed%s, in %s s (%s req/s, %s tokens/s)." % (
        data.get("requests"), data.get("concurrency"), code(data.get("url")), data.get("ok"), data.get("errors"),
        " (first: %s)" % data["first_error"] if data.get("first_error") else "", data.get("wall_s"),
        data.get("requests_per_s"), data.get("tokens_per_s")), ""]
    lines += table(["p50 s", "p95 s", "p99 s", "max s"], [[lat.get("p50"), lat.get("p95"), lat.get("p99"),
                                                           lat.get("max")]])
    gaps = data.get("longest_gap_s") or {}
    rows = [[name, count, (gaps.get(name) or {}).get("s")] for name, count in (data.get("per_instance") or {}).items()]
    if rows:
        lines += table(["instance", "answers", "longest gap s"], rows)
    if data.get("retried"):
        lines += ["%s answers came from a second server after the first could not be reached." % data["retried"], ""]
    return lines


@renderer("node_image_unpack", title="tritonserver in the node image")
def image_unpack(data, where=None):
    return ["%s files (%s bytes) at %s, %d grafted libraries kept; written %d, removed %d." % (
        data.get("files"), data.get("bytes"), code(data.get("dest")), len(data.get("libs") or []),
        len(data.get("written") or []), len(data.get("removed") or [])), ""]
