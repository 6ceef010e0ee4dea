# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Known raw error messages of MPI, ssh, NCCL, CUDA, docker, TensorRT-LLM and Triton -> cause and fix.

Plain Python and plain data, one table for every stage: the launcher explains every failed run
with it (module_utils/mtrt_launch.py), and the report shows each cause and fix beside the raw line
it came from. Sources: what users of comparable tools hit (the project's reference page on
multi-node pitfalls) and what the project's own runs met. Each entry is a regular expression
(named groups fill {name} in the cause and the fix), a cause and a fix; the first entry that
matches a line wins for that line, so specific entries stand before general ones.
"""

from __future__ import annotations

import re

# mpirun's line for a rank that died on a signal (Open MPI 4 and 5): the rank, its node and the signal.
RANK_SIGNAL = r"process rank (?P<rank>\d+) with PID \d+ on node (?P<host>\S+) exited on signal (?P<sig>\d+)"

KNOWN_ERRORS = (

    {"id": "duplicate_gpu",
     "pattern": r"Duplicate GPU detected\s*:\s*rank (?P<a>\d+) and rank (?P<b>\d+) both on CUDA device "
                r"(?P<bus>[0-9a-fA-F]+)",
     "cause": "ranks {a} and {b} run on the same GPU (bus id {bus}); NCCL needs one rank per GPU",
     "fix": "keep node_slots <= the GPUs of each node (lower node_slots, or pin more GPUs with node_gpus); "
            "the rank -> GPU check names the host"},
    {"id": "invalid_device_ordinal",
     "pattern": r"invalid device ordinal",
     "cause": "a rank asked for a GPU index its node does not have (rank % gpus_per_node >= the GPUs it "
              "sees)",
     "fix": "set cluster_trtllm_gpus_per_node to the GPUs each node sees, or lower node_slots to that "
            "number; the rank -> GPU check names the rank and host"},
    {"id": "shm_full",
     "pattern": r"posix_fallocate failed|failed to extend /dev/shm|/dev/shm\S*.*No space left on device",
     "cause": "/dev/shm in the node is too small for NCCL's shared-memory buffers (docker's default is "
              "64 MiB)",
     "fix": "raise cluster_shm_size (1g or more) and recreate the node containers"},
    {"id": "nccl_system_error",
     "pattern": r"unhandled system error",
     "cause": "a system call inside NCCL failed: most often /dev/shm too small, a socket that cannot "
              "connect, or a network interface NCCL should not use; the NCCL WARN line before it names "
              "the call",
     "fix": "read the 'NCCL WARN' line above it (NCCL_DEBUG=INFO is set); raise cluster_shm_size, or set "
            "NCCL_SOCKET_IFNAME to the cluster interface (gpu_check_env)"},
    {"id": "peer_access",
     "pattern": r"peer access is not supported|cudaIpcOpenMemHandle",
     "cause": "the GPUs cannot reach each other directly: the ranks sit in different containers on one "
              "host (no CUDA IPC between them) or peer-to-peer is off",
     "fix": "give both GPUs to one node (node_gpus: [0, 1], node_slots: 2) or run in local mode; across "
            "containers expect SHM/NET speeds (about 9 GB/s instead of about 370)"},
    {"id": "no_gpu_runtime",
     "pattern": r"could not select device driver \"[^\"]*\" with capabilities: \[\[gpu\]\]",
     "cause": "docker on this host has no NVIDIA runtime, so no container can get a GPU",
     "fix": "install nvidia-container-toolkit on the docker host and restart docker, or set node_gpus: []"},
    {"id": "no_cuda_device",
     "pattern": r"no CUDA-capable device is detected|CUDA driver version is insufficient",
     "cause": "the rank sees no usable GPU: none passed into its node, or the driver is older than the "
              "CUDA runtime",
     "fix": "pin GPUs with node_gpus (nvidia-container-toolkit on the docker host) and use a node image "
            "whose CUDA fits the host driver"},
    {"id": "gpu_out_of_memory",
     "pattern": r"CUDA out of memory|Cuda failure 'out of memory'|cudaErrorMemoryAllocation",
     "cause": "the GPU has too little free memory for the buffers (the all-reduce check holds "
              "gpu_check_nccl_max_bytes per rank)",
     "fix": "free the GPU (nvidia-smi shows who holds it) or lower gpu_check_nccl_max_bytes"},
    {"id": "missing_module",
     "pattern": r"ModuleNotFoundError: No module named '(?P<mod>[^']+)'",
     "cause": "the Python interpreter the ranks run (cluster_mpi_python) cannot import {mod}",
     "fix": "install {mod} for that interpreter on every node (the same version everywhere), or point "
            "cluster_mpi_python at an interpreter that has it"},
    {"id": "ssh_refused",
     "pattern": r"ssh: connect to host (?P<host>\S+) port (?P<port>\d+): Connection refused",
     "cause": "nothing listens for ssh on {host} port {port} (sshd down, or the node stopped)",
     "fix": "start the node (re-run site.yml, which restarts stopped nodes) or check cluster_ssh_port"},
    {"id": "ssh_unreachable",
     "pattern": r"ssh: connect to host (?P<host>\S+) port (?P<port>\d+): "
                r"(?:No route to host|Connection timed out|Network is unreachable)",
     "cause": "{host} cannot be reached on port {port} from the launcher (paused, gone, or a network problem)",
     "fix": "check that {host} runs and is on the cluster network (the report's node table says its state)"},
    {"id": "ssh_unresolved",
     "pattern": r"ssh: Could not resolve hostname (?P<host>[^:\s]+)",
     "cause": "the launcher cannot resolve {host}",
     "fix": "check the node's name in the inventory and the nodes' /etc/hosts (re-run site.yml)"},
    {"id": "host_key_changed",
     "pattern": r"Host key verification failed",
     "cause": "a node's host key differs from the one pinned in known_hosts (the node was replaced or re-keyed)",
     "fix": "re-run site.yml: the ssh stages re-pin the cluster's own host keys; host key checking stays on"},
    {"id": "key_refused",
     "pattern": r"Permission denied \(publickey",
     "cause": "the cluster key is not accepted by a node (authorized_keys or the account differs)",
     "fix": "re-run site.yml (the ssh stages reinstall authorized_keys); check cluster_ssh_user"},
    # Open MPI 4 prints "ORTE was unable...", Open MPI 5 (PRRTE, help-errmgr-base.txt [failed-daemon-launch])
    # the same sentence after its tool's name ("PRTE", "prte", "prterun").
    {"id": "daemons_failed",
     "pattern": r"(?:ORTE|PRTE|prte|prterun|mpirun) was unable to reliably start one or more daemons",
     "cause": "mpirun could not start its daemon (orted/prted) on some node over ssh: ssh refused or failed "
              "there, the node is down, or Open MPI is not at the same path on it",
     "fix": "the node table names the node and its state, and the ssh check the hop that failed; fix that "
            "node's ssh (or re-run site.yml, which restarts stopped nodes and reinstalls the SSH files)"},
    # PRRTE's and ORTE's [node-died] help: the line after it names the node ("Remote daemon: ... on node X").
    {"id": "daemon_lost_node",
     "pattern": r"Remote daemon\s*:\s*\S+ on node (?P<host>\S+)",
     "cause": "mpirun lost its daemon on {host}: the node stopped, froze (paused), was cut from the network "
              "or ran out of memory",
     "fix": "the node table says {host}'s state; start or unpause it (re-run site.yml) and launch again"},
    {"id": "daemon_lost",
     "pattern": r"(?:ORTE|PRTE) has lost communication with a remote daemon",
     "cause": "mpirun lost its daemon on a node mid-run: the node stopped, froze, was cut from the network "
              "or ran out of memory",
     "fix": "the node table (and the 'Remote daemon' line below the message) names the node and its state; "
            "start or unpause it (re-run site.yml) and launch again"},
    {"id": "not_enough_slots",
     "pattern": r"There are not enough slots available in the system to satisfy the (?P<n>\d+)",
     "cause": "{n} ranks were requested but the hostfile has fewer slots",
     "fix": "raise node_slots in the inventory or ask for fewer ranks"},
    # Not "lack of common network interfaces": Open MPI's daemon banner lists it among possible causes.
    {"id": "tcp_wireup",
     "pattern": r"btl_tcp_endpoint.*connect\(\) to \S+ failed",
     "cause": "ranks could not open TCP connections to each other (interfaces or firewalls)",
     "fix": "keep Open MPI pinned to the cluster network (btl_tcp_if_include / oob_tcp_if_include in cluster_mpi_mca)"},
    {"id": "cma_blocked",
     "pattern": r"Read -1, expected \d+, errno = 1",
     "cause": "Open MPI's shared-memory single copy (CMA) is blocked by the container's seccomp profile",
     "fix": "keep btl_vader_single_copy_mechanism=none (the project sets it in docker mode)"},
    {"id": "rank_killed",
     "pattern": r"process rank (?P<rank>\d+) with PID \d+ on node (?P<host>\S+) exited on signal 9",
     "cause": "rank {rank} on {host} was killed with SIGKILL (often the kernel's OOM killer)",
     "fix": "the report's node table says whether {host} was OOM-killed; give it more memory or load less"},
    {"id": "rank_signal",
     "pattern": RANK_SIGNAL,
     "cause": "rank {rank} on {host} died on signal {sig}",
     "fix": "the rank's last lines (rank_tails) say what it was doing"},
    {"id": "cannot_exec",
     "pattern": r"mpirun was unable to launch the specified application as it could not (?:access|find)",
     "cause": "a node cannot run the program the ranks start (not installed, or not at that path there)",
     "fix": "install it on every node at the same path, or set cluster_mpi_python"},
    {"id": "engine_world",
     "pattern": r"Engine world size \((?P<engine>\d+)[^)]*\) != Runtime world size \((?P<runtime>\d+)\)",
     "cause": "the engine was built for {engine} ranks but {runtime} were launched",
     "fix": "launch tp_size x pp_size ranks (node_slots) or rebuild the engine for this layout"},
    # TensorRT-LLM's WorldConfig::mpi (cpp/tensorrt_llm/runtime/worldConfig.cpp): TLLM_CHECK(mpiSize == tp * pp)
    # in older versions, "MPI size %d != TP size %d * PP size %d" in newer ones.
    {"id": "mpi_world_size",
     "pattern": r"MPI size (?P<mpi>\d+) != TP size (?P<tp>\d+) \* PP size (?P<pp>\d+)",
     "cause": "{mpi} MPI rank(s) were launched but the engine needs tp {tp} x pp {pp}; when every rank saw a "
              "world of 1, mpirun and mpi4py use different MPI libraries",
     "fix": "launch exactly tp_size x pp_size ranks (np, node_slots) or rebuild the engine for this layout; "
            "the preflight's world contract and the hello's ranks per host show both numbers"},
    {"id": "mpi_world_assert",
     "pattern": r"Assertion failed: mpiSize == tp \* pp\b",
     "cause": "the number of MPI ranks differs from the engine's tensor x pipeline parallelism (tp x pp); "
              "when every rank saw a world of 1, mpirun and mpi4py use different MPI libraries",
     "fix": "launch exactly tp_size x pp_size ranks (np, node_slots) or rebuild the engine for this layout; "
            "the preflight's world contract and the hello's ranks per host show both numbers"},
    {"id": "gpus_per_node",
     "pattern": r"Number of GPUs per node (?P<gpn>\d+) must be at least as large as TP \((?P<tp>\d+)\) "
                r"\* PP \((?P<pp>\d+)\)",
     "cause": "TensorRT-LLM was told {gpn} GPU(s) per node (gpus_per_node) but asked for tp {tp} x pp {pp} "
              "ranks on one node's devices",
     "fix": "set cluster_trtllm_gpus_per_node to the GPUs each node really has (the engine's gpus_per_node "
            "at build time, or the run-time option where the version takes it); the rank -> GPU check names "
            "each rank's device"},
    {"id": "engine_version",
     "pattern": r"Serialization assertion",
     "cause": "the engine was built by another TensorRT version than the one running it",
     "fix": "rebuild the engine with the image the nodes run (cluster_trtllm_force_build: true)"},
    {"id": "port_in_use",
     "pattern": r"Socket '(?P<addr>[^']+)' already in use|(?P<other>Address already in use)",
     "cause": "a port the server needs is taken",
     "fix": "choose other ports (cluster_serve_*_port) or stop what holds it"},
    {"id": "disk_full",
     "pattern": r"No space left on device",
     "cause": "a filesystem the ranks write to is full",
     "fix": "free space there (df -h in the node); for /dev/shm raise cluster_shm_size"},
    # --- Triton and the TensorRT-LLM backend (serving, stage 95): the messages of a failed start as
    # tritonserver 2.51 (triton-inference-server/core 1d57d3e) and the backend (tensorrtllm_backend v0.19
    # c1e19638304d, TensorRT-LLM executorImpl.cpp 036a60f7ff92) print them; specific ones first.
    {"id": "triton_spawn",
     "pattern": r"MPI_ERR_SPAWN: could not spawn processes",
     "cause": "the orchestrator could not spawn its workers (MPI_Comm_spawn): Open MPI had no free slots for them",
     "fix": "keep every GPU set on the orchestrator's node with one slot per worker (node_slots); the stage "
            "adds them to the server's hostfile"},
    {"id": "triton_leader_world",
     "pattern": r"With communicationMode kLEADER, MPI worldSize is expected to be equal to tp\*pp",
     "cause": "the server's ranks (its MPI world) are not the engine's tp x pp",
     "fix": "give every instance tp x pp slots (cluster_serve_instances) for an engine built with "
            "cluster_trtllm_tp_size x cluster_trtllm_pp_size, or rebuild the engine"},
    {"id": "triton_orchestrator_world",
     "pattern": r"orchestrator mode and isOrchestrator is true, expect MPI worldSize to be 1",
     "cause": "an orchestrator that spawns its workers must run alone (world size 1)",
     "fix": "with cluster_serve_orchestrator_spawn: true the stage starts one rank; for participants started "
            "by mpirun set cluster_serve_orchestrator_spawn: false"},
    {"id": "triton_participants",
     "pattern": r"Spawning of processes was disabled in orchestrator mode, but participant IDs is missing",
     "cause": "orchestrator mode without spawning needs participant_ids in the engine model's config",
     "fix": "re-run stage 95, which writes participant_ids when cluster_serve_orchestrator_spawn is false"},
    {"id": "triton_device_ids",
     "pattern": r"deviceIds size must be equal to tp\*pp",
     "cause": "an instance's gpu_device_ids list another number of GPUs than the engine's tp x pp",
     "fix": "give each instance (GPU set) tp x pp slots, or as many gpu_device_ids"},
    {"id": "triton_engine_missing",
     "pattern": r"Decoder \(GPT\) model path at (?P<path>\S+?)\.? does not exist",
     "cause": "the engine directory {path} is not on that rank's node",
     "fix": "set cluster_serve_engine_dir to the engine as the nodes see it; without a shared filesystem every "
            "node of the instance needs its own copy (stage 80 copies the engine it built)"},
    {"id": "triton_mpi_reinit",
     "pattern": r"getting local rank failed\s*-->\s*Returned value No permission \(-17\)",
     "cause": "MPI was initialised a second time in one rank: another model of the repository (a second "
              "Python stub) initialises MPI too",
     "fix": "let only the engine model (tensorrt_llm, instance count 1) use MPI"},
    {"id": "triton_stub_libs",
     "pattern": r"triton_python_backend_stub: error while loading shared libraries: (?P<lib>\S+?):",
     "cause": "the Python backend's stub on that node cannot find {lib}",
     "fix": "install the server with its libraries on every node at the same path (cluster_image_triton: true "
            "registers them with ld.so.conf), or export LD_LIBRARY_PATH in a wrapper each rank runs"},
    {"id": "triton_stub_died",
     "pattern": r"Stub process '(?P<stub>[^']+)' is not healthy",
     "cause": "the Python backend's process of model instance {stub} ended (it exited or crashed) while its model "
              "loaded or ran",
     "fix": "the rank's last lines say why it ended (the model's own error, a missing module or library)"},
    {"id": "triton_repo_missing",
     "pattern": r"failed to stat file (?P<path>/\S+)",
     "cause": "{path} is not on that rank's node (the model repository or a file it names)",
     "fix": "without a shared filesystem the stage copies each model repository to every node of its "
            "instance: re-run stage 95; check cluster_serve_repo_root"},
    {"id": "triton_model_load",
     "pattern": r"failed to load '(?P<model>[^']+)' version \d+: (?P<why>[^\\\"]{1,160})",
     "cause": "Triton could not load model {model}: {why}",
     "fix": "the rank's last lines say why; for tensorrt_llm check the engine (cluster_serve_engine_dir) and the "
            "model's parameters (cluster_serve_parameters)"},
)

_RAW_MAX = 300


def explain(text, table=KNOWN_ERRORS, limit=8):
    """Raw lines of ``text`` that ``table`` knows -> [{raw, cause, fix}], first occurrence of each.

    ``raw`` is the line as printed (cut to 300 characters around the match).
    """
    compiled = [(entry, re.compile(entry["pattern"])) for entry in table]
    found, seen = [], set()
    for line in (text or "").splitlines():
        for entry, regex in compiled:
            match = regex.search(line)
            if not match:
                continue
            fields = {k: v for k, v in match.groupdict().items() if v is not None}
            cause, fix = entry["cause"].format(**fields), entry["fix"].format(**fields)
            key = (entry["id"], tuple(sorted(fields.values())))  # "rank 1 and rank 0" = "rank 0 and rank 1"
            if key not in seen:
                seen.add(key)
                raw = line.strip()
                if len(raw) > _RAW_MAX:
                    start = max(0, min(match.start() - 40, len(raw) - _RAW_MAX))
                    raw = raw[start:start + _RAW_MAX]
                found.append({"raw": raw, "cause": cause, "fix": fix})
            break
        if len(found) >= limit:
            break
    return found


def format_explained(explained, limit=2):
    """'Cause: ...; fix: ... (raw: '...')' for the first ``limit`` explained lines."""
    return " ".join("Cause: %s; fix: %s (raw: %r)." % (e["cause"], e["fix"], e["raw"])
                    for e in explained[:limit])


def signalled_ranks(text):
    """``[{rank, host, signal}]`` of every rank mpirun saw die on a signal in ``text`` (first mention each)."""
    found, seen = [], set()
    for match in re.finditer(RANK_SIGNAL, text or ""):
        rank = int(match.group("rank"))
        if rank not in seen:
            seen.add(rank)
            found.append({"rank": rank, "host": match.group("host"), "signal": int(match.group("sig"))})
    return found
