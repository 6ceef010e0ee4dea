"""cluster_preflight: the action plugin (argument spec, result keys, failure message)."""

import pytest
from ansible.errors import AnsibleActionFail
from conftest import FIXTURES, load_action
from test_topology import default_spec

cluster_preflight = load_action("cluster_preflight")
RESULT_KEYS = {"changed", "ok", "problems", "checked", "msg", "mtrt_kind", "failed"}


def module_args(**overrides):
    spec = default_spec()
    spec.pop("host_routes")
    spec["proc_net_route"] = (FIXTURES / "topology" / "proc_net_route_docker_host.txt").read_text()
    spec.update(overrides)
    return spec


def test_valid_topology_passes(run_action):
    args = module_args()
    result = run_action(cluster_preflight, args)
    assert RESULT_KEYS <= set(result)
    assert result["failed"] is False and result["changed"] is False
    assert result["ok"] is True and result["problems"] == []
    assert result["mtrt_kind"] == "preflight"
    assert result["checked"] == {
        "mode": "docker", "nodes": 2, "slots": 4, "np": 4, "gpus": 0, "docker_networks": 5,
        "host_routes": 6, "docker_hosts": ["localhost"], "ulimits": len(args["ulimits"]),
        "trtllm": False}


def test_problems_fail_with_one_numbered_message(run_action):
    args = module_args(ssh={"user": "root", "port": 0}, mpi={"np": 8, "launcher": "node9"})
    result = run_action(cluster_preflight, args)
    assert result["failed"] is True and result["changed"] is False and result["ok"] is False
    assert RESULT_KEYS <= set(result)
    assert [(p["variable"], p["value"]) for p in result["problems"]] == [
        ("cluster_ssh_port", 0), ("cluster_mpi_np", 8), ("cluster_mpi_launcher", "node9")]
    assert result["msg"].startswith("Preflight found 3 problems")
    assert " 1. cluster_ssh_port 0 " in result["msg"] and " 3. cluster_mpi_launcher 'node9' " in result["msg"]


def test_proc_net_route_text_is_parsed_into_routes(run_action):
    args = module_args(network={"name": "network_my", "subnet": "10.8.0.0/24", "gateway": "10.8.0.1"},
                       nodes=[{"name": "node1", "ip": "10.8.0.11", "gpus": [], "slots": 2}],
                       docker_networks=[])
    result = run_action(cluster_preflight, args)
    assert [p["message"] for p in result["problems"]] == [
        "cluster_network_subnet 10.8.0.0/24 overlaps host route 10.8.0.0/24 (dev tun0);"
        " node traffic would be misrouted."]


def test_defaults_and_none_values(run_action):
    """docker_host defaults to localhost; a node value given as None is reported, not rejected."""
    args = module_args(nodes=[{"name": "node1", "ip": None, "gpus": [0], "slots": 2}],
                       mpi={"launcher": "node1"})
    result = run_action(cluster_preflight, args)
    assert [(p["variable"], p["value"]) for p in result["problems"]] == [("node_ip (node1)", None)]
    assert result["checked"]["gpus"] == 1  # GPU 0 exists on localhost, so no GPU problem


def test_check_mode_gives_the_same_result(run_action):
    args = module_args(ssh={"user": "root", "port": 0})
    normal = run_action(cluster_preflight, args)
    checked = run_action(cluster_preflight, args, check_mode=True)
    assert checked["failed"] is True and checked["changed"] is False
    assert checked["problems"] == normal["problems"] and checked["msg"] == normal["msg"]


def test_unknown_or_mistyped_arguments_fail_before_any_check(run_action):
    with pytest.raises(AnsibleActionFail, match="nodez"):
        run_action(cluster_preflight, dict(module_args(), nodez=[]))
    with pytest.raises(AnsibleActionFail, match="port"):
        run_action(cluster_preflight, module_args(ssh={"user": "root", "port": "twenty-two"}))
