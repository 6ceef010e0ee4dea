# SPDX-License-Identifier: Apache-2.0
"""Bad input, the hostile user's corpus (issues #18, #14): every case is refused by preflight, naming the variable
and the host, and site.yml creates nothing - docker's containers and networks are the same before and after (the
preflight's own probe container of the base image included).

Each case is the base inventory below with one change, run through the whole site.yml on the real engine.
Runs only with ``MTRT_INTEGRATION=1``.
"""

import copy
import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent

pytestmark = pytest.mark.skipif(os.environ.get("MTRT_INTEGRATION") != "1",
                                reason="needs docker; set MTRT_INTEGRATION=1")

BASE = {"all": {
    "vars": {"cluster_name": "mtrt-corpus", "cluster_network_name": "mtrt-corpus-net",
             "cluster_network_subnet": "192.168.165.0/24", "cluster_network_gateway": "192.168.165.1"},
    "children": {"nodes": {"hosts": {
        "cpnode1": {"node_ip": "192.168.165.11", "node_slots": 2},
        "cpnode2": {"node_ip": "192.168.165.12", "node_slots": 2}}}}}}


def cluster(**values):
    return lambda inv: inv["all"]["vars"].update(values)


def node(name, **values):
    return lambda inv: inv["all"]["children"]["nodes"]["hosts"][name].update(values)


def rename(old, new):
    def change(inv):
        hosts = inv["all"]["children"]["nodes"]["hosts"]
        hosts[new] = hosts.pop(old)
    return change


def group_vars(**values):
    return lambda inv: inv["all"]["children"]["nodes"].setdefault("vars", {}).update(values)


def no_nodes(inv):
    inv["all"]["children"]["nodes"] = {"hosts": {}}


# (id, change, the variable the refusal names, the host it names: a node, or localhost for what the controller checks)
CORPUS = [
    ("slots_word", node("cpnode2", node_slots="two"), "node_slots (cpnode2)", "cpnode2"),
    ("slots_zero", node("cpnode1", node_slots=0), "node_slots (cpnode1)", "cpnode1"),
    ("ip_outside_subnet", node("cpnode2", node_ip="10.1.2.3"), "node_ip (cpnode2)", "cpnode2"),
    ("ip_duplicate", node("cpnode2", node_ip="192.168.165.11"), "node_ip (cpnode2)", "cpnode2"),
    ("ip_is_gateway", node("cpnode1", node_ip="192.168.165.1"), "node_ip (cpnode1)", "cpnode1"),
    ("ip_not_an_address", node("cpnode1", node_ip="node-one"), "node_ip (cpnode1)", "cpnode1"),
    ("subnet_host_bits", cluster(cluster_network_subnet="192.168.165.5/24"), "cluster_network_subnet", "localhost"),
    ("subnet_overlaps_docker_bridge", cluster(cluster_network_subnet="172.17.0.0/16",
                                              cluster_network_gateway="172.17.0.1"), "cluster_network_subnet",
     "localhost"),
    ("gateway_outside", cluster(cluster_network_gateway="10.0.0.1"), "cluster_network_gateway", "localhost"),
    ("timeout_negative", cluster(cluster_mpi_timeout_s=-5), "cluster_mpi_timeout_s", "localhost"),
    ("timeout_word", cluster(cluster_mpi_timeout_s="abc"), "cluster_mpi_timeout_s", "localhost"),
    ("ssh_port_zero", cluster(cluster_ssh_port=0), "cluster_ssh_port", "localhost"),
    ("ssh_user_invalid", cluster(cluster_ssh_user="Root User"), "cluster_ssh_user", "localhost"),
    ("kex_unknown", cluster(cluster_ssh_kex_algorithms=["nope"]), "cluster_ssh_kex_algorithms", "localhost"),
    ("ulimit_unknown", cluster(cluster_ulimits={"bogus": 1}), "cluster_ulimits.bogus", "localhost"),
    ("ulimit_word", cluster(cluster_ulimits={"nofile": "many"}), "cluster_ulimits.nofile", "localhost"),
    ("shm_word", cluster(cluster_shm_size="lots"), "cluster_shm_size", "localhost"),
    ("mode_unknown", cluster(cluster_mode="kubernetes"), "cluster_mode", "localhost"),
    ("name_invalid", cluster(cluster_name="bad name!"), "cluster_name", "localhost"),
    ("mount_relative", cluster(cluster_shared_mount="TRTDir"), "cluster_shared_mount", "localhost"),
    ("shared_missing", cluster(cluster_shared_host_dir="/nonexistent/mtrt-corpus", cluster_shared_host_dir_create=False),
     "cluster_shared_host_dir", "localhost"),
    ("launcher_not_a_node", cluster(cluster_mpi_launcher="elsewhere"), "cluster_mpi_launcher", "localhost"),
    ("image_not_loaded", cluster(cluster_image_base="not/loaded:1"), "cluster_image_base", "localhost"),
    ("nodes_empty", no_nodes, "the nodes group", "localhost"),
    ("node_name_hex", rename("cpnode2", "beef"), "inventory_hostname", "beef"),
    ("node_name_case_twin", rename("cpnode2", "CPNODE1"), "inventory_hostname", "CPNODE1"),
    ("mpi_host_duplicate", node("cpnode2", node_mpi_host="cpnode1"), "node_mpi_host (cpnode2)", "cpnode2"),
    ("gpus_without_gpus", node("cpnode1", node_gpus=[0]), "node_gpus (cpnode1)", "cpnode1"),
    ("gpus_as_text", node("cpnode1", node_gpus="1,2"), "node_gpus (cpnode1)", "cpnode1"),
    ("gpus_invalid", node("cpnode1", node_gpus=["a"]), "node_gpus (cpnode1)", "cpnode1"),
    ("cluster_value_on_the_nodes_group", group_vars(cluster_network_subnet="192.168.166.0/24"),
     "cluster_network_subnet", "localhost"),
    ("role_variable_wrong_type", cluster(mpi_hello_timeout_s="x"), "mpi_hello_timeout_s", "localhost"),
    ("trtllm_enabled_word", cluster(cluster_trtllm_enabled="sometimes"), "cluster_trtllm_enabled", "localhost"),
    # TensorRT-LLM (issue #14): forced on, the settings are checked before anything is created.
    ("trtllm_enabled_without_gpus", cluster(cluster_trtllm_enabled=True), "cluster_trtllm_enabled", "localhost"),
    ("trtllm_tp_pp_over_slots", cluster(cluster_trtllm_enabled=True, cluster_trtllm_tp_size=3),
     "cluster_trtllm_tp_size x cluster_trtllm_pp_size", "localhost"),
    ("trtllm_family_unknown", cluster(cluster_trtllm_enabled=True, cluster_trtllm_family="mistral"),
     "cluster_trtllm_family", "localhost"),
    ("trtllm_model_dir_missing", cluster(cluster_trtllm_enabled=True,
                                         cluster_trtllm_model_dir="/TRTDir/Models/not-there"),
     "cluster_trtllm_model_dir", "localhost"),
    # The ranks' interpreter, read in a throwaway container of the base image (removed by its name).
    ("mpi_python_not_in_image", lambda inv: inv["all"]["vars"].update(
        cluster_image_base=base_image(), cluster_mpi_python="/opt/mtrt-corpus/bin/python"),
     "cluster_mpi_python", "localhost"),
]


def base_image():
    """A node base image already on this docker host (the offline Debian base the project builds)."""
    tags = subprocess.run(["docker", "images", "--filter", "label=mtrt.role=base", "--format",
                           "{{.Repository}}:{{.Tag}}"], check=True, capture_output=True, text=True).stdout.split()
    tags = [t for t in tags if not t.endswith(":<none>")]
    if not tags:
        pytest.skip("no offline base image (label mtrt.role=base) on this docker host; a site.yml run builds one")
    return tags[0]


def docker_objects():
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], check=True, capture_output=True,
                           text=True).stdout.split()
    networks = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], check=True,
                              capture_output=True, text=True).stdout.split()
    return sorted(n for n in names + networks
                  if n.startswith(("mtrt-corpus", "cpnode", "beef", "CPNODE", "mtrt-preflight-probe")))


@pytest.mark.parametrize("case,change,variable,host", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_is_refused_by_preflight_and_nothing_is_created(case, change, variable, host, tmp_path):
    inventory = copy.deepcopy(BASE)
    change(inventory)
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, MTRT_STATE_HOME=str(tmp_path / "state"), MTRT_REPORT_DIR=str(tmp_path / "reports"),
               PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    before = docker_objects()
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(path), "site.yml"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, "%s was not refused:\n%s" % (case, proc.stdout[-3000:])
    report = json.loads((tmp_path / "reports" / "latest" / "report.json").read_text())
    assert [s["key"] for s in report["stages"] if s["status"] == "failed"] == ["preflight"], report["stages"]
    result = report["results"]["preflight"]["localhost"][0]["result"]
    named = [p for p in result["problems"] if p["variable"] == variable or p["variable"].startswith(variable)]
    assert named, "%s: %s" % (case, result["msg"])
    assert named[0]["host"] == host, "%s names host %s, not %s" % (case, named[0]["host"], host)
    for problem in result["problems"]:
        assert problem["message"] and problem["fix"] and problem["host"] and "value" in problem, problem
    assert docker_objects() == before, "%s created docker objects" % case
    assert not (tmp_path / "state" / "mtrt-corpus" / "ssh").exists(), "%s created keys" % case
