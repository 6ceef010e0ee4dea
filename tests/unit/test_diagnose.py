# SPDX-License-Identifier: Apache-2.0
"""Failure attribution: silent ranks -> their node -> its state (docker, ssh) -> its last lines."""

from mpi_trt_ansible import diagnose

NODES = [{"name": "node1", "ip": "10.0.0.1", "mpi_host": "node1", "slots": 2, "gpus": []},
         {"name": "node2", "ip": "10.0.0.2", "mpi_host": "node2", "slots": 2, "gpus": []}]
RESULT = {"expected_placement": {"0": "node1", "1": "node1", "2": "node2", "3": "node2"},
          "ranks_silent": [2, 3], "rank_tails": {"0": ["MTRT-UP rank 0 of 4 on node1"]}, "timed_out": True}


def running():
    return {"State": {"Status": "running", "Running": True, "ExitCode": 0, "OOMKilled": False}}


def test_silent_ranks_map_to_their_nodes_and_all_ranks_on_a_timeout():
    assert diagnose.silent_by_node(RESULT, NODES) == {"node2": [2, 3]}
    assert diagnose.ranks_by_node(RESULT, NODES, silent_only=False) == {"node1": [0, 1], "node2": [2, 3]}
    local = [{"name": "gpu0", "mpi_host": "localhost", "ip": None}]
    assert diagnose.silent_by_node({"expected_placement": {"0": "vm"}, "ranks_silent": [0]}, local) == {"gpu0": [0]}


def test_a_paused_node_is_named_with_its_fix_and_the_healthy_one_is_left_out():
    inspects = {"node1": running(), "node2": {"State": {"Status": "paused", "Paused": True, "ExitCode": 0}}}
    table = diagnose.rows(RESULT, NODES, {"node1": [0, 1], "node2": [2, 3]}, inspects,
                          {"node2": ["Accepted publickey for root"]})
    assert [(r["host"], r["ranks"], r["state"]) for r in table] == [("node2", [2, 3], "paused")]
    assert table[0]["log_tail"] == ["Accepted publickey for root"]
    text = diagnose.sentences(table)[0]
    assert text.startswith("rank(s) 2-3 on node2: node2 is paused (docker pause)") and "docker unpause node2" in text


def test_exited_oom_killed_and_removed_nodes():
    cases = {
        "exited": ({"State": {"Status": "exited", "ExitCode": 137, "OOMKilled": False}}, "exited with code 137",
                   "re-run site.yml"),
        "oom": ({"State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True}}, "was OOM-killed by the kernel",
                "more memory"),
        "missing": (None, "has no container (removed)", "re-run site.yml"),
    }
    for name, (inspect, words, fix) in cases.items():
        table = diagnose.rows(RESULT, NODES, {"node2": [2, 3]}, {"node2": inspect})
        assert words in table[0]["words"] and fix in diagnose.sentences(table)[0], name


def test_ssh_names_the_broken_hop_where_docker_says_the_node_runs():
    ssh = {"node2": {"ok": False, "hops": ["node2"], "cause": "sshd refused the connection on node2:22",
                     "fix": "restart sshd on node2 (re-run site.yml)"}}
    table = diagnose.rows(RESULT, NODES, {"node2": [2, 3]}, {"node2": running()}, None, ssh)
    assert table[0]["ssh"] == "ssh fails: sshd refused the connection on node2:22"
    assert diagnose.sentences(table)[0].endswith("(restart sshd on node2 (re-run site.yml))")


def test_without_docker_the_ssh_check_gives_the_state():
    ssh = {"node2": {"ok": False, "hops": ["node2"], "cause": "no route", "fix": "check the network"}}
    table = diagnose.rows(RESULT, NODES, {"node2": [2, 3]}, None, None, ssh)
    assert table[0]["state"] == "unreachable"


def test_the_launch_action_adds_the_diagnosis_only_to_a_failed_launch(monkeypatch):
    from types import SimpleNamespace

    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template
    from mpi_trt_ansible import launch_action

    calls, ports = [], []

    def execute(self, module_name=None, module_args=None, task_vars=None):
        calls.append(module_name or "mpi_hello")
        if module_name == "ssh_mesh_check":
            ports.append(module_args["port"])
            return {"direct": [{"ok": True, "hops": [p]} for p in module_args["peers"]]}
        return dict(self._outcome)

    monkeypatch.setattr(launch_action.LaunchAction, "_execute_module", execute)
    monkeypatch.setattr(launch_action.LaunchAction, "_docker_states", staticmethod(
        lambda nodes, since=None: (dict(states), {}, {})))
    states = {"node1": running(), "node2": {"State": {"Status": "exited", "ExitCode": 1}}}
    # cluster_ssh_port as the play renders its default (2233 in docker_per_host): the ssh check uses it.
    task_vars = {"cluster_nodes": NODES, "cluster_mode": "docker",
                 "cluster_ssh_port": trust_as_template("{{ 2233 if cluster_mode == 'docker_per_host' else 22 }}")}

    def run(outcome):
        task = SimpleNamespace(args={}, async_val=0, check_mode=False, diff=False, action="mpi_hello")
        connection = SimpleNamespace(transport="community.docker.docker", _shell=SimpleNamespace(tmpdir="/x"))
        action = launch_action.LaunchAction(task, connection, play_context=None, loader=DataLoader(),
                                            templar=Templar(loader=DataLoader(), variables=task_vars),
                                            shared_loader_obj=None)
        action._outcome = outcome
        return action.run(task_vars=task_vars)

    ok = run({"failed": False, "ranks_silent": [], "msg": ""})
    assert "diagnosis" not in ok and calls == ["mpi_hello"]
    failed = run(dict(RESULT, failed=True, msg="mpi_hello timed out."))
    assert [r["host"] for r in failed["diagnosis"]] == ["node2"]
    assert failed["msg"].startswith("mpi_hello timed out. Nodes: rank(s) 2-3 on node2: node2 is not running: it "
                                    "exited with code 1 (re-run site.yml")
    # node2 is down, which explains the timeout: node1 (running) is not ssh-checked on the stage's time
    assert calls == ["mpi_hello", "mpi_hello"]
    # Both nodes run: the ssh check names the hop, on the port the mode's default gives.
    states["node2"] = running()
    run(dict(RESULT, failed=True, msg="mpi_hello timed out."))
    assert calls[-1] == "ssh_mesh_check" and ports == [22]
    task_vars["cluster_mode"] = "docker_per_host"
    run(dict(RESULT, failed=True, msg="mpi_hello timed out."))
    assert ports == [22, 2233]  # the mode's default, no fallback of the plugin's own



def test_a_rank_that_printed_and_was_oom_killed_is_traced_to_its_node():
    """Every rank printed, then mpirun saw rank 3 die on signal 9: docker's oom event names the node."""
    result = dict(RESULT, timed_out=False, ranks_silent=[], rc=137,
                  ranks_signalled=[{"rank": 3, "host": "node2", "signal": 9}],
                  rank_tails={"3": ["MTRT-UP rank 3", "allocating 512 MiB"]})
    cands = diagnose.candidates(result, NODES)
    assert cands == {"node2": [3]}
    limited = dict(running(), HostConfig={"Memory": 268435456})
    table = diagnose.rows(result, NODES, cands, {"node2": limited}, {}, None, {"node2": 1})
    assert [(r["host"], r["ranks"], r["state"], r["oom_killed"]) for r in table] == [("node2", [3], "running", True)]
    assert table[0]["words"] == "runs, but a process in it was OOM-killed by the kernel (memory limit 256 MiB)"
    assert table[0]["log_tail"] == ["MTRT-UP rank 3", "allocating 512 MiB"]
    assert "give node2 more memory" in diagnose.sentences(table)[0]
    # without an oom event the killed rank's node is still named (its state: runs)
    plain = diagnose.rows(result, NODES, cands, {"node2": running()}, {}, None, {})
    assert [(r["host"], r["ranks"], r["oom_killed"]) for r in plain] == [("node2", [3], False)]


def test_a_hang_with_every_node_fine_is_not_healed():
    answers = {"node1": {"ok": True, "hops": ["node1"]}, "node2": {"ok": True, "hops": ["node2"]}}
    table = diagnose.rows(RESULT, NODES, {"node1": [0, 1], "node2": [2, 3]},
                          {"node1": running(), "node2": running()}, {}, answers)
    assert diagnose.hang_only(RESULT, table, answers)
    refused = dict(answers, node2={"ok": False, "hops": ["node2"], "cause": "refused", "fix": "x"})
    table = diagnose.rows(RESULT, NODES, {"node1": [0, 1], "node2": [2, 3]},
                          {"node1": running(), "node2": running()}, {}, refused)
    assert not diagnose.hang_only(RESULT, table, refused)
    paused = {"node1": running(), "node2": {"State": {"Status": "paused", "Paused": True}}}
    table = diagnose.rows(RESULT, NODES, {"node1": [0, 1], "node2": [2, 3]}, paused, {}, {"node1": answers["node1"]})
    assert not diagnose.hang_only(RESULT, table, {"node1": answers["node1"]})
    assert not diagnose.hang_only(dict(RESULT, timed_out=False), [], answers)


def _action(monkeypatch, outcome, states, task_args=None):
    from types import SimpleNamespace

    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from mpi_trt_ansible import launch_action

    calls = []

    def execute(self, module_name=None, module_args=None, task_vars=None):
        calls.append((module_name or "launch", module_args))
        if module_name == "ssh_mesh_check":
            return {"direct": [{"ok": True, "hops": [p]} for p in module_args["peers"]]}
        return dict(outcome)

    monkeypatch.setattr(launch_action.LaunchAction, "_execute_module", execute)
    monkeypatch.setattr(launch_action.LaunchAction, "_docker_states", staticmethod(lambda nodes, since=None: states))
    task_vars = {"cluster_nodes": NODES, "cluster_mode": "docker", "cluster_ssh_port": 22}
    task = SimpleNamespace(args=dict(task_args or {}), async_val=0, check_mode=False, diff=False, action="x")
    connection = SimpleNamespace(transport="community.docker.docker", _shell=SimpleNamespace(tmpdir="/x"))
    action = launch_action.LaunchAction(task, connection, play_context=None, loader=DataLoader(),
                                        templar=Templar(loader=DataLoader(), variables=task_vars),
                                        shared_loader_obj=None)
    return action.run(task_vars=task_vars), calls


def test_the_launch_action_diagnoses_a_killed_rank_even_when_every_rank_printed(monkeypatch):
    outcome = dict(RESULT, failed=True, timed_out=False, ranks_silent=[], rc=137, msg="mpi_hello failed.",
                   ranks_signalled=[{"rank": 3, "host": "node2", "signal": 9}])
    result, calls = _action(monkeypatch, outcome, ({"node2": running()}, {"node2": ["x"]}, {"node2": 2}))
    assert [(r["host"], r["state"], r["oom_killed"]) for r in result["diagnosis"]] == [("node2", "running", True)]
    assert "node2 runs, but a process in it was OOM-killed by the kernel" in result["msg"]
    assert [c[0] for c in calls] == ["launch"] and "heal_may_help" not in result


def test_a_timed_out_hang_skips_the_heal_and_bounds_the_ssh_check(monkeypatch):
    outcome = dict(RESULT, failed=True, ranks_silent=[1], msg="mpi_hello timed out.")
    result, calls = _action(monkeypatch, outcome, ({"node1": running(), "node2": running()}, {}, {}),
                            task_args={"timeout_s": 8})
    assert result["heal_may_help"] is False
    assert result["msg"].endswith("the SSH mesh check and a second launch cannot help and are skipped.")
    [(name, args)] = [c for c in calls if c[0] == "ssh_mesh_check"]
    # the check gets what is left of the stage's deadline (8 s + slack), never more than its own bound
    assert args["peers"] == ["node1", "node2"] and 3 <= args["timeout_s"] <= 10 and args["connect_timeout_s"] <= 5


def test_a_timeout_docker_explains_needs_no_ssh_check_of_the_healthy_nodes(monkeypatch):
    outcome = dict(RESULT, failed=True, ranks_silent=[], msg="mpi_collectives timed out.")
    paused = {"State": {"Status": "paused", "Paused": True}}
    result, calls = _action(monkeypatch, outcome, ({"node1": running(), "node2": paused}, {}, {}),
                            task_args={"timeout_s": 15})
    assert [r["host"] for r in result["diagnosis"]] == ["node2"] and result["heal_may_help"] is True
    assert [c[0] for c in calls] == ["launch"]  # no ssh check: docker named the frozen node
