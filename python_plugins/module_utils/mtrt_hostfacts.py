# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""What one machine of a multi-host cluster has, read for the preflight across hosts.

Plain Python (no Ansible imports): parsers take text and return dicts, the readers take the
few system calls they need as arguments, so every piece is tested on captured output. The
``hosts_preflight_facts`` module wires them together.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import stat

from ansible.module_utils.trtllm_command import VERSION_PROBE

# "Open MPI v4.1.4" (ompi_info --version) or "mpirun (Open MPI) 4.1.4" (mpirun --version).
_OMPI_RE = re.compile(r"(?:^|\n)\s*(?:Open MPI v?|\S+ \(Open MPI\) )(\d+)\.(\d+)(?:\.(\d+))?([^\s,]*)")
_OMPI_PARSABLE_RE = re.compile(r"^ompi:version:full:(\S+)\s*$", re.MULTILINE)
HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")

# Run by the ranks' interpreter: its version, mpi4py and the MPI library it is linked to (loaded,
# never initialised), and the installed TensorRT-LLM (metadata only: importing it takes seconds
# and needs a GPU).
PYTHON_PROBE = VERSION_PROBE + r"""
import json, platform, sys
out = {"version": platform.python_version(), "executable": sys.executable, "mpi4py": {"found": False},
       "tensorrt_llm": None, "venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix)}
try:
    import mpi4py
    mpi4py.rc.initialize = False
    mpi4py.rc.finalize = False
    from mpi4py import MPI
    lib = MPI.Get_library_version().replace("\x00", "").strip().splitlines()[0]
    out["mpi4py"] = {"found": True, "version": mpi4py.__version__, "mpi_library": lib.split(",")[0].strip(),
                     "vendor": list(MPI.get_vendor()[:1]) + [".".join(map(str, MPI.get_vendor()[1]))]}
except Exception as exc:
    out["mpi4py"] = {"found": False, "error": "%s: %s" % (type(exc).__name__, exc)}
out["tensorrt_llm"] = _mtrt_trtllm_version()
print("MTRT-PYFACTS " + json.dumps(out))
"""


def parse_ompi_version(text):
    """``ompi_info --version`` / ``--parsable`` / ``mpirun --version`` text -> {version, major} (None: not Open MPI)."""
    text = text or ""
    match = _OMPI_PARSABLE_RE.search(text)
    if match:
        version = match.group(1)
    else:
        match = _OMPI_RE.search(text)
        if not match:
            return None
        version = ".".join(g for g in match.groups()[:3] if g is not None) + (match.group(4) or "")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = None
    return {"version": version, "major": major}


def parse_python_probe(stdout):
    """The JSON line PYTHON_PROBE prints -> dict; None when it is not there."""
    for line in (stdout or "").splitlines():
        if line.startswith("MTRT-PYFACTS "):
            try:
                return json.loads(line[len("MTRT-PYFACTS "):])
            except ValueError:
                return None
    return None


def parse_ip_addr_json(text):
    """``ip -j -4 addr`` -> ``[{ifname, address, prefixlen}]`` (IPv4 only)."""
    try:
        data = json.loads(text or "[]")
    except ValueError:
        return []
    out = []
    for link in data if isinstance(data, list) else []:
        for info in link.get("addr_info") or []:
            if info.get("family") == "inet" and info.get("local"):
                out.append({"ifname": info.get("label") or link.get("ifname"), "address": info["local"],
                            "prefixlen": info.get("prefixlen")})
    return out


def parse_ip_addr_oneline(text):
    """``ip -o -4 addr`` (iproute2 without JSON) -> the same shape as parse_ip_addr_json."""
    out = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "inet":
            address, _, prefix = fields[3].partition("/")
            ifname = fields[1].rstrip(":")
            if "label" in fields:
                ifname = fields[fields.index("label") + 1] if fields.index("label") + 1 < len(fields) else ifname
            out.append({"ifname": ifname, "address": address, "prefixlen": int(prefix) if prefix.isdigit() else None})
    return out


def fabric_of(addresses, ip, ifname=None):
    """Where ``ip`` sits among ``addresses``: {ip, present, ifname, ifname_addresses}."""
    match = next((a for a in addresses if a["address"] == ip), None)
    want = ifname or (match or {}).get("ifname")
    return {"ip": ip, "present": match is not None, "ifname": (match or {}).get("ifname"),
            "ifname_addresses": sorted(a["address"] for a in addresses if want and a["ifname"] == want)}


def parse_nvidia_smi_index(text):
    """``nvidia-smi --query-gpu=index --format=csv,noheader`` -> [0, 1, ...]."""
    return [int(line.strip()) for line in (text or "").splitlines() if line.strip().isdigit()]


def parse_sshd_hostkeys(text):
    """``sshd -T`` output -> the private host key paths of its ``hostkey`` lines, in order, each once."""
    paths = []
    for line in (text or "").splitlines():
        fields = line.split(None, 1)
        if len(fields) == 2 and fields[0].lower() == "hostkey" and fields[1].strip() not in paths:
            paths.append(fields[1].strip())
    return paths


def default_host_key_paths(types=HOST_KEY_TYPES, directory="/etc/ssh"):
    """The host keys sshd uses when its configuration names none (OpenSSH's defaults)."""
    return [os.path.join(directory, "ssh_host_%s_key" % kind) for kind in types]


def host_keys(read, paths=None, types=HOST_KEY_TYPES, directory="/etc/ssh"):
    """``["ssh-ed25519 AAAA...", ...]`` of the machine's sshd host keys (``read(path)`` -> text or None).

    ``paths``: the private keys sshd uses (``sshd -T``); their ``.pub`` halves are read. None: the
    default ``<directory>/ssh_host_<type>_key`` of every type.
    """
    return host_key_files(read, paths, types, directory)[0]


def host_key_files(read, paths=None, types=HOST_KEY_TYPES, directory="/etc/ssh"):
    """``(keys, files)``: the public keys read and the private key path of each (``paths`` as in host_keys)."""
    keys, files = [], []
    for path in default_host_key_paths(types, directory) if paths is None else paths:
        text = read(path if path.endswith(".pub") else path + ".pub")
        fields = (text or "").split()
        if len(fields) >= 2 and fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
            key = "%s %s" % (fields[0], fields[1])
            if key not in keys:
                keys.append(key)
                files.append(path[:-4] if path.endswith(".pub") else path)
    return keys, files


# Docker's --gpus (a DeviceRequest with driver "nvidia", what node containers ask for) works only where the
# daemon found this program on its PATH when it started (moby daemon/nvidia_linux.go); systemd starts
# dockerd with the default PATH below unless its unit sets another.
NVIDIA_HOOK = "nvidia-container-runtime-hook"
DEFAULT_DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def environ_path(environ):
    """PATH from a ``/proc/<pid>/environ`` (NUL-separated bytes or text); None when it has none."""
    if isinstance(environ, bytes):
        environ = environ.decode("utf-8", "replace")
    for item in (environ or "").split("\0"):
        if item.startswith("PATH="):
            return item[len("PATH="):]
    return None


def find_in_path(name, search_path, is_executable=None):
    """The first ``<dir>/<name>`` of ``search_path`` that is executable, else None."""
    is_executable = is_executable or (lambda path: os.path.isfile(path) and os.access(path, os.X_OK))
    for directory in (search_path or "").split(":"):
        if directory and is_executable(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return None


def gpu_hook(environ, is_executable=None):
    """Whether a docker daemon with this environment can give containers NVIDIA GPUs:
    ``{checked, path, search_path}`` (``environ`` None: no daemon found, nothing checked)."""
    if environ is None:
        return {"checked": False, "path": None, "search_path": None}
    search_path = environ_path(environ) or DEFAULT_DAEMON_PATH
    return {"checked": True, "path": find_in_path(NVIDIA_HOOK, search_path, is_executable),
            "search_path": search_path}


def classify_connect_error(exc):
    """An OSError of connect() -> (state, detail): refused, timeout, unreachable or error."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(exc, socket.timeout):
        return "timeout", "no answer in time"
    code = getattr(exc, "errno", None)
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        return "unreachable", os.strerror(code)
    return "error", str(exc)


def probe_tcp(ip, port, timeout_s, connect=None):
    """TCP connect to ip:port -> {ip, port, state, detail}."""
    connect = connect or socket.create_connection
    try:
        conn = connect((ip, int(port)), timeout_s)
    except OSError as exc:
        state, detail = classify_connect_error(exc)
        return {"ip": ip, "port": int(port), "state": state, "detail": detail}
    try:
        conn.close()
    except OSError:
        pass
    return {"ip": ip, "port": int(port), "state": "open", "detail": ""}


def _file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_hash(root, cache=None, hasher=_file_sha256):
    """Content fingerprint of a directory tree: {exists, sha256, files, bytes, hashed}.

    The fingerprint covers every regular file's relative path, size and content (symlinks by
    target), so two copies made with rsync or cp hash the same whatever their mtimes. ``cache``
    (a dict, updated in place) maps an absolute path to {size, mtime_ns, ino, sha256}: files whose
    size, mtime and inode are unchanged are not read again (a 13 GB model is read once).
    """
    if not os.path.isdir(root):
        return {"exists": False, "not_a_directory": os.path.exists(root), "sha256": None, "files": 0,
                "bytes": 0, "hashed": 0}
    entries = []
    total = hashed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                entries.append("L %s %s" % (rel, os.readlink(path)))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
            known = (cache or {}).get(path)
            if known and all(known.get(k) == v for k, v in key.items()) and known.get("sha256"):
                digest = known["sha256"]
            else:
                digest = hasher(path)
                hashed += 1
                if cache is not None:
                    cache[path] = dict(key, sha256=digest)
            total += st.st_size
            entries.append("F %s %d %s" % (rel, st.st_size, digest))
    return {"exists": True, "sha256": hashlib.sha256("\n".join(entries).encode()).hexdigest(),
            "files": len(entries), "bytes": total, "hashed": hashed}


def shm_size(path="/dev/shm", statvfs=os.statvfs):
    """{path, exists, size_bytes} of a tmpfs mount."""
    try:
        st = statvfs(path)
    except OSError:
        return {"path": path, "exists": False, "size_bytes": None}
    return {"path": path, "exists": True, "size_bytes": st.f_blocks * st.f_frsize}


def rlimit_value(value, infinity):
    """A getrlimit() value as the project writes limits: -1 for unlimited."""
    return -1 if value == infinity else int(value)


def parse_ulimit_l(text):
    """``ulimit -l`` output (KiB or 'unlimited') -> bytes, -1 for unlimited; None when unreadable."""
    value = (text or "").strip().splitlines()[-1:] or [""]
    value = value[0].strip()
    if value == "unlimited":
        return -1
    return int(value) * 1024 if value.isdigit() else None
