# SPDX-License-Identifier: Apache-2.0
"""mpi_trt_ansible.hosts: the preflight across machines, one case per check, on facts captured
from the multihost scenario's three sim-hosts (tests/unit/fixtures/hosts)."""

import copy
import json

import pytest
from conftest import FIXTURES

from mpi_trt_ansible import hosts

FACTS = json.loads((FIXTURES / "hosts" / "hosts_preflight_facts_three_simhosts.json").read_text())
NODES = [
    {"name": "mh-host1", "ip": "10.77.0.11", "slots": 2, "gpus": [], "mpi_host": "mh-host1",
     "fabric_ifname": None, "docker_host": None},
    {"name": "mh-host2", "ip": "10.77.0.12", "slots": 2, "gpus": [], "mpi_host": "mh-host2",
     "fabric_ifname": None, "docker_host": None},
    {"name": "mh-host3", "ip": "10.77.0.13", "slots": 1, "gpus": [], "mpi_host": "simgpu03",
     "fabric_ifname": None, "docker_host": None},
]
SETTINGS = {"mode": "hosts", "launcher": "mh-host1", "ssh_user": "mtrt", "ssh_port": 22, "sshd": "system",
            "install_mpi": False, "create_user": True, "python": "python3", "fabric_subnet": "10.77.0.0/24",
            "memlock_min": -1, "shm_min_bytes": 1 << 30, "same_dirs": [], "shared_fs": False}


def case():
    return copy.deepcopy(FACTS), copy.deepcopy(SETTINGS), copy.deepcopy(NODES)


def problems(facts, settings, nodes):
    return hosts.hosts_problems(facts, settings, nodes)


def messages(facts, settings, nodes):
    return [p["message"] for p in problems(facts, settings, nodes)]


def test_the_captured_sim_hosts_pass():
    assert problems(*case()) == []


def test_other_modes_are_not_checked_here():
    facts, settings, nodes = case()
    settings["mode"] = "docker"
    facts["mh-host2"] = {"unreachable": True, "msg": "down"}
    assert problems(facts, settings, nodes) == []


def test_unreachable_host_is_named_with_ssh_reason():
    facts, settings, nodes = case()
    facts["mh-host2"] = {"unreachable": True, "changed": False,
                         "msg": "Failed to connect to the host via ssh: ssh: connect to host 10.77.1.12 port 22: "
                                "Connection refused"}
    found = problems(facts, settings, nodes)
    assert [(p["variable"], p["value"]) for p in found] == [("inventory_hostname", "mh-host2")]
    assert found[0]["message"].startswith("Host mh-host2 is unreachable over SSH: ")
    assert "Connection refused" in found[0]["message"] and "ansible_host" in found[0]["fix"]


def test_changed_host_key_is_named_as_such_and_checking_stays_on():
    facts, settings, nodes = case()
    facts["mh-host3"] = {"unreachable": True, "msg": (
        "Failed to connect to the host via ssh: @@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!"
        "     @\n...\nHost key verification failed.")}
    (found,) = problems(facts, settings, nodes)
    assert found["message"].startswith("Host mh-host3 refused: its SSH host key is not the one the controller pins")
    assert "Host key checking stays on" in found["fix"] and "StrictHostKeyChecking no" not in found["fix"]


def test_failed_facts_and_missing_facts_are_named():
    facts, settings, nodes = case()
    facts["mh-host2"] = {"failed": True, "msg": "sudo: a password is required"}
    del facts["mh-host3"]
    assert messages(facts, settings, nodes) == [
        "Reading the facts of host mh-host2 failed: sudo: a password is required",
        "Host mh-host3 gave no facts (it was not reached by the preflight play)."]


def test_different_open_mpi_is_refused_naming_the_odd_host_with_a_table():
    facts, settings, nodes = case()
    facts["mh-host2"]["openmpi"].update(version="5.0.3", major=5, mpirun="/usr/local/bin/mpirun")
    found = problems(facts, settings, nodes)
    assert [p["variable"] for p in found] == ["cluster_mpi_python", "openmpi"]
    assert found[0]["message"] == ("On host mh-host2 mpi4py 3.1.4 is linked to Open MPI v4.1.4, but mpirun is "
                                   "Open MPI 5.0.3: ranks would not join one job.")
    assert found[1]["message"].startswith(
        "Open MPI differs between hosts: 4.1.4 on mh-host1, mh-host3; 5.0.3 on mh-host2.")
    assert found[1]["fix"] == "Install Open MPI 4.1.4 on mh-host2, so that every host has the same."
    assert found[1]["value"] == {"mh-host1": "4.1.4", "mh-host2": "5.0.3", "mh-host3": "4.1.4"}
    table = hosts.versions_table(facts).splitlines()
    assert table[0] == "| host | Open MPI | mpi4py | mpi4py's MPI | Python | TensorRT-LLM |"
    assert table[3] == "| mh-host2 | 5.0.3 | 3.1.4 | Open MPI v4.1.4 | 3.11.2 | - |"


@pytest.mark.parametrize("key,label", [("python", "Python"), ("tensorrt_llm", "TensorRT-LLM")])
def test_python_and_tensorrt_llm_must_agree(key, label):
    facts, settings, nodes = case()
    field = "version" if key == "python" else key
    for host, version in (("mh-host1", "3.12.3"), ("mh-host2", "3.12.3"), ("mh-host3", "3.11.2")):
        facts[host]["python"][field] = version
    (found,) = problems(facts, settings, nodes)
    assert found["variable"] == key
    assert found["message"].startswith("%s differs between hosts: 3.12.3 on mh-host1, mh-host2; 3.11.2 on mh-host3"
                                       % label)


def test_tensorrt_llm_on_some_hosts_only_is_a_mix():
    facts, settings, nodes = case()
    facts["mh-host1"]["python"]["tensorrt_llm"] = "0.12.0"
    (found,) = problems(facts, settings, nodes)
    assert "TensorRT-LLM differs between hosts: missing on mh-host2, mh-host3; 0.12.0 on mh-host1" in found["message"]


def test_missing_mpi4py_is_refused_unless_installing_is_allowed():
    facts, settings, nodes = case()
    facts["mh-host3"]["python"]["mpi4py"] = {"found": False, "error": "ModuleNotFoundError: No module named 'mpi4py'"}
    (found,) = problems(facts, settings, nodes)
    assert found["message"] == "Host mh-host3 lacks mpi4py, and cluster_hosts_install_mpi is false."
    assert "apt-get install openmpi-bin python3-mpi4py" in found["fix"]
    settings["install_mpi"] = True
    assert problems(facts, settings, nodes) == []


def test_missing_open_mpi_names_the_reason():
    facts, settings, nodes = case()
    facts["mh-host2"]["openmpi"] = {"found": False, "error": "mpirun is not on PATH"}
    (found,) = messages(facts, settings, nodes)
    assert found == "Host mh-host2 lacks Open MPI (mpirun, ompi_info) (mpirun is not on PATH), and " \
                    "cluster_hosts_install_mpi is false."


def test_mpi4py_built_against_another_mpi_is_refused():
    facts, settings, nodes = case()
    for host in facts:
        facts[host]["python"]["mpi4py"]["mpi_library"] = "MPICH Version: 4.0"
    found = messages(facts, settings, nodes)
    assert len(found) == 3 and all("is linked to MPICH Version: 4.0, not Open MPI" in m for m in found)


def test_fabric_address_must_be_on_the_host():
    facts, settings, nodes = case()
    facts["mh-host2"]["fabric"] = {"ip": "10.77.0.12", "present": False, "ifname": None, "ifname_addresses": []}
    (found,) = problems(facts, settings, nodes)
    assert found["variable"] == "node_ip (mh-host2)"
    assert found["message"] == ("node_ip 10.77.0.12 of mh-host2 is not an address of host mh-host2 "
                                "(it has 10.77.0.12, 10.77.1.12, 127.0.0.1).")


def test_node_ip_outside_the_fabric_subnet_and_invalid():
    facts, settings, nodes = case()
    settings["fabric_subnet"] = "10.99.0.0/24"
    nodes[2]["ip"] = "not-an-ip"
    found = messages(facts, settings, nodes)
    assert found[0] == ("node_ip 10.77.0.11 of mh-host1 is outside cluster_network_subnet 10.99.0.0/24 (the fabric "
                        "network Open MPI, NCCL and the cluster key are pinned to).")
    assert found[2] == "node_ip of mh-host3 is 'not-an-ip', not an IPv4 address: it must be the fabric address of mh-host3."


def test_fabric_interface_named_in_the_inventory_must_hold_node_ip():
    facts, settings, nodes = case()
    nodes[2]["fabric_ifname"] = "eth0"
    (found,) = problems(facts, settings, nodes)
    assert found["message"] == "node_fabric_ifname of mh-host3 is eth0, but host mh-host3 holds 10.77.0.13 on eth1."
    nodes[2]["fabric_ifname"] = "eth1"
    assert problems(facts, settings, nodes) == []


@pytest.mark.parametrize("state,sshd,mode,expected", [
    ("refused", "system", "hosts", "nothing listens there (connection refused)"),
    ("refused", "dedicated", "hosts", None),
    ("timeout", "dedicated", "hosts", "cannot reach node mh-host3 at 10.77.0.13:22: timeout (no answer in time)"),
    ("unreachable", "system", "hosts", "cannot reach node mh-host3 at 10.77.0.13:22: unreachable"),
])
def test_launcher_probes(state, sshd, mode, expected):
    facts, settings, nodes = case()
    settings["sshd"] = sshd
    facts["mh-host1"]["probes"][1].update(state=state, detail="no answer in time" if state == "timeout" else "")
    found = messages(facts, settings, nodes)
    if expected is None:
        assert found == []
    else:
        (message,) = found
        assert message.startswith("The launcher mh-host1 ") and expected in message and "mh-host3" in message


def test_memlock_is_checked_on_gpu_machines_only():
    facts, settings, nodes = case()
    assert problems(facts, settings, nodes) == []  # 8 MiB, but no node pins a GPU
    nodes[1]["gpus"] = [0]
    facts["mh-host2"]["gpus"] = [0, 1]
    (found,) = problems(facts, settings, nodes)
    assert found["message"] == ("Host mh-host2 lets processes lock 8 MiB of memory (ulimit -l); its GPU ranks need "
                                "unlimited (NCCL, RDMA registration).")
    facts["mh-host2"]["memlock"]["soft"] = -1
    assert problems(facts, settings, nodes) == []
    settings["memlock_min"] = 0
    facts["mh-host2"]["memlock"]["soft"] = 65536
    assert problems(facts, settings, nodes) == []


def test_shm_too_small_or_missing():
    facts, settings, nodes = case()
    facts["mh-host1"]["shm"]["size_bytes"] = 64 << 20
    facts["mh-host3"]["shm"] = {"path": "/dev/shm", "exists": False, "size_bytes": None}
    assert messages(facts, settings, nodes) == [
        "Host mh-host1 has a /dev/shm of 64 MiB; at least 1 GiB is needed.",
        "Host mh-host3 has no /dev/shm (NCCL and Open MPI's shared memory need it)."]


def test_gpu_ids_the_host_does_not_have():
    facts, settings, nodes = case()
    nodes[0]["gpus"], nodes[1]["gpus"] = [0, 1], [3]
    facts["mh-host1"]["gpus"], facts["mh-host2"]["gpus"] = [0, 1], [0, 1]
    facts["mh-host1"]["memlock"]["soft"] = facts["mh-host2"]["memlock"]["soft"] = -1
    assert messages(facts, settings, nodes) == [
        "node_gpus of mh-host2 asks for GPU 3, but host mh-host2 has GPUs 0, 1."]
    facts["mh-host2"]["gpus"] = []
    assert messages(facts, settings, nodes) == [
        "node_gpus of mh-host2 asks for GPU 3, but host mh-host2 has no GPU nvidia-smi can list."]


def _dirs(facts, path, **per_host):
    for host, value in per_host.items():
        facts[host]["dirs"][path] = value


def test_model_directory_missing_or_different_without_a_shared_filesystem():
    facts, settings, nodes = case()
    path = "/srv/models/llama"
    settings["same_dirs"] = [path]
    same = {"exists": True, "sha256": "a" * 64, "files": 12, "bytes": 10}
    _dirs(facts, path, **{"mh-host1": same, "mh-host2": same, "mh-host3": {"exists": False}})
    (found,) = problems(facts, settings, nodes)
    assert found["message"] == ("/srv/models/llama exists on mh-host1, mh-host2 but not on mh-host3 (no shared "
                                "filesystem: cluster_shared_fs is false).")
    assert "rsync -a from mh-host1" in found["fix"]
    _dirs(facts, path, **{"mh-host3": dict(same, sha256="b" * 64)})
    (found,) = problems(facts, settings, nodes)
    assert found["message"].startswith("/srv/models/llama differs between hosts: sha256 aaaaaaaaaaaa... (12 files) "
                                       "on mh-host1, mh-host2; sha256 bbbbbbbbbbbb...")
    assert found["fix"] == "Copy /srv/models/llama again from mh-host1 to mh-host3 (rsync -a --delete), so that " \
                           "every host has the same files."
    settings["shared_fs"] = True
    assert problems(facts, settings, nodes) == []  # one shared filesystem: existence is all that counts


def test_directory_missing_everywhere_is_left_to_its_stage():
    facts, settings, nodes = case()
    settings["same_dirs"] = ["/srv/mtrt/mtrt-mh/engines"]
    assert problems(facts, settings, nodes) == []


def test_hostname_must_match_the_hostfile_name():
    facts, settings, nodes = case()
    nodes[2]["mpi_host"] = "mh-host3"
    (found,) = problems(facts, settings, nodes)
    assert found["variable"] == "node_mpi_host (mh-host3)"
    assert "Host mh-host3 calls itself simgpu03, but the hostfile names it mh-host3" in found["message"]
    assert found["fix"].startswith("Set node_mpi_host: simgpu03 on mh-host3")


def test_mpi_account_must_exist_when_it_is_not_created():
    facts, settings, nodes = case()
    settings["create_user"] = False
    facts["mh-host2"]["user"] = {"name": "mtrt", "exists": False, "uid": None, "home": None}
    assert messages(facts, settings, nodes) == [
        "The MPI account mtrt does not exist on host mh-host2, and cluster_hosts_create_user is false."]


def test_uids_must_agree_on_a_shared_filesystem():
    facts, settings, nodes = case()
    settings["shared_fs"] = True
    for host, uid in (("mh-host1", 1001), ("mh-host2", 1001), ("mh-host3", 1002)):
        facts[host]["user"] = {"name": "mtrt", "exists": True, "uid": uid, "home": "/home/mtrt"}
    (found,) = messages(facts, settings, nodes)
    assert found == "The MPI account mtrt has different UIDs on a shared filesystem: 1001 on mh-host1, mh-host2; " \
                    "1002 on mh-host3."


def test_a_machine_without_readable_host_keys_is_named():
    facts, settings, nodes = case()
    facts["mh-host2"]["host_keys"] = []
    facts["mh-host2"]["host_key_files"] = {"source": "default", "paths": None, "read": []}
    facts["mh-host3"]["host_keys"] = []
    facts["mh-host3"]["host_key_files"] = {"source": "sshd -T", "paths": ["/etc/ssh/keys/host_ed25519"], "read": []}
    found = problems(facts, settings, nodes)
    assert [(p["variable"], p["value"]) for p in found] == [("inventory_hostname", "mh-host2"),
                                                            ("inventory_hostname", "mh-host3")]
    assert found[0]["message"] == (
        "No SSH host key was read on host mh-host2: sshd -T named none and "
        "/etc/ssh/ssh_host_{ed25519,ecdsa,rsa}_key.pub are missing or unreadable. known_hosts cannot pin mh-host2, "
        "so every login of the ranks to it would be refused (host key checking stays on).")
    assert "the HostKey files sshd -T names (/etc/ssh/keys/host_ed25519) have no readable .pub half" in \
        found[1]["message"]
    assert found[1]["fix"].startswith("Create the host keys on mh-host3 (ssh-keygen -A")
    # docker_per_host gives every node container a generated host key: the machines' own are not needed.
    dfacts, dsettings, dnodes = dph_case()
    dfacts["dh1"]["host_keys"] = []
    assert problems(dfacts, dsettings, dnodes) == []


def dph_case():
    """docker_per_host: two nodes on docker hosts dh1 and dh2 (the facts of sim-hosts 1 and 2)."""
    facts, settings, nodes = case()
    facts = {"dh1": facts["mh-host1"], "dh2": facts["mh-host2"]}
    for f in facts.values():
        f["docker"] = {"grantable": {}}
    settings.update(mode="docker_per_host", container_network="host", docker_hosts=["dh1", "dh2"], ssh_port=2233,
                    ulimits={"stack": 67108864})
    nodes = [dict(nodes[0], docker_host="dh1"), dict(nodes[1], docker_host="dh2")]
    facts["dh1"]["probes"] = [dict(facts["dh1"]["probes"][0], port=2233, state="refused")]
    return facts, settings, nodes


def test_docker_per_host_passes_and_refused_port_is_fine_before_stage_40():
    assert problems(*dph_case()) == []


def test_two_host_network_containers_on_one_machine_are_refused():
    facts, settings, nodes = dph_case()
    nodes[1]["docker_host"] = "dh1"
    (found,) = problems(facts, settings, nodes)
    assert found["message"].startswith("Nodes mh-host1, mh-host2 all run on docker host dh1 with host networking")
    settings["container_network"] = "mtrt-test-lan"  # a bridge stand-in: addresses are the containers' own
    assert problems(facts, settings, nodes) == []


def test_docker_host_missing_or_unknown():
    facts, settings, nodes = dph_case()
    nodes[1]["docker_host"] = None
    nodes[0]["docker_host"] = "gpu09"
    assert messages(facts, settings, nodes) == [
        "Host gpu09 gave no facts (it was not reached by the preflight play).",
        "Node mh-host2 names no docker host (node_docker_host).",
        "Docker host gpu09 (node_docker_host of mh-host1) is not in group docker_hosts."]


def test_docker_daemon_limits_per_docker_host():
    facts, settings, nodes = dph_case()
    settings["ulimits"] = {"memlock": -1, "stack": 67108864}
    facts["dh2"]["docker"]["grantable"] = {"memlock": 8388608, "stack": -1}
    (found,) = messages(facts, settings, nodes)
    assert found == "cluster_ulimits.memlock is -1, but the docker daemon of host dh2 grants at most 8388608."


def test_handoff_and_open_mpi_line():
    facts, _, nodes = case()
    out = hosts.node_handoff(facts, nodes, "hosts")
    assert out["mh-host3"]["fabric_ifname"] == "eth1" and out["mh-host1"]["fabric_ifname"] == "eth0"
    assert out["mh-host3"]["hostname"] == "simgpu03"
    assert [k.split()[0] for k in out["mh-host2"]["host_keys"]] == ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"]
    assert hosts.openmpi_major(facts) == 4
    facts["mh-host2"]["openmpi"]["major"] = 5
    assert hosts.openmpi_major(facts) is None
    assert hosts.machines([dict(n, docker_host="dh") for n in nodes], "docker_per_host") == ["dh"]


def test_docker_host_without_the_nvidia_hook_cannot_run_gpu_nodes():
    facts, settings, nodes = dph_case()
    nodes[0]["gpus"], nodes[1]["gpus"] = [0, 1], [0]
    facts["dh1"]["gpus"] = facts["dh2"]["gpus"] = [0, 1]
    facts["dh1"]["docker"]["gpu_hook"] = {"checked": True, "path": "/usr/bin/nvidia-container-runtime-hook",
                                          "search_path": "/usr/bin"}
    facts["dh2"]["docker"]["gpu_hook"] = {"checked": True, "path": None,
                                          "search_path": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"}
    (found,) = problems(facts, settings, nodes)
    assert (found["variable"], found["value"]) == ("node_gpus (mh-host2)", [0])
    assert found["message"].startswith(
        "Node mh-host2 asks for GPUs 0, but the docker daemon of host dh2 cannot give a container GPUs: "
        "nvidia-container-runtime-hook is not on its PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin)")
    assert found["fix"] == ("Install the NVIDIA Container Toolkit (nvidia-container-toolkit) on dh2 and restart "
                            "docker there (systemctl restart docker), or set node_gpus: [] on mh-host2.")
    # No GPUs asked, or no daemon found to check: nothing to say.
    nodes[1]["gpus"] = []
    assert problems(facts, settings, nodes) == []
    nodes[1]["gpus"] = [0]
    facts["dh2"]["docker"]["gpu_hook"] = {"checked": False, "path": None, "search_path": None}
    assert problems(facts, settings, nodes) == []


def test_a_virtual_environment_without_mpi4py_is_not_fixed_by_the_package():
    """Debian's python3-mpi4py (cluster_hosts_install_mpi) lands in the system python3's dist-packages, which a
    virtual environment does not see: the preflight says so before anything is installed."""
    facts, settings, nodes = case()
    settings.update(install_mpi=True, python="/opt/trtllm/venv/bin/python3")
    facts["mh-host2"]["python"].update(mpi4py={"found": False, "error": "ModuleNotFoundError"}, venv=True,
                                       path="/opt/trtllm/venv/bin/python3")
    (found,) = problems(facts, settings, nodes)
    assert (found["variable"], found["value"]) == ("cluster_mpi_python", "/opt/trtllm/venv/bin/python3")
    assert found["message"] == (
        "Host mh-host2: the ranks' interpreter /opt/trtllm/venv/bin/python3 is a virtual environment without "
        "mpi4py; the package cluster_hosts_install_mpi installs (python3-mpi4py) serves the system python3 only.")
    assert "--no-binary mpi4py" in found["fix"] and "--system-site-packages" in found["fix"]
    facts["mh-host2"]["python"]["venv"] = False  # the system interpreter: installing the package is the fix
    assert problems(facts, settings, nodes) == []
