# SPDX-License-Identifier: Apache-2.0
"""Preflight as a whole (mpi_trt_ansible.preflight.check) and the preflight_check action that builds its view.

The view is what the action reads from a play: the contract values, each host's own inventory values,
the nodes and the controller's facts (here from fixtures).
"""

import copy
import json

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from conftest import FIXTURES, ROOT, load_action, project_defaults
from mpi_trt_ansible import preflight
from mpi_trt_ansible.preflight import facts

ROLES = str(ROOT / "roles")
NODES = [{"name": "node1", "ip": "192.168.123.111", "slots": 2, "gpus": [], "mpi_host": "node1"},
         {"name": "node2", "ip": "192.168.123.112", "slots": 2, "gpus": [], "mpi_host": "node2"}]
LISTING = {"containers": [], "networks": json.loads((FIXTURES / "topology" / "docker_networks.json").read_text()),
           "images": [{"Id": "sha256:base", "RepoTags": ["mtrt-base:bookworm-abc"], "Labels": {"mtrt.role": "base"}}]}


def values():
    """The project defaults as the plays see them (templated ones filled in as the defaults say)."""
    out = {k: v for k, v in project_defaults().items() if not (isinstance(v, str) and "{{" in v)}
    out.update(cluster_state_dir="/state/mtrt", cluster_shared_host_dir="/state/mtrt/shared",
               cluster_mpi_launcher="node1", cluster_trtllm_model_dir="/TRTDir/Models/chatglm2-6b",
               cluster_trtllm_tokenizer_dir="/TRTDir/Models/chatglm2-6b", cluster_trtllm_engine_root="/TRTDir/engines",
               cluster_trtllm_nccl_socket_ifname="eth0", cluster_nodes=copy.deepcopy(NODES), cluster_node={},
               cluster_node_config_dir="/etc/mtrt/cluster", cluster_mpi_hostfile="/etc/mtrt/cluster/hostfile",
               cluster_mpi_np=4, cluster_mpi_mca_effective={}, cluster_docker_listing={},
               cluster_docker_listing_stale=False, cluster_host_gpus=None,
               # Per mode in the defaults; docker mode's values:
               cluster_ssh_user="root", cluster_ssh_port=22, cluster_shared_mount="/TRTDir")
    return out


def view(**changes):
    v = {"values": values(), "defaults": {"cluster_network_subnet": "192.168.123.0/24", "cluster_mpi_timeout_s": 120},
         "host_values": {"node1": {}, "node2": {}, "localhost": {}}, "role_values": {}, "node_values": {},
         "nodes": copy.deepcopy(NODES), "errors": [], "check_mode": False, "roles_dir": ROLES,
         "facts": {"docker": copy.deepcopy(LISTING), "docker_error": None, "host_gpus": [],
                   "dockerd_ulimits": facts.parse_proc_limits((FIXTURES / "topology" / "proc_limits_dockerd.txt")
                                                              .read_text()),
                   "routes": facts.parse_proc_net_route((FIXTURES / "topology" / "proc_net_route_docker_host.txt")
                                                        .read_text()),
                   "shared_exists": False, "mmdebstrap": True}}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(v.get(key), dict):
            v[key].update(value)
        else:
            v[key] = value
    return v


def variables(result):
    return [p["variable"] for p in result["problems"]]


def test_the_default_cluster_passes_and_hands_on_what_later_stages_need():
    result = preflight.check(view())
    assert result["ok"] and not result["failed"] and result["problems"] == [], result["msg"]
    assert result["mtrt_kind"] == "preflight" and result["changed"] is False
    assert result["docker"]["images"][0]["Id"] == "sha256:base" and result["host_gpus"] == []
    assert result["stage_hosts"] == {"launcher": ["node1"], "gpu": ["node1"], "trtllm": ["node1"], "nodes_run": True,
                                     "machines": [], "settled": False}
    assert result["checked"]["nodes"] == 2 and result["checked"]["variables"] > 50


def test_a_cluster_variable_set_under_nodes_vars_is_refused_naming_hosts_and_values():
    v = view(host_values={"node1": {"cluster_network_subnet": "10.8.0.0/24"},
                          "node2": {"cluster_network_subnet": "10.8.0.0/24"}, "localhost": {}})
    problems = preflight.check(v)["problems"]
    assert variables({"problems": problems}) == ["cluster_network_subnet"]
    assert problems[0]["message"].startswith(
        "cluster_network_subnet differs between hosts: '10.8.0.0/24' on node1, node2; '192.168.123.0/24' on "
        "localhost (project default).")
    assert "under all: vars:" in problems[0]["fix"]


def test_one_host_setting_its_own_value_is_refused_and_the_same_value_everywhere_is_not():
    v = view(host_values={"node1": {}, "node2": {"cluster_mpi_timeout_s": 60}, "localhost": {}})
    assert variables(preflight.check(v)) == ["cluster_mpi_timeout_s"]
    same = {h: {"cluster_mpi_timeout_s": 60} for h in ("node1", "node2", "localhost")}
    assert preflight.check(view(host_values=same))["problems"] == []


@pytest.mark.parametrize("name,value,words", [
    ("cluster_mpi_timeout_s", -5, "it must be 1 or more"),
    ("cluster_mpi_timeout_s", "abc", "it must be a whole number, not a string"),
    ("cluster_ssh_port", 70000, "it must be at most 65535"),
    ("cluster_shm_size", "lots", "it must be a size such as 1g"),
    ("cluster_mode", "kubernetes", "it must be one of docker, local"),
    ("cluster_shared_host_dir_create", "maybe", "it must be true or false"),
    ("cluster_ulimits", [1], "it must be a mapping"),
    ("cluster_ssh_kex_algorithms", ["nope"], "names key exchanges OpenSSH does not know: 'nope'"),
])
def test_every_contract_variable_is_checked_against_its_spec_and_range(name, value, words):
    v = view()
    v["values"][name] = value
    problems = [p for p in preflight.check(v)["problems"] if p["variable"] == name]
    assert problems and words in problems[0]["message"], preflight.check(v)["msg"]
    assert problems[0]["value"] == value and name in problems[0]["fix"]


def test_strings_that_read_as_the_type_pass():
    """-e cluster_mpi_timeout_s=60 gives the string '60'; the roles' specs convert it, so preflight accepts it."""
    v = view()
    v["values"].update(cluster_mpi_timeout_s="60", cluster_ssh_port="22", cluster_shared_host_dir_create="yes")
    assert preflight.check(v)["problems"] == []


def test_trtllm_settings_are_checked_only_when_the_stages_will_run():
    v = view()
    v["values"].update(cluster_trtllm_tp_size="two", cluster_trtllm_enabled="false")
    assert preflight.check(v)["problems"] == []
    v["values"]["cluster_trtllm_enabled"] = "true"
    assert "cluster_trtllm_tp_size" in variables(preflight.check(v))


def test_stage_role_variables_are_checked_and_a_value_every_host_has_is_named_once():
    same = {h: {"mpi_hello_timeout_s": -3} for h in ("node1", "node2", "localhost")}
    result = preflight.check(view(role_values=same))
    assert variables(result) == ["mpi_hello_timeout_s"] and "roles/mpi_hello" in result["problems"][0]["fix"]
    one = {"node2": {"mpi_collectives_max_bytes": "big"}, "node1": {}, "localhost": {}}
    assert variables(preflight.check(view(role_values=one))) == ["mpi_collectives_max_bytes (node2)"]


def test_node_variables_are_checked_on_their_host():
    result = preflight.check(view(node_values={"node2": {"node_mpi_host": ["x"]}}))
    assert variables(result) == ["node_mpi_host (node2)"] and "on host node2" in result["problems"][0]["fix"]


def test_ranks_over_pinned_gpus_are_refused():
    nodes = copy.deepcopy(NODES)
    nodes[1]["gpus"] = [0]
    v = view(nodes=nodes)
    v["facts"]["host_gpus"] = [0]
    assert "node_slots (node2)" in variables(preflight.check(v))


def test_the_base_image_must_be_on_the_docker_host():
    v = view()
    v["values"]["cluster_image_base"] = "tensorrt_llm/release"
    problem = preflight.check(v)["problems"][0]
    assert problem["variable"] == "cluster_image_base" and "docker load" in problem["fix"]
    v["facts"]["docker"]["images"].append({"Id": "sha256:t", "RepoTags": ["tensorrt_llm/release:latest"]})
    assert preflight.check(v)["problems"] == []
    v = view()
    v["facts"].update(docker={"containers": [], "networks": LISTING["networks"], "images": []}, mmdebstrap=False)
    assert "mmdebstrap" in preflight.check(v)["problems"][0]["fix"]


def test_no_docker_engine_is_one_problem_not_a_crash():
    v = view()
    v["facts"].update(docker=None, docker_error="Error while fetching server API version: connection refused")
    problem = preflight.check(v)["problems"][0]
    assert problem["variable"] == "cluster_mode" and "connection refused" in problem["message"]


def test_check_mode_before_the_launcher_runs_gives_the_node_stages_no_host():
    assert preflight.check(view(check_mode=True))["stage_hosts"]["nodes_run"] is False
    v = view(check_mode=True)
    v["facts"]["docker"]["containers"] = [{"Names": ["/node1"], "State": "running"}]
    assert preflight.check(v)["stage_hosts"]["launcher"] == ["node1"]


def test_gpu_hosts_give_gpu_and_trtllm_stages_every_node():
    v = view()
    v["facts"]["host_gpus"] = [0, 1]
    nodes = copy.deepcopy(NODES)
    nodes[0].update(gpus=[0], slots=1)
    nodes[1].update(gpus=[1], slots=1)
    v["nodes"] = nodes
    hosts = preflight.check(v)["stage_hosts"]
    assert hosts["gpu"] == ["node1", "node2"] and hosts["trtllm"] == ["node1", "node2"]


def test_every_problem_comes_back_in_one_numbered_message():
    v = view(host_values={"node1": {"cluster_mpi_timeout_s": 5}, "node2": {}, "localhost": {}})
    v["values"]["cluster_ssh_port"] = 0
    v["nodes"][1]["slots"] = "two"
    result = preflight.check(v)
    assert result["failed"] and result["msg"].startswith("Preflight found 3 problems (nothing was changed):")
    assert variables(result) == ["cluster_ssh_port", "cluster_mpi_timeout_s", "node_slots (node2)"]


# --- the action: what it reads from a play ----------------------------------------------------------

class FakeHostvars(dict):
    """Ansible's hostvars as the action uses it: raw_get(host) -> that host's own (untemplated) vars."""

    def raw_get(self, host):
        return self[host]


def test_the_action_reads_the_play_and_each_host(run_action, monkeypatch):
    action = load_action("preflight_check")
    monkeypatch.setattr(action.facts, "docker_listing", lambda cluster: copy.deepcopy(LISTING))
    monkeypatch.setattr(action.facts, "host_gpus", lambda: [])
    monkeypatch.setattr(action.facts, "routes", lambda: [])
    task_vars = dict(values(), groups={"nodes": ["node1", "node2"]},
                     hostvars=FakeHostvars(node1={"node_ip": "192.168.123.111", "cluster_mpi_timeout_s": 60,
                                                  "mpi_hello_timeout_s": "x"},
                                           node2={"node_ip": "192.168.123.112"}, localhost={}))
    task_vars["cluster_name"] = trust_as_template("{{ 'mt' ~ 'rt' }}")  # templated as the plays see it
    from types import SimpleNamespace
    task = SimpleNamespace(args={}, async_val=0, check_mode=False, diff=False, action="preflight_check")
    connection = SimpleNamespace(transport="local", _shell=SimpleNamespace(tmpdir="/nonexistent"))
    templar = Templar(loader=DataLoader(), variables=task_vars)
    plugin = action.ActionModule(task, connection, play_context=None, loader=DataLoader(), templar=templar,
                                 shared_loader_obj=None)
    result = plugin.run(task_vars=task_vars)
    assert variables(result) == ["mpi_hello_timeout_s (node1)", "cluster_mpi_timeout_s"], result["msg"]
    assert "60 on node1" in result["problems"][1]["message"]


def _run_preflight_action(action, task_vars):
    from types import SimpleNamespace
    task = SimpleNamespace(args={}, async_val=0, check_mode=False, diff=False, action="preflight_check")
    connection = SimpleNamespace(transport="local", _shell=SimpleNamespace(tmpdir="/nonexistent"))
    plugin = action.ActionModule(task, connection, play_context=None, loader=DataLoader(),
                                 templar=Templar(loader=DataLoader(), variables=task_vars), shared_loader_obj=None)
    return plugin.run(task_vars=task_vars)


@pytest.mark.parametrize("where", ["group", "named_by_a_node"])
def test_the_one_view_covers_the_docker_hosts_the_plays_run_on(monkeypatch, where):
    """Stages 38, 40 and the teardown run on the docker hosts (docker_per_host): a cluster variable one
    of them sets differently is refused like a node's, naming it beside the hosts of the other value."""
    action = load_action("preflight_check")
    monkeypatch.setattr(action.facts, "docker_listing", lambda cluster: copy.deepcopy(LISTING))
    monkeypatch.setattr(action.facts, "host_gpus", lambda: [])
    monkeypatch.setattr(action.facts, "routes", lambda: [])
    nodes = [dict(n, docker_host="dh%d" % i) for i, n in enumerate(copy.deepcopy(NODES), 1)]
    groups = {"nodes": ["node1", "node2"], "docker_hosts": ["dh1", "dh2"] if where == "group" else []}
    task_vars = dict(values(), groups=groups, cluster_nodes=nodes,
                     hostvars=FakeHostvars(node1={"node_ip": "192.168.123.111"}, node2={"node_ip": "192.168.123.112"},
                                           dh1={"ansible_host": "10.0.0.1", "docker_dir": "srv/mtrt"},
                                           dh2={"ansible_host": "10.0.0.2", "cluster_ssh_port": 2234},
                                           localhost={}))
    result = _run_preflight_action(action, task_vars)
    one_view = [p for p in result["problems"] if p["variable"] == "cluster_ssh_port"]
    assert len(one_view) == 1, result["msg"]
    message = one_view[0]["message"]
    assert message.startswith("cluster_ssh_port differs between hosts: 2234 on dh2; ")
    listed = message.split("; ", 1)[1].split(". Every play", 1)[0]
    value, hosts = listed.split(" on ", 1)
    assert value == "22" and set(hosts.split(", ")) == {
        "%s (project default)" % h for h in ("node1", "node2", "dh1", "localhost")}, message
    # The docker hosts' own settings are read and checked too.
    assert "docker_dir (dh1)" in variables(result), result["msg"]


@pytest.mark.parametrize("settings,problem", [
    ({"docker_dir": "/srv/mtrt", "docker_url": "ssh://admin@10.0.0.1"}, None),
    ({"docker_url": "unix:///var/run/docker.sock"}, None),
    ({"docker_dir": "srv/mtrt"}, ("docker_dir (dh1)", "absolute path")),
    ({"docker_dir": ["/srv"]}, ("docker_dir (dh1)", "must be a string")),
    ({"docker_url": "10.0.0.1:2375"}, ("docker_url (dh1)", "ssh://, tcp://, unix://, fd://")),
])
def test_the_docker_hosts_settings_are_checked_on_their_host(settings, problem):
    result = preflight.check(view(docker_host_values={"dh1": settings}))
    found = [(p["variable"], p["message"]) for p in result["problems"] if p["variable"].startswith("docker_")]
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0][0] == problem[0] and problem[1] in found[0][1], found


def test_a_switch_that_is_auto_or_a_boolean_takes_either_spelling():
    for value in (True, False, "true", "false", "auto"):
        v = view()
        v["facts"]["host_gpus"] = [0, 1]  # true without GPUs is refused (test_preflight_runtime.py)
        v["values"]["cluster_trtllm_enabled"] = value
        named = [p["variable"] for p in preflight.check(v)["problems"]]
        assert "cluster_trtllm_enabled" not in named, value


def test_the_trtllm_world_is_checked_here_when_the_stages_will_run():
    """The stage's own rule (mpi_trt_ansible.trtllm.request_problems), before anything is created."""
    v = view()
    v["facts"]["host_gpus"] = [0, 1]
    v["values"].update(cluster_trtllm_enabled=True, cluster_trtllm_tp_size=2, cluster_trtllm_pp_size=1)
    problems = preflight.check(v)["problems"]
    assert [p["variable"] for p in problems][0] == "cluster_trtllm_tp_size x cluster_trtllm_pp_size"
    assert "4" in problems[0]["fix"]


def test_serving_is_checked_with_every_setting_it_reads():
    """serve_problems gets the whole contract (the sshd port among them), not only cluster_serve_*."""
    v = view()
    v["values"].update(cluster_serve_enabled=True, cluster_serve_http_port=22, cluster_serve_instances=1)
    problems = preflight.check(v)["problems"]
    assert any("cluster_serve_http_port" in p["variable"] and "cluster_ssh_port" in p["message"] for p in problems), \
        [p["message"] for p in problems]


def test_every_problem_names_its_host():
    """The node a problem is about (in its variable, or the one node its message names), else the controller."""
    v = view()
    v["values"]["cluster_ssh_port"] = 0
    v["nodes"][1]["slots"] = "two"
    v["nodes"][0]["ip"] = "10.9.9.9"
    hosts = {p["variable"]: p["host"] for p in preflight.check(v)["problems"]}
    assert hosts == {"cluster_ssh_port": "localhost", "node_slots (node2)": "node2", "node_ip (node1)": "node1"}
    from mpi_trt_ansible.preflight.problems import with_host
    named = {"variable": "node_slots", "value": 2, "message": "Node node1 runs 2 rank(s) but sees 0 GPU(s).",
             "fix": "x"}
    assert with_host(named, ["node1", "node10"])["host"] == "node1"
    both = dict(named, message="node1 and node10 differ")
    assert with_host(both, ["node1", "node10"])["host"] == "localhost"


def test_settled_stages_are_decided_only_where_the_action_read_them_and_never_with_a_problem(tmp_path):
    from mpi_trt_ansible import settled
    v = view()
    state = str(tmp_path)
    v["values"]["cluster_state_dir"] = state
    names = [n["name"] for n in v["nodes"]]
    image = "%s:%s" % (v["values"]["cluster_image_name"], v["values"]["cluster_name"])
    listing = v["facts"]["docker"]
    listing["images"].append({"Id": "sha256:node", "RepoTags": [image]})
    listing["containers"] = [{"Names": ["/%s" % n], "Id": "c-" + n, "State": "running", "ImageID": "sha256:node"}
                             for n in names]
    record = settled.make_record("d1", listing, image, v["values"]["cluster_network_name"], names, state)
    v["settled"] = {"digest": "d1", "record": record, "full_run": True}
    result = preflight.check(v)
    assert result["settled"]["ok"] and result["stage_hosts"]["settled"] is True
    assert result["settled"]["stages"] == [key for _n, key in settled.STAGES] and result["settled"]["full_run"]
    # Another digest: the stages run and say why.
    result = preflight.check(dict(v, settled=dict(v["settled"], digest="d2")))
    assert not result["stage_hosts"]["settled"] and "changed since" in result["settled"]["reason"]
    # Asked for by tag, another mode (nothing read), or a problem anywhere: never settled.
    result = preflight.check(dict(v, settled={"asked": ["ssh_keys"]}))
    assert not result["stage_hosts"]["settled"] and result["settled"]["reason"] == "asked for by tag (ssh_keys)"
    assert preflight.check(dict(v, settled=None))["settled"]["ok"] is False
    bad = dict(v, values=dict(v["values"], cluster_mpi_timeout_s=-5))
    assert preflight.check(bad)["stage_hosts"]["settled"] is False
