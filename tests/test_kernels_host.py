"""The CUDA kernels' logic, run on the CPU: ``kernels/*.cu`` built with the host C++ compiler.

This checks logic, not speed. The sources are compiled with g++ against the harness
``gpugrad/testing/simulated_cuda/host/cuda_host.h``
(CUDA's thread and block indices, ``__syncthreads``, warp shuffles with their masks, shared memory,
vector types), every CUDA thread of a block runs as a cooperating fiber, and the launch wrappers of
:mod:`gpugrad.kernels` (layout choice, grids, shared memory, split-row slices) drive them on NumPy
arrays. Every output is compared with gpugrad's NumPy path computed in float64 on the same
inputs, for every row layout, odd sizes, misaligned views and rows holding NaN and +-inf at the
first, a middle, the last and a tail position. Outputs start as a sentinel and sit between guard
elements, and inputs between NaN guards, so an unwritten element or a stray access shows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gpugrad import kernels as K
from gpugrad.ops import array_kernels as AK
from gpugrad.ops.softmax import _log_softmax_np, _softmax_np

sys.path.insert(0, str(Path(__file__).resolve().parent / "cuda_host"))
import host_kernels as H  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy references of NaN/inf rows

SENTINEL = -7777.0
GUARD = 8
DTYPES = [np.float32, np.float64]
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}
SPECIAL_COLS = [1, 31, 32, 33, 1024, 1025, 4097, 50257]
SOFTMAX_OPS = ["softmax_fwd", "log_softmax_fwd", "softmax_bwd", "log_softmax_bwd"]


@pytest.fixture(scope="module")
def libs():
    if H.compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    return H.build()


@pytest.fixture
def rt(libs):
    """The host runtime with an H100's limits except 16 multiprocessors (so that 'few rows' is
    reachable with small arrays)."""
    runtime = H.HostRuntime(libs, sm_count=16)
    with K._use_runtime(runtime):
        yield runtime


# ----------------------------------------------------------------------------------------- helpers


def _placed_in(a: np.ndarray, offset: int) -> np.ndarray:
    buf = np.full(a.size + offset + GUARD, np.nan, dtype=a.dtype)
    view = buf[offset : offset + a.size].reshape(a.shape)
    view[...] = a
    return view


def _out_buf(shape, dtype, offset: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(np.prod(shape, dtype=np.int64))
    buf = np.full(n + offset + GUARD, SENTINEL, dtype=dtype)
    return buf, buf[offset : offset + n].reshape(shape)


def _check_guards(buf: np.ndarray, offset: int, n: int, what: str) -> None:
    outside = np.concatenate([buf[:offset], buf[offset + n :]])
    assert (outside == SENTINEL).all(), f"{what}: wrote outside its output"


def _compare(got: np.ndarray, ref: np.ndarray, dtype, what: str, rtol: float | None = None, scale=None) -> None:
    """Same NaN positions, same infinities, finite values within rtol of the row's scale (or of
    ``scale``, the size of the terms a result is the difference of)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    assert not (got == SENTINEL).any() or (ref == SENTINEL).any(), f"{what}: unwritten output"
    nan_g, nan_r = np.isnan(got), np.isnan(ref)
    if (nan_g != nan_r).any():
        i = np.argwhere(nan_g != nan_r)[0]
        raise AssertionError(f"{what}: NaN mismatch at {tuple(i)}: got {got[tuple(i)]!r}, want {ref[tuple(i)]!r}")
    inf_r = np.isinf(ref)
    bad_inf = inf_r & (got != ref)
    if bad_inf.any():
        i = np.argwhere(bad_inf)[0]
        raise AssertionError(f"{what}: got {got[tuple(i)]!r} at {tuple(i)}, want {ref[tuple(i)]!r}")
    fin = np.isfinite(ref)
    if not fin.any():
        return
    rtol = RTOL[np.dtype(dtype)] if rtol is None else rtol
    r2 = ref.reshape(-1, ref.shape[-1]) if ref.ndim else ref.reshape(1, 1)
    f2 = fin.reshape(r2.shape)
    row_scale = np.where(f2, np.abs(r2), 0).max(axis=-1, keepdims=True)
    bound = (rtol * (np.abs(r2) + row_scale)).reshape(ref.shape) + 1e-300
    if scale is not None:
        bound = bound + rtol * np.abs(np.broadcast_to(scale, ref.shape))
    err = np.where(fin, np.abs(got - ref), 0)
    if (err > bound).any():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(
            f"{what}: error {err[i]:.3g} at {i} (got {got[i]!r}, want {ref[i]!r}, allowed {bound[i]:.3g})"
        )


def _rows_for(cols: int) -> int:
    return 5 if cols <= 1025 else (3 if cols <= 4097 else 2)


def _layouts_for(cols: int, itemsize: int, nin: int) -> list[str]:
    out = []
    if cols <= K.SMALL_MAX_COLS:
        out.append("small")
    out += [f"regs{n}" for n in (64, 128, 256, 512, 1024) if cols <= n][:2]
    if nin * cols * itemsize <= 227 * 1024 - 2048:
        out.append("smem")
    out.append("split")
    return out


def _softmax_ref(op: str, a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """gpugrad's NumPy path (ops/softmax.py) in float64."""
    a = a.astype(np.float64)
    if op == "softmax_fwd":
        return _softmax_np(a, -1)
    if op == "log_softmax_fwd":
        return _log_softmax_np(a, -1)
    g = b.astype(np.float64)
    if op == "softmax_bwd":
        return a * (g - (g * a).sum(axis=-1, keepdims=True))
    return g - np.exp(a) * g.sum(axis=-1, keepdims=True)


def _softmax_inputs(op: str, rng, rows: int, cols: int, dtype) -> tuple[np.ndarray, np.ndarray | None]:
    x = (rng.standard_normal((rows, cols)) * 3).astype(dtype)
    if op.endswith("fwd"):
        return x, None
    y = _softmax_np(x.astype(np.float64), -1) if op == "softmax_bwd" else _log_softmax_np(x.astype(np.float64), -1)
    return y.astype(dtype), rng.standard_normal((rows, cols)).astype(dtype)


def _run_softmax(op: str, a, b, offset: int = 0):
    fn = getattr(K, op)
    buf, out = _out_buf(a.shape, a.dtype, offset)
    ins = (_placed_in(a, offset),) if b is None else (_placed_in(a, offset), _placed_in(b, offset))
    res = fn(*ins, out=out)
    assert res is out
    _check_guards(buf, offset, a.size, op)
    return out


# --------------------------------------------------------------------------------- softmax family


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", SOFTMAX_OPS)
@pytest.mark.parametrize("cols", [1, 2, 3, 17, 31, 32, 33, 63, 100, 257, 1000, 1024, 1025, 3001, 4097])
def test_softmax_family_every_layout(rt, rng, op, dtype, cols):
    rows = _rows_for(cols) + 2
    a, b = _softmax_inputs(op, rng, rows, cols, dtype)
    ref = _softmax_ref(op, a, b)
    nin = 1 if b is None else 2
    for layout in _layouts_for(cols, np.dtype(dtype).itemsize, nin):
        rt.force_layout = layout
        n0 = len(rt.launched)
        got = _run_softmax(op, a, b)
        used = {name.rsplit("_", 2)[-2] for name in rt.launched[n0:]}
        assert used == ({"part", "fin"} if layout == "split" else {layout}), (layout, used)
        _compare(got, ref, dtype, f"{op} cols={cols} {layout}")


@pytest.mark.parametrize("offset", [1, 3])
@pytest.mark.parametrize("op", SOFTMAX_OPS)
def test_softmax_family_misaligned(rt, rng, op, offset):
    for cols, layout in [(20, "small"), (200, "regs256"), (1028, "smem"), (1030, "smem"), (3000, "split")]:
        a, b = _softmax_inputs(op, rng, 4, cols, np.float32)
        rt.force_layout = layout
        _compare(_run_softmax(op, a, b, offset), _softmax_ref(op, a, b), np.float32, f"{op} {cols} +{offset}")


def _special_rows(rng, cols: int, dtype, value: float) -> np.ndarray:
    """Rows with ``value`` at the first, a middle, the last and a tail position, one row each,
    then a row of -inf, a row with +inf and NaN, and a plain row."""
    tail = (cols // 4) * 4 if cols % 4 else max(cols - 3, 0)  # past the last whole 16-byte vector
    positions = sorted({0, cols // 2, cols - 1, min(tail, cols - 1)})
    x = (rng.standard_normal((len(positions) + 3, cols)) * 2).astype(dtype)
    for i, p in enumerate(positions):
        x[i, p] = value
    x[len(positions)] = -np.inf
    x[len(positions) + 1, cols // 3] = np.inf
    x[len(positions) + 1, (2 * cols) // 3] = np.nan
    return x


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("cols", SPECIAL_COLS)
def test_softmax_family_nan_inf(rt, rng, cols, value):
    for dtype in DTYPES:
        x = _special_rows(rng, cols, dtype, value)
        g = rng.standard_normal(x.shape).astype(dtype)
        for op in SOFTMAX_OPS:
            if op.endswith("fwd"):
                a, b = x, None
            else:  # the backward of rows whose forward held the special values, and a NaN in gy
                a = _softmax_ref(op.replace("bwd", "fwd"), x, None).astype(dtype)
                b = g.copy()
                b[-1, cols // 2] = np.nan
            ref = _softmax_ref(op, a, b)
            for layout in (None, "split") if cols > 32 else (None,):
                rt.force_layout = layout
                _compare(_run_softmax(op, a, b), ref, dtype, f"{op} {np.dtype(dtype)} cols={cols} {value} {layout}")


def test_softmax_nan_row_is_nan(rt):
    got = K.softmax_fwd(np.array([[np.nan, 1.0, 2.0]], np.float32))
    assert np.isnan(got).all()
    got = K.log_softmax_fwd(np.array([[1.0, np.nan] + [0.5] * 40], np.float32))
    assert np.isnan(got).all()


# ------------------------------------------------------------------------------------ losses


def _ce_ref(z, t):
    loss, saved = AK.softmax_ce_fwd(z.astype(np.float64), t.astype(np.float64))
    return loss, tuple(s[..., 0] for s in saved)


def _sce_ref(z, lab):
    loss, saved = AK.softmax_ce_sparse_fwd(z.astype(np.float64), lab)
    return loss, tuple(s[..., 0] for s in saved)


def _check_ce(rt, z, t, lab, g, dtype, what):
    rows = z.shape[0]
    loss, saved = K.softmax_ce_fwd(_placed_in(z, 1), _placed_in(t, 1))
    rloss, rsaved = _ce_ref(z, t)
    _compare(loss, rloss, dtype, f"ce fwd loss {what}")
    for name, a, b in zip(("m", "log_s", "t_sum"), saved, rsaved, strict=True):
        _compare(a, b, dtype, f"ce fwd {name} {what}")
    dz = K.softmax_ce_bwd(_placed_in(z, 1), saved, t, g)
    rdz = AK.softmax_ce_bwd(
        z.astype(np.float64), tuple(s[:, None] for s in rsaved), t.astype(np.float64), g.astype(np.float64)
    )
    # dz = g (p T - t): float32 rounding of p is relative to |g| (|T| + |t|), not to dz
    gscale = np.abs(g.astype(np.float64))[:, None]
    _compare(dz, rdz, dtype, f"ce bwd {what}", scale=gscale * (np.abs(t.sum(-1, keepdims=True)) + np.abs(t)))
    loss, saved = K.softmax_ce_sparse_fwd(z, lab)
    rloss, rsaved = _sce_ref(z, lab)
    _compare(loss, rloss, dtype, f"sparse ce fwd {what}")
    for name, a, b in zip(("m", "log_s"), saved, rsaved, strict=True):
        _compare(a, b, dtype, f"sparse ce fwd {name} {what}")
    dz = K.softmax_ce_sparse_bwd(z, saved, lab, g)
    rdz = AK.softmax_ce_sparse_bwd(z.astype(np.float64), tuple(s[:, None] for s in rsaved), lab, g.astype(np.float64))
    _compare(dz, rdz, dtype, f"sparse ce bwd {what}", scale=gscale)
    assert loss.shape == (rows,)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cols", [1, 3, 31, 32, 33, 1000, 1025, 4097])
def test_softmax_ce_every_layout(rt, rng, dtype, cols):
    rows = _rows_for(cols) + 2
    z = (rng.standard_normal((rows, cols)) * 4).astype(dtype)
    t = rng.uniform(0, 1, (rows, cols)).astype(dtype)
    lab = rng.integers(0, cols, rows)
    g = rng.standard_normal(rows).astype(dtype)
    for layout in ["small", "warp", "block", "split"]:
        rt.force_layout = layout
        _check_ce(rt, z, t, lab, g, dtype, f"cols={cols} {layout}")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("cols", SPECIAL_COLS)
def test_softmax_ce_nan_inf(rt, rng, cols, value):
    dtype = np.float32
    z = _special_rows(rng, cols, dtype, value)
    rows = z.shape[0]
    t = rng.uniform(0.1, 1, (rows, cols)).astype(dtype)
    t[0, -1] = 0.0  # a zero target, on a -inf logit in the -inf case: adds 0 as on the NumPy path
    t[-2] = 0.0  # every target 0 on the row holding +inf and NaN
    t[1, : cols // 2] = 0.0
    lab = rng.integers(0, cols, rows)
    g = rng.standard_normal(rows).astype(dtype)
    for layout in (None, "split"):
        rt.force_layout = layout
        _check_ce(rt, z, t, lab, g, dtype, f"cols={cols} {value} {layout}")


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_softmax_ce_backward_float32_exact(rt, rng, scale):
    """One pass from the saved (m, log s, sum t): within 1e-5 of float64 at any logit scale."""
    rows, cols = 6, 3001
    z = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
    t = rng.dirichlet(np.ones(cols), rows).astype(np.float32)
    g = rng.standard_normal(rows).astype(np.float32)
    loss, saved = K.softmax_ce_fwd(z, t)
    dz = K.softmax_ce_bwd(z, saved, t, g)
    z64, t64 = z.astype(np.float64), t.astype(np.float64)
    p = np.exp(z64 - z64.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    ref = (p * t64.sum(-1, keepdims=True) - t64) * g[:, None]
    assert np.linalg.norm(dz - ref) / np.linalg.norm(ref) < 1e-5
    lab = rng.integers(0, cols, rows)
    _, saved = K.softmax_ce_sparse_fwd(z, lab)
    dz = K.softmax_ce_sparse_bwd(z, saved, lab, g)
    onehot = np.eye(cols)[lab]
    ref = (p - onehot) * g[:, None]
    assert np.linalg.norm(dz - ref) / np.linalg.norm(ref) < 1e-5


def _mean_refs(t, x, eps):
    t64, x64 = t.astype(np.float64), x.astype(np.float64)
    return {
        "mse_fwd": AK.mse_fwd(t64, x64),
        "bce_fwd": AK.bce_fwd(t64, x64, eps),
        "bce_logits_fwd": AK.bce_logits_fwd(t64, x64),
    }


@pytest.mark.parametrize("cols", [1, 5, 31, 32, 33, 1000, 1025, 4097])
def test_row_mean_losses_every_layout(rt, rng, cols):
    for dtype in DTYPES:
        rows = _rows_for(cols) + 2
        t = rng.uniform(0, 1, (rows, cols)).astype(dtype)
        x = rng.uniform(0.01, 0.99, (rows, cols)).astype(dtype)
        x[0, 0] = np.nan
        x[1, -1] = 0.0  # clipped
        z = x * 8 - 4
        z[2, 0], z[3 % rows, -1] = np.inf, -np.inf
        t[2, 0], t[3 % rows, -1] = 1.0, 0.0  # zero weights on infinite logits: 0, not 0 * inf
        g = rng.standard_normal(rows).astype(dtype)
        refs = _mean_refs(t, x, 1e-7)
        refs["bce_logits_fwd"] = AK.bce_logits_fwd(t.astype(np.float64), z.astype(np.float64))
        for layout in ["small", "warp", "block", "split"]:
            rt.force_layout = layout
            _compare(K.mse_fwd(t, x), refs["mse_fwd"], dtype, f"mse {cols} {layout}")
            _compare(K.bce_fwd(t, x, 1e-7), refs["bce_fwd"], dtype, f"bce {cols} {layout}")
            _compare(K.bce_logits_fwd(t, z), refs["bce_logits_fwd"], dtype, f"bce logits {cols} {layout}")
        t64, x64, g64 = t.astype(np.float64), x.astype(np.float64), g.astype(np.float64)
        _compare(K.mse_bwd(_placed_in(t, 1), x, g), AK.mse_bwd(t64, x64, g64), dtype, "mse bwd")
        _compare(K.bce_bwd(t, _placed_in(x, 1), g, 1e-7), AK.bce_bwd(t64, x64, g64, 1e-7), dtype, "bce bwd")
        _compare(K.bce_logits_bwd(t, x, g), AK.bce_logits_bwd(t64, x64, g64), dtype, "bce logits bwd")


# ------------------------------------------------------------------------------ activations


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


@pytest.mark.parametrize("n", [1, 3, 4, 1023, 1025, 4099])
@pytest.mark.parametrize("offset", [0, 1])
def test_activations(rt, rng, n, offset):
    for dtype in DTYPES:
        x = (rng.standard_normal(n) * 3).astype(dtype)
        x[0] = np.nan
        if n > 2:
            x[1], x[-1] = np.inf, -np.inf
        gy = rng.standard_normal(n).astype(dtype)
        ggx = rng.standard_normal(n).astype(dtype)
        x64, g64, gg64 = x.astype(np.float64), gy.astype(np.float64), ggx.astype(np.float64)
        with np.errstate(invalid="ignore"):
            ys = _sigmoid(x64)
            yt = np.tanh(x64)
            cases = {
                "sigmoid_fwd": ((x,), ys),
                "sigmoid_bwd": ((ys.astype(dtype), gy), g64 * ys * (1 - ys)),
                "tanh_fwd": ((x,), yt),
                "tanh_bwd": ((yt.astype(dtype), gy), g64 * (1 - yt) * (1 + yt)),
                "relu_fwd": ((x,), np.where(x64 <= 0, 0, x64)),
                "relu_bwd": ((x, gy), np.where(x64 > 0, g64, 0)),
            }
        for name, (args, ref) in cases.items():
            buf, out = _out_buf((n,), np.dtype(dtype), offset)
            getattr(K, name)(*(_placed_in(a, offset) for a in args), out=out)
            _check_guards(buf, offset, n, name)
            _compare(out, ref, dtype, f"{name} n={n} +{offset}")
        y32 = ys.astype(dtype)
        a, b = K.sigmoid_bwd_bwd(y32, gy, ggx)
        y64 = y32.astype(np.float64)
        _compare(a, gg64 * g64 * (1 - 2 * y64), dtype, "sigmoid_bwd_bwd y")
        _compare(b, gg64 * y64 * (1 - y64), dtype, "sigmoid_bwd_bwd gy")
        y32 = yt.astype(dtype)
        a, b = K.tanh_bwd_bwd(y32, gy, ggx)
        y64 = y32.astype(np.float64)
        _compare(a, -2 * gg64 * g64 * y64, dtype, "tanh_bwd_bwd y")
        _compare(b, gg64 * (1 - y64) * (1 + y64), dtype, "tanh_bwd_bwd gy")


# ------------------------------------------------------------------------------ plans and harness


@pytest.mark.parametrize(
    ("rows", "cols", "itemsize", "elementwise", "nin", "layout"),
    [
        (4096, 8, 4, True, 1, "small"),
        (4096, 33, 4, True, 1, "regs64"),
        (4096, 1024, 4, True, 2, "regs1024"),
        (4096, 32768, 4, True, 1, "smem"),
        (4096, 32768, 4, True, 2, "split"),  # 256 KB of y and gy: more than shared memory
        (8, 50257, 4, True, 1, "split"),  # fewer rows than multiprocessors
        (4096, 50257, 4, True, 1, "smem"),
        (4096, 50257, 8, True, 1, "split"),
        (32768, 128, 4, False, 1, "warp"),
        (4096, 32768, 4, False, 1, "block"),
        (8, 50257, 4, False, 1, "split"),
        (100000, 7, 4, False, 1, "small"),
    ],
)
def test_row_plan(rows, cols, itemsize, elementwise, nin, layout):
    plan = K.row_plan(rows, cols, itemsize, elementwise=elementwise, nin=nin)
    assert plan.layout == layout
    assert 1 <= plan.grid <= 2**31 - 1 and plan.block % 32 == 0 and plan.block <= 1024
    if layout == "smem":
        assert plan.smem == nin * cols * itemsize <= 227 * 1024
    if layout == "split":
        assert plan.chunk * plan.nch >= cols > plan.chunk * (plan.nch - 1)
        # one Part and one Fin over all rows, with at least 4 blocks per multiprocessor where the
        # rows allow it (chunks are at least 1024 columns)
        assert plan.grid == min(rows * plan.nch, 65536) >= min(4 * 132, rows * -(-cols // 1024))
        if elementwise:  # Fin starts at the rows Part read last, as many as half of L2 holds
            tail = rows - plan.fin_first
            assert 1 <= tail <= rows and (tail * nin * cols * itemsize <= 25 << 20 or tail == 1)
            assert tail == rows or (tail + 1) * nin * cols * itemsize > 25 << 20


@pytest.mark.parametrize("op", SOFTMAX_OPS)
def test_split_is_one_part_and_one_fin_that_wraps(libs, rng, op):
    """With a small L2 Fin starts part-way down the rows (the ones Part read last) and wraps round
    to row 0; the whole operation is still one Part and one Fin launch."""
    runtime = H.HostRuntime(libs, sm_count=4, l2_bytes=64 * 1024)
    a, b = _softmax_inputs(op, rng, 9, 3000, np.float32)
    nin = 1 if b is None else 2
    plan = K.row_plan(9, 3000, 4, elementwise=True, nin=nin, sm_count=4, l2_bytes=64 * 1024, force="split")
    assert 0 < plan.fin_first < 9
    with K._use_runtime(runtime):
        runtime.force_layout = "split"
        got = _run_softmax(op, a, b, offset=1)
    for half in ("part", "fin"):
        assert runtime._kernels[f"{op}_{half}_f32"].launches == 1
    _compare(got, _softmax_ref(op, a, b), np.float32, f"{op} split, Fin from row {plan.fin_first}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_split_kernels_at_every_first_row_and_small_grids(rt, rng, dtype):
    """The split kernels themselves: Part and Fin may each start at any row and run any grid
    (grid-stride when it is smaller than rows x chunks); ws is indexed by the row, not the item."""
    rows, cols, chunk = 5, 700, 256
    nch = -(-cols // chunk)
    x = (rng.standard_normal((rows, cols)) * 3).astype(dtype)
    ref = _softmax_np(x.astype(np.float64), -1)
    sfx = K._suffix(dtype)
    part = rt.kernel("softmax", f"softmax_fwd_part_{sfx}")
    fin = rt.kernel("softmax", f"softmax_fwd_fin_{sfx}")
    for p_first, f_first, grid in [(0, 0, rows * nch), (0, 3, 2), (4, 1, 7), (2, 4, 1), (1, 0, 3)]:
        y = np.full((rows, cols), SENTINEL, dtype)
        ws = np.full(rows * nch * 2, np.nan, dtype)
        args = (x, y, ws, np.int64(rows), np.int64(cols), np.int64(chunk), np.int64(nch))
        part((grid,), (K.SPLIT_THREADS,), (*args, np.int64(p_first)))
        fin((grid,), (K.SPLIT_THREADS,), (*args, np.int64(f_first)))
        _compare(y, ref, dtype, f"split part from {p_first}, fin from {f_first}, grid {grid}")


def test_smem_limit_falls_back_to_split(libs, rng):
    runtime = H.HostRuntime(libs, sm_count=1, smem_optin=16 * 1024)
    x = rng.standard_normal((3, 5000)).astype(np.float32)
    with K._use_runtime(runtime):
        y = K.log_softmax_fwd(x)
    assert "log_softmax_fwd_fin_f32" in runtime.launched
    _compare(y, _log_softmax_np(x.astype(np.float64), -1), np.float32, "smem fallback")


def test_harness_checks_arguments(rt):
    kern = rt.kernel("softmax", "softmax_fwd_small_f32")
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(H.HostKernelError, match="takes 4 arguments"):
        kern((1,), (128,), (x, x))
    with pytest.raises(H.HostKernelError, match="has 4 bytes"):
        kern((1,), (128,), (x, x, np.int32(2), np.int64(3)))
    with pytest.raises(H.HostKernelError, match="invalid launch"):
        kern((1,), (2048,), (x, x, np.int64(2), np.int64(3)))


def test_harness_reports_bad_warp_masks(rt):
    """A full-mask shuffle in a block whose last warp is partial is undefined on a GPU: the harness
    reports it instead of computing something."""
    kern = rt.kernel("softmax", "softmax_fwd_regs64_f32")
    x = np.zeros((2, 40), np.float32)
    with pytest.raises(H.HostKernelError, match="mask"):
        kern((1,), (48,), (x, np.empty_like(x), np.int64(2), np.int64(40)))


# ------------------------------------------------------------------------------ the harness itself


@pytest.mark.parametrize("width", [32, 16, 8, 4])
def test_harness_shuffle_semantics(rt, width):
    out = np.zeros(4 * 64, np.int32)
    rt.kernel("selftest", "shuffles")((1,), (64,), (out, np.int32(width)))
    got = out.reshape(64, 4)
    for t in range(64):
        lane, base = t % 32, (t // 32) * 32
        seg = lane // width * width  # first lane of this lane's group of `width`
        v = [100 * t] * 4
        src = lane ^ 1
        v[0] = 100 * (base + src) if src < seg + width else 100 * t
        v[1] = 100 * (t + 3) if lane - seg + 3 < width else 100 * t
        v[2] = 100 * (t - 2) if lane - seg - 2 >= 0 else 100 * t
        v[3] = 100 * (base + seg + 5 % width)
        assert list(got[t]) == v, (t, width)


def test_harness_ballot_shared_memory_atomics(rt, rng):
    out = np.zeros(64, np.uint32)
    rt.kernel("selftest", "ballot")((1,), (64,), (out,))
    for w in range(2):
        want = sum(1 << lane for lane in range(32) if (32 * w + lane) % 3 == 0)
        assert (out[32 * w : 32 * w + 32] == want).all()
    n = 90
    x = rng.standard_normal((3, n)).astype(np.float32)
    sums, rev = np.zeros(3, np.float32), np.zeros((3, n), np.float32)
    rt.kernel("selftest", "block_sum_and_reverse")((3,), (96,), (x, sums, rev, np.int32(n)), shared_mem=4 * n)
    np.testing.assert_allclose(sums, x.sum(1), rtol=1e-5)
    np.testing.assert_array_equal(rev, x[:, ::-1])
    counter, total = np.zeros(1, np.int32), np.zeros(1, np.float32)
    rt.kernel("selftest", "atomics")((5,), (64,), (counter, total))
    assert counter[0] == 320 and total[0] == 160.0


@pytest.mark.parametrize(
    ("name", "block", "message"),
    [
        ("bad_full_mask", 48, "exited or does not exist"),
        ("bad_half_barrier", 64, "deadlock"),
        ("bad_exit_at_barrier", 64, "exited while others wait"),
        ("bad_masks", 32, "mask"),
    ],
)
def test_harness_reports_undefined_behaviour(rt, name, block, message):
    x = np.zeros(64, np.float32)
    with pytest.raises(H.HostKernelError, match=message):
        rt.kernel("selftest", name)((1,), (block,), (x,))
