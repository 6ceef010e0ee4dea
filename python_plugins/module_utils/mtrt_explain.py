# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Known raw error messages of MPI, ssh, NCCL, CUDA, TensorRT-LLM and Triton, mapped to a cause and a fix.

Plain Python, one table for every stage (the launcher explains each failed run with it; the
report shows the cause and fix beside the raw line they came from). Sources: what users of
comparable tools hit (the project's reference page on multi-node pitfalls) and what the project's
own runs met. Each entry: a regular expression, the cause and the fix; ``{0}``, ``{1}``... in them
are the expression's groups.
"""

from __future__ import annotations

import re

KNOWN = (
    (r"ModuleNotFoundError: No module named '(mpi4py|torch|tensorrt_llm|numpy)'",
     "the interpreter the ranks run has no {0} module",
     "install {0} for that interpreter on every node, or point cluster_mpi_python at one that has it"),
    (r"ssh: connect to host (\S+) port (\d+): Connection refused",
     "nothing listens for ssh on {0} port {1} (sshd down, or the node stopped)",
     "start the node (re-run site.yml, which restarts stopped nodes) or check cluster_ssh_port"),
    (r"ssh: connect to host (\S+) port (\d+): (?:No route to host|Connection timed out|Network is unreachable)",
     "{0} cannot be reached on port {1} from the launcher (paused or gone, or a network problem)",
     "check that {0} runs and is on the cluster network (docker ps, docker network inspect)"),
    (r"ssh: Could not resolve hostname (\S+)",
     "the launcher cannot resolve {0}",
     "check the node's name in the inventory and its entry in the nodes' /etc/hosts (re-run site.yml)"),
    (r"Host key verification failed",
     "a node's host key differs from the one pinned in known_hosts (the node was replaced or re-keyed)",
     "re-run site.yml: the ssh stages re-pin the cluster's own host keys; host key checking stays on"),
    (r"Permission denied \(publickey",
     "the cluster key is not accepted by a node (authorized_keys or the account differs)",
     "re-run site.yml (the ssh stages reinstall authorized_keys); check cluster_ssh_user"),
    (r"ORTE was unable to reliably start one or more daemons",
     "mpirun could not start its daemon on some node over ssh",
     "the ssh check names the hop that failed; fix that node's ssh (or re-run site.yml)"),
    (r"There are not enough slots available in the system to satisfy the (\d+)",
     "{0} ranks were requested but the hostfile has fewer slots",
     "raise node_slots in the inventory or ask for fewer ranks"),
    (r"(?:lack of common network interfaces|unable to connect to.*tcp|btl_tcp_endpoint.*connect\(\) to (\S+) failed)",
     "ranks could not open TCP connections to each other (interfaces or firewalls)",
     "keep Open MPI pinned to the cluster network (btl_tcp_if_include / oob_tcp_if_include in cluster_mpi_mca)"),
    (r"Read -1, expected \d+, errno = 1",
     "Open MPI's shared-memory single copy (CMA) is blocked by the container's seccomp profile",
     "keep btl_vader_single_copy_mechanism=none (the project sets it in docker mode)"),
    (r"(?:posix_fallocate failed|No space left on device)",
     "/dev/shm is too small for the shared-memory transport",
     "raise cluster_shm_size (e.g. 1g or more)"),
    (r"mpirun noticed that process rank (\d+) with PID \d+ on node (\S+) exited on signal 9",
     "rank {0} on {1} was killed with SIGKILL (often the kernel's OOM killer)",
     "look at the node's memory limit and the report's node state; give it more memory or load less"),
    (r"mpirun noticed that process rank (\d+) with PID \d+ on node (\S+) exited on signal (?!9\b)(\d+)",
     "rank {0} on {1} died on signal {2}",
     "the rank's last lines (rank_tails) say what it was doing"),
    (r"mpirun was unable to launch the specified application as it could not (?:access|find) (?:or execute )?an executable",
     "a node cannot run the program the ranks start (not installed, or not at that path there)",
     "install it on every node at the same path, or set cluster_mpi_python"),
    (r"invalid device ordinal",
     "a rank asked CUDA for a GPU index its node does not have (rank % gpus_per_node)",
     "make gpus_per_node match the GPUs each node sees (cluster_trtllm_gpus_per_node, node_gpus)"),
    (r"Duplicate GPU detected : rank (\d+) and rank (\d+) both on CUDA device",
     "ranks {0} and {1} were given the same GPU (more ranks than GPUs on a node)",
     "one rank per GPU: set node_slots to the number of GPUs of that node"),
    (r"could not select device driver \"\" with capabilities: \[\[gpu\]\]",
     "the docker host has no NVIDIA container runtime",
     "install nvidia-container-toolkit on the docker host, or set node_gpus: []"),
    (r"(?:peer access is not supported|cudaIpcOpenMemHandle)",
     "ranks in different containers cannot share GPU memory (no CUDA IPC between them)",
     "disable custom all-reduce for tensor parallelism across containers (the build stage does)"),
    (r"NCCL WARN .*(unhandled system error|socket)",
     "NCCL could not set up its sockets between ranks",
     "pin NCCL to the cluster interface (cluster_trtllm_nccl_socket_ifname) and check /dev/shm"),
    (r"Engine world size \((\d+)[^)]*\) != Runtime world size \((\d+)\)",
     "the engine was built for {0} ranks but {1} were launched",
     "launch tp_size x pp_size ranks (node_slots) or rebuild the engine for this layout"),
    (r"Serialization assertion",
     "the engine was built by another TensorRT version than the one running it",
     "rebuild the engine with the image the nodes run (cluster_trtllm_force_build: true)"),
    (r"(?:Socket '([^']+)' already in use|Address already in use)",
     "a port the server needs is taken ({0})",
     "choose other ports (cluster_serve_*_port) or stop what holds it"),
)
_COMPILED = tuple((re.compile(pattern), cause, fix) for pattern, cause, fix in KNOWN)


def explain(text, limit=5):
    """``[{raw, cause, fix}]`` for the known messages in ``text`` (first match of each entry, in
    order of appearance, at most ``limit``)."""
    found = []
    for regex, cause, fix in _COMPILED:
        match = regex.search(text or "")
        if not match:
            continue
        groups = [g or "?" for g in match.groups()]
        start = (text.rfind("\n", 0, match.start()) + 1)
        end = text.find("\n", match.end())
        raw = text[start:end if end >= 0 else None].strip()
        found.append((match.start(), {"raw": raw[:300], "cause": cause.format(*groups), "fix": fix.format(*groups)}))
    found.sort(key=lambda item: item[0])
    seen, out = set(), []
    for _, item in found:
        if item["cause"] in seen:
            continue
        seen.add(item["cause"])
        out.append(item)
    return out[:limit]
