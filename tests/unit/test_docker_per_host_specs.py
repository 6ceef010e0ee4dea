# SPDX-License-Identifier: Apache-2.0
"""docker_per_host: the container spec of one node container per machine, as docker receives it.

Host networking cannot run on one machine (every "host" would share one network namespace), so these
tests are where the host-network branch is covered: the create body (network mode, no hostname or
address), the sshd port and address, devices, capabilities, IPC and limits, the fingerprint that leaves
the machine's hostname and addresses out, and pruning limited to the machine's own container. The
docker-mode specs must stay exactly what they were.
"""

import json

import pytest
from ansible.module_utils.mtrt_containers import (
    HOST_NETWORK, LABEL_CLUSTER, SpecError, create_body, endpoint_problem, fingerprint_doc, normalize_spec, plan)
from conftest import FIXTURES
from mtrt import node_container_specs

NODE = [{"name": "gpu01", "ip": "10.0.0.11", "gpus": [0, 1, 2, 3, 4, 5, 6, 7]}]
BINDS = ["/srv/mtrt/shared:/TRTDir:rw", "/etc/mtrt/c/cluster:/etc/mtrt/cluster:ro"]


def host_spec(**kw):
    args = dict(image="mtrt-node:c1", network=HOST_NETWORK, binds=BINDS, hash_files=[], shm_size="16g",
                ulimits={"memlock": -1, "stack": 67108864}, env={"MTRT_SSH_USER": "root"},
                labels={"mtrt.docker_host": "gpu01"}, peers=NODE + [{"name": "gpu02", "ip": "10.0.0.12"}],
                env_by_node={"gpu01": {"NCCL_SOCKET_IFNAME": "=ens1f0"}}, devices=["/dev/infiniband"],
                cap_add=["IPC_LOCK"], ipc="host")
    args.update(kw)
    return normalize_spec(node_container_specs(NODE, **args)[0])


def test_host_network_body_has_no_hostname_address_or_peers():
    spec = host_spec()
    assert "hostname" not in spec and "ip" not in spec and "etc_hosts" not in spec
    body = create_body(spec, "c1", fingerprint_doc(spec, "sha256:img", {}))
    hc = body["HostConfig"]
    assert "Hostname" not in body and "NetworkingConfig" not in body and "ExtraHosts" not in hc
    assert hc["NetworkMode"] == "host" and hc["Privileged"] is False
    assert hc["IpcMode"] == "host"
    assert hc["Devices"] == [{"PathOnHost": "/dev/infiniband", "PathInContainer": "/dev/infiniband",
                              "CgroupPermissions": "rwm"}]
    assert hc["CapAdd"] == ["IPC_LOCK"]
    assert hc["Ulimits"] == [{"Name": "memlock", "Soft": -1, "Hard": -1},
                             {"Name": "stack", "Soft": 67108864, "Hard": 67108864}]
    assert hc["ShmSize"] == 16 << 30
    assert hc["DeviceRequests"] == [{"Driver": "nvidia", "DeviceIDs": [str(g) for g in range(8)],
                                     "Capabilities": [["gpu"]]}]
    assert sorted(body["Env"]) == ["MTRT_SSH_USER=root", "NCCL_SOCKET_IFNAME==ens1f0"]
    assert body["Labels"]["mtrt.docker_host"] == "gpu01" and body["Labels"][LABEL_CLUSTER] == "c1"


def test_ipc_devices_and_capabilities_only_where_asked():
    spec = host_spec(ipc="", devices=[], cap_add=[])
    hc = create_body(spec, "c1", fingerprint_doc(spec, "sha256:img", {}))["HostConfig"]
    assert "IpcMode" not in hc and "Devices" not in hc and "CapAdd" not in hc
    assert "ipc" not in spec and "devices" not in spec and "cap_add" not in spec


@pytest.mark.parametrize("field,value,message", [
    ("cap_add", ["SYS_ADMIN"], "capabilities SYS_ADMIN are not added to node containers"),
    ("cap_add", ["ALL"], "capabilities ALL are not added"),
    ("devices", ["infiniband"], "device 'infiniband' is not /dev/host"),
    ("ipc", "container:x", "ipc 'container:x' is not host, private or shareable"),
])
def test_refused_container_options(field, value, message):
    with pytest.raises(SpecError, match=message):
        host_spec(**{field: value})


def test_fingerprint_leaves_the_machine_s_hostname_and_addresses_out():
    doc = fingerprint_doc(host_spec(), "sha256:img", {})
    text = json.dumps(doc)
    assert "10.0.0.11" not in text and "gpu02" not in text and "hostname" not in doc["spec"]
    # Another machine of the same shape (other address, other peers) has the same spec document.
    other = node_container_specs([{"name": "gpu01", "ip": "10.9.9.9", "gpus": list(range(8))}], image="mtrt-node:c1",
                                 network=HOST_NETWORK, binds=BINDS, hash_files=[], shm_size="16g",
                                 ulimits={"memlock": -1, "stack": 67108864}, env={"MTRT_SSH_USER": "root"},
                                 labels={"mtrt.docker_host": "gpu01"}, peers=[],
                                 env_by_node={"gpu01": {"NCCL_SOCKET_IFNAME": "=ens1f0"}}, devices=["/dev/infiniband"],
                                 cap_add=["IPC_LOCK"], ipc="host")
    assert fingerprint_doc(normalize_spec(other[0]), "sha256:img", {}) == doc


def test_host_network_endpoint_and_plan():
    spec = host_spec()
    entry = {"Id": "id1", "Names": ["/gpu01"], "ImageID": "sha256:img", "State": "running",
             "Labels": {LABEL_CLUSTER: "c1", "mtrt.docker_host": "gpu01"},
             "NetworkSettings": {"Networks": {"host": {"NetworkID": "hostnet", "IPAddress": ""}}}}
    assert endpoint_problem(entry, "host", "hostnet", None) is None
    assert endpoint_problem(dict(entry, NetworkSettings={"Networks": {"bridge": {}}}), "host", "hostnet", None) \
        == "not attached to network host"
    docs = {"gpu01": fingerprint_doc(spec, "sha256:img", {})}
    from ansible.module_utils.mtrt_containers import doc_hash
    entry["Labels"]["mtrt.spec_hash"] = doc_hash(docs["gpu01"])
    # Another machine's node container on the same engine (the tests' stand-in) is left alone.
    other = {"Id": "id2", "Names": ["/gpu02"], "State": "running",
             "Labels": {LABEL_CLUSTER: "c1", "mtrt.docker_host": "gpu02"}}
    gone = {"Id": "id3", "Names": ["/gpu09"], "State": "running",
            "Labels": {LABEL_CLUSTER: "c1", "mtrt.docker_host": "gpu01"}}
    actions, conflicts = plan([spec], [entry, other, gone], "c1", "started", {"mtrt-node:c1": "sha256:img"},
                              {"host": "hostnet"}, docs, scope={"mtrt.docker_host": "gpu01"})
    assert conflicts == [] and [(a["name"], a["action"]) for a in actions] == [("gpu01", "none"), ("gpu09", "remove")]
    actions, _ = plan([spec], [entry, other, gone], "c1", "started", {"mtrt-node:c1": "sha256:img"},
                      {"host": "hostnet"}, docs)
    assert ("gpu02", "remove") in [(a["name"], a["action"]) for a in actions]  # unscoped: docker mode's prune


def test_docker_mode_specs_and_bodies_are_unchanged():
    """Golden output of the spec, fingerprint and create body of two docker-mode nodes, captured from
    mpi_trt_ansible/containers.py at main 82a89c5 (before docker_per_host)."""
    for case in json.loads((FIXTURES / "hosts" / "docker_mode_specs_before.json").read_text()):
        new = normalize_spec(case["raw"])
        assert new == case["normalized"]
        doc = fingerprint_doc(new, "sha256:img", {"/s/cluster/known_hosts": "ab"})
        assert doc == case["doc"]
        assert create_body(new, "mtrt", doc) == case["body"]


def test_host_networking_is_reachable_only_from_the_docker_per_host_play():
    """The security rule: host networking only in the opt-in docker_per_host mode. cluster_node_network
    (default host) is given to node containers by the docker_per_host play of stage 40 alone."""
    import yaml
    from conftest import ROOT
    users = sorted(str(p.relative_to(ROOT)) for d in ("roles", "playbooks") for p in (ROOT / d).rglob("*.yml")
                   if "cluster_node_network" in p.read_text())
    # docker_hosts only reads it (the interface nccl.conf names); no role but the play passes it to a container.
    assert users == ["playbooks/40_node_containers.yml", "roles/cluster/defaults/main/60-hosts.yml",
                     "roles/cluster/meta/contract.yml", "roles/docker_hosts/defaults/main.yml",
                     "roles/hosts_preflight/tasks/main.yml"]
    plays = yaml.safe_load((ROOT / "playbooks/40_node_containers.yml").read_text())
    using = [p["name"] for p in plays if "cluster_node_network" in json.dumps(p)]
    assert using == ["Stage 40 - Node containers, one per machine (docker_per_host)"]
    (play,) = [p for p in plays if p["name"] == using[0]]
    assert "docker_hosts" in play["hosts"]  # preflight_stage_hosts.docker_hosts: [] outside docker_per_host


def test_node_container_sshd_listens_on_its_port_and_node_ip_only(tmp_path):
    """The sshd_config a docker host gives its node container: the cluster's key-only one (stage 30, roles/ssh_keys)
    with port cluster_ssh_port (2233 by default in this mode, not the machine's 22) and, with host networking,
    ListenAddress node_ip, so that the container's sshd does not answer on the machine's other addresses."""
    import re

    from conftest import ROOT
    from templated_vars import templated

    def sshd_config(**inventory):
        value = templated("docker_per_host", roles=("ssh_keys", "docker_hosts"), inventory_hostname="dh2",
                          cluster_network_subnet="10.0.0.0/24", cluster_state_dir=str(tmp_path), **inventory)
        (tmp_path / "cluster").mkdir(exist_ok=True)
        (tmp_path / "cluster" / "sshd_config").write_text(
            value.render((ROOT / "roles/ssh_keys/templates/sshd_config.j2").read_text()))
        return value("docker_hosts_sshd_config")

    text = sshd_config()
    assert re.findall(r"(?m)^Port .*$", text) == ["Port 2233"]
    assert re.findall(r"(?m)^ListenAddress .*$", text) == ["ListenAddress 10.0.0.12"]  # dh2 runs n2
    assert re.findall(r"(?m)^(?:PasswordAuthentication|PermitRootLogin|AllowUsers) .*$", text) == [
        "PasswordAuthentication no", "PermitRootLogin prohibit-password", "AllowUsers root"]
    assert re.findall(r"(?m)^Port .*$", sshd_config(cluster_ssh_port=2222)) == ["Port 2222"]


def test_each_machine_s_nccl_conf_names_its_fabric_interface_exactly():
    """NCCL pinning reaches every rank: ranks that mpirun starts over the container's sshd get none of the
    container's environment, so each docker host writes NCCL_SOCKET_IFNAME==<ifname> (exact match, not a prefix)
    into the nccl.conf its node container mounts at /etc/nccl.conf, which NCCL reads."""
    from templated_vars import templated

    handoff = {"n1": {"fabric_ifname": "ens1f0", "host_keys": [], "hostname": "gpu01"},
               "n2": {"fabric_ifname": "ens2f0np0", "host_keys": [], "hostname": "gpu02"}}

    def conf(host, **inventory):
        value = templated("docker_per_host", roles=("docker_hosts",), inventory_hostname=host,
                          cluster_network_subnet="10.0.0.0/24", localhost={"hosts_preflight_nodes": handoff},
                          **inventory)
        return value("docker_hosts_nccl_conf").splitlines()

    assert conf("dh1") == ["# Managed by mpi-trt-ansible (roles/docker_hosts): NCCL sockets on the fabric "
                           "interface of dh1.", "NCCL_SOCKET_IFNAME==ens1f0"]
    assert conf("dh2")[1:] == ["NCCL_SOCKET_IFNAME==ens2f0np0"]
    # A docker network standing in for the LAN: the container's only interface there is eth0.
    assert conf("dh2", cluster_node_network="mtrt-test-lan")[1:] == ["NCCL_SOCKET_IFNAME==eth0"]
    handoff["n1"]["fabric_ifname"] = ""
    assert conf("dh1")[1:] == ["# The fabric interface is unknown: NCCL chooses."]


def test_the_docker_per_host_play_mounts_nccl_conf_and_fingerprints_it():
    import yaml
    from conftest import ROOT
    plays = yaml.safe_load((ROOT / "playbooks/40_node_containers.yml").read_text())
    (play,) = [p for p in plays if "docker_per_host" in p["name"]]
    (task,) = [t for t in play["tasks"] if (t.get("ansible.builtin.include_role") or {}).get("name") ==
               "node_containers"]
    args = task["vars"]
    assert args["node_containers_state_dir"] == "{{ cluster_docker_dir }}"
    assert args["node_containers_extra_binds"] == ["{{ node_containers_state_dir }}/cluster/nccl.conf:/etc/nccl.conf:ro"]
    assert "{{ node_containers_state_dir }}/cluster/nccl.conf" in args["node_containers_extra_hash_files"]
    assert "NCCL_SOCKET_IFNAME" not in json.dumps(args)  # no environment that only the launcher's processes see
    # What docker receives for such a bind.
    spec = host_spec(binds=BINDS + ["/etc/mtrt/c/cluster/nccl.conf:/etc/nccl.conf:ro"], env_by_node={})
    hc = create_body(spec, "c1", fingerprint_doc(spec, "sha256:img", {}))["HostConfig"]
    assert "/etc/mtrt/c/cluster/nccl.conf:/etc/nccl.conf:ro" in hc["Binds"]
