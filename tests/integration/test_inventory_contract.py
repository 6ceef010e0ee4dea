# SPDX-License-Identifier: Apache-2.0
"""A user's own inventory, in the shapes Ansible reads, on the real docker engine (issue #12).

Each test writes its inventory at a temporary path (never beside the project), brings the cluster up to
the MPI hello and asserts that what came up is what the inventory said: every node's address as docker
records it and the ranks per host the hello counted. Every cluster has its own names and subnet (the
issue's example 10.9.0.0/24, then 192.168.161-164.0/24 and 192.168.167.0/24) and is removed by exact name
at the end (containers, network, and the node image where the test built it; the state is under the
test's tmp_path).

Runs only with ``MTRT_INTEGRATION=1``.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.skipif(os.environ.get("MTRT_INTEGRATION") != "1",
                                reason="needs docker; set MTRT_INTEGRATION=1")
UP_TO_HELLO = "node_image,cluster_network,ssh_keys,mpi_config,node_containers,ssh_mesh,mpi_hello"


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def play(env, inventory, *args, playbook="site.yml"):
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), playbook, *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    report = pathlib.Path(env["MTRT_REPORT_DIR"]) / "latest" / "report.json"
    return proc, (json.loads(report.read_text()) if report.exists() else None)


def hello_ranks(report):
    for hosts in report["results"].values():
        for entries in hosts.values():
            for entry in entries:
                if entry["kind"] == "mpi_hello":
                    return entry["result"]["ranks_per_host"]
    return None


def node_ips(network):
    """{container: IPv4 address} of every container docker attached to ``network`` with a fixed address."""
    data = json.loads(docker("network", "inspect", network).stdout)[0]
    names = [c["Name"] for c in (data.get("Containers") or {}).values()]
    out = {}
    for name in names:
        settings = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Networks"][network]
        out[name] = (settings.get("IPAMConfig") or {}).get("IPv4Address")
    return out


def assert_cluster(network, ranks, expected):
    """What came up is what the inventory said: ``expected`` {node: (node_ip, ranks)}, every node of it."""
    assert node_ips(network) == {node: ip for node, (ip, _) in expected.items()}
    assert ranks == {node: slots for node, (_, slots) in expected.items()}


def cluster_objects(prefix):
    names = docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    networks = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    return sorted(n for n in names + networks if n.startswith(prefix))


def images():
    return set(docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split())


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, MTRT_STATE_HOME=str(tmp_path / "state"), MTRT_REPORT_DIR=str(tmp_path / "reports"),
             PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    before = images()
    yield e
    # Remove what the test made, by exact name: containers and network (teardown keeps the state, which
    # is under tmp_path), and its cluster's node image where this test built it.
    for inventory in tmp_path.glob("inv*/*"):
        play(e, inventory, playbook="playbooks/teardown.yml")
        for cluster in re.findall(r"cluster_name\s*[:=]\s*([a-z0-9-]+)", inventory.read_text()):
            image = "mtrt-node:%s" % cluster
            if image not in before and image in images():
                docker("rmi", image, check=False)


def write(tmp_path, name, text):
    path = tmp_path / ("inv-%s" % name) / ("hosts.%s" % ("ini" if name.endswith("ini") else "yml"))
    path.parent.mkdir(parents=True)
    path.write_text(textwrap.dedent(text))
    return path


def issue_example():
    """The inventory of issue #12 as the README's "Inventory" section shows it (the first YAML block)."""
    section = (ROOT / "README.md").read_text().split("\n## Inventory\n", 1)[1]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))


def test_the_issue_inventory_at_any_path_brings_the_cluster_up(env, tmp_path):
    example = issue_example()
    nodes = example["all"]["children"]["nodes"]["hosts"]
    assert set(example) == {"all"} and set(example["all"]["vars"]) == {"cluster_network_subnet",
                                                                       "cluster_network_gateway"}
    # The example as written, with only what isolation on a shared engine needs: a cluster and network
    # name of its own, and the node names prefixed, because a node's container is named after it and
    # the default cluster's containers node1 and node2 may run on this engine (tests never touch them).
    example["all"]["vars"].update(cluster_name="mtrt-inv-issue", cluster_network_name="mtrt-inv-issue-net")
    example["all"]["children"]["nodes"]["hosts"] = {"iss-" + name: values for name, values in nodes.items()}
    inventory = write(tmp_path, "issue", yaml.safe_dump(example, sort_keys=False))
    proc, report = play(env, inventory, "--tags", UP_TO_HELLO)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert_cluster("mtrt-inv-issue-net", hello_ranks(report),
                   {"iss-" + name: (values["node_ip"], values.get("node_slots", 1)) for name, values in nodes.items()})


def test_the_yaml_inventory_at_any_path(env, tmp_path):
    inventory = write(tmp_path, "yaml", """\
        all:
          vars: {cluster_network_subnet: 192.168.161.0/24, cluster_network_gateway: 192.168.161.1,
                 cluster_name: mtrt-inv-yaml, cluster_network_name: mtrt-inv-yaml-net}
          children:
            nodes:
              hosts:
                iynode1: {node_ip: 192.168.161.11}
                iynode2: {node_ip: 192.168.161.12, node_slots: 3}
        """)
    proc, report = play(env, inventory, "--tags", UP_TO_HELLO)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert_cluster("mtrt-inv-yaml-net", hello_ranks(report),
                   {"iynode1": ("192.168.161.11", 1), "iynode2": ("192.168.161.12", 3)})


def test_the_same_inventory_as_ini(env, tmp_path):
    inventory = write(tmp_path, "ini", """\
        [nodes]
        iinode1 node_ip=192.168.162.11
        iinode2 node_ip=192.168.162.12 node_slots=3

        [all:vars]
        cluster_name=mtrt-inv-ini
        cluster_network_name=mtrt-inv-ini-net
        cluster_network_subnet=192.168.162.0/24
        cluster_network_gateway=192.168.162.1
        """)
    proc, report = play(env, inventory, "--tags", UP_TO_HELLO)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert_cluster("mtrt-inv-ini-net", hello_ranks(report),
                   {"iinode1": ("192.168.162.11", 1), "iinode2": ("192.168.162.12", 3)})


def test_ansible_runner_takes_a_single_inventory_file(env, tmp_path, monkeypatch):
    """The API (ansible-runner's inventory=) with one file, not a directory: a cluster of its own, brought up
    from nothing to the hello."""
    from mpi_trt_ansible import api
    inventory = write(tmp_path, "runner", """\
        all:
          vars: {cluster_name: mtrt-inv-run, cluster_network_name: mtrt-inv-run-net,
                 cluster_network_subnet: 192.168.167.0/24, cluster_network_gateway: 192.168.167.1}
          children:
            nodes:
              hosts:
                irnode1: {node_ip: 192.168.167.11, node_slots: 2}
                irnode2: {node_ip: 192.168.167.12}
                irnode3: {node_ip: 192.168.167.13, node_slots: 2}
        """)
    monkeypatch.setenv("MTRT_STATE_HOME", env["MTRT_STATE_HOME"])  # the runner passes the environment on
    result = api.run_pipeline(inventory=str(inventory), stages=UP_TO_HELLO.split(","),
                              private_data_dir=str(tmp_path / "pdd"), timeout=900)
    assert result.status == "successful", [f.message for f in result.failures]
    assert result.stage("node_containers") is not None and result.stage("mpi_hello") is not None
    assert_cluster("mtrt-inv-run-net", result.hello.ranks_per_host,
                   {"irnode1": ("192.168.167.11", 2), "irnode2": ("192.168.167.12", 1),
                    "irnode3": ("192.168.167.13", 2)})


@pytest.mark.parametrize("where", ["nodes_vars", "one_host"])
def test_a_cluster_variable_that_differs_between_hosts_is_refused_and_nothing_is_created(env, tmp_path, where):
    on_group = "      vars: {cluster_network_subnet: 10.163.0.0/24}\n" if where == "nodes_vars" else ""
    on_host = ", cluster_network_subnet: 10.163.0.0/24" if where == "one_host" else ""
    inventory = write(tmp_path, "conflict", """\
all:
  vars: {cluster_name: mtrt-inv-cfl, cluster_network_name: mtrt-inv-cfl-net,
         cluster_network_subnet: 192.168.163.0/24, cluster_network_gateway: 192.168.163.1}
  children:
    nodes:
%s      hosts:
        icnode1: {node_ip: 192.168.163.11}
        icnode2: {node_ip: 192.168.163.12%s}
""" % (on_group, on_host))
    before = cluster_objects("mtrt-inv-cfl") + cluster_objects("icnode")
    proc, report = play(env, inventory)
    assert proc.returncode != 0
    problems = [p for p in report["results"]["preflight"]["localhost"][0]["result"]["problems"]]
    assert [p["variable"] for p in problems] == ["cluster_network_subnet"], problems
    # "<variable> differs between hosts: <value> on <hosts>; <value> on <hosts>. Every play ..."
    listed = problems[0]["message"].split(" differs between hosts: ", 1)[1].split(". Every play", 1)[0]
    hosts_of = {value: set(hosts.split(", ")) for value, hosts in (part.split(" on ", 1) for part in listed.split("; "))}
    assert hosts_of == ({"'10.163.0.0/24'": {"icnode1", "icnode2"}, "'192.168.163.0/24'": {"localhost"}}
                        if where == "nodes_vars" else
                        {"'10.163.0.0/24'": {"icnode2"}, "'192.168.163.0/24'": {"icnode1", "localhost"}}), problems[0]
    assert cluster_objects("mtrt-inv-cfl") + cluster_objects("icnode") == before == []


def test_command_line_values_override_the_inventory(env, tmp_path):
    inventory = write(tmp_path, "extra", """\
        all:
          vars: {cluster_name: mtrt-inv-ext, cluster_network_name: mtrt-inv-ext-net,
                 cluster_network_subnet: 192.168.164.0/24, cluster_network_gateway: 192.168.164.1}
          children:
            nodes:
              hosts:
                ienode1: {node_ip: 192.168.164.11, node_slots: 2}
        """)
    proc, report = play(env, inventory, "--tags", UP_TO_HELLO, "-e", "cluster_network_name=mtrt-inv-ext-cli")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "mtrt-inv-ext-net" not in cluster_objects("mtrt-inv-ext")
    assert_cluster("mtrt-inv-ext-cli", hello_ranks(report), {"ienode1": ("192.168.164.11", 2)})
    down, _ = play(env, inventory, "-e", "cluster_network_name=mtrt-inv-ext-cli", playbook="playbooks/teardown.yml")
    assert down.returncode == 0 and cluster_objects("mtrt-inv-ext") == []
