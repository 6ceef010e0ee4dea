# SPDX-License-Identifier: Apache-2.0
"""TEST STAND-IN helpers (tests only): the MPI message loop shared by the engine stand-in's
worker ranks (leader mode) and its spawned workers (orchestrator mode). No Triton imports, so
the spawned workers, plain Python processes, can use it too."""

import os
import time

TAG_REQUEST, TAG_REPLY = 11, 12
POLL_S = 0.001


def wait(comm, source, tag):
    """Receive without spinning a core: the ranks share few CPUs with everything else."""
    while not comm.Iprobe(source=source, tag=tag):
        time.sleep(POLL_S)
    return comm.recv(source=source, tag=tag)


def serve_rank(comm, me, root=0):
    """Loop of a worker rank: do each request rank 0 sends, reply; exit when told to stop."""
    while True:
        msg = wait(comm, root, TAG_REQUEST)
        if msg is None:
            os._exit(0)
        time.sleep(msg["service_s"])
        comm.send(dict(me, pid=os.getpid()), dest=root, tag=TAG_REPLY)
