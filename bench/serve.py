#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Serving benchmark (issue #15): what nginx and a second instance cost and give.

With the TEST stand-in of the engine model (tests/serving/standin) at a fixed service time per
request, on the real tritonserver and Debian's nginx in this project's node containers:

  1. bring up 2 nodes x 2 slots with ONE leader-mode instance of tp=2 (its ranks on both nodes)
     behind nginx (site.yml, serving on, the load test off);
  2. latency at concurrency 1: p50 through nginx against p50 straight to rank 0;
  3. throughput at saturation (--concurrency requests in flight) through nginx: one instance;
  4. the stage again with TWO instances (the second on the other slots); throughput again.

It prints, and writes to docs/results/serve-<date>.{json,md} with --results-dir:
  throughput(2 instances) / throughput(1 instance) at saturation   (target >= 1.8)
  p50 through nginx / p50 direct to rank 0                          (target <= 1.1)

Requests go only to 127.0.0.1 (the proxy's published port) and to rank 0 inside this run's own
containers. Every docker object has its own names (cluster mtrt-srv-bench, nodes srvbnode1/2,
network mtrt-srv-bench-net 192.168.141.0/24, image mtrt-srv-bench-node:mtrt-srv-bench, proxy
mtrt-srv-bench-serve-proxy on 127.0.0.1:18081) and all are removed at the end (--keep leaves them).

    .venv/bin/python bench/serve.py                              # about 3-4 minutes here
    .venv/bin/python bench/serve.py --results-dir docs/results
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
if not (BIN / "ansible-playbook").exists():
    BIN = ROOT / ".venv" / "bin"
sys.path.insert(0, str(ROOT / "python_plugins" / "module_utils"))
import mtrt_serve_http as http  # noqa: E402  (the load test's own client)

CLUSTER = "mtrt-srv-bench"
SUBNET = "192.168.141"
PORT = 18081
ONE = [{"name": "inst0", "slots": ["srvbnode1:0", "srvbnode2:0"]}]
TWO = ONE + [{"name": "inst1", "slots": ["srvbnode2:1", "srvbnode1:1"]}]
UPSTREAMS = {"%s.11:8000" % SUBNET: "inst0", "%s.12:8010" % SUBNET: "inst1"}


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def inventory(path, service_ms, state):
    doc = {"all": {"vars": {
        "cluster_name": CLUSTER, "cluster_image_name": "mtrt-srv-bench-node", "cluster_state_dir": str(state),
        "cluster_network_name": CLUSTER + "-net", "cluster_network_subnet": SUBNET + ".0/24",
        "cluster_network_gateway": SUBNET + ".1", "cluster_shm_size": "256m", "cluster_image_triton": True,
        "cluster_trtllm_enabled": "false", "cluster_trtllm_tp_size": 2, "cluster_trtllm_pp_size": 1,
        "cluster_serve_enabled": True, "cluster_serve_engine_dir": "/TRTDir/engines/standin-tp2-pp1",
        "cluster_serve_tokenizer_dir": "/TRTDir/engines/standin-tp2-pp1",
        "cluster_serve_model_sources": "/TRTDir/standin", "cluster_serve_backend": "python",
        "cluster_serve_max_batch_size": 4, "cluster_serve_parameters": {"standin_service_ms": service_ms},
        "cluster_serve_instances": ONE, "cluster_serve_proxy_port": PORT, "cluster_serve_loadtest_requests": 0},
        "children": {"nodes": {"hosts": {
            "srvbnode1": {"node_ip": SUBNET + ".11", "node_slots": 2},
            "srvbnode2": {"node_ip": SUBNET + ".12", "node_slots": 2}}}}}}
    path.write_text(json.dumps(doc, indent=1))


def playbook(inv, book, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    t0 = time.monotonic()
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv), book, *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:] + proc.stderr[-3000:])
        raise SystemExit("%s failed (rc %d)" % (book, proc.returncode))
    return round(time.monotonic() - t0, 1)


def load(url, requests, concurrency, max_tokens=8):
    body = http.generate_body("What is MPI?", max_tokens)
    records, wall = http.run_load(url + "/v2/models/ensemble/generate", body, requests, concurrency, 120)
    figures = http.summarize(records, wall, UPSTREAMS)
    if figures["errors"]:
        raise SystemExit("load test to %s: %d errors (first: %s)" % (url, figures["errors"], figures["first_error"]))
    return figures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--service-ms", type=int, default=100, help="stand-in service time per request and rank")
    ap.add_argument("--requests", type=int, default=200, help="requests per throughput measurement")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight at saturation")
    ap.add_argument("--latency-requests", type=int, default=60, help="requests per latency measurement")
    ap.add_argument("--repeats", type=int, default=3, help="measurements of each figure (median reported)")
    ap.add_argument("--results-dir", help="write serve-<date>.json and .md there")
    ap.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="mtrt-srv-bench-"))
    state = work / "state"
    inv = work / "hosts.yml"
    inventory(inv, args.service_ms, state / CLUSTER)
    shared = state / CLUSTER / "shared"
    (shared / "engines" / "standin-tp2-pp1").mkdir(parents=True)
    (shared / "engines" / "standin-tp2-pp1" / "config.json").write_text(
        json.dumps({"pretrained_config": {"mapping": {"tp_size": 2, "pp_size": 1}}}))
    shutil.copytree(ROOT / "tests" / "serving" / "standin", shared / "standin")
    proxy = "http://127.0.0.1:%d" % PORT
    direct = "http://%s.11:8000" % SUBNET
    result = {"date": dt.date.today().isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
              "service_ms": args.service_ms, "requests": args.requests, "concurrency": args.concurrency,
              "latency_requests": args.latency_requests, "repeats": args.repeats}
    try:
        log("bring-up: 2 nodes, 1 instance of tp=2 behind nginx")
        result["bringup_s"] = playbook(inv, "site.yml")
        load(proxy, 8, 2)  # warm both paths
        load(direct, 8, 1)
        lat_proxy, lat_direct, thr_one = [], [], []
        for i in range(args.repeats):
            lat_direct.append(load(direct, args.latency_requests, 1)["latency_s"]["p50"])
            lat_proxy.append(load(proxy, args.latency_requests, 1)["latency_s"]["p50"])
            one = load(proxy, args.requests, args.concurrency)
            thr_one.append(one["requests_per_s"])
            log("repeat %d: p50 direct %.4fs, nginx %.4fs; 1 instance %.2f req/s" % (
                i + 1, lat_direct[-1], lat_proxy[-1], thr_one[-1]))
        log("second instance on the other slots")
        result["add_instance_s"] = playbook(inv, "playbooks/95_triton_serve.yml", "-e",
                                            json.dumps({"cluster_serve_instances": TWO}))
        load(proxy, 8, 2)
        thr_two, spread = [], []
        for i in range(args.repeats):
            two = load(proxy, args.requests, args.concurrency)
            thr_two.append(two["requests_per_s"])
            spread.append(two["per_instance"])
            log("repeat %d: 2 instances %.2f req/s %s" % (i + 1, thr_two[-1], two["per_instance"]))
        med = statistics.median
        result.update({
            "p50_direct_s": lat_direct, "p50_nginx_s": lat_proxy, "throughput_one_rps": thr_one,
            "throughput_two_rps": thr_two, "two_per_instance": spread,
            "latency_ratio": round(med(lat_proxy) / med(lat_direct), 3),
            "throughput_ratio": round(med(thr_two) / med(thr_one), 3),
            "ceiling_one_rps": round(1000.0 / args.service_ms, 2),
        })
    finally:
        if not args.keep:
            log("teardown")
            playbook(inv, "playbooks/teardown.yml")
            subprocess.run(["docker", "image", "rm", "-f", "mtrt-srv-bench-node:" + CLUSTER], capture_output=True)
            shutil.rmtree(work, ignore_errors=True)
    ok_thr = result["throughput_ratio"] >= 1.8
    ok_lat = result["latency_ratio"] <= 1.1
    lines = [
        "throughput at saturation (%d in flight): 1 instance %.2f req/s, 2 instances %.2f req/s -> ratio %.3f "
        "(target >= 1.8: %s)" % (args.concurrency, statistics.median(result["throughput_one_rps"]),
                                 statistics.median(result["throughput_two_rps"]), result["throughput_ratio"],
                                 "met" if ok_thr else "MISSED"),
        "p50 at concurrency 1: direct to rank 0 %.4f s, through nginx %.4f s -> ratio %.3f (target <= 1.1: %s)"
        % (statistics.median(result["p50_direct_s"]), statistics.median(result["p50_nginx_s"]),
           result["latency_ratio"], "met" if ok_lat else "MISSED"),
    ]
    for line in lines:
        print(line)
    if args.results_dir:
        out = Path(args.results_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / ("serve-%s" % result["date"])
        stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        stem.with_suffix(".md").write_text(
            "# Serving benchmark, %s\n\n`python bench/serve.py --results-dir docs/results` on %s (%d CPUs): the "
            "real tritonserver (CPU, nvidia-pytriton 0.7.0 wheel) and Debian's nginx in the project's node "
            "containers, 2 nodes x 2 slots, leader-mode instances of tp=2 whose ranks are on both nodes; the "
            "engine model is the TEST stand-in at %d ms per request and rank; median of %d repeats.\n\n%s\n\n"
            "One instance can answer at most %.1f req/s (one request at a time per instance). Raw figures: "
            "`%s`.\n" % (result["date"], result["host"], result["cpus"], args.service_ms, args.repeats,
                         "\n".join("- " + line for line in lines), result["ceiling_one_rps"],
                         stem.with_suffix(".json").name))
        log("wrote %s.{json,md}" % stem)
    return 0 if ok_thr and ok_lat else 1


if __name__ == "__main__":
    sys.exit(main())
