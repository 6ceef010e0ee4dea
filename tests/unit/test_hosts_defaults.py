# SPDX-License-Identifier: Apache-2.0
"""The project defaults per cluster_mode, templated as Ansible does: docker mode keeps its values,
the modes over several machines get theirs; the hosts_preflight action's result; and the copies every
machine gets in hosts mode cover every script a stage deploys."""

import pathlib

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader, init_plugin_loader
from ansible.template import Templar, trust_as_template
from conftest import ROOT, load_action

hosts_preflight = load_action("hosts_preflight")


def _trust(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trust(v) for v in value]
    if isinstance(value, dict):
        return {k: _trust(v) for k, v in value.items()}
    return value


def defaults(mode, localhost=None, **inventory):
    init_plugin_loader()
    filter_loader.add_directory(str(ROOT / "python_plugins" / "filter"))
    merged = {}
    for path in sorted((ROOT / "roles" / "cluster" / "defaults" / "main").glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    variables = _trust(merged)
    nodes = {"n1": {"node_ip": "10.0.0.11", "node_docker_host": "dh1"},
             "n2": {"node_ip": "10.0.0.12", "node_docker_host": "dh2"}}
    variables.update(cluster_mode=mode, groups={"nodes": list(nodes)}, inventory_hostname="n1",
                     hostvars=dict(nodes, localhost=localhost or {}), **inventory)
    templar = Templar(loader=DataLoader(), variables=variables)
    return lambda name: templar.template(variables[name])


def test_docker_mode_keeps_its_values():
    value = defaults("docker")
    assert value("cluster_mpi_mca_effective") == {
        "btl_tcp_if_include": "192.168.123.0/24", "oob_tcp_if_include": "192.168.123.0/24",
        "btl_vader_single_copy_mechanism": "none", "mpi_yield_when_idle": 1}
    assert value("cluster_node_config_dir") == "/etc/mtrt/cluster"
    assert (value("cluster_ssh_user"), value("cluster_ssh_port")) == ("root", 22)
    assert value("cluster_shared_mount") == "/TRTDir"
    assert value("cluster_shared_host_dir").endswith("/mtrt/shared")
    assert value("cluster_machines") == []


@pytest.mark.parametrize("major,oob", [(None, True), (4, True), (5, False)])
def test_hosts_mode_pins_the_fabric_for_the_open_mpi_line(major, oob):
    value = defaults("hosts", localhost={"hosts_preflight_openmpi_major": major},
                     cluster_network_subnet="10.0.0.0/24")
    want = {"btl_tcp_if_include": "10.0.0.0/24"}
    if oob:
        want["oob_tcp_if_include"] = "10.0.0.0/24"
    assert value("cluster_mpi_mca_effective") == want
    assert value("cluster_node_config_dir") == "/etc/mtrt/mtrt"
    assert (value("cluster_ssh_user"), value("cluster_ssh_port")) == ("mtrt", 22)
    assert value("cluster_shared_mount") == value("cluster_shared_host_dir") == "/srv/mtrt/mtrt"
    assert value("cluster_machines") == ["n1", "n2"]


def test_docker_per_host_mode():
    value = defaults("docker_per_host", cluster_network_subnet="10.0.0.0/24")
    assert value("cluster_machines") == ["dh1", "dh2"]
    assert (value("cluster_ssh_user"), value("cluster_ssh_port")) == ("root", 2233)
    assert value("cluster_node_config_dir") == "/etc/mtrt/cluster"
    assert value("cluster_shared_mount") == "/TRTDir"
    assert value("cluster_mpi_mca_effective")["btl_tcp_if_include"] == "10.0.0.0/24"
    assert value("cluster_nodes")[0] == {"name": "n1", "ip": "10.0.0.11", "slots": 1, "gpus": [], "mpi_host": "n1",
                                         "fabric_ifname": None, "docker_host": "dh1"}


def test_every_stage_script_is_copied_to_the_machines():
    """hosts mode has no shared filesystem: a script a stage deploys to the cluster directory on the
    controller must be in mpi_hosts_copies, or the ranks on other machines would not find it."""
    deployed = set()
    for path in ROOT.glob("roles/*/tasks/*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            for item in [task] + list(task.get("block") or []):
                spec = item.get("cluster_files") if isinstance(item, dict) else None
                if spec and "config_dir" in str(spec.get("dir")):
                    deployed |= {"%s/files/%s" % (path.parts[-3], f["src"]) for f in spec["files"] if "src" in f}
    scripts = yaml.safe_load((ROOT / "roles/cluster/defaults/main/60-hosts.yml").read_text())[
        "cluster_hosts_stage_scripts"]
    copied = {c["src"] for c in scripts}
    assert "cluster_hosts_stage_scripts" in (ROOT / "roles/mpi_hosts/defaults/main.yml").read_text()
    assert deployed and deployed <= copied, deployed - copied
    for rel in deployed:
        assert (ROOT / "roles" / rel).is_file()


def test_hosts_preflight_action_result(run_action):
    import json
    from conftest import FIXTURES
    facts = json.loads((FIXTURES / "hosts" / "hosts_preflight_facts_three_simhosts.json").read_text())
    facts["mh-host2"]["openmpi"]["version"] = "5.0.3"
    nodes = [{"name": n, "ip": "10.77.0.%d" % (11 + i), "gpus": [], "slots": 1, "mpi_host": m}
             for i, (n, m) in enumerate((("mh-host1", "mh-host1"), ("mh-host2", "mh-host2"),
                                         ("mh-host3", "simgpu03")))]
    result = run_action(hosts_preflight, {"nodes": nodes, "facts": facts, "settings": {
        "mode": "hosts", "launcher": "mh-host1", "ssh_port": 22, "fabric_subnet": "10.77.0.0/24",
        "shm_min": "1g", "memlock_min": -1}})
    assert result["failed"] is True and result["mtrt_kind"] == "hosts_preflight" and result["changed"] is False
    assert result["msg"].startswith("Preflight across hosts found 2 problems (nothing was changed):\n 1. ")
    assert "Versions per host:\n| host | Open MPI |" in result["msg"]
    assert result["versions"]["mh-host2"]["openmpi"] == "5.0.3" and result["machines"] == ["mh-host1", "mh-host2",
                                                                                             "mh-host3"]
    assert result["openmpi_major"] == 4 and result["gpus"] == []
    bad = run_action(hosts_preflight, {"nodes": nodes, "facts": facts, "settings": {"mode": "hosts",
                                                                                    "shm_min": "lots"}})
    assert bad["problems"][0]["variable"] == "cluster_hosts_shm_min"


def test_report_shows_the_versions_table_of_the_machines():
    from mpi_trt_ansible.report.kinds import RENDERERS
    table = "| host | Open MPI |\n|---|---|\n| gpu01 | 4.1.4 |\n| gpu02 | 5.0.3 |"
    title, render = RENDERERS["hosts_preflight"]
    md = "\n".join(render({"mode": "hosts", "machines": ["gpu01", "gpu02"], "ok": False, "versions_table": table,
                           "problems": [{"message": "Open MPI differs between hosts: ...", "fix": "Install ..."}]}))
    assert title == "Preflight across hosts"
    assert "Preflight across 2 machine(s) (hosts mode) found 1 problem(s)." in md
    assert "| gpu02 | 5.0.3 |" in md and "Open MPI differs between hosts" in md and "Fix: Install" in md
