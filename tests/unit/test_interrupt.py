# SPDX-License-Identifier: Apache-2.0
"""Stopping an interrupted run's launches: pid files -> process trees stopped by pid, never by name.

The launches here are real: ``mtrt_launch.execute`` (the one launcher) runs a shell with two
sleeps of odd durations in its own session and writes its pid file, as every mpirun launch
does; the stopper then runs in a separate Python, as it does on a launcher.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
import types

import pytest

from conftest import PLUGINS, ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from mpi_trt_ansible import interrupt  # noqa: E402

MODULE_UTILS = str(PLUGINS / "module_utils")  # what the run_report callback passes: its own plugin tree

LAUNCHER = textwrap.dedent("""\
    import sys, types
    import ansible.module_utils
    ansible.module_utils.__path__.append(%r)
    from ansible.module_utils import mtrt_launch
    launch = types.SimpleNamespace(argv=["sh", "-c", "sleep %%s & sleep %%s; wait" %% (sys.argv[2], sys.argv[3])], env={})
    mtrt_launch.execute(launch, 600, pid_dir=sys.argv[1], name=sys.argv[4])
    """) % str(PLUGINS / "module_utils")


def _pids(argv):
    """Pids whose command line is exactly ``argv``."""
    want = [a.encode() for a in argv]
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:-1] == want:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def launch(tmp_path):
    """Start one launch (kind ``mpi_hello``) through mtrt_launch; yields (module process, pid dir, sleeps)."""
    pid_dir = tmp_path / "launch"
    sleeps = ("601.25", "602.25")
    module = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(pid_dir), *sleeps, "mpi_hello"])
    assert _wait(lambda: len(list(pid_dir.glob("mpi_hello-%d.pid" % module.pid))) == 1
                 and all(_pids(["sleep", s]) for s in sleeps))
    yield module, pid_dir, sleeps
    for s in sleeps:
        for pid in _pids(["sleep", s]):
            os.kill(pid, signal.SIGKILL)
    module.kill()
    module.wait()


def test_running_launch_is_stopped_by_its_pid_file(launch):
    module, pid_dir, sleeps = launch
    mpirun_pid = int((pid_dir / ("mpi_hello-%d.pid" % module.pid)).read_text().splitlines()[0])
    [entry] = interrupt.stop_launches([interrupt.Target("gpu0", "local", pid_dir=str(pid_dir))], MODULE_UTILS)
    assert entry["error"] is None and entry["via"] == "local" and entry["pid_dir"] == str(pid_dir)
    [stopped] = entry["launches"]
    assert (stopped["kind"], stopped["pid"], stopped["module_pid"]) == ("mpi_hello", mpirun_pid, module.pid)
    assert stopped["was_running"] and stopped["left_running"] == [] and len(stopped["stopped"]) == 3
    assert not any(_pids(["sleep", s]) for s in sleeps)
    assert module.wait(timeout=10) is not None  # the module saw its launch end and returned
    assert list(pid_dir.iterdir()) == []


def test_known_launch_whose_file_is_gone_is_stopped_too(launch):
    """Local mode: the interrupted module removed its pid file; the callback had read it first."""
    module, pid_dir, sleeps = launch
    known = interrupt.snapshot(str(pid_dir))
    os.kill(module.pid, signal.SIGINT)  # what the interrupt does to a local-mode module
    assert _wait(lambda: list(pid_dir.iterdir()) == [])
    assert all(_pids(["sleep", s]) for s in sleeps)  # its launch, a session of its own, runs on
    target = interrupt.Target("gpu0", "local", pid_dir=str(pid_dir), known=known)
    [entry] = interrupt.stop_launches([target], MODULE_UTILS)
    assert [launch["was_running"] for launch in entry["launches"]] == [True]
    assert not any(_pids(["sleep", s]) for s in sleeps)


def test_stale_and_reused_pids_are_left_alone(tmp_path):
    pid_dir = tmp_path / "launch"
    pid_dir.mkdir()
    (pid_dir / "mpi_hello-999999.pid").write_text("999998\n")  # nothing runs there
    # a live process that does not lead its own session: a reused pid, not a launch
    other = subprocess.Popen(["sleep", "603.25"])
    (pid_dir / "mpi_collectives-999997.pid").write_text("%d\n" % other.pid)
    (pid_dir / "notes.txt").write_text("not a pid file")
    try:
        [entry] = interrupt.stop_launches([interrupt.Target("gpu0", "local", pid_dir=str(pid_dir))], MODULE_UTILS)
        by_kind = {launch["kind"]: launch for launch in entry["launches"]}
        assert set(by_kind) == {"mpi_hello", "mpi_collectives"}
        assert by_kind["mpi_hello"]["was_running"] is False
        assert "does not lead its own session" in by_kind["mpi_collectives"]["skipped"]
        assert other.poll() is None  # still running
        assert sorted(p.name for p in pid_dir.iterdir()) == ["notes.txt"]  # stale files go, nothing else
    finally:
        other.kill()
        other.wait()


def test_unreachable_target_is_reported_not_raised(tmp_path):
    entries = interrupt.stop_launches([
        interrupt.Target("n1", "docker", address="mtrt-rep-no-such-container", python="python3"),
        interrupt.Target("n2", None, error="connection winrm: no way to reach the host to stop its launches")],
        MODULE_UTILS, timeout_s=20)
    assert entries[0]["host"] == "n1" and entries[0]["error"]
    assert entries[1] == {"host": "n2", "via": "-", "launches": [],
                          "error": "connection winrm: no way to reach the host to stop its launches"}


@pytest.mark.parametrize("hostvars, via, argv", [
    ({"ansible_connection": "local"}, "local", [sys.executable, "-", "{}"]),
    ({"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3",
      "inventory_hostname": "node1"}, "docker", ["docker", "exec", "-i", "node1", "/usr/bin/python3", "-", "{}"]),
    ({"ansible_connection": "community.docker.docker", "ansible_docker_extra_args": "-H tcp://gpu7:2375",
      "ansible_host": "c7", "ansible_python_interpreter": "{{ discovered }}"}, "docker",
     ["docker", "-H", "tcp://gpu7:2375", "exec", "-i", "c7", "python3", "-", "{}"]),
    ({"ansible_connection": "ssh", "ansible_host": "10.0.0.5", "ansible_user": "mtrt", "ansible_port": 2222,
      "ansible_ssh_private_key_file": "/k/id", "ansible_ssh_common_args": "-o UserKnownHostsFile=/k/kh"}, "ssh",
     ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", "2222", "-l", "mtrt", "-i", "/k/id",
      "-o", "UserKnownHostsFile=/k/kh", "10.0.0.5", "python3 - '{}'"]),
])
def test_targets_follow_the_hosts_connection(hostvars, via, argv):
    target = interrupt.target_for("node1", hostvars)
    assert target.via == via
    assert interrupt.command(target, {}) == argv
    assert interrupt.target_for("w", {"ansible_connection": "winrm"}).error.startswith("connection winrm")


def test_payload_runs_without_ansible(tmp_path):
    """The shipped program needs only the standard library (a node's python3 has no Ansible)."""
    out = subprocess.run([sys.executable, "-I", "-S", "-", json.dumps({"pid_dir": str(tmp_path)})],
                         input=interrupt.payload(MODULE_UTILS), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"pid_dir": str(tmp_path), "launches": []}


def test_payload_is_read_from_the_directory_given(tmp_path):
    """An installed package has no plugin tree beside it: the stopper's sources come from the caller's
    directory, and only from there."""
    for name in ("mtrt_proc", "mtrt_launch_stop"):
        text = (PLUGINS / "module_utils" / (name + ".py")).read_text()
        (tmp_path / (name + ".py")).write_text(text + "\nMARK_%s = 'from %s'\n" % (name.upper(), tmp_path))
    program = interrupt.payload(str(tmp_path))
    assert "MARK_MTRT_PROC" in program and "MARK_MTRT_LAUNCH_STOP" in program
    assert program.count(str(tmp_path)) == 2
    with pytest.raises(FileNotFoundError):
        interrupt.payload(str(tmp_path / "elsewhere"))
    with pytest.raises(TypeError):
        interrupt.payload()  # no default path beside the package


FAKE_LAUNCH_MODULE = '''\
#!/usr/bin/python
"""Launch a process tree through the project's launcher and wait for it (a stand-in for mpirun)."""
import types

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils import mtrt_launch


def main():
    module = AnsibleModule(argument_spec=dict(sleeps=dict(type="list", elements="str", required=True)))
    launch = types.SimpleNamespace(argv=["sh", "-c", "sleep %s & sleep %s; wait" % tuple(module.params["sleeps"])],
                                   env={})
    run = mtrt_launch.execute(launch, 600, name="fake_launch")
    module.exit_json(mtrt_kind="fake_launch", rc=run["rc"])


main()
'''


def test_sigint_to_ansible_playbook_stops_its_local_launch_and_writes_the_report(tmp_path):
    """Local mode end to end: SIGINT to the main process -> the launch is gone, the report says interrupted."""
    sleeps = ("604.25", "605.25")
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "fake_launch.py").write_text(FAKE_LAUNCH_MODULE)
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - name: Stage 60 - MPI hello
          hosts: gpu0
          gather_facts: false
          tasks:
            - name: Say hello from every rank
              fake_launch:
                sleeps: %s
        """ % json.dumps(list(sleeps))))
    (tmp_path / "inventory.yml").write_text(json.dumps({"all": {"hosts": {"gpu0": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    env = {k: v for k, v in os.environ.items() if k != "MTRT_LAUNCH_DIR"}
    env.update(MTRT_REPORT_DIR=str(tmp_path / "reports"), MTRT_RUN_ID="interrupted-run",
               ANSIBLE_LIBRARY="%s:%s" % (tmp_path / "library", PLUGINS / "modules"))
    playbook = subprocess.Popen([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i",
                                 str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait(lambda: all(_pids(["sleep", s]) for s in sleeps), 60), "the launch never started"
        playbook.send_signal(signal.SIGINT)
        sent = time.monotonic()
        output = playbook.communicate(timeout=30)[0]
        took = time.monotonic() - sent
    finally:
        playbook.kill()
        for s in sleeps:
            for pid in _pids(["sleep", s]):
                os.kill(pid, signal.SIGKILL)
    assert playbook.returncode == 99, output  # ansible-playbook's own code for an interrupted run
    assert took < 15, output
    assert not any(_pids(["sleep", s]) for s in sleeps), output
    report = json.loads((tmp_path / "reports" / "latest" / "report.json").read_text())
    assert report["run"]["status"] == "interrupted"
    assert report["stages"][0]["status"] == "interrupted"
    assert report["stages"][0]["tasks"][0]["hosts"] == {"gpu0": "interrupted"}
    info = report["interrupted"]
    assert [(f["host"], f["task"]) for f in info["in_flight"]] == [("gpu0", "Say hello from every rank")]
    [cleanup] = info["cleanup"]
    assert (cleanup["host"], cleanup["via"], cleanup["error"]) == ("gpu0", "local", None)
    assert [(launch["kind"], launch["was_running"], launch["left_running"]) for launch in cleanup["launches"]] == [
        ("fake_launch", True, [])]
    assert not os.path.exists(cleanup["pid_dir"])  # the run's own launch directory is gone with it
    md = (tmp_path / "reports" / "latest" / "report.md").read_text()
    assert md.startswith("# Run report: ") and "- interrupted" in md.splitlines()[0]
    assert "| gpu0 | local | fake_launch (pid %d) | stopped (3 processes) |" % cleanup["launches"][0]["pid"] in md
    assert "MTRT run interrupted in " in output
    assert "  INTERRUPTED during mpi_hello / Say hello from every rank on gpu0" in output


# --- what a launch started on its nodes ------------------------------------------------------------
def _start(argv, env=None):
    full = dict(os.environ, **(env or {}))
    return subprocess.Popen(argv, env=full, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_a_node_stops_what_its_launch_marked_and_nothing_else():
    """On a node: the ranks (the launch id in their environment, even after leaving every tree), the
    daemon (Open MPI's job id on its command line) with what runs under it; an unmarked process stays."""
    from ansible.module_utils import mtrt_launch_stop

    rank = _start(["sleep", "606.25"], env={mtrt_launch_stop.LAUNCH_ID_ENV: "unit-606"})
    daemon = _start(["sh", "-c", "sleep 607.25; :", "orted", "-mca", "ess_base_jobid", "4242"])
    other = _start(["sleep", "608.25"], env={mtrt_launch_stop.LAUNCH_ID_ENV: "another-launch"})
    try:
        assert _wait(lambda: _pids(["sleep", "607.25"]) and _pids(["sleep", "606.25"]))
        [entry] = mtrt_launch_stop.stop_on_nodes(["localhost"], "unit-606", ["4242"])
        assert entry["error"] is None and entry["left_running"] == [], entry
        stopped = {p["pid"] for p in entry["stopped"]}
        assert {rank.pid, daemon.pid} | set(_pids(["sleep", "607.25"])) <= stopped | {None}
        assert rank.wait(5) is not None and daemon.wait(5) is not None
        assert not _pids(["sleep", "606.25"]) and not _pids(["sleep", "607.25"])
        assert other.poll() is None and _pids(["sleep", "608.25"]) == [other.pid]
        assert mtrt_launch_stop.describe_nodes([entry]).startswith("localhost: stopped ")
    finally:
        for proc in (rank, daemon, other):
            proc.kill()
            proc.wait()


def test_daemon_tokens_come_from_the_ssh_clients_command_lines():
    from ansible.module_utils import mtrt_launch_stop

    ssh = _start(["sh", "-c", "sleep 609.25; :", "ssh", "-x", "node2",
                  'PATH=/usr/bin ; export PATH ; /usr/bin/orted -mca ess "env" -mca ess_base_jobid "3812229120" '
                  '-mca ess_base_vpid 1 -mca orte_hnp_uri "3812229120.0;tcp://192.168.126.11:43011"'])
    try:
        assert _wait(lambda: mtrt_launch_stop.daemon_tokens([ssh.pid]) == ["3812229120"])
    finally:
        ssh.kill()
        ssh.wait()
    assert mtrt_launch_stop.describe_nodes([
        {"host": "n2", "error": "no answer in 5.0s", "stopped": [], "left_running": []},
        {"host": "n1", "error": None, "stopped": [], "left_running": []}]) == (
        "n2: not reached (no answer in 5.0s); n1: nothing left")


def test_a_timed_out_launch_stops_what_it_left_on_its_nodes():
    """A rank that left the launch's session and its output (setsid, output to /dev/null) is out of
    run_bounded's reach; the launch's marker still finds it on its node after the timeout."""
    from ansible.module_utils import mtrt_launch

    launch = types.SimpleNamespace(argv=["sh", "-c", "(setsid sleep 611.25 >/dev/null 2>&1 &); sleep 612.25"],
                                   env={"MTRT_LAUNCH_ID": "unit-611"}, launch_id="unit-611",
                                   placement={0: "localhost"}, params={})
    started = time.monotonic()
    run = mtrt_launch.execute(launch, 1.5, pid_dir=None, name="unit")
    assert time.monotonic() - started < 1.5 + 10
    assert run["timed_out"]
    [entry] = run["stopped_on_nodes"]
    assert entry["host"] == "localhost" and entry["error"] is None, entry
    assert any(p["cmd"] == "sleep 611.25" for p in entry["stopped"]), entry
    assert not _pids(["sleep", "611.25"]) and not _pids(["sleep", "612.25"])



def test_servers_this_run_started_are_stopped_and_older_ones_left_alone(tmp_path):
    """Serving keeps its servers running after the play on purpose; an interrupted run stops only those
    it started itself (their pid file younger than the run, by the host's own clock)."""
    from ansible.module_utils import mtrt_launch_stop
    from ansible.module_utils.mtrt_proc import start_detached

    serve = tmp_path / "serve"
    fresh = start_detached(["sleep", "613.25"], str(serve / "s0" / "server.log"), str(serve / "s0" / "mpirun.pid"))
    (serve / "s0" / "hostfile").write_text("localhost slots=1\n")
    old = start_detached(["sleep", "614.25"], str(serve / "s1" / "server.log"), str(serve / "s1" / "mpirun.pid"))
    hour_ago = time.time() - 3600
    os.utime(serve / "s1" / "mpirun.pid", (hour_ago, hour_ago))
    try:
        result = mtrt_launch_stop.stop_launches(str(tmp_path / "none"), serve_dirs=[str(serve)], run_age_s=60)
        [stopped] = result["launches"]
        assert (stopped["kind"], stopped["pid"], stopped["was_running"], stopped["left_running"]) == (
            "serve:s0", fresh, True, [])
        assert stopped["nodes"] == []  # no daemon on other nodes (its tree had no ssh client), nothing marked
        assert not _pids(["sleep", "613.25"]) and _pids(["sleep", "614.25"]) == [old]
        assert not (serve / "s0" / "mpirun.pid").exists() and (serve / "s1" / "mpirun.pid").exists()
        assert mtrt_launch_stop.stop_launches(str(tmp_path / "none"), serve_dirs=[str(serve)])["launches"] == []
    finally:
        for pid in _pids(["sleep", "613.25"]) + _pids(["sleep", "614.25"]):
            os.kill(pid, signal.SIGKILL)


DELEGATED_PLAY = """\
- name: Stage 95 - Triton serving
  hosts: gpu0
  gather_facts: false
  tasks:
    - name: Start a server on its node
      fake_server:
        serve_dir: %s
        sleep: "615.25"
      delegate_to: "{{ server_node }}"
"""

FAKE_SERVER_MODULE = '''\
#!/usr/bin/python
"""Start a detached "server" the way triton_serve_instance does, then wait (a stand-in for its readiness wait)."""
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_proc import start_detached


def main():
    module = AnsibleModule(argument_spec=dict(serve_dir=dict(type="str"), sleep=dict(type="str")))
    d = os.path.join(module.params["serve_dir"], "leader")
    start_detached(["sleep", module.params["sleep"]], os.path.join(d, "server.log"), os.path.join(d, "mpirun.pid"))
    with open(os.path.join(d, "hostfile"), "w") as handle:
        handle.write("localhost slots=1\\n")
    time.sleep(600)


main()
'''


def test_sigint_during_a_delegated_serving_task_stops_the_server_it_started(tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "fake_server.py").write_text(FAKE_SERVER_MODULE)
    serve = tmp_path / "serve"
    (tmp_path / "play.yml").write_text(DELEGATED_PLAY % serve)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (tmp_path / "inventory.yml").write_text(json.dumps({"all": {"hosts": {
        "gpu0": dict(local, server_node="gpu1"), "gpu1": dict(local, cluster_serve_run_dir=str(serve))}}}))
    env = {k: v for k, v in os.environ.items() if k != "MTRT_LAUNCH_DIR"}
    env.update(MTRT_REPORT_DIR=str(tmp_path / "reports"), MTRT_RUN_ID="interrupted-serve",
               ANSIBLE_LIBRARY="%s:%s" % (tmp_path / "library", PLUGINS / "modules"))
    playbook = subprocess.Popen([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i",
                                 str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait(lambda: _pids(["sleep", "615.25"]), 60), "the server never started"
        playbook.send_signal(signal.SIGINT)
        output = playbook.communicate(timeout=30)[0]
    finally:
        playbook.kill()
        for pid in _pids(["sleep", "615.25"]):
            os.kill(pid, signal.SIGKILL)
    assert playbook.returncode == 99, output
    assert not _pids(["sleep", "615.25"]), output
    report = json.loads((tmp_path / "reports" / "latest" / "report.json").read_text())
    [cleanup] = report["interrupted"]["cleanup"]
    assert cleanup["host"] == "gpu1" and cleanup["error"] is None, cleanup  # the delegate, not gpu0
    assert [(launch["kind"], launch["was_running"]) for launch in cleanup["launches"]] == [("serve:leader", True)]
