#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Read what one machine of a multi-host cluster has (preflight across hosts)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: hosts_preflight_facts
short_description: Read one machine's MPI stack, fabric address, limits, GPUs, host keys and directory hashes
description:
  - Runs on every machine of a cluster spread over several hosts (C(cluster_mode) V(hosts) or
    V(docker_per_host)) in the preflight, before anything changes; the C(hosts_preflight) action compares
    the results of all machines (C(mpi_trt_ansible/hosts.py)).
  - Reads the Open MPI of C(mpirun) on C(PATH) (C(ompi_info --version) beside it), and runs O(python) once to
    report its version, mpi4py and the MPI library mpi4py is linked to (loaded, never initialised) and the
    installed C(tensorrt_llm) version (package metadata, no import).
  - Reads the IPv4 addresses (C(ip -j -4 addr)) and where O(fabric_ip) sits, the memlock limit of the MPI
    account's sessions (C(sudo -u) applies its PAM limits, as sshd does), the size of C(/dev/shm), the GPU ids
    C(nvidia-smi) lists, the sshd host keys (the C(HostKey) files C(sshd -T) names, else
    C(/etc/ssh/ssh_host_*_key); their C(.pub) halves), the MPI account, and optionally the docker daemon's
    grantable limits.
  - From this machine, opens a TCP connection to every O(probes) address (the launcher reaching the nodes).
  - Fingerprints every O(hash_dirs) directory (relative paths, sizes and sha256 of every file); a cache file
    keyed by size, mtime and inode keeps unchanged files from being read again.
  - Never changes the machine (only its own hash cache); C(changed) is always false.
author: mpi-trt-ansible
version_added: "1.2.0"
options:
  python:
    description: Interpreter every rank runs (C(cluster_mpi_python)).
    type: str
    default: python3
  mpirun:
    description: mpirun command or path; C(ompi_info) is looked up beside it.
    type: str
    default: mpirun
  user:
    description: The MPI account (C(cluster_ssh_user)); its memlock limit is read through C(sudo -u) when it exists.
    type: str
    default: ""
  fabric_ip:
    description: The node's fabric address (C(node_ip)); empty skips the check.
    type: str
    default: ""
  fabric_ifname:
    description: Interface the fabric address should be on (C(node_fabric_ifname)); empty takes the one holding it.
    type: str
    default: ""
  probes:
    description: Addresses to open a TCP connection to from this machine, each C({name, ip, port}).
    type: list
    elements: dict
    default: []
  probe_timeout_s:
    description: Seconds each probe may take.
    type: float
    default: 3
  hash_dirs:
    description: Directories to fingerprint (missing ones are reported as such).
    type: list
    elements: path
    default: []
  stat_paths:
    description: Paths whose existence is reported (e.g. the shared directory, created only when missing).
    type: list
    elements: path
    default: []
  hash_cache:
    description: File keeping the per-file hashes between runs (not written in check mode); empty disables it.
    type: path
    default: /var/cache/mtrt/dirhash.json
  docker_limits:
    description: >-
      Also read the docker daemon's hard limits (what a container can be granted) and whether it can give a
      container NVIDIA GPUs (C(nvidia-container-runtime-hook) on the daemon's C(PATH), which docker's C(--gpus)
      needs).
    type: bool
    default: false
  timeout_s:
    description: Seconds each command (ompi_info, the interpreter, nvidia-smi) may take.
    type: int
    default: 30
notes:
  - Supports check mode (it only reads).
"""

EXAMPLES = r"""
- name: Read what this machine has
  hosts_preflight_facts:
    python: python3
    user: mtrt
    fabric_ip: 10.0.0.11
    probes: [{name: gpu02, ip: 10.0.0.12, port: 22}]
    hash_dirs: [/srv/models/llama]
  register: hosts_preflight_facts
"""

RETURN = r"""
mtrt_kind:
  description: Always C(host_facts).
  returned: always
  type: str
hostname:
  description: The machine's hostname (C(socket.gethostname())).
  returned: always
  type: str
addresses:
  description: IPv4 addresses, each C({ifname, address, prefixlen}).
  returned: always
  type: list
  elements: dict
fabric:
  description: C({ip, present, ifname, ifname_addresses}) for O(fabric_ip).
  returned: always
  type: dict
openmpi:
  description: C({found, mpirun, ompi_info, version, major, error}).
  returned: always
  type: dict
  sample: {found: true, mpirun: /usr/bin/mpirun, version: 4.1.4, major: 4}
python:
  description: >-
    C({found, path, version, mpi4py {found, version, mpi_library, vendor}, tensorrt_llm, venv, error});
    C(venv) is true for a virtual environment (its C(sys.prefix) is not the base interpreter's).
  returned: always
  type: dict
memlock:
  description: C({soft, hard, as_user}) in bytes, -1 unlimited; C(as_user) names whose sessions they are.
  returned: always
  type: dict
shm:
  description: C({path, exists, size_bytes}) of /dev/shm.
  returned: always
  type: dict
gpus:
  description: GPU ids nvidia-smi lists ([] without GPUs or nvidia-smi).
  returned: always
  type: list
  elements: int
host_keys:
  description: The sshd host public keys, C(type base64) each ([] when none could be read).
  returned: always
  type: list
  elements: str
host_key_files:
  description: >-
    C({source, paths, read}): where the key list came from (C(sshd -T), or C(default) when it gave none),
    the private keys named there, and those whose public half was read (the same order as RV(host_keys)).
  returned: always
  type: dict
user:
  description: C({name, exists, uid, home}) of O(user).
  returned: always
  type: dict
probes:
  description: One C({name, ip, port, state, detail}) per O(probes); state is open, refused, timeout, unreachable or error.
  returned: always
  type: list
  elements: dict
dirs:
  description: Per O(hash_dirs) path C({exists, sha256, files, bytes, hashed}).
  returned: always
  type: dict
paths:
  description: Per O(stat_paths) path, whether it exists.
  returned: always
  type: dict
docker:
  description: >-
    With O(docker_limits): C(grantable), the hard limits the docker daemon can give a container ({} when it can
    raise any), and C(gpu_hook) C({checked, path, search_path}), where the daemon finds
    C(nvidia-container-runtime-hook) (path null: nowhere on its PATH; checked false: no daemon found).
  returned: always
  type: dict
duration_s:
  description: Seconds the module took.
  returned: always
  type: float
"""

import json
import os
import pwd
import resource
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_fileio import atomic_write
from ansible.module_utils.mtrt_hostfacts import (
    PYTHON_PROBE, fabric_of, gpu_hook, host_key_files, parse_ip_addr_json, parse_ip_addr_oneline, parse_nvidia_smi_index,
    parse_ompi_version, parse_python_probe, parse_sshd_hostkeys, parse_ulimit_l, probe_tcp, rlimit_value, shm_size,
    tree_hash)
from ansible.module_utils.mtrt_proc import run_bounded, tail
from ansible.module_utils.mtrt_preflight_facts import grantable_ulimits


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _openmpi(mpirun, timeout_s):
    path = shutil.which(mpirun)
    out = {"found": False, "mpirun": path, "ompi_info": None, "version": None, "major": None, "error": ""}
    if not path:
        out["error"] = "%s is not on PATH" % mpirun
        return out
    info = os.path.join(os.path.dirname(os.path.realpath(path)), "ompi_info")
    info = info if os.access(info, os.X_OK) else (shutil.which("ompi_info") or info)
    out["ompi_info"] = info
    run = run_bounded([info, "--version"], timeout_s) if os.access(info, os.X_OK) else \
        run_bounded([path, "--version"], timeout_s)
    parsed = parse_ompi_version(run["stdout"] + "\n" + run["stderr"])
    if not parsed:
        out["error"] = "%s is not Open MPI: %s" % (path, tail(run["stdout"] or run["stderr"], 2) or "no output")
        return out
    out.update(parsed, found=True)
    return out


def _python(python, timeout_s):
    path = shutil.which(python)
    out = {"found": False, "path": path, "version": None, "mpi4py": {"found": False}, "tensorrt_llm": None,
           "error": ""}
    if not path:
        out["error"] = "%s is not on PATH" % python
        return out
    run = run_bounded([path, "-c", PYTHON_PROBE], timeout_s)
    parsed = parse_python_probe(run["stdout"])
    if parsed is None:
        out["error"] = "%s failed: %s" % (path, tail(run["stderr"], 3) or "rc=%s" % run["rc"])
        return out
    out.update(found=True, version=parsed.get("version"), mpi4py=parsed.get("mpi4py") or {"found": False},
               tensorrt_llm=parsed.get("tensorrt_llm"), venv=bool(parsed.get("venv")))
    return out


def _memlock(user, exists, timeout_s):
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    out = {"soft": rlimit_value(soft, resource.RLIM_INFINITY), "hard": rlimit_value(hard, resource.RLIM_INFINITY),
           "as_user": pwd.getpwuid(os.geteuid()).pw_name}
    sudo = shutil.which("sudo")
    if user and exists and sudo and os.geteuid() == 0:
        # sudo runs the account's PAM session (pam_limits), as sshd does for mpirun's logins.
        run = run_bounded([sudo, "-n", "-u", user, "/bin/sh", "-c", "ulimit -l"], timeout_s)
        value = parse_ulimit_l(run["stdout"]) if run["rc"] == 0 else None
        if value is not None:
            out.update(soft=value, as_user=user)
    return out


def _addresses(timeout_s):
    ip = shutil.which("ip")
    if not ip:
        return []
    run = run_bounded([ip, "-j", "-4", "addr"], timeout_s)
    if run["rc"] == 0 and run["stdout"].strip().startswith("["):
        return parse_ip_addr_json(run["stdout"])
    return parse_ip_addr_oneline(run_bounded([ip, "-o", "-4", "addr"], timeout_s)["stdout"])


def _gpus(timeout_s):
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    run = run_bounded([smi, "--query-gpu=index", "--format=csv,noheader"], timeout_s)
    return parse_nvidia_smi_index(run["stdout"]) if run["rc"] == 0 else []


def _host_keys(timeout_s):
    """The sshd's host keys: the HostKey files ``sshd -T`` names, else OpenSSH's default paths."""
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None)
    paths = []
    if sshd:
        run = run_bounded([sshd, "-T"], timeout_s)
        paths = parse_sshd_hostkeys(run["stdout"]) if run["rc"] == 0 else []
    keys, files = host_key_files(_read, paths or None)
    return keys, {"source": "sshd -T" if paths else "default", "paths": paths or None, "read": files}


def _read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _dockerd():
    """The docker daemon's grantable limits and whether it finds the NVIDIA hook ({} and unchecked: no daemon)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (_read("/proc/%s/comm" % pid) or "").strip() == "dockerd":
            environ = _read_bytes("/proc/%s/environ" % pid)
            return {"grantable": grantable_ulimits(_read("/proc/%s/status" % pid), _read("/proc/%s/limits" % pid)),
                    "gpu_hook": gpu_hook(environ if environ is not None else b"")}
    return {"grantable": {}, "gpu_hook": gpu_hook(None)}


def _user(name):
    if not name:
        return {"name": "", "exists": False, "uid": None, "home": None}
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return {"name": name, "exists": False, "uid": None, "home": None}
    return {"name": name, "exists": True, "uid": entry.pw_uid, "home": entry.pw_dir}


def _hash_dirs(paths, cache_path, check_mode):
    cache = {}
    if cache_path:
        try:
            cache = json.loads(_read(cache_path) or "{}")
        except ValueError:
            cache = {}
    before = json.dumps(cache, sort_keys=True)
    dirs = {path: tree_hash(path, cache) for path in paths}
    if cache_path and not check_mode and json.dumps(cache, sort_keys=True) != before:
        try:
            os.makedirs(os.path.dirname(cache_path), mode=0o700, exist_ok=True)
            atomic_write(cache_path, json.dumps(cache, sort_keys=True).encode(), 0o600)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return dirs


def main():
    module = AnsibleModule(
        argument_spec=dict(
            python=dict(type="str", default="python3"),
            mpirun=dict(type="str", default="mpirun"),
            user=dict(type="str", default=""),
            fabric_ip=dict(type="str", default=""),
            fabric_ifname=dict(type="str", default=""),
            probes=dict(type="list", elements="dict", default=[]),
            probe_timeout_s=dict(type="float", default=3),
            hash_dirs=dict(type="list", elements="path", default=[]),
            stat_paths=dict(type="list", elements="path", default=[]),
            hash_cache=dict(type="path", default="/var/cache/mtrt/dirhash.json"),
            docker_limits=dict(type="bool", default=False),
            timeout_s=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    started = time.monotonic()
    timeout_s = params["timeout_s"]
    user = _user(params["user"])
    probes = params["probes"]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(probes) + 3))) as pool:
        probe_jobs = [pool.submit(probe_tcp, p.get("ip"), p.get("port", 22), params["probe_timeout_s"])
                      for p in probes]
        ompi_job = pool.submit(_openmpi, params["mpirun"], timeout_s)
        python_job = pool.submit(_python, params["python"], timeout_s)
        gpus_job = pool.submit(_gpus, timeout_s)
        keys_job = pool.submit(_host_keys, timeout_s)
        addresses = _addresses(timeout_s)
        memlock = _memlock(user["name"], user["exists"], timeout_s)
        dirs = _hash_dirs(params["hash_dirs"], params["hash_cache"], module.check_mode)
        probe_results = [dict(job.result(), name=p.get("name") or p.get("ip")) for p, job in zip(probes, probe_jobs)]
        openmpi, python, gpus = ompi_job.result(), python_job.result(), gpus_job.result()
        keys, key_files = keys_job.result()

    module.exit_json(
        changed=False, mtrt_kind="host_facts", hostname=socket.gethostname(), addresses=addresses,
        fabric=fabric_of(addresses, params["fabric_ip"], params["fabric_ifname"] or None) if params["fabric_ip"]
        else {"ip": "", "present": None, "ifname": None, "ifname_addresses": []},
        openmpi=openmpi, python=python, memlock=memlock, shm=shm_size(), gpus=gpus,
        host_keys=keys, host_key_files=key_files, user=user, probes=probe_results, dirs=dirs,
        paths={path: os.path.exists(path) for path in params["stat_paths"]},
        docker=_dockerd() if params["docker_limits"] else {},
        duration_s=round(time.monotonic() - started, 3))


if __name__ == "__main__":
    main()
