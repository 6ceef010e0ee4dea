# SPDX-License-Identifier: Apache-2.0
"""The one launcher (module_utils/mtrt_launch.py): hosts from a hostfile or host:slots, the argv it builds
(root, hostfile, np, MCA, exported environment, resolved programs), the split of --tag-output text
captured from Open MPI 4.1.4, the pid file of a running launch, and the failure message naming ranks,
hosts and causes."""

import json
import os
import shutil
import socket

import pytest
from ansible.module_utils import mtrt_launch
from ansible.module_utils.mtrt_launch import Launch, LaunchError, failure_message, hosts_of, split_tagged

from conftest import FIXTURES

MPI = FIXTURES / "mpi"
HOSTFILE = MPI / "hostfile_docker_default"     # node1 slots=2, node2 slots=2, as stage 35 renders it


def params(**kw):
    base = dict(hostfile=None, hosts=None, np=None, python="python3", mpirun="mpirun", timeout_s=120,
                mca={}, env={}, extra_args=[], tag_output=True)
    base.update(kw)
    return base


@pytest.fixture
def as_root(monkeypatch):
    def set_root(value):
        monkeypatch.setattr(mtrt_launch, "running_as_root", lambda: value)
    return set_root


# --------------------------------------------------------------------------- hosts

def test_hosts_from_the_rendered_hostfile():
    assert hosts_of(params(hostfile=str(HOSTFILE))) == [("node1", 2), ("node2", 2)]


def test_hosts_from_name_slots_strings():
    assert hosts_of(params(hosts=["node1:2", "node2", "10.0.0.3:4"])) == [("node1", 2), ("node2", 1),
                                                                         ("10.0.0.3", 4)]


@pytest.mark.parametrize("kw, message", [
    ({"hostfile": "/nonexistent/mtrt/hostfile"}, "cannot read hostfile /nonexistent/mtrt/hostfile: No such file"),
    ({"hosts": ["node1:two"]}, "hosts entry 'node1:two' is not name[:slots]"),
    ({"hosts": [":2"]}, "hosts entry ':2' is not name[:slots]"),
    ({"hosts": []}, "no hosts: give a hostfile with at least one host, or hosts"),
])
def test_bad_hosts_are_refused_by_name(kw, message):
    with pytest.raises(LaunchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        hosts_of(params(**kw))


def test_a_bad_hostfile_line_names_the_file(tmp_path):
    path = tmp_path / "hostfile"
    path.write_text("node1 slots=2\nnode2 cpus=2\n")
    with pytest.raises(LaunchError, match=r"hostfile %s: hostfile line 2: unknown field 'cpus=2'" % path):
        hosts_of(params(hostfile=str(path)))


# --------------------------------------------------------------------------- argv and placement

def test_argv_with_a_hostfile_as_root(as_root):
    as_root(True)
    launch = Launch(params(hostfile=str(HOSTFILE), mca={"oob_tcp_if_include": "192.168.123.0/24",
                                                        "btl_tcp_if_include": "192.168.123.0/24"},
                           env={"NCCL_DEBUG": "WARN", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
                           extra_args=["--bind-to", "none"]),
                    ["/usr/bin/python3", "/etc/mtrt/cluster/mpi_hello.py"])
    assert launch.np == 4 and launch.slots == 4
    assert launch.placement == {0: "node1", 1: "node1", 2: "node2", 3: "node2"}
    assert launch.argv[1:] == [
        "--allow-run-as-root", "--tag-output", "--hostfile", str(HOSTFILE), "-np", "4",
        "--mca", "btl_tcp_if_include", "192.168.123.0/24", "--mca", "oob_tcp_if_include", "192.168.123.0/24",
        "-x", "CUDA_DEVICE_ORDER", "-x", "NCCL_DEBUG", "-x", "MTRT_LAUNCH_ID", "--bind-to", "none",
        "/usr/bin/python3", "/etc/mtrt/cluster/mpi_hello.py"]
    # Every rank carries the launch's id: what it started on the nodes is found by it after a timeout.
    assert launch.env == {"NCCL_DEBUG": "WARN", "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "MTRT_LAUNCH_ID": launch.launch_id}
    assert launch.launch_id.startswith("%d-" % os.getpid())


def test_argv_as_another_user_with_hosts_and_no_tags(as_root):
    as_root(False)
    launch = Launch(params(hosts=["node1:2", "node2:2"], np=3, tag_output=False), ["/bin/true"])
    assert launch.argv[1:] == ["--host", "node1:2,node2:2", "-np", "3", "-x", "MTRT_LAUNCH_ID", "/bin/true"]
    assert launch.placement == {0: "node1", 1: "node1", 2: "node2"}
    assert launch.layout() == "node1:2, node2:2"


def test_programs_are_resolved_on_the_launcher(as_root, monkeypatch):
    """Every rank runs the interpreter the launcher sees, whatever a remote shell's PATH says."""
    as_root(False)
    found = {"mpirun": "/usr/lib/openmpi/bin/mpirun", "python3": "/opt/venv/bin/python3"}
    monkeypatch.setattr(shutil, "which", lambda name: found.get(name))
    launch = Launch(params(hosts=["node1"]), ["python3", "hello.py"])
    assert launch.mpirun == launch.argv[0] == "/usr/lib/openmpi/bin/mpirun"
    assert launch.argv[-2:] == ["/opt/venv/bin/python3", "hello.py"]
    # a path, or a name not found, is used as given
    launch = Launch(params(hosts=["node1"], mpirun="./mpirun"), ["not-installed-x", "a"])
    assert launch.argv[0] == "./mpirun" and launch.argv[-2:] == ["not-installed-x", "a"]


def test_env_argument_wins_over_the_param_and_every_name_is_exported(as_root):
    as_root(False)
    launch = Launch(params(hosts=["node1"], env={"A": "1"}), ["x"], env={"MTRT_RUN": "3", "B": "2"})
    assert launch.env == {"MTRT_RUN": "3", "B": "2", "MTRT_LAUNCH_ID": launch.launch_id}
    assert launch.argv[launch.argv.index("-x"):launch.argv.index("-x") + 6] == [
        "-x", "B", "-x", "MTRT_RUN", "-x", "MTRT_LAUNCH_ID"]  # the caller's names sorted, then the launch's id


def test_localhost_ranks_are_placed_on_the_launchers_own_name(as_root):
    as_root(False)
    launch = Launch(params(hosts=["localhost:2"]), ["x"])
    assert launch.placement == {0: socket.gethostname(), 1: socket.gethostname()}


def test_more_ranks_than_slots_is_refused_with_the_layout(as_root):
    as_root(False)
    with pytest.raises(LaunchError) as err:
        Launch(params(hostfile=str(HOSTFILE), np=5), ["x"])
    assert str(err.value) == ("np=5 ranks requested but the hosts give 4 slots (node1:2, node2:2): "
                              "lower np or raise node_slots")


def test_hosts_of_ranks_names_each_rank_with_its_node(as_root):
    as_root(False)
    launch = Launch(params(hostfile=str(HOSTFILE)), ["x"])
    assert launch.hosts_of_ranks([3, 1, 2]) == "1 on node1, 2-3 on node2"


# --------------------------------------------------------------------------- --tag-output

def test_split_a_tagged_hello_capture():
    plain, per_rank = split_tagged((MPI / "hello_np4_vm_tagged.stdout").read_text())
    assert sorted(per_rank) == [0, 1, 2, 3]
    assert all(len(lines) == 1 and lines[0].startswith("MTRT-HELLO {") and lines[0].endswith("}")
               for lines in per_rank.values())
    assert '"rank": %d,' % 3 in per_rank[3][0]  # rank 3's line ended with a bare tag in the capture
    assert "<stdout>" not in plain and plain.count("\n") == 4


def test_split_interleaved_chunks_of_long_lines():
    """Two ranks printed 9 kB lines at once: Open MPI forwarded them in tagged chunks, rank 0's in the
    middle of rank 1's physical line. Each rank gets its own whole line back."""
    text = (MPI / "long_lines_np2_tagged.stdout").read_text()
    assert text.splitlines()[0].startswith("[1,1]<stdout>:R1:") and "[1,0]<stdout>:R0:" in text.splitlines()[0]
    plain, per_rank = split_tagged(text)
    assert per_rank == {0: ["R0:" + "x" * 9000 + ":end"], 1: ["R1:" + "x" * 9000 + ":end"]}
    assert plain == "R1:%s:end\nR0:%s:end\n" % ("x" * 9000, "x" * 9000)


def test_split_stderr_and_mpiruns_own_lines():
    plain, per_rank = split_tagged((MPI / "long_lines_np2_tagged.stderr").read_text())
    assert per_rank == {0: ["rank 0 warn"], 1: ["rank 1 warn"]}
    text = (MPI / "hello_rank2_exits_tagged.stderr").read_text()
    plain, per_rank = split_tagged(text)
    assert per_rank == {2: ["rank 2: cannot open /TRTDir/missing.bin"]}
    # mpirun's own box is untagged and kept as it was
    assert plain.splitlines()[1:] == text.splitlines()[1:]
    assert split_tagged("") == ("", {})


def test_a_line_whose_newline_never_came_is_kept():
    plain, per_rank = split_tagged("[1,0]<stdout>:done\n[1,1]<stdout>:partial[1,0]<stdout>:x\n")
    assert per_rank == {0: ["done", "x"], 1: ["partial"]}
    assert plain == "done\nx\npartial\n"


# --------------------------------------------------------------------------- running and failing

def _fake_run(monkeypatch, stdout, stderr, rc=0, timed_out=False, seen_pid_files=None, pid_dir=None, stops=None):
    def run_bounded(argv, timeout_s, env=None, on_start=None, on_timeout=None):
        on_start(4242)
        if timed_out and on_timeout is not None:
            on_timeout([])  # mpirun's ssh clients as the launcher saw them before the kill: none here
        if seen_pid_files is not None:
            seen_pid_files.extend((p.name, p.read_text()) for p in pid_dir.iterdir())
        return {"rc": None if timed_out else rc, "stdout": stdout, "stderr": stderr, "duration_s": 1.5,
                "timed_out": timed_out, "pid": 4242, "left_running": []}
    monkeypatch.setattr(mtrt_launch, "run_bounded", run_bounded)

    def stop_on_nodes(hosts, launch_id, tokens, ssh_args=None):
        if stops is not None:
            stops.append((hosts, launch_id))
        return [{"host": h, "stopped": [], "left_running": [], "error": None, "seconds": 0.1} for h in hosts]
    monkeypatch.setattr(mtrt_launch, "stop_on_nodes", stop_on_nodes)


def test_a_launch_has_a_pid_file_only_while_it_runs(monkeypatch, tmp_path, as_root):
    as_root(False)
    launch = Launch(params(hostfile=str(HOSTFILE)), ["x"])
    seen = []
    _fake_run(monkeypatch, (MPI / "hello_np4_vm_tagged.stdout").read_text(), "", seen_pid_files=seen,
              pid_dir=tmp_path)
    run = mtrt_launch.execute(launch, 10, pid_dir=str(tmp_path), name="mpi_hello")
    [(name, text)] = seen
    pid_line, about = text.splitlines()
    assert (name, pid_line) == ("mpi_hello-%d.pid" % os.getpid(), "4242")
    assert json.loads(about) == {"launch_id": launch.launch_id, "hosts": ["node1", "node2"], "ssh_args": []}
    assert list(tmp_path.iterdir()) == []
    assert sorted(run["per_rank"]) == [0, 1, 2, 3] and "<stdout>" not in run["stdout"]


def test_failure_of_a_rank_that_exited_names_it_and_the_silent_ranks(monkeypatch, tmp_path, as_root):
    as_root(False)
    launch = Launch(params(hostfile=str(HOSTFILE)), ["x"])
    _fake_run(monkeypatch, "", (MPI / "hello_rank2_exits_tagged.stderr").read_text(), rc=3)
    run = mtrt_launch.execute(launch, 10, pid_dir=str(tmp_path))
    result = mtrt_launch.base_result("mpi_hello", launch)
    mtrt_launch.record(result, launch, run)
    assert result["ranks_seen"] == [2] and result["ranks_silent"] == [0, 1, 3]
    assert result["rank_tails"] == {"2": ["rank 2: cannot open /TRTDir/missing.bin"]}
    msg = failure_message("mpi_hello", launch, result, ["missing rank(s) 0-1, 3 of 4"])
    assert msg.startswith("missing rank(s) 0-1, 3 of 4. mpi_hello: np=4 on node1:2, node2:2, "
                          "mpirun exited with 3. rank(s) 0-1 on node1, 3 on node2 never printed anything. ")
    assert "output tail: " in msg and "exited with non-zero status" in msg


def test_failure_of_a_timed_out_launch_names_who_answered_and_their_last_line(monkeypatch, tmp_path, as_root):
    as_root(False)
    launch = Launch(params(hostfile=str(HOSTFILE), timeout_s=5), ["x"])
    first_two = "".join((MPI / "hello_np4_vm_tagged.stdout").read_text().splitlines(True)[:2])
    stops = []
    _fake_run(monkeypatch, first_two, "", timed_out=True, stops=stops)
    run = mtrt_launch.execute(launch, 5, pid_dir=str(tmp_path))
    # What the launch started is stopped on every node of its placement, found by its id.
    assert stops == [(["node1", "node2"], launch.launch_id)] and len(run["stopped_on_nodes"]) == 2
    result = mtrt_launch.base_result("mpi_hello", launch)
    mtrt_launch.record(result, launch, run)
    msg = failure_message("mpi_hello", launch, result, [], bound_name="mpi_hello_timeout_s")
    assert msg.startswith("mpi_hello timed out after 5s and every process it started was killed; raise "
                          "mpi_hello_timeout_s if the work needs longer (mpi_hello: np=4 on node1:2, node2:2). "
                          "on its nodes afterwards: node1: nothing left; node2: nothing left. rank(s) 2-3 on node2 never "
                          "printed anything. rank(s) that had answered: 0@node1, "
                          "1@node1. rank 0 (node1) last printed 'MTRT-HELLO {")
    assert result["timed_out"] is True and result["rc"] is None
