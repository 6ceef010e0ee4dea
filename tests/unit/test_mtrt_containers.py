# SPDX-License-Identifier: Apache-2.0
"""Node container specs: normalisation, fingerprint, docker create body, and the plan."""

import pytest
import json

from ansible.module_utils.mtrt_containers import (
    LABEL_CLUSTER, LABEL_HASH, LABEL_SPEC, SpecError, create_body, doc_hash, endpoint_problem, explain,
    fingerprint_doc, normalize_spec, plan, size_to_bytes, spec_hash)
from mtrt import cluster_node_list, node_container_specs

NODES = [{"name": "node1", "ip": "10.9.0.11", "gpus": []}, {"name": "node2", "ip": "10.9.0.12", "gpus": [1, 3]}]
BINDS = ["/state/shared:/TRTDir:rw", "/state/cluster:/etc/mtrt/cluster:ro",
         "/state/hostkeys/{node}_ed25519:/etc/mtrt/node/ssh_host_ed25519_key:ro"]
HASHED = ["/state/cluster/known_hosts", "/state/hostkeys/{node}_ed25519.pub"]


def specs(**kw):
    args = dict(image="mtrt-node:c1", network="net1", binds=BINDS, hash_files=HASHED, shm_size="1g",
                ulimits={"stack": 67108864, "memlock": -1}, env={"MTRT_SSH_USER": "root"})
    args.update(kw)
    return [normalize_spec(s) for s in node_container_specs(NODES, **args)]


def listed(spec, fingerprint, image_id="sha256:img", state="running", network_id="net-id", ip=None,
           cluster="c1", doc=None):
    labels = {LABEL_CLUSTER: cluster, LABEL_HASH: fingerprint}
    if doc is not None:
        labels[LABEL_SPEC] = json.dumps(doc)
    return {"Id": "id-" + spec["name"], "Names": ["/" + spec["name"]], "ImageID": image_id, "State": state,
            "Labels": labels,
            "NetworkSettings": {"Networks": {spec["network"]: {
                "NetworkID": network_id, "IPAMConfig": {"IPv4Address": ip or spec["ip"]}}}}}


def run_plan(wanted, entries, state="started", prune=True):
    docs = {s["name"]: fingerprint_doc(s, "sha256:img", {}) for s in wanted}
    return plan(wanted, entries, "c1", state, {"mtrt-node:c1": "sha256:img"}, {"net1": "net-id"}, docs,
                prune=prune)


def test_specs_from_the_inventory_shape():
    hv = {"node1": {"node_ip": "10.9.0.11", "node_gpus": []}, "node2": {"node_ip": "10.9.0.12", "node_gpus": [1, 3]}}
    assert [{k: n[k] for k in ("name", "ip", "gpus")} for n in cluster_node_list(["node1", "node2"], hv)] == NODES
    s1, s2 = specs()
    assert s1["etc_hosts"] == {"node2": "10.9.0.12"} and s2["etc_hosts"] == {"node1": "10.9.0.11"}
    assert s2["binds"][2] == "/state/hostkeys/node2_ed25519:/etc/mtrt/node/ssh_host_ed25519_key:ro"
    assert s2["hash_files"] == ["/state/cluster/known_hosts", "/state/hostkeys/node2_ed25519.pub"]
    assert s1["ulimits"] == ["memlock:-1:-1", "stack:67108864:67108864"]
    assert s1["labels"] == {"mtrt.node": "node1"} and s1["shm_size"] == 1073741824 and s2["gpus"] == [1, 3]


def test_create_body_is_what_docker_run_would_send():
    _, s2 = specs()
    doc = fingerprint_doc(s2, "sha256:img", {})
    body = create_body(s2, "c1", doc)
    hc = body["HostConfig"]
    assert body["Hostname"] == "node2" and body["Image"] == "mtrt-node:c1" and body["Env"] == ["MTRT_SSH_USER=root"]
    assert body["Labels"] == {"mtrt.node": "node2", LABEL_CLUSTER: "c1", LABEL_HASH: doc_hash(doc),
                              LABEL_SPEC: json.dumps(doc, sort_keys=True, separators=(",", ":"))}
    assert doc_hash(doc) == spec_hash(s2, "sha256:img", {}) and json.loads(body["Labels"][LABEL_SPEC]) == doc
    assert hc["NetworkMode"] == "net1" and hc["ExtraHosts"] == ["node1:10.9.0.11"] and hc["Privileged"] is False
    assert hc["DeviceRequests"] == [{"Driver": "nvidia", "DeviceIDs": ["1", "3"], "Capabilities": [["gpu"]]}]
    assert hc["Ulimits"] == [{"Name": "memlock", "Soft": -1, "Hard": -1},
                             {"Name": "stack", "Soft": 67108864, "Hard": 67108864}]
    assert hc["ShmSize"] == 1073741824 and hc["RestartPolicy"] == {"Name": "unless-stopped"}
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"net1": {"IPAMConfig": {"IPv4Address": "10.9.0.12"}}}}
    assert "DeviceRequests" not in create_body(specs()[0], "c1", doc)["HostConfig"]


def test_fingerprint_follows_every_input():
    s1, _ = specs()
    base = spec_hash(s1, "sha256:img", {"/state/cluster/known_hosts": "a"})
    assert base == spec_hash(dict(s1), "sha256:img", {"/state/cluster/known_hosts": "a"})
    assert base != spec_hash(s1, "sha256:other", {"/state/cluster/known_hosts": "a"})
    assert base != spec_hash(s1, "sha256:img", {"/state/cluster/known_hosts": "b"})
    assert base != spec_hash(s1, "sha256:img", {})  # a file that went missing
    for changed in (specs(shm_size="2g")[0], specs(ulimits={"stack": 1})[0], specs(image="other:1")[0],
                    normalize_spec(dict(s1, gpus=[0])), normalize_spec(dict(s1, ip="10.9.0.99"))):
        assert spec_hash(changed, "sha256:img", {"/state/cluster/known_hosts": "a"}) != base


def test_plan_creates_keeps_starts_and_recreates():
    s1, s2 = specs()
    f1 = spec_hash(s1, "sha256:img", {})
    actions, conflicts = run_plan([s1, s2], [listed(s1, f1)])
    assert conflicts == [] and [(a["name"], a["action"]) for a in actions] == [("node1", "none"), ("node2", "create")]

    actions, _ = run_plan([s1], [listed(s1, f1, state="exited")])
    assert actions[0]["action"] == "start" and actions[0]["reasons"] == ["it is exited"]
    actions, _ = run_plan([s1], [listed(s1, f1, state="exited")], state="present")
    assert actions[0]["action"] == "none"
    actions, _ = run_plan([s1], [listed(s1, f1, state="paused")])
    assert actions[0]["action"] == "unpause"

    for entry, why in ((listed(s1, "old"), "configuration differs"),
                       (listed(s1, f1, image_id="sha256:older"), "another image"),
                       (listed(s1, f1, network_id="gone"), "older network"),
                       (listed(s1, f1, ip="10.9.0.50"), "has address 10.9.0.50"),
                       (listed(s1, f1, state="dead"), "dead")):
        actions, _ = run_plan([s1], [entry])
        assert actions[0]["action"] == "recreate" and why in " ".join(actions[0]["reasons"]), actions


def test_plan_prunes_only_this_clusters_containers_and_never_touches_others():
    s1, s2 = specs()
    f1 = spec_hash(s1, "sha256:img", {})
    left = listed(normalize_spec(dict(s1, name="node9")), "x")
    foreign = listed(s2, "x", cluster="someone-else")
    actions, conflicts = run_plan([s1, s2], [listed(s1, f1), left, foreign])
    assert [(a["name"], a["action"]) for a in actions] == [("node1", "none"), ("node9", "remove")]
    assert len(conflicts) == 1 and "node2" in conflicts[0] and "cluster someone-else" in conflicts[0]
    actions, _ = run_plan([s1], [listed(s1, f1), left], prune=False)
    assert [a["action"] for a in actions] == ["none"]


def test_plan_absent_removes_named_and_labelled_containers():
    s1, s2 = specs()
    left = listed(normalize_spec(dict(s1, name="node9")), "x")
    actions, _ = plan([{"name": "node1"}, {"name": "node2"}], [listed(s1, "x"), left], "c1", "absent", {}, {}, {})
    assert [(a["name"], a["action"]) for a in actions] == [("node1", "remove"), ("node2", "none"), ("node9", "remove")]


def test_endpoint_problem_reads_docker_listing():
    s1, _ = specs()
    entry = listed(s1, "x")
    assert endpoint_problem(entry, "net1", "net-id", "10.9.0.11") is None
    entry["NetworkSettings"]["Networks"] = {}
    assert endpoint_problem(entry, "net1", "net-id", "10.9.0.11") == "not attached to network net1"


@pytest.mark.parametrize("bad,match", [
    ({"name": "n1", "image": "i", "network": "n", "ip": "1.2.3.4", "binds": ["relative:/x"]}, "bind"),
    ({"name": "n1", "image": "i", "network": "n", "ip": "1.2.3.4", "ulimits": ["nofile=1"]}, "ulimit"),
    ({"name": "n1", "image": "i", "network": "n", "ip": "1.2.3.4", "shm_size": "lots"}, "shm_size"),
    ({"name": "n1", "image": "i", "network": "n"}, "ip is required"),
    ({"name": "n1", "image": "i", "network": "n", "ip": "1.2.3.4", "labels": {LABEL_HASH: "x"}}, "set by the module"),
    ({"name": "n1", "image": "i", "network": "n", "ip": "1.2.3.4", "colour": "red"}, "unknown field"),
])
def test_bad_specs_name_the_container_and_field(bad, match):
    with pytest.raises(SpecError, match=match):
        normalize_spec(bad)


def test_sizes_use_dockers_binary_units():
    assert [size_to_bytes(v) for v in ("1g", "256m", "64M", "1024", "2k", 7)] == [
        1073741824, 268435456, 67108864, 1024, 2048, 7]


def test_a_recreate_says_what_changed():
    s1, _ = specs()
    old = fingerprint_doc(s1, "sha256:old", {"/state/cluster/known_hosts": "a"})
    new_spec = specs(shm_size="2g", ulimits={"stack": 67108864})[0]
    new = fingerprint_doc(new_spec, "sha256:img", {"/state/cluster/known_hosts": "b"})
    assert explain(old, new) == ["shm_size 1073741824 -> 2147483648", 'ulimits -"memlock:-1:-1"',
                                 "image ID sha256:old -> sha256:img", "content of cluster/known_hosts"]
    entry = listed(s1, doc_hash(old), doc=old)
    actions, _ = plan([new_spec], [entry], "c1", "started", {"mtrt-node:c1": "sha256:img"}, {"net1": "net-id"},
                      {"node1": new})
    assert actions[0]["action"] == "recreate"
    assert actions[0]["reasons"][0] == ("its configuration differs: shm_size 1073741824 -> 2147483648; "
                                        'ulimits -"memlock:-1:-1"; image ID sha256:old -> sha256:img; '
                                        "content of cluster/known_hosts")
    # a container from before the spec label: the reason still says so, without details
    actions, _ = plan([new_spec], [listed(s1, "old-hash")], "c1", "started", {}, {"net1": "net-id"}, {"node1": new})
    assert actions[0]["reasons"][0] == "its configuration differs (label mtrt.spec_hash)"
