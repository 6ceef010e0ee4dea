# SPDX-License-Identifier: Apache-2.0
"""MPI hello-world of mpi-trt-ansible: every rank reports itself as one JSON line.

Beyond the notes' print, each rank takes part in an allreduce, so a line
proves the rank joined the same MPI job as the others (not a singleton).
"""

import json
import os
import socket

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
size = comm.Get_size()
rank_sum = comm.allreduce(rank, op=MPI.SUM)
record = {
    "rank": rank,
    "size": size,
    "host": socket.gethostname(),
    "processor": MPI.Get_processor_name(),
    "pid": os.getpid(),
    "local_rank": int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", "-1")),
    "allreduce_ok": rank_sum == size * (size - 1) // 2,
    "mpi_library": MPI.Get_library_version().strip().splitlines()[0],
}
print("MTRT-HELLO " + json.dumps(record, sort_keys=True), flush=True)
