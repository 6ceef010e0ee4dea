"""Shared helpers of the TensorRT-LLM test double (not part of the real API)."""
import os
import sys
from importlib import metadata

PY_ORDINAL_ERROR = "CUDA error: invalid device ordinal"
CPP_ORDINAL_ERROR = ("[TensorRT-LLM][ERROR] CUDA runtime error in cudaSetDevice(device): invalid "
                     "device ordinal (/home/jenkins/agent/workspace/LLM/release/L0_PostMerge/"
                     "tensorrt_llm/cpp/tensorrt_llm/runtime/utils/sessionUtils.cpp:34)")


def version():
    return metadata.version("tensorrt_llm")


def vtuple(text=None):
    parts = (text or version()).split(".")
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts[:2])


def banner():
    """0.8+ prints a banner on import; early 0.8 dev builds without a newline."""
    ver = version()
    if vtuple(ver) >= (0, 8):
        end = "" if ver.startswith("0.8.0.dev") else "\n"
        sys.stdout.write("[TensorRT-LLM] TensorRT-LLM version: %s%s" % (ver, end))
        sys.stdout.flush()
    return ver


def _comm():
    try:
        from mpi4py import MPI
        return MPI.COMM_WORLD
    except ImportError:
        return None


def mpi_rank():
    comm = _comm()
    return comm.Get_rank() if comm else int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))


def mpi_world_size():
    comm = _comm()
    return comm.Get_size() if comm else int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))


def visible_gpus():
    """Double-only knob: GPUs the container would have (default 1)."""
    return int(os.environ.get("MTRT_DOUBLE_VISIBLE_GPUS", "1"))


class _Cuda:
    @staticmethod
    def set_device(device):
        if device >= visible_gpus():
            raise RuntimeError(PY_ORDINAL_ERROR)


class torch:  # noqa: N801  (stands in for the torch module)
    cuda = _Cuda


class Mapping:
    def __init__(self, world_size=1, rank=0, gpus_per_node=8, tp_size=1, pp_size=1):
        self.world_size, self.rank, self.gpus_per_node = world_size, rank, gpus_per_node
        self.tp_size, self.pp_size = tp_size, pp_size


def engine_layout(config):
    """(flow, tp, pp, engine file of a rank) from an engine config.json."""
    if "pretrained_config" in config:
        mapping = config["pretrained_config"]["mapping"]
        return ("modern", mapping["tp_size"], mapping["pp_size"],
                lambda r: "rank%d.engine" % r)
    bc = config["builder_config"]
    tp, pp = bc["tensor_parallel"], bc.get("pipeline_parallel", 1)
    world = tp * pp
    pp_part = "_pp%d" % pp if pp > 1 else ""
    return ("legacy", tp, pp,
            lambda r: "%s_%s_tp%d%s_rank%d.engine" % (bc["name"], bc["precision"], world, pp_part, r))
