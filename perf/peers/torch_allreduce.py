#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""torch.distributed allreduce timing driver (gloo backend, CPU tensors) for
perf/bench-coll.sh, measured the way wccl-perf allreduce measures: WARMUP
untimed calls, a barrier, ITERS timed calls, each rank's average, the slowest
rank's average reported. fp32 sum, in place (dist.all_reduce is in place).
Sizes are bytes per rank; busbw = algbw x 2(n-1)/n (nccl-tests).

  torch_allreduce.py -N RANKS [-b MIN] [-e MAX] [-f F] [-n ITERS] [-w WARMUP]

N processes are started with torch.multiprocessing; rendezvous through a
FileStore in a temporary directory, so only loopback TCP is used by gloo.
Rank 0 prints one JSON object per size.
"""
import argparse
import json
import os
import sys
import tempfile
import time


def parse_size(s):
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    if s[-1].lower() in mult:
        return int(float(s[:-1]) * mult[s[-1].lower()])
    return int(s)


def worker(rank, args, store_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + store_path,
                            rank=rank, world_size=args.N)
    n = args.N
    cap = args.e // 4 + 16
    buf_all = torch.zeros(cap, dtype=torch.float32)
    bad_total = 0
    size = args.b
    while size <= args.e:
        count = size // 4
        t = buf_all[:count]
        for _ in range(args.w):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(args.n):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        us = (time.perf_counter() - t0) * 1e6 / args.n
        # check: x[i] = rank + i % 7 -> n(n-1)/2 + n (i % 7)
        idx = torch.arange(count, dtype=torch.int64) % 7
        t.copy_(idx.to(torch.float32) + rank)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        want = idx.to(torch.float32) * n + n * (n - 1) / 2
        bad = torch.tensor([float((t - want).abs().gt(1e-3).sum())])
        tm = torch.tensor([us], dtype=torch.float64)
        dist.all_reduce(tm, op=dist.ReduceOp.MAX)
        dist.all_reduce(bad, op=dist.ReduceOp.SUM)
        bad_total += int(bad.item())
        t.zero_()
        if rank == 0:
            us_max = tm.item()
            algbw = count * 4 / (us_max * 1e3)
            print(json.dumps({
                "tool": "torch-gloo", "collective": "allreduce",
                "ranks": n, "size": count * 4, "count": count,
                "type": "fp32", "algo": "gloo(torch %s)" % torch.__version__,
                "iters": args.n, "us": round(us_max, 2),
                "algbw": round(algbw, 4),
                "busbw": round(algbw * 2 * (n - 1) / n, 4),
                "wrong": int(bad.item())}), flush=True)
        nxt = int(size * args.f)
        size = nxt if nxt > size else size + 1
    dist.destroy_process_group()
    if bad_total:
        sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-N", type=int, required=True, help="ranks")
    p.add_argument("-b", type=parse_size, default=8)
    p.add_argument("-e", type=parse_size, default=64 << 20)
    p.add_argument("-f", type=float, default=2)
    p.add_argument("-n", type=int, default=20)
    p.add_argument("-w", type=int, default=5)
    args = p.parse_args()
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="torch-ar-") as d:
        mp.start_processes(worker, args=(args, os.path.join(d, "store")),
                           nprocs=args.N, join=True, start_method="fork")


if __name__ == "__main__":
    main()
