# SPDX-License-Identifier: Apache-2.0
"""TEST DOUBLE of tensorrt_llm (see ../README.md). Never used by product code."""
from tensorrt_llm._double import banner as _banner, mpi_rank, mpi_world_size  # noqa: F401

__version__ = _banner()
