# SPDX-License-Identifier: Apache-2.0
"""A user's own inventory, in the shapes Ansible reads, on the real docker engine (issue #12).

Each test writes its inventory at a temporary path (never beside the project), brings the cluster
up to the MPI hello and asserts that what came up is what the inventory said: the nodes' addresses
as docker records them and the ranks per host the hello counted. Every cluster has its own names
and subnet (192.168.161-164.0/24) and is removed by exact name at the end.

Runs only with ``MTRT_INTEGRATION=1``.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

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


def node_ip(name, network):
    data = json.loads(docker("inspect", name).stdout)[0]
    return data["NetworkSettings"]["Networks"][network]["IPAMConfig"]["IPv4Address"]


def cluster_objects(prefix):
    names = docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    networks = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    return sorted(n for n in names + networks if n.startswith(prefix))


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, MTRT_STATE_HOME=str(tmp_path / "state"), MTRT_REPORT_DIR=str(tmp_path / "reports"),
             PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    yield e
    # Remove what the test made, by exact name (teardown keeps the state, which is under tmp_path).
    for inventory in tmp_path.glob("inv*/*"):
        play(e, inventory, playbook="playbooks/teardown.yml")


def write(tmp_path, name, text):
    path = tmp_path / ("inv-%s" % name) / ("hosts.%s" % ("ini" if name.endswith("ini") else "yml"))
    path.parent.mkdir(parents=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_the_issue_inventory_at_any_path_brings_the_cluster_up(env, tmp_path, monkeypatch):
    inventory = write(tmp_path, "yaml", """\
        all:
          vars: {cluster_network_subnet: 192.168.161.0/24, cluster_network_gateway: 192.168.161.1,
                 cluster_name: mtrt-inv-yaml, cluster_network_name: mtrt-inv-yaml-net}
          children:
            nodes:
              hosts:
                iynode1: {node_ip: 192.168.161.11, node_slots: 1}
                iynode2: {node_ip: 192.168.161.12, node_slots: 3}
        """)
    proc, report = play(env, inventory, "--tags", UP_TO_HELLO)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert hello_ranks(report) == {"iynode1": 1, "iynode2": 3}
    assert node_ip("iynode1", "mtrt-inv-yaml-net") == "192.168.161.11"
    assert node_ip("iynode2", "mtrt-inv-yaml-net") == "192.168.161.12"

    # The same file through ansible-runner's inventory= (a single file, not a directory).
    from mpi_trt_ansible import api
    monkeypatch.setenv("MTRT_STATE_HOME", env["MTRT_STATE_HOME"])  # the runner passes the environment on
    result = api.run_pipeline(inventory=str(inventory), stages=["mpi_hello"], private_data_dir=str(tmp_path / "pdd"),
                              timeout=600)
    assert result.status == "successful", [f.message for f in result.failures]
    assert result.hello.ranks_per_host == {"iynode1": 1, "iynode2": 3}


def test_the_same_inventory_as_ini(env, tmp_path):
    inventory = write(tmp_path, "ini", """\
        [nodes]
        iinode1 node_ip=192.168.162.11 node_slots=1
        iinode2 node_ip=192.168.162.12 node_slots=3

        [all:vars]
        cluster_name=mtrt-inv-ini
        cluster_network_name=mtrt-inv-ini-net
        cluster_network_subnet=192.168.162.0/24
        cluster_network_gateway=192.168.162.1
        """)
    proc, report = play(env, inventory, "--tags", UP_TO_HELLO)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert hello_ranks(report) == {"iinode1": 1, "iinode2": 3}
    assert node_ip("iinode2", "mtrt-inv-ini-net") == "192.168.162.12"


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
    assert node_ip("ienode1", "mtrt-inv-ext-cli") == "192.168.164.11"
    assert "mtrt-inv-ext-net" not in cluster_objects("mtrt-inv-ext")
    assert hello_ranks(report) == {"ienode1": 2}
    down, _ = play(env, inventory, "-e", "cluster_network_name=mtrt-inv-ext-cli", playbook="playbooks/teardown.yml")
    assert down.returncode == 0 and cluster_objects("mtrt-inv-ext") == []
