# SPDX-License-Identifier: Apache-2.0
"""Shared helpers of the TensorRT-LLM TEST DOUBLE (not part of the real API; see ../README.md).

Every command line of the double is parsed by the parser rebuilt from the recorded option table of
the installed version (package ``mtrt_trtllm_cli_tables``, the same data the unit tests use), and
the checks the real script runs right after parsing are run too.
"""
import os
import re
import sys
from importlib import metadata

import mtrt_trtllm_cli_tables as tables

PY_ORDINAL_ERROR = "CUDA error: invalid device ordinal"
CPP_ORDINAL_ERROR = ("[TensorRT-LLM][ERROR] CUDA runtime error in cudaSetDevice(device): invalid "
                     "device ordinal (tensorrt_llm/cpp/tensorrt_llm/runtime/utils/sessionUtils.cpp)")


def version():
    return metadata.version("tensorrt_llm")


def table_version():
    """The recorded table this install mimics (written by install.sh)."""
    with open(os.path.join(os.path.dirname(__file__), "_double_table")) as handle:
        return handle.read().strip()


def vtuple(text=None):
    parts = (text or version()).split(".")
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts[:2])


def parser(tool, ver=None):
    """The parser of ``tool``: the one the recorded table of this install (or ``ver``) builds."""
    return tables.parser(ver or table_version(), tool, raising=False)


def parse(tool, argv=None):
    """Parse like the real ``tool`` of this version: argparse errors exit 2, asserts exit 1."""
    ver = table_version()
    args = parser(tool, ver).parse_args(argv)
    problems = tables.post_parse_problems(ver, tool, args)
    if problems:
        text = problems[0] if re.match(r"^[A-Za-z]+Error: ", problems[0]) else "AssertionError: " + problems[0]
        sys.stderr.write("Traceback (most recent call last):\n%s\n" % text)
        sys.exit(1)
    return args


def banner():
    """0.8+ prints a banner on import."""
    ver = version()
    if vtuple(ver) >= (0, 8):
        name = "TensorRT LLM" if vtuple(ver) >= (1, 0) else "TensorRT-LLM"
        sys.stdout.write("[TensorRT-LLM] %s version: %s\n" % (name, ver))
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


def mpi_local_size():
    return int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", "1"))


def visible_gpus():
    """Double-only knob: GPUs the container would have (default 1)."""
    return int(os.environ.get("MTRT_DOUBLE_VISIBLE_GPUS", "1"))


def set_device(device, cpp=False):
    if device >= visible_gpus():
        raise RuntimeError(CPP_ORDINAL_ERROR if cpp else PY_ORDINAL_ERROR)


def legacy_engine_name(builder_config, rank):
    """Rank file of a legacy engine as the 0.7.1 runtime opens it (tp from tensor_parallel)."""
    tp, pp = builder_config["tensor_parallel"], builder_config.get("pipeline_parallel", 1)
    pp_part = "_pp%d" % pp if pp > 1 else ""
    return "%s_%s_tp%d%s_rank%d.engine" % (builder_config["name"], builder_config["precision"], tp,
                                           pp_part, rank)
