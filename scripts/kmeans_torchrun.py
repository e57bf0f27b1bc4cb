"""k-means over several processes with torchrun: each process clusters its own shard.

Every process (a *rank*) generates the same seeded data and keeps its shard (a real job
would read its own files), runs :func:`clusterlab.distributed.kmeans` -- one all-reduce
of the (k, d) sums and (k,) counts per iteration -- and rank 0 prints the shards, the
iterations (time, and the share spent in communication) and checks the result against
``cl.kmeans`` on the concatenated data.

On one machine, CPUs (gloo)::

    torchrun --nproc-per-node 2 scripts/kmeans_torchrun.py --points 200000 --dims 16 --clusters 32
    python -m torch.distributed.run --nproc-per-node 2 scripts/kmeans_torchrun.py   # the same

On a machine with 4 GPUs (NCCL, one GPU per process)::

    torchrun --nproc-per-node 4 scripts/kmeans_torchrun.py --device cuda --points 20000000

Across two machines (run on each, with its own --node-rank; the endpoint is machine 0)::

    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 4 --rdzv-backend c10d \\
        --rdzv-endpoint machine0.example:29500 scripts/kmeans_torchrun.py --device cuda

The exit status is 1 when the distributed result differs from the single-process one.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

import clusterlab as cl
import clusterlab.distributed as cld


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--points", type=int, default=200_000, help="points in all (default 200000)")
    p.add_argument("--dims", type=int, default=16, help="dimension (default 16)")
    p.add_argument("--clusters", type=int, default=32, help="clusters (default 32)")
    p.add_argument("--max-iter", type=int, default=20, help="Lloyd iterations at most (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="cuda: NCCL, one GPU per process; cpu: gloo (auto: cuda if present)")
    p.add_argument("--uneven", action="store_true",
                   help="give rank 0 a tenth of an even share (shards need not be equal)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the single-process comparison on rank 0 (it needs all the data)")
    return p.parse_args(argv)


def make_data(n, d, k, seed):
    """n points around k centres in [-10, 10]^d (noise of standard deviation 4: the clusters
    overlap, so Lloyd takes a few iterations), float32: the same on every rank."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(k, d)).astype(np.float32)
    noise = rng.standard_normal((n, d), dtype=np.float32) * np.float32(4.0)
    return centres[rng.integers(k, size=n)] + noise


def shard_bounds(n, world, uneven):
    """Row bounds of each rank's shard: equal, or rank 0 with a tenth of an equal share."""
    weights = np.ones(world)
    if uneven and world > 1:
        weights[0] = 0.1
    return np.concatenate([[0], np.round(np.cumsum(weights) / weights.sum() * n)]).astype(int)


def iteration_table(history, comms, every=1):
    """One line per ``every`` iterations: objective, time, and the all-reduce's time.

    ``comms[r][i]`` is rank r's time in collectives in iteration i. The least busy rank
    waits there for the busiest one; the busiest rank's time is closest to the transfer.
    """
    lines = ["  iter        objective   time (ms)   all-reduce (ms): busiest rank .. least busy"]
    prev = 0.0
    for i, h in enumerate(history):
        step, prev = h["time"] - prev, h["time"]
        if i % every == 0 or i == len(history) - 1:
            lo, hi = min(c[i] for c in comms), max(c[i] for c in comms)
            lines.append(f"  {i + 1:4d}  {h['obj']:15.6g}  {step * 1e3:10.2f}   "
                         f"{lo * 1e3:8.2f} .. {hi * 1e3:.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group("nccl" if use_cuda else "gloo")  # torchrun set the rendezvous
    rank, world = dist.get_rank(), dist.get_world_size()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if not use_cuda:  # share the cores of this machine among its processes
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    device = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")

    x = make_data(args.points, args.dims, args.clusters, args.seed)
    bounds = shard_bounds(args.points, world, args.uneven)
    x_local = torch.from_numpy(x[bounds[rank]:bounds[rank + 1]]).to(device)
    who = dist.get_backend(), socket.gethostname(), str(device), torch.get_num_threads()
    shards = [None] * world
    dist.all_gather_object(shards, (rank, len(x_local), *who))
    if rank == 0:
        print(f"{world} processes, backend {who[0]}; data: n={args.points:,}, d={args.dims}, k={args.clusters}")
        for r, n_local, _, host, dev, threads in shards:
            print(f"  rank {r}: {n_local:>9,} points on {host} ({dev}, {threads} threads)")

    # 1. The default: k-means|| initialisation, then Lloyd with one all-reduce per iteration.
    t0 = time.perf_counter()
    res = cld.kmeans(x_local, args.clusters, max_iter=args.max_iter, seed=args.seed)
    wall = time.perf_counter() - t0
    per_rank = [None] * world
    steps = np.diff([0.0] + [h["time"] for h in res.history])
    dist.all_gather_object(per_rank, (len(x_local), float(steps.sum()),
                                      [h["comm"] for h in res.history]))
    if rank == 0:
        print(f"\nk-means|| + Lloyd: {res.n_iter} iterations, inertia {res.inertia:.6g}, "
              f"{wall:.2f} s in all (init included)")
        print(iteration_table(res.history, [c for _, _, c in per_rank],
                              every=max(1, res.n_iter // 8)))
        print("per rank (time in the all-reduce includes waiting for slower ranks):")
        for r, (n_local, t, c) in enumerate(per_rank):
            print(f"  rank {r}: {n_local:>9,} points, {t / max(res.n_iter, 1) * 1e3:8.2f} ms "
                  f"per iteration, {sum(c) / max(t, 1e-12):4.0%} of it in the all-reduce")

    # 2. The check: the same initial centroids (rank 0's, broadcast) on one process and here.
    if args.no_check:
        dist.destroy_process_group()
        return 0
    c0 = cl.kmeans_plusplus(x, args.clusters, seed=args.seed) if rank == 0 else np.zeros((args.clusters, args.dims))
    res = cld.kmeans(x_local, args.clusters, init=torch.as_tensor(c0, dtype=torch.float32, device=device),
                     max_iter=args.max_iter)
    labels = [None] * world
    dist.all_gather_object(labels, res.labels.cpu().numpy())
    ok = True
    if rank == 0:
        ref = cl.kmeans(torch.from_numpy(x).to(device), args.clusters,  # rank 0's device
                        init=torch.as_tensor(c0, device=device), max_iter=args.max_iter)
        labels = np.concatenate(labels)
        c, rc = res.centroids.cpu().numpy(), ref.centroids.cpu().numpy()
        rel = float(np.abs(c - rc).max() / np.abs(rc).max())
        same = int((labels == ref.labels.cpu().numpy()).sum())
        ok = rel <= 1e-4 and same == args.points and res.n_iter == ref.n_iter
        print(f"\ncheck against cl.kmeans on all {args.points:,} points from the same start:")
        print(f"  n_iter {res.n_iter} vs {ref.n_iter}; inertia {res.inertia:.8g} vs {ref.inertia:.8g}")
        print(f"  centroids: max relative difference {rel:.1e}; labels: {same:,} of {args.points:,} equal")
        print("  equal to the single-process result:", "yes" if ok else "NO")
    flag = torch.tensor([float(ok)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    dist.destroy_process_group()
    return 0 if flag.item() == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
