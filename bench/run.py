#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Bring-up benchmark (issue #8; its targets are issue #17's): ours (ansible-playbook site.yml) against a plain
bash floor.

One run does, for every N (default 2, 4, 8, 16 nodes, 2 MPI slots each) and every repeat
(default 3), interleaved so that machine noise hits both sides, each step after a sync and a short
settling pause outside its clock (``--settle-s``, so that one step's leftovers do not land on the next):

  floor up      bench/floor.sh up N     (network, N containers, keys, one mpirun of 2N ranks)
  floor down    bench/floor.sh down N
  ours cold     ansible-playbook site.yml --skip-tags <the stages after mpi_hello>, from nothing
                (fresh state dir: new keys; the node image is present)
  ours warm     the same again on the unchanged cluster; the recap must say changed=0
  ours down     ansible-playbook playbooks/teardown.yml

The order floor/ours alternates from one repeat to the next. Both use the same node image
(mtrt-node:<cluster>), built once beforehand by our node_image stage. The run prints a table
(median and min seconds, ratios ours/floor), the issue's three targets, and writes JSON, a PNG
plot and a short Markdown note.

    .venv/bin/python bench/run.py                          # the full benchmark (about 30-40 min)
    .venv/bin/python bench/run.py --quick                  # N=2, one repeat (the test suite's check)
    .venv/bin/python bench/run.py --profile                # ours once at N=8 with profile_tasks/timer
    .venv/bin/python bench/run.py --with-profile --results-dir docs/results   # what docs/results holds

Every docker object it makes has its own names (cluster mtrt-bench, network mtrt-bench-net
192.168.151.0/24, nodes bn1..bnN; floor network bfloor-net 192.168.150.0/24, containers bfl1..bflN;
names with a non-hex letter, so that docker never takes one for a container ID prefix),
and all of them (plus the temp dirs and, unless --keep-image, the node image) are removed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT  # the project whose playbooks are measured (--project: a modified copy)
BIN = Path(sys.executable).parent
if not (BIN / "ansible-playbook").exists():
    BIN = ROOT / ".venv" / "bin"
FLOOR = ROOT / "bench" / "floor.sh"
# site.yml up to mpi-hello: the "ours", as a user runs it (the later stages skipped by tag, so
# that every stage up to the hello decides for itself what to do, as in a plain site.yml run).
# Preflight and summary are tagged always and run too.
SKIP_TAGS = ("mpi_collectives,gpu_check,trtllm_engine,trtllm_inference,triton_serve,"
             "build_engine,run_inference,gpu_preflight")
KINDS = ("floor_up", "floor_down", "ours_cold", "ours_warm", "ours_down")
LABELS = {"floor_up": "floor up", "floor_down": "floor down", "ours_cold": "ours cold",
          "ours_warm": "ours warm", "ours_down": "ours down"}
RECAP_RE = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                      r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)")
PROFILE_RE = re.compile(r"^(?P<name>.*?) -+ (?P<s>\d+\.\d+)s$")
TIMER_RE = re.compile(r"Playbook run took (\d+) days, (\d+) hours, (\d+) minutes, (\d+) seconds")


class BenchError(RuntimeError):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def sh(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


# --- machine -------------------------------------------------------------------------------
def machine_info():
    mem_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    docker_v = sh(["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"])
    ans_v = sh([str(BIN / "ansible-playbook"), "--version"])
    running = sh(["docker", "ps", "-q"])
    return {
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1048576, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": docker_v.stdout.strip() or docker_v.stderr.strip(),
        "ansible_core": (re.search(r"core ([\d.]+)", ans_v.stdout) or [None, None])[1],
        "loadavg_start": loadavg(),
        "other_containers_running_at_start": len(running.stdout.split()),
    }


# --- inventory -----------------------------------------------------------------------------
class Layout:
    """Names and addresses of both sides, and where their files go."""

    def __init__(self, args, tmp: Path):
        self.tmp = tmp
        self.cluster = args.cluster
        self.net = args.cluster + "-net"
        self.subnet = args.subnet  # first three octets
        self.prefix = args.node_prefix
        self.slots = args.slots
        self.image = "mtrt-node:" + args.cluster
        self.floor_env = dict(os.environ, BFLOOR_IMAGE=self.image, BFLOOR_NET=args.floor_net,
                              BFLOOR_SUBNET=args.floor_subnet, BFLOOR_PREFIX=args.floor_prefix,
                              BFLOOR_DIR=str(tmp / "floor"), BFLOOR_SLOTS=str(args.slots))

    def inventory(self, n: int) -> Path:
        """One inventory file for N nodes, as a user writes it: the nodes and what this cluster changes
        (its names and subnet); everything else is the project's defaults, connections included."""
        inv = self.tmp / ("inv-%d.yml" % n)
        if inv.exists():
            return inv
        doc = {"all": {
            "vars": {"cluster_name": self.cluster, "cluster_network_name": self.net,
                     "cluster_network_subnet": "%s.0/24" % self.subnet,
                     "cluster_network_gateway": "%s.1" % self.subnet},
            "children": {"nodes": {"hosts": {
                "%s%d" % (self.prefix, i): {"node_ip": "%s.%d" % (self.subnet, 10 + i), "node_slots": self.slots}
                for i in range(1, n + 1)}}}}}
        inv.write_text("---\n# bench/run.py: a cluster of its own on the local engine, %d nodes.\n%s"
                       % (n, yaml_dump(doc)))
        return inv


def yaml_dump(doc):
    import yaml

    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


# --- one timed step ------------------------------------------------------------------------
def parse_recap(text):
    """``{host: {ok, changed, unreachable, failed}}`` from the PLAY RECAP of an ansible-playbook run."""
    recap, inside = {}, False
    for line in text.splitlines():
        if line.startswith("PLAY RECAP"):
            inside = True
            continue
        if inside:
            m = RECAP_RE.match(line.strip())
            if m:
                recap[m.group("host")] = {k: int(m.group(k)) for k in ("ok", "changed", "unreachable", "failed")}
            elif recap and not line.strip():
                inside = False
    return recap


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# Seconds every timed step waits, after a sync, before its clock starts (--settle-s): the step before it
# (a teardown dockerd is still finishing, containers that just started, page-cache writeback on
# fuse-overlayfs) must not land on it. The same for the floor's steps and ours.
SETTLE_S = 0.0


def settle():
    if SETTLE_S > 0:
        os.sync()
        time.sleep(SETTLE_S)


def timed(argv, env, log_path: Path, timeout):
    """(wall seconds, rc, output); the step's CPU seconds (ansible/bash and their children, not dockerd)
    are left in ``timed.cpu_s``: on a busy 2-core box they vary less than the wall time. The machine
    settles first (:func:`settle`), outside the measured time."""
    settle()
    c0 = children_cpu()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
        out, rc = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        rc = 124
    seconds = time.monotonic() - t0
    timed.cpu_s = round(children_cpu() - c0, 2)
    log_path.write_text(out)
    return round(seconds, 3), rc, out


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="mtrt-bench-"))
        self.lay = Layout(args, self.tmp)
        self.out = Path(args.out) if args.out else ROOT / "bench" / "out" / time.strftime("%Y%m%d-%H%M%S")
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.runs = []
        self.warnings = []
        self.state = None  # current MTRT_STATE_HOME of ours
        self.up = {"floor": 0, "ours": 0}  # N currently up on each side (0: none)

    # environment of every ansible-playbook run
    def ansible_env(self, state: Path, extra=None):
        env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), MTRT_STATE_HOME=str(state),
                   MTRT_REPORT_DIR=str(self.tmp / "reports"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
        env.update(extra or {})
        return env

    def playbook(self, playbook, n, tag, extra_env=None, tags=True):
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.lay.inventory(n)), playbook]
        if tags:
            argv += ["--skip-tags", self.args.skip_tags]
        return timed(argv, self.ansible_env(self.state, extra_env), self.logs / ("%s.log" % tag),
                     self.args.step_timeout)

    def record(self, kind, n, rep, seconds, ok, **extra):
        entry = dict(kind=kind, n=n, repeat=rep, seconds=seconds, cpu_s=getattr(timed, "cpu_s", None), ok=ok,
                     loadavg=loadavg(), **extra)
        self.runs.append(entry)
        note = "" if ok else "  FAILED"
        if "changed" in extra:
            note += "  changed=%d" % extra["changed"]
        log("    %-10s N=%-2d  %7.2f s  (cpu %.1f s, load %s)%s" % (LABELS.get(kind, kind), n, seconds,
                                                                   entry["cpu_s"] or 0, entry["loadavg"][0], note))
        return entry

    # --- the node image, once ---------------------------------------------------------------
    def build_image(self):
        self.state = self.tmp / "state-image"
        log("node image %s: running our node_image stage once (builds only if missing)" % self.lay.image)
        secs, rc, out = timed([str(BIN / "ansible-playbook"), "-i", str(self.lay.inventory(2)),
                               "playbooks/10_node_image.yml"], self.ansible_env(self.state),
                              self.logs / "node_image.log", self.args.step_timeout)
        if rc != 0:
            raise BenchError("node_image stage failed (rc=%d), see %s\n%s" % (rc, self.logs / "node_image.log",
                                                                            out[-3000:]))
        log("node image ready in %.1f s" % secs)
        return secs

    # --- the two sides ----------------------------------------------------------------------
    def floor(self, n, rep):
        tag = "r%d-n%d" % (rep, n)
        self.up["floor"] = n
        secs, rc, out = timed(["bash", str(FLOOR), "up", str(n)], self.lay.floor_env,
                              self.logs / ("%s-floor-up.log" % tag), self.args.step_timeout)
        ok = rc == 0 and ("%d/%d ranks on %d nodes" % (n * self.args.slots, n * self.args.slots, n)) in out
        self.record("floor_up", n, rep, secs, ok)
        if not ok:
            raise BenchError("floor up N=%d failed (rc=%d):\n%s" % (n, rc, out[-3000:]))
        secs, rc, out = timed(["bash", str(FLOOR), "down", str(n)], self.lay.floor_env,
                              self.logs / ("%s-floor-down.log" % tag), self.args.step_timeout)
        self.record("floor_down", n, rep, secs, rc == 0)
        self.up["floor"] = 0

    def ours(self, n, rep):
        tag = "r%d-n%d" % (rep, n)
        self.state = Path(tempfile.mkdtemp(prefix="state-", dir=self.tmp))  # from nothing: new keys
        self.up["ours"] = n
        for kind in ("ours_cold", "ours_warm"):
            secs, rc, out = self.playbook("site.yml", n, "%s-%s" % (tag, kind))
            recap = parse_recap(out)
            failed = sum(h["failed"] + h["unreachable"] for h in recap.values())
            changed = sum(h["changed"] for h in recap.values())
            # stage 99's summary line: every rank answered (e.g. "hello on bn1: world_size=4 ... missing=none")
            hello = bool(re.search(r"^\s*hello on \S+: world_size=%d .*missing=none$" % (n * self.args.slots),
                                   out, re.M))
            ok = rc == 0 and failed == 0 and bool(recap) and hello
            self.record(kind, n, rep, secs, ok, changed=changed,
                        changed_hosts=sorted(h for h, c in recap.items() if c["changed"]))
            if not ok:
                raise BenchError("%s N=%d failed (rc=%d), log %s:\n%s" % (
                    kind, n, rc, self.logs / ("%s-%s.log" % (tag, kind)), out[-4000:]))
            if kind == "ours_warm" and changed:
                msg = ("WARNING: warm re-run at N=%d (repeat %d) reported changed=%d on %s: not idempotent! "
                       "see %s" % (n, rep, changed, ", ".join(h for h, c in recap.items() if c["changed"]),
                                   self.logs / ("%s-%s.log" % (tag, kind))))
                self.warnings.append(msg)
                print("\n" + "!" * 100 + "\n" + msg + "\n" + "!" * 100 + "\n", flush=True)
        self.teardown_ours(n, rep, tag)

    def teardown_ours(self, n, rep, tag, record=True):
        secs, rc, out = self.playbook("playbooks/teardown.yml", n, "%s-ours-down" % tag, tags=False)
        if record:
            self.record("ours_down", n, rep, secs, rc == 0)
        if rc != 0:
            raise BenchError("teardown N=%d failed:\n%s" % (n, out[-3000:]))
        self.up["ours"] = 0
        if self.state and self.state.name.startswith("state-"):
            shutil.rmtree(self.state, ignore_errors=True)

    # --- profile ---------------------------------------------------------------------------
    def profile(self, n):
        """Ours cold and warm once at N with profile_tasks and timer; per-task and per-stage seconds."""
        env = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks,ansible.posix.timer,run_report",
               "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all", "PROFILE_TASKS_SORT_ORDER": "descending",
               "PROFILE_TASKS_SUMMARY_ONLY": "true", "ANSIBLE_DISPLAY_OK_HOSTS": "true"}
        self.state = Path(tempfile.mkdtemp(prefix="state-", dir=self.tmp))
        self.up["ours"] = n
        result = {"n": n}
        log("profile: ours at N=%d with profile_tasks + timer" % n)
        for kind in ("cold", "warm"):
            secs, rc, out = self.playbook("site.yml", n, "profile-n%d-%s" % (n, kind), extra_env=env)
            if rc != 0:
                raise BenchError("profile %s run failed:\n%s" % (kind, out[-3000:]))
            tasks = parse_profile(out)
            report = self.tmp / "reports" / "latest" / "report.json"
            stages, work = [], []
            if report.exists():
                data = json.loads(report.read_text())
                stages = [{"stage": s.get("name"), "seconds": s.get("duration_s"), "tasks_run": s.get("tasks_run")}
                          for s in data.get("stages", [])]
                work = module_work(data)
            timer = TIMER_RE.search(out)
            result[kind] = {
                "wall_s": secs,
                "timer_s": (int(timer[1]) * 86400 + int(timer[2]) * 3600 + int(timer[3]) * 60 + int(timer[4]))
                if timer else None,
                "changed": sum(h["changed"] for h in parse_recap(out).values()),
                "tasks": tasks,
                "tasks_by_name": by_name(tasks),
                "stages": stages,
                "module_work": work,
                "log": str(self.logs / ("profile-n%d-%s.log" % (n, kind))),
            }
            log("profile %s: %.1f s; top tasks:" % (kind, secs))
            for t in result[kind]["tasks_by_name"][:8]:
                log("    %6.2f s  x%d  %s" % (t["seconds"], t["count"], t["name"]))
        self.teardown_ours(n, 0, "profile-n%d" % n, record=False)
        return result

    # --- cleanup ---------------------------------------------------------------------------
    def cleanup(self, remove_image):
        if self.up["floor"]:
            sh(["bash", str(FLOOR), "down", str(self.up["floor"])], env=self.lay.floor_env)
        if self.up["ours"]:
            try:
                self.teardown_ours(self.up["ours"], 0, "cleanup", record=False)
            except Exception as exc:  # noqa: BLE001 - best effort, then plain docker below
                log("cleanup: teardown failed: %s" % exc)
        # Belt and braces: only our own names and label.
        left = sh(["docker", "ps", "-aq", "--filter", "label=mtrt.cluster=%s" % self.lay.cluster]).stdout.split()
        if left:
            sh(["docker", "rm", "-f", *left])
        for net in (self.lay.net, self.args.floor_net):
            if sh(["docker", "network", "inspect", net]).returncode == 0:
                sh(["docker", "network", "rm", net])
        if remove_image:
            sh(["docker", "image", "rm", self.lay.image])
        shutil.rmtree(self.tmp, ignore_errors=True)


def parse_profile(text):
    """profile_tasks' TASKS RECAP as ``[{name, seconds}]`` (in its order: descending)."""
    out, inside = [], False
    for line in text.splitlines():
        if "TASKS RECAP" in line:
            inside = True
            continue
        if inside:
            m = PROFILE_RE.match(line.rstrip())
            if m and not line.startswith("="):
                out.append({"name": m.group("name").strip(), "seconds": float(m.group("s"))})
    return out


def module_work(report):
    """Seconds the project's modules measured inside themselves (their ``duration_s``: docker calls,
    ssh, mpirun), from a run report: what is left of a task's time is Ansible starting the module."""
    out = []
    for stage, hosts in (report.get("results") or {}).items():
        for host, entries in hosts.items():
            for entry in entries:
                seconds = (entry.get("result") or {}).get("duration_s")
                if isinstance(seconds, (int, float)):
                    out.append({"stage": stage, "host": host, "kind": entry.get("kind"), "task": entry.get("task"),
                                "seconds": round(seconds, 3)})
    return out


def by_name(tasks):
    """Tasks of the same name summed (the preflight play repeats in every stage playbook)."""
    agg = {}
    for t in tasks:
        a = agg.setdefault(t["name"], {"name": t["name"], "seconds": 0.0, "count": 0})
        a["seconds"] = round(a["seconds"] + t["seconds"], 2)
        a["count"] += 1
    return sorted(agg.values(), key=lambda a: -a["seconds"])


# --- summary -------------------------------------------------------------------------------
def summarise(runs, ns):
    summary = {}
    for kind in KINDS:
        summary[kind] = {}
        for n in ns:
            vals = [r["seconds"] for r in runs if r["kind"] == kind and r["n"] == n and r["ok"]]
            cpus = [r["cpu_s"] for r in runs if r["kind"] == kind and r["n"] == n and r["ok"]
                    and r.get("cpu_s") is not None]
            if vals:
                summary[kind][str(n)] = {"min": round(min(vals), 2), "median": round(statistics.median(vals), 2),
                                         "max": round(max(vals), 2), "runs": vals,
                                         "cpu_median": round(statistics.median(cpus), 2) if cpus else None}
    ratios = {}
    for n in ns:
        k = str(n)
        row = {}  # ours / floor
        for name, num, den in (("cold_over_floor", "ours_cold", "floor_up"),
                               ("warm_over_floor", "ours_warm", "floor_up"),
                               ("down_over_floor_down", "ours_down", "floor_down")):
            a, b = summary[num].get(k), summary[den].get(k)
            if a and b:
                row[name] = {s: round(a[s] / b[s], 2) for s in ("median", "min")}
        ratios[k] = row
    return summary, ratios


def targets(summary):
    def get(kind, n, stat):
        return (summary.get(kind, {}).get(str(n)) or {}).get(stat)

    out = []
    for stat in ("median", "min"):
        c8, f8, w8 = get("ours_cold", 8, stat), get("floor_up", 8, stat), get("ours_warm", 8, stat)
        c16, c2 = get("ours_cold", 16, stat), get("ours_cold", 2, stat)
        f16, f2 = get("floor_up", 16, stat), get("floor_up", 2, stat)
        items = [
            ("cold(8) / floor(8)", c8 / f8 if c8 and f8 else None, 2.0),
            ("warm(8) / floor_cold(8)", w8 / f8 if w8 and f8 else None, 1.0),
            ("(cold(16) - cold(2)) / (floor(16) - floor(2))",
             (c16 - c2) / (f16 - f2) if None not in (c16, c2, f16, f2) and f16 != f2 else None, 1.0),
        ]
        for name, value, limit in items:
            out.append({"target": name, "basis": stat, "value": round(value, 2) if value is not None else None,
                        "limit": limit, "met": (value <= limit) if value is not None else None})
    return out


def fmt_cell(s):
    return "%.1f (%.1f)" % (s["median"], s["min"]) if s else "-"


def table_lines(summary, ratios, ns, md=False):
    head = ["N", "floor up", "ours cold", "ours warm", "floor down", "ours down",
            "cold/floor", "warm/floor", "down/down"]
    rows = []
    for n in ns:
        k = str(n)
        r = ratios.get(k, {})
        rows.append([str(n)] + [fmt_cell(summary[kind].get(k)) for kind in
                                ("floor_up", "ours_cold", "ours_warm", "floor_down", "ours_down")]
                    + ["%.2f" % r[x]["median"] if x in r else "-"
                       for x in ("cold_over_floor", "warm_over_floor", "down_over_floor_down")])
    if md:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return lines
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return lines


def _frame(ax, ns, x_max, xlabel, ylabel, legend_loc, title):
    """The axes both panels share: N on x from just below the smallest, y from 0, grid, legend, title."""
    ax.set_xlim(ns[0] - 1, x_max)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks(ns)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc=legend_loc, fontsize=9)
    ax.set_title(title)


def plot(data, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = data["config"]["nodes"]
    summary = data["summary"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    styles = [("floor_up", "floor (bash, cold)", "black", "o", "-"),
              ("ours_cold", "ours cold (site.yml)", "tab:red", "s", "-"),
              ("ours_warm", "ours warm (changed=0)", "tab:blue", "^", "-"),
              ("floor_down", "floor teardown", "gray", "o", ":"),
              ("ours_down", "ours teardown", "tab:purple", "s", ":")]
    for kind, label, color, marker, ls in styles:
        xs = [n for n in ns if str(n) in summary[kind]]
        if not xs:
            continue
        med = [summary[kind][str(n)]["median"] for n in xs]
        lo = [summary[kind][str(n)]["median"] - summary[kind][str(n)]["min"] for n in xs]
        hi = [summary[kind][str(n)]["max"] - summary[kind][str(n)]["median"] for n in xs]
        ax.errorbar(xs, med, yerr=[lo, hi], label=label, color=color, marker=marker, linestyle=ls,
                    capsize=3, linewidth=2 if ls == "-" else 1.2)
        if ls == "-":
            for x, y in zip(xs, med):
                ax.annotate("%.1f" % y, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8, color=color)
    _frame(ax, ns, ns[-1] + 0.15 * (ns[-1] - ns[0]) + 1, "nodes N (2 MPI slots each)",
           "seconds (median; bars: min..max)", "upper left", "Bring-up time against N")

    ratios = data["ratios"]
    for key, label, color, marker, limit in (("cold_over_floor", "cold / floor", "tab:red", "s", 2.0),
                                             ("warm_over_floor", "warm / floor cold", "tab:blue", "^", 1.0)):
        xs = [n for n in ns if key in ratios.get(str(n), {})]
        if xs:
            ax2.plot(xs, [ratios[str(n)][key]["median"] for n in xs], marker=marker, color=color, label=label)
        ax2.axhline(limit, color=color, linestyle="--", alpha=0.5, linewidth=1)
        ax2.annotate("target %s <= %.1f at N=8" % (label, limit), (ns[0], limit), textcoords="offset points",
                     xytext=(0, 3), fontsize=7, color=color)
    _frame(ax2, ns, ns[-1] + 1, "nodes N", "ratio ours / floor (medians)", "upper right", "Ratios")
    m = data["machine"]
    fig.suptitle("mpi-trt-ansible bring-up (site.yml up to mpi_hello) vs plain bash floor - %s\n%s CPUs, %s GiB, "
                 "docker %s, ansible-core %s, node connection %s, %d repeat(s), load at start %s"
                 % (data["date"][:10], m["nproc"], m["memory_gib"], m["docker"].split()[0], m["ansible_core"],
                    data["config"].get("node_connection"), data["config"]["repeats"],
                    (m.get("loadavg_start") or ["?"])[0]), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(data):
    m = data["machine"]
    ns = data["config"]["nodes"]
    lines = ["# Bring-up benchmark %s" % data["date"][:10], "",
             "`.venv/bin/python bench/run.py %s` (issues #8, #17). Ours = `ansible-playbook site.yml --skip-tags %s` "
             "(preflight and summary always run); floor = `bench/floor.sh` (%s). %d repeat(s) per point, "
             "floor and ours interleaved; every step starts after a sync and %.1f s of settling (not timed). "
             "Seconds as median (min); ratios of medians."
             % (" ".join(data["config"]["argv"]), data["config"].get("skip_tags", data["config"].get("tags")),
                "network, N x docker run in parallel, one docker exec with one mpirun of 2N ranks",
                data["config"]["repeats"], data["config"].get("settle_s", 0.0)), "",
             "Project measured: `%s`; nodes reached with `%s`; our names %s on %s, floor %s on %s."
             % (os.path.relpath(data["config"]["project"], ROOT) if data["config"]["project"].startswith(str(ROOT))
                else data["config"]["project"], data["config"].get("node_connection"), data["config"].get("node_names"),
                data["config"]["network"], data["config"].get("floor_names"), data["config"]["floor_network"]), "",
             "Machine: %s CPUs (%s), %s GiB RAM, kernel %s, docker %s, ansible-core %s, Python %s; "
             "load average at start %s, end %s; %d other containers running at start."
             % (m["nproc"], m["cpu"], m["memory_gib"], m["kernel"], m["docker"], m["ansible_core"], m["python"],
                m["loadavg_start"], m.get("loadavg_end"), m["other_containers_running_at_start"]), "",
             "## Seconds", ""]
    lines += table_lines(data["summary"], data["ratios"], ns, md=True)
    lines += ["", "## Targets (issue #17)", "", "| target | basis | value | limit | met |", "|---|---|---:|---:|---|"]
    for t in data["targets"]:
        lines.append("| %s | %s | %s | %.1f | %s |" % (
            t["target"], t["basis"], "-" if t["value"] is None else "%.2f" % t["value"], t["limit"],
            {True: "yes", False: "**no**", None: "n/a"}[t["met"]]))
    if data["warnings"]:
        lines += ["", "## Warnings", ""] + ["- " + w for w in data["warnings"]]
    prof = data.get("profile")
    if prof:
        lines += ["", "## Where the time goes (N=%d, profile_tasks + timer)" % prof["n"], ""]
        for kind in ("cold", "warm"):
            p = prof[kind]
            lines += ["%s run: %.1f s wall (changed=%d). Stages:" % (kind.capitalize(), p["wall_s"], p["changed"]),
                      ""]
            lines += ["- %s: %.1f s" % (s["stage"], s["seconds"] or 0) for s in p["stages"] if s["seconds"]]
            lines += ["", "Top tasks (same name summed over plays):", "", "| s | x | task |", "|---:|---:|---|"]
            lines += ["| %.2f | %d | %s |" % (t["seconds"], t["count"], t["name"]) for t in p["tasks_by_name"][:10]]
            work = p.get("module_work") or []
            if work:
                tasks_s = {t["name"].split(" : ", 1)[-1]: t["seconds"] for t in p["tasks_by_name"]}
                lines += ["", "%d tasks ran, in %.1f s of task time (%.1f s of the wall time is ansible-playbook "
                              "starting and parsing). Inside the project's modules (their own `duration_s`):"
                          % (len(p["tasks"]), sum(t["seconds"] for t in p["tasks"]),
                             p["wall_s"] - sum(t["seconds"] for t in p["tasks"])), ""]
                for w in work:
                    task_s = tasks_s.get(w["task"])
                    lines.append("- %s on %s: %.2f s of work%s" % (
                        w["kind"], w["host"], w["seconds"],
                        "; the task took %.2f s" % task_s if task_s is not None else ""))
            lines.append("")
    lines += ["", "Raw data: `%s`; plot: `%s`." % (data["files"]["json"], data["files"]["png"]), ""]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default="2,4,8,16", help="comma-separated N values (default 2,4,8,16)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="N=2, one repeat (the test suite's check)")
    p.add_argument("--profile", action="store_true",
                   help="only profile ours once (cold + warm) at --profile-nodes with profile_tasks/timer")
    p.add_argument("--with-profile", action="store_true", help="measure, then profile as --profile does")
    p.add_argument("--profile-nodes", type=int, default=8)
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--skip-tags", default=SKIP_TAGS,
                   help="site.yml stages ours skips (default: every stage after mpi_hello)")
    p.add_argument("--out", help="directory for logs and results (default bench/out/<timestamp>)")
    p.add_argument("--results-dir", help="also write bench-<date>.{json,png,md} there (e.g. docs/results)")
    p.add_argument("--keep-image", action="store_true", help="keep mtrt-node:<cluster> at the end")
    p.add_argument("--step-timeout", type=int, default=900)
    p.add_argument("--settle-s", type=float, default=2.0,
                   help="seconds every timed step waits (after a sync) before its clock starts, so that the "
                        "step before it does not land on it (default 2; --quick: 0)")
    p.add_argument("--cluster", default="mtrt-bench", help="our cluster name (network <cluster>-net)")
    p.add_argument("--subnet", default="192.168.151", help="our /24 (first three octets)")
    # Not "b": docker resolves a name it does not find as a container ID prefix, and b1..b8 are hex,
    # so docker_container name=b2 can match (and recreate or remove) a container whose ID starts with
    # b2 (seen here: it removed node b6). A prefix with a non-hex letter cannot match an ID.
    p.add_argument("--node-prefix", default="bn", help="our node names: <prefix>1..N (keep a non-hex letter)")
    p.add_argument("--replot", metavar="JSON", help="only redraw the PNG and the note of an earlier run's JSON")
    p.add_argument("--no-floor", action="store_true", help="measure ours only (to compare playbook variants)")
    p.add_argument("--project", default=str(ROOT),
                   help="project dir whose site.yml/teardown.yml/ansible.cfg are measured (default: this one; "
                        "a modified copy to measure a speed-up)")
    p.add_argument("--floor-net", default="bfloor-net")
    p.add_argument("--floor-subnet", default="192.168.150")
    p.add_argument("--floor-prefix", default="bfl", help="floor container names (keep a non-hex letter)")
    args = p.parse_args(argv)
    global PROJECT, SETTLE_S
    PROJECT = Path(args.project).resolve()
    if args.quick:
        args.nodes, args.repeats, args.settle_s = "2", 1, 0.0
        if args.profile_nodes == 8:
            args.profile_nodes = 2
    if args.replot:
        src = Path(args.replot)
        data = json.loads(src.read_text())
        plot(data, src.with_suffix(".png"))
        src.with_suffix(".md").write_text(markdown(data))
        print("redrew %s and %s" % (src.with_suffix(".png"), src.with_suffix(".md")))
        return 0
    SETTLE_S = max(0.0, args.settle_s)
    ns = sorted({int(x) for x in args.nodes.split(",")})
    if max(ns) > 200 or args.repeats < 1:
        p.error("N must be at most 200 and repeats at least 1")

    bench = Bench(args)
    date = dt.datetime.now().astimezone()
    data = {"schema": 1, "date": date.isoformat(timespec="seconds"), "machine": machine_info(),
            "config": {"nodes": ns, "repeats": args.repeats, "slots": args.slots, "skip_tags": args.skip_tags,
                       "settle_s": SETTLE_S,
                       "argv": sys.argv[1:] if argv is None else argv, "quick": args.quick,
                       "cluster": args.cluster, "network": "%s-net %s.0/24" % (args.cluster, args.subnet),
                       "floor_network": "%s %s.0/24" % (args.floor_net, args.floor_subnet),
                       "image": bench.lay.image, "project": str(PROJECT),
                       "node_names": "%s1..%s%d" % (args.node_prefix, args.node_prefix, max(ns)),
                       "floor_names": "%s1..%s%d" % (args.floor_prefix, args.floor_prefix, max(ns)),
                       "node_connection": "community.docker.docker (the project default)"},
            "runs": bench.runs, "warnings": bench.warnings}
    log("bench: N=%s, %d repeat(s), %s slots; logs in %s; load %s" % (
        ns, args.repeats, args.slots, bench.out, data["machine"]["loadavg_start"]))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    rc = 0
    try:
        data["image_build_s"] = bench.build_image()
        if not args.profile:
            steps = len(ns) * args.repeats
            done = 0
            for rep in range(1, args.repeats + 1):
                for n in ns:
                    done += 1
                    log("[%d/%d] repeat %d, N=%d (%s first)" % (done, steps, rep, n,
                                                                "floor" if rep % 2 else "ours"))
                    if args.no_floor:
                        bench.ours(n, rep)
                    elif rep % 2:
                        bench.floor(n, rep)
                        bench.ours(n, rep)
                    else:
                        bench.ours(n, rep)
                        bench.floor(n, rep)
        if args.profile or args.with_profile:
            data["profile"] = bench.profile(args.profile_nodes)
    except (BenchError, KeyboardInterrupt) as exc:
        log("ABORTED: %s" % exc)
        data["aborted"] = str(exc)
        rc = 1
    finally:
        log("cleaning up (containers, networks, temp dir%s)" % ("" if args.keep_image else ", node image"))
        bench.cleanup(remove_image=not args.keep_image)

    data["machine"]["loadavg_end"] = loadavg()
    data["summary"], data["ratios"] = summarise(bench.runs, ns)
    data["targets"] = targets(data["summary"])
    stem = "bench-%s" % date.strftime("%Y-%m-%d")
    dests = [bench.out] + ([Path(args.results_dir)] if args.results_dir else [])
    for d in dests:
        d.mkdir(parents=True, exist_ok=True)
        data["files"] = {"json": str(d / (stem + ".json")), "png": str(d / (stem + ".png")),
                         "md": str(d / (stem + ".md"))}
        rel = {k: os.path.relpath(v, ROOT) if v.startswith(str(ROOT)) else v for k, v in data["files"].items()}
        data["files"] = rel
        Path(d / (stem + ".json")).write_text(json.dumps(data, indent=1) + "\n")
        if not args.profile and bench.runs:
            plot(data, d / (stem + ".png"))
        Path(d / (stem + ".md")).write_text(markdown(data))

    if not args.profile:
        print()
        print("Seconds: median (min) over %d repeat(s); ratios of medians" % args.repeats)
        for line in table_lines(data["summary"], data["ratios"], ns):
            print("  " + line)
        print()
        for t in data["targets"]:
            if t["basis"] == "median":
                print("  target %-48s %s (limit %.1f): %s" % (
                    t["target"], "-" if t["value"] is None else "%.2f" % t["value"], t["limit"],
                    {True: "MET", False: "MISSED", None: "n/a (needs N=2, 8, 16)"}[t["met"]]))
    for w in bench.warnings:
        print("\n" + w)
    print("\nwrote " + ", ".join(str(d / (stem + ".json")) for d in dests))
    return rc


if __name__ == "__main__":
    sys.exit(main())
