# SPDX-License-Identifier: Apache-2.0
"""mpi_trt_ansible.serving: where each server's ranks run, and every refusal preflight makes."""

import pytest
from conftest import load_action, project_defaults

from mpi_trt_ansible import serving

NODES = [{"name": "n1", "ip": "10.9.0.11", "slots": 2, "gpus": [], "mpi_host": "n1"},
         {"name": "n2", "ip": "10.9.0.12", "slots": 2, "gpus": [], "mpi_host": "n2"}]
BASE = {"cluster_name": "c1", "cluster_mode": "docker", "cluster_ssh_port": 22,
        "cluster_network_subnet": "10.9.0.0/24", "cluster_network_gateway": "10.9.0.1",
        "cluster_trtllm_tp_size": 2, "cluster_trtllm_pp_size": 1, "cluster_serve_enabled": True}


def settings(**over):
    return dict(BASE, **over)


def problems(nodes=NODES, **over):
    return serving.serve_problems(settings(**over), nodes)


def messages(**over):
    return [p["message"] for p in problems(**over)]


def test_every_setting_read_has_the_project_default():
    defaults = project_defaults()
    for name, value in serving.SETTINGS.items():
        if name.startswith("cluster_serve_") and isinstance(defaults.get(name), (int, bool)):
            assert defaults[name] == value, name
    assert set(serving.SETTINGS) - set(defaults) == set()


def test_nothing_is_checked_while_serving_is_off():
    assert serving.serve_problems(dict(BASE, cluster_serve_enabled=False, cluster_serve_instances=0), NODES) == []


def test_a_count_fills_consecutive_slots_in_node_order_and_each_server_gets_its_own_ports():
    plan = serving.serve_plan(settings(cluster_serve_instances=2), NODES)
    a, b = plan["servers"]
    assert [(r["node"], r["slot"]) for r in a["ranks"]] == [("n1", 0), ("n1", 1)]
    assert [(r["node"], r["slot"]) for r in b["ranks"]] == [("n2", 0), ("n2", 1)]
    # One node each: gpu_device_ids name each rank's slot (the seed's "GPUs 0,1 and 2,3").
    assert a["gpu_device_ids"] == [0, 1] and b["gpu_device_ids"] == [0, 1]
    assert (a["http_port"], a["grpc_port"], a["metrics_port"]) == (8000, 8001, 8002)
    assert (b["http_port"], b["grpc_port"], b["metrics_port"]) == (8010, 8011, 8012)
    assert a["host"] == "n1" and b["host"] == "n2" and a["world_size"] == 2
    assert a["shm_prefix"] != b["shm_prefix"] and a["repo"] != b["repo"]
    assert a["repo"] == "/TRTDir/triton/mtrt/inst0"
    assert plan["proxy"]["upstreams"] == [{"name": "inst0", "address": "10.9.0.11:8000"},
                                          {"name": "inst1", "address": "10.9.0.12:8010"}]
    assert plan["proxy"]["ip"] == "10.9.0.254" and plan["endpoint"] == "http://127.0.0.1:8080"


def test_a_list_places_each_rank_where_it_says_rank_0_first():
    plan = serving.serve_plan(settings(cluster_serve_instances=[
        {"name": "a", "slots": ["n2:0", "n1:0"], "http_port": 9000},
        ["n1:1", "n2:1"]]), NODES)
    a, b = plan["servers"]
    assert a["name"] == "a" and a["host"] == "n2" and a["hosts"] == ["n2", "n1"] and a["http_port"] == 9000
    assert b["name"] == "inst1" and b["http_port"] == 8010
    # Across nodes: no gpu_device_ids (each rank uses GPU rank % gpus_per_node).
    assert a["gpu_device_ids"] is None


def test_the_seeds_example_two_tp2_instances_on_gpus_0_1_and_2_3_of_one_host():
    host = [{"name": "gpu1", "ip": "10.9.0.11", "slots": 4, "gpus": [0, 1, 2, 3], "mpi_host": "gpu1"}]
    plan = serving.serve_plan(settings(cluster_serve_instances=2), host)
    assert [s["gpu_device_ids"] for s in plan["servers"]] == [[0, 1], [2, 3]]
    assert [s["http_port"] for s in plan["servers"]] == [8000, 8010]


def test_overlapping_slots_are_refused_naming_the_slot_and_both_instances():
    found = problems(cluster_serve_instances=[{"slots": ["n1:0", "n2:0"]}, {"slots": ["n2:0", "n1:1"]}])
    assert any("slot n2:0 is taken twice: by 'inst0' and by 'inst1'" in p["message"] for p in found)
    assert all({"variable", "value", "message", "fix"} <= set(p) for p in found)


def test_a_slot_count_other_than_tp_x_pp_is_refused():
    found = messages(cluster_serve_instances=[{"slots": ["n1:0", "n2:0", "n1:1"]}])
    assert any("has 3 slots but tp x pp = 2 x 1 = 2 ranks" in m for m in found)


def test_more_instances_than_slots_are_refused_with_the_numbers():
    found = messages(cluster_serve_instances=3)
    assert found == ["cluster_serve_instances=3 x 2 ranks (tp x pp = 2 x 1) = 6 slots, but the nodes have 4 (n1:2, n2:2)"]


@pytest.mark.parametrize("slots, says", [
    (["n3:0", "n1:0"], "names node 'n3', which is not in groups['nodes']"),
    (["n1:2", "n2:0"], "slot 'n1:2' does not exist: n1 has node_slots=2 (slots 0-1)"),
    (["n1", "n2:0"], "slot 'n1' is not NODE:SLOT"),
])
def test_unknown_nodes_and_slots_are_refused(slots, says):
    assert any(says in m for m in messages(cluster_serve_instances=[{"slots": slots}]))


def test_gpu_ids_a_node_lacks_are_refused():
    gpu_nodes = [dict(NODES[0], gpus=[3]), dict(NODES[1], gpus=[4])]
    found = messages(nodes=gpu_nodes, cluster_serve_instances=[{"slots": ["n1:0", "n1:1"]}])
    assert any("GPU ids 1 do not exist on n1, which has 1 GPU(s) (ids 0-0)" in m for m in found)


def test_explicit_gpu_ids_must_be_one_per_rank_and_unique():
    assert any("must list 2 GPU indexes" in m for m in messages(
        cluster_serve_instances=[{"slots": ["n1:0", "n1:1"], "gpu_device_ids": [0]}]))
    assert any("gpu_device_ids 0,0 are not unique" in m for m in messages(
        cluster_serve_instances=[{"slots": ["n1:0", "n1:1"], "gpu_device_ids": [0, 0]}]))


def test_gpu_ids_for_an_instance_across_nodes_are_refused():
    found = messages(cluster_serve_instances=[{"slots": ["n1:0", "n2:0"], "gpu_device_ids": [0, 1]}])
    assert any("spans nodes n1, n2: gpu_device_ids apply to every rank" in m for m in found)


def test_across_gpu_nodes_each_rank_must_sit_on_the_gpu_the_runtime_gives_it():
    gpu_nodes = [dict(NODES[0], gpus=[0, 1]), dict(NODES[1], gpus=[2, 3])]
    ok = problems(nodes=gpu_nodes, cluster_serve_instances=[{"slots": ["n1:0", "n2:1"]}])
    assert ok == []
    bad = messages(nodes=gpu_nodes, cluster_serve_instances=[{"slots": ["n1:1", "n2:0"]}])
    assert any("rank 0 uses GPU rank % gpus_per_node = 0 on n1, but it is placed on slot 1" in m for m in bad)


def test_gpus_per_node_is_the_tensorrt_llm_stages_one_rule():
    from mpi_trt_ansible import trtllm
    for node, setting in ((NODES[0], None), (dict(NODES[0], gpus=[0, 1]), None), (dict(NODES[0], gpus=[0, 1]), 4),
                          (dict(NODES[0], gpus=[0, 1, 2]), "8")):
        want = trtllm.node_gpus(node, int(setting) if setting is not None else 0)
        assert serving.gpus_per_node({"cluster_trtllm_gpus_per_node": setting}, node) == want


def test_an_instance_across_nodes_with_different_gpu_counts_is_refused():
    gpu_nodes = [dict(NODES[0], gpus=[0, 1]), dict(NODES[1], gpus=[0, 1, 2, 3])]
    found = messages(nodes=gpu_nodes, cluster_serve_instances=[{"slots": ["n1:0", "n2:1"]}])
    assert any("spans nodes that see different numbers of GPUs (n1=2, n2=4)" in m for m in found)
    # One value for every node (the runtime's gpus_per_node) makes the placement checkable again.
    assert problems(nodes=gpu_nodes, cluster_trtllm_gpus_per_node=2,
                    cluster_serve_instances=[{"slots": ["n1:0", "n2:1"]}]) == []


def test_the_proxy_container_spec_holds_what_it_is_created_with_not_the_servers_behind_it():
    one = serving.serve_plan(settings(cluster_serve_instances=1), NODES)["proxy"]
    two = serving.serve_plan(settings(cluster_serve_instances=2), NODES)["proxy"]
    moved = serving.serve_plan(settings(cluster_serve_instances=[{"slots": ["n2:0", "n2:1"], "http_port": 8020}]),
                               NODES)["proxy"]
    assert one["container"] == {"address": "127.0.0.1", "port": 8080, "listen_port": 8080, "ip": "10.9.0.254"}
    # Adding, moving or re-porting a server changes the upstreams (nginx.conf, a reload), not the container.
    assert one["upstreams"] != two["upstreams"] != moved["upstreams"]
    assert one["container"] == two["container"] == moved["container"]
    published = serving.serve_plan(settings(cluster_serve_instances=1, cluster_serve_proxy_port=18080), NODES)
    assert published["proxy"]["container"]["port"] == 18080


def test_two_instances_naming_the_same_gpu_of_a_node_are_refused():
    host = [{"name": "g", "ip": "10.9.0.11", "slots": 4, "gpus": [0, 1, 2, 3]}]
    found = messages(nodes=host, cluster_serve_instances=[{"slots": ["g:0", "g:1"]},
                                                          {"slots": ["g:2", "g:3"], "gpu_device_ids": [1, 2]}])
    assert any("GPU 1 of g is used by instances 'inst0' and 'inst1'" in m for m in found)


def test_ports_colliding_on_a_node_are_refused_but_not_across_nodes():
    same_host = messages(cluster_serve_instances=[{"slots": ["n1:0", "n2:0"]},
                                                  {"slots": ["n1:1", "n2:1"], "http_port": 8000}])
    assert any("port 8000 on n1 is wanted twice: http_port of instance 'inst0' and http_port of instance 'inst1'"
               in m for m in same_host)
    other_hosts = problems(cluster_serve_instances=[{"slots": ["n1:0", "n2:0"]},
                                                    {"slots": ["n2:1", "n1:1"], "http_port": 8000}])
    assert other_hosts == []
    # The stride puts one instance's metrics port on the next one's HTTP port.
    assert any("port 8002 on n1 is wanted twice" in m for m in messages(
        cluster_serve_instances=[{"slots": ["n1:0", "n2:0"]}, {"slots": ["n1:1", "n2:1"]}],
        cluster_serve_port_stride=2))


def test_a_port_on_sshd_is_refused_only_when_the_ssh_port_is_given():
    bad = [{"slots": ["n1:0", "n2:0"], "http_port": 22}]
    assert any("sshd (cluster_ssh_port)" in m for m in messages(cluster_serve_instances=bad))
    partial = {k: v for k, v in settings(cluster_serve_instances=bad).items() if k != "cluster_ssh_port"}
    assert serving.serve_problems(partial, NODES) == []


def test_the_local_mode_proxy_port_counts_as_taken_on_the_node():
    local = [{"name": "m", "ip": None, "slots": 4, "gpus": []}]
    found = messages(nodes=local, cluster_mode="local", cluster_serve_instances=1, cluster_serve_http_port=8080)
    assert any("the proxy (cluster_serve_proxy_port)" in m for m in found)


def test_an_orchestrator_spawning_across_nodes_is_refused_unless_spawning_is_off():
    spread = [{"name": "set0", "slots": ["n1:0", "n2:0"]}]
    found = messages(cluster_serve_mode="orchestrator", cluster_serve_instances=spread)
    assert any("spawns every worker on the orchestrator's node n1 (MPI_Comm_spawn), but slots n2:0 are on other "
               "nodes" in m for m in found)
    plan = serving.serve_plan(settings(cluster_serve_mode="orchestrator", cluster_serve_instances=spread,
                                       cluster_serve_orchestrator_spawn=False), NODES)
    (server,) = plan["servers"]
    # Rank 0 is the orchestrator; the participants are ranks 1.. (participant_ids), world 1 + tp x pp.
    assert server["participant_ids"] == [[1, 2]] and server["world_size"] == 3
    assert [(r["rank"], r["node"]) for r in server["ranks"]] == [(0, "n1"), (1, "n1"), (2, "n2")]
    assert server["env"] == {"TRTLLM_ORCHESTRATOR": "1", "TRTLLM_ORCHESTRATOR_SPAWN_PROCESSES": "0"}


def test_the_orchestrator_is_one_server_of_world_size_one_with_one_gpu_set_per_instance():
    host = [{"name": "g", "ip": "10.9.0.11", "slots": 4, "gpus": [0, 1, 2, 3]}]
    plan = serving.serve_plan(settings(cluster_serve_mode="orchestrator", cluster_serve_instances=2), host)
    (server,) = plan["servers"]
    assert server["world_size"] == 1 and server["ranks"][0]["node"] == "g"
    assert server["gpu_sets"] == [[0, 1], [2, 3]] and server["instance_count"] == 2
    assert server["env"]["TRTLLM_ORCHESTRATOR"] == "1" and server["spawn_slots"] == 4
    assert plan["proxy"]["enabled"] is False and plan["endpoint"] == "http://10.9.0.11:8000"


def test_a_count_of_orchestrator_sets_uses_only_the_orchestrators_node():
    found = messages(cluster_serve_mode="orchestrator", cluster_serve_instances=2)
    assert found == ["cluster_serve_instances=2 x 2 ranks (tp x pp = 2 x 1) = 4 slots, but node n1 has 2 (n1:2)"]


@pytest.mark.parametrize("ip, says", [
    ("10.9.0.11", "is already n1"),
    ("10.9.0.1", "the gateway (cluster_network_gateway)"),
    ("10.8.0.5", "is not a host address of cluster_network_subnet 10.9.0.0/24"),
    ("nonsense", "is not an IPv4 address"),
])
def test_a_proxy_address_that_is_taken_or_outside_the_subnet_is_refused(ip, says):
    assert any(says in m for m in messages(cluster_serve_proxy_ip=ip))


def test_names_must_be_unique_and_usable_in_paths():
    assert any("are both named 'x'" in m for m in messages(
        cluster_serve_instances=[{"name": "x", "slots": ["n1:0", "n1:1"]}, {"name": "x", "slots": ["n2:0", "n2:1"]}]))
    assert any("name 'A/b' must be" in m for m in messages(
        cluster_serve_instances=[{"name": "A/b", "slots": ["n1:0", "n1:1"]}]))
    assert any("unknown keys port" in m for m in messages(
        cluster_serve_instances=[{"slots": ["n1:0", "n1:1"], "port": 1}]))


@pytest.mark.parametrize("over, var", [
    ({"cluster_serve_mode": "both"}, "cluster_serve_mode"),
    ({"cluster_trtllm_tp_size": 0}, "cluster_trtllm_tp_size"),
    ({"cluster_serve_instances": 0}, "cluster_serve_instances"),
    ({"cluster_serve_instances": "two"}, "cluster_serve_instances"),
    ({"cluster_serve_http_port": 70000}, "cluster_serve_http_port"),
    ({"cluster_serve_orchestrator_node": "n9", "cluster_serve_mode": "orchestrator"},
     "cluster_serve_orchestrator_node"),
])
def test_bad_values_name_their_variable(over, var):
    found = problems(**over)
    assert found and found[0]["variable"] == var


def test_serve_plan_raises_with_every_problem():
    with pytest.raises(serving.ServeError) as err:
        serving.serve_plan(settings(cluster_serve_instances=[{"slots": ["n1:0"]}, {"slots": ["n1:0", "n9:0"]}]),
                           NODES)
    assert len(err.value.problems) >= 2


def test_shm_prefixes_differ_where_names_joined_with_separators_would_not():
    assert serving.shm_prefix("x_a", "b") != serving.shm_prefix("x", "a_b")
    assert serving.shm_prefix("c", "inst0").startswith("mtrt-inst0-") and serving.shm_prefix("c", "inst0").endswith("-r")


def test_the_plan_action_fails_listing_the_problems(run_action):
    action = load_action("triton_serve_plan")
    bad = action.ActionModule
    result = run_action(load_action("triton_serve_plan"),
                        {"settings": settings(cluster_serve_instances=[{"slots": ["n1:0"]}]), "nodes": NODES})
    assert bad and result["failed"] and result["mtrt_kind"] == "triton_serve_plan"
    assert "Serving found 1 problem (nothing was changed)" in result["msg"]
    good = run_action(load_action("triton_serve_plan"), {"settings": settings(), "nodes": NODES})
    assert not good.get("failed") and good["plan"]["servers"][0]["name"] == "inst0"
    assert good["msg"] == "1 leader server(s): inst0 on n1 (ranks 0@n1, 1@n1)"
