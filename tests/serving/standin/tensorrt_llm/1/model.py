# SPDX-License-Identifier: Apache-2.0
"""TEST STAND-IN of the TensorRT-LLM engine model (tests only; never product code).

It runs under the real tritonserver's Python backend where the TensorRT-LLM backend would, and
behaves like that backend where the serving stage depends on it (facts: docs/serving.md):

- Leader mode (every rank a tritonserver under one mpirun): the world size must equal the
  engine's tp x pp; on ranks >= 1 ``initialize()`` never returns (it serves rank 0 until rank 0
  says stop, then exits), as the backend's worker ranks do; rank 0 involves every rank in each
  request through MPI and waits for all of them.
- Orchestrator mode (``TRTLLM_ORCHESTRATOR=1``): the world size must be 1 and the model spawns
  tp x pp workers per model instance (``MPI_Comm_spawn``), each on the GPU set of its instance
  (``gpu_device_ids`` "0,1;2,3").
- ``gpt_model_path`` must be an engine directory whose config.json gives tp and pp.

The answer's text starts with ``ranks=<rank>@<host>/gpu<g>,...`` listing every rank that took
part, so a test can tell a real multi-rank answer from a faked one. A failure knob for tests:
``standin_fail_rank`` (a config parameter) makes that rank's ``initialize()`` print why and end its
process in leader mode, as a rank whose engine cannot load ends; ``standin_fail_instance`` limits it to the repository of
that instance (a directory of the model's path). Each rank spends
``standin_service_ms`` (a config parameter, default 0) per request, sequentially, so the time a
request costs is fixed and known. mpi4py is imported lazily, inside ``initialize()``.
"""

import json
import os
import shutil
import socket
import sys
import time

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from standin_mpi import TAG_REPLY, TAG_REQUEST, serve_rank, wait  # noqa: E402


def _param(cfg, key, default=None):
    value = ((cfg.get("parameters") or {}).get(key) or {}).get("string_value")
    if value is None or value == "" or value.startswith("${"):
        return default
    return value


def _sets(text):
    if not text:
        return []
    return [[int(i) for i in part.split(",") if i.strip()] for part in text.split(";")]


def _parallelism(engine_dir):
    with open(os.path.join(engine_dir, "config.json")) as handle:
        cfg = json.load(handle)
    mapping = (cfg.get("pretrained_config") or {}).get("mapping") or {}
    if "tp_size" in mapping:
        return int(mapping["tp_size"]), int(mapping.get("pp_size", 1))
    builder = cfg.get("builder_config") or {}
    return int(builder.get("tensor_parallel", 1)), int(builder.get("pipeline_parallel", 1))


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        engine = _param(cfg, "gpt_model_path")
        if not engine or not os.path.isdir(engine):
            raise pb_utils.TritonModelException("Decoder (GPT) model path at %s does not exist." % engine)
        self.tp, self.pp = _parallelism(engine)
        self.service_s = float(_param(cfg, "standin_service_ms", "0")) / 1000.0
        self.sets = _sets(_param(cfg, "gpu_device_ids"))
        self.host = socket.gethostname()
        self.orchestrator = int(os.environ.get("TRTLLM_ORCHESTRATOR", "0") or "0") != 0
        from mpi4py import MPI  # lazily, as NVIDIA's Python model does

        self.MPI = MPI
        world = MPI.COMM_WORLD
        if self.orchestrator:
            self._start_orchestrator(args, world)
            return
        if world.Get_size() != self.tp * self.pp:
            raise pb_utils.TritonModelException(
                "With communicationMode kLEADER, MPI worldSize is expected to be equal to tp*pp*cp when "
                "participantIds are not specified (world %d, tp %d, pp %d)" % (world.Get_size(), self.tp, self.pp))
        self.comm = world
        self.peers = list(range(1, world.Get_size()))
        rank = world.Get_rank()
        self._fail_if_told(cfg, args, rank)
        ids = self.sets[0] if self.sets else list(range(self.tp * self.pp))
        me = {"rank": rank, "host": self.host, "gpu": ids[rank % len(ids)]}
        if rank != 0:
            serve_rank(world, me)  # never returns
        self.me = me

    @staticmethod
    def _fail_if_told(cfg, args, rank):
        """The failure knob (tests only): standin_fail_rank, optionally only in standin_fail_instance."""
        fail_rank = _param(cfg, "standin_fail_rank")
        if fail_rank is None or int(fail_rank) != rank:
            return
        # The model's directory (<repository>/<instance>/tensorrt_llm) names the instance.
        path = os.path.abspath(str(args.get("model_repository", "")))
        only = _param(cfg, "standin_fail_instance")
        if only and only not in path.split(os.sep):
            return
        # Exit, not raise: a stub that raised after MPI_Init does not leave (MPI keeps it), and its
        # tritonserver would wait for it forever; a rank whose engine cannot load ends its process.
        sys.stderr.write("TEST STAND-IN: rank %d of instance %s failed in initialize, as told (standin_fail_rank)\n"
                         % (rank, only or path))
        sys.stderr.flush()
        os._exit(3)

    def _start_orchestrator(self, args, world):
        if world.Get_size() != 1:
            raise pb_utils.TritonModelException(
                "When using the orchestrator mode and isOrchestrator is true, expect MPI worldSize to be 1.")
        if os.environ.get("TRTLLM_ORCHESTRATOR_SPAWN_PROCESSES", "1") == "0":
            raise pb_utils.TritonModelException(
                "Orchestrator mode with --disable-spawn-processes is not supported in the Python backend.")
        index = int(str(args.get("model_instance_name", "x_0")).rsplit("_", 1)[-1])
        ids = self.sets[index % len(self.sets)] if self.sets else list(range(self.tp * self.pp))
        if len(ids) != self.tp * self.pp:
            raise pb_utils.TritonModelException(
                "When specifying deviceIds, deviceIds size must be equal to tp*pp*cp (%d != %d)"
                % (len(ids), self.tp * self.pp))
        worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
        python = shutil.which("python3") or "/usr/bin/python3"
        self.comm = world.Spawn(python, args=[worker, ",".join(str(i) for i in ids)], maxprocs=len(ids))
        self.peers = list(range(len(ids)))
        self.me = None

    def execute(self, requests):
        responses = []
        for request in requests:
            responses.append(self._one(request))
        return responses

    def _one(self, request):
        ids = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy()
        out_len = pb_utils.get_input_tensor_by_name(request, "request_output_len").as_numpy()
        wanted = int(np.asarray(out_len).reshape(-1)[0])
        msg = {"service_s": self.service_s}
        for peer in self.peers:
            self.comm.send(msg, dest=peer, tag=TAG_REQUEST)
        parts = []
        if self.me is not None:
            time.sleep(self.service_s)
            parts.append(dict(self.me, pid=os.getpid()))
        for peer in self.peers:
            parts.append(wait(self.comm, peer, TAG_REPLY))
        names = ",".join("%d@%s/gpu%d" % (p["rank"], p["host"], p["gpu"]) for p in parts)
        prompt = bytes(int(t) & 0xFF for t in ids.reshape(-1) if int(t) > 0)
        text = ("ranks=%s | %s" % (names, prompt.decode("utf-8", "replace"))).encode()
        tokens = np.frombuffer(text.ljust(max(wanted, len(text)), b"."), dtype=np.uint8).astype(np.int32)
        n = len(tokens)
        batch = ids.shape[0]
        outputs = {
            "output_ids": np.tile(tokens, (batch, 1, 1)),
            "sequence_length": np.full((batch, 1), n, dtype=np.int32),
            "cum_log_probs": np.zeros((batch, 1), dtype=np.float32),
            "output_log_probs": np.zeros((batch, 1, n), dtype=np.float32),
            "context_logits": np.zeros((batch, 1, 1), dtype=np.float32),
            "generation_logits": np.zeros((batch, 1, 1, 1), dtype=np.float32),
            "batch_index": np.zeros((batch, 1), dtype=np.int32),
            "sequence_index": np.zeros((batch, 1), dtype=np.int32),
            "context_phase_params": np.zeros((batch, 1), dtype=np.uint8),
        }
        return pb_utils.InferenceResponse([pb_utils.Tensor(k, v) for k, v in outputs.items()])

    def finalize(self):
        for peer in getattr(self, "peers", []):
            try:
                self.comm.send(None, dest=peer, tag=TAG_REQUEST)
            except Exception:  # noqa: BLE001  (shutting down: a dead peer is fine)
                pass
