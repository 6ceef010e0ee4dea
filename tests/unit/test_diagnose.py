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
        lambda nodes: ({"node1": running(), "node2": {"State": {"Status": "exited", "ExitCode": 1}}}, {})))
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
    assert calls[-1] == "ssh_mesh_check"  # node1 runs: ssh from the launcher checked it
    assert ports == [22]
    task_vars["cluster_mode"] = "docker_per_host"
    run(dict(RESULT, failed=True, msg="mpi_hello timed out."))
    assert ports == [22, 2233]  # the mode's default, no fallback of the plugin's own
