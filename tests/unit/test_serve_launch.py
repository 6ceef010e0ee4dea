# SPDX-License-Identifier: Apache-2.0
"""A server's command line, hostfile, launch record, port ownership and failure reading, checked
against the facts (docs/serving.md) and on logs captured from real runs."""

import os
import socket
import sys
import time
from unittest import mock

import pytest
from ansible.module_utils import mtrt_launch
from ansible.module_utils import mtrt_serve_launch as launch
from conftest import FIXTURES

from mpi_trt_ansible import serving

NODES = [{"name": "n1", "ip": "10.9.0.11", "slots": 2, "gpus": [], "mpi_host": "n1"},
         {"name": "n2", "ip": "10.9.0.12", "slots": 2, "gpus": [], "mpi_host": "n2"}]
SETTINGS = {"cluster_name": "c1", "cluster_serve_enabled": True, "cluster_trtllm_tp_size": 2,
            "cluster_trtllm_pp_size": 1, "cluster_serve_repo_root": "/TRTDir/triton/c1"}
LOGS = FIXTURES / "serve"


def plan(**over):
    return serving.serve_plan(dict(SETTINGS, **over), NODES)


def leader(slots=("n1:0", "n2:0")):
    return plan(cluster_serve_instances=[{"name": "a", "slots": list(slots)}])["servers"][0]


def test_rank_0_opens_its_ports_and_loads_everything():
    argv = launch.rank_argv(leader(), 0, "/opt/tritonserver/bin/tritonserver")
    assert argv[:3] == ["/opt/tritonserver/bin/tritonserver", "--model-repository=/TRTDir/triton/c1/a",
                        "--id=mtrt-c1-a-r0"]
    assert "--http-port=8000" in argv and "--grpc-port=8001" in argv and "--metrics-port=8002" in argv
    assert not any(a.startswith(("--allow-", "--model-control-mode", "--load-model")) for a in argv)
    assert "--disable-auto-complete-config" in argv


def test_ranks_above_0_open_no_port_and_load_only_the_engine_model():
    argv = launch.rank_argv(leader(), 1, "tritonserver", extra_args=["--log-info=false"], log_verbose=2)
    for flag in ("--allow-http=false", "--allow-grpc=false", "--allow-metrics=false",
                 "--model-control-mode=explicit", "--load-model=tensorrt_llm", "--disable-auto-complete-config"):
        assert flag in argv
    assert not any(a.startswith(("--http-port", "--grpc-port", "--metrics-port")) for a in argv)
    assert argv[-2:] == ["--log-verbose=2", "--log-info=false"]


def test_every_rank_of_every_server_has_its_own_shm_prefix():
    servers = plan(cluster_serve_instances=2)["servers"]
    prefixes = [a.split("=", 2)[2] for s in servers for r in (0, 1)
                for a in launch.rank_argv(s, r, "t") if a.startswith("--backend-config=python,shm-region-prefix-name=")]
    assert len(prefixes) == 4 and len(set(prefixes)) == 4
    assert all(p.startswith(s["shm_prefix"]) for s, p in zip([servers[0]] * 2 + [servers[1]] * 2, prefixes))


def launch_of(server, as_root=False, **params):
    """The server's launch as the module builds it (its options through the one launcher)."""
    params = dict({"mpirun": "/usr/bin/mpirun", "mca": {}, "env": {}, "extra_args": [], "tag_output": True}, **params)
    with mock.patch.object(mtrt_launch, "running_as_root", return_value=as_root):
        return launch.server_launch(server, params, "/run/a/hostfile", "/opt/tritonserver/bin/tritonserver")


def test_one_mpirun_per_server_one_context_per_rank_pinned_to_its_host():
    server = leader(("n2:1", "n1:0"))
    built = launch_of(server, as_root=True, mca={"btl_tcp_if_include": "10.9.0.0/24"}, env={"NCCL_IB_DISABLE": "1"})
    argv = built.argv
    assert argv[:5] == ["/usr/bin/mpirun", "--allow-run-as-root", "--tag-output", "--hostfile", "/run/a/hostfile"]
    assert argv[5:10] == ["--mca", "btl_tcp_if_include", "10.9.0.0/24", "-x", "NCCL_IB_DISABLE"]
    contexts = " ".join(argv[10:]).split(" : ")
    assert len(contexts) == 2
    assert contexts[0].startswith("-n 1 --host n2:1 /opt/tritonserver/bin/tritonserver ")
    assert contexts[1].startswith("-n 1 --host n1:1 /opt/tritonserver/bin/tritonserver ")
    assert "--http-port=8000" in contexts[0] and "--allow-http=false" in contexts[1]
    assert "--allow-run-as-root" not in launch_of(server).argv
    # The launcher's view of it: two ranks, each on the node the plan put it, every rank's env exported.
    assert (built.np, built.placement, built.env) == (2, {0: "n2", 1: "n1"}, {"NCCL_IB_DISABLE": "1"})
    assert built.hosts_of_ranks([1]) == "1 on n1"


def test_extra_mpirun_args_come_before_the_contexts_and_tags_can_be_left_out():
    built = launch_of(leader(), extra_args=["--report-bindings"], tag_output=False)
    assert "--tag-output" not in built.argv
    assert built.argv.index("--report-bindings") < built.argv.index("-n")


def test_the_hostfile_gives_each_host_the_slots_its_ranks_take():
    assert launch_of(leader(("n1:0", "n2:0"))).hostfile_text == "n1 slots=1\nn2 slots=1\n"
    both = launch_of(leader(("n1:0", "n1:1")))
    assert both.hostfile_text == "n1 slots=2\n"
    # A bare --host would mean one slot and the second rank would find the node "already filled".
    assert both.argv.count("n1:2") == 2


def test_an_orchestrator_that_spawns_gets_slots_for_its_workers_and_its_switches():
    host = [{"name": "g", "ip": "10.9.0.11", "slots": 4, "gpus": [0, 1, 2, 3], "mpi_host": "g"}]
    server = serving.serve_plan(dict(SETTINGS, cluster_serve_mode="orchestrator", cluster_serve_instances=2),
                                host)["servers"][0]
    built = launch_of(server, env={"X": 1})
    assert built.hostfile_text == "g slots=5\n"
    assert built.env == {"TRTLLM_ORCHESTRATOR": "1", "TRTLLM_ORCHESTRATOR_SPAWN_PROCESSES": "1", "X": "1"}
    argv = built.argv
    assert " ".join(argv).count(" : ") == 0 and "g:5" in argv
    assert ["-x", "TRTLLM_ORCHESTRATOR"] == argv[argv.index("-x"):argv.index("-x") + 2]


def test_the_fingerprint_changes_with_anything_a_server_was_started_with():
    base = launch.fingerprint(["a"], {"E": "1"}, "h slots=1\n", "c1")
    assert base == launch.fingerprint(["a"], {"E": "1"}, "h slots=1\n", "c1")
    for other in (launch.fingerprint(["b"], {"E": "1"}, "h slots=1\n", "c1"),
                  launch.fingerprint(["a"], {"E": "2"}, "h slots=1\n", "c1"),
                  launch.fingerprint(["a"], {"E": "1"}, "h slots=2\n", "c1"),
                  launch.fingerprint(["a"], {"E": "1"}, "h slots=1\n", "c2")):
        assert other != base


# --- /proc ------------------------------------------------------------------------------------
def fake_proc(tmp_path, procs, tcp=""):
    """A /proc with ``procs`` {pid: (cmdline list, state, ppid, starttime, [socket inodes])}."""
    root = tmp_path / "proc"
    (root / "net").mkdir(parents=True)
    (root / "net" / "tcp").write_text(tcp)
    (root / "net" / "tcp6").write_text("  sl  local_address rem_address   st\n")
    for pid, (cmd, state, ppid, start, inodes) in procs.items():
        d = root / str(pid)
        (d / "fd").mkdir(parents=True)
        (d / "cmdline").write_bytes(b"\0".join(c.encode() for c in cmd) + b"\0")
        fields = [state, str(ppid), str(pid), str(pid)] + ["0"] * 15 + [str(start)] + ["0"] * 20
        (d / "stat").write_text("%d (%s) %s\n" % (pid, os.path.basename(cmd[0])[:15], " ".join(fields)))
        for n, inode in enumerate(inodes):
            os.symlink("socket:[%d]" % inode, d / "fd" / str(n + 3))
    return str(root)


TCP = (LOGS / "proc_net_tcp.txt").read_text()


def test_listening_sockets_are_read_from_proc_net_tcp():
    found = launch.parse_proc_net_tcp(TCP)
    assert len(found) == 12  # the LISTEN rows only; established and time-wait rows are left out
    assert {(22, 715364), (8000, 723990), (8001, 722938), (8002, 723997), (8100, 746513)} <= set(found)


def test_a_port_held_by_this_server_is_not_a_conflict_one_held_by_another_process_is(tmp_path):
    server = leader()
    proc = fake_proc(tmp_path, {
        10: (["/usr/sbin/sshd", "-D"], "S", 1, 100, [715364]),
        20: (["/opt/tritonserver/bin/tritonserver", "--backend-config=python,shm-region-prefix-name=%s0-"
              % server["shm_prefix"]], "S", 1, 200, [723990, 722938, 723997]),
        30: (["python3", "-m", "http.server", "8100"], "S", 1, 300, [746513]),
    }, TCP)
    ports = launch.listening(proc)
    assert (ports[22], ports[8000], ports[8001], ports[8002], ports[8100]) == ([10], [20], [20], [20], [30])
    assert launch.port_conflicts(server, ports, proc) == []
    moved = dict(server, http_port=8100)
    (conflict,) = launch.port_conflicts(moved, ports, proc)
    assert conflict == {"port": 8100, "key": "http_port", "pids": [30], "cmd": "python3 -m http.server 8100"}
    # A server that is stopped first (dropped from the plan) does not count either.
    other = dict(server, shm_prefix="mtrt-x-00000000-r")
    assert launch.port_conflicts(other, ports, proc) != []
    assert launch.port_conflicts(other, ports, proc, ours=[server["shm_prefix"]]) == []


def test_a_launch_record_names_its_process_by_pid_start_time_and_marker(tmp_path):
    proc = fake_proc(tmp_path, {
        40: (["/usr/bin/mpirun", "--x", "shm-region-prefix-name=mtrt-a-1-r0-"], "S", 1, 555, []),
        41: (["/usr/bin/mpirun", "other"], "Z", 1, 556, []),
    })
    good = {"pid": 40, "start_ticks": 555, "marker": "mtrt-a-1-r"}
    assert launch.record_alive(good, proc)
    assert not launch.record_alive(dict(good, start_ticks=554), proc)  # the pid was reused
    assert not launch.record_alive(dict(good, marker="mtrt-b-"), proc)
    assert not launch.record_alive({"pid": 41, "start_ticks": 556, "marker": ""}, proc)  # a zombie
    assert not launch.record_alive({"pid": None}, proc) and not launch.record_alive(None, proc)
    assert launch.marked("mtrt-a-1-r", proc) == [40]


def test_a_fresh_process_whose_arguments_are_not_readable_yet_is_alive(tmp_path):
    """/proc shows a started process before exec has set its arguments (an empty cmdline): with the
    recorded pid and start time it is the server just started, not a dead one."""
    proc = fake_proc(tmp_path, {50: (["x"], "R", 1, 777, [])})
    (tmp_path / "proc" / "50" / "cmdline").write_bytes(b"")
    assert launch.record_alive({"pid": 50, "start_ticks": 777, "marker": "mtrt-a-1-r"}, proc)
    assert not launch.record_alive({"pid": 50, "start_ticks": 776, "marker": "mtrt-a-1-r"}, proc)
    assert not launch.record_alive({"pid": 50, "start_ticks": None, "marker": "mtrt-a-1-r"}, proc)


def test_a_detached_start_returns_once_its_command_line_is_readable(tmp_path):
    server = leader()
    params = {"mpirun": "/bin/sh", "mca": {}, "env": {"MTRT_X": "1"}, "extra_args": [], "tag_output": False}
    built = mtrt_launch.ContextLaunch(params, [("n1", ["true"])], str(tmp_path / "run" / "hostfile"))
    # A stand-in for mpirun: prints as a rank and as mpirun does, then runs on (its marker in its argv).
    built.argv = [sys.executable, "-c", "import sys, time; print('[1,0]<stdout>:hi from rank 0'); "
                  "print('mpirun: said', flush=True); time.sleep(30)", server["shm_prefix"]]
    pid, ticks = mtrt_launch.start_detached(built, str(tmp_path / "log"), str(tmp_path / "pid"))
    try:
        assert ticks == launch.proc_start_ticks(pid)
        assert launch.record_alive({"pid": pid, "start_ticks": ticks, "marker": server["shm_prefix"]})
        assert (tmp_path / "run" / "hostfile").read_text() == "n1 slots=1\n"
        assert int((tmp_path / "pid").read_text()) == pid
        assert mtrt_launch.exit_status(pid) is None  # still running
        deadline = time.monotonic() + 30
        while "\nmpirun: said" not in (tmp_path / "log").read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.kill(pid, 9)
    deadline = time.monotonic() + 10
    rc = None
    while rc is None and time.monotonic() < deadline:
        rc = mtrt_launch.exit_status(pid)
        time.sleep(0.02)
    assert rc == -9
    result = mtrt_launch.detached_result("k", built)
    mtrt_launch.record_detached(result, built, (tmp_path / "log").read_text(), rc=rc, duration_s=1.23456)
    assert (result["rc"], result["duration_s"], result["detached"]) == (-9, 1.235, True)
    assert result["ranks_seen"] == [0] and result["rank_tails"] == {"0": ["hi from rank 0"]}
    assert result["stderr_tail"] == "mpirun: said" and "hi from rank 0" in result["stdout_tail"]


def test_a_context_launch_needs_a_rank_and_a_host_for_each():
    params = {"mpirun": "mpirun"}
    with pytest.raises(mtrt_launch.LaunchError, match="no ranks"):
        mtrt_launch.ContextLaunch(params, [], "h")
    with pytest.raises(mtrt_launch.LaunchError, match="has no host"):
        mtrt_launch.ContextLaunch(params, [("", ["t"])], "h")


def test_only_the_last_start_of_a_detached_log_is_recorded():
    built = launch_of(leader())
    text = ("[1,1]<stderr>:E1201 old run: failed to load 'tensorrt_llm' version 1: old\n"
            + mtrt_launch.start_line(built.argv) + "[1,0]<stderr>:I1201 fine\n")
    result = mtrt_launch.record_detached(mtrt_launch.detached_result("k", built), built, text)
    assert result["ranks_seen"] == [0] and result["ranks_silent"] == [1] and result["explained"] == []


def test_this_process_has_a_start_time_and_a_command_line():
    assert launch.proc_start_ticks(os.getpid()) > 0
    assert "python" in launch.proc_cmdline(os.getpid())
    assert launch.proc_start_ticks(2 ** 22 + 7) is None


# --- logs (captured from real runs on this project's node containers) -------------------------------
def test_a_rank_that_failed_to_load_is_named_with_its_error_lines():
    server = plan(cluster_serve_mode="orchestrator", cluster_serve_instances=1)["servers"][0]
    why = launch.failing_rank((LOGS / "orchestrator_spawn_refused.log").read_text(), server)
    assert why["rank"] == 0 and why["host"] == "n1" and why["reason"] == "exited with code 1"
    assert any("MPI_ERR_SPAWN: could not spawn processes" in line for line in why["lines"])


def test_a_rank_killed_by_a_signal_is_named_from_mpiruns_notice():
    why = launch.failing_rank((LOGS / "rank_killed.log").read_text(), leader(("n1:0", "n2:0")))
    assert (why["rank"], why["host"], why["reason"]) == (1, "n2", "exited on signal 9 (Killed)")


def test_a_rank_that_left_without_finalizing_mpi_is_named_from_mpiruns_notice():
    # SYNTHESISED from Open MPI's [proc-exit-no-sync] help text (the line breaks after "on").
    log = ("[1,1]<stderr>:E1201 model_lifecycle.cc:642] \"failed to load 'tensorrt_llm' version 1: Internal: "
           "TritonModelException: TEST STAND-IN: rank 1 of instance a was told to fail\"\n"
           "--------------------------------------------------------------------------\n"
           "mpirun has exited due to process rank 1 with PID 0 on\n"
           "node n2 exiting improperly. There are three reasons this could occur:\n")
    why = launch.failing_rank(log, leader(("n1:0", "n2:0")))
    assert (why["rank"], why["host"], why["reason"]) == (1, "n2", "exited without finalizing MPI")
    assert "TEST STAND-IN: rank 1 of instance a was told to fail" in why["lines"][-1]


def test_only_the_last_start_of_a_log_is_read():
    text = (LOGS / "rank_killed.log").read_text() + mtrt_launch.start_line(["mpirun", "again"]) + "[1,0]<stderr>:fine\n"
    assert mtrt_launch.last_start(text).startswith(mtrt_launch.START_MARK)
    assert launch.failing_rank(text, leader())["rank"] is None


def test_tail_of_a_missing_file_is_empty(tmp_path):
    assert launch.tail(str(tmp_path / "none")) == ""
    path = tmp_path / "log"
    path.write_text("".join("line %d\n" % i for i in range(100)))
    assert launch.tail(str(path), 3) == "line 97\nline 98\nline 99"


def test_a_port_really_listened_on_is_found_with_its_owner():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        port = sock.getsockname()[1]
        ports = launch.listening()
        if port not in ports:
            pytest.skip("this system's /proc/net/tcp is not readable")
        assert os.getpid() in ports[port]
    finally:
        sock.close()
