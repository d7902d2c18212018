"""Benchmarks of gpugrad's CUDA kernels, forward + backward, with the bytes each op must move.

Every row is one operation at one shape through one implementation:

* ``kernels``: the launch wrappers of ``gpugrad.kernels`` called directly;
* ``gpugrad``: the public ops (``gg.softmax``, ``gg.nn.functional.cross_entropy``, ...) forward, and
  ``gg.autograd.grad`` backward: what a user gets, Python overhead included;
* ``torch``: ``torch.nn.functional`` forward and ``torch.autograd.grad`` backward;
* ``composed``: the same math written with generic array calls (CuPy, or NumPy on the CPU).

Bytes per element, forward + backward, the fewest the op must move (``s`` = itemsize, 4 for float32;
each input read once, each output written once):

====================  ===================================  =========================================  ======
op                    forward                              backward                                   f32
====================  ===================================  =========================================  ======
sigmoid, tanh         read x, write y: 2s                  read y, gy, write gx: 3s                   20 B
relu                  read x, write y: 2s                  read x, gy, write gx: 3s                   20 B
(log_)softmax         read x, write y: 2s                  read y, gy, write gx: 3s                   20 B
cross_entropy         read z: 1s                           read z, write dz: 2s                       12 B
(integer labels)      + per row: read label (8 B), write loss and lse (2s); backward reads label, lse, g
cross_entropy_dense   read z, t: 2s                        read z, t, write dz: 3s                    20 B
                      + per row: write loss and lse (2s); backward reads lse and g (2s)
mse, bce, bce_logits  read p, t: 2s                        read p, t, write dp: 3s                    20 B
                      + per row: write loss (1s); backward reads g (1s)
====================  ===================================  =========================================  ======

A row's achieved bandwidth is those bytes over its measured time, beside the device-to-device copy
rate measured in the same run (bytes read + written). Timing follows the usual method: CUDA events
around each call after a warm-up, medians of ``--repeats`` calls. When one set of inputs fits in
about three L2s, several sets are made and the calls rotate through them, so that the numbers are not
those of the cache. Targets (an H100's, from the kernels' design goals) are shown next to the rows
they concern as met/missed: activations >= 90% of the copy rate; softmax and log-softmax >= 85%;
cross-entropy at [4096, 32768] >= 85% and at most 0.8x PyTorch's time.

Usage: ``python bench/bench_kernels.py [--quick] [--out FILE.json]``; ``--device cpu`` times the
NumPy ``composed`` and CPU ``gpugrad`` rows instead (for trying the harness without a GPU).
Exits with status 2 and a message when CUDA is asked for and no GPU answers.
"""

from __future__ import annotations

import argparse
import json
import math
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

from bench import gpu_env  # noqa: E402

Shape = tuple[int, ...]
Pair = tuple[Callable[[], Any], Callable[[], Any]]

ACTIVATIONS = ("sigmoid", "tanh", "relu")
SOFTMAXES = ("softmax", "log_softmax")
ROW_LOSSES = ("mse", "bce", "bce_logits")
OPS = (*ACTIVATIONS, *SOFTMAXES, "cross_entropy", "cross_entropy_dense", *ROW_LOSSES)
IMPLS = ("kernels", "gpugrad", "torch", "composed")
BIG = (4096, 32768)

SHAPES: dict[str, dict[str, list[Shape]]] = {
    "full": {
        **{op: [(2**28,)] for op in ACTIVATIONS},
        **{op: [BIG] for op in (*SOFTMAXES, "cross_entropy_dense", *ROW_LOSSES)},
        "cross_entropy": [BIG, (8, 50257), (32768, 128)],
    },
    "quick": {
        **{op: [(2**22,)] for op in ACTIVATIONS},
        **{op: [(256, 4096)] for op in (*SOFTMAXES, "cross_entropy_dense", *ROW_LOSSES)},
        "cross_entropy": [(256, 4096), (8, 50257), (4096, 128)],
    },
    "tiny": {  # the CPU trial of the harness
        **{op: [(4096,)] for op in ACTIVATIONS},
        **{op: [(16, 256)] for op in (*SOFTMAXES, "cross_entropy_dense", *ROW_LOSSES)},
        "cross_entropy": [(16, 256), (2, 1000)],
    },
}


# ------------------------------------------------------------------------------------------ bytes


@dataclass(frozen=True)
class Traffic:
    """The fewest bytes an op moves: ``fwd_elem`` + ``bwd_elem`` itemsizes per element, plus per row
    ``row_label_bytes`` (integer labels, both passes) and ``row_items`` itemsizes (loss, lse, g)."""

    fwd: str
    bwd: str
    fwd_elem: int
    bwd_elem: int
    row_label_bytes: int = 0
    row_items: int = 0

    def bytes(self, shape: Shape, itemsize: int) -> int:
        elems = math.prod(shape)
        rows = elems // shape[-1] if len(shape) > 1 else 0
        return elems * (self.fwd_elem + self.bwd_elem) * itemsize + rows * (
            self.row_label_bytes + self.row_items * itemsize
        )

    def split(self, shape: Shape, itemsize: int) -> tuple[int, int]:
        """(forward bytes, backward bytes), each with its share of the per-row terms."""
        total = self.bytes(shape, itemsize)
        elems = math.prod(shape)
        fwd = elems * self.fwd_elem * itemsize
        bwd = elems * self.bwd_elem * itemsize
        rest = total - fwd - bwd
        return fwd + rest // 2, bwd + rest - rest // 2

    def formula(self, itemsize: int) -> str:
        per = (self.fwd_elem + self.bwd_elem) * itemsize
        text = f"fwd {self.fwd} ({self.fwd_elem}s) + bwd {self.bwd} ({self.bwd_elem}s) = {per} B/elem"
        per_row = self.row_label_bytes + self.row_items * itemsize
        if per_row:
            text += f" + {per_row} B/row"
        return text


_ACT = Traffic("read x, write y", "read y, gy, write gx", 2, 3)
TRAFFIC: dict[str, Traffic] = {
    "sigmoid": _ACT,
    "tanh": _ACT,
    "relu": Traffic("read x, write y", "read x, gy, write gx", 2, 3),
    "softmax": _ACT,
    "log_softmax": _ACT,
    # per row: fwd reads the label, writes loss and lse; bwd reads label, lse and g
    "cross_entropy": Traffic("read z", "read z, write dz", 1, 2, row_label_bytes=16, row_items=4),
    "cross_entropy_dense": Traffic("read z, t", "read z, t, write dz", 2, 3, row_items=4),
    "mse": Traffic("read p, t", "read p, t, write dp", 2, 3, row_items=2),
    "bce": Traffic("read p, t", "read p, t, write dp", 2, 3, row_items=2),
    "bce_logits": Traffic("read z, t", "read z, t, write dz", 2, 3, row_items=2),
}


# ---------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    text: str
    min_frac_of_copy: float
    max_vs_torch: float | None = None


def target_for(op: str, shape: Shape) -> Target | None:
    """The H100 target for ``op`` at ``shape`` (full-size shapes only), or None."""
    if op in ACTIVATIONS and shape == (2**28,):
        return Target(">=90% of copy", 0.90)
    if op in SOFTMAXES and shape == BIG:
        return Target(">=85% of copy", 0.85)
    if op == "cross_entropy" and shape == BIG:
        return Target(">=85% of copy, <=0.8x torch", 0.85, 0.8)
    return None


def assess(row: dict[str, Any]) -> str | None:
    """'met' / 'missed' for a ``kernels`` or ``gpugrad`` row with a target; None otherwise."""
    tgt = target_for(row["op"], tuple(row["shape"]))
    if tgt is None or row["impl"] not in ("kernels", "gpugrad") or row.get("error"):
        return None
    ok = row["frac_of_copy"] is not None and row["frac_of_copy"] >= tgt.min_frac_of_copy
    if tgt.max_vs_torch is not None:
        ok = ok and row.get("vs_torch") is not None and row["vs_torch"] <= tgt.max_vs_torch
    return "met" if ok else "missed"


# ---------------------------------------------------------------------------------------- timing


class Clock:
    """Times calls: CUDA events (CuPy's or torch's) on a GPU, ``perf_counter`` on the CPU."""

    def __init__(self, kind: str, lib: Any = None) -> None:
        self.kind = kind  # "cupy", "torch" or "host"
        self.lib = lib

    def sync(self) -> None:
        if self.kind == "cupy":
            self.lib.cuda.Device().synchronize()
        elif self.kind == "torch":
            self.lib.cuda.synchronize()

    def time(self, fns: list[Callable[[], Any]], repeats: int, warmup: int) -> list[float]:
        """Milliseconds of each of ``repeats`` calls, rotating through ``fns``, after ``warmup`` calls
        (at least one of each)."""
        n = len(fns)
        for i in range(max(warmup, n)):
            fns[i % n]()
        self.sync()
        runs = []
        for i in range(repeats):
            fn = fns[i % n]
            if self.kind == "host":
                t0 = time.perf_counter()
                fn()
                runs.append((time.perf_counter() - t0) * 1e3)
                continue
            if self.kind == "cupy":
                start, end = self.lib.cuda.Event(), self.lib.cuda.Event()
            else:
                start = self.lib.cuda.Event(enable_timing=True)
                end = self.lib.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            runs.append(self.lib.cuda.get_elapsed_time(start, end) if self.kind == "cupy" else start.elapsed_time(end))
        return runs


def measure_copy_gbps(xp: Any, clock: Clock, nbytes: int, repeats: int = 20) -> float:
    """Copy rate of one array into another (``xp.copyto``), counting bytes read + written, GB/s."""
    src = xp.ones(nbytes // 4, dtype=xp.float32)
    dst = xp.empty_like(src)
    runs = clock.time([lambda: xp.copyto(dst, src)], repeats, 3)
    return 2 * src.nbytes / (statistics.median(runs) * 1e-3) / 1e9


# ---------------------------------------------------------------------------------------- inputs


def make_inputs(xp: Any, op: str, shape: Shape, seed: int) -> dict[str, Any]:
    """Fresh random float32 inputs for one set (never zeros: they hide unwritten outputs)."""
    rng = xp.random.default_rng(seed)
    f32 = xp.float32
    if op in ACTIVATIONS or op in SOFTMAXES:
        return {"x": rng.standard_normal(shape, dtype=f32), "gy": rng.standard_normal(shape, dtype=f32)}
    rows, cols = shape
    if op in ("cross_entropy", "cross_entropy_dense"):
        z = rng.standard_normal(shape, dtype=f32)
        labels = rng.integers(0, cols, rows).astype(xp.int64)
        inputs = {"z": z, "labels": labels}
        if op == "cross_entropy_dense":
            t = rng.random(shape, dtype=f32)
            inputs["t"] = t / t.sum(-1, keepdims=True)
        return inputs
    t = rng.random(shape, dtype=f32)
    if op == "mse":
        x = rng.standard_normal(shape, dtype=f32)
    elif op == "bce":
        x = rng.random(shape, dtype=f32) * f32(0.98) + f32(0.01)
    else:
        x = rng.standard_normal(shape, dtype=f32) * f32(3)
    return {"x": x, "t": t}


# ---------------------------------------------------------------------------------- implementations
#
# Each builder gets one set of inputs and returns (fwd, bwd): fwd() runs the forward, bwd() the
# backward from what a forward saved (one forward is run while building).


def build_kernels(op: str, a: dict[str, Any], xp: Any, torch: Any) -> Pair:
    from gpugrad import kernels as K  # noqa: PLC0415

    state: dict[str, Any] = {}
    if op in ACTIVATIONS or op in SOFTMAXES:
        fwd_k = getattr(K, f"{op}_fwd")
        bwd_k = getattr(K, f"{op}_bwd")
        x, gy = a["x"], a["gy"]
        state["y"] = fwd_k(x)
        saved = "x" if op == "relu" else "y"

        def fwd() -> None:
            state["y"] = fwd_k(x)

        def bwd() -> None:
            bwd_k(x if saved == "x" else state["y"], gy)

        return fwd, bwd
    rows = a[next(iter(a))].shape[0]
    g = xp.full(rows, 1.0 / rows, dtype=xp.float32)
    if op in ("cross_entropy", "cross_entropy_dense"):
        z = a["z"]
        # the forward returns (loss, *saved); the backward takes (z, *saved, target, g)
        if op == "cross_entropy":
            fwd_k, bwd_k, tgt = K.softmax_ce_sparse_fwd, K.softmax_ce_sparse_bwd, a["labels"]
        else:
            fwd_k, bwd_k, tgt = K.softmax_ce_fwd, K.softmax_ce_bwd, a["t"]
        state["out"] = fwd_k(z, tgt)

        def fwd() -> None:
            state["out"] = fwd_k(z, tgt)

        def bwd() -> None:
            bwd_k(z, *state["out"][1:], tgt, g)

        return fwd, bwd
    fwd_k, bwd_k = getattr(K, f"{op}_fwd"), getattr(K, f"{op}_bwd")
    x, t = a["x"], a["t"]
    return (lambda: fwd_k(t, x)), (lambda: bwd_k(t, x, g))


def _gpugrad_fn(op: str) -> Callable[..., Any]:
    import gpugrad as gg  # noqa: PLC0415

    losses = gg.losses
    return {
        "sigmoid": gg.sigmoid,
        "tanh": gg.tanh,
        "relu": gg.relu,
        "softmax": gg.softmax,
        "log_softmax": gg.log_softmax,
        "cross_entropy": lambda z, lab: gg.nn.functional.cross_entropy(z, lab),
        "cross_entropy_dense": lambda z, t: losses.categorical_crossentropy(t, z, from_logits=True),
        "mse": lambda x, t: losses.mse(t, x),
        "bce": lambda x, t: losses.binary_crossentropy(t, x),
        "bce_logits": lambda x, t: losses.binary_crossentropy(t, x, from_logits=True),
    }[op]


def _operands(op: str, a: dict[str, Any]) -> tuple[list[Any], Any]:
    """(arguments of the op, differentiated first; upstream gradient or None for a scalar loss)."""
    if op in ACTIVATIONS or op in SOFTMAXES:
        return [a["x"]], a["gy"]
    if op == "cross_entropy":
        return [a["z"], a["labels"]], None
    if op == "cross_entropy_dense":
        return [a["z"], a["t"]], None
    return [a["x"], a["t"]], None


def build_gpugrad(op: str, a: dict[str, Any], xp: Any, torch: Any) -> Pair:
    import gpugrad as gg  # noqa: PLC0415

    device = "cpu" if xp is np else "cuda"
    f = _gpugrad_fn(op)
    args, gy = _operands(op, a)
    ts = [gg.tensor(args[0], device=device, requires_grad=True)] + [gg.constant(v, device=device) for v in args[1:]]
    gyt = None if gy is None else [gg.constant(gy, device=device)]
    state = {"y": f(*ts)}

    def fwd() -> None:
        state["y"] = f(*ts)

    def bwd() -> None:
        gg.autograd.grad(state["y"], [ts[0]], gyt, retain_graph=True)

    return fwd, bwd


def build_torch(op: str, a: dict[str, Any], xp: Any, torch: Any) -> Pair:
    F = torch.nn.functional
    f = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "softmax": lambda x: F.softmax(x, dim=-1),
        "log_softmax": lambda x: F.log_softmax(x, dim=-1),
        "cross_entropy": F.cross_entropy,
        "cross_entropy_dense": F.cross_entropy,
        "mse": lambda x, t: F.mse_loss(x, t),
        "bce": lambda x, t: F.binary_cross_entropy(x, t),
        "bce_logits": lambda x, t: F.binary_cross_entropy_with_logits(x, t),
    }[op]
    args, gy = _operands(op, a)
    ts = [torch.from_dlpack(v) for v in args]
    ts[0] = ts[0].detach().requires_grad_(True)
    g = None if gy is None else torch.from_dlpack(gy)
    state = {"y": f(*ts)}

    def fwd() -> None:
        state["y"] = f(*ts)

    def bwd() -> None:
        torch.autograd.grad(state["y"], [ts[0]], g, retain_graph=True)

    return fwd, bwd


def build_composed(op: str, a: dict[str, Any], xp: Any, torch: Any) -> Pair:
    if op in ACTIVATIONS:
        x, gy = a["x"], a["gy"]
        y = {"sigmoid": lambda: 1 / (1 + xp.exp(-x)), "tanh": lambda: xp.tanh(x), "relu": lambda: xp.maximum(x, 0)}
        yv = y[op]()
        bwd = {
            "sigmoid": lambda: gy * yv * (1 - yv),
            "tanh": lambda: gy * (1 - yv * yv),
            "relu": lambda: xp.where(x > 0, gy, 0),
        }[op]
        return y[op], bwd
    if op in SOFTMAXES:
        x, gy = a["x"], a["gy"]
        log = op == "log_softmax"

        def fwd() -> Any:
            m = x.max(-1, keepdims=True)
            if log:
                return x - (m + xp.log(xp.exp(x - m).sum(-1, keepdims=True)))
            e = xp.exp(x - m)
            return e / e.sum(-1, keepdims=True)

        yv = fwd()
        if log:
            return fwd, lambda: gy - xp.exp(yv) * gy.sum(-1, keepdims=True)
        return fwd, lambda: yv * (gy - (gy * yv).sum(-1, keepdims=True))
    if op in ("cross_entropy", "cross_entropy_dense"):
        return _composed_ce(op, a, xp)
    return _composed_row_loss(op, a, xp)


def _composed_ce(op: str, a: dict[str, Any], xp: Any) -> Pair:
    z, labels = a["z"], a["labels"]
    rows = z.shape[0]
    ar = xp.arange(rows)
    g = xp.full(rows, 1.0 / rows, dtype=z.dtype)
    dense = op == "cross_entropy_dense"
    t = a.get("t")

    def lse_of() -> Any:
        m = z.max(-1, keepdims=True)
        return (m + xp.log(xp.exp(z - m).sum(-1, keepdims=True)))[:, 0]

    def fwd() -> Any:
        lse = lse_of()
        if dense:
            return lse * t.sum(-1) - (t * z).sum(-1), lse
        return lse - z[ar, labels], lse

    lse = lse_of()

    def bwd() -> Any:
        p = xp.exp(z - lse[:, None])
        if dense:
            return g[:, None] * (p * t.sum(-1, keepdims=True) - t)
        p[ar, labels] -= 1
        p *= g[:, None]
        return p

    return fwd, bwd


def _composed_row_loss(op: str, a: dict[str, Any], xp: Any) -> Pair:
    x, t = a["x"], a["t"]
    rows, cols = x.shape
    g = xp.full(rows, 1.0 / rows, dtype=x.dtype)
    eps = 1e-7
    if op == "mse":
        return (lambda: ((x - t) ** 2).mean(-1)), (lambda: 2 * (x - t) / cols * g[:, None])
    if op == "bce":

        def fwd() -> Any:
            pc = xp.clip(x, eps, 1 - eps)
            return (-(t * xp.log(pc) + (1 - t) * xp.log(1 - pc))).mean(-1)

        def bwd() -> Any:
            inside = (x > eps) & (x < 1 - eps)
            return xp.where(inside, g[:, None] / cols * (x - t) / (x * (1 - x)), 0)

        return fwd, bwd
    return (
        lambda: (xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))).mean(-1),
        lambda: g[:, None] / cols * (1 / (1 + xp.exp(-x)) - t),
    )


BUILDERS: dict[str, Callable[[str, dict[str, Any], Any, Any], Pair]] = {
    "kernels": build_kernels,
    "gpugrad": build_gpugrad,
    "torch": build_torch,
    "composed": build_composed,
}


# ---------------------------------------------------------------------------------------- driver


@dataclass
class Row:
    op: str
    impl: str
    shape: list[int]
    dtype: str
    bytes_per_elem: float
    formula: str
    sets: int = 1
    fwd_ms: float | None = None
    bwd_ms: float | None = None
    total_ms: float | None = None
    fwd_gbps: float | None = None
    bwd_gbps: float | None = None
    gbps: float | None = None
    frac_of_copy: float | None = None
    vs_torch: float | None = None
    target: str | None = None
    target_status: str | None = None
    error: str | None = None
    fwd_runs_ms: list[float] = field(default_factory=list)
    bwd_runs_ms: list[float] = field(default_factory=list)


def input_sets(shape: Shape, traffic: Traffic, l2_bytes: int) -> int:
    """How many input sets to rotate through so that they do not all sit in L2 (1 to 64)."""
    if l2_bytes <= 0:
        return 1
    per_set = traffic.bytes(shape, 4)
    return max(1, min(64, math.ceil(3 * l2_bytes / per_set)))


@dataclass
class Context:
    """What one run measures with: array module, clocks, torch (or None), copy rate, L2 size."""

    xp: Any
    clock: Clock
    torch: Any = None
    torch_clock: Clock | None = None
    copy_gbps: float = 0.0
    l2_bytes: int = 0
    impls: tuple[str, ...] = IMPLS
    repeats: int = 20
    warmup: int = 3


def bench_shape(ctx: Context, op: str, shape: Shape) -> list[Row]:
    """Every implementation of ``op`` at ``shape``; a failing implementation gives a row with ``error``."""
    traffic = TRAFFIC[op]
    nbytes = traffic.bytes(shape, 4)
    fwd_bytes, bwd_bytes = traffic.split(shape, 4)
    n_sets = input_sets(shape, traffic, ctx.l2_bytes)
    sets = [make_inputs(ctx.xp, op, shape, seed) for seed in range(n_sets)]
    tgt = target_for(op, shape)
    rows: list[Row] = []
    for impl in ctx.impls:
        if impl == "torch" and ctx.torch is None:
            continue
        if impl == "kernels" and ctx.xp is np:
            continue
        row = Row(op, impl, list(shape), "float32", round(nbytes / math.prod(shape), 3), traffic.formula(4), n_sets)
        row.target = tgt.text if tgt else None
        try:
            pairs = [BUILDERS[impl](op, a, ctx.xp, ctx.torch) for a in sets]
            clock = ctx.torch_clock if impl == "torch" else ctx.clock
            assert clock is not None
            f_runs = clock.time([p[0] for p in pairs], ctx.repeats, ctx.warmup)
            b_runs = clock.time([p[1] for p in pairs], ctx.repeats, ctx.warmup)
            del pairs
        except Exception as exc:  # noqa: BLE001 - recorded in the row and shown in the table
            row.error = f"{type(exc).__name__}: {exc}"[:300]
            rows.append(row)
            continue
        f_ms, b_ms = statistics.median(f_runs), statistics.median(b_runs)
        row.fwd_ms, row.bwd_ms, row.total_ms = _sig(f_ms), _sig(b_ms), _sig(f_ms + b_ms)
        row.fwd_gbps = _sig(fwd_bytes / (f_ms * 1e-3) / 1e9)
        row.bwd_gbps = _sig(bwd_bytes / (b_ms * 1e-3) / 1e9)
        gbps = nbytes / ((f_ms + b_ms) * 1e-3) / 1e9
        row.gbps = _sig(gbps)
        row.frac_of_copy = _sig(gbps / ctx.copy_gbps) if ctx.copy_gbps else None
        row.fwd_runs_ms = [_sig(v) for v in f_runs]
        row.bwd_runs_ms = [_sig(v) for v in b_runs]
        rows.append(row)
    torch_row = next((r for r in rows if r.impl == "torch" and r.total_ms), None)
    for r in rows:
        if torch_row is not None and r.total_ms and r is not torch_row:
            r.vs_torch = _sig(r.total_ms / torch_row.total_ms, 3)
        r.target_status = assess(asdict(r))
    del sets
    _free(ctx)
    return rows


def _sig(x: float, digits: int = 4) -> float:
    """``x`` to ``digits`` significant digits (timings and rates keep their precision at any scale)."""
    return float(f"{x:.{digits}g}")


def _free(ctx: Context) -> None:
    if ctx.xp is not np:
        ctx.xp.get_default_memory_pool().free_all_blocks()
    if ctx.torch is not None:
        ctx.torch.cuda.empty_cache()


def _cupy() -> Any:
    try:
        from gpugrad import backend as _backend  # noqa: PLC0415

        cp = _backend.cupy()
        return cp if cp is not None and _backend.cuda_available() else None
    except Exception:  # noqa: BLE001
        return None


def _torch_cuda() -> Any:
    try:
        import torch  # noqa: PLC0415

        return torch if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


def make_context(
    device: str = "cuda",
    impls: tuple[str, ...] = IMPLS,
    repeats: int = 20,
    warmup: int = 3,
    copy_bytes: int = 2 << 30,
) -> Context:
    """A measuring context; measures the copy rate. Raises RuntimeError for ``cuda`` without a GPU."""
    if device == "cpu":
        ctx = Context(np, Clock("host"), impls=tuple(i for i in impls if i in ("gpugrad", "composed")))
    else:
        cp = _cupy()
        if cp is None:
            raise RuntimeError("no usable CUDA GPU (CuPy missing or no device answers)")
        torch = _torch_cuda() if "torch" in impls else None
        dev = cp.cuda.runtime.getDevice()
        l2 = int(cp.cuda.runtime.getDeviceProperties(dev)["l2CacheSize"])
        ctx = Context(cp, Clock("cupy", cp), torch, Clock("torch", torch) if torch else None, l2_bytes=l2, impls=impls)
    ctx.repeats, ctx.warmup = max(1, repeats), max(0, warmup)
    ctx.copy_gbps = _sig(measure_copy_gbps(ctx.xp, ctx.clock, copy_bytes))
    _free(ctx)
    return ctx


def plan(ops: tuple[str, ...] = OPS, size: str = "full") -> list[tuple[str, Shape]]:
    return [(op, shape) for op in ops for shape in SHAPES[size][op]]


def run(
    ops: tuple[str, ...] = OPS,
    quick: bool = False,
    repeats: int = 20,
    warmup: int = 3,
    impls: tuple[str, ...] = IMPLS,
    device: str = "cuda",
    size: str | None = None,
    on_row: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """All measurements as a JSON-ready dict; raises RuntimeError for ``cuda`` without a GPU.

    ``size``: ``full`` (default), ``quick`` (also ``quick=True``) or ``tiny``; ``on_row(row, result)``
    is called after each row with the result so far, for writing it as it grows.
    """
    size = size or ("quick" if quick else ("tiny" if device == "cpu" else "full"))
    ctx = make_context(device, impls, repeats, warmup, (64 << 20) if device == "cpu" else (2 << 30))
    result: dict[str, Any] = {
        "device": device,
        "size": size,
        "copy_gbps": ctx.copy_gbps,
        "l2_bytes": ctx.l2_bytes,
        "settings": {"repeats": ctx.repeats, "warmup": ctx.warmup, "impls": list(ctx.impls)},
        "traffic": {op: TRAFFIC[op].formula(4) for op in ops},
        "rows": [],
    }
    for op, shape in plan(ops, size):
        for row in bench_shape(ctx, op, shape):
            d = asdict(row)
            result["rows"].append(d)
            print(format_row(d, ctx.copy_gbps), flush=True)
            if on_row is not None:
                on_row(d, result)
    return result


# ------------------------------------------------------------------------------------------ text

HEADER = (
    f"{'op':20s} {'shape':>12s} {'impl':8s} {'fwd ms':>8s} {'bwd ms':>8s} {'B/elem':>6s} "
    f"{'GB/s':>7s} {'%copy':>6s} {'vs torch':>8s}  target"
)


def _shape_text(shape: list[int]) -> str:
    return "x".join(str(s) for s in shape)


def format_row(r: dict[str, Any], copy_gbps: float | None = None) -> str:
    head = f"{r['op']:20s} {_shape_text(r['shape']):>12s} {r['impl']:8s}"
    if r.get("error"):
        return f"{head} error: {r['error']}"
    frac = f"{100 * r['frac_of_copy']:5.1f}%" if r.get("frac_of_copy") is not None else "     -"
    vs = f"{r['vs_torch']:7.2f}x" if r.get("vs_torch") is not None else "       -"
    tgt = f"{r['target']}: {r['target_status']}" if r.get("target_status") else ""
    return (
        f"{head} {r['fwd_ms']:8.3f} {r['bwd_ms']:8.3f} {r['bytes_per_elem']:6.1f} {r['gbps']:7.1f} {frac} {vs}  {tgt}"
    )


def format_table(result: dict[str, Any]) -> str:
    lines = [f"device-to-device copy: {result['copy_gbps']} GB/s (bytes read + written)", HEADER]
    lines += [format_row(r, result["copy_gbps"]) for r in result["rows"]]
    lines.append(format_legend(result))
    return "\n".join(lines)


def format_legend(result: dict[str, Any]) -> str:
    """The bytes-per-element formula of each op in ``result``."""
    lines = ["bytes per element, forward + backward (float32):"]
    lines += [f"  {op:20s} {text}" for op, text in result.get("traffic", {}).items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="smaller tensors")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}")
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {','.join(IMPLS)}")
    args = parser.parse_args(argv)
    ops = tuple(o for o in args.ops.split(",") if o)
    impls = tuple(i for i in args.impls.split(",") if i)
    bad = [o for o in ops if o not in OPS] + [i for i in impls if i not in IMPLS]
    if bad:
        parser.error(f"unknown ops/impls {bad}; ops: {OPS}; impls: {IMPLS}")
    if args.device == "cuda" and _cupy() is None:
        print("bench_kernels: no usable CUDA GPU (CuPy missing or no device answers); nothing to measure",
              file=sys.stderr)
        return 2
    print(HEADER, flush=True)
    result = run(ops, args.quick, args.repeats, args.warmup, impls, args.device)
    result["environment"] = gpu_env.environment(gpu=args.device == "cuda")
    print(f"device-to-device copy: {result['copy_gbps']} GB/s (bytes read + written)")
    print(format_legend(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
