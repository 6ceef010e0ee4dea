# SPDX-License-Identifier: Apache-2.0
"""``python -m mpi_trt_ansible up|serve|status|down``: a thin CLI over the API.

``ansible-playbook site.yml`` stays the primary entry point; this prints
progress from the API's typed events and exits 0 only on success.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import yaml

from mpi_trt_ansible import api
from mpi_trt_ansible.report import summary_lines


def parse_extravars(items):
    """``["k=v", "@vars.yml"]`` -> dict; values are read as YAML scalars (``1`` is an int)."""
    out = {}
    for item in items or []:
        if item.startswith("@"):
            out.update(yaml.safe_load(Path(item[1:]).read_text(encoding="utf-8")) or {})
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError("extra var %r is not key=value or @file" % item)
        out[key] = yaml.safe_load(value) if value else ""
    return out


def print_event(event):
    """One console line per stage start/end and per failed task."""
    if isinstance(event, api.StageStarted):
        print("==> %s" % event.name, flush=True)
    elif isinstance(event, api.TaskResult) and event.status in ("failed", "unreachable"):
        print("    %s %s / %s: %s" % (event.status.upper(), event.host, event.task, event.message),
              flush=True)
    elif isinstance(event, api.StageFinished):
        print("<== %s %s ok=%d changed=%d failed=%d %ss" % (
            event.stage, event.status, event.ok, event.changed, event.failed + event.unreachable,
            event.duration_s), flush=True)


def serving_lines(serving):
    """What ``serve`` prints: the endpoint, each server and the load test."""
    if serving is None:
        return ["serving: not run (cluster_serve_enabled is false, or the stage stopped before it)"]
    lines = ["serving (%s mode) at %s" % (serving.mode, serving.endpoint)]
    for inst in serving.instances:
        lines.append("  %s: %s; rank 0 on %s (http %s, grpc %s, metrics %s); ranks %s%s" % (
            inst["name"], inst["action"], inst["host"], inst["ports"].get("http"), inst["ports"].get("grpc"),
            inst["ports"].get("metrics"), ", ".join("%s@%s/gpu%s" % (r.get("rank"), r.get("node"), r.get("gpu"))
                                                   for r in inst["ranks"]),
            "; ready in %ss" % inst["time_to_ready_s"] if inst.get("time_to_ready_s") is not None else ""))
    load = serving.loadtest
    if load:
        lat = load.get("latency_s") or {}
        lines.append("  load test: %s/%s ok, %s errors, per instance %s, p50 %ss p95 %ss p99 %ss, %s tokens/s" % (
            load.get("ok"), load.get("requests"), load.get("errors"), load.get("per_instance"), lat.get("p50"),
            lat.get("p95"), lat.get("p99"), load.get("tokens_per_s")))
    return lines


def _run(args, playbook, extravars=None):
    handle = api.start_pipeline(
        inventory=args.inventory, stages=args.stage,
        extravars=dict(parse_extravars(args.extra_vars), **(extravars or {})),
        on_event=print_event, private_data_dir=args.private_data_dir, timeout=args.timeout,
        playbook=playbook, project_dir=args.project_dir)
    signal.signal(signal.SIGINT, lambda *_: handle.cancel())
    result = handle.result()
    for failure in result.failures:
        print("FAILED %s / %s: %s" % (failure.host, failure.task, failure.message))
    if playbook == api.SERVE_PLAYBOOK:
        print("\n".join(serving_lines(result.serving)))
    print("%s (rc %s)%s" % (result.status, result.rc,
                            " - report: %s" % result.report_md if result.report_md else ""))
    return 0 if result.ok else 1


def _status(args):
    report = api.latest_report(args.report_dir)
    if report is None:
        print("no report yet")
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(summary_lines(report)))
    return 0 if report["run"]["status"] == "successful" else 1


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m mpi_trt_ansible",
        description="Bring the MPI/TensorRT-LLM cluster up or down through ansible-runner.")
    parser.add_argument("--project-dir", help="repo with site.yml (default: found automatically)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("up", "run site.yml (or the given stages)"),
                           ("down", "run playbooks/teardown.yml"),
                           ("serve", "serve the engine with Triton (stage 95 with cluster_serve_enabled), or --stop")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("-i", "--inventory", help="inventory path (default: ansible.cfg's)")
        cmd.add_argument("-e", "--extra-vars", action="append", metavar="K=V|@FILE")
        cmd.add_argument("--private-data-dir", help="runner artifacts and reports")
        cmd.add_argument("--timeout", type=int, help="kill the run after this many seconds")
        if name == "up":
            cmd.add_argument("--stage", action="append", help="stage tag to run (repeatable)")
        if name == "serve":
            cmd.add_argument("--stop", action="store_true", help="stop every server and the proxy (repositories stay)")
    status = sub.add_parser("status", help="summarise the latest report")
    status.add_argument("--report-dir", help="reports directory (default: the API's)")
    status.add_argument("--json", action="store_true", help="print report.json")
    args = parser.parse_args(argv)
    if args.command == "status":
        return _status(args)
    if args.command == "down":
        args.stage = None
        return _run(args, api.TEARDOWN_PLAYBOOK)
    if args.command == "serve":
        args.stage = None
        return _run(args, api.SERVE_PLAYBOOK, {"cluster_serve_enabled": True,
                                               "cluster_serve_state": "stopped" if args.stop else "started"})
    return _run(args, api.SITE_PLAYBOOK)


if __name__ == "__main__":
    sys.exit(main())
