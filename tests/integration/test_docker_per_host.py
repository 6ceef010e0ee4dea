# SPDX-License-Identifier: Apache-2.0
"""cluster_mode docker_per_host on the real docker engine: three inventory docker hosts that all point at
the one local engine, one node container each, on a test bridge network standing in for the LAN.

Host networking cannot be simulated on one machine (every "host" would share one network namespace: the
same addresses and ports), so the node network here is a bridge (cluster_node_network) and the
host-network branch is covered by tests/unit/test_docker_per_host_specs.py only. What this test runs for
real: the preflight across the docker hosts, the node image check per docker host, the files each docker
host's container mounts (from its own directory, hash-checked), one node_containers run per docker host
scoped to its own container, sshd on the non-default port bound to node_ip, hello across the three, each
machine's nccl.conf as every rank sees it (also those started over sshd), the node image's Open MPI line
recorded once and the runtime pinning it selects, a second run with changed=0, the refusal of two host-network containers on one machine, and teardown per
docker host. Runs only with ``MTRT_INTEGRATION=1``. Names: containers mtrt-mh-n1..3, network mtrt-mh-dph
(10.77.3.0/24), cluster mtrt-mh-dph.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
CLUSTER, NETWORK, SUBNET = "mtrt-mh-dph", "mtrt-mh-dph", "10.77.3.0/24"
NODES = {"mtrt-mh-n1": ("mh-dh1", "10.77.3.11", 2), "mtrt-mh-n2": ("mh-dh2", "10.77.3.12", 1),
         "mtrt-mh-n3": ("mh-dh3", "10.77.3.13", 1)}

pytestmark = pytest.mark.skipif(os.environ.get("MTRT_INTEGRATION") != "1",
                                reason="needs docker; set MTRT_INTEGRATION=1")


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def inventory(tmp, **extra_vars):
    docker_hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                           "ansible_become": False, "docker_url": "unix:///var/run/docker.sock",
                           "docker_dir": str(tmp / name)}
                    for name in sorted({dh for dh, _, _ in NODES.values()})}
    nodes = {name: {"node_ip": ip, "node_docker_host": dh, "node_slots": slots}
             for name, (dh, ip, slots) in NODES.items()}
    doc = {"all": {
        "vars": dict({"cluster_name": CLUSTER, "cluster_mode": "docker_per_host",
                      "cluster_network_subnet": SUBNET, "cluster_node_network": NETWORK,
                      "cluster_shared_host_dir": str(tmp / "shared"), "cluster_mpi_timeout_s": 60,
                      "cluster_image_name": "mtrt-mh-node",
                      # One 2-core machine plays all three: idle ranks yield (docker mode derives it).
                      "cluster_mpi_mca": {"mpi_yield_when_idle": 1}}, **extra_vars),
        "children": {"docker_hosts": {"hosts": docker_hosts}, "nodes": {"hosts": nodes}}}}
    path = tmp / "hosts.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dph")
    env = dict(os.environ, MTRT_STATE_HOME=str(tmp / "state"), MTRT_REPORT_DIR=str(tmp / "reports"),
               PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    docker("network", "create", "--subnet", SUBNET, "--label", "mtrt.test=docker_per_host", NETWORK)

    def play(*args, playbook="site.yml", inv=None):
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv or inventory(tmp)), playbook, *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        report = tmp / "reports" / "latest" / "report.json"
        return proc, (json.loads(report.read_text()) if report.exists() else None)

    try:
        yield play, tmp
    finally:
        down, _ = play(playbook="playbooks/teardown.yml")
        left = docker("ps", "-aq", "--filter", "label=mtrt.cluster=%s" % CLUSTER).stdout.split()
        for name in NODES:
            docker("rm", "-f", name, check=False)
        docker("network", "rm", NETWORK, check=False)
        assert down.returncode == 0, down.stdout[-3000:]
        assert left == [], "teardown left %s" % left


def results(report, kind):
    return [e for hosts in report["results"].values() for entries in hosts.values() for e in entries
            if e["kind"] == kind]


def test_bring_up_one_node_container_per_docker_host(cluster):
    play, tmp = cluster
    proc, report = play()
    assert proc.returncode == 0, proc.stdout[-6000:]
    (hello,) = results(report, "mpi_hello")
    assert hello["result"]["world_size"] == 4
    assert hello["result"]["ranks_per_host"] == {"mtrt-mh-n1": 2, "mtrt-mh-n2": 1, "mtrt-mh-n3": 1}
    (check,) = results(report, "hosts_preflight")
    assert check["result"]["machines"] == ["mh-dh1", "mh-dh2", "mh-dh3"] and check["result"]["problems"] == []
    # One node_containers run per docker host, each creating its own container only.
    runs = results(report, "node_containers")
    assert sorted(a["name"] for r in runs for a in r["result"]["containers"] if a["action"] == "create") == \
        sorted(NODES)
    for name, (dh, ip, _) in NODES.items():
        info = json.loads(docker("inspect", name).stdout)[0]
        assert info["Config"]["Labels"]["mtrt.docker_host"] == dh
        assert not info["HostConfig"]["Privileged"] and info["HostConfig"]["NetworkMode"] == NETWORK
        sources = {m["Destination"]: m["Source"] for m in info["Mounts"]}
        assert sources["/etc/mtrt/cluster"] == str(tmp / dh / "cluster")  # its own docker host's copy
        assert sources["/etc/mtrt/node/ssh_host_ed25519_key"] == str(tmp / dh / "hostkeys" / (name + "_ed25519"))
        assert oct((tmp / dh / "ssh" / "id_ed25519").stat().st_mode & 0o777) == "0o600"
        listening = docker("exec", name, "sh", "-c", "ss -Hltn").stdout.split()
        assert "%s:2233" % ip in listening and not any(a.endswith(":22") for a in listening), listening
        config = (tmp / dh / "cluster" / "sshd_config").read_text()
        assert "Port 2233" in config and config.rstrip().endswith("ListenAddress %s" % ip)
    ssh = docker("exec", "mtrt-mh-n1", "sh", "-c", "ssh -G mtrt-mh-n3 | grep -E '^(hostname|port|stricthost)'")
    assert ssh.stdout.split() == ["hostname", "10.77.3.13", "port", "2233", "stricthostkeychecking", "true"]
    # NCCL's interface reaches every rank, also those mpirun starts over the containers' sshd (which get none of
    # the container's environment): each machine's nccl.conf at /etc/nccl.conf, an exact name (eth0 on this bridge).
    ranks = docker("exec", "mtrt-mh-n1", "timeout", "60", "mpirun", "--allow-run-as-root", "--hostfile",
                   "/etc/mtrt/cluster/hostfile", "-np", "4", "sh", "-c",
                   'echo "RANK $(hostname) ${NCCL_SOCKET_IFNAME:-unset} $(grep -v \'^#\' /etc/nccl.conf)"')
    seen = sorted(line.split()[1:] for line in ranks.stdout.splitlines() if line.startswith("RANK "))
    assert seen == sorted([name, "unset", "NCCL_SOCKET_IFNAME==eth0"] for name in
                          ["mtrt-mh-n1", "mtrt-mh-n1", "mtrt-mh-n2", "mtrt-mh-n3"]), ranks.stdout + ranks.stderr
    for name, (dh, _, _) in NODES.items():
        conf = (tmp / dh / "cluster" / "nccl.conf").read_text()
        assert conf.splitlines()[1:] == ["NCCL_SOCKET_IFNAME==eth0"], conf
    # The node image's Open MPI, read once at stage 10: Debian 12's 4.1 keeps oob_tcp_if_include, and PRRTE's
    # file (installed by the entrypoint) says so.
    record = json.loads((tmp / "state" / CLUSTER / "image" / "openmpi.json").read_text())
    image_id = json.loads(docker("image", "inspect", "mtrt-mh-node:" + CLUSTER).stdout)[0]["Id"]
    assert record["image"] == image_id and record["major"] == 4 and record["version"].startswith("4."), record
    mca = (tmp / "mh-dh2" / "cluster" / "mca-params.conf").read_text()
    assert "oob_tcp_if_include = %s" % SUBNET in mca and "btl_tcp_if_include = %s" % SUBNET in mca
    prte = docker("exec", "mtrt-mh-n2", "cat", "/root/.prte/mca-params.conf").stdout
    assert prte.splitlines()[1].startswith("# Open MPI 4:"), prte


def test_second_run_changes_nothing(cluster):
    play, _ = cluster
    proc, report = play()
    assert proc.returncode == 0, proc.stdout[-4000:]
    changed = {s["key"]: s["counts"]["changed"] for s in report["stages"] if s["counts"]["changed"]}
    assert changed == {}, changed


def test_two_host_network_containers_on_one_machine_are_refused(cluster):
    play, tmp = cluster
    sub = tmp / "refused"
    sub.mkdir()
    inv = inventory(sub, cluster_node_network="host")
    doc = yaml.safe_load(inv.read_text())
    doc["all"]["children"]["nodes"]["hosts"]["mtrt-mh-n2"]["node_docker_host"] = "mh-dh1"
    inv.write_text(yaml.safe_dump(doc))
    proc, report = play(playbook="playbooks/00_preflight.yml", inv=inv)
    assert proc.returncode != 0
    (check,) = results(report, "hosts_preflight")
    messages = [p["message"] for p in check["result"]["problems"]]
    assert any(m.startswith("Nodes mtrt-mh-n1, mtrt-mh-n2 all run on docker host mh-dh1 with host networking")
               for m in messages), messages
    assert docker("ps", "-aq", "--filter", "label=mtrt.docker_host=mh-dh1").stdout.split() != []  # nothing changed
