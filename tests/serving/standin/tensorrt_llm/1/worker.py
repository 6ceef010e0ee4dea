# SPDX-License-Identifier: Apache-2.0
"""TEST STAND-IN of trtllmExecutorWorker (tests only): a worker the orchestrator spawned.

argv[1] is the GPU set of its model instance ("0,1"); worker rank r takes GPU set[r]. It serves
the orchestrator over the parent intercommunicator until told to stop.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mpi4py import MPI  # noqa: E402

from standin_mpi import serve_rank  # noqa: E402  (the loop the leader-mode ranks run too)

if __name__ == "__main__":
    parent = MPI.Comm.Get_parent()
    ids = [int(i) for i in sys.argv[1].split(",")]
    rank = MPI.COMM_WORLD.Get_rank()
    serve_rank(parent, {"rank": rank, "host": socket.gethostname(), "gpu": ids[rank % len(ids)]}, root=0)
