"""The CUDA kernels of gpugrad.kernels against float64 NumPy references (needs a GPU).

Inputs are fresh random arrays; every result is written into an ``out=`` buffer pre-filled with NaN,
so an element a kernel forgets to write fails the comparison. Tolerances: relative error at most
1e-5 (float32) / 1e-12 (float64), per element; for results that are differences of larger terms
(gradients such as y * (gy - sum(gy * y)), log-probabilities) the error is measured relative to the
largest magnitude of the result instead.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from conftest import HAS_GPU, requires_gpu

from gpugrad import backend
from gpugrad import kernels as K

pytestmark = [pytest.mark.gpu, requires_gpu]

cp = backend.cupy() if HAS_GPU else None

DTYPES = [np.float32, np.float64]
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
SOFTMAX_COLS = [1, 31, 32, 1000, 1025, 4097, 50257, 131072]
LOSS_COLS = [1, 3, 31, 32, 1000, 1025, 4097]
ODD_SIZES = [1, 3, 1023, 1025, 4099]


# ----------------------------------------------------------------------------------------- helpers


def _rows_for(cols: int) -> int:
    return 7 if cols <= 1024 else (3 if cols <= 8192 else 2)


def _gen(rng: np.random.Generator, shape, dtype, kind: str = "normal", scale: float = 1.0) -> np.ndarray:
    if kind == "normal":
        a = rng.standard_normal(shape) * scale
    elif kind == "prob":  # inside (0, 1), away from the clip
        a = rng.uniform(0.02, 0.98, shape)
    elif kind == "unit":
        a = rng.uniform(0.0, 1.0, shape)
    else:
        raise ValueError(kind)
    return np.asarray(a, dtype=dtype)


def _dev(a: np.ndarray):
    return cp.asarray(a)


def _nan_like(shape, dtype):
    return cp.full(shape, np.nan, dtype=dtype)


def _check(got, ref: np.ndarray, dtype, *, scaled: bool = False, what: str = "") -> None:
    """|got - ref| <= rtol * |ref| per element (or rtol * max|ref| when ``scaled``)."""
    got = cp.asnumpy(got).astype(np.longdouble)
    ref = np.asarray(ref, dtype=np.longdouble)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    assert np.isfinite(got).all(), f"{what}: non-finite values (unwritten output?)"
    rtol = RTOL[np.dtype(dtype)]
    if ref.size == 0:
        return
    bound = np.abs(ref) if not scaled else np.full(ref.shape, np.max(np.abs(ref)))
    bound = rtol * np.maximum(bound, 1e-300)
    err = np.abs(got - ref)
    worst = int(np.argmax(err - bound))
    assert (err <= bound).all(), (
        f"{what}: error {err.flat[worst]:.3g} at flat index {worst} "
        f"(got {got.flat[worst]!r}, want {ref.flat[worst]!r}, allowed {bound.flat[worst]:.3g})"
    )


def _f64(a) -> np.ndarray:
    """References are computed in extended precision, so that float64 results can be held to 1e-12."""
    return np.asarray(a, dtype=np.longdouble)


# ------------------------------------------------------------------------------- NumPy references


def ref_sigmoid(x):
    x = _f64(x)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def ref_softmax(x):
    x = _f64(x)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def ref_lse(x):
    x = _f64(x)
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def ref_log_softmax(x):
    return _f64(x) - ref_lse(x)[..., None]


def ref_saved(x):
    """(m, log_s) as the cross-entropy forwards save them: the row max and log sum exp(x - max)."""
    x = _f64(x)
    m = x.max(-1, keepdims=True)
    return m[..., 0], np.log(np.exp(x - m).sum(-1))


def _check_saved(saved, z, dtype) -> None:
    m_ref, ls_ref = ref_saved(z)
    _check(saved[0], m_ref, dtype, what="saved m")
    _check(saved[1], ls_ref, dtype, scaled=True, what="saved log_s")


# ------------------------------------------------------------------------------------ activations

ACT_CASES = {
    "sigmoid_fwd": (1, lambda x: ref_sigmoid(x)),
    "tanh_fwd": (1, lambda x: np.tanh(_f64(x))),
    "relu_fwd": (1, lambda x: np.where(_f64(x) > 0, _f64(x), 0.0)),
    "sigmoid_bwd": (2, lambda y, gy: _f64(gy) * _f64(y) * (1 - _f64(y))),
    "tanh_bwd": (2, lambda y, gy: _f64(gy) * (1 - _f64(y) ** 2)),
    "relu_bwd": (2, lambda x, gy: np.where(_f64(x) > 0, _f64(gy), 0.0)),
}
ACT_BWD_BWD = {
    "sigmoid_bwd_bwd": lambda y, gy, ggx: (
        _f64(ggx) * _f64(gy) * (1 - 2 * _f64(y)),
        _f64(ggx) * _f64(y) * (1 - _f64(y)),
    ),
    "tanh_bwd_bwd": lambda y, gy, ggx: (-2 * _f64(ggx) * _f64(gy) * _f64(y), _f64(ggx) * (1 - _f64(y) ** 2)),
}


def _act_inputs(rng, name: str, shape, dtype, nin: int) -> list[np.ndarray]:
    """Inputs in each function's domain: y in (0, 1) for sigmoid's backward, (-1, 1) for tanh's."""
    first = _gen(rng, shape, dtype, scale=2.0)
    if name.startswith("sigmoid_bwd"):
        first = ref_sigmoid(first).astype(dtype)
    elif name.startswith("tanh_bwd"):
        first = np.tanh(_f64(first)).astype(dtype)
    return [first] + [_gen(rng, shape, dtype) for _ in range(nin - 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (3,), (1023,), (1025,), (4099,), (33, 65), (2, 3, 257)])
@pytest.mark.parametrize("name", sorted(ACT_CASES))
def test_activation(name, shape, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{name}{shape}".encode()))
    nin, ref = ACT_CASES[name]
    xs = _act_inputs(rng, name, shape, dtype, nin)
    out = _nan_like(shape, dtype)
    got = getattr(K, name)(*[_dev(a) for a in xs], out=out)
    assert got is out
    _check(got, ref(*xs), dtype, what=f"{name}{shape}")
    fresh = getattr(K, name)(*[_dev(a) for a in xs])
    assert fresh.dtype == np.dtype(dtype) and fresh.shape == shape
    _check(fresh, ref(*xs), dtype, what=f"{name}{shape} (no out)")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (5,), (1025,), (17, 129)])
@pytest.mark.parametrize("name", sorted(ACT_BWD_BWD))
def test_activation_bwd_bwd(name, shape, dtype):
    rng = np.random.default_rng(7)
    xs = _act_inputs(rng, name, shape, dtype, 3)
    out = (_nan_like(shape, dtype), _nan_like(shape, dtype))
    got = getattr(K, name)(*[_dev(a) for a in xs], out=out)
    assert got[0] is out[0] and got[1] is out[1]
    want = ACT_BWD_BWD[name](*xs)
    _check(got[0], want[0], dtype, scaled=True, what=f"{name} d/dy")
    _check(got[1], want[1], dtype, what=f"{name} d/dgy")
    fresh = getattr(K, name)(*[_dev(a) for a in xs])
    assert isinstance(fresh, tuple) and len(fresh) == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", ODD_SIZES)
@pytest.mark.parametrize("name", sorted(ACT_CASES) + sorted(ACT_BWD_BWD))
def test_activation_misaligned(name, n, dtype):
    """Views starting one element in (x[1:]) take the scalar path; outputs misaligned too."""
    rng = np.random.default_rng(n)
    nin = ACT_CASES[name][0] if name in ACT_CASES else 3
    xs = _act_inputs(rng, name, (n + 1,), dtype, nin)
    views = [_dev(a)[1:] for a in xs]
    nout = 1 if name in ACT_CASES else 2
    bufs = [_nan_like((n + 1,), dtype) for _ in range(nout)]
    outs = [b[1:] for b in bufs]
    got = getattr(K, name)(*views, out=outs[0] if nout == 1 else tuple(outs))
    if name in ACT_CASES:
        _check(got, ACT_CASES[name][1](*[a[1:] for a in xs]), dtype, what=name)
    else:
        want = ACT_BWD_BWD[name](*[a[1:] for a in xs])
        _check(got[0], want[0], dtype, scaled=True, what=name)
        _check(got[1], want[1], dtype, what=name)
    for b in bufs:
        assert np.isnan(cp.asnumpy(b)[0]), "wrote before the start of out"


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_large_grid_stride(dtype):
    n = (1 << 22) + 3  # more vectors than one grid covers
    rng = np.random.default_rng(3)
    x = _gen(rng, (n,), dtype)
    _check(K.relu_fwd(_dev(x), out=_nan_like((n,), dtype)), np.maximum(_f64(x), 0), dtype)
    _check(K.sigmoid_fwd(_dev(x), out=_nan_like((n,), dtype)), ref_sigmoid(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_noncontiguous_equals_contiguous(dtype):
    rng = np.random.default_rng(11)
    x = _dev(_gen(rng, (64, 48), dtype))
    gy = _dev(_gen(rng, (64, 48), dtype))
    xt, gyt = x.T, gy[:, ::-1].T
    assert not xt.flags.c_contiguous
    for name in ("sigmoid_fwd", "tanh_fwd", "relu_fwd"):
        a = cp.asnumpy(getattr(K, name)(xt))
        b = cp.asnumpy(getattr(K, name)(cp.ascontiguousarray(xt)))
        np.testing.assert_array_equal(a, b)
    a = cp.asnumpy(K.relu_bwd(xt, gyt))
    b = cp.asnumpy(K.relu_bwd(cp.ascontiguousarray(xt), cp.ascontiguousarray(gyt)))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_zero_size(dtype):
    for shape in [(0,), (3, 0), (0, 5)]:
        x = cp.empty(shape, dtype)
        for name in ("sigmoid_fwd", "tanh_fwd", "relu_fwd"):
            y = getattr(K, name)(x)
            assert y.shape == shape and y.dtype == np.dtype(dtype)
        assert K.relu_bwd(x, x).shape == shape
        a, b = K.tanh_bwd_bwd(x, x, x)
        assert a.shape == b.shape == shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_at_zero_and_nan(dtype):
    x = _dev(np.array([-1.0, -0.0, 0.0, 2.0, np.nan], dtype=dtype))
    gy = _dev(np.full(5, 3.0, dtype=dtype))
    y = cp.asnumpy(K.relu_fwd(x))
    np.testing.assert_array_equal(y[:4], [0.0, 0.0, 0.0, 2.0])
    assert not np.signbit(y[1]), "relu(-0.0) should be +0.0"
    assert np.isnan(y[4])
    np.testing.assert_array_equal(cp.asnumpy(K.relu_bwd(x, gy)), [0.0, 0.0, 0.0, 3.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_tanh_saturate(dtype):
    x = _dev(np.array([-1000.0, -90.0, -20.0, 0.0, 20.0, 90.0, 1000.0], dtype=dtype))
    s = cp.asnumpy(K.sigmoid_fwd(x))
    assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    t = cp.asnumpy(K.tanh_fwd(x))
    assert t[0] == -1.0 and t[-1] == 1.0


# ------------------------------------------------------------------------------------------ softmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", SOFTMAX_COLS)
def test_softmax_family(cols, dtype):
    rng = np.random.default_rng(cols)
    rows = _rows_for(cols)
    shape = (rows, cols)
    x = _gen(rng, shape, dtype, scale=3.0)
    gy = _gen(rng, shape, dtype)

    y = K.softmax_fwd(_dev(x), out=_nan_like(shape, dtype))
    _check(y, ref_softmax(x), dtype, what=f"softmax {shape}")
    ly = K.log_softmax_fwd(_dev(x), out=_nan_like(shape, dtype))
    _check(ly, ref_log_softmax(x), dtype, scaled=True, what=f"log_softmax {shape}")

    ys = ref_softmax(x).astype(dtype)  # the backward takes the forward output as given
    want = _f64(ys) * (_f64(gy) - (_f64(gy) * _f64(ys)).sum(-1, keepdims=True))
    gx = K.softmax_bwd(_dev(ys), _dev(gy), out=_nan_like(shape, dtype))
    _check(gx, want, dtype, scaled=True, what=f"softmax_bwd {shape}")

    lys = ref_log_softmax(x).astype(dtype)
    want = _f64(gy) - np.exp(_f64(lys)) * _f64(gy).sum(-1, keepdims=True)
    gx = K.log_softmax_bwd(_dev(lys), _dev(gy), out=_nan_like(shape, dtype))
    _check(gx, want, dtype, scaled=True, what=f"log_softmax_bwd {shape}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (1,), (2, 3, 7), (2, 3, 1500), (4, 1, 33)])
def test_softmax_shapes(shape, dtype):
    rng = np.random.default_rng(len(shape))
    x = _gen(rng, shape, dtype)
    gy = _gen(rng, shape, dtype)
    _check(K.softmax_fwd(_dev(x), out=_nan_like(shape, dtype)), ref_softmax(x), dtype)
    _check(K.log_softmax_fwd(_dev(x)), ref_log_softmax(x), dtype, scaled=True)
    ys = ref_softmax(x).astype(dtype)
    want = _f64(ys) * (_f64(gy) - (_f64(gy) * _f64(ys)).sum(-1, keepdims=True))
    _check(K.softmax_bwd(_dev(ys), _dev(gy), out=_nan_like(shape, dtype)), want, dtype, scaled=True)


@pytest.mark.parametrize("cols", [7, 1000, 1025, 50257])
def test_softmax_huge_logits_float32(cols):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1e4, 1e4, (3, cols)).astype(np.float32)
    x[0, 0] = 1e4
    x[1, :] = -1e4
    x[2, :] = 1e4
    x[2, -1] = -1e4
    y = cp.asnumpy(K.softmax_fwd(_dev(x)))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(y, ref_softmax(x), atol=1e-6)
    ly = cp.asnumpy(K.log_softmax_fwd(_dev(x)))
    assert np.isfinite(ly).all()
    np.testing.assert_allclose(ly, ref_log_softmax(x), rtol=1e-5, atol=1e-3)
    gy = rng.standard_normal((3, cols)).astype(np.float32)
    assert np.isfinite(cp.asnumpy(K.softmax_bwd(_dev(y), _dev(gy)))).all()
    assert np.isfinite(cp.asnumpy(K.log_softmax_bwd(_dev(ly), _dev(gy)))).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_noncontiguous_and_empty(dtype):
    rng = np.random.default_rng(9)
    x = _dev(_gen(rng, (40, 1200), dtype))
    for view in (x.T, x[:, ::2], x[::3]):
        a = cp.asnumpy(K.softmax_fwd(view))
        b = cp.asnumpy(K.softmax_fwd(cp.ascontiguousarray(view)))
        np.testing.assert_array_equal(a, b)
        a = cp.asnumpy(K.log_softmax_bwd(view, view))
        b = cp.asnumpy(K.log_softmax_bwd(cp.ascontiguousarray(view), cp.ascontiguousarray(view)))
        np.testing.assert_array_equal(a, b)
    for shape in [(0, 5), (3, 0), (0,)]:
        e = cp.empty(shape, dtype)
        assert K.softmax_fwd(e).shape == shape
        assert K.log_softmax_fwd(e).shape == shape
        assert K.softmax_bwd(e, e).shape == shape
    with pytest.raises(ValueError):
        K.softmax_fwd(cp.asarray(np.array(1.0, dtype)))


def test_softmax_nan_in_a_short_row():
    """fmaxf would drop the NaN (giving [0, 0.27, 0.73]); the NumPy path gives NaN everywhere."""
    y = cp.asnumpy(K.softmax_fwd(_dev(np.array([[np.nan, 1.0, 2.0]], np.float32))))
    assert np.isnan(y).all()


def test_softmax_minus_inf_entries():
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, 2.0, -np.inf]], dtype=np.float32)
    y = cp.asnumpy(K.softmax_fwd(_dev(x)))
    np.testing.assert_allclose(y, ref_softmax(x), rtol=1e-6)
    ly = cp.asnumpy(K.log_softmax_fwd(_dev(x)))
    assert ly[0, 1] == -np.inf and ly[1, 0] == -np.inf
    np.testing.assert_allclose(ly[np.isfinite(ly)], ref_log_softmax(x)[np.isfinite(ly)], rtol=1e-6)


# -------------------------------------------------------------------------------------- MSE / BCE


def _g_row(rng, lead, dtype):
    return _gen(rng, lead, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", LOSS_COLS)
def test_mse(cols, dtype):
    rng = np.random.default_rng(cols + 1)
    shape = (_rows_for(cols), cols)
    t, p = _gen(rng, shape, dtype), _gen(rng, shape, dtype)
    g = _g_row(rng, shape[:-1], dtype)
    loss = K.mse_fwd(_dev(t), _dev(p), out=_nan_like(shape[:-1], dtype))
    _check(loss, ((_f64(p) - _f64(t)) ** 2).mean(-1), dtype, what="mse_fwd")
    dp = K.mse_bwd(_dev(t), _dev(p), _dev(g), out=_nan_like(shape, dtype))
    _check(dp, 2 * (_f64(p) - _f64(t)) / cols * _f64(g)[..., None], dtype, what="mse_bwd")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", LOSS_COLS)
def test_bce(cols, dtype):
    rng = np.random.default_rng(cols + 2)
    shape = (_rows_for(cols), cols)
    t, p = _gen(rng, shape, dtype, "unit"), _gen(rng, shape, dtype, "prob")
    g = _g_row(rng, shape[:-1], dtype)
    eps = 1e-7
    pc = np.clip(_f64(p), eps, 1 - eps)
    want = (-(_f64(t) * np.log(pc) + (1 - _f64(t)) * np.log(1 - pc))).mean(-1)
    _check(K.bce_fwd(_dev(t), _dev(p), eps, out=_nan_like(shape[:-1], dtype)), want, dtype, what="bce_fwd")
    want = _f64(g)[..., None] / cols * (pc - _f64(t)) / (pc * (1 - pc))
    got = K.bce_bwd(_dev(t), _dev(p), _dev(g), eps, out=_nan_like(shape, dtype))
    _check(got, want, dtype, scaled=True, what="bce_bwd")


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_clip(dtype):
    eps = 1e-3
    p = np.array([[0.0, 1e-4, 0.5, 1 - 1e-4, 1.0, 0.3]], dtype=dtype)
    t = np.array([[0.0, 1.0, 1.0, 0.0, 1.0, 0.0]], dtype=dtype)
    g = np.array([2.0], dtype=dtype)
    pc = np.clip(_f64(p), np.float64(dtype(eps)), np.float64(dtype(1) - dtype(eps)))
    want = (-(_f64(t) * np.log(pc) + (1 - _f64(t)) * np.log(1 - pc))).mean(-1)
    loss = K.bce_fwd(_dev(t), _dev(p), eps)
    np.testing.assert_allclose(cp.asnumpy(loss), want, rtol=1e-5)
    dp = cp.asnumpy(K.bce_bwd(_dev(t), _dev(p), _dev(g), eps))
    inside = (_f64(p) > eps) & (_f64(p) < 1 - eps)
    np.testing.assert_array_equal(dp[~inside], 0.0)
    pi, ti = _f64(p[inside]), _f64(t[inside])
    np.testing.assert_allclose(dp[inside], 2.0 / 6 * (pi - ti) / (pi * (1 - pi)), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", LOSS_COLS)
def test_bce_logits(cols, dtype):
    rng = np.random.default_rng(cols + 3)
    shape = (_rows_for(cols), cols)
    t, z = _gen(rng, shape, dtype, "unit"), _gen(rng, shape, dtype, scale=4.0)
    g = _g_row(rng, shape[:-1], dtype)
    zf, tf = _f64(z), _f64(t)
    want = (np.maximum(zf, 0) - zf * tf + np.log1p(np.exp(-np.abs(zf)))).mean(-1)
    got = K.bce_logits_fwd(_dev(t), _dev(z), out=_nan_like(shape[:-1], dtype))
    _check(got, want, dtype, what="bce_logits_fwd")
    want = _f64(g)[..., None] / cols * (ref_sigmoid(z) - tf)
    got = K.bce_logits_bwd(_dev(t), _dev(z), _dev(g), out=_nan_like(shape, dtype))
    _check(got, want, dtype, scaled=True, what="bce_logits_bwd")


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_shapes_and_casts(dtype):
    """1-D inputs give 0-d losses; 3-D give [a, b]; targets/g_row of another dtype are cast;
    a scalar g_row broadcasts; non-contiguous inputs equal contiguous ones."""
    rng = np.random.default_rng(4)
    for shape in [(9,), (2, 3, 33)]:
        t, p = _gen(rng, shape, dtype), _gen(rng, shape, dtype)
        lead = shape[:-1]
        loss = K.mse_fwd(_dev(t.astype(np.float32)), _dev(p))
        assert loss.shape == lead and loss.dtype == np.dtype(dtype)
        _check(loss, ((_f64(t.astype(np.float32)) - _f64(p)) ** 2).mean(-1), dtype)
        dp = K.mse_bwd(_dev(t), _dev(p), _dev(np.array(0.5)))
        _check(dp, (_f64(p) - _f64(t)) / shape[-1], dtype)
    t, p = _dev(_gen(rng, (30, 70), dtype)), _dev(_gen(rng, (30, 70), dtype))
    a = cp.asnumpy(K.bce_logits_fwd(t.T, p.T))
    b = cp.asnumpy(K.bce_logits_fwd(cp.ascontiguousarray(t.T), cp.ascontiguousarray(p.T)))
    np.testing.assert_array_equal(a, b)
    assert K.mse_fwd(cp.empty((0, 4), dtype), cp.empty((0, 4), dtype)).shape == (0,)
    assert np.isnan(cp.asnumpy(K.mse_fwd(cp.empty((2, 0), dtype), cp.empty((2, 0), dtype)))).all()
    assert K.mse_bwd(cp.empty((2, 0), dtype), cp.empty((2, 0), dtype), cp.ones((2,), dtype)).shape == (2, 0)


# ---------------------------------------------------------------------------------- cross-entropy


def _onehot(labels: np.ndarray, cols: int, dtype=np.float64) -> np.ndarray:
    out = np.zeros((*labels.shape, cols), dtype=dtype)
    np.put_along_axis(out, np.asarray(labels, np.int64)[..., None], 1, axis=-1)
    return out


def _dense_target(rng, shape, dtype, kind: str):
    if kind == "onehot":
        return _onehot(rng.integers(0, shape[-1], shape[:-1]), shape[-1], dtype)
    t = rng.uniform(0, 1, shape)
    if kind == "prob":
        t = t / t.sum(-1, keepdims=True)
    return t.astype(dtype)  # "any": rows not summing to 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", SOFTMAX_COLS)
@pytest.mark.parametrize("kind", ["onehot", "prob", "any"])
def test_softmax_ce_dense(cols, dtype, kind):
    if kind != "prob" and cols > 4097:
        pytest.skip("covered by the 'prob' targets at this size")
    rng = np.random.default_rng(cols + len(kind))
    shape = (_rows_for(cols), cols)
    z = _gen(rng, shape, dtype, scale=3.0)
    t = _dense_target(rng, shape, dtype, kind)
    g = _g_row(rng, shape[:-1], dtype)
    lse_ref = ref_lse(z)
    loss_ref = lse_ref * _f64(t).sum(-1) - (_f64(t) * _f64(z)).sum(-1)
    lead = shape[:-1]
    out = (_nan_like(lead, dtype), tuple(_nan_like(lead, dtype) for _ in range(3)))
    loss, saved = K.softmax_ce_fwd(_dev(z), _dev(t), out=out)
    assert loss is out[0] and all(a is b for a, b in zip(saved, out[1], strict=True))
    _check_saved(saved, z, dtype)
    _check(saved[2], _f64(t).sum(-1), dtype, what="saved t_sum")
    _check(loss, loss_ref, dtype, what="dense CE loss")
    want = _f64(g)[..., None] * (ref_softmax(z) * _f64(t).sum(-1, keepdims=True) - _f64(t))
    dz = K.softmax_ce_bwd(_dev(z), saved, _dev(t), _dev(g), out=_nan_like(shape, dtype))
    _check(dz, want, dtype, scaled=True, what="dense CE grad")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", SOFTMAX_COLS)
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64])
def test_softmax_ce_sparse(cols, dtype, label_dtype):
    rng = np.random.default_rng(cols + 17)
    shape = (_rows_for(cols), cols)
    z = _gen(rng, shape, dtype, scale=3.0)
    labels = rng.integers(0, cols, shape[:-1]).astype(label_dtype)
    g = _g_row(rng, shape[:-1], dtype)
    lse_ref = ref_lse(z)
    zl = np.take_along_axis(_f64(z), labels[..., None].astype(np.int64), -1)[..., 0]
    lead = shape[:-1]
    out = (_nan_like(lead, dtype), (_nan_like(lead, dtype), _nan_like(lead, dtype)))
    loss, saved = K.softmax_ce_sparse_fwd(_dev(z), _dev(labels), out=out)
    _check_saved(saved, z, dtype)
    _check(loss, lse_ref - zl, dtype, scaled=cols == 1, what="sparse CE loss")
    onehot = _onehot(labels, cols)
    want = _f64(g)[..., None] * (ref_softmax(z) - onehot)
    dz = K.softmax_ce_sparse_bwd(_dev(z), saved, _dev(labels), _dev(g), out=_nan_like(shape, dtype))
    _check(dz, want, dtype, scaled=True, what="sparse CE grad")


@pytest.mark.parametrize("cols", [10, 1000, 1025, 50257])
def test_softmax_ce_huge_logits_float32(cols):
    rng = np.random.default_rng(21)
    z = rng.uniform(-1e4, 1e4, (3, cols)).astype(np.float32)
    z[1, :] = 1e4
    labels = np.array([0, 1, cols - 1])
    t = _onehot(labels, cols, np.float32)
    g = np.ones(3, np.float32)
    for loss, saved in (K.softmax_ce_fwd(_dev(z), _dev(t)), K.softmax_ce_sparse_fwd(_dev(z), _dev(labels))):
        loss = cp.asnumpy(loss)
        assert np.isfinite(loss).all() and all(np.isfinite(cp.asnumpy(a)).all() for a in saved)
        zl = z[np.arange(3), labels].astype(np.float64)
        np.testing.assert_allclose(loss, ref_lse(z) - zl, rtol=1e-5, atol=2e-3)
    # one pass from (m, log_s) kept apart: softmax-exact at logits of 1e4 (where a float32 lse
    # would be off by half its ulp, 5e-4)
    want = ref_softmax(z) - t
    _, saved = K.softmax_ce_sparse_fwd(_dev(z), _dev(labels))
    dz = cp.asnumpy(K.softmax_ce_sparse_bwd(_dev(z), saved, _dev(labels), _dev(g)))
    np.testing.assert_allclose(dz, want, atol=2e-7)
    _, saved = K.softmax_ce_fwd(_dev(z), _dev(t))
    dz = cp.asnumpy(K.softmax_ce_bwd(_dev(z), saved, _dev(t), _dev(g)))
    np.testing.assert_allclose(dz, want, atol=2e-7)
    assert np.linalg.norm(dz - want) / np.linalg.norm(want) < 1e-5


def test_softmax_ce_tied_extreme_logits_float32():
    """Rows as in the engine's extreme-value tests: exact, a tie, a margin of 1e4."""
    z = np.array([[-1e4, 0.0, 1e4], [1e4, 1e4, -1e4], [0.0, -1e4, -1e4]], dtype=np.float32)
    labels = np.array([2, 0, 0])
    t = _onehot(labels, 3, np.float32)
    g = np.full(3, 1 / 3, np.float32)
    want = g[:, None] * (ref_softmax(z) - t)
    loss, saved = K.softmax_ce_fwd(_dev(z), _dev(t))
    np.testing.assert_allclose(cp.asnumpy(loss), [0.0, np.log(2.0), 0.0], atol=2e-3)
    np.testing.assert_allclose(cp.asnumpy(K.softmax_ce_bwd(_dev(z), saved, _dev(t), _dev(g))), want, atol=1e-7)
    loss, saved = K.softmax_ce_sparse_fwd(_dev(z), _dev(labels))
    np.testing.assert_allclose(cp.asnumpy(loss), [0.0, np.log(2.0), 0.0], atol=2e-3)
    got = K.softmax_ce_sparse_bwd(_dev(z), saved, _dev(labels), _dev(g))
    np.testing.assert_allclose(cp.asnumpy(got), want, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_ce_shapes(dtype):
    rng = np.random.default_rng(8)
    z = _gen(rng, (2, 3, 40), dtype)
    labels = rng.integers(0, 40, (2, 3))
    loss, saved = K.softmax_ce_sparse_fwd(_dev(z), _dev(labels))
    assert loss.shape == saved[0].shape == saved[1].shape == (2, 3)
    zl = np.take_along_axis(_f64(z), labels[..., None], -1)[..., 0]
    _check(loss, ref_lse(z) - zl, dtype)
    # 1-D logits: one row, 0-d results
    loss, saved = K.softmax_ce_sparse_fwd(_dev(z[0, 0]), _dev(np.array(3)))
    assert loss.shape == () and saved[0].shape == ()
    _check(loss, ref_lse(z[0, 0]) - _f64(z[0, 0, 3]), dtype)
    dz = K.softmax_ce_sparse_bwd(_dev(z[0, 0]), saved, _dev(np.array(3)), _dev(np.array(1.0)))
    want = ref_softmax(z[0, 0]) - _onehot(np.array(3), 40)
    _check(dz, want, dtype, scaled=True)
    # non-contiguous logits
    zt = _dev(_gen(rng, (50, 20), dtype)).T
    lab = _dev(rng.integers(0, 50, 20))
    a = cp.asnumpy(K.softmax_ce_sparse_fwd(zt, lab)[0])
    b = cp.asnumpy(K.softmax_ce_sparse_fwd(cp.ascontiguousarray(zt), lab)[0])
    np.testing.assert_array_equal(a, b)
    # zero rows
    loss, saved = K.softmax_ce_fwd(cp.empty((0, 5), dtype), cp.empty((0, 5), dtype))
    assert loss.shape == (0,)


# ------------------------------------------------------------------------------ argument checking


def test_unsupported_dtypes_raise_typeerror():
    for dt in (np.float16, np.int32, np.int64, np.complex64):
        x = cp.zeros((4, 4), dtype=dt)
        with pytest.raises(TypeError, match=np.dtype(dt).name):
            K.sigmoid_fwd(x)
        with pytest.raises(TypeError, match=np.dtype(dt).name):
            K.softmax_fwd(x)
        with pytest.raises(TypeError, match=np.dtype(dt).name):
            K.softmax_ce_sparse_fwd(x, cp.zeros(4, np.int64))
    with pytest.raises(TypeError, match="float32"):
        K.softmax_ce_sparse_fwd(cp.zeros((4, 4), np.float32), cp.zeros(4, np.float32))


def test_bad_out_raises():
    x = cp.zeros((4, 8), np.float32)
    with pytest.raises(ValueError):
        K.relu_fwd(x, out=cp.zeros((4, 9), np.float32))
    with pytest.raises(ValueError):
        K.relu_fwd(x, out=cp.zeros((4, 8), np.float64))
    with pytest.raises(ValueError):
        K.relu_fwd(x, out=cp.zeros((8, 4), np.float32).T)
    with pytest.raises(ValueError):
        K.relu_fwd(x, out=x)
    with pytest.raises(ValueError):
        K.mse_fwd(x, x, out=cp.zeros((4, 8), np.float32))
    with pytest.raises(ValueError):
        K.mse_fwd(x, cp.zeros((4, 7), np.float32))


def test_kernels_are_memoized():
    a = K.get_kernel("activations", "relu_fwd_f32")
    assert K.get_kernel("activations", "relu_fwd_f32") is a
    with pytest.raises(KeyError):
        K.get_kernel("activations", "no_such_kernel_f32")


def test_compile_error_on_device(monkeypatch):
    broken = 'extern "C" __global__ void broken_f32(float* x) { x[0] = undefined_identifier_here; }\n'
    original = K.source
    monkeypatch.setitem(K._KERNELS, "broken_module", ("broken_f32",))
    monkeypatch.setattr(K, "source", lambda m: broken if m == "broken_module" else original(m))
    with pytest.raises(K.KernelCompileError) as info:
        K.get_kernel("broken_module", "broken_f32")
    msg = str(info.value)
    assert "broken_f32" in msg and "broken_module" in msg
    assert "undefined_identifier_here" in msg


def test_runs_on_the_inputs_device():
    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two CUDA devices")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 40)).astype(np.float32)
    with cp.cuda.Device(1):
        xd = cp.asarray(x)
        labels = cp.asarray(np.arange(5))
    with cp.cuda.Device(0):
        y = K.softmax_fwd(xd)
        s = K.sigmoid_fwd(xd)
        loss, _ = K.softmax_ce_sparse_fwd(xd, labels)
    assert y.device.id == s.device.id == loss.device.id == 1
    _check(y, ref_softmax(x), np.float32)
    _check(s, ref_sigmoid(x), np.float32)


# ------------------------------------------------- every layout and NaN/inf row, as the host harness
#
# The cases and references of tests/test_kernels_host.py (which runs the same kernels on the CPU),
# on the device: every layout forced in turn, NaN and +-inf at the first, a middle, the last and a
# tail position of rows of 1 ... 50257 columns, misaligned views.

import test_kernels_host as HT  # noqa: E402


class _forced_layout:  # noqa: N801
    def __init__(self, layout):
        self.layout = layout

    def __enter__(self):
        self.rt = K._rt()
        self.rt.force_layout = self.layout

    def __exit__(self, *exc):
        self.rt.force_layout = None


def _run_dev(op, a, b, offset=0):
    """``op`` on device copies of a (and b), placed ``offset`` elements into their buffers."""

    def place(x, fill):
        buf = cp.full(x.size + offset + HT.GUARD, fill, dtype=x.dtype)
        view = buf[offset : offset + x.size].reshape(x.shape)
        view[...] = cp.asarray(x)
        return buf, view

    ins = [place(x, np.nan)[1] for x in ((a,) if b is None else (a, b))]
    obuf, out = place(np.full(a.shape, HT.SENTINEL, a.dtype), HT.SENTINEL)
    getattr(K, op)(*ins, out=out)
    host = cp.asnumpy(obuf)
    HT._check_guards(host, offset, a.size, op)
    return cp.asnumpy(out)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", HT.SOFTMAX_OPS)
@pytest.mark.parametrize("cols", [1, 3, 31, 32, 33, 100, 1000, 1024, 1025, 4097, 50257])
def test_softmax_family_every_layout_on_device(op, dtype, cols):
    rng = np.random.default_rng(cols)
    a, b = HT._softmax_inputs(op, rng, HT._rows_for(cols) + 2, cols, dtype)
    ref = HT._softmax_ref(op, a, b)
    for layout in HT._layouts_for(cols, np.dtype(dtype).itemsize, 1 if b is None else 2):
        with _forced_layout(layout):
            HT._compare(_run_dev(op, a, b), ref, dtype, f"{op} cols={cols} {layout}")
            HT._compare(_run_dev(op, a, b, offset=1), ref, dtype, f"{op} cols={cols} {layout} +1")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("cols", HT.SPECIAL_COLS)
def test_nan_inf_rows_on_device(cols, value):
    rng = np.random.default_rng(cols)
    for dtype in DTYPES:
        x = HT._special_rows(rng, cols, dtype, value)
        g = rng.standard_normal(x.shape).astype(dtype)
        for op in HT.SOFTMAX_OPS:
            if op.endswith("fwd"):
                a, b = x, None
            else:
                a = HT._softmax_ref(op.replace("bwd", "fwd"), x, None).astype(dtype)
                b = g.copy()
                b[-1, cols // 2] = np.nan
            ref = HT._softmax_ref(op, a, b)
            for layout in (None, "split") if cols > 32 else (None,):
                with _forced_layout(layout):
                    HT._compare(_run_dev(op, a, b), ref, dtype, f"{op} cols={cols} {value} {layout}")
        rows = x.shape[0]
        t = rng.uniform(0.1, 1, x.shape).astype(dtype)
        t[0, -1] = 0.0
        t[-2] = 0.0
        lab = rng.integers(0, cols, rows)
        gr = rng.standard_normal(rows).astype(dtype)
        for layout in (None, "split"):
            with _forced_layout(layout):
                loss, saved = K.softmax_ce_fwd(_dev(x), _dev(t))
                rloss, rsaved = HT._ce_ref(x, t)
                HT._compare(cp.asnumpy(loss), rloss, dtype, f"ce loss cols={cols} {value} {layout}")
                dz = K.softmax_ce_bwd(_dev(x), saved, _dev(t), _dev(gr))
                rdz = HT.AK.softmax_ce_bwd(
                    x.astype(np.float64), tuple(s[:, None] for s in rsaved), t.astype(np.float64), gr.astype(np.float64)
                )
                gs = np.abs(gr.astype(np.float64))[:, None] * (np.abs(t.sum(-1, keepdims=True)) + np.abs(t))
                HT._compare(cp.asnumpy(dz), rdz, dtype, f"ce grad cols={cols} {value} {layout}", scale=gs)
                loss, saved = K.softmax_ce_sparse_fwd(_dev(x), _dev(lab))
                rloss, rsaved = HT._sce_ref(x, lab)
                HT._compare(cp.asnumpy(loss), rloss, dtype, f"sparse ce loss cols={cols} {value} {layout}")


# ------------------------------------------- launches and bytes at the benchmark's largest shape
#
# On the simulated device, the launchers run at [4096, 32768] float32 with every launch checked
# (arguments, grid, shared memory) and counted, but the kernels' bodies not run: the counts come
# from the arrays each launch is given, not from what the kernels compute (the layouts' numbers
# are checked above and in tests/test_kernels_host.py at smaller shapes).

BIG = (4096, 32768)


def _counted(monkeypatch, fn, *arrays, layout=None):
    sim = pytest.importorskip("gpugrad.testing.simulated_cuda")
    if not sim.enabled():
        pytest.skip("counts on the simulated device")
    from gpugrad.testing.simulated_cuda import _device as D

    monkeypatch.setattr(D, "run", lambda name, go, read, written: D.count_launch(name, read, written))
    with _forced_layout(layout), sim.counters() as c:
        fn(*arrays)
    return c


@pytest.mark.parametrize("op", ["softmax_bwd", "log_softmax_bwd"])
def test_split_backward_at_the_largest_shape_is_one_part_and_one_fin(monkeypatch, op):
    y, gy = cp.empty(BIG, np.float32), cp.empty(BIG, np.float32)
    plan = K.row_plan(*BIG, 4, elementwise=True, nin=2)
    assert plan.layout == "split" and plan.grid >= 4 * 132
    c = _counted(monkeypatch, getattr(K, op), y, gy)
    assert c.by_kernel == {f"{op}_part_f32": 1, f"{op}_fin_f32": 1}, c
    ws = BIG[0] * plan.nch * 4
    # Part and Fin both read y and gy (Fin's second read is the one meant to hit L2 for the rows
    # Part read last); the simulator counts every non-const pointer as written: gx and the partial
    # sums, by both
    assert c.bytes_read == 4 * y.nbytes and c.bytes_written == 2 * (y.nbytes + ws), c


def test_forward_at_the_largest_shape_keeps_the_row_in_shared_memory(monkeypatch):
    """One block per row in shared memory against the row split in two (Part + Fin): the split
    reads the input twice and launches twice, so the planner keeps ``smem`` there."""
    x = cp.empty(BIG, np.float32)
    assert K.row_plan(*BIG, 4, elementwise=True, nin=1).layout == "smem"
    smem = _counted(monkeypatch, K.softmax_fwd, x)
    split = _counted(monkeypatch, K.softmax_fwd, x, layout="split")
    assert smem.by_kernel == {"softmax_fwd_smem_f32": 1}
    assert smem.bytes_read == x.nbytes and smem.bytes_written == x.nbytes
    assert split.launches == 2 and split.bytes_read == 2 * x.nbytes and split.bytes_written > x.nbytes
    assert split.bytes_read + split.bytes_written > smem.bytes_read + smem.bytes_written
