# SPDX-License-Identifier: Apache-2.0
"""ssh_mesh_check: ring chains first, direct hops only to say which hop broke; probe waits for sshd's port."""

import pytest
import ssh_mesh_check
from ansible.module_utils.mtrt_ssh import classify_ssh_error, probe, wait_for_port

PEERS = ["n1", "n2", "n3", "n4"]


class FakeSSH:
    """Hop chains -> outcome: a chain fails when it goes to a node in ``broken`` (its sshd refuses
    everyone) or over a link in ``bad_links`` (peer -> peer)."""

    def __init__(self, broken=(), bad_links=()):
        self.broken, self.bad_links, self.calls = set(broken), set(bad_links), []

    def __call__(self, hops, deadline, connect_timeout=5, port=None, **_):
        self.calls.append(list(hops))
        down = [h for h in hops if h in self.broken]
        if down:
            return dict(ok=False, hops=list(hops), answered_as=None, attempts=1, seconds=0.1,
                        cause="%s refused the cluster key" % down[0], fix="re-run node_containers")
        if len(hops) == 2 and (hops[0], hops[1]) in self.bad_links:
            return dict(ok=False, hops=list(hops), answered_as=None, attempts=1, seconds=0.1,
                        cause="the host key of %s is not the one in known_hosts" % hops[1], fix="re-run")
        return dict(ok=True, hops=list(hops), answered_as=hops[-1], attempts=1, seconds=0.05, cause=None, fix=None)


def run(run_module, monkeypatch, fake, **args):
    monkeypatch.setattr(ssh_mesh_check, "probe", fake)
    return run_module(ssh_mesh_check, dict({"peers": PEERS}, **args))


def test_ring_chains_prove_every_hop_with_2n_connections(run_module, monkeypatch):
    fake = FakeSSH()
    result = run(run_module, monkeypatch, fake)
    assert result["failed"] is False and result["failed_peers"] == [] and result["failed_nodes"] == []
    assert fake.calls == [["n1", "n2"], ["n2", "n3"], ["n3", "n4"], ["n4", "n1"]]
    assert [(d["hops"], d["ok"], d["via"], d["answered_as"]) for d in result["direct"]] == [
        (["n1"], True, "ring", "n1"), (["n2"], True, "ring", "n2"), (["n3"], True, "ring", "n3"),
        (["n4"], True, "ring", "n4")]
    assert len(result["ring"]) == 4 and all(r["ok"] for r in result["ring"])


def test_a_broken_node_is_named_once_not_as_its_chains(run_module, monkeypatch):
    fake = FakeSSH(broken={"n3"})
    result = run(run_module, monkeypatch, fake)
    assert result["failed"] is True and result["failed_peers"] == ["n3"] and result["failed_nodes"] == ["n3"]
    # the chains into and out of n3 failed; only their peers were then checked directly
    assert sorted(c[0] for c in fake.calls if len(c) == 1) == ["n2", "n3", "n4"]
    assert "n3: n3 refused the cluster key (fix: re-run node_containers)" in result["msg"]
    assert [d["via"] for d in result["direct"]] == ["ring", "direct", "direct", "direct"]


def test_a_bad_link_between_peers_is_named_as_the_hop(run_module, monkeypatch):
    result = run(run_module, monkeypatch, FakeSSH(bad_links={("n2", "n3")}))
    assert result["failed_peers"] == ["n2->n3"] and result["failed_nodes"] == ["n2", "n3"]
    assert all(d["ok"] for d in result["direct"])
    assert "known_hosts" in result["msg"]


def test_without_ring_or_with_one_peer_every_peer_is_checked_directly(run_module, monkeypatch):
    fake = FakeSSH()
    result = run(run_module, monkeypatch, fake, ring=False)
    assert fake.calls == [[p] for p in PEERS] and result["ring"] == []
    assert {d["via"] for d in result["direct"]} == {"direct"}
    fake = FakeSSH()
    monkeypatch.setattr(ssh_mesh_check, "probe", fake)
    result = run_module(ssh_mesh_check, {"peers": ["n1"]})
    assert fake.calls == [["n1"]] and result["failed"] is False


def test_a_peer_answering_with_another_name_fails(run_module, monkeypatch):
    class Swapped(FakeSSH):
        def __call__(self, hops, *a, **k):
            res = super().__call__(hops, *a, **k)
            if res["ok"] and hops[-1] == "n2":
                res["answered_as"] = "n4"
            return res
    result = run(run_module, monkeypatch, Swapped())
    assert result["failed"] is True and "n2 answered as n4" in result["msg"]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_wait_for_port_polls_until_open_or_deadline():
    clock = Clock()
    opens_at = 0.3
    seen = []

    def connector(host, port, timeout):
        seen.append((host, port))
        return clock.t >= opens_at

    assert wait_for_port("n1", 22, deadline=5, connector=connector, sleep=clock.sleep, clock=clock) is True
    assert 0.3 <= clock.t < 0.4 and seen[0] == ("n1", 22)
    clock = Clock()
    assert wait_for_port("n1", 22, deadline=1, connector=lambda *a: False, sleep=clock.sleep, clock=clock) is False
    assert clock.t >= 1


def test_probe_waits_for_the_port_then_retries_transient_ssh_failures():
    clock = Clock()
    answers = iter([(255, "", "ssh: connect to host n1 port 22: Connection refused"), (0, "n1\n", "")])
    result = probe(["n1"], deadline=10, runner=lambda argv, t: next(answers), sleep=clock.sleep, clock=clock,
                   port=22, connector=lambda *a: True)
    assert result["ok"] is True and result["attempts"] == 2 and result["answered_as"] == "n1"


def test_a_port_that_never_opens_ends_the_probe_without_ssh_naming_the_first_hop():
    """A stopped node: its sshd port never opens. No ssh attempt follows the wait (one cost 3-5 s more, per
    phase of the check), and the cause reads as ssh's own would, for the first hop."""
    clock = Clock()
    ran = []
    result = probe(["n2", "n1"], deadline=10, runner=lambda argv, t: ran.append(argv), sleep=clock.sleep,
                   clock=clock, port=22, connector=lambda *a: False)
    assert ran == [] and result["ok"] is False and result["first_hop_down"] is True and result["attempts"] == 0
    assert result["cause"] == "n2 did not answer in time" and 10 <= clock.t < 10.2
    assert result["stderr"] == "ssh: connect to host n2 port 22: Connection timed out"


def test_wait_for_port_reports_the_real_connection_error():
    import socket
    with socket.socket() as sock:  # a loopback port nobody listens on: refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    errors = []
    assert wait_for_port("127.0.0.1", port, deadline=0, errors=errors) is False
    assert errors == ["Connection refused"]
    kind, cause, _fix = classify_ssh_error("ssh: connect to host n1 port 22: " + errors[0], "n1")
    assert cause == "sshd on n1 is not accepting connections"


def test_a_node_whose_port_never_opened_is_not_checked_again(run_module, monkeypatch):
    class Down(FakeSSH):
        def __call__(self, hops, *a, **k):
            if hops[0] == "n3":
                self.calls.append(list(hops))
                return dict(ok=False, hops=list(hops), answered_as=None, attempts=0, seconds=10.0,
                            first_hop_down=True, cause="no route to n3", fix="check the node")
            return super().__call__(hops, *a, **k)
    fake = Down(broken={"n3"})
    result = run(run_module, monkeypatch, fake)
    assert result["failed_peers"] == ["n3"] and "n3: no route to n3" in result["msg"]
    # n2 (its chain into n3 failed) is checked directly; n3 is not probed a second time
    assert sorted(c[0] for c in fake.calls if len(c) == 1) == ["n2", "n4"]


def test_probe_gives_up_at_once_on_a_changed_host_key():
    clock = Clock()
    result = probe(["n1", "n2"], deadline=60, runner=lambda argv, t: (255, "", "Host key verification failed.\r\n"),
                   sleep=clock.sleep, clock=clock)
    assert result["ok"] is False and result["attempts"] == 1 and clock.t == 0
    assert "n2" in result["cause"]


@pytest.mark.parametrize("stderr,kind", [("Permission denied (publickey).", "permanent"),
                                         ("connect to host n1 port 22: No route to host", "transient"),
                                         ("weird", "transient")])
def test_classification(stderr, kind):
    assert classify_ssh_error(stderr, "n1")[0] == kind
