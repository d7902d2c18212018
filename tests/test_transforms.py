"""vjp, jvp, jacfwd, jacrev, hessian and stop_gradient on every op family.

Always run: closed forms, the two Jacobian algorithms against each other and against central
differences, and the dot-product identity <u, J v> = <J^T u, v>. Where JAX is installed, each
transform is also compared with JAX's on the same float64 inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg

# -- the op families: (name, gpugrad function, JAX function, argument makers) -----------------------------
# Argument makers take a NumPy Generator and return a float64 array; keep inputs away from kinks.


def _n(*shape):
    return lambda r: r.standard_normal(shape)


def _pos(*shape):
    return lambda r: r.uniform(0.5, 2.0, shape)


def _prob(*shape):
    return lambda r: r.uniform(0.1, 0.9, shape)


def _away(*shape):  # |x| >= 0.3, for abs / relu / division
    return lambda r: r.choice([-1.0, 1.0], shape) * r.uniform(0.3, 2.0, shape)


def _onehot(n, k):
    return lambda r: np.eye(k)[r.integers(0, k, n)]


_LABELS = np.array([2, 0, 1, 2])


def _lsm(jnp, z, axis=-1):
    return z - jnp.max(z, axis=axis, keepdims=True) - jnp.log(
        jnp.sum(jnp.exp(z - jnp.max(z, axis=axis, keepdims=True)), axis=axis, keepdims=True))


CASES = [
    # elementwise math
    ("exp", gg.exp, lambda j, x: j.exp(x), [_n(3)]),
    ("log", gg.log, lambda j, x: j.log(x), [_pos(3)]),
    ("log1p", gg.log1p, lambda j, x: j.log1p(x), [_pos(3)]),
    ("expm1", gg.expm1, lambda j, x: j.expm1(x), [_n(3)]),
    ("sqrt", gg.sqrt, lambda j, x: j.sqrt(x), [_pos(3)]),
    ("square", gg.square, lambda j, x: j.square(x), [_n(3)]),
    ("sin", gg.sin, lambda j, x: j.sin(x), [_n(3)]),
    ("cos", gg.cos, lambda j, x: j.cos(x), [_n(3)]),
    ("tan", gg.tan, lambda j, x: j.tan(x), [_prob(3)]),
    ("abs", gg.abs, lambda j, x: j.abs(x), [_away(3)]),
    ("pow3", lambda x: x**3, lambda j, x: x**3, [_n(3)]),
    ("rpow", lambda x: 2.0**x, lambda j, x: 2.0**x, [_n(3)]),
    ("add_bcast", lambda x, y: x + y, lambda j, x, y: x + y, [_n(2, 3), _n(3)]),
    ("sub", lambda x, y: x - y, lambda j, x, y: x - y, [_n(3), _n(3)]),
    ("mul_bcast", lambda x, y: x * y, lambda j, x, y: x * y, [_n(2, 3), _n(2, 1)]),
    ("div", lambda x, y: x / y, lambda j, x, y: x / y, [_n(3), _away(3)]),
    ("pow_xy", lambda x, y: x**y, lambda j, x, y: x**y, [_pos(3), _n(3)]),
    ("maximum", gg.maximum, lambda j, x, y: j.maximum(x, y), [_n(4), _n(4)]),
    ("minimum", gg.minimum, lambda j, x, y: j.minimum(x, y), [_n(4), _n(4)]),
    ("clip", lambda x: gg.clip(x, -0.5, 0.5), lambda j, x: j.clip(x, -0.5, 0.5), [_n(5)]),
    ("where", lambda x, y: gg.where(x > 0, x * y, y), lambda j, x, y: j.where(x > 0, x * y, y), [_away(4), _n(4)]),
    ("negative", lambda x: -x, lambda j, x: -x, [_n(3)]),
    # reductions
    ("sum_axis", lambda x: gg.sum(x, axis=1), lambda j, x: j.sum(x, axis=1), [_n(2, 3)]),
    ("mean_axis0", lambda x: gg.mean(x, axis=0), lambda j, x: j.mean(x, axis=0), [_n(2, 3)]),
    ("max_axis", lambda x: gg.max(x, axis=1), lambda j, x: j.max(x, axis=1), [_n(2, 3)]),
    ("min_all", gg.min, lambda j, x: j.min(x), [_n(2, 3)]),
    ("logsumexp", lambda x: gg.logsumexp(x, axis=-1),
     lambda j, x: j.log(j.sum(j.exp(x), axis=-1)), [_n(2, 3)]),
    ("norm", gg.norm, lambda j, x: j.sqrt(j.sum(x * x)), [_n(2, 3)]),
    # shape ops
    ("reshape", lambda x: gg.reshape(x, (3, 2)), lambda j, x: j.reshape(x, (3, 2)), [_n(2, 3)]),
    ("transpose", lambda x: gg.transpose(x, (2, 0, 1)), lambda j, x: j.transpose(x, (2, 0, 1)), [_n(2, 3, 2)]),
    ("expand_squeeze", lambda x: gg.squeeze(gg.expand_dims(x, 1), 1) * 2.0,
     lambda j, x: j.squeeze(j.expand_dims(x, 1), 1) * 2.0, [_n(3)]),
    ("concat", lambda x, y: gg.concat([x, y], axis=1), lambda j, x, y: j.concatenate([x, y], axis=1),
     [_n(2, 2), _n(2, 1)]),
    ("stack", lambda x, y: gg.stack([x, y], axis=1), lambda j, x, y: j.stack([x, y], axis=1), [_n(3), _n(3)]),
    ("broadcast_to", lambda x: gg.broadcast_to(x, (2, 3)), lambda j, x: j.broadcast_to(x, (2, 3)), [_n(3)]),
    ("getitem", lambda x: x[1:, ::2], lambda j, x: x[1:, ::2], [_n(3, 4)]),
    ("gather", lambda x: x[np.array([0, 2, 2])], lambda j, x: x[np.array([0, 2, 2])], [_n(3, 2)]),
    # linear algebra
    ("matmul", gg.matmul, lambda j, x, y: x @ y, [_n(3, 4), _n(4, 2)]),
    ("matmul_batched", gg.matmul, lambda j, x, y: x @ y, [_n(2, 2, 3), _n(2, 3, 2)]),
    # activations
    ("sigmoid", gg.sigmoid, lambda j, x: 1 / (1 + j.exp(-x)), [_n(4)]),
    ("tanh", gg.tanh, lambda j, x: j.tanh(x), [_n(4)]),
    ("relu", gg.relu, lambda j, x: j.maximum(x, 0.0), [_away(4)]),
    # softmax
    ("softmax", gg.softmax, lambda j, x: j.exp(_lsm(j, x)), [_n(2, 3)]),
    ("log_softmax_axis0", lambda x: gg.log_softmax(x, axis=0), lambda j, x: _lsm(j, x, 0), [_n(3, 2)]),
    # losses (both arguments differentiated where both are float)
    ("mse", gg.losses.mse, lambda j, t, y: j.mean(j.mean((t - y) ** 2, axis=-1)), [_n(4, 3), _n(4, 3)]),
    ("bce", gg.losses.binary_crossentropy,
     lambda j, t, p: j.mean(j.mean(-(t * j.log(p) + (1 - t) * j.log(1 - p)), axis=-1)), [_prob(4, 2), _prob(4, 2)]),
    ("bce_logits", lambda t, z: gg.losses.binary_crossentropy(t, z, from_logits=True),
     lambda j, t, z: j.mean(j.mean(j.maximum(z, 0) - z * t + j.log1p(j.exp(-j.abs(z))), axis=-1)),
     [_prob(4, 2), _away(4, 2)]),
    ("cce_logits", lambda t, z: gg.losses.categorical_crossentropy(t, z, from_logits=True),
     lambda j, t, z: j.mean(-j.sum(t * _lsm(j, z), axis=-1)), [_prob(4, 3), _n(4, 3)]),
    ("cce_probs", gg.losses.categorical_crossentropy,
     lambda j, t, p: j.mean(-j.sum(t * j.log(p / j.sum(p, axis=-1, keepdims=True)), axis=-1)),
     [_onehot(4, 3), _prob(4, 3)]),
    ("sparse_cce_logits", lambda z: gg.losses.sparse_categorical_crossentropy(_LABELS, z, from_logits=True),
     lambda j, z: j.mean(-_lsm(j, z)[np.arange(4), _LABELS]), [_n(4, 3)]),
    ("torch_cross_entropy", lambda z: gg.nn.functional.cross_entropy(z, _LABELS),
     lambda j, z: j.mean(-_lsm(j, z)[np.arange(4), _LABELS]), [_n(4, 3)]),
    ("mse_loss", gg.nn.functional.mse_loss, lambda j, x, t: j.mean((x - t) ** 2), [_n(4, 2), _n(4, 2)]),
]
IDS = [c[0] for c in CASES]


def _args(case, device, seed=0):
    r = np.random.default_rng(seed)
    return [gg.constant(m(r), dtype="float64", device=device) for m in case[3]]


def _np(t):
    return t.numpy() if isinstance(t, gg.Tensor) else np.asarray(t)


def _fd_jacobian(f, args, i, eps=1e-6):
    """Central differences of f with respect to args[i], shape out + in (float64)."""
    base = [a.numpy() for a in args]
    x = base[i]
    cols = []
    for k in range(x.size):
        d = np.zeros(x.size)
        d[k] = eps
        d = d.reshape(x.shape)
        hi = [gg.constant(b + d if j == i else b, dtype="float64") for j, b in enumerate(base)]
        lo = [gg.constant(b - d if j == i else b, dtype="float64") for j, b in enumerate(base)]
        cols.append((f(*hi).numpy() - f(*lo).numpy()) / (2 * eps))
    out_shape = cols[0].shape
    return np.stack(cols, axis=-1).reshape(out_shape + x.shape)


# -- always run ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jacfwd_equals_jacrev_and_central_differences(case, device):
    args = _args(case, device)
    nums = tuple(range(len(args)))
    jf = gg.jacfwd(case[1], argnums=nums)(*args)
    jr = gg.jacrev(case[1], argnums=nums)(*args)
    for i in nums:
        out_shape = case[1](*args).shape
        assert jf[i].shape == jr[i].shape == out_shape + args[i].shape
        np.testing.assert_allclose(_np(jf[i]), _np(jr[i]), rtol=1e-12, atol=1e-12)
        if device == "cpu":
            np.testing.assert_allclose(_np(jr[i]), _fd_jacobian(case[1], args, i), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jvp_and_vjp_are_transposes(case, device):
    args = _args(case, device)
    r = np.random.default_rng(7)
    vs = [gg.constant(r.standard_normal(a.shape), dtype="float64", device=device) for a in args]
    out, tout = gg.jvp(case[1], tuple(args), tuple(vs))
    out2, vjp_fn = gg.vjp(case[1], *args)
    np.testing.assert_array_equal(out.numpy(), out2.numpy())
    np.testing.assert_allclose(out.numpy(), case[1](*args).numpy(), rtol=1e-15)
    assert tout.shape == out.shape and tout.dtype == out.dtype
    u = gg.constant(r.standard_normal(out.shape), dtype="float64", device=device)
    cts = vjp_fn(u)
    assert isinstance(cts, tuple) and len(cts) == len(args)
    lhs = float(np.sum(u.numpy() * tout.numpy()))
    rhs = sum(float(np.sum(c.numpy() * v.numpy())) for c, v in zip(cts, vs))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)
    # J v from the Jacobian itself
    jac = gg.jacrev(case[1], argnums=tuple(range(len(args))))(*args)
    jv = sum(np.tensordot(j.numpy(), v.numpy(), axes=v.ndim) for j, v in zip(jac, vs))
    np.testing.assert_allclose(tout.numpy(), jv, rtol=1e-12, atol=1e-12)


def f64(v, device):
    return gg.constant(v, dtype="float64", device=device)


def test_closed_forms(device):
    x = f64([0.5, -1.0, 2.0], device)
    v = f64([1.0, 2.0, -1.0], device)
    xn, vn = x.numpy(), v.numpy()
    _, t = gg.jvp(gg.exp, (x,), (v,))
    np.testing.assert_allclose(t.numpy(), np.exp(xn) * vn, rtol=1e-15)
    _, t = gg.jvp(gg.sigmoid, (x,), (v,))
    s = 1 / (1 + np.exp(-xn))
    np.testing.assert_allclose(t.numpy(), s * (1 - s) * vn, rtol=1e-14)
    np.testing.assert_allclose(gg.jacfwd(gg.tanh)(x).numpy(), np.diag(1 - np.tanh(xn) ** 2), rtol=1e-14)
    p = np.exp(xn) / np.exp(xn).sum()
    np.testing.assert_allclose(gg.jacfwd(gg.softmax)(x).numpy(), np.diag(p) - np.outer(p, p), atol=1e-15)
    A = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]])
    np.testing.assert_array_equal(gg.jacfwd(lambda x: f64(A, device) @ x)(x).numpy(), A)
    np.testing.assert_array_equal(gg.jacfwd(gg.sum)(x).numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(gg.jacfwd(lambda x: gg.reshape(x, (3, 1)))(x).numpy(), np.eye(3).reshape(3, 1, 3))
    y = f64([1.0, 0.0, 2.0], device)
    (gy, gp) = gg.vjp(gg.losses.mse, y[None], x[None])[1](f64(1.0, device))
    np.testing.assert_allclose(gp.numpy(), [2 * (xn - y.numpy()) / 3], rtol=1e-15)
    np.testing.assert_allclose(gy.numpy(), [-2 * (xn - y.numpy()) / 3], rtol=1e-15)


def test_vjp_fn_can_be_called_again_and_has_aux(device):
    x = f64([1.0, 2.0], device)
    out, vjp_fn, aux = gg.vjp(lambda x: (x * x, "aux"), x, has_aux=True)
    assert aux == "aux"
    (g1,) = vjp_fn(f64([1.0, 0.0], device))
    (g2,) = vjp_fn(f64([0.0, 1.0], device))
    np.testing.assert_array_equal(g1.numpy(), [2.0, 0.0])
    np.testing.assert_array_equal(g2.numpy(), [0.0, 4.0])
    out, t, aux = gg.jvp(lambda x: (gg.sin(x), x.shape), (x,), (f64([1.0, 1.0], device),), has_aux=True)
    assert aux == (2,)
    np.testing.assert_allclose(t.numpy(), np.cos([1.0, 2.0]), rtol=1e-15)


def test_jvp_of_an_output_unconnected_to_the_input(device):
    x = f64([1.0, 2.0], device)
    out, t = gg.jvp(lambda x: (x * 2.0, f64([5.0], device), x), (x,), (f64([1.0, -1.0], device),))
    np.testing.assert_array_equal(t[0].numpy(), [2.0, -2.0])
    np.testing.assert_array_equal(t[1].numpy(), [0.0])
    np.testing.assert_array_equal(t[2].numpy(), [1.0, -1.0])


# -- higher orders ------------------------------------------------------------------------------------------


def test_hessian_of_a_vector_valued_function(device):
    x = f64([1.0, -2.0, 0.5], device)
    h = gg.hessian(lambda x: x**3)(x)  # H[i, j, k] = 6 x_i [i == j == k]
    assert h.shape == (3, 3, 3)
    expect = np.zeros((3, 3, 3))
    for i in range(3):
        expect[i, i, i] = 6 * x.numpy()[i]
    np.testing.assert_allclose(h.numpy(), expect, atol=1e-14)
    A = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]])
    h = gg.hessian(lambda x: gg.sin(f64(A, device) @ x))(x)  # H[i] = -sin(a_i.x) a_i a_i^T
    assert h.shape == (2, 3, 3)
    for i in range(2):
        np.testing.assert_allclose(h.numpy()[i], -np.sin(A[i] @ x.numpy()) * np.outer(A[i], A[i]), atol=1e-14)


def test_hessian_of_a_matrix_valued_function_of_a_matrix(device):
    x = f64(np.arange(6.0).reshape(2, 3) / 7, device)
    h = gg.hessian(lambda x: gg.tanh(x @ x.T))(x)
    assert h.shape == (2, 2, 2, 3, 2, 3)


def test_hvp_shapes_and_spellings(device):
    def f(x):
        return gg.sum(gg.sin(x) * x)

    x = f64([0.1, 0.7, -1.3], device)
    v = f64([1.0, -2.0, 0.5], device)
    h = gg.hessian(f)(x).numpy()
    for hv in (gg.hvp(f, x, v), gg.hvp(f, (x,), (v,))):
        assert hv.shape == (3,)
        np.testing.assert_allclose(hv.numpy(), h @ v.numpy(), rtol=1e-13)
    # forward-over-reverse
    _, fo = gg.jvp(gg.grad(f), (x,), (v,))
    assert fo.shape == (3,)
    np.testing.assert_allclose(fo.numpy(), h @ v.numpy(), rtol=1e-13)
    # two arguments: JAX's recipe gives the product for the first one
    g = lambda x, y: gg.sum(x * x * y)  # noqa: E731
    y, vy = f64([2.0, 3.0, 4.0], device), f64([1.0, 1.0, 1.0], device)
    hv = gg.hvp(g, (x, y), (v, vy))
    np.testing.assert_allclose(hv.numpy(), 2 * y.numpy() * v.numpy() + 2 * x.numpy() * vy.numpy(), rtol=1e-14)
    np.testing.assert_allclose(gg.jvp(gg.grad(g), (x, y), (v, vy))[1].numpy(), hv.numpy(), rtol=1e-14)


def test_second_order_forward_mode_and_reverse_over_forward(device):
    x = f64([0.3, -0.4], device)
    v = f64([2.0, 1.0], device)
    # d²/de² sin(x + e v) = -sin(x) v²
    d2 = gg.jvp(lambda x: gg.jvp(gg.sin, (x,), (v,))[1], (x,), (v,))[1]
    np.testing.assert_allclose(d2.numpy(), -np.sin(x.numpy()) * v.numpy() ** 2, rtol=1e-14)
    # d/dx sum(jvp(exp)(x; v)) = exp(x) v
    g = gg.grad(lambda x: gg.sum(gg.jvp(gg.exp, (x,), (v,))[1]))(x)
    np.testing.assert_allclose(g.numpy(), np.exp(x.numpy()) * v.numpy(), rtol=1e-14)
    # and in the tangent: d/dv sum(J v) = J^T 1
    gv = gg.grad(lambda v: gg.sum(gg.jvp(gg.exp, (x,), (v,))[1]))(v)
    np.testing.assert_allclose(gv.numpy(), np.exp(x.numpy()), rtol=1e-14)
    # grad of the vjp
    gx = gg.grad(lambda x: gg.sum(gg.vjp(gg.sin, x)[1](v)[0]))(x)
    np.testing.assert_allclose(gx.numpy(), -np.sin(x.numpy()) * v.numpy(), rtol=1e-14)


def test_jacfwd_of_jacrev_of_kernel_ops(device):
    z = f64([[0.2, -1.0, 0.4], [1.5, 0.0, -0.3]], device)
    h = gg.jacfwd(gg.jacrev(lambda z: gg.losses.categorical_crossentropy(
        f64([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]], device), z, from_logits=True)))(z)
    hr = gg.jacrev(gg.jacrev(lambda z: gg.losses.categorical_crossentropy(
        f64([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]], device), z, from_logits=True)))(z)
    assert h.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(h.numpy(), hr.numpy(), atol=1e-14)


class _Swish(gg.Op):
    """A user op: NumPy forward, backward in gpugrad ops."""

    @staticmethod
    def forward_cpu(x):
        return x / (1 + np.exp(-x))

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.inputs
        s = gg.sigmoid(x)
        return gy * (s + ctx.output * (1 - s))


@gg.custom_gradient
def _log1pexp(x):
    e = gg.exp(x)
    return gg.log(1 + e), lambda up: up * (1 - 1 / (1 + e))


def test_forward_mode_through_user_ops_and_custom_gradients(device):
    x = f64([-1.0, 0.5, 2.0], device)
    v = f64([1.0, -2.0, 0.5], device)
    xn, vn = x.numpy(), v.numpy()
    s = 1 / (1 + np.exp(-xn))
    d1 = s + xn * s * (1 - s)  # swish'
    d2 = s * (1 - s) * (2 + xn * (1 - 2 * s))  # swish''
    _, t = gg.jvp(_Swish.apply, (x,), (v,))
    np.testing.assert_allclose(t.numpy(), d1 * vn, rtol=1e-13)
    np.testing.assert_allclose(gg.jacfwd(_Swish.apply)(x).numpy(), np.diag(d1), rtol=1e-13, atol=1e-15)
    h = gg.hessian(_Swish.apply)(x).numpy()
    np.testing.assert_allclose(np.einsum("iii->i", h), d2, rtol=1e-12)
    _, t = gg.jvp(_log1pexp, (x,), (v,))
    np.testing.assert_allclose(t.numpy(), s * vn, rtol=1e-13)
    np.testing.assert_allclose(gg.hvp(lambda x: gg.sum(_log1pexp(x)), x, v).numpy(), s * (1 - s) * vn, rtol=1e-12)


# -- stop_gradient ------------------------------------------------------------------------------------------


def test_stop_gradient(device):
    x = f64([1.0, 2.0], device)
    g = gg.grad(lambda x: gg.sum(x * gg.stop_gradient(x)))(x)
    np.testing.assert_array_equal(g.numpy(), [1.0, 2.0])
    p = gg.stop_gradient({"a": x, "b": [x * 2.0]})
    assert set(p) == {"a", "b"} and p["a"]._node is None and p["b"][0]._node is None
    w = gg.Variable(f64([3.0], device))
    with gg.GradientTape() as tape:
        y = gg.stop_gradient(w) * w
    assert tape.gradient(y, w).item() == 3.0
    w.assign(f64([5.0], device))
    assert y.item() == 9.0  # the stopped value did not follow the assign


# -- bad input ----------------------------------------------------------------------------------------------


def test_bad_tangents_raise(device):
    x = f64([1.0, 2.0], device)
    with pytest.raises(ValueError, match=r"shape \(3,\).*shape \(2,\)"):
        gg.jvp(gg.sin, (x,), (f64([1.0, 2.0, 3.0], device),))
    with pytest.raises(TypeError, match="float32.*float64"):
        gg.jvp(gg.sin, (x,), (gg.constant([1.0, 2.0], dtype="float32", device=device),))
    with pytest.raises(TypeError, match="tuples or lists"):
        gg.jvp(gg.sin, x, x)
    with pytest.raises(TypeError, match="1 primals but 2 tangents"):
        gg.jvp(gg.sin, (x,), (x, x))
    with pytest.raises(TypeError, match="structure"):
        gg.jvp(lambda p: p["a"], ({"a": x},), ({"b": x},))
    with pytest.raises(TypeError, match="None"):
        gg.jvp(gg.sin, (x,), (None,))
    out, vjp_fn = gg.vjp(lambda x: (x, x * 2.0), x)
    with pytest.raises(TypeError, match="cotangent.*structure"):
        vjp_fn(x)
    with pytest.raises(ValueError, match="cotangent.*shape"):
        vjp_fn((x, f64([1.0], device)))
    with pytest.raises(TypeError, match="hvp"):
        gg.hvp(lambda x: gg.sum(x), (x,), x)
    with pytest.raises(TypeError, match="scalar"):
        gg.grad(gg.sin)(x)
    with pytest.raises(TypeError, match="pair"):
        gg.grad(gg.sum, has_aux=True)(x)
    with pytest.raises(TypeError, match="floating outputs"):
        gg.jacrev(lambda x: gg.argmax(x) if hasattr(gg, "argmax") else x > 1.0)(x)


def test_integer_leaf_is_named(device):
    with pytest.raises(TypeError, match=r"argument 0\['b'\].*int64"):
        gg.grad(lambda p: gg.sum(p["w"]))({"w": f64([1.0], device), "b": gg.constant([1], device=device)})


# -- JAX as the oracle --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_against_jax(case, jax):
    # one JAX Jacobian per case (JAX is slow to trace): J v and u^T J follow from it
    jnp = jax.numpy
    args = _args(case, "cpu", seed=3)
    arrs = [a.numpy() for a in args]
    nums = tuple(range(len(args)))
    fj = lambda *a: case[2](jnp, *a)  # noqa: E731
    jjs = [np.asarray(j) for j in jax.jacrev(fj, argnums=nums)(*arrs)]
    oj = np.asarray(fj(*arrs))
    r = np.random.default_rng(5)
    vs = [r.standard_normal(a.shape) for a in arrs]
    out, t = gg.jvp(case[1], tuple(args), tuple(gg.constant(v, dtype="float64") for v in vs))
    np.testing.assert_allclose(out.numpy(), oj, rtol=1e-12, atol=1e-13)
    tj = sum(np.tensordot(j, v, axes=v.ndim) for j, v in zip(jjs, vs))
    np.testing.assert_allclose(t.numpy(), tj, rtol=1e-10, atol=1e-12)
    u = r.standard_normal(oj.shape)
    cts = gg.vjp(case[1], *args)[1](gg.constant(u, dtype="float64"))
    for c, j in zip(cts, jjs):
        np.testing.assert_allclose(c.numpy(), np.tensordot(u, j, axes=u.ndim), rtol=1e-10, atol=1e-12)
    for ours in (gg.jacfwd, gg.jacrev):
        for j, jj in zip(ours(case[1], argnums=nums)(*args), jjs):
            np.testing.assert_allclose(j.numpy(), jj, rtol=1e-10, atol=1e-12)


HESSIAN_CASES = [c for c in CASES if c[0] in (
    "tan", "pow_xy", "norm", "matmul", "tanh", "softmax", "bce_logits", "cce_logits", "getitem",)]


@pytest.mark.parametrize("case", HESSIAN_CASES, ids=[c[0] for c in HESSIAN_CASES])
def test_hessian_against_jax(case, jax):
    jnp = jax.numpy
    args = _args(case, "cpu", seed=4)
    arrs = [a.numpy() for a in args]
    fj = lambda *a: case[2](jnp, *a)  # noqa: E731
    h = gg.hessian(case[1])(*args)
    hj = jax.hessian(fj)(*arrs)
    assert h.shape == np.shape(hj)
    np.testing.assert_allclose(h.numpy(), np.asarray(hj), rtol=1e-9, atol=1e-11)


def test_hvp_against_jax(jax):
    jnp = jax.numpy
    x = np.array([0.3, -0.2, 1.1])
    v = np.array([1.0, 0.5, -2.0])

    def fj(x):
        return jnp.sum(jnp.tanh(x) ** 2) + jnp.log(jnp.sum(jnp.exp(x)))

    def fg(x):
        return gg.sum(gg.tanh(x) ** 2) + gg.logsumexp(x)

    expect = np.asarray(jax.jvp(jax.grad(fj), (x,), (v,))[1])
    xs, vs = gg.constant(x, dtype="float64"), gg.constant(v, dtype="float64")
    np.testing.assert_allclose(gg.hvp(fg, (xs,), (vs,)).numpy(), expect, rtol=1e-12)
    np.testing.assert_allclose(gg.jvp(gg.grad(fg), (xs,), (vs,))[1].numpy(), expect, rtol=1e-12)
