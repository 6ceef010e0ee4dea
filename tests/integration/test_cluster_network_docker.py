# SPDX-License-Identifier: Apache-2.0
"""Stage 20's cluster_network action against the real local docker engine, through the ansible CLI:
check mode creates nothing, a run creates the network as asked, a second run changes nothing, a
changed label recreates it, --diff shows before and after. The network has a name of its own and is
removed by that name.

Runs only with ``MTRT_INTEGRATION=1``.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
NAME = "mtrt-test-cnet-%d" % os.getpid()
SUBNET, GATEWAY = "192.168.168.0/24", "192.168.168.1"

pytestmark = pytest.mark.skipif(os.environ.get("MTRT_INTEGRATION") != "1",
                                reason="needs docker; set MTRT_INTEGRATION=1")


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def net():
    yield NAME
    docker("network", "rm", NAME, check=False)


def cluster_network(tmp, label, *flags):
    """One ``ansible localhost -m cluster_network`` run; its result (the JSON callback's, which comes
    first on stdout: the run report's summary follows it)."""
    args = json.dumps({"name": NAME, "subnet": SUBNET, "gateway": GATEWAY, "labels": {"mtrt.cluster": label}})
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               MTRT_REPORT_DIR=str(tmp / "reports"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    out = subprocess.run([str(BIN / "ansible"), "localhost", "-m", "cluster_network", "-a", args, *flags],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    doc, _end = json.JSONDecoder().raw_decode(out.stdout)
    return doc["plays"][0]["tasks"][0]["hosts"]["localhost"]


def inspect():
    found = docker("network", "inspect", NAME, check=False)
    return json.loads(found.stdout)[0] if found.returncode == 0 else None


def test_check_create_keep_recreate(net, tmp_path):
    checked = cluster_network(tmp_path, "mtrt-test", "--check", "--diff")
    assert checked["changed"] and checked["actions"] == ["Created network %s" % NAME]
    assert checked["diff"]["before"] == {"exists": False} and checked["diff"]["after"]["subnet"] == SUBNET
    assert inspect() is None  # check mode created nothing

    created = cluster_network(tmp_path, "mtrt-test")
    have = inspect()
    assert created["changed"] and have["Driver"] == "bridge" and have["Labels"] == {"mtrt.cluster": "mtrt-test"}
    assert have["IPAM"]["Config"] == [{"Subnet": SUBNET, "Gateway": GATEWAY}]
    assert created["network"]["Id"] == have["Id"]

    again = cluster_network(tmp_path, "mtrt-test", "--diff")
    assert not again["changed"] and again["actions"] == [] and inspect()["Id"] == have["Id"]

    relabelled = cluster_network(tmp_path, "mtrt-other", "--diff")
    assert relabelled["changed"] and relabelled["differences"] == ["label mtrt.cluster=mtrt-test (wanted mtrt-other)"]
    assert relabelled["diff"]["before"]["labels"] == {"mtrt.cluster": "mtrt-test"}
    now = inspect()
    assert now["Id"] != have["Id"] and now["Labels"] == {"mtrt.cluster": "mtrt-other"}
