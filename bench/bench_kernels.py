"""Benchmarks of gpugrad's CUDA kernels (forward + backward) on large float32 tensors.

For every operation this times, with CUDA events after a warm-up (median of ``--repeats`` runs):

* ``gpugrad``: the kernels of ``gpugrad.kernels``;
* ``cupy``: the same math composed from generic CuPy calls;
* ``torch``: ``torch.nn.functional`` forward and ``torch.autograd`` backward (when torch imports).

Each row reports the fewest bytes the operation must move (read inputs, write outputs, forward and
backward: 20 bytes per float32 element for activations, softmax, MSE and BCE; 12 for softmax
cross-entropy with integer labels, which keeps only each row's log-sum-exp), the achieved GB/s at
that floor and its fraction of a device-to-device copy measured in the same run.

Usage: ``python bench/bench_kernels.py --out bench/results/kernels.json`` (``--quick`` for small
tensors). Needs a CUDA GPU and CuPy; exits with status 2 and a message otherwise.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from gpugrad import backend as _backend  # noqa: E402
from gpugrad import kernels as K  # noqa: E402

ACT_N = 2**28
ROWS, COLS = 4096, 32768
QUICK_ACT_N = 2**22
QUICK_ROWS, QUICK_COLS = 256, 4096

#: bytes per element, forward + backward, at the fewest possible (float32; KERNELS.md)
FLOOR_BYTES_F32 = {
    "sigmoid": 20,
    "tanh": 20,
    "relu": 20,
    "softmax": 20,
    "log_softmax": 20,
    "cross_entropy": 12,  # fwd reads z; bwd reads z, writes dz (labels and lse are per row)
    "cross_entropy_dense": 20,  # fwd reads z, t; bwd reads z, t, writes dz
    "mse": 20,
    "bce": 20,
    "bce_logits": 20,
}


@dataclass
class Row:
    op: str
    impl: str
    shape: list[int]
    dtype: str
    fwd_ms: float
    bwd_ms: float
    total_ms: float
    floor_bytes: int
    gbps: float
    frac_of_copy: float
    fwd_runs_ms: list[float] = field(default_factory=list)
    bwd_runs_ms: list[float] = field(default_factory=list)


def _cupy() -> Any:
    cp = _backend.cupy()
    if cp is None or not _backend.cuda_available():
        return None
    return cp


def _torch() -> Any:
    try:
        import torch  # noqa: PLC0415

        return torch if torch.cuda.is_available() else None
    except Exception:
        return None


def time_cuda(cp: Any, fn: Callable[[], Any], repeats: int, warmup: int) -> list[float]:
    """Milliseconds per call of ``fn`` (CuPy events on the current stream), after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    cp.cuda.Device().synchronize()
    runs = []
    for _ in range(repeats):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        runs.append(cp.cuda.get_elapsed_time(start, end))
    return runs


def time_torch(torch: Any, fn: Callable[[], Any], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        runs.append(start.elapsed_time(end))
    return runs


def measure_copy_gbps(cp: Any, nbytes: int = 2 << 30, repeats: int = 20) -> float:
    """Device-to-device copy rate, counting bytes read + written."""
    bufs = [cp.ones(nbytes // 4, dtype=cp.float32)]
    bufs.append(cp.empty_like(bufs[0]))
    runs = time_cuda(cp, lambda: cp.copyto(bufs[1], bufs[0]), repeats, 3)
    rate = 2 * bufs[0].nbytes / (statistics.median(runs) * 1e-3) / 1e9
    bufs.clear()
    cp.get_default_memory_pool().free_all_blocks()
    return rate


# ------------------------------------------------------------------------------------- operations
#
# Each builder gets (cp, shape) and returns {impl: (fwd, bwd)}: fwd() runs the forward; bwd() the
# backward from what the forward saved (prepared once, outside the timing).


def _act_impls(cp: Any, torch: Any, op: str, n: int) -> dict[str, tuple[Callable, Callable]]:
    rng = cp.random.default_rng(0)
    x = rng.standard_normal(n, dtype=cp.float32)
    gy = rng.standard_normal(n, dtype=cp.float32)
    y = cp.empty_like(x)
    gx = cp.empty_like(x)
    fwd_k = {"sigmoid": K.sigmoid_fwd, "tanh": K.tanh_fwd, "relu": K.relu_fwd}[op]
    bwd_k = {"sigmoid": K.sigmoid_bwd, "tanh": K.tanh_bwd, "relu": K.relu_bwd}[op]
    saved = y if op != "relu" else x
    fwd_k(x, out=y)
    impls: dict[str, tuple[Callable, Callable]] = {
        "gpugrad": (lambda: fwd_k(x, out=y), lambda: bwd_k(saved, gy, out=gx)),
    }
    composed_fwd = {
        "sigmoid": lambda: 1 / (1 + cp.exp(-x)),
        "tanh": lambda: cp.tanh(x),
        "relu": lambda: cp.maximum(x, 0),
    }[op]
    composed_bwd = {
        "sigmoid": lambda: gy * y * (1 - y),
        "tanh": lambda: gy * (1 - y * y),
        "relu": lambda: cp.where(x > 0, gy, 0),
    }[op]
    impls["cupy"] = (composed_fwd, composed_bwd)
    if torch is not None:
        tf = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[op]
        impls["torch"] = _torch_pair(torch, lambda xt: tf(xt), [x], gy)
    return impls


def _torch_pair(torch: Any, f: Callable, inputs: list[Any], grad: Any, diff: tuple[int, ...] = (0,)):
    """(fwd, bwd) for torch: fwd builds the autograd graph, bwd differentiates it (graph retained)."""
    ts = [torch.from_dlpack(a) for a in inputs]
    for i in diff:
        ts[i] = ts[i].detach().requires_grad_(True)
    g = torch.from_dlpack(grad) if grad is not None else None
    state: dict[str, Any] = {"out": f(*ts)}

    def fwd() -> None:
        state["out"] = f(*ts)

    def bwd() -> None:
        torch.autograd.grad(state["out"], [ts[i] for i in diff], g, retain_graph=True)

    return fwd, bwd


def _softmax_impls(cp: Any, torch: Any, op: str, rows: int, cols: int):
    rng = cp.random.default_rng(1)
    x = rng.standard_normal((rows, cols), dtype=cp.float32)
    gy = rng.standard_normal((rows, cols), dtype=cp.float32)
    y = cp.empty_like(x)
    gx = cp.empty_like(x)
    log = op == "log_softmax"
    fwd_k = K.log_softmax_fwd if log else K.softmax_fwd
    bwd_k = K.log_softmax_bwd if log else K.softmax_bwd
    fwd_k(x, out=y)
    impls = {"gpugrad": (lambda: fwd_k(x, out=y), lambda: bwd_k(y, gy, out=gx))}

    def composed_fwd():
        m = x.max(-1, keepdims=True)
        if log:
            return x - (m + cp.log(cp.exp(x - m).sum(-1, keepdims=True)))
        e = cp.exp(x - m)
        return e / e.sum(-1, keepdims=True)

    def composed_bwd():
        if log:
            return gy - cp.exp(y) * gy.sum(-1, keepdims=True)
        return y * (gy - (gy * y).sum(-1, keepdims=True))

    impls["cupy"] = (composed_fwd, composed_bwd)
    if torch is not None:
        F = torch.nn.functional
        tf = F.log_softmax if log else F.softmax
        impls["torch"] = _torch_pair(torch, lambda xt: tf(xt, dim=-1), [x], gy)
    return impls


def _ce_impls(cp: Any, torch: Any, rows: int, cols: int, dense: bool):
    rng = cp.random.default_rng(2)
    z = rng.standard_normal((rows, cols), dtype=cp.float32)
    labels = rng.integers(0, cols, rows).astype(cp.int64)
    g = cp.full(rows, 1.0 / rows, dtype=cp.float32)
    dz = cp.empty_like(z)
    ar = cp.arange(rows)
    if dense:
        t = cp.zeros((rows, cols), dtype=cp.float32)
        t[ar, labels] = 1
        loss, lse = K.softmax_ce_fwd(z, t)
        impls = {
            "gpugrad": (lambda: K.softmax_ce_fwd(z, t, out=(loss, lse)), lambda: K.softmax_ce_bwd(z, lse, t, g, out=dz))
        }
    else:
        loss, lse = K.softmax_ce_sparse_fwd(z, labels)
        impls = {
            "gpugrad": (
                lambda: K.softmax_ce_sparse_fwd(z, labels, out=(loss, lse)),
                lambda: K.softmax_ce_sparse_bwd(z, lse, labels, g, out=dz),
            )
        }

    def composed_fwd():
        m = z.max(-1, keepdims=True)
        lse_c = (m + cp.log(cp.exp(z - m).sum(-1, keepdims=True)))[:, 0]
        if dense:
            return lse_c * t.sum(-1) - (t * z).sum(-1), lse_c
        return lse_c - z[ar, labels], lse_c

    def composed_bwd():
        p = cp.exp(z - lse[:, None])
        if dense:
            return g[:, None] * (p * t.sum(-1, keepdims=True) - t)
        p[ar, labels] -= 1
        p *= g[:, None]
        return p

    impls["cupy"] = (composed_fwd, composed_bwd)
    if torch is not None:
        F = torch.nn.functional
        if dense:
            impls["torch"] = _torch_pair(torch, lambda zt, tt: F.cross_entropy(zt, tt), [z, t], None)
        else:
            impls["torch"] = _torch_pair(torch, lambda zt, lt: F.cross_entropy(zt, lt), [z, labels], None)
    return impls


def _loss_impls(cp: Any, torch: Any, op: str, rows: int, cols: int):
    rng = cp.random.default_rng(3)
    if op == "mse":
        t = rng.standard_normal((rows, cols), dtype=cp.float32)
        x = rng.standard_normal((rows, cols), dtype=cp.float32)
    elif op == "bce":
        t = rng.random((rows, cols), dtype=cp.float32)
        x = rng.random((rows, cols), dtype=cp.float32) * 0.98 + 0.01
    else:
        t = rng.random((rows, cols), dtype=cp.float32)
        x = rng.standard_normal((rows, cols), dtype=cp.float32) * 3
    g = cp.full(rows, 1.0 / rows, dtype=cp.float32)
    loss = cp.empty(rows, dtype=cp.float32)
    dx = cp.empty_like(x)
    eps = 1e-7
    if op == "mse":
        gk = (lambda: K.mse_fwd(t, x, out=loss), lambda: K.mse_bwd(t, x, g, out=dx))

        def cf():
            return ((x - t) ** 2).mean(-1)

        def cb():
            return 2 * (x - t) / cols * g[:, None]

    elif op == "bce":
        gk = (lambda: K.bce_fwd(t, x, eps, out=loss), lambda: K.bce_bwd(t, x, g, eps, out=dx))

        def cf():
            pc = cp.clip(x, eps, 1 - eps)
            return (-(t * cp.log(pc) + (1 - t) * cp.log(1 - pc))).mean(-1)

        def cb():
            inside = (x > eps) & (x < 1 - eps)
            return cp.where(inside, g[:, None] / cols * (x - t) / (x * (1 - x)), 0)

    else:
        gk = (lambda: K.bce_logits_fwd(t, x, out=loss), lambda: K.bce_logits_bwd(t, x, g, out=dx))

        def cf():
            return (cp.maximum(x, 0) - x * t + cp.log1p(cp.exp(-cp.abs(x)))).mean(-1)

        def cb():
            return g[:, None] / cols * (1 / (1 + cp.exp(-x)) - t)

    impls = {"gpugrad": gk, "cupy": (cf, cb)}
    if torch is not None:
        F = torch.nn.functional
        f = {
            "mse": lambda xt, tt: F.mse_loss(xt, tt),
            "bce": lambda xt, tt: F.binary_cross_entropy(xt, tt),
            "bce_logits": lambda xt, tt: F.binary_cross_entropy_with_logits(xt, tt),
        }[op]
        impls["torch"] = _torch_pair(torch, f, [x, t], None)
    return impls


# ----------------------------------------------------------------------------------------- driver


def bench_op(cp: Any, torch: Any, op: str, quick: bool, repeats: int, warmup: int, copy_gbps: float) -> list[Row]:
    n_act = QUICK_ACT_N if quick else ACT_N
    rows, cols = (QUICK_ROWS, QUICK_COLS) if quick else (ROWS, COLS)
    if op in ("sigmoid", "tanh", "relu"):
        shape = [n_act]
        impls = _act_impls(cp, torch, op, n_act)
    elif op in ("softmax", "log_softmax"):
        shape = [rows, cols]
        impls = _softmax_impls(cp, torch, op, rows, cols)
    elif op in ("cross_entropy", "cross_entropy_dense"):
        shape = [rows, cols]
        impls = _ce_impls(cp, torch, rows, cols, dense=op == "cross_entropy_dense")
    else:
        shape = [rows, cols]
        impls = _loss_impls(cp, torch, op, rows, cols)
    floor = FLOOR_BYTES_F32[op] * int(np.prod(shape))
    out = []
    for impl, (fwd, bwd) in impls.items():
        timer = time_torch if impl == "torch" else time_cuda
        lib = torch if impl == "torch" else cp
        f_runs = timer(lib, fwd, repeats, warmup)
        b_runs = timer(lib, bwd, repeats, warmup)
        f_ms, b_ms = statistics.median(f_runs), statistics.median(b_runs)
        total = f_ms + b_ms
        gbps = floor / (total * 1e-3) / 1e9
        out.append(
            Row(
                op=op,
                impl=impl,
                shape=shape,
                dtype="float32",
                fwd_ms=round(f_ms, 4),
                bwd_ms=round(b_ms, 4),
                total_ms=round(total, 4),
                floor_bytes=floor,
                gbps=round(gbps, 1),
                frac_of_copy=round(gbps / copy_gbps, 3),
                fwd_runs_ms=[round(v, 4) for v in f_runs],
                bwd_runs_ms=[round(v, 4) for v in b_runs],
            )
        )
    del impls
    cp.get_default_memory_pool().free_all_blocks()
    if torch is not None:
        torch.cuda.empty_cache()
    return out


def first_call_seconds(cp: Any) -> dict[str, float]:
    """Wall time of the first launch of each module (NVRTC compile or disk-cache load, plus load)."""
    x = cp.ones((4, 8), dtype=cp.float32)
    lab = cp.zeros(4, dtype=cp.int64)
    probes = {
        "activations": lambda: K.sigmoid_fwd(x),
        "softmax": lambda: K.softmax_fwd(x),
        "losses": lambda: K.softmax_ce_sparse_fwd(x, lab),
    }
    out = {}
    for module, probe in probes.items():
        t0 = time.perf_counter()
        probe()
        cp.cuda.Device().synchronize()
        out[module] = round(time.perf_counter() - t0, 3)
    return out


OPS = tuple(FLOOR_BYTES_F32)


def environment(cp: Any, torch: Any) -> dict[str, Any]:
    dev = cp.cuda.runtime.getDevice()
    props = cp.cuda.runtime.getDeviceProperties(dev)
    name = props["name"]
    return {
        "device": name.decode() if isinstance(name, bytes) else str(name),
        "driver_version": cp.cuda.runtime.driverGetVersion(),
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
        "cupy_version": cp.__version__,
        "torch_version": getattr(torch, "__version__", None) if torch is not None else None,
        "numpy_version": np.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def run(ops: tuple[str, ...] = OPS, quick: bool = False, repeats: int = 20, warmup: int = 3, use_torch: bool = True):
    """All measurements as a JSON-ready dict; raises RuntimeError without a GPU."""
    cp = _cupy()
    if cp is None:
        raise RuntimeError("no usable CUDA GPU (CuPy missing or no device answers)")
    torch = _torch() if use_torch else None
    result: dict[str, Any] = environment(cp, torch)
    result["first_call_s"] = first_call_seconds(cp)
    copy_gbps = measure_copy_gbps(cp, (256 << 20) if quick else (2 << 30))
    result["copy_gbps"] = round(copy_gbps, 1)
    result["settings"] = {"quick": quick, "repeats": repeats, "warmup": warmup}
    rows: list[dict[str, Any]] = []
    for op in ops:
        for row in bench_op(cp, torch, op, quick, repeats, warmup, copy_gbps):
            rows.append(asdict(row))
            print(
                f"{row.op:20s} {row.impl:8s} fwd {row.fwd_ms:8.3f} ms  bwd {row.bwd_ms:8.3f} ms  "
                f"{row.gbps:7.1f} GB/s  {100 * row.frac_of_copy:5.1f}% of copy",
                flush=True,
            )
    result["rows"] = rows
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="small tensors, for a smoke run")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    args = parser.parse_args(argv)
    ops = tuple(o for o in args.ops.split(",") if o)
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        parser.error(f"unknown ops {unknown}; choose from {OPS}")
    if _cupy() is None:
        print(
            "bench_kernels: no usable CUDA GPU (CuPy missing or no device answers); nothing to measure", file=sys.stderr
        )
        return 2
    result = run(ops, args.quick, max(1, args.repeats), max(0, args.warmup), not args.no_torch)
    print(f"device: {result['device']}; copy {result['copy_gbps']} GB/s; first calls {result['first_call_s']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
