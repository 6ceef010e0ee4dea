#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""All-reduce bandwidth across MPI ranks with PyTorch distributed (NCCL).

Launched by mpirun, one rank per GPU. Rank, world size and local rank come
from Open MPI's environment; the rendezvous is tcp://MASTER:PORT where MASTER
is --master-addr, else $MASTER_ADDR, else the first host of --hostfile.

The method follows nccl-tests' all_reduce_perf (see the role README for the
commit read): one buffer of --max-bytes per rank, in-place float32 sum; per
size a data check, untimed warm-up calls, then a timed run whose iteration
count is scaled so that the size runs for about --target-s (at least --iters,
at most --max-iters; every rank uses the largest count any rank asked for).
Successive calls walk through the buffer as nccl-tests does, so small sizes
are not timed out of the L2 cache. The time of a call is measured with CUDA
events recorded on the stream the collectives are issued on and averaged over
the ranks; algbw = bytes / time, busbw = algbw * 2(n-1)/n (GB/s = 1e9 B/s).
With --backend gloo (CPU, for tests) the host clock is used instead.

Rank 0 prints one line ``MTRT-NCCL-ALLREDUCE {json}``. A world of one rank
prints that line with ``nothing_to_measure: true`` and no rows: an all-reduce
over one rank moves no data. A rank that fails prints
``MTRT-NCCL-ALLREDUCE-ERROR {json}`` (rank, host, device, error) and exits 1.
NCCL's transport shows in its own log (NCCL_DEBUG=INFO). NVLink multicast
(NVLS) stays off unless NCCL_NVLS_ENABLE is set.
"""

import argparse
import inspect
import json
import math
import os
import socket
import sys
import time

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

MARKER = "MTRT-NCCL-ALLREDUCE "
ERROR_MARKER = "MTRT-NCCL-ALLREDUCE-ERROR "
FORMAT_VERSION = 2
ELEMENT_BYTES = 4  # float32
# Distinct buffer windows one size cycles through (nccl-tests walks the whole
# buffer; 1024 windows are enough to leave the L2 cache from 256 KiB up).
MAX_WINDOWS = 1024
ENV_SHOWN = ("NCCL_NVLS_ENABLE", "NCCL_P2P_DISABLE", "NCCL_SHM_DISABLE", "NCCL_IB_DISABLE",
             "NCCL_SOCKET_IFNAME", "NCCL_ALGO", "NCCL_PROTO", "CUDA_VISIBLE_DEVICES")


def _env_int(names, default):
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return default


def first_host(hostfile):
    with open(hostfile, encoding="utf-8") as handle:
        for line in handle:
            fields = line.split("#", 1)[0].split()
            if fields:
                return fields[0]
    raise ValueError("hostfile %s lists no host" % hostfile)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--master-addr", default="")
    p.add_argument("--master-port", type=int, default=int(os.environ.get("MASTER_PORT", 29551)))
    p.add_argument("--hostfile", default="")
    p.add_argument("--min-bytes", type=int, default=1024)
    p.add_argument("--max-bytes", type=int, default=4 << 30)
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--iters", type=int, default=20, help="fewest timed calls per size")
    p.add_argument("--max-iters", type=int, default=1000, help="most timed calls per size")
    p.add_argument("--target-s", type=float, default=0.25,
                   help="timed seconds per size the iteration count aims at")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls per size before timing")
    p.add_argument("--gpus-per-node", type=int, default=0,
                   help="device = rank %% this (0: the local rank)")
    p.add_argument("--backend", default="nccl", help="nccl (GPU) or gloo (CPU, for tests)")
    p.add_argument("--timeout-s", type=int, default=120, help="rendezvous and collective timeout")
    args = p.parse_args(argv)
    if args.min_bytes < ELEMENT_BYTES or args.max_bytes < args.min_bytes or args.factor < 2:
        p.error("need %d <= --min-bytes <= --max-bytes and --factor >= 2" % ELEMENT_BYTES)
    if args.iters < 1 or args.max_iters < args.iters or args.warmup < 1 or args.target_s <= 0:
        p.error("need 1 <= --iters <= --max-iters, --warmup >= 1 and --target-s > 0")
    return args


def sizes_of(args):
    sizes, size = [], args.min_bytes - args.min_bytes % ELEMENT_BYTES
    while size <= args.max_bytes:
        sizes.append(size)
        size *= args.factor
    return sizes


def iterations_for(seconds_per_call, args):
    """Timed calls for one size: enough for --target-s, within [--iters, --max-iters]."""
    if seconds_per_call <= 0:
        return args.max_iters
    return int(min(args.max_iters, max(args.iters, math.ceil(args.target_s / seconds_per_call))))


class Bench:
    """One rank's side of the measurement (torch imported by the caller)."""

    def __init__(self, torch, dist, args, rank, world, device):
        self.torch, self.dist, self.args = torch, dist, args
        self.rank, self.n, self.device = rank, world, device
        self.gpu = device.type == "cuda"
        # A stream of our own: nothing else of this process runs on it, and the
        # events below are recorded on the stream the collectives are issued on.
        self.stream = torch.cuda.Stream(device=device) if self.gpu else None

    def sync(self):
        if self.gpu:
            self.stream.synchronize()

    def barrier(self):
        """Every rank here, and this rank's stream idle (a one-element all-reduce)."""
        token = self.torch.ones(1, device=self.device)
        self.dist.all_reduce(token)
        self.sync()

    def timed(self, windows, calls):
        """(seconds per call on the device clock or None, seconds per call on the host clock)."""
        start = end = None
        if self.gpu:
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
        t0 = time.perf_counter()
        for i in range(calls):
            self.dist.all_reduce(windows[i % len(windows)])
        if self.gpu:
            end.record(self.stream)
            end.synchronize()
        host = (time.perf_counter() - t0) / calls
        device = start.elapsed_time(end) / 1e3 / calls if self.gpu else None
        return device, host

    def agree(self, values, op):
        """``values`` reduced over the ranks (float64, SUM or MAX)."""
        t = self.torch.tensor(values, dtype=self.torch.float64, device=self.device)
        self.dist.all_reduce(t, op=op)
        return [float(v) for v in t.tolist()]

    def check(self, window):
        """Ranks whose all-reduce of rank+1 did not give n(n+1)/2."""
        window.fill_(self.rank + 1.0)
        self.dist.all_reduce(window)
        ok = 1.0 if bool((window == self.n * (self.n + 1) / 2.0).all()) else 0.0
        flags = self.torch.zeros(self.n, dtype=self.torch.float64, device=self.device)
        flags[self.rank] = ok
        self.dist.all_reduce(flags)
        return [r for r, v in enumerate(flags.tolist()) if v != 1.0]

    def row(self, buf, size):
        torch, dist, args = self.torch, self.dist, self.args
        count = size // ELEMENT_BYTES
        steps = max(1, min(buf.numel() // count, MAX_WINDOWS))
        windows = [buf.narrow(0, k * count, count) for k in range(steps)]
        bad = self.check(windows[0])
        # Warm-up (untimed in the result): connections, kernels and buffers of
        # this size are set up, and it estimates the time of one call.
        self.dist.all_reduce(windows[0])
        self.barrier()
        device_s, host_s = self.timed(windows, args.warmup)
        estimate = iterations_for(device_s if device_s is not None else host_s, args)
        iters = int(self.agree([estimate], dist.ReduceOp.MAX)[0])
        self.barrier()
        device_s, host_s = self.timed(windows, iters)
        per_call = device_s if device_s is not None else host_s
        mean_s, mean_host_s = [v / self.n for v in self.agree([per_call, host_s], dist.ReduceOp.SUM)]
        max_s = self.agree([per_call], dist.ReduceOp.MAX)[0]
        algbw = size / mean_s / 1e9
        return {"size_bytes": size, "count": count, "dtype": "float32", "warmup_iters": args.warmup,
                "iters": iters, "time_us": round(mean_s * 1e6, 3), "time_us_max": round(max_s * 1e6, 3),
                "host_time_us": round(mean_host_s * 1e6, 3), "algbw_gbps": round(algbw, 4),
                "busbw_gbps": round(algbw * 2.0 * (self.n - 1) / self.n, 4),
                "correct": not bad, "bad_ranks": bad}

    def run(self, sizes):
        torch = self.torch
        with (torch.cuda.stream(self.stream) if self.gpu else _nothing()):
            buf = torch.empty(max(sizes) // ELEMENT_BYTES, dtype=torch.float32, device=self.device)
            # Timing data: not zeros; in-place sums grow it (to +inf on long runs,
            # which costs the reduction kernels nothing).
            buf.uniform_(0.0, 1.0 / self.n)
            self.barrier()
            rows = [self.row(buf, size) for size in sizes]
            self.sync()
        return rows


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def versions(torch, gpu):
    nccl = None
    if gpu:
        try:
            nccl = ".".join(str(v) for v in torch.cuda.nccl.version())
        except Exception:  # pylint: disable=broad-except
            nccl = None
    return torch.__version__, nccl


def method(args, gpu):
    return {"timer": "cuda_events" if gpu else "host_clock", "stream": "dedicated" if gpu else None,
            "in_place": True, "dtype": "float32", "op": "sum", "warmup_iters": args.warmup,
            "min_iters": args.iters, "max_iters": args.max_iters, "target_s": args.target_s,
            "rank_time": "mean", "windows": MAX_WINDOWS}


def emit(marker, doc):
    sys.stdout.write(marker + json.dumps(doc, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main(argv=None):
    args = parse_args(argv)
    rank = _env_int(["OMPI_COMM_WORLD_RANK", "RANK"], 0)
    world = _env_int(["OMPI_COMM_WORLD_SIZE", "WORLD_SIZE"], 1)
    local_rank = _env_int(["OMPI_COMM_WORLD_LOCAL_RANK", "LOCAL_RANK"], 0)
    me = {"rank": rank, "host": socket.gethostname(), "local_rank": local_rank, "device": None,
          "device_name": None}
    try:
        return measure(args, rank, world, local_rank, me)
    except Exception as exc:  # pylint: disable=broad-except
        emit(ERROR_MARKER, dict(me, error="%s: %s" % (type(exc).__name__, str(exc)[:2000])))
        return 1


def measure(args, rank, world, local_rank, me):
    import datetime  # noqa: PLC0415
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    gpu = args.backend == "nccl"
    if gpu:
        device = torch.device("cuda", rank % args.gpus_per_node if args.gpus_per_node > 0 else local_rank)
        me["device"] = str(device)
        torch.cuda.set_device(device)
        me["device_name"] = torch.cuda.get_device_name(device)
    else:
        device = torch.device("cpu")
        me.update(device="cpu", device_name="cpu")
    torch_version, nccl = versions(torch, gpu)
    master = args.master_addr or os.environ.get("MASTER_ADDR") or (
        first_host(args.hostfile) if args.hostfile else "127.0.0.1")
    doc = {"version": FORMAT_VERSION, "world_size": world, "backend": args.backend, "master": master,
           "torch": torch_version, "nccl": nccl,
           "env": {k: os.environ.get(k) for k in ENV_SHOWN if k in os.environ},
           "method": method(args, gpu)}
    if world == 1:
        emit(MARKER, dict(doc, nothing_to_measure=True, ranks=[me], rows=[],
                          reason="one rank: an all-reduce over a single rank moves no data"))
        return 0

    options = {}
    if gpu and "device_id" in inspect.signature(dist.init_process_group).parameters:
        options["device_id"] = device  # NCCL communicator made now, on this rank's GPU
    dist.init_process_group(args.backend, init_method="tcp://%s:%d" % (master, args.master_port),
                            rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=args.timeout_s), **options)
    rows = Bench(torch, dist, args, rank, world, device).run(sizes_of(args))
    ranks = [None] * world
    dist.all_gather_object(ranks, me)
    if rank == 0:
        emit(MARKER, dict(doc, nothing_to_measure=False, ranks=ranks, rows=rows))
    dist.destroy_process_group()
    return 0 if all(r["correct"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
