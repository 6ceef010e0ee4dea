# SPDX-License-Identifier: Apache-2.0
"""mpi_trt_ansible.preflight.topology: one case per topology check, the facts parsers, and the combined message."""

import copy
import ipaddress
import json

import jinja2
import pytest
import yaml
from mpi_trt_ansible.preflight import facts
from mpi_trt_ansible.preflight import topology as topo
from mpi_trt_ansible.preflight.problems import format_problems
from conftest import FIXTURES, ROOT, project_defaults

FIX = FIXTURES / "topology"


def _in_docker_mode(value):
    """A default that depends on cluster_mode, as docker mode (the default) renders it."""
    if not isinstance(value, str) or "{{" not in value:
        return value
    text = jinja2.Template(value).render(cluster_mode="docker")
    return int(text) if text.isdigit() else text


def default_spec():
    """The repo's inventory/local + project defaults, with facts from the fixtures."""
    cluster = {k: _in_docker_mode(v) if k.startswith(("cluster_ssh_", "cluster_shared_mount")) else v
               for k, v in project_defaults().items()}
    inv = yaml.safe_load((ROOT / "inventory/local/hosts.yml").read_text())
    hosts = inv["all"]["children"]["nodes"]["hosts"]
    nodes = [{"name": name, "ip": h["node_ip"], "gpus": h.get("node_gpus", []),
              "slots": h.get("node_slots", 1), "docker_host": "localhost"}
             for name, h in hosts.items()]
    return {
        "cluster_name": cluster["cluster_name"],
        "mode": cluster["cluster_mode"],
        "network": {"name": cluster["cluster_network_name"], "subnet": cluster["cluster_network_subnet"],
                    "gateway": cluster["cluster_network_gateway"]},
        "nodes": nodes,
        "ssh": {"user": cluster["cluster_ssh_user"], "port": cluster["cluster_ssh_port"],
                "kex_algorithms": cluster["cluster_ssh_kex_algorithms"]},
        # cluster_shared_host_dir is templated from the state dir; any absolute path stands in.
        "shared": {"host_dir": "/home/u/.local/state/mpi-trt-ansible/mtrt/shared", "exists": False,
                   "create": cluster["cluster_shared_host_dir_create"],
                   "mount": cluster["cluster_shared_mount"]},
        "mpi": {"np": None, "launcher": nodes[0]["name"]},  # cluster_mpi_launcher: groups['nodes'][0]
        "trtllm": {"enabled": False},
        "ulimits": dict(cluster["cluster_ulimits"]),
        "docker_networks": json.loads((FIX / "docker_networks.json").read_text()),
        "host_routes": facts.parse_proc_net_route((FIX / "proc_net_route_docker_host.txt").read_text()),
        "docker_hosts": {"localhost": {"gpus": [0, 1], "ulimits": facts.parse_proc_limits(
            (FIX / "proc_limits_dockerd.txt").read_text())}},
    }


def node(spec, name):
    return next(n for n in spec["nodes"] if n["name"] == name)


def move_to(spec, subnet):
    """Put the whole cluster (gateway, node IPs) into ``subnet``."""
    net = ipaddress.ip_network(subnet)
    spec["network"].update(subnet=subnet, gateway=str(net[1]))
    for i, n in enumerate(spec["nodes"]):
        n["ip"] = str(net[111 % (net.num_addresses - 2) + i])


def mentions(text, value):
    if isinstance(value, list):
        return all(str(v) in text for v in value)
    return str(value) in text


# (id, mutation, variable, value, words in the message or fix)
CASES = [
    ("name_duplicate_case", lambda s: s["nodes"].append(dict(node(s, "node1"), name="NODE1",
                                                             ip="192.168.123.113")),
     "inventory_hostname", "NODE1", "case-insensitive"),
    ("name_invalid_chars", lambda s: node(s, "node2").update(name="Node_2"),
     "inventory_hostname", "Node_2", "'node-2'"),
    ("name_too_long", lambda s: node(s, "node2").update(name="n" * 64),
     "inventory_hostname", "n" * 64, "at most 63"),
    ("kex_unknown_name", lambda s: s["ssh"].update(kex_algorithms=["curve25519-sha265"]),
     "cluster_ssh_kex_algorithms", ["curve25519-sha265"], "ssh -Q kex"),
    ("kex_not_a_list", lambda s: s["ssh"].update(kex_algorithms="curve25519-sha256"),
     "cluster_ssh_kex_algorithms", "curve25519-sha256", "is not a list"),
    ("name_hex_only_is_an_id_prefix", lambda s: node(s, "node2").update(name="b2"),
     "inventory_hostname", "b2", "container ID prefix"),
    ("ip_duplicate", lambda s: node(s, "node2").update(ip="192.168.123.111"),
     "node_ip (node2)", "192.168.123.111", "already used by node node1"),
    ("ip_invalid", lambda s: node(s, "node2").update(ip="192.168.123.300"),
     "node_ip (node2)", "192.168.123.300", "not a valid IPv4"),
    ("ip_outside_subnet", lambda s: node(s, "node2").update(ip="192.168.124.5"),
     "node_ip (node2)", "192.168.124.5", "outside cluster_network_subnet"),
    ("ip_is_gateway", lambda s: node(s, "node2").update(ip="192.168.123.1"),
     "node_ip (node2)", "192.168.123.1", "equals cluster_network_gateway"),
    ("ip_is_network_address", lambda s: node(s, "node2").update(ip="192.168.123.0"),
     "node_ip (node2)", "192.168.123.0", "network address"),
    ("ip_is_broadcast", lambda s: node(s, "node2").update(ip="192.168.123.255"),
     "node_ip (node2)", "192.168.123.255", "broadcast address"),
    ("gateway_outside_subnet", lambda s: s["network"].update(gateway="192.168.1.1"),
     "cluster_network_gateway", "192.168.1.1", "is outside"),
    ("gateway_invalid", lambda s: s["network"].update(gateway="gw"),
     "cluster_network_gateway", "gw", "not a valid IPv4"),
    ("subnet_invalid", lambda s: s["network"].update(subnet="192.168.123.0/33"),
     "cluster_network_subnet", "192.168.123.0/33", "not a valid CIDR"),
    ("subnet_host_bits", lambda s: s["network"].update(subnet="192.168.123.5/24"),
     "cluster_network_subnet", "192.168.123.5/24", "cluster_network_subnet: 192.168.123.0/24"),
    ("subnet_ipv6", lambda s: s["network"].update(subnet="fd00::/64"),
     "cluster_network_subnet", "fd00::/64", "IPv6"),
    ("subnet_too_small", lambda s: s["network"].update(subnet="192.168.123.0/30"),
     "cluster_network_subnet", "192.168.123.0/30", "room for 1 node"),
    ("subnet_overlaps_docker_network", lambda s: move_to(s, "172.18.5.0/24"),
     "cluster_network_subnet", "172.18.5.0/24", "overlaps docker network 'monitoring'"),
    ("subnet_overlaps_default_bridge", lambda s: move_to(s, "172.17.0.0/16"),
     "cluster_network_subnet", "172.17.0.0/16", "overlaps docker network 'bridge'"),
    ("own_network_other_subnet", lambda s: s["docker_networks"][3]["IPAM"]["Config"][0].update(
        Subnet="192.168.50.0/24"),
     "cluster_network_subnet", "192.168.123.0/24", "docker network rm network_my"),
    ("own_network_other_gateway", lambda s: s["docker_networks"][3]["IPAM"]["Config"][0].update(
        Gateway="192.168.123.254"),
     "cluster_network_gateway", "192.168.123.1", "gateway 192.168.123.254"),
    ("subnet_overlaps_host_route", lambda s: move_to(s, "10.8.0.0/24"),
     "cluster_network_subnet", "10.8.0.0/24", "overlaps host route 10.8.0.0/24 (dev tun0)"),
    ("subnet_overlaps_plain_cidr_route", lambda s: s["host_routes"].append("192.168.0.0/16"),
     "cluster_network_subnet", "192.168.123.0/24", "overlaps host route 192.168.0.0/16"),
    ("network_name_invalid", lambda s: s["network"].update(name="-net"),
     "cluster_network_name", "-net", "not a valid docker network name"),
    ("gpu_duplicate_on_host", lambda s: [node(s, n).update(gpus=[1]) for n in ("node1", "node2")],
     "node_gpus (node2)", [1], "already pinned to node node1"),
    ("gpu_not_on_host", lambda s: node(s, "node1").update(gpus=[0, 5]),
     "node_gpus (node1)", [0, 5], "asks for GPU 5"),
    ("gpu_host_has_none", lambda s: (node(s, "node1").update(gpus=[0]),
                                     s["docker_hosts"]["localhost"].update(gpus=None)),
     "node_gpus (node1)", [0], "nvidia-container-toolkit"),
    ("gpu_ids_invalid", lambda s: node(s, "node1").update(gpus=[-1]),
     "node_gpus (node1)", [-1], "distinct integers >= 0"),
    ("slots_below_one", lambda s: node(s, "node2").update(slots=0),
     "node_slots (node2)", 0, "at least 1 MPI slot"),
    ("np_above_slots", lambda s: s["mpi"].update(np=8),
     "cluster_mpi_np", 8, "hostfile gives 4 (node1:2, node2:2)"),
    ("np_one_above_slots", lambda s: s["mpi"].update(np=5),
     "cluster_mpi_np", 5, "hostfile gives 4"),
    ("ulimit_one_above_host", lambda s: s["ulimits"].update(nofile=1048577),
     "cluster_ulimits.nofile", 1048577, "grants at most 1048576"),
    ("np_below_one", lambda s: s["mpi"].update(np=0),
     "cluster_mpi_np", 0, "at least 1 rank"),
    ("ssh_port_zero", lambda s: s["ssh"].update(port=0),
     "cluster_ssh_port", 0, "1..65535"),
    ("ssh_port_too_high", lambda s: s["ssh"].update(port=70000),
     "cluster_ssh_port", 70000, "1..65535"),
    ("ssh_user_invalid", lambda s: s["ssh"].update(user="Root User"),
     "cluster_ssh_user", "Root User", "not a valid user name"),
    ("shared_missing_no_create", lambda s: s["shared"].update(create=False),
     "cluster_shared_host_dir", "/home/u/.local/state/mpi-trt-ansible/mtrt/shared",
     "cluster_shared_host_dir_create: true"),
    ("shared_host_dir_relative", lambda s: s["shared"].update(host_dir="shared"),
     "cluster_shared_host_dir", "shared", "absolute"),
    ("shared_mount_relative", lambda s: s["shared"].update(mount="TRTDir"),
     "cluster_shared_mount", "TRTDir", "absolute"),
    ("launcher_not_a_node", lambda s: s["mpi"].update(launcher="node3"),
     "cluster_mpi_launcher", "node3", "one of: node1, node2"),
    ("ulimit_above_host_hard", lambda s: s["ulimits"].update(memlock=-1),
     "cluster_ulimits.memlock", -1, "grants at most 65536"),
    ("ulimit_soft_hard_above_host", lambda s: s["ulimits"].update(nofile="1024:2097152"),
     "cluster_ulimits.nofile", "1024:2097152", "grants at most 1048576"),
    ("ulimit_soft_above_hard", lambda s: s["ulimits"].update(nofile="65536:1024"),
     "cluster_ulimits.nofile", "65536:1024", "soft limit above its hard limit"),
    ("ulimit_not_a_number", lambda s: s["ulimits"].update(nofile="lots"),
     "cluster_ulimits.nofile", "lots", "soft:hard"),
    ("ulimit_below_minus_one", lambda s: s["ulimits"].update(nofile=-2),
     "cluster_ulimits.nofile", -2, "-1 = unlimited"),
    ("ulimit_unknown_name", lambda s: s["ulimits"].update(files=1024),
     "cluster_ulimits.files", 1024, "not a ulimit docker knows"),
    ("mode_invalid", lambda s: s.update(mode="swarm"),
     "cluster_mode", "swarm", "is not one of docker, local, hosts, docker_per_host"),
    ("local_mode_many_nodes", lambda s: s.update(mode="local"),
     "the nodes group", ["node1", "node2"], "exactly one node"),
    ("cluster_name_invalid", lambda s: s.update(cluster_name="my cluster"),
     "cluster_name", "my cluster", "docker object name"),
]


def test_default_topology_is_valid():
    spec = default_spec()
    assert topo.validate(spec) == []
    # the fixtures really hold our own network and its bridge route, which must be accepted
    assert any(r["dst"] == "192.168.123.0/24" for r in spec["host_routes"])


@pytest.mark.parametrize("mutate,variable,value,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_check(mutate, variable, value, words):
    spec = default_spec()
    mutate(spec)
    problems = topo.validate(spec)
    hits = [p for p in problems if p["variable"] == variable and p["value"] == value]
    assert hits, "no problem for %s=%r in %s" % (variable, value, problems)
    assert any(words in p["message"] + " " + p["fix"] for p in hits), hits
    for p in problems:  # every message names its variable and value, and has a fix
        assert p["variable"] in p["message"] or p["variable"] == "inventory_hostname", p
        assert p["value"] is None or mentions(p["message"], p["value"]), p
        assert p["fix"].strip()


def test_limits_at_the_boundary_are_valid():
    spec = default_spec()
    spec["mpi"]["np"] = 4
    spec["ulimits"].update(nofile="1024:1048576", memlock=65536, nproc=-1)
    spec["ssh"]["port"] = 65535
    node(spec, "node2").update(ip="192.168.123.254", gpus=[1])
    node(spec, "node1")["gpus"] = [0]
    assert topo.validate(spec) == []
    spec["ssh"]["port"] = 1
    assert topo.validate(spec) == []


MISSING = [
    ("cluster_name", lambda s: s.update(cluster_name=None)),
    ("cluster_network_name", lambda s: s["network"].update(name=None)),
    ("cluster_network_subnet", lambda s: s["network"].update(subnet=None)),
    ("cluster_network_gateway", lambda s: s["network"].update(gateway=None)),
    ("node_ip (node2)", lambda s: node(s, "node2").update(ip=None)),
    ("node_slots (node2)", lambda s: node(s, "node2").update(slots=None)),
    ("node_gpus (node2)", lambda s: node(s, "node2").update(gpus=None)),
    ("node_docker_host (node2)", lambda s: node(s, "node2").update(docker_host=None)),
    ("cluster_ssh_user", lambda s: s["ssh"].update(user=None)),
    ("cluster_ssh_port", lambda s: s["ssh"].update(port=None)),
    ("cluster_shared_host_dir", lambda s: s["shared"].update(host_dir=None)),
    ("cluster_shared_mount", lambda s: s["shared"].update(mount=None)),
    ("cluster_mpi_launcher", lambda s: s["mpi"].update(launcher=None)),
]


@pytest.mark.parametrize("variable,mutate", MISSING, ids=[m[0] for m in MISSING])
def test_missing_variable(variable, mutate):
    spec = default_spec()
    mutate(spec)
    hits = [p for p in topo.validate(spec) if p["variable"] == variable and p["value"] is None]
    assert len(hits) == 1 and "not set" in hits[0]["message"], hits


def test_a_node_of_docker_per_host_without_its_docker_host_names_node_docker_host():
    spec = dict(default_spec(), mode="docker_per_host")
    node(spec, "node2").update(docker_host=None)
    hits = [p for p in topo.validate(spec) if p["variable"] == "node_docker_host (node2)"]
    assert [p["fix"] for p in hits] == ["Set node_docker_host on host node2 in the inventory."], hits


def test_every_variable_a_message_names_is_a_variable_of_the_contract():
    """A message names what a user edits: a contract variable (roles/cluster/meta/contract.yml) or the host."""
    specs = yaml.safe_load((ROOT / "roles/cluster/meta/contract.yml").read_text())["argument_specs"]
    known = set(specs["contract"]["options"]) | set(specs["node"]["options"]) | {"inventory_hostname"}
    named = {v for v in topo.VAR_NAMES.values() if " " not in v}
    assert sorted(named - known) == []


def test_own_bridge_route_is_only_excused_via_docker_networks():
    spec = default_spec()
    spec["docker_networks"] = []  # without the network, its bridge route is just a route
    problems = topo.validate(spec)
    assert [p["message"] for p in problems] == [
        "cluster_network_subnet 192.168.123.0/24 overlaps host route 192.168.123.0/24 (dev br-3f2a9c1b7d4e);"
        " node traffic would be misrouted (br-3f2a9c1b7d4e looks like a docker bridge: pass docker_networks"
        " so preflight can tell whether it is 'network_my')."]


def test_overlap_fix_suggests_a_free_subnet():
    spec = default_spec()
    del spec["docker_networks"][3]  # network_my does not exist yet
    move_to(spec, "172.18.5.0/24")
    fix = next(p["fix"] for p in topo.validate(spec) if "monitoring" in p["message"])
    suggested = fix.split("e.g. ")[1].split(" ")[0]
    move_to(spec, suggested)
    assert topo.validate(spec) == []


def test_local_mode_skips_docker_only_checks():
    spec = default_spec()
    spec.update(mode="local", nodes=spec["nodes"][:1], network={}, ssh={})
    spec["ulimits"]["memlock"] = -1  # not applied without containers
    assert topo.validate(spec) == []


def test_several_problems_come_back_in_one_message():
    spec = default_spec()
    node(spec, "node2").update(ip="192.168.123.1", slots=0)
    spec["ssh"]["port"] = 0
    problems = topo.validate(spec)
    assert [p["variable"] for p in problems] == ["node_slots (node2)", "node_ip (node2)", "cluster_ssh_port"]
    text = format_problems(problems)
    assert text.startswith("Preflight found 3 problems")
    for i, p in enumerate(problems, 1):
        assert " %d. %s\n    Fix: %s" % (i, p["message"], p["fix"]) in text
    assert format_problems([]) == "Preflight found no problems."


def test_parse_proc_net_route_real_sample():
    assert facts.parse_proc_net_route((FIX / "proc_net_route_ci.txt").read_text()) == [
        {"dst": "0.0.0.0/0", "dev": "eth0", "gateway": "192.0.2.1"},
        {"dst": "172.17.0.0/16", "dev": "docker0", "gateway": "0.0.0.0"},
        {"dst": "192.0.2.0/24", "dev": "eth0", "gateway": "0.0.0.0"},
    ]


def test_parse_proc_net_route_skips_down_routes():
    routes = facts.parse_proc_net_route((FIX / "proc_net_route_docker_host.txt").read_text())
    assert [(r["dst"], r["dev"]) for r in routes] == [
        ("0.0.0.0/0", "eth0"), ("10.0.2.0/24", "eth0"), ("172.17.0.0/16", "docker0"),
        ("172.18.0.0/16", "br-a1b2c3d4e5f6"), ("192.168.123.0/24", "br-3f2a9c1b7d4e"),
        ("10.8.0.0/24", "tun0")]  # eth1 169.254.0.0/16 is not up


def test_parse_proc_limits():
    limits = facts.parse_proc_limits((FIX / "proc_limits_dockerd.txt").read_text())
    assert limits["nofile"] == 1048576 and limits["memlock"] == 65536
    assert limits["stack"] == -1 and limits["nproc"] == -1 and len(limits) == 16


def test_ip_json_route_shape_and_normalised_networks():
    spec = default_spec()
    spec["host_routes"] = [{"dst": "default", "gateway": "10.0.2.1", "dev": "eth0"},
                           {"dst": "192.168.123.7", "dev": "wg0", "scope": "link"}]  # `ip -j route`
    spec["docker_networks"] = [{"name": "network_my", "subnets": ["192.168.123.0/24"], "bridge": "br-x"}]
    assert [p["message"] for p in topo.validate(spec)] == [
        "cluster_network_subnet 192.168.123.0/24 overlaps host route 192.168.123.7/32 (dev wg0);"
        " node traffic would be misrouted."]


def test_validate_does_not_mutate_spec():
    spec = default_spec()
    move_to(spec, "172.18.5.0/24")
    before = copy.deepcopy(spec)
    topo.validate(spec)
    assert spec == before


def test_grantable_ulimits_only_bind_a_daemon_without_cap_sys_resource():
    grantable_ulimits = facts.grantable_ulimits
    limits = (FIXTURES / "topology" / "proc_limits_dockerd.txt").read_text()
    sandboxed = "Name:\tdockerd\nCapEff:\t000001fffeffffff\n"
    rootful = "Name:\tdockerd\nCapEff:\t000001ffffffffff\n"
    assert grantable_ulimits(sandboxed, limits)["nofile"] > 0
    assert grantable_ulimits(rootful, limits) == {}
    assert grantable_ulimits("", limits) == {}


@pytest.mark.parametrize("kex", [[], ["curve25519-sha256"], ["+sntrup761x25519-sha512@openssh.com"],
                                 ["mlkem768x25519-sha256", "curve25519-sha256"]])
def test_kex_lists_openssh_accepts(kex):
    spec = default_spec()
    spec["ssh"]["kex_algorithms"] = kex
    assert topo.validate(spec) == []


def test_two_nodes_with_one_hostfile_name_are_refused_naming_both():
    """node_mpi_host is the hostfile's name of a node: two alike would put both nodes' ranks on one host."""
    from mpi_trt_ansible.preflight import topology
    nodes = [{"name": "node1", "ip": "10.0.0.11", "slots": 1, "gpus": [], "mpi_host": "node1", "docker_host": "h"},
             {"name": "node2", "ip": "10.0.0.12", "slots": 1, "gpus": [], "mpi_host": "NODE1", "docker_host": "h"}]
    problems = [p for p in topology.validate({"mode": "docker", "cluster_name": "c", "nodes": nodes})
                if p["variable"].startswith("node_mpi_host")]
    assert problems == [{
        "variable": "node_mpi_host (node2)", "value": "NODE1", "host": "node2",
        "message": "node_mpi_host (node2) is 'NODE1', the hostfile name of node node1 too: mpirun would take them "
                   "for one host and start both nodes' ranks there.",
        "fix": "Give hosts node1 and node2 hostfile names of their own: correct node_mpi_host where it is set on one "
               "of them, or remove it (its default, the inventory name, is unique)."}]
    nodes[1]["mpi_host"] = "node2"
    assert not [p for p in topology.validate({"mode": "docker", "cluster_name": "c", "nodes": nodes})
                if p["variable"].startswith("node_mpi_host")]
