#!/usr/bin/env python3
"""All-reduce bandwidth across MPI ranks with PyTorch distributed (NCCL).

Launched by mpirun, one rank per GPU. Rank, world size and local rank come
from Open MPI's environment; the rendezvous is tcp://MASTER:PORT where MASTER
is --master-addr, else $MASTER_ADDR, else the first host of --hostfile. Each
size is checked (every rank holds rank+1, the sum must be n(n+1)/2) and then
timed like nccl-tests' all_reduce_perf (in place, float32, GB/s = 1e9 B/s,
busbw = algbw * 2(n-1)/n). Rank 0 prints one line ``MTRT-NCCL-ALLREDUCE
{json}``. NCCL's transport shows in its own log (NCCL_DEBUG=INFO).
NVLink multicast (NVLS) stays off unless NCCL_NVLS_ENABLE is set.
"""

import argparse
import json
import os
import socket
import sys
import time

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

MARKER = "MTRT-NCCL-ALLREDUCE "
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
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--gpus-per-node", type=int, default=0,
                   help="device = rank %% this (0: the local rank)")
    p.add_argument("--backend", default="nccl", help="nccl (GPU) or gloo (CPU, for tests)")
    p.add_argument("--timeout-s", type=int, default=120, help="rendezvous and collective timeout")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rank = _env_int(["OMPI_COMM_WORLD_RANK", "RANK"], 0)
    world = _env_int(["OMPI_COMM_WORLD_SIZE", "WORLD_SIZE"], 1)
    local_rank = _env_int(["OMPI_COMM_WORLD_LOCAL_RANK", "LOCAL_RANK"], 0)
    master = args.master_addr or os.environ.get("MASTER_ADDR") or (
        first_host(args.hostfile) if args.hostfile else "127.0.0.1")

    import datetime  # noqa: PLC0415
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    gpu = args.backend == "nccl"
    if gpu:
        device = torch.device("cuda", rank % args.gpus_per_node if args.gpus_per_node > 0 else local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group(args.backend, init_method="tcp://%s:%d" % (master, args.master_port),
                            rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=args.timeout_s))
    n = world
    sizes, size = [], args.min_bytes
    while size <= args.max_bytes:
        sizes.append(size)
        size *= args.factor
    buf = torch.empty(max(sizes) // 4, dtype=torch.float32, device=device)
    want = n * (n + 1) / 2.0
    sync = torch.cuda.synchronize if gpu else (lambda: None)

    rows = []
    for size in sizes:
        count = size // 4
        x = buf[:count]
        x.fill_(rank + 1.0)
        dist.all_reduce(x)
        ok = torch.tensor([1.0 if bool((x == want).all()) else 0.0], device=device)
        oks = [torch.zeros_like(ok) for _ in range(n)]
        dist.all_gather(oks, ok)
        bad = [r for r, v in enumerate(oks) if v.item() != 1.0]
        x.uniform_(0.0, 1.0 / n)  # timing data: not zeros, grows by at most n per call
        for _ in range(args.warmup):
            dist.all_reduce(x)
        sync()
        dist.barrier()
        sync()
        t0 = time.perf_counter()
        for _ in range(args.iters):
            dist.all_reduce(x)
        sync()
        elapsed = torch.tensor([(time.perf_counter() - t0) / args.iters], device=device,
                               dtype=torch.float64)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
        t = elapsed.item()
        algbw = size / t / 1e9
        rows.append({"size_bytes": size, "count": count, "dtype": "float32", "iters": args.iters,
                     "time_us": round(t * 1e6, 3), "algbw_gbps": round(algbw, 4),
                     "busbw_gbps": round(algbw * 2.0 * (n - 1) / n, 4),
                     "correct": not bad, "bad_ranks": bad})

    me = {"rank": rank, "host": socket.gethostname(), "local_rank": local_rank,
          "device": str(device),
          "device_name": torch.cuda.get_device_name(device) if gpu else "cpu"}
    ranks = [None] * n
    dist.all_gather_object(ranks, me)
    if rank == 0:
        nccl = None
        if gpu:
            try:
                nccl = ".".join(str(v) for v in torch.cuda.nccl.version())
            except Exception:  # pylint: disable=broad-except
                nccl = None
        doc = {"version": 1, "world_size": n, "backend": args.backend, "master": master,
               "torch": torch.__version__, "nccl": nccl, "ranks": ranks,
               "env": {k: os.environ.get(k) for k in ENV_SHOWN if k in os.environ},
               "rows": rows}
        sys.stdout.write(MARKER + json.dumps(doc, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    dist.destroy_process_group()
    return 0 if all(r["correct"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
