# SPDX-License-Identifier: Apache-2.0
"""Stage 20's network in the controller process (mpi_trt_ansible.network, the cluster_network action):
what differs, what is done about it in which order, check mode and diff, on docker's inspect shapes."""

import copy
import sys

import pytest
from ansible.errors import AnsibleActionFail

from conftest import ROOT, load_action

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from mpi_trt_ansible import network  # noqa: E402

WANT = network.wanted("network_my", "192.168.123.0/24", "192.168.123.1", {"mtrt.cluster": "mtrt"})
# docker's inspect of the network as stage 20 leaves it, two node containers on it.
INSPECT = {"Name": "network_my", "Id": "f00d", "Driver": "bridge", "Labels": {"mtrt.cluster": "mtrt"},
           "IPAM": {"Driver": "default", "Options": {},
                    "Config": [{"Subnet": "192.168.123.0/24", "Gateway": "192.168.123.1"}]},
           "Containers": {"c1": {"Name": "node1"}, "c2": {"Name": "node2"}}}


class NotFound(Exception):
    pass


class FakeClient:
    """The four Docker SDK APIClient calls network.ensure makes, against one in-memory network."""

    def __init__(self, inspect=None):
        self.net, self.calls = copy.deepcopy(inspect), []

    def inspect_network(self, name):
        self.calls.append(("inspect", name))
        if not self.net or self.net["Name"] != name:
            raise NotFound(name)
        return copy.deepcopy(self.net)

    def disconnect_container_from_network(self, container, name, force=False):
        self.calls.append(("disconnect", container, force))
        self.net["Containers"] = {k: v for k, v in self.net["Containers"].items() if v["Name"] != container}

    def remove_network(self, name):
        assert not self.net["Containers"], "docker refuses to remove a network with containers on it"
        self.calls.append(("remove", name))
        self.net = None

    def create_network(self, name, driver=None, labels=None, ipam=None):
        assert self.net is None, "docker refuses a second network of one name"
        self.calls.append(("create", name, driver, labels, ipam["Config"]))
        self.net = {"Name": name, "Id": "new", "Driver": driver, "Labels": labels or {},
                    "IPAM": {"Driver": ipam["Driver"], "Config": ipam["Config"]}, "Containers": {}}

    def writes(self):
        return [c[0] for c in self.calls if c[0] != "inspect"]


def test_a_missing_network_is_created_with_subnet_gateway_and_label():
    client = FakeClient()
    result = network.ensure(client, WANT, not_found=NotFound)
    assert result["changed"] and result["actions"] == ["Created network network_my"]
    assert client.calls[1] == ("create", "network_my", "bridge", {"mtrt.cluster": "mtrt"},
                               [{"Subnet": "192.168.123.0/24", "Gateway": "192.168.123.1"}])
    assert result["network"]["Id"] == "new"
    assert result["diff"] == {"before": {"exists": False},
                              "after": {"exists": True, "driver": "bridge", "subnet": "192.168.123.0/24",
                                        "gateway": "192.168.123.1", "labels": {"mtrt.cluster": "mtrt"},
                                        "containers": []}}


def test_a_network_as_wanted_is_left_alone_with_its_containers_and_extra_labels():
    inspect = copy.deepcopy(INSPECT)
    inspect["Labels"]["owner"] = "someone"
    client = FakeClient(inspect)
    result = network.ensure(client, WANT, not_found=NotFound)
    assert not result["changed"] and result["actions"] == [] and result["differences"] == []
    assert client.writes() == [] and len(client.calls) == 1  # one inspect, nothing else
    assert result["network"]["Id"] == "f00d" and result["diff"]["before"] == result["diff"]["after"]


@pytest.mark.parametrize("change, words", [
    (lambda n: n["IPAM"]["Config"][0].update(Gateway="192.168.123.254"),
     "gateway 192.168.123.254 (wanted 192.168.123.1)"),
    (lambda n: n["IPAM"]["Config"][0].update(Subnet="192.168.124.0/24"),
     "subnet 192.168.124.0/24 (wanted 192.168.123.0/24)"),
    (lambda n: n.update(Labels={"mtrt.cluster": "other"}), "label mtrt.cluster=other (wanted mtrt)"),
    (lambda n: n.update(Driver="macvlan"), "driver macvlan (wanted bridge)"),
    (lambda n: n["IPAM"].update(Config=n["IPAM"]["Config"] + [{"Subnet": "10.9.0.0/16"}]),
     "subnet 192.168.123.0/24 (wanted 192.168.123.0/24)"),
])
def test_a_different_network_is_emptied_removed_and_created_again(change, words):
    inspect = copy.deepcopy(INSPECT)
    change(inspect)
    client = FakeClient(inspect)
    result = network.ensure(client, WANT, not_found=NotFound)
    assert result["changed"] and result["differences"] == [words]
    assert client.writes() == ["disconnect", "disconnect", "remove", "create"]
    assert all(c[2] is True for c in client.calls if c[0] == "disconnect")  # force, as docker_network does
    assert result["actions"] == ["Disconnected container node1", "Disconnected container node2",
                                 "Removed network network_my", "Created network network_my"]
    assert network.state(client.net)["subnet"] == "192.168.123.0/24" and client.net["Labels"] == WANT["labels"]


def test_check_mode_asks_and_changes_nothing():
    inspect = copy.deepcopy(INSPECT)
    inspect["IPAM"]["Config"][0]["Gateway"] = "192.168.123.254"
    for start in (None, inspect):
        client = FakeClient(start)
        result = network.ensure(client, WANT, check_mode=True, not_found=NotFound)
        assert result["changed"] and result["actions"][-1] == "Created network network_my"
        assert client.writes() == [] and client.net == start
        assert result["diff"]["after"]["gateway"] == "192.168.123.1"


def test_the_action_refuses_other_hosts_and_drops_the_diff_outside_diff_mode(run_action, monkeypatch):
    action = load_action("cluster_network")
    args = {"name": "network_my", "subnet": "192.168.123.0/24", "gateway": "192.168.123.1",
            "labels": {"mtrt.cluster": "mtrt"}}
    with pytest.raises(AnsibleActionFail, match="run it on localhost"):
        run_action(action, args, transport="ssh", name="cluster_network")
    with pytest.raises(AnsibleActionFail, match="value of driver must be one of: bridge"):
        run_action(action, dict(args, driver="overlay"), name="cluster_network")
    client = FakeClient(INSPECT)
    client.close = lambda: client.calls.append(("close",))
    fake_sdk = type("sdk", (), {"errors": type("errors", (), {"NotFound": NotFound, "APIError": RuntimeError})})
    monkeypatch.setattr(action.facts, "docker_client", lambda host, timeout: (fake_sdk, client))
    result = run_action(action, args, name="cluster_network")
    assert result["changed"] is False and result["mtrt_kind"] == "cluster_network" and "diff" not in result
    assert client.calls[-1] == ("close",)
