# SPDX-License-Identifier: Apache-2.0
"""``python -m mpi_trt_ansible up|status|down``: a thin CLI over the API.

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


def _run(args, playbook):
    handle = api.start_pipeline(
        inventory=args.inventory, stages=args.stage, extravars=parse_extravars(args.extra_vars),
        on_event=print_event, private_data_dir=args.private_data_dir, timeout=args.timeout,
        playbook=playbook, project_dir=args.project_dir)
    signal.signal(signal.SIGINT, lambda *_: handle.cancel())
    result = handle.result()
    for failure in result.failures:
        print("FAILED %s / %s: %s" % (failure.host, failure.task, failure.message))
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
                           ("down", "run playbooks/teardown.yml")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("-i", "--inventory", help="inventory path (default: ansible.cfg's)")
        cmd.add_argument("-e", "--extra-vars", action="append", metavar="K=V|@FILE")
        cmd.add_argument("--private-data-dir", help="runner artifacts and reports")
        cmd.add_argument("--timeout", type=int, help="kill the run after this many seconds")
        if name == "up":
            cmd.add_argument("--stage", action="append", help="stage tag to run (repeatable)")
    status = sub.add_parser("status", help="summarise the latest report")
    status.add_argument("--report-dir", help="reports directory (default: the API's)")
    status.add_argument("--json", action="store_true", help="print report.json")
    args = parser.parse_args(argv)
    if args.command == "status":
        return _status(args)
    if args.command == "down":
        args.stage = None
        return _run(args, api.TEARDOWN_PLAYBOOK)
    return _run(args, api.SITE_PLAYBOOK)


if __name__ == "__main__":
    sys.exit(main())
