# SPDX-License-Identifier: Apache-2.0
"""hosts_preflight_facts: its parsers on captured output, the directory fingerprint, the TCP probe, and the module
run on this machine (with an Open MPI planted first on PATH, as the multihost scenario does)."""

import errno
import os
import socket
import stat
import sys

import hosts_preflight_facts
import pytest
from ansible.module_utils import mtrt_hostfacts as hf
from conftest import FIXTURES

FIX = FIXTURES / "hosts"


@pytest.mark.parametrize("name,version,major", [
    ("ompi_info_version_4.1.4.txt", "4.1.4", 4),
    ("ompi_info_parsable_4.1.4.txt", "4.1.4", 4),
    ("mpirun_version_4.1.4.txt", "4.1.4", 4),
])
def test_open_mpi_version_from_captured_output(name, version, major):
    assert hf.parse_ompi_version((FIX / name).read_text()) == {"version": version, "major": major}


@pytest.mark.parametrize("text,expected", [
    ("Open MPI v5.0.3\n\nhttps://www.open-mpi.org/community/help/\n", {"version": "5.0.3", "major": 5}),
    ("mpirun (Open MPI) 4.1.7a1\n", {"version": "4.1.7a1", "major": 4}),
    ("HYDRA build details:\n    Version: 4.0\n", None),
    ("", None),
])
def test_open_mpi_version_forms(text, expected):
    assert hf.parse_ompi_version(text) == expected


def test_ip_addresses_json_and_oneline_agree():
    from_json = hf.parse_ip_addr_json((FIX / "ip_j_4_addr_two_nets.json").read_text())
    oneline = hf.parse_ip_addr_oneline((FIX / "ip_o_4_addr_two_nets.txt").read_text())
    assert from_json == oneline == [
        {"ifname": "lo", "address": "127.0.0.1", "prefixlen": 8},
        {"ifname": "eth0", "address": "10.77.5.13", "prefixlen": 24},
        {"ifname": "eth1", "address": "10.77.6.13", "prefixlen": 24}]
    assert hf.parse_ip_addr_json("not json") == []


def test_fabric_address_and_its_interface():
    addrs = hf.parse_ip_addr_json((FIX / "ip_j_4_addr_two_nets.json").read_text())
    assert hf.fabric_of(addrs, "10.77.6.13") == {"ip": "10.77.6.13", "present": True, "ifname": "eth1",
                                                  "ifname_addresses": ["10.77.6.13"]}
    assert hf.fabric_of(addrs, "10.77.6.99", "eth0") == {"ip": "10.77.6.99", "present": False, "ifname": None,
                                                          "ifname_addresses": ["10.77.5.13"]}


def test_python_probe_and_small_parsers():
    assert hf.parse_python_probe('noise\nMTRT-PYFACTS {"version": "3.11.2"}\n') == {"version": "3.11.2"}
    assert hf.parse_python_probe("Traceback ...") is None
    assert hf.parse_nvidia_smi_index("0\n1\n\n") == [0, 1]
    assert hf.parse_ulimit_l("unlimited\n") == -1
    assert hf.parse_ulimit_l("8192\n") == 8192 * 1024
    assert hf.parse_ulimit_l("sudo: unknown user\n") is None


def test_python_probe_runs_in_this_interpreter():
    import subprocess
    out = subprocess.run([sys.executable, "-c", hf.PYTHON_PROBE], capture_output=True, text=True, check=True).stdout
    facts = hf.parse_python_probe(out)
    assert facts["version"] == "%d.%d.%d" % sys.version_info[:3]
    assert facts["executable"] == sys.executable
    assert "found" in facts["mpi4py"] and facts["tensorrt_llm"] is None
    assert facts["venv"] is (sys.prefix != sys.base_prefix)  # the tests run in the project's .venv


def test_host_keys_only_public_keys_of_known_types(tmp_path):
    (tmp_path / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAAC3Nz root@gpu01\n")
    (tmp_path / "ssh_host_rsa_key.pub").write_text("garbage\n")
    read = lambda p: open(p).read() if os.path.exists(p) else None  # noqa: E731
    assert hf.host_keys(read, directory=str(tmp_path)) == ["ssh-ed25519 AAAAC3Nz"]


def test_host_key_paths_from_captured_sshd_t():
    """sshd -T (OpenSSH 9.2, Debian 12) lists the HostKey files sshd really uses: its defaults, or only those
    the configuration names (here one in /etc/ssh/keys, from sshd_config.d)."""
    assert hf.parse_sshd_hostkeys((FIX / "sshd_T_bookworm_default.txt").read_text()) == [
        "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ecdsa_key", "/etc/ssh/ssh_host_ed25519_key"]
    assert hf.parse_sshd_hostkeys((FIX / "sshd_T_bookworm_custom_hostkey.txt").read_text()) == [
        "/etc/ssh/keys/host_ed25519"]
    # hostkeyagent and hostkeyalgorithms are other keywords; a failed sshd -T prints none.
    assert hf.parse_sshd_hostkeys("hostkeyagent none\nhostkeyalgorithms ssh-ed25519\n") == []
    assert hf.parse_sshd_hostkeys("sshd: no hostkeys available -- exiting.\n") == []


def test_host_keys_read_from_the_files_sshd_names(tmp_path):
    (tmp_path / "host_ed25519.pub").write_text("ssh-ed25519 AAAAcustom root@gpu01\n")
    (tmp_path / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAAdefault root@gpu01\n")
    read = lambda p: open(p).read() if os.path.exists(p) else None  # noqa: E731
    named = [str(tmp_path / "host_ed25519"), str(tmp_path / "missing_rsa")]
    assert hf.host_key_files(read, named) == (["ssh-ed25519 AAAAcustom"], [str(tmp_path / "host_ed25519")])
    # No paths from sshd -T: OpenSSH's default files.
    assert hf.host_keys(read, None, directory=str(tmp_path)) == ["ssh-ed25519 AAAAdefault"]
    assert hf.host_key_files(read, [str(tmp_path / "missing_rsa")]) == ([], [])


def test_the_docker_daemon_s_gpu_hook_is_looked_up_on_its_own_path(tmp_path):
    hook = tmp_path / "sbin" / "nvidia-container-runtime-hook"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    environ = b"LANG=C\0PATH=/nonexistent:%s\0NOTIFY_SOCKET=/run/systemd/notify\0" % str(hook.parent).encode()
    assert hf.environ_path(environ) == "/nonexistent:%s" % hook.parent
    assert hf.gpu_hook(environ) == {"checked": True, "path": str(hook), "search_path": "/nonexistent:%s" % hook.parent}
    # A daemon without PATH in its environment gets systemd's default one; no daemon: not checked.
    assert hf.gpu_hook(b"LANG=C\0", is_executable=lambda p: False) == {
        "checked": True, "path": None, "search_path": hf.DEFAULT_DAEMON_PATH}
    assert hf.gpu_hook(None) == {"checked": False, "path": None, "search_path": None}


def _tree(root, files):
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_tree_hash_is_about_content_not_mtimes_and_uses_its_cache(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    files = {"config.json": b"{}", "rank0.engine": b"x" * 4096, "tok/tokenizer.model": b"t"}
    _tree(a, files)
    _tree(b, files)
    os.utime(b / "config.json", (1, 1))
    cache = {}
    first = hf.tree_hash(str(a), cache)
    assert first == dict(first, exists=True, files=3, bytes=4099, hashed=3)
    assert hf.tree_hash(str(b))["sha256"] == first["sha256"]
    calls = []
    again = hf.tree_hash(str(a), cache, hasher=lambda p: calls.append(p) or "unused")
    assert again["sha256"] == first["sha256"] and again["hashed"] == 0 and calls == []
    (a / "rank0.engine").write_bytes(b"y" * 4096)
    changed = hf.tree_hash(str(a), cache)
    assert changed["sha256"] != first["sha256"] and changed["hashed"] == 1
    (b / "extra").write_bytes(b"")
    assert hf.tree_hash(str(b))["sha256"] != first["sha256"]
    assert hf.tree_hash(str(tmp_path / "missing")) == {"exists": False, "not_a_directory": False, "sha256": None,
                                                       "files": 0, "bytes": 0, "hashed": 0}


def test_tcp_probe_open_refused_and_classified_errors():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert hf.probe_tcp("127.0.0.1", port, 2)["state"] == "open"
    finally:
        server.close()
    assert hf.probe_tcp("127.0.0.1", port, 2)["state"] == "refused"
    assert hf.classify_connect_error(socket.timeout())[0] == "timeout"
    assert hf.classify_connect_error(OSError(errno.EHOSTUNREACH, "x")) == ("unreachable", "No route to host")
    assert hf.classify_connect_error(OSError(errno.EACCES, "denied"))[0] == "error"


def test_module_on_this_machine_with_a_planted_open_mpi(run_module, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("ompi_info", 'echo "Open MPI v5.0.3"'), ("mpirun", 'echo "mpirun (Open MPI) 5.0.3"')):
        (bin_dir / name).write_text("#!/bin/sh\n%s\n" % text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    model = tmp_path / "model"
    _tree(model, {"config.json": b"{}"})
    result = run_module(hosts_preflight_facts, {
        "python": sys.executable, "fabric_ip": "127.0.0.1", "hash_dirs": [str(model), str(tmp_path / "none")],
        "hash_cache": str(tmp_path / "cache" / "dirhash.json"), "stat_paths": [str(model)],
        "probes": [{"name": "nobody", "ip": "127.0.0.1", "port": 1}], "probe_timeout_s": 1})
    assert result["failed"] is False and result["changed"] is False and result["mtrt_kind"] == "host_facts"
    assert result["openmpi"] == dict(result["openmpi"], found=True, version="5.0.3", major=5,
                                     mpirun=str(bin_dir / "mpirun"), ompi_info=str(bin_dir / "ompi_info"))
    assert result["python"]["found"] and result["python"]["path"] == sys.executable
    assert result["fabric"]["present"] is True and result["fabric"]["ifname"] == "lo"
    assert result["probes"] == [{"name": "nobody", "ip": "127.0.0.1", "port": 1, "state": "refused",
                                 "detail": "connection refused"}]
    assert result["dirs"][str(model)]["exists"] and result["dirs"][str(tmp_path / "none")]["exists"] is False
    assert result["paths"] == {str(model): True}
    cache = tmp_path / "cache" / "dirhash.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert result["shm"]["exists"] in (True, False) and isinstance(result["memlock"]["soft"], int)


def test_module_without_open_mpi_says_so(run_module, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run_module(hosts_preflight_facts, {"python": sys.executable, "mpirun": "mpirun-missing",
                                     "hash_cache": ""})
    assert result["openmpi"] == {"found": False, "mpirun": None, "ompi_info": None, "version": None,
                                 "major": None, "error": "mpirun-missing is not on PATH"}
    assert result["fabric"]["present"] is None


def test_module_reads_the_host_keys_sshd_t_names(run_module, tmp_path, monkeypatch):
    """An sshd whose configuration names its own HostKey file: the module pins that key, not /etc/ssh's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "host_ed25519.pub").write_text("ssh-ed25519 AAAAfromsshdT root@gpu01\n")
    (bin_dir / "sshd").write_text("#!/bin/sh\n[ \"$1\" = -T ] || exit 2\necho 'port 22'\n"
                                  "echo 'hostkey %s'\n" % (tmp_path / "host_ed25519"))
    (bin_dir / "sshd").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    result = run_module(hosts_preflight_facts, {"python": sys.executable, "hash_cache": ""})
    assert result["host_keys"] == ["ssh-ed25519 AAAAfromsshdT"]
    assert result["host_key_files"] == {"source": "sshd -T", "paths": [str(tmp_path / "host_ed25519")],
                                        "read": [str(tmp_path / "host_ed25519")]}
    # An sshd -T that fails (no readable key as a non-root user): the default paths are read instead.
    (bin_dir / "sshd").write_text("#!/bin/sh\necho 'sshd: no hostkeys available -- exiting.' >&2\nexit 1\n")
    result = run_module(hosts_preflight_facts, {"python": sys.executable, "hash_cache": ""})
    assert result["host_key_files"]["source"] == "default" and result["host_key_files"]["paths"] is None
