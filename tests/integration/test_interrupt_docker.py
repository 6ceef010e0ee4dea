# SPDX-License-Identifier: Apache-2.0
"""Interrupting a run on the real docker engine: SIGINT to ansible-playbook leaves nothing running and
still writes a report marked interrupted; the next run converges.

Runs only with ``MTRT_INTEGRATION=1``. The cluster (``mtrt-rep``: mtrt-rep-n1/mtrt-rep-n2 on
192.168.150.0/24, inventory ``inventories/interrupt``) is this module's own; its state and
reports live under pytest's tmp dir, and its containers and network are removed by exact name
at the end.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
INVENTORY = ROOT / "tests" / "integration" / "inventories" / "interrupt"
NODES, NETWORK = ("mtrt-rep-n1", "mtrt-rep-n2"), "mtrt-rep-net"
LAUNCHER = NODES[0]
# Every rank runs `sleep 600` (mpi_hello_python=sleep, mpi_hello_script=600) under a bound far away.
HANG = ["-e", "mpi_hello_python=sleep", "-e", "mpi_hello_script=600", "-e", "cluster_mpi_timeout_s=300"]
# The processes of a node's /proc as [pid, [argv...]], read with the node's own Python.
PS = ("import json, os\nout = []\nfor p in os.listdir('/proc'):\n    try:\n"
      "        out.append([int(p), open('/proc/%s/cmdline' % p, 'rb').read().decode().split(chr(0))[:-1]])\n"
      "    except (ValueError, OSError):\n        pass\nprint(json.dumps(out))\n")

pytestmark = pytest.mark.skipif(os.environ.get("MTRT_INTEGRATION") != "1",
                                reason="needs docker; set MTRT_INTEGRATION=1")


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, timeout=120)


def processes(node):
    """``[(pid, argv)]`` running in ``node``."""
    return [(pid, argv) for pid, argv in json.loads(docker("exec", node, "python3", "-c", PS).stdout) if argv]


def project_processes(node):
    """What a hello launch starts in ``node``: mpirun, Open MPI's daemon, the ranks' ``sleep 600``."""
    return [(pid, argv) for pid, argv in processes(node)
            if os.path.basename(argv[0]) in ("mpirun", "orterun", "orted", "prted", "prterun")
            or (os.path.basename(argv[0]) == "sleep" and argv[1:2] == ["600"])]


class Playbook:
    """``ansible-playbook`` in the background, its output collected line by line."""

    def __init__(self, env, *args):
        self.lines, self.seen = [], threading.Condition()
        self.proc = subprocess.Popen([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), *args], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.seen:
                self.lines.append(line)
                self.seen.notify_all()

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        with self.seen:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self.seen.wait(min(left, 1.0))
        return True

    def interrupt(self, timeout=30):
        """SIGINT to the main process; returns the seconds it took to exit."""
        self.proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        self.proc.wait(timeout=timeout)
        self.reader.join(10)
        return time.monotonic() - sent

    @property
    def output(self):
        return "".join(self.lines)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("rep-state")
    reports = tmp_path_factory.mktemp("rep-reports")
    env = {k: v for k, v in os.environ.items() if k != "MTRT_LAUNCH_DIR"}
    env.update(MTRT_STATE_HOME=str(state), MTRT_REPORT_DIR=str(reports),
               PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))

    def play(*args, playbook="site.yml"):
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), playbook, *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        return proc, latest(reports)

    proc, _ = play()
    try:
        assert proc.returncode == 0, proc.stdout[-4000:]
        yield env, play, reports
    finally:
        play(playbook="playbooks/teardown.yml")
        for node in NODES:
            docker("rm", "-f", node, check=False)
        docker("network", "rm", NETWORK, check=False)


def latest(reports):
    path = reports / "latest" / "report.json"
    return json.loads(path.read_text()) if path.exists() else None


def hello_ranks(report):
    for hosts in (report or {}).get("results", {}).values():
        for entries in hosts.values():
            for entry in entries:
                if entry["kind"] == "mpi_hello":
                    return entry["result"]["ranks_per_host"]
    return None


def test_sigint_during_a_hung_hello_stops_every_rank_and_reports_interrupted(cluster):
    env, play, reports = cluster
    run = Playbook(env, "site.yml", "--tags", "mpi_hello", *HANG)
    try:
        deadline = time.monotonic() + 300
        while not [p for p in project_processes(NODES[1]) if p[1][0].endswith("sleep")]:
            assert run.proc.poll() is None and time.monotonic() < deadline, run.output[-4000:]
            time.sleep(0.5)
        assert [p for p in project_processes(LAUNCHER) if os.path.basename(p[1][0]) == "mpirun"], "no mpirun"
        took = run.interrupt()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert took < 15, "ansible-playbook took %.1f s to exit after SIGINT:\n%s" % (took, run.output[-3000:])
    assert run.proc.returncode == 99, run.output[-3000:]
    for node in NODES:  # nothing of the launch is left, on the launcher or where its ranks ran
        assert project_processes(node) == [], node
    assert docker("exec", LAUNCHER, "sh", "-c", "ls -A /tmp/mtrt-launch 2>/dev/null").stdout == ""
    report = latest(reports)
    assert report["run"]["status"] == "interrupted"
    assert [f["host"] for f in report["interrupted"]["in_flight"]] == [LAUNCHER]
    [cleanup] = report["interrupted"]["cleanup"]
    assert (cleanup["host"], cleanup["via"], cleanup["error"]) == (LAUNCHER, "docker exec %s" % LAUNCHER, None)
    assert [(launch["kind"], launch["was_running"], launch["left_running"]) for launch in cleanup["launches"]] == [
        ("mpi_hello", True, [])]
    # what the launch started on its nodes was looked for there too (by its markers) and nothing is left
    [launch] = cleanup["launches"]
    assert [(n["host"], n["error"], n["left_running"]) for n in launch["nodes"]] == [
        (NODES[0], None, []), (NODES[1], None, [])], launch["nodes"]
    hello = next(s for s in report["stages"] if s["key"] == "mpi_hello")
    assert hello["status"] == "interrupted"
    md = (reports / "latest" / "report.md").read_text()
    assert md.splitlines()[0].endswith("- interrupted") and "## Interrupted" in md
    assert "MTRT run interrupted in " in run.output


def test_the_next_run_after_an_interrupt_converges(cluster):
    _env, play, _reports = cluster
    proc, report = play()
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["run"]["status"] == "successful"
    assert hello_ranks(report) == {NODES[0]: 2, NODES[1]: 2}


def test_interrupt_while_node_containers_are_made_and_a_rerun_heals(cluster):
    """SIGINT once stage 40 starts (a node container missing): whatever the interrupt left
    (removed, created, not started), the next run brings every container up and MPI answers."""
    env, play, reports = cluster
    docker("rm", "-f", NODES[1])
    run = Playbook(env, "site.yml")
    try:
        assert run.wait_for("Stage 40 - ", 300), run.output[-4000:]
        took = run.interrupt()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert took < 15 and run.proc.returncode == 99, run.output[-3000:]
    assert latest(reports)["run"]["status"] == "interrupted"
    proc, report = play()
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert hello_ranks(report) == {NODES[0]: 2, NODES[1]: 2}
    for node in NODES:
        assert docker("inspect", "-f", "{{.State.Running}}", node).stdout.strip() == "true"
