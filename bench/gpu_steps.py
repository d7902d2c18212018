"""The steps of the GPU check (``bench/gpu_check.py``), each run in its own process.

Every step gets a :class:`Writer` and puts what it has measured into its section of the JSON record
as soon as it has it, so that a step stopped at its time limit still leaves its first results.
``device`` is ``cuda`` on a GPU machine and ``cpu`` for the harness's trial run without one (tiny
sizes, NumPy path), which is what CI runs.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import gpu_env


def write_json(path: Path, obj: Any) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    os.replace(tmp, path)


class Writer:
    """Read-modify-write of one step's section of the record (only one process writes at a time)."""

    def __init__(self, path: Path, step: str) -> None:
        self.path = path
        self.step = step

    def _edit(self, fn: Callable[[dict[str, Any]], None]) -> None:
        record = json.loads(self.path.read_text())
        fn(record)
        write_json(self.path, record)

    def update(self, **fields: Any) -> None:
        self._edit(lambda r: r["steps"].setdefault(self.step, {}).setdefault("data", {}).update(fields))

    def set_top(self, key: str, value: Any) -> None:
        self._edit(lambda r: r.__setitem__(key, value))


# ------------------------------------------------------------------------------------------ env


def step_env(w: Writer, device: str) -> int:
    env = gpu_env.environment(gpu=device == "cuda")
    w.set_top("environment", env)
    w.update(device=env.get("device"), driver_version=env.get("driver_version"))
    print(json.dumps(env, indent=1, default=str))
    if device == "cuda" and "error" in env:
        print(f"no usable GPU: {env['error']}")
        return 1
    return 0


# ---------------------------------------------------------------------------------------- smoke
#
# Every kernel-backed op once through the public API, forward and gradient (second order for the
# activations that have a bwd_bwd kernel), against float64 NumPy on the same float32/float64 inputs.

TOL = {"float32": 1e-5, "float64": 1e-10}
EPS = 1e-7


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _lse(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """||got - ref|| / ||ref|| over the finite entries; inf when NaN/inf positions or values differ."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    fin = np.isfinite(ref)
    if not np.array_equal(np.isnan(got), np.isnan(ref)) or not np.array_equal(got[~fin & ~np.isnan(ref)],
                                                                              ref[~fin & ~np.isnan(ref)]):
        return float("inf")
    if not np.isfinite(got[fin]).all():
        return float("inf")
    den = np.linalg.norm(ref[fin])
    num = np.linalg.norm(got[fin] - ref[fin])
    return float(num / den) if den > 0 else float(num)


# name -> (family, kind, reference). Kinds: "ew" elementwise y = f(x), grad with upstream gy;
# "row" y = f(x) over the last axis; "loss" scalar mean loss of (x, target).
# A reference returns (y, dy/dx · upstream) in float64.
def _ref_sigmoid(x, gy):
    y = _sigmoid(x)
    return y, gy * y * (1 - y)


def _ref_tanh(x, gy):
    y = np.tanh(x)
    return y, gy * (1 - y * y)


def _ref_relu(x, gy):
    return np.maximum(x, 0), np.where(x > 0, gy, 0.0)  # relu'(NaN) = 0, as relu'(0)


def _ref_softmax(x, gy):
    y = _softmax(x)
    return y, y * (gy - (gy * y).sum(-1, keepdims=True))


def _ref_log_softmax(x, gy):
    y = x - _lse(x)[..., None]
    return y, gy - np.exp(y) * gy.sum(-1, keepdims=True)


def _ref_ce_sparse(z, labels):
    rows = z.shape[0]
    ar = np.arange(rows)
    p = _softmax(z)
    onehot = np.zeros_like(z)
    onehot[ar, labels] = 1
    return np.mean(_lse(z) - z[ar, labels]), (p - onehot) / rows


def _ref_ce_dense(z, t):
    rows = z.shape[0]
    st = t.sum(-1)
    return np.mean(_lse(z) * st - (t * z).sum(-1)), (_softmax(z) * st[:, None] - t) / rows


def _ref_mse(p, t):
    return np.mean((p - t) ** 2), 2 * (p - t) / p.size


def _ref_bce(p, t):
    pc = np.clip(p, EPS, 1 - EPS)
    loss = np.mean(-(t * np.log(pc) + (1 - t) * np.log(1 - pc)))
    inside = ~((p <= EPS) | (p >= 1 - EPS))
    return loss, np.where(inside, (p - t) / (p * (1 - p)), 0.0) / p.size


def _ref_bce_logits(z, t):
    loss = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
    return loss, (_sigmoid(z) - t) / z.size


#: the smoke check's op names that bench_kernels' table spells differently
_BENCH_NAMES = {
    "categorical_crossentropy": "cross_entropy_dense",
    "binary_crossentropy": "bce",
    "binary_crossentropy_logits": "bce_logits",
}


def _gg_op(name: str) -> Callable[..., Any]:
    """The gpugrad call the kernel benchmark times for ``name`` (one table for both)."""
    from bench import bench_kernels as BK  # noqa: PLC0415

    return BK._gpugrad_fn(_BENCH_NAMES.get(name, name))


SMOKE_OPS: dict[str, tuple[str, str, Callable[..., Any]]] = {
    "sigmoid": ("activations", "ew", _ref_sigmoid),
    "tanh": ("activations", "ew", _ref_tanh),
    "relu": ("activations", "ew", _ref_relu),
    "softmax": ("softmax", "row", _ref_softmax),
    "log_softmax": ("softmax", "row", _ref_log_softmax),
    "cross_entropy": ("losses", "loss", _ref_ce_sparse),
    "categorical_crossentropy": ("losses", "loss", _ref_ce_dense),
    "mse": ("losses", "loss", _ref_mse),
    "binary_crossentropy": ("losses", "loss", _ref_bce),
    "binary_crossentropy_logits": ("losses", "loss", _ref_bce_logits),
}
#: second derivative of the activations that have a bwd_bwd kernel, from y
SECOND = {
    "sigmoid": lambda y: y * (1 - y) * (1 - 2 * y),
    "tanh": lambda y: -2 * y * (1 - y * y),
}

EW_SHAPES = [(1,), (1001,), (3, 1025)]
ROW_SHAPES = [(4, 1), (5, 33), (3, 1025), (2, 4097), (1, 50257)]
NAN_SHAPE = (3, 33)  # NaN at the first column of row 1


def _inputs(name: str, kind: str, shape: tuple[int, ...], dtype: str, nan: bool, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32).astype(dtype)
    if name == "binary_crossentropy":
        x = (rng.random(shape) * 0.98 + 0.01).astype(np.float32).astype(dtype)
    if nan:
        x[(1, 0) if x.ndim == 2 else (0,)] = np.nan
    if kind != "loss":
        return [x, rng.standard_normal(shape).astype(np.float32).astype(dtype)]
    if name == "cross_entropy":
        return [x, rng.integers(0, shape[-1], shape[0])]
    t = rng.random(shape).astype(np.float32).astype(dtype)
    if name == "categorical_crossentropy":
        t = t / t.sum(-1, keepdims=True)
    return [x, t]


def check_op(name: str, shape: tuple[int, ...], dtype: str, device: str, nan: bool = False, seed: int = 0) -> dict:
    """One op at one shape and dtype against float64 NumPy: forward, gradient (and second order)."""
    import gpugrad as gg  # noqa: PLC0415

    family, kind, ref_fn = SMOKE_OPS[name]
    f = _gg_op(name)
    arrays = _inputs(name, kind, shape, dtype, nan, seed)
    a64 = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    res: dict[str, Any] = {"op": name, "shape": list(shape), "dtype": dtype, "nan": nan}
    x = gg.tensor(arrays[0], device=device, requires_grad=True)
    with np.errstate(all="ignore"):
        if kind == "loss":
            other = gg.constant(arrays[1], device=device)
            y = f(x, other)
            (gx,) = gg.autograd.grad(y, [x])
            ref_y, ref_g = ref_fn(*a64)
        else:
            gy = gg.constant(arrays[1], device=device)
            y = f(x)
            (gx,) = gg.autograd.grad(y, [x], [gy], create_graph=name in SECOND)
            ref_y, ref_g = ref_fn(*a64)
        errs = {"fwd": rel_err(y.numpy(), ref_y), "grad": rel_err(gx.numpy(), ref_g)}
        if name in SECOND:
            v = np.random.default_rng(seed + 1).standard_normal(shape).astype(dtype)
            (ggx,) = gg.autograd.grad(gg.sum(gx * gg.constant(v, device=device)), [x])
            errs["grad2"] = rel_err(ggx.numpy(), a64[1] * SECOND[name](_ref_y_for(name, a64[0])) * v)
    res.update({k: (v if np.isfinite(v) else "mismatch") for k, v in errs.items()})
    res["ok"] = all(v <= TOL[dtype] for v in errs.values())
    return res


def _ref_y_for(name: str, x: np.ndarray) -> np.ndarray:
    return _sigmoid(x) if name == "sigmoid" else np.tanh(x)


def smoke_plan() -> list[tuple[str, tuple[int, ...], str, bool]]:
    plan = []
    for name, (_, kind, _) in SMOKE_OPS.items():
        shapes = EW_SHAPES if kind == "ew" else ROW_SHAPES
        for dtype in ("float32", "float64"):
            for shape in shapes:
                plan.append((name, shape, dtype, False))
            plan.append((name, NAN_SHAPE, dtype, True))
    return plan


def _kernels_loaded() -> dict[str, Any]:
    """Which kernels the loader has loaded so far, of how many it lists (best effort)."""
    from gpugrad import kernels as K  # noqa: PLC0415

    loaded = sorted({key[1] for key in getattr(K, "_kernels", {}) if isinstance(key, tuple) and len(key) > 1})
    listed = []
    if hasattr(K, "kernel_names"):
        listed = [n for m in getattr(K, "MODULES", ()) for n in K.kernel_names(m)]
    return {"loaded": len(loaded), "listed": len(listed), "not_loaded": sorted(set(listed) - set(loaded))}


def step_smoke(w: Writer, device: str) -> int:
    from bench import bench_kernels as BK  # noqa: PLC0415

    checks: list[dict] = []
    first_s: dict[str, float] = {}
    failures = 0
    for i, (name, shape, dtype, nan) in enumerate(smoke_plan()):
        family = SMOKE_OPS[name][0]
        t0 = time.perf_counter()
        try:
            res = check_op(name, shape, dtype, device, nan, seed=i)
        except Exception as exc:  # noqa: BLE001 - a failed check is recorded and counted
            res = {"op": name, "shape": list(shape), "dtype": dtype, "nan": nan, "ok": False,
                   "error": f"{type(exc).__name__}: {exc}"[:300]}
        if family not in first_s:  # the first call compiles (or loads from the cache) the module
            first_s[family] = round(time.perf_counter() - t0, 3)
            w.update(first_call_s=first_s)
        checks.append(res)
        failures += not res["ok"]
        if not res["ok"]:
            print(f"smoke: FAILED {res}", flush=True)
        if i % 10 == 9:
            w.update(checks=checks, failures=failures)
    w.update(checks=checks, failures=failures, passed=len(checks) - failures)
    print(f"smoke: {len(checks) - failures}/{len(checks)} op checks within tolerance {TOL}", flush=True)
    if device == "cuda":
        w.update(kernels=_kernels_loaded())
    ctx = BK.make_context(device, ("kernels",) if device == "cuda" else ("composed",), repeats=10, warmup=2,
                          copy_bytes=(1 << 30) if device == "cuda" else (16 << 20))
    w.update(copy_gbps=ctx.copy_gbps)
    shape = BK.BIG if device == "cuda" else BK.SHAPES["tiny"]["softmax"][0]
    rows = BK.bench_shape(ctx, "softmax", shape)
    w.update(bandwidth=asdict(rows[0]) if rows else None)
    for r in rows:
        print(BK.format_row(asdict(r)), flush=True)
    print(f"smoke: copy {ctx.copy_gbps} GB/s", flush=True)
    return 1 if failures or (rows and rows[0].error) else 0


# ---------------------------------------------------------------------------------------- bench


def step_bench(w: Writer, device: str, size: str, repeats: int) -> int:
    from bench import bench_kernels as BK  # noqa: PLC0415

    impls = ("kernels", "gpugrad", "torch") if device == "cuda" else ("composed", "gpugrad")

    def on_row(row: dict, result: dict) -> None:
        w.update(**{k: v for k, v in result.items() if k != "rows"}, rows=result["rows"])

    result = BK.run(impls=impls, device=device, size=size, repeats=repeats, warmup=3, on_row=on_row)
    on_row({}, result)
    errors = [r for r in result["rows"] if r.get("error")]
    print(BK.format_legend(result))
    return 1 if errors else 0


# ------------------------------------------------------------------------------------------- W2


def _timed(case: Any, k: int) -> float:
    case.sync()
    t0 = time.perf_counter()
    for _ in range(k):
        case.step()
    case.sync()
    return (time.perf_counter() - t0) / k


def time_case(case: Any, budget_s: float, check_steps: int = 3) -> dict[str, Any]:
    """Loss after ``check_steps`` steps from the initial weights, then the median time per step over
    3 to 10 timed blocks (each >= 20 ms where steps are short) after two warm-up steps."""
    case.reset()
    for _ in range(check_steps):
        case.step()
    case.sync()
    losses = case.result().get("loss", [])
    case.reset()
    _timed(case, 2)  # warm-up
    one = max(_timed(case, 1), 1e-6)
    per_block = max(1, min(100, int(0.02 / one)))
    blocks = max(3, min(10, int(budget_s / (one * per_block))))
    times = [_timed(case, per_block) for _ in range(blocks)]
    return {
        "median_ms": _sig(1e3 * statistics.median(times)),
        "min_ms": _sig(1e3 * min(times)),
        "max_ms": _sig(1e3 * max(times)),
        "blocks": blocks,
        "steps_per_block": per_block,
        "loss_after_check": losses[-1] if losses else None,
    }


def _sig(x: float, digits: int = 4) -> float:
    """``x`` to ``digits`` significant digits."""
    return float(f"{x:.{digits}g}")


def _agree(a: float | None, b: float | None, rtol: float = 1e-3) -> bool | None:
    if a is None or b is None:
        return None
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def run_w2(w: Writer, cases: list[tuple[str, str, Callable[[], Any]]], budget_s: float) -> dict[str, dict]:
    """Measure each (label, device, make_case) in turn; a missing backend is recorded, not fatal."""
    from bench import workloads as W  # noqa: PLC0415

    out: dict[str, dict] = {}
    ref_loss = None
    for label, device, make in cases:
        try:
            case = make()
            res = time_case(case, budget_s if device == "cuda" else 2 * budget_s)
        except W.Unavailable as exc:
            res = {"skipped": str(exc)}
        except Exception as exc:  # noqa: BLE001 - recorded; the other backends still run
            res = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        res["device"] = device
        if "median_ms" in res:
            ref_loss = ref_loss if ref_loss is not None else res["loss_after_check"]
            res["agrees"] = _agree(ref_loss, res["loss_after_check"])
        out[label] = res
        w.update(cases=out)
        print(f"W2 {label:24s} {json.dumps(res)}", flush=True)
        case = None
    return out


def _ratio(out: dict, num: str, den: str) -> float | None:
    a, b = out.get(num, {}).get("median_ms"), out.get(den, {}).get("median_ms")
    return round(a / b, 3) if a and b else None


def step_w2(w: Writer, device: str, batch: int, budget_s: float = 4.0) -> int:
    from bench import workloads as W  # noqa: PLC0415

    def mk(backend: str, dev: str) -> Callable[[], Any]:
        return lambda: W.make_case("W2", backend, dev, batch)

    if device == "cuda":
        cases = [("gpugrad cuda", "cuda", mk("gpugrad", "cuda")), ("torch cuda", "cuda", mk("torch", "cuda")),
                 ("gpugrad cpu", "cpu", mk("gpugrad", "cpu"))]
    else:
        cases = [("gpugrad cpu", "cpu", mk("gpugrad", "cpu")), ("numpy cpu", "cpu", mk("numpy", "cpu"))]
    w.update(batch=batch)
    out = run_w2(w, cases, budget_s)
    speedup = _ratio(out, "gpugrad cpu", "gpugrad cuda")
    vs_torch = _ratio(out, "gpugrad cuda", "torch cuda")
    w.update(
        gpu_over_cpu=speedup,
        gpu_over_cpu_target=None if speedup is None else (">=50x", "met" if speedup >= 50 else "missed"),
        vs_torch=vs_torch,
        vs_torch_target=None if vs_torch is None else ("<=1.0x torch", "met" if vs_torch <= 1.0 else "missed"),
    )
    bad = [k for k, v in out.items() if "error" in v or v.get("agrees") is False]
    return 1 if bad else 0


def _jit_case(batch: int, device: str) -> Any:
    """W2 with its training step compiled by ``gg.jit`` (a CUDA graph on the GPU, by default)."""
    from bench import workloads as W  # noqa: PLC0415

    if "gpugrad-jit" in W.CASES:
        return W.make_case("W2", "gpugrad-jit", device, batch)

    class GpugradJitCase(W.GpugradCase):
        backend = "gpugrad-jit"

        def init_W2(self) -> None:
            init = W.w2_init()
            if self.params:  # keep the Variables the compiled step updates; put the initial values back
                for p, v in zip(self.params, init, strict=True):
                    p.assign(self._const(v))
            else:
                self.params = self._vars(init)
                self._train = self.gg.jit(self.train_W2)

        def step_W2(self) -> None:
            self.losses.append(self._train(self.x, self.labels).data)

    return GpugradJitCase("W2", batch, device)


def graph_used(case: Any) -> bool:
    """Whether a compiled step of ``case`` (a ``gg.jit`` function among its attributes) runs as a
    captured CUDA graph."""
    for obj in vars(case).values():
        for progs in getattr(obj, "_cache", {}).values() if hasattr(obj, "_cache") else ():
            # one program per state of the Variables it reads
            for prog in progs if isinstance(progs, list) else [progs]:
                if getattr(prog, "_graph", None) is not None:
                    return True
    return False


def step_w2_jit(w: Writer, device: str, batch: int, budget_s: float = 3.0) -> int:
    import gpugrad as gg  # noqa: PLC0415
    from bench import workloads as W  # noqa: PLC0415

    if not hasattr(gg, "jit"):
        w.update(skipped="gg.jit is not there")
        print("W2 jit: gg.jit is not there; skipped", flush=True)
        return 0
    made: list[Any] = []

    def jit_case() -> Any:
        made.append(_jit_case(batch, device))
        return made[-1]

    cases = [(f"gpugrad {device}", device, lambda: W.make_case("W2", "gpugrad", device, batch)),
             (f"gpugrad-jit {device}", device, jit_case)]
    if device == "cuda":
        cases.append(("torch cuda", "cuda", lambda: W.make_case("W2", "torch", "cuda", batch)))
    w.update(batch=batch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        out = run_w2(w, cases, budget_s)
    w.update(jit_over_eager=_ratio(out, f"gpugrad-jit {device}", f"gpugrad {device}"),
             jit_vs_torch=_ratio(out, f"gpugrad-jit {device}", "torch cuda"))
    if device == "cuda":
        graph = {"used": any(graph_used(c) for c in made) if made else None}
        notes = sorted({str(m.message) for m in caught if "CUDA graph" in str(m.message)})
        if notes:
            graph["warnings"] = notes
        w.update(cuda_graph=graph)
        print(f"W2 jit: CUDA graph {'used' if graph['used'] else 'NOT used'} {notes or ''}", flush=True)
    bad = [k for k, v in out.items() if "error" in v or v.get("agrees") is False]
    return 1 if bad else 0
