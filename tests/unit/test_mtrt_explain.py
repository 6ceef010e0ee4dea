# SPDX-License-Identifier: Apache-2.0
"""mtrt_explain: known raw messages -> cause and fix (one table for every stage)."""

import re

import pytest
from ansible.module_utils.mtrt_explain import KNOWN_ERRORS, explain, format_explained
from ansible.module_utils.mtrt_gpu import NCCL_ERROR_MARKER, parse_nccl_allreduce, parse_rank_errors
from ansible.module_utils.mtrt_collectives import OutputError
from ansible.module_utils.mtrt_launch import split_tagged
from test_mtrt_gpu import named

# --- raw messages explained ----------------------------------------------------------------------

RAW = [
    ("vm:1003:1003 [1] init.cc:1129 NCCL WARN Duplicate GPU detected : rank 1 and rank 0 both on CUDA device 60",
     "ranks 1 and 0 run on the same GPU (bus id 60)", "keep node_slots <= the GPUs of each node"),
    ("RuntimeError: CUDA error: invalid device ordinal", "a rank asked for a GPU index its node does not have",
     "set cluster_trtllm_gpus_per_node"),
    ("node1:88:99 [0] include/shm.h:28 NCCL WARN Call to posix_fallocate failed : No space left on device",
     "/dev/shm in the node is too small", "raise cluster_shm_size"),
    ("torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled system error "
     "(run with NCCL_DEBUG=INFO for details), NCCL version 2.18.1", "a system call inside NCCL failed",
     "read the 'NCCL WARN' line above it"),
    ("[TensorRT-LLM][ERROR] Assertion failed: peer access is not supported between these two devices",
     "the GPUs cannot reach each other directly", "give both GPUs to one node"),
    ('docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
     "docker on this host has no NVIDIA runtime", "install nvidia-container-toolkit"),
    ("RuntimeError: No CUDA GPUs are available; CUDA error: no CUDA-capable device is detected",
     "the rank sees no usable GPU", "pin GPUs with node_gpus"),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.00 GiB", "the GPU has too little free memory",
     "free the GPU"),
    ("OSError: [Errno 28] No space left on device: '/tmp/engine'", "a filesystem the ranks write to is full",
     "free space there"),
    ("ModuleNotFoundError: No module named 'mpi4py'",
     "the Python interpreter the ranks run (cluster_mpi_python) cannot import mpi4py",
     "install mpi4py for that interpreter on every node (the same version everywhere), or point cluster_mpi_python"),
    ("[1,1]<stderr>:ModuleNotFoundError: No module named 'tensorrt_llm.bindings'",
     "the Python interpreter the ranks run (cluster_mpi_python) cannot import tensorrt_llm.bindings",
     "install tensorrt_llm.bindings for that interpreter"),
    ("PRTE was unable to reliably start one or more daemons.", "mpirun could not start its daemon (orted/prted)",
     "the node table names the node and its state"),
    ("PRTE has lost communication with a remote daemon.", "mpirun lost its daemon on a node mid-run",
     "the node table (and the 'Remote daemon' line"),
    ("Remote daemon: [prterun-node1-3411@0,1] on node node2", "mpirun lost its daemon on node2",
     "the node table says node2's state"),
    ("[TensorRT-LLM][ERROR] Assertion failed: mpiSize == tp * pp "
     "(/src/tensorrt_llm/cpp/tensorrt_llm/runtime/worldConfig.cpp:97)",
     "the number of MPI ranks differs from the engine's tensor x pipeline parallelism", "launch exactly tp_size"),
    ("[TensorRT-LLM][ERROR] Assertion failed: MPI size 1 != TP size 2 * PP size 1 "
     "(/src/tensorrt_llm/cpp/tensorrt_llm/runtime/worldConfig.cpp:88)",
     "1 MPI rank(s) were launched but the engine needs tp 2 x pp 1", "launch exactly tp_size"),
    ("[TensorRT-LLM][ERROR] Assertion failed: Number of GPUs per node 1 must be at least as large as TP (4) * PP (1) "
     "(/src/tensorrt_llm/cpp/tensorrt_llm/runtime/worldConfig.cpp:63)",
     "TensorRT-LLM was told 1 GPU(s) per node (gpus_per_node) but asked for tp 4 x pp 1",
     "set cluster_trtllm_gpus_per_node"),
    ("ssh: connect to host node2 port 22: Connection refused", "nothing listens for ssh on node2 port 22",
     "start the node"),
    ("ssh: connect to host node3 port 22: No route to host", "node3 cannot be reached on port 22",
     "check that node3 runs"),
    ("ssh: Could not resolve hostname node9: Name or service not known", "the launcher cannot resolve node9",
     "check the node's name"),
    ("Host key verification failed.", "a node's host key differs from the one pinned", "re-run site.yml"),
    ("root@node2: Permission denied (publickey).", "the cluster key is not accepted by a node", "re-run site.yml"),
    ("ORTE was unable to reliably start one or more daemons.", "mpirun could not start its daemon",
     "the node table names the node"),
    ("There are not enough slots available in the system to satisfy the 8", "8 ranks were requested",
     "raise node_slots"),
    ("[node1][[4711,1],1][btl_tcp_endpoint.c:626:mca_btl_tcp_endpoint_recv_connect_ack] connect() to 172.17.0.2 failed",
     "ranks could not open TCP connections", "keep Open MPI pinned"),
    ("Read -1, expected 65536, errno = 1", "Open MPI's shared-memory single copy (CMA) is blocked",
     "keep btl_vader_single_copy_mechanism=none"),
    ("mpirun noticed that process rank 6 with PID 4312 on node node3 exited on signal 9 (Killed).",
     "rank 6 on node3 was killed with SIGKILL", "the report's node table says whether node3 was OOM-killed"),
    ("mpirun noticed that process rank 2 with PID 88 on node node2 exited on signal 11 (Segmentation fault).",
     "rank 2 on node2 died on signal 11", "the rank's last lines"),
    ("mpirun was unable to launch the specified application as it could not access or execute an executable:",
     "a node cannot run the program the ranks start", "install it on every node"),
    ("RuntimeError: Engine world size (2 * 1) != Runtime world size (1)", "the engine was built for 2 ranks but 1",
     "launch tp_size x pp_size ranks"),
    ("[TensorRT-LLM][ERROR] Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed",
     "the engine was built by another TensorRT version", "rebuild the engine"),
    ("failed to start GRPC service: Unavailable - Socket '0.0.0.0:8001' already in use", "a port the server needs is taken",
     "choose other ports"),
    # Triton and the TensorRT-LLM backend (serving): lines as the server logs them under --tag-output.
    ('[1,0]<stderr>:E1201 23:33:29.703247 731 model_lifecycle.cc:642] "failed to load \'tensorrt_llm\' version 1: '
     'Internal: Exception: MPI_ERR_SPAWN: could not spawn processes\\n\\nAt:\\n"',
     "the orchestrator could not spawn its workers", "keep every GPU set on the orchestrator's node"),
    ("[1,1]<stderr>:TritonModelException: With communicationMode kLEADER, MPI worldSize is expected to be equal to "
     "tp*pp*cp when participantIds are not specified (world 1, tp 2, pp 1)",
     "the server's ranks (its MPI world) are not the engine's tp x pp", "give every instance tp x pp slots"),
    ("When using the orchestrator mode and isOrchestrator is true, expect MPI worldSize to be 1.",
     "an orchestrator that spawns its workers must run alone", "with cluster_serve_orchestrator_spawn: true"),
    ("Spawning of processes was disabled in orchestrator mode, but participant IDs is missing.",
     "orchestrator mode without spawning needs participant_ids", "re-run stage 95"),
    ("When specifying deviceIds, deviceIds size must be equal to tp*pp*cp (1 != 2)",
     "an instance's gpu_device_ids list another number of GPUs than the engine's tp x pp",
     "give each instance (GPU set) tp x pp slots"),
    ("[1,1]<stderr>:E1201 model_lifecycle.cc:642] \"failed to load 'tensorrt_llm' version 1: Internal: "
     "TritonModelException: Decoder (GPT) model path at /TRTDir/engines/e does not exist.",
     "the engine directory /TRTDir/engines/e is not on that rank's node", "set cluster_serve_engine_dir"),
    ("[node2:00123] OPAL ERROR: getting local rank failed --> Returned value No permission (-17) instead of "
     "ORTE_SUCCESS",
     "MPI was initialised a second time in one rank", "let only the engine model"),
    ("triton_python_backend_stub: error while loading shared libraries: libcudart-d0da41ae.so.12.6.77: cannot open "
     "shared object file: No such file or directory",
     "the Python backend's stub on that node cannot find libcudart-d0da41ae.so.12.6.77", "install the server"),
    ("[1,1]<stderr>:E1207 13:33:10.012079 9545 model_lifecycle.cc:642] \"failed to load 'tensorrt_llm' version 1: "
     "Internal: Stub process 'tensorrt_llm_0_0' is not healthy.\"",
     "the Python backend's process of model instance tensorrt_llm_0_0 ended", "the rank's last lines say why"),
    ("[1,1]<stderr>:error: creating server: Internal - failed to stat file /TRTDir/triton/c1/inst0",
     "/TRTDir/triton/c1/inst0 is not on that rank's node", "without a shared filesystem the stage copies"),
    ("[1,0]<stderr>:E1201 model_lifecycle.cc:642] \"failed to load 'tensorrt_llm' version 1: Internal: "
     "ValueError: boom\\n\"", "Triton could not load model tensorrt_llm: Internal: ValueError: boom",
     "the rank's last lines say why"),
]


@pytest.mark.parametrize("raw,cause,fix", RAW)
def test_explain_known_raw_messages(raw, cause, fix):
    explained = explain("some other line\n" + raw + "\nmore\n")
    assert len(explained) == 1 and explained[0]["raw"] == raw
    assert explained[0]["cause"].startswith(cause) and explained[0]["fix"].startswith(fix)


def test_every_table_entry_is_plain_data_and_is_tested():
    assert len({e["id"] for e in KNOWN_ERRORS}) == len(KNOWN_ERRORS)
    for entry in KNOWN_ERRORS:
        assert set(entry) == {"id", "pattern", "cause", "fix"} and re.compile(entry["pattern"])
    hit = {next(e["id"] for e in KNOWN_ERRORS if re.search(e["pattern"], raw)) for raw, _, _ in RAW}
    assert hit == {e["id"] for e in KNOWN_ERRORS}, "untested entries: %s" % ({e["id"] for e in KNOWN_ERRORS} - hit)


def test_explain_nothing_known():
    assert explain("") == [] and explain("NCCL INFO all fine\nrank 0 done\n") == []
    assert format_explained([]) == ""


def test_explain_duplicate_gpu_capture_once_with_the_raw_nccl_line():
    """Real capture (one H100, node_slots 2, --tag-output): both ranks report it, in both orders, and in their
    errors; the cause is read once, from the text the launcher hands on (tags split off)."""
    text, _ = split_tagged(named("h100x1_np2_duplicate_gpu.txt"))
    explained = explain(text)
    assert explained == [{
        "raw": "[2026-12-07 16:03:19] vm:602:602 [0] init.cc:904 NCCL WARN Duplicate GPU detected : rank 0 and "
               "rank 1 both on CUDA device 60",
        "cause": "ranks 0 and 1 run on the same GPU (bus id 60); NCCL needs one rank per GPU",
        "fix": "keep node_slots <= the GPUs of each node (lower node_slots, or pin more GPUs with node_gpus); "
               "the rank -> GPU check names the host"}]
    assert format_explained(explained).startswith(
        "Cause: ranks 0 and 1 run on the same GPU (bus id 60); NCCL needs one rank per GPU; fix: keep node_slots")
    errors = parse_rank_errors(text)
    assert errors == [
        "rank 1 (vm, cuda:0): DistBackendError: NCCL error in: /pytorch/torch/csrc/distributed/c10d/NCCLUtils.cpp:93, "
        "invalid usage (run with NCCL_DEBUG=WARN for details), NCCL version 2.28.9\nncclInvalidUsage: This usually "
        "reflects invalid usage of NCCL library.\nLast error:\nDuplicate GPU detected : rank 1 and rank 0 both on "
        "CUDA device 60", errors[1]]
    assert errors[1].startswith("rank 0 (vm, cuda:0): DistBackendError")
    with pytest.raises(OutputError, match="no 'MTRT-NCCL-ALLREDUCE' line"):
        parse_nccl_allreduce(text)


def test_explain_keeps_long_raw_lines_short_and_stops_at_the_limit():
    long_line = "x" * 500 + " invalid device ordinal " + "y" * 500
    explained = explain(long_line)
    assert len(explained[0]["raw"]) == 300 and "invalid device ordinal" in explained[0]["raw"]
    many = "\n".join("NCCL WARN Duplicate GPU detected : rank %d and rank %d both on CUDA device 60" % (i, i + 1)
                     for i in range(20))
    assert len(explain(many, limit=3)) == 3
    assert NCCL_ERROR_MARKER.strip() == "MTRT-NCCL-ALLREDUCE-ERROR"




def test_signalled_ranks_name_rank_host_and_signal_once_each():
    from ansible.module_utils.mtrt_explain import signalled_ranks

    text = ("[1,3]<stdout>:MTRT-HELLO {\"rank\": 3}\n"
            "mpirun noticed that process rank 3 with PID 0 on node fnode2 exited on signal 9 (Killed).\n"
            "mpirun noticed that process rank 3 with PID 0 on node fnode2 exited on signal 9 (Killed).\n"
            "mpirun noticed that process rank 0 with PID 71 on node fnode1 exited on signal 15 (Terminated).\n")
    assert signalled_ranks(text) == [{"rank": 3, "host": "fnode2", "signal": 9},
                                     {"rank": 0, "host": "fnode1", "signal": 15}]
    assert signalled_ranks("") == []
