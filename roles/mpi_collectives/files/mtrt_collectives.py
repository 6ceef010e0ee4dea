#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Check and time MPI's collectives across every rank (mpi4py, stdlib only).

Run under mpirun. For each of Bcast, Scatter, Gather, Allgather, Reduce and
Allreduce (Reduce/Allreduce with MAX MIN SUM PROD LAND LOR BAND BOR MAXLOC
MINLOC) and each message size, every rank fills rank-dependent inputs, runs
the collective once and compares what it received with the value it must
have (computed locally, independently of MPI), then times the collective.
Rank 0 prints one line: ``MTRT-COLLECTIVES {json}``, times only: the module's parser
(module_utils/mtrt_collectives.py) derives the bandwidths from size and time, in one place.

Inputs repeat with a short period, so buffers are built and compared at C
speed (array repetition, bytes equality) without numpy.

Fault hook for tests: MTRT_COLLECTIVES_INJECT_FAULT=allreduce:SUM:rank1
corrupts the result that rank 1 received from Allreduce(SUM) (every size;
add a number token, e.g. ``:1024``, for one size). The check must catch it.

Exit status: 0 all correct, 1 a wrong value, 2 bad arguments.
"""

import argparse
import array
import json
import operator
import os
import socket
import sys
import time

from mpi4py import MPI

MARKER = "MTRT-COLLECTIVES "
FAULT_ENV = "MTRT_COLLECTIVES_INJECT_FAULT"
COLLECTIVES = ("bcast", "scatter", "gather", "allgather", "reduce", "allreduce")
OPS = ("MAX", "MIN", "SUM", "PROD", "LAND", "LOR", "BAND", "BOR", "MAXLOC", "MINLOC")
MAX_FAILURES = 50


# --- inputs and the values they must reduce to --------------------------------
# An op spec: typecode, MPI datatype, ints per element (2 for (value, rank)
# pairs), period, value(rank, j) for j < period, fold(a, b).

def _maxloc(a, b):
    return a if (a[0] > b[0] or (a[0] == b[0] and a[1] < b[1])) else b


def _minloc(a, b):
    return a if (a[0] < b[0] or (a[0] == b[0] and a[1] < b[1])) else b


def op_spec(op, n):
    bits = 31
    mask = (1 << bits) - 1
    specs = {
        # exact in float32: small integers
        "SUM": ("f", MPI.FLOAT, 1, 7, lambda r, j: float(r + 1 + j), operator.add),
        # exact in float64: powers of two
        "PROD": ("d", MPI.DOUBLE, 1, 3, lambda r, j: 2.0 ** ((r + j) % 3 - 1), operator.mul),
        # a different rank wins at each j, so a lost contribution shows
        "MAX": ("i", MPI.INT, 1, n, lambda r, j: ((r + j) % n) * n + r, max),
        "MIN": ("i", MPI.INT, 1, n, lambda r, j: ((r + j) % n) * n + r, min),
        # "true" inputs are r+1, the result must be exactly 0 or 1
        "LAND": ("i", MPI.INT, 1, n + 1, lambda r, j: 0 if j == r else r + 1,
                 lambda a, b: int(bool(a) and bool(b))),
        "LOR": ("i", MPI.INT, 1, n + 1, lambda r, j: r + 1 if j == r else 0,
                lambda a, b: int(bool(a) or bool(b))),
        "BAND": ("i", MPI.INT, 1, bits, lambda r, j: mask & ~(1 << ((r + j) % bits)),
                 operator.and_),
        "BOR": ("i", MPI.INT, 1, bits, lambda r, j: 1 << ((r + j) % bits), operator.or_),
        # (value, rank); the last j of a period is a tie that the lowest rank wins
        "MAXLOC": ("i", MPI.INT_INT, 2, n + 1,
                   lambda r, j: ((r + j) % n if j < n else 7, r), _maxloc),
        "MINLOC": ("i", MPI.INT_INT, 2, n + 1,
                   lambda r, j: ((r + j) % n if j < n else 7, r), _minloc),
    }
    return specs[op]


def _flat(values, width):
    if width == 1:
        return list(values)
    return [x for pair in values for x in pair]


def tiled(typecode, pattern, count, width=1):
    """``count`` elements of ``pattern`` (a flat list) repeated."""
    period = len(pattern) // width
    reps = count // period + 1
    return (array.array(typecode, pattern) * reps)[: count * width]


def byte_pattern(rank, j):
    """Payload byte j of the chunk owned by ``rank`` (bcast: rank = -1)."""
    return (rank * 37 + j * 7 + 3) % 251


def chunk(rank, count):
    return tiled("B", [byte_pattern(rank, j) for j in range(251)], count)


# --- one row: build, run once, check, time ------------------------------------

class Row:
    """Buffers and the call for one (collective, op, size)."""

    def __init__(self, comm, collective, op, size, root):
        n, rank = comm.Get_size(), comm.Get_rank()
        self.comm, self.collective, self.op, self.root = comm, collective, op, root
        self.result = None  # buffer this rank checks (None: nothing to check)
        if op is None:
            self._plain(n, rank, size)
        else:
            self._reduction(n, rank, size)

    def _plain(self, n, rank, size):
        comm, root, coll = self.comm, self.root, self.collective
        self.typecode, self.width, self.dtype = "B", 1, "uint8"
        if coll == "bcast":
            self.count = max(1, size)
            self.size_bytes = self.count
            want = chunk(-1, self.count)
            buf = want if rank == root else self._poisoned(self.count)
            self.call = lambda: comm.Bcast([buf, MPI.BYTE], root=root)
            if rank != root:
                self.result, self.expected = buf, want
            return
        self.count = max(1, size // n)  # per rank; size_bytes = the whole gathered buffer
        self.size_bytes = self.count * n
        whole = array.array("B")
        for r in range(n):
            whole += chunk(r, self.count)
        mine = chunk(rank, self.count)
        if coll == "scatter":
            recv = self._poisoned(self.count)
            send = [whole, MPI.BYTE] if rank == root else None
            self.call = lambda: comm.Scatter(send, [recv, MPI.BYTE], root=root)
            self.result, self.expected = recv, mine
        elif coll == "gather":
            recv = self._poisoned(self.count * n) if rank == root else None
            self.call = lambda: comm.Gather([mine, MPI.BYTE],
                                            [recv, MPI.BYTE] if recv is not None else None,
                                            root=root)
            if rank == root:
                self.result, self.expected = recv, whole
        else:  # allgather
            recv = self._poisoned(self.count * n)
            self.call = lambda: comm.Allgather([mine, MPI.BYTE], [recv, MPI.BYTE])
            self.result, self.expected = recv, whole

    def _reduction(self, n, rank, size):
        comm, root = self.comm, self.root
        typecode, mpitype, width, period, value, fold = op_spec(self.op, n)
        self.typecode, self.width = typecode, width
        self.dtype = {"f": "float32", "d": "float64"}.get(typecode, "int32" if width == 1 else "2int32")
        itemsize = array.array(typecode).itemsize * width
        self.count = max(1, size // itemsize)
        self.size_bytes = self.count * itemsize
        pattern = [value(rank, j) for j in range(period)]
        want = []
        for j in range(period):
            acc = value(0, j)
            for r in range(1, n):
                acc = fold(acc, value(r, j))
            want.append(acc)
        send = tiled(typecode, _flat(pattern, width), self.count, width)
        expected = tiled(typecode, _flat(want, width), self.count, width)
        mpi_op = getattr(MPI, self.op)
        spec = lambda buf: [buf, self.count, mpitype]  # noqa: E731
        if self.collective == "allreduce":
            recv = self._poisoned(self.count * width)
            self.call = lambda: comm.Allreduce(spec(send), spec(recv), op=mpi_op)
            self.result, self.expected = recv, expected
        else:
            recv = self._poisoned(self.count * width) if rank == root else None
            self.call = lambda: comm.Reduce(spec(send), spec(recv) if recv is not None else None,
                                            op=mpi_op, root=root)
            if rank == root:
                self.result, self.expected = recv, expected

    def _poisoned(self, length):
        fill = {"B": 0xEE, "i": -123456789, "f": -1.5e30, "d": -1.5e300}[self.typecode]
        return array.array(self.typecode, [fill]) * length

    def corrupt(self):
        """Fault hook: damage the last value this rank received."""
        if self.result is None:
            return False
        buf, last = self.result, len(self.result) - 1
        if self.typecode == "B":
            buf[last] ^= 0x5A
        elif self.typecode == "i":
            buf[last] += 1  # for (value, rank) pairs: the rank
        else:
            buf[last] += 1.0
        return True

    def check(self):
        """None when this rank holds the right value, else what is wrong."""
        if self.result is None or self.result.tobytes() == self.expected.tobytes():
            return None
        got, want, w = self.result, self.expected, self.width
        step = 65536
        for start in range(0, len(got), step):  # find the first bad block at C speed
            if got[start:start + step] != want[start:start + step]:
                for k in range(start, min(start + step, len(got))):
                    if got[k] != want[k]:
                        idx = k // w
                        pick = (lambda b: list(b[idx * w: idx * w + w])) if w > 1 else (lambda b: b[idx])
                        return {"index": idx, "expected": pick(want), "got": pick(got)}
        return {"index": None, "expected": None, "got": None}


def parse_fault(spec):
    """'allreduce:SUM:rank1[:1024]' -> dict, or None when unset."""
    if not spec:
        return None
    fault = {"spec": spec, "collective": None, "op": None, "rank": 0, "size": None}
    for token in filter(None, spec.split(":")):
        if token.lower() in COLLECTIVES:
            fault["collective"] = token.lower()
        elif token.upper() in OPS:
            fault["op"] = token.upper()
        elif token.lower().startswith("rank") and token[4:].isdigit():
            fault["rank"] = int(token[4:])
        elif token.isdigit():
            fault["size"] = int(token)
        else:
            raise ValueError("%s=%r: unknown token %r (want collective:OP:rankN[:bytes])"
                             % (FAULT_ENV, spec, token))
    if fault["collective"] is None:
        raise ValueError("%s=%r names no collective (one of %s)" % (FAULT_ENV, spec, ", ".join(COLLECTIVES)))
    return fault


def fault_hits(fault, row, rank):
    return (fault is not None and fault["collective"] == row.collective
            and fault["op"] in (None, row.op) and fault["rank"] == rank
            and fault["size"] in (None, row.size_bytes))


def run_row(comm, row, args, fault, host):
    rank, n = comm.Get_rank(), comm.Get_size()
    comm.Barrier()
    row.call()
    injected = row.corrupt() if fault_hits(fault, row, rank) else False
    bad = row.check()
    # time: one probe call sets the iteration count every rank uses
    t0 = MPI.Wtime()
    row.call()
    probe = comm.allreduce(MPI.Wtime() - t0, op=MPI.MAX)
    iters = max(1, min(args.iters, int(args.time_budget_s / max(probe, 1e-9))))
    for _ in range(min(args.warmup, iters)):
        row.call()
    comm.Barrier()
    t0 = MPI.Wtime()
    for _ in range(iters):
        row.call()
    elapsed = (MPI.Wtime() - t0) / iters
    t_min = comm.reduce(elapsed, op=MPI.MIN, root=0)
    t_max = comm.reduce(elapsed, op=MPI.MAX, root=0)
    t_sum = comm.reduce(elapsed, op=MPI.SUM, root=0)
    bads = comm.gather(None if bad is None else dict(bad, rank=rank, host=host), root=0)
    n_injected = comm.reduce(int(injected), op=MPI.SUM, root=0)
    if rank != 0:
        return None, [], 0
    avg = t_sum / n
    failures = [dict(b, collective=row.collective, op=row.op, size_bytes=row.size_bytes)
                for b in bads if b is not None]
    result = {
        "collective": row.collective, "op": row.op, "size_bytes": row.size_bytes,
        "count": row.count, "dtype": row.dtype, "root": row.root, "iters": iters,
        "time_us": round(avg * 1e6, 3), "time_min_us": round(t_min * 1e6, 3),
        "time_max_us": round(t_max * 1e6, 3),
        "correct": not failures, "bad_ranks": [f["rank"] for f in failures],
    }
    return result, failures, n_injected


def sizes_from(args):
    if args.sizes:
        return [int(s) for s in args.sizes.split(",") if s.strip()]
    sizes, size = [], args.min_bytes
    while size <= args.max_bytes:
        sizes.append(size)
        size *= args.factor
    return sizes


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--min-bytes", type=int, default=16)
    p.add_argument("--max-bytes", type=int, default=64 << 20)
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--sizes", default="", help="comma list of sizes in bytes (overrides min/max)")
    p.add_argument("--iters", type=int, default=20, help="timed iterations per row (at most)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--time-budget-s", type=float, default=0.2,
                   help="per row: fewer iterations when one call is slow")
    p.add_argument("--collectives", default=",".join(COLLECTIVES))
    p.add_argument("--ops", default=",".join(OPS))
    p.add_argument("--root", type=int, default=0)
    args = p.parse_args(argv)
    args.collectives = [c.strip().lower() for c in args.collectives.split(",") if c.strip()]
    args.ops = [o.strip().upper() for o in args.ops.split(",") if o.strip()]
    unknown = sorted(set(args.collectives) - set(COLLECTIVES)) + sorted(set(args.ops) - set(OPS))
    if unknown or args.factor < 2 or args.min_bytes < 1 or args.iters < 1:
        p.error("bad choice %s (collectives: %s; ops: %s; factor >= 2, min-bytes >= 1, iters >= 1)"
                % (unknown, ",".join(COLLECTIVES), ",".join(OPS)))
    return args


def main(argv=None):
    comm = MPI.COMM_WORLD
    rank, n = comm.Get_rank(), comm.Get_size()
    try:
        args = parse_args(argv)
        fault = parse_fault(os.environ.get(FAULT_ENV, ""))
        if not 0 <= args.root < n:
            raise ValueError("--root %d is not a rank of this %d-rank job" % (args.root, n))
    except (ValueError, SystemExit) as exc:
        if rank == 0 and str(exc) not in ("0", "2"):
            print("mtrt_collectives: %s" % exc, file=sys.stderr)
        return 2
    started = time.time()
    host = socket.gethostname()
    # Every rank says it is up, so a launch that hangs later can tell the ranks that started from
    # those that never did (the launcher reads each line's rank from Open MPI's --tag-output).
    print("MTRT-UP rank %d of %d on %s" % (rank, n, host), flush=True)
    hosts = comm.gather(host, root=0)
    rows, failures, injected = [], [], 0
    for size in sizes_from(args):
        for coll in args.collectives:
            for op in (args.ops if coll in ("reduce", "allreduce") else [None]):
                row = Row(comm, coll, op, size, args.root)
                result, bad, hit = run_row(comm, row, args, fault, host)
                if rank == 0:
                    rows.append(result)
                    failures.extend(bad)
                    injected += hit
    ok = comm.bcast(not failures if rank == 0 else None, root=0)
    if rank == 0:
        doc = {
            "version": 1,
            "world_size": n,
            "hosts": hosts,
            "mpi_library": MPI.Get_library_version().replace("\x00", "").strip().splitlines()[0],
            "mpi4py": __import__("mpi4py").__version__,
            "python": sys.version.split()[0],
            "sizes": sizes_from(args),
            "iters": args.iters,
            "warmup": args.warmup,
            "time_budget_s": args.time_budget_s,
            "rows": rows,
            "failures": failures[:MAX_FAILURES],
            "failure_count": len(failures),
            "fault": None if fault is None else {"spec": fault["spec"], "applied": injected},
            "duration_s": round(time.time() - started, 3),
        }
        sys.stdout.write(MARKER + json.dumps(doc, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
