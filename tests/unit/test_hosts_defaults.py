# SPDX-License-Identifier: Apache-2.0
"""The project defaults per cluster_mode, templated as Ansible does: docker mode keeps its values,
the modes over several machines get theirs; the hosts_preflight action's result; and the copies every
machine gets in hosts mode cover every script a stage deploys."""

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
from conftest import ROOT, load_action
from templated_vars import templated

hosts_preflight = load_action("hosts_preflight")


def defaults(mode, localhost=None, **inventory):
    return templated(mode, localhost=localhost, **inventory)


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


@pytest.mark.parametrize("mode,disabled", [("docker", True), ("local", True), ("hosts", False),
                                           ("docker_per_host", False)])
def test_nccl_infiniband_is_disabled_only_on_one_machine(mode, disabled):
    """Containers on one docker host have no InfiniBand; between real servers NCCL must be free to use it."""
    value = defaults(mode, cluster_network_subnet="10.0.0.0/24")
    assert value("cluster_trtllm_nccl_ib_disable") is disabled
    init_plugin_loader()
    role = yaml.safe_load((ROOT / "roles/trtllm_inference/defaults/main.yml").read_text())
    env = Templar(loader=DataLoader(), variables={
        "cluster_trtllm_nccl_socket_ifname": "", "cluster_trtllm_env": {},
        "cluster_trtllm_nccl_ib_disable": disabled}).template(trust_as_template(role["trtllm_inference_env"]))
    assert ("NCCL_IB_DISABLE" in env) is disabled


def test_dedicated_sshd_serves_the_host_keys_sshd_t_named():
    """cluster_hosts_sshd: dedicated. Its HostKey lines are the files the machine's sshd -T named (whose public
    halves known_hosts pins), so both sshds present the same identity."""
    import re
    facts = {"host_key_files": {"source": "sshd -T", "paths": ["/etc/ssh/keys/host_ed25519", "/etc/ssh/keys/rsa"],
                                "read": ["/etc/ssh/keys/host_ed25519"]}, "host_keys": ["ssh-ed25519 AAAA"]}
    value = templated("hosts", roles=("mpi_hosts",), cluster_network_subnet="10.0.0.0/24",
                      hosts_preflight_facts=facts, cluster_ssh_port=2233)
    text = value.render((ROOT / "roles/mpi_hosts/templates/sshd_config.j2").read_text())
    assert re.findall(r"(?m)^(?:HostKey|Port|ListenAddress) .*$", text) == [
        "Port 2233", "ListenAddress 10.0.0.11", "HostKey /etc/ssh/keys/host_ed25519"]


@pytest.mark.parametrize("major", [4, 5])
def test_hosts_mode_prte_params_for_the_open_mpi_line(major):
    """~/.prte/mca-params.conf of the MPI account: Open MPI 5's runtime (PRRTE) pinned to the fabric; a comment
    only on Open MPI 4, whose runtime takes oob_tcp_if_include from ~/.openmpi/mca-params.conf."""
    value = templated("hosts", roles=("mpi_hosts",), localhost={"hosts_preflight_openmpi_major": major},
                      cluster_network_subnet="10.0.0.0/24")
    lines = value("mpi_hosts_prte_params").splitlines()
    assert lines[0] == "# Managed by mpi-trt-ansible (roles/mpi_hosts): the Open MPI 5 runtime (PRRTE) on the fabric."
    if major == 5:
        assert lines[1:] == ["prte_if_include = 10.0.0.0/24"]
        assert "oob_tcp_if_include" not in value("cluster_mpi_mca_effective")
    else:
        assert lines[1:] == ["# Open MPI 4: its runtime reads oob_tcp_if_include from ~/.openmpi/mca-params.conf"]
        assert value("cluster_mpi_mca_effective")["oob_tcp_if_include"] == "10.0.0.0/24"


@pytest.mark.parametrize("record,major", [(None, 4), ({"image": "sha256:a", "version": "4.1.4", "major": 4}, 4),
                                          ({"image": "sha256:b", "version": "5.0.7", "major": 5}, 5),
                                          ({"image": "sha256:c", "version": None, "major": None}, 4)])
def test_docker_per_host_pins_the_runtime_for_the_node_image_s_open_mpi(tmp_path, record, major):
    """docker_per_host: the node image's Open MPI line (stage 10's record; 4 while there is none) decides between
    oob_tcp_if_include (Open MPI 4) and PRRTE's prte_if_include (Open MPI 5, in the file the entrypoint installs)."""
    import json
    if record is not None:
        (tmp_path / "image").mkdir()
        (tmp_path / "image" / "openmpi.json").write_text(json.dumps(record))
    value = templated("docker_per_host", roles=("docker_hosts", "node_image"), inventory_hostname="dh1",
                      cluster_network_subnet="10.0.0.0/24", cluster_state_dir=str(tmp_path),
                      localhost={"hosts_preflight_openmpi_major": 9})  # the docker hosts' own Open MPI is not the image's
    assert value("node_image_openmpi_file") == value("cluster_node_image_openmpi_file") == \
        str(tmp_path / "image" / "openmpi.json")
    assert value("cluster_hosts_openmpi_major") == major
    mca = value("cluster_mpi_mca_effective")
    assert mca["btl_tcp_if_include"] == "10.0.0.0/24" and mca["btl_vader_single_copy_mechanism"] == "none"
    assert ("oob_tcp_if_include" in mca) is (major == 4)
    prte = value("docker_hosts_prte_params").splitlines()
    assert prte[0].startswith("# Managed by mpi-trt-ansible (roles/docker_hosts)")
    assert prte[1:] == (["prte_if_include = 10.0.0.0/24"] if major == 5 else
                        ["# Open MPI 4: its runtime reads oob_tcp_if_include from ~/.openmpi/mca-params.conf"])
    assert value("node_image_read_openmpi") is True


def test_other_modes_do_not_read_the_node_image_s_open_mpi():
    for mode in ("docker", "local", "hosts"):
        value = templated(mode, roles=("node_image",), cluster_network_subnet="10.0.0.0/24")
        assert value("node_image_read_openmpi") is False and value("cluster_prte_mca_effective") == {}


@pytest.mark.parametrize("text,version,major", [
    ("ompi:version:full:4.1.4\n", "4.1.4", 4),
    ("mpirun (Open MPI) 5.0.7\n\nReport bugs to https://www.open-mpi.org/community/help/\n", "5.0.7", 5),
    ("Open MPI v5.0.3\n", "5.0.3", 5),
    ("HYDRA build details:\n    Version: 4.1.2\n", None, None),
    ("", None, None),
])
def test_node_image_open_mpi_record(text, version, major):
    from mtrt import openmpi_release
    assert openmpi_release(text, "sha256:x") == {"image": "sha256:x", "version": version, "major": major}


def test_the_handoff_accessors_prefer_the_machines_to_the_controller():
    """cluster_stage_hosts and cluster_host_gpus: preflight's facts, with the preflight across hosts' (set once,
    never overwriting preflight's) laid over them; cluster_built_engine: stage 80's engine or null."""
    preflight = {"preflight_stage_hosts": {"launcher": ["n1"], "gpu": ["n1"], "trtllm": ["n1"], "nodes_run": True,
                                           "machines": ["dh1", "dh2"]},
                 "preflight_host_gpus": []}
    value = defaults("docker", localhost=preflight)
    assert value("cluster_stage_hosts") == preflight["preflight_stage_hosts"]
    assert value("cluster_host_gpus") == [] and value("cluster_built_engine") is None
    machines = dict(preflight, hosts_preflight_gpus=[0, 1], trtllm_engine_built={"engine_dir": "/e", "complete": True},
                    hosts_preflight_stage_hosts={"launcher": ["n1"], "gpu": ["n1", "n2"], "trtllm": ["n1", "n2"],
                                                 "mpi_hosts": [], "docker_hosts": ["dh1", "dh2"]})
    value = defaults("docker_per_host", localhost=machines)
    assert value("cluster_stage_hosts") == {"launcher": ["n1"], "gpu": ["n1", "n2"], "trtllm": ["n1", "n2"],
                                            "nodes_run": True, "machines": ["dh1", "dh2"], "mpi_hosts": [],
                                            "docker_hosts": ["dh1", "dh2"]}
    assert value("cluster_host_gpus") == [0, 1]
    assert value("cluster_built_engine") == {"engine_dir": "/e", "complete": True}
    assert defaults("docker")("cluster_stage_hosts") == {}  # before preflight
