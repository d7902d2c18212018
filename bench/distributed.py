"""W2 data-parallel: the same total batch on 1, 2, ... processes started by ``mpiexec``.

    python -m bench --workloads w2 --ranks 1,2
    python -m bench --workloads w2 --ranks 1,2,4 --sizes W2=4096,16384 --device cuda

Each job runs W2 (``784 -> 256 relu -> 10``, sparse softmax cross-entropy, SGD lr 0.1) with
``gg.distributed.DistributedOptimizer``: every rank takes ``B / ranks`` rows of the global batch
``B``, and the gradients (203,530 floats) are averaged by one all-reduce per step. Reported per
batch and rank count: the median time per step (the slowest rank's, over blocks of steps), the
all-reduce alone, the speedup over one process on the same total batch and the scaling
efficiency ``speedup / ranks``; the loss after the run must match one process's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = 5
WARMUP = 3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench --ranks",
                                description="W2 data-parallel over mpiexec: time per step and scaling efficiency.")
    p.add_argument("--ranks", required=True, help="comma list of process counts, e.g. 1,2 (1 is always run)")
    p.add_argument("--workloads", default="W2", help="only W2 runs data-parallel")
    p.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per rank)")
    p.add_argument("--sizes", action="append", metavar="W2=A,B", help="global batch sizes (default 1024,4096)")
    p.add_argument("--steps", action="append", metavar="W2=N", help="timed steps per job (default 30)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads per rank (default 1)")
    p.add_argument("--quick", action="store_true", help="one small batch, few steps")
    p.add_argument("--out", default="bench/results", help="folder for the JSON record and the table")
    p.add_argument("--tag", default=None, help="file name stem (default: dist-DEVICE-DATE)")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed for one job")
    a = p.parse_args(argv)
    works = [w.strip().upper() for w in a.workloads.split(",") if w.strip()]
    if works != ["W2"]:
        p.error(f"--ranks runs W2 only, got --workloads {a.workloads}")
    a.ranks = sorted({1, *(int(r) for r in a.ranks.split(",") if r.strip())})
    if a.ranks[0] < 1:
        p.error("--ranks: process counts must be positive")

    def override(items, conv):
        vals = None
        for item in items or []:
            key, _, val = item.partition("=")
            if key.strip().upper() != "W2":
                p.error(f"expected W2=..., got {item!r}")
            vals = conv(val)
        return vals

    a.sizes = override(a.sizes, lambda v: [int(float(s)) for s in v.split(",") if s.strip()])
    a.sizes = a.sizes or ([256] if a.quick else [1024, 4096])
    a.steps = override(a.steps, int) or (10 if a.quick else 30)
    for b in a.sizes:
        bad = [r for r in a.ranks if b % r]
        if bad:
            p.error(f"batch {b} does not split evenly over {bad} ranks")
    return a


# -- one rank of a job ------------------------------------------------------------------------------


def worker(size: int, steps: int, device: str, out: str) -> None:
    import numpy as np

    import gpugrad as gg
    from bench.workloads import LR, w2_data, w2_init
    from gpugrad import distributed as dist
    from gpugrad.distributed._collectives import allreduce_

    w = dist.init()
    r, n = w.rank, w.size
    dev = "cuda" if device == "cuda" else "cpu"
    x, labels = w2_data(size)
    xs = gg.constant(x[r::n], device=dev)
    ys = gg.constant(labels[r::n], device=dev)
    params = [gg.Variable(gg.constant(a, device=dev)) for a in w2_init()]
    dist.broadcast_variables(params)
    opt = dist.DistributedOptimizer(gg.optimizers.SGD(LR["W2"]))
    cp = gg.backend.cupy() if dev == "cuda" else None

    def sync():
        if cp is not None:
            cp.cuda.get_current_stream().synchronize()

    def step():
        w1, b1, w2, b2 = params
        with gg.GradientTape() as tape:
            z = gg.relu(xs @ w1 + b1) @ w2 + b2
            loss = gg.losses.sparse_categorical_crossentropy(ys, z, from_logits=True)
        opt.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss

    def slowest(seconds: float) -> float:
        t = np.array([seconds])
        allreduce_(w, t, "max")
        return float(t[0])

    for _ in range(WARMUP):
        step()
    # the timed run starts again from the initial weights, so that its loss can be compared
    for p, a in zip(params, w2_init()):
        p.assign(gg.constant(a, device=dev))
    opt = dist.DistributedOptimizer(gg.optimizers.SGD(LR["W2"]))
    per_block = [steps // BLOCKS + (1 if i < steps % BLOCKS else 0) for i in range(BLOCKS)]
    times = []
    for k in per_block:
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(k):
            loss = step()
        sync()
        times.append(slowest((time.perf_counter() - t0) / k))
    final = dist.all_reduce(gg.constant(loss.numpy(), dtype="float64"), op="mean").item()
    # the all-reduce alone, on a buffer of the gradients' size
    buf = (cp or np).zeros(sum(a.size for a in w2_init()) + 4, np.float32)
    ar = []
    for _ in range(20):
        dist.barrier()
        t0 = time.perf_counter()
        allreduce_(w, buf, "sum")
        sync()
        ar.append(slowest(time.perf_counter() - t0))
    if r == 0:
        Path(out).write_text(json.dumps({
            "ranks": n, "size": size, "rows_per_rank": size // n, "steps": steps, "device": device,
            "median_s": statistics.median(times), "times_s": times,
            "allreduce_s": statistics.median(ar), "allreduce_bytes": int(buf.nbytes), "loss": final,
        }))


# -- the driver ---------------------------------------------------------------------------------------


def run_job(ranks: int, size: int, args) -> dict:
    from gpugrad.distributed import launch

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = launch.mpiexec_command(ranks, [sys.executable, "-m", "bench.distributed", "--worker",
                                             str(size), str(args.steps), args.device, str(out)])
        env = launch.environment()
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
        if done.returncode != 0 or not out.exists():
            tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
            raise RuntimeError(f"{ranks}-rank job failed (exit {done.returncode}):\n" + "\n".join(tail))
        return json.loads(out.read_text())


def table(rows) -> str:
    head = (f"{'batch':>7} {'ranks':>5} {'rows/rank':>9} {'time/step':>11} {'all-reduce':>11} "
            f"{'speedup':>8} {'efficiency':>10} {'loss':>10}  check")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['size']:>7} {r['ranks']:>5} {r['rows_per_rank']:>9} {r['median_s'] * 1e3:>9.2f}ms "
            f"{r['allreduce_s'] * 1e3:>9.3f}ms {r['speedup']:>7.2f}x {r['efficiency']:>9.0%} "
            f"{r['loss']:>10.5f}  {r['check']}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    if args.device == "cpu" and args.ranks[-1] * args.threads > cores:
        log(f"bench: {args.ranks[-1]} ranks x {args.threads} thread(s) on {cores} cores: the ranks share cores, "
            "so the efficiency shown is a floor")
    rows = []
    for size in args.sizes:
        base = None
        for ranks in args.ranks:
            log(f"bench: W2 B={size} on {ranks} rank(s) ...")
            res = run_job(ranks, size, args)
            base = base or res
            res["speedup"] = base["median_s"] / res["median_s"]
            res["efficiency"] = res["speedup"] / ranks
            ok = abs(res["loss"] - base["loss"]) <= 1e-4 * max(1.0, abs(base["loss"]))
            res["check"] = "ok" if ok else f"MISMATCH (1 rank: {base['loss']:.6f})"
            rows.append(res)
            log(f"bench:   {res['median_s'] * 1e3:.2f} ms/step, all-reduce {res['allreduce_s'] * 1e3:.3f} ms, "
                f"efficiency {res['efficiency']:.0%}")
    text = table(rows)
    print(text)
    from bench import report

    date = time.strftime("%Y-%m-%d")
    record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:] if argv is None else list(argv),
              "cores": cores, "threads_per_rank": args.threads, "load_average": report.load_average(),
              "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.tag or f"dist-{args.device}-{date}"
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1))
    (out / f"{stem}.txt").write_text(text + "\n")
    log(f"wrote {out / stem}.json and .txt")
    return 0 if all(r["check"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        sys.exit(main())
