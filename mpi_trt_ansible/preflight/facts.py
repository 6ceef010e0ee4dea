# SPDX-License-Identifier: Apache-2.0
"""What preflight reads about the docker host, and the parsers of what it reads.

Plain Python. The parsers turn /proc text into data (routes, a process's hard
limits); :func:`gather` reads the controller itself (the docker host in docker
mode): the docker engine's listing through the Docker SDK, in-process (no
module run), dockerd's limits, the routes and nvidia-smi's GPUs.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess

# /proc/<pid>/limits row label -> ulimit name.
PROC_LIMITS = {
    "Max cpu time": "cpu", "Max file size": "fsize", "Max data size": "data",
    "Max stack size": "stack", "Max core file size": "core", "Max resident set": "rss",
    "Max processes": "nproc", "Max open files": "nofile", "Max locked memory": "memlock",
    "Max address space": "as", "Max file locks": "locks", "Max pending signals": "sigpending",
    "Max msgqueue size": "msgqueue", "Max nice priority": "nice",
    "Max realtime priority": "rtprio", "Max realtime timeout": "rttime",
}


def parse_proc_net_route(text):
    """Parse ``/proc/net/route`` into ``[{dst: "a.b.c.d/n", dev, gateway}]`` (routes that are up)."""
    routes = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or not int(fields[3], 16) & 0x1:  # RTF_UP
            continue
        dst, gateway, mask = (ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(h), "little"))
                              for h in (fields[1], fields[2], fields[7]))
        net = ipaddress.IPv4Network("%s/%s" % (dst, mask), strict=False)
        routes.append({"dst": str(net), "dev": fields[0], "gateway": str(gateway)})
    return routes


def parse_proc_limits(text):
    """Parse ``/proc/<pid>/limits`` into ``{ulimit name: hard limit}`` (-1 = unlimited)."""
    limits = {}
    for line in text.splitlines():
        for label, name in PROC_LIMITS.items():
            if line.startswith(label + " "):
                hard = line[len(label):].split()[1]
                limits[name] = -1 if hard == "unlimited" else int(hard)
    return limits


CAP_SYS_RESOURCE = 24


def grantable_ulimits(proc_status, proc_limits):
    """Hard limits a docker daemon cannot exceed, from its /proc status and limits.

    A daemon holding CAP_SYS_RESOURCE (rootful docker on a normal host) can
    raise any limit, so nothing is returned. Without it (rootless docker, a
    sandbox) its hard limits are the most a container can get.
    """
    for line in (proc_status or "").splitlines():
        if line.startswith("CapEff:"):
            if (int(line.split()[1], 16) >> CAP_SYS_RESOURCE) & 1:
                return {}
            return parse_proc_limits(proc_limits or "")
    return {}


# --------------------------------------------------------------------------- reading the controller
def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _pid_of(name):
    """Pid of the first process whose command name is ``name`` (from /proc), or None."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in sorted(entries, key=lambda e: (len(e), e)):
        if entry.isdigit() and _read("/proc/%s/comm" % entry).strip() == name:
            return int(entry)
    return None


def host_gpus(timeout_s=20):
    """GPU indexes ``nvidia-smi`` lists here ([] where it is missing or lists none)."""
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    return [int(line) for line in proc.stdout.split() if line.strip().isdigit()]


def dockerd_limits():
    """Hard limits the local docker daemon cannot exceed (see :func:`grantable_ulimits`)."""
    pid = _pid_of("dockerd")
    if pid is None:
        return {}
    return grantable_ulimits(_read("/proc/%d/status" % pid), _read("/proc/%d/limits" % pid))


def routes():
    """The controller's IPv4 routes that are up (``/proc/net/route``)."""
    return parse_proc_net_route(_read("/proc/net/route")) if os.path.exists("/proc/net/route") else []


class DockerUnavailable(RuntimeError):
    """The docker engine could not be asked."""


def docker_client(docker_host=None, timeout_s=30):
    """``(docker, client)``: the Docker SDK and one API client of the docker engine this controller
    drives (``docker_host``, else ``DOCKER_HOST``, else the local socket). Every in-process docker call of
    the project connects here. Raises DockerUnavailable (the SDK missing, the engine not answering)."""
    try:
        import docker  # the Docker SDK (requirements.txt)
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise DockerUnavailable("the Docker SDK for Python is not installed (%s): run scripts/bootstrap.sh" % exc)
    try:
        return docker, docker.APIClient(base_url=docker_host or os.environ.get("DOCKER_HOST") or
                                        "unix:///var/run/docker.sock", version="auto", timeout=timeout_s)
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(str(exc))


def docker_listing(cluster, docker_host=None, timeout_s=30):
    """This cluster's containers, every image and every network of the local docker engine.

    The same shapes the engine's API returns (``GET /containers/json?all=1``, ``/images/json``,
    ``/networks``), which docker_host_info also returns and the stages read. One in-process client
    (the Docker SDK), no module run. Raises DockerUnavailable with the engine's own words.
    """
    docker, client = docker_client(docker_host, timeout_s)
    try:
        return {
            "containers": client.containers(all=True, filters={"label": "mtrt.cluster=%s" % cluster}),
            "images": client.images(),
            "networks": client.networks(),
        }
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(str(exc))
    finally:
        client.close()
