#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Report, per MPI rank, the GPU it will use and whether that GPU exists.

Run under the same mpirun settings as inference. Each rank finds its host,
local rank, CUDA_VISIBLE_DEVICES and how many devices it can see (torch.cuda
when importable, else ``nvidia-smi -L``, else 0), and picks device
``rank % gpus_per_node`` as TensorRT-LLM does, with that device's UUID where
it can be read (so ranks on one physical GPU are found even across containers). With mpi4py, rank 0 gathers
and prints one line ``MTRT-RANK-DEVICE {json}``; without it, every rank
prints its own ``MTRT-RANK-DEVICE-RANK {json}`` line.
"""

import argparse
import json
import os
import socket
import subprocess
import sys

MARKER = "MTRT-RANK-DEVICE "
RANK_MARKER = "MTRT-RANK-DEVICE-RANK "


def _env_int(names, default):
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return default


def _uuid(value):
    text = str(value or "").strip()
    if not text:
        return None
    return text if text.startswith(("GPU-", "MIG-")) else "GPU-" + text


def visible_devices():
    """(count, source, names, uuids, error) of the devices this process can use."""
    try:
        import torch  # noqa: PLC0415
    except Exception:  # pylint: disable=broad-except
        torch = None
    if torch is not None:
        try:
            count = torch.cuda.device_count()
            names = [torch.cuda.get_device_name(i) for i in range(count)]
            uuids = [_uuid(getattr(torch.cuda.get_device_properties(i), "uuid", None)) for i in range(count)]
            return count, "torch %s" % torch.__version__, names, uuids, None
        except Exception as exc:  # pylint: disable=broad-except
            return 0, "torch %s" % torch.__version__, [], [], str(exc)
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 0, "none", [], [], "no torch, nvidia-smi: %s" % exc
    if out.returncode != 0:
        return 0, "nvidia-smi -L", [], [], (out.stdout + out.stderr).strip()[-300:]
    gpus = []  # (name, uuid) in nvidia-smi order: "GPU 0: NVIDIA H200 (UUID: GPU-...)"
    for line in out.stdout.splitlines():
        if line.startswith("GPU "):
            rest = line.split(":", 1)[1]
            name, _, tail = rest.partition("(UUID:")
            gpus.append((name.strip(), _uuid(tail.strip(" )")) if tail else None))
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:  # nvidia-smi ignores CUDA_VISIBLE_DEVICES; apply it (indices or UUIDs)
        picked = []
        for item in (d.strip() for d in cvd.split(",")):
            if item.isdigit() and int(item) < len(gpus):
                picked.append(gpus[int(item)])
            elif item.startswith(("GPU-", "MIG-")):
                picked += [g for g in gpus if g[1] and g[1].startswith(item)]
        gpus = picked
    return len(gpus), "nvidia-smi -L", [g[0] for g in gpus], [g[1] for g in gpus], None


def report(gpus_per_node):
    rank = _env_int(["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"], 0)
    count, source, names, uuids, error = visible_devices()
    per_node = gpus_per_node if gpus_per_node > 0 else max(count, 1)
    device = rank % per_node
    return {
        "rank": rank,
        "world_size": _env_int(["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"], 1),
        "local_rank": _env_int(["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"], 0),
        "local_size": _env_int(["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"], 1),
        "host": socket.gethostname(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "visible_count": count,
        "source": source,
        "gpus_per_node": per_node,
        "device": device,
        "device_name": names[device] if device < len(names) else None,
        "device_uuid": uuids[device] if device < len(uuids) else None,
        "exists": device < count,
        "error": error,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus-per-node", type=int, default=0,
                        help="device = rank %% this (0: the devices this rank sees)")
    args = parser.parse_args(argv)
    mine = report(args.gpus_per_node)
    try:
        from mpi4py import MPI  # noqa: PLC0415
    except ImportError:
        sys.stdout.write(RANK_MARKER + json.dumps(mine, separators=(",", ":")) + "\n")
        return 0
    ranks = MPI.COMM_WORLD.gather(mine, root=0)
    if MPI.COMM_WORLD.Get_rank() == 0:
        doc = {"version": 1, "world_size": MPI.COMM_WORLD.Get_size(), "ranks": ranks}
        sys.stdout.write(MARKER + json.dumps(doc, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
