"""Launches and bytes per step on the simulated CUDA device: ``GPUGRAD_SIMULATE_CUDA=1 python -m bench.sim_counts``
(``python -m bench`` on the simulated device writes the same table beside its record).

For W1, W2 (B = 64 and 16,384) and W3, eager and under ``gg.jit``, and for every kernel op: kernel
launches per step, CUDA graph launches, device-to-host reads, the bytes the step's kernels read and
write (the sizes of the arrays each launch is given), and the byte floor of that work (each input
read once, each output written once). These are counts of a simulation, never measured times: they
show where launches and traffic go, and what a GPU run should then confirm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORKLOADS: tuple[tuple[str, int], ...] = (("W1", 10**6), ("W2", 64), ("W2", 16384), ("W3", 1000))
#: every kernel op once, on [rows, cols] float32 (a row layout of several rows per block)
OP_SHAPE = (512, 1000)


def _floor_workload(case: Any) -> int:
    """Each input read once, each output written once: data and parameters in, parameters and the
    loss (W3: the sum and the gradient) out."""
    gg = case.gg
    params = sum(p.data.nbytes for p in case.params)
    if case.workload == "W3":
        return 2 * case.x.data.nbytes + 4
    data = sum(
        t.data.nbytes
        for t in (getattr(case, "x", None), getattr(case, "y", None), getattr(case, "labels", None))
        if isinstance(t, gg.Tensor)
    )
    return data + 2 * params + 4


def count_workload(workload: str, size: int, backend: str, warmup: int = 2) -> dict[str, Any]:
    from bench import workloads as W  # noqa: PLC0415
    from gpugrad.testing import simulated_cuda as sim  # noqa: PLC0415

    case = W.make_case(workload, backend, "cuda", size)
    for _ in range(warmup):
        case.step()
    with sim.counters() as c:
        case.step()
    moved = c.bytes_read + c.bytes_written
    floor = _floor_workload(case)
    return {
        "what": f"{workload} {W.WORKLOADS[workload].size_name}={size}",
        "backend": backend,
        "launches": c.launches,
        "graph_launches": c.graph_launches,
        "syncs": c.syncs,
        "bytes": moved,
        "floor_bytes": floor,
        "over_floor": round(moved / floor, 2),
    }


def _op_cases() -> list[tuple[str, Callable[[Any], tuple], int]]:
    """(kernel op, its arguments from the array module, how many arrays it writes)."""
    r, c = OP_SHAPE
    rng = np.random.default_rng(0)
    x = rng.standard_normal(OP_SHAPE).astype(np.float32)
    p = (1 / (1 + np.exp(-x))).astype(np.float32)
    t = (rng.random(OP_SHAPE) < 0.5).astype(np.float32)
    g = rng.standard_normal(OP_SHAPE).astype(np.float32)
    g_row = np.ones(r, np.float32)
    lab = rng.integers(0, c, r)

    def args(*arrays):
        return lambda cp: tuple(cp.asarray(a) for a in arrays)

    cases = [(f"{n}_fwd", args(x), 1) for n in ("sigmoid", "tanh", "relu", "softmax", "log_softmax")]
    cases += [(f"{n}_bwd", args(p, g), 1) for n in ("sigmoid", "tanh", "softmax", "log_softmax")]
    cases += [("relu_bwd", args(x, g), 1), ("sigmoid_bwd_bwd", args(p, g, g), 2), ("tanh_bwd_bwd", args(p, g, g), 2)]
    cases += [("mse_fwd", args(t, x), 1), ("mse_bwd", args(t, x, g_row), 1)]
    cases += [("bce_fwd", args(t, p), 1), ("bce_bwd", args(t, p, g_row), 1)]
    cases += [("bce_logits_fwd", args(t, x), 1), ("bce_logits_bwd", args(t, x, g_row), 1)]
    cases += [("softmax_ce_fwd", args(x, t), 4), ("softmax_ce_sparse_fwd", args(x, lab), 3)]
    return cases


def count_ops() -> list[dict[str, Any]]:
    from gpugrad import backend  # noqa: PLC0415
    from gpugrad import kernels as K  # noqa: PLC0415
    from gpugrad.testing import simulated_cuda as sim  # noqa: PLC0415

    cp = backend.cupy()
    rows = []
    for name, make, _nout in _op_cases():
        fn = getattr(K, name)
        arrays = make(cp)
        fn(*arrays)  # compiled and loaded before counting
        with sim.counters() as c:
            out = fn(*arrays)
        outs = [o for o in _flat(out)]
        floor = sum(a.nbytes for a in arrays) + sum(o.nbytes for o in outs)
        moved = c.bytes_read + c.bytes_written
        rows.append(
            {
                "what": f"{name} {OP_SHAPE[0]}x{OP_SHAPE[1]} f32",
                "backend": "kernel",
                "launches": c.launches,
                "graph_launches": 0,
                "syncs": c.syncs,
                "bytes": moved,
                "floor_bytes": floor,
                "over_floor": round(moved / floor, 2),
                "by_kernel": dict(c.by_kernel),
            }
        )
    return rows


def _flat(x):
    if isinstance(x, (tuple, list)):
        for e in x:
            yield from _flat(e)
    else:
        yield x


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| what | backend | launches | graph launches | device reads | bytes moved | byte floor | x floor |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    body = "\n".join(
        f"| {r['what']} | {r['backend']} | {r['launches']} | {r['graph_launches']} | {r['syncs']} | "
        f"{r['bytes']:,} | {r['floor_bytes']:,} | {r['over_floor']} |"
        for r in rows
    )
    return (
        "Simulated CUDA device (gpugrad.testing.simulated_cuda): counts per step, not timings.\n\n"
        + head
        + "\n"
        + body
        + "\n"
    )


def collect() -> list[dict[str, Any]]:
    rows = []
    for workload, size in WORKLOADS:
        for backend in ("gpugrad", "gpugrad-jit"):
            rows.append(count_workload(workload, size, backend))
    return rows + count_ops()


def write(out: Path, stem: str) -> list[Path]:
    rows = collect()
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}-simulated-counts.json", out / f"{stem}-simulated-counts.md"]
    paths[0].write_text(
        json.dumps({"kind": "simulated-counts", "note": "counts of a simulation, not timings", "rows": rows}, indent=1)
        + "\n"
    )
    paths[1].write_text(table(rows))
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench/results", help="folder for the JSON and the table")
    p.add_argument("--tag", default="simulated", help="file name stem")
    args = p.parse_args(argv)
    from gpugrad import backend  # noqa: PLC0415

    if not backend.simulated():
        print(
            "set GPUGRAD_SIMULATE_CUDA=1 (before Python starts) to count on the simulated CUDA device", file=sys.stderr
        )
        return 2
    os.environ.setdefault("GPUGRAD_DEVICE", "cuda")
    for path in write(Path(args.out), args.tag):
        print(f"wrote {path}")
    print(Path(args.out, f"{args.tag}-simulated-counts.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
