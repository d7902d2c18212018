"""The NumPy function set: forward values against NumPy, gradients to second order, and the edge
cases that once gave silently wrong gradients."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.testing import check_grad


def _t(a, device):
    return gg.tensor(np.asarray(a, dtype=np.float64), device=device)


# -- lists of tensors, powers at zero, constant outputs, argnums -----------------------------------


@pytest.mark.parametrize(
    "f, want",
    [
        (lambda x: gg.mean([x, x + 2]), 1.0),
        (lambda x: gg.sum([x, x]), 2.0),
        (lambda x: gg.sum(((x, x), (x, 3.0 * x))), 6.0),
        (lambda x: gg.sum([[x, 1.0], [x, x]]), 3.0),
        (lambda x: gg.norm([x, x + 2]), (2 * 1.0 + 2) / np.sqrt(1.0 + 9.0)),
        (lambda x: gg.exp([x, 2 * x]).sum(), np.e + 2 * np.e**2),
        (lambda x: (gg.tensor([1.0, 2.0], dtype="float64") * [x, x]).sum(), 3.0),
        (lambda x: gg.stack([x, [x, x][1]]).sum(), 2.0),
    ],
)
def test_list_of_tensors_keeps_its_gradient(f, want):
    assert float(gg.grad(f)(gg.tensor(1.0, dtype="float64"))) == pytest.approx(want)


def test_list_of_tensors_second_order(device):
    x = _t([0.3, -0.7], device)
    check_grad(lambda x: gg.sum([x * x, gg.sin(x)], axis=0), [x], order=2)


def test_list_of_tensors_of_different_shapes_is_refused():
    x = gg.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="different shapes"):
        gg.sum([x, x[0]])


@pytest.mark.parametrize("order", [1, 2, 3])
def test_power_zero_has_zero_gradient_at_zero(order):
    f = lambda x: x**0  # noqa: E731
    for _ in range(order):
        f = gg.grad(f)
    assert float(f(gg.tensor(0.0, dtype="float64"))) == 0.0


def test_power_zero_tensor_exponent():
    g = gg.grad(lambda x: gg.pow(x, gg.zeros(())))(gg.tensor(0.0))
    assert float(g) == 0.0
    g2 = gg.grad(gg.grad(lambda x: x**1))(gg.tensor(0.0))
    assert float(g2) == 0.0


def test_constant_zero_base_power():
    assert float(gg.grad(lambda y: 0.0**y)(2.0)) == 0.0
    assert float(gg.grad(lambda y: 0**y)(2.0)) == 0.0
    assert float(gg.grad(lambda y: 2.0**y)(3.0)) == pytest.approx(8 * np.log(2.0))


@pytest.mark.parametrize("const", [1.0, 3, np.float64(1.5), np.array(2.0)])
def test_constant_output_has_zero_gradient(const):
    g = gg.grad(lambda x: const)(2.0)
    assert float(g) == 0.0
    _, g = gg.value_and_grad(lambda x, y: const, argnums=(0, 1))(gg.ones(3), 2.0)
    assert np.all(g[0].numpy() == 0) and float(g[1]) == 0.0


def test_repeated_argnums_are_refused():
    with pytest.raises(ValueError, match="repeats"):
        gg.grad(lambda a, b: a * b, argnums=(0, 0))(1.0, 2.0)
    with pytest.raises(ValueError, match="repeats"):
        gg.grad(lambda a, b: a * b, argnums=(1, -1))(1.0, 2.0)


# -- functions against NumPy, gradients to second order ----------------------------------------------

R = np.random.default_rng(7)


def _z0(v):
    """A 2-vector with z = 0 (NumPy 2.5 no longer takes 2-vectors in np.cross, the reference)."""
    return np.concatenate([v, np.zeros(v.shape[:-1] + (1,))], axis=-1)


def _a(*shape, lo=-1.0, hi=1.0):
    return R.uniform(lo, hi, size=shape)


# (id, gpugrad function, NumPy function, inputs): both functions take the same positional inputs
UNARY = [
    ("sinh", gg.sinh, np.sinh, [_a(2, 3)]),
    ("cosh", gg.cosh, np.cosh, [_a(2, 3)]),
    ("arcsin", gg.arcsin, np.arcsin, [_a(4, lo=-0.8, hi=0.8)]),
    ("arccos", gg.arccos, np.arccos, [_a(4, lo=-0.8, hi=0.8)]),
    ("arctan", gg.arctan, np.arctan, [_a(4)]),
    ("arcsinh", gg.arcsinh, np.arcsinh, [_a(2, 3)]),
    ("arccosh", gg.arccosh, np.arccosh, [_a(2, 3, lo=1.2, hi=3.0)]),
    ("arctanh", gg.arctanh, np.arctanh, [_a(2, 3, lo=-0.8, hi=0.8)]),
    ("log2", gg.log2, np.log2, [_a(2, 3, lo=0.2, hi=3.0)]),
    ("log10", gg.log10, np.log10, [_a(2, 3, lo=0.2, hi=3.0)]),
    ("exp2", gg.exp2, np.exp2, [_a(2, 3)]),
    ("rad2deg", gg.rad2deg, np.rad2deg, [_a(3)]),
    ("deg2rad", gg.deg2rad, np.deg2rad, [_a(3) * 90]),
    ("reciprocal", gg.reciprocal, np.reciprocal, [_a(2, 3, lo=0.5, hi=2.0)]),
    ("sinc", gg.sinc, np.sinc, [_a(2, 3, lo=0.1, hi=1.5)]),
    ("arctan2", gg.arctan2, np.arctan2, [_a(2, 3), _a(3, lo=0.2, hi=1.0)]),
    ("hypot", gg.hypot, np.hypot, [_a(2, 3), _a(2, 1)]),
    ("logaddexp", gg.logaddexp, np.logaddexp, [_a(2, 3), _a(3)]),
    ("logaddexp2", gg.logaddexp2, np.logaddexp2, [_a(2, 3), _a(3)]),
    ("mod", gg.mod, np.mod, [_a(2, 3, lo=0.1, hi=3.0), _a(3, lo=0.7, hi=0.9)]),
    ("mod-op", lambda a, b: a % b, lambda a, b: a % b, [_a(2, 3) * 3, _a(2, 3, lo=-0.9, hi=-0.7)]),
    ("rmod-op", lambda a: 2.5 % a, lambda a: 2.5 % a, [_a(4, lo=0.6, hi=0.9)]),
]

REDUCE = [
    ("prod", gg.prod, np.prod, [_a(2, 3)]),
    ("prod-axis", lambda x: gg.prod(x, axis=1, keepdims=True), lambda x: np.prod(x, 1, keepdims=True), [_a(2, 3)]),
    (
        "prod-zeros",
        lambda x: gg.prod(x, axis=0),
        lambda x: np.prod(x, 0),
        [np.array([[0.0, 2.0], [0.0, 3.0], [1.5, 0.5]])],
    ),
    ("prod-method", lambda x: x.prod(axis=(0, 2)), lambda x: x.prod(axis=(0, 2)), [_a(2, 2, 2)]),
    ("cumsum", lambda x: gg.cumsum(x, axis=1), lambda x: np.cumsum(x, axis=1), [_a(2, 3)]),
    ("cumsum-flat", lambda x: x.cumsum(), lambda x: x.cumsum(), [_a(2, 3)]),
    (
        "cumprod",
        lambda x: gg.cumprod(x, axis=0),
        lambda x: np.cumprod(x, axis=0),
        [np.array([[0.5, 0.0], [2.0, 3.0], [-1.0, 1.5]])],
    ),
    ("var", lambda x: gg.var(x, axis=0), lambda x: np.var(x, axis=0), [_a(3, 2)]),
    ("var-ddof", lambda x: x.var(ddof=1), lambda x: x.var(ddof=1), [_a(3, 2)]),
    ("std", lambda x: gg.std(x, axis=1, keepdims=True), lambda x: np.std(x, axis=1, keepdims=True), [_a(2, 3)]),
    ("std-method", lambda x: x.std(), lambda x: x.std(), [_a(2, 3)]),
    ("trace", gg.trace, np.trace, [_a(3, 3)]),
    ("trace-offset", lambda x: gg.trace(x, 1, 1, 2), lambda x: np.trace(x, 1, 1, 2), [_a(2, 3, 4)]),
]

ARRANGE = [
    ("repeat", lambda x: gg.repeat(x, 2, axis=1), lambda x: np.repeat(x, 2, axis=1), [_a(2, 3)]),
    ("repeat-flat", lambda x: gg.repeat(x, [1, 0, 2, 1]), lambda x: np.repeat(x, [1, 0, 2, 1]), [_a(2, 2)]),
    ("roll", lambda x: gg.roll(x, 1, axis=1), lambda x: np.roll(x, 1, axis=1), [_a(2, 3)]),
    ("roll-flat", lambda x: gg.roll(x, -2), lambda x: np.roll(x, -2), [_a(2, 3)]),
    ("roll-axes", lambda x: gg.roll(x, (1, 2), (0, 1)), lambda x: np.roll(x, (1, 2), (0, 1)), [_a(2, 3)]),
    ("vstack", lambda a, b: gg.vstack([a, b]), lambda a, b: np.vstack([a, b]), [_a(3), _a(2, 3)]),
    ("hstack", lambda a, b: gg.hstack((a, b)), lambda a, b: np.hstack((a, b)), [_a(2, 1), _a(2, 3)]),
    ("hstack-1d", lambda a, b: gg.hstack([a, b]), lambda a, b: np.hstack([a, b]), [_a(2), _a(3)]),
    ("dstack", lambda a, b: gg.dstack([a, b]), lambda a, b: np.dstack([a, b]), [_a(2, 3), _a(2, 3)]),
    ("column_stack", lambda a, b: gg.column_stack([a, b]), lambda a, b: np.column_stack([a, b]), [_a(3), _a(3, 2)]),
    (
        "concatenate-none",
        lambda a, b: gg.concatenate([a, b], axis=None),
        lambda a, b: np.concatenate([a, b], axis=None),
        [_a(2, 2), _a(3)],
    ),
    ("append", gg.append, np.append, [_a(2, 2), _a(3)]),
    ("append-axis", lambda a, b: gg.append(a, b, axis=0), lambda a, b: np.append(a, b, axis=0), [_a(2, 2), _a(1, 2)]),
    ("split", lambda x: gg.split(x, 3, axis=1)[1], lambda x: np.split(x, 3, axis=1)[1], [_a(2, 6)]),
    ("split-at", lambda x: gg.split(x, [1, 4])[2], lambda x: np.split(x, [1, 4])[2], [_a(6)]),
    ("array_split", lambda x: gg.array_split(x, 4)[0], lambda x: np.array_split(x, 4)[0], [_a(7, 2)]),
    ("vsplit", lambda x: gg.vsplit(x, 2)[1], lambda x: np.vsplit(x, 2)[1], [_a(4, 2)]),
    ("hsplit", lambda x: gg.hsplit(x, 2)[0], lambda x: np.hsplit(x, 2)[0], [_a(2, 4)]),
    ("flip", lambda x: gg.flip(x, 1), lambda x: np.flip(x, 1), [_a(2, 3)]),
    ("flip-all", gg.flip, np.flip, [_a(2, 3)]),
    ("fliplr", gg.fliplr, np.fliplr, [_a(2, 3)]),
    ("flipud", gg.flipud, np.flipud, [_a(2, 3)]),
    *[(f"rot90-{k}", lambda x, k=k: gg.rot90(x, k), lambda x, k=k: np.rot90(x, k), [_a(2, 3)]) for k in (1, 2, 3, -1)],
    ("rot90-axes", lambda x: gg.rot90(x, 1, (2, 0)), lambda x: np.rot90(x, 1, (2, 0)), [_a(2, 3, 2)]),
    ("moveaxis", lambda x: gg.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1), [_a(2, 3, 4)]),
    (
        "moveaxis-many",
        lambda x: gg.moveaxis(x, [0, 1], [2, 0]),
        lambda x: np.moveaxis(x, [0, 1], [2, 0]),
        [_a(2, 3, 4)],
    ),
    ("swapaxes", lambda x: gg.swapaxes(x, 0, 2), lambda x: np.swapaxes(x, 0, 2), [_a(2, 3, 4)]),
    ("tile", lambda x: gg.tile(x, (2, 1, 2)), lambda x: np.tile(x, (2, 1, 2)), [_a(2, 3)]),
    ("tile-int", lambda x: gg.tile(x, 3), lambda x: np.tile(x, 3), [_a(2, 2)]),
    ("triu", lambda x: gg.triu(x, 1), lambda x: np.triu(x, 1), [_a(3, 4)]),
    ("tril", gg.tril, np.tril, [_a(2, 3, 3)]),
    ("diag-1d", lambda x: gg.diag(x, -1), lambda x: np.diag(x, -1), [_a(3)]),
    ("diag-2d", lambda x: gg.diag(x, 1), lambda x: np.diag(x, 1), [_a(3, 4)]),
    ("diagonal", lambda x: gg.diagonal(x, 0, 2, 0), lambda x: np.diagonal(x, 0, 2, 0), [_a(3, 2, 3)]),
    ("sort", gg.sort, np.sort, [_a(3, 4)]),
    ("sort-axis0", lambda x: gg.sort(x, axis=0), lambda x: np.sort(x, axis=0), [_a(3, 4)]),
    ("sort-none", lambda x: gg.sort(x, axis=None), lambda x: np.sort(x, axis=None), [_a(3, 2)]),
    (
        "take_along_axis",
        lambda x: gg.take_along_axis(x, np.array([[2, 0], [1, 1]]), 1),
        lambda x: np.take_along_axis(x, np.array([[2, 0], [1, 1]]), 1),
        [_a(2, 3)],
    ),
    (
        "pad",
        lambda x: gg.pad(x, ((1, 0), (2, 1)), constant_values=0.5),
        lambda x: np.pad(x, ((1, 0), (2, 1)), constant_values=0.5),
        [_a(2, 3)],
    ),
    *[
        (f"pad-{m}", lambda x, m=m: gg.pad(x, 2, mode=m), lambda x, m=m: np.pad(x, 2, mode=m), [_a(3, 3)])
        for m in ("edge", "reflect", "symmetric", "wrap")
    ],
    (
        "select",
        lambda x: gg.select([x > 0.3, x < -0.2], [x * x, 2 * x], default=1.0),
        lambda x: np.select([x > 0.3, x < -0.2], [x * x, 2 * x], default=1.0),
        [_a(2, 4)],
    ),
    ("ravel", lambda x: x.ravel(), np.ravel, [_a(2, 3)]),
    ("flatten", lambda x: x.flatten(), lambda x: x.flatten(), [_a(2, 3)]),
    ("atleast_3d", gg.atleast_3d, np.atleast_3d, [_a(3)]),
]

PRODUCTS = [
    (
        "einsum-matmul",
        lambda a, b: gg.einsum("ij,jk->ik", a, b),
        lambda a, b: np.einsum("ij,jk->ik", a, b),
        [_a(2, 3), _a(3, 2)],
    ),
    (
        "einsum-implicit",
        lambda a, b: gg.einsum("ij,jk", a, b),
        lambda a, b: np.einsum("ij,jk", a, b),
        [_a(2, 3), _a(3, 2)],
    ),
    ("einsum-trace", lambda a: gg.einsum("ii", a), lambda a: np.einsum("ii", a), [_a(3, 3)]),
    ("einsum-diag", lambda a: gg.einsum("ii->i", a), lambda a: np.einsum("ii->i", a), [_a(3, 3)]),
    (
        "einsum-repeated3",
        lambda a, b: gg.einsum("iji,j->ij", a, b),
        lambda a, b: np.einsum("iji,j->ij", a, b),
        [_a(2, 3, 2), _a(3)],
    ),
    ("einsum-sum", lambda a: gg.einsum("ijk->j", a), lambda a: np.einsum("ijk->j", a), [_a(2, 3, 2)]),
    ("einsum-outer", lambda a, b: gg.einsum("i,j", a, b), lambda a, b: np.einsum("i,j", a, b), [_a(2), _a(3)]),
    (
        "einsum-ellipsis",
        lambda a, b: gg.einsum("...ij,...jk->...ik", a, b),
        lambda a, b: np.einsum("...ij,...jk->...ik", a, b),
        [_a(2, 2, 3), _a(3, 2)],
    ),
    (
        "einsum-ellipsis-bcast",
        lambda a, b: gg.einsum("...i,...i->...", a, b),
        lambda a, b: np.einsum("...i,...i->...", a, b),
        [_a(1, 3, 2), _a(2, 1, 2)],
    ),
    ("einsum-ellipsis-implicit", lambda a: gg.einsum("i...->...", a), lambda a: np.einsum("i...->...", a), [_a(2, 3)]),
    (
        "einsum-three",
        lambda a, b, c: gg.einsum("ij,jk,kl->il", a, b, c),
        lambda a, b, c: np.einsum("ij,jk,kl->il", a, b, c),
        [_a(2, 3), _a(3, 2), _a(2, 2)],
    ),
    (
        "einsum-four",
        lambda a, b, c, d: gg.einsum("i,i,ij,j->", a, b, c, d),
        lambda a, b, c, d: np.einsum("i,i,ij,j->", a, b, c, d),
        [_a(2), _a(2), _a(2, 3), _a(3)],
    ),
    (
        "einsum-scalar",
        lambda a, b: gg.einsum(",ij->ji", a, b),
        lambda a, b: np.einsum(",ij->ji", a, b),
        [np.array(1.5), _a(2, 3)],
    ),
    ("tensordot", gg.tensordot, np.tensordot, [_a(2, 3, 2), _a(3, 2, 2)]),
    (
        "tensordot-axes",
        lambda a, b: gg.tensordot(a, b, ([0, 2], [2, 0])),
        lambda a, b: np.tensordot(a, b, ([0, 2], [2, 0])),
        [_a(2, 3, 2), _a(2, 4, 2)],
    ),
    ("tensordot-0", lambda a, b: gg.tensordot(a, b, 0), lambda a, b: np.tensordot(a, b, 0), [_a(2), _a(3)]),
    ("dot-vv", gg.dot, np.dot, [_a(3), _a(3)]),
    ("dot-mv", gg.dot, np.dot, [_a(2, 3), _a(3)]),
    ("dot-vm", gg.dot, np.dot, [_a(3), _a(3, 2)]),
    ("dot-nd", gg.dot, np.dot, [_a(2, 2, 3), _a(2, 3, 2)]),
    ("dot-0d", gg.dot, np.dot, [np.array(2.5), _a(2, 3)]),
    ("dot-method", lambda a, b: a.dot(b), lambda a, b: a.dot(b), [_a(2, 3), _a(3, 2)]),
    ("inner", gg.inner, np.inner, [_a(2, 3), _a(4, 3)]),
    ("inner-0d", gg.inner, np.inner, [_a(3), np.array(-1.5)]),
    ("outer", gg.outer, np.outer, [_a(2, 2), _a(3)]),
    ("vdot", gg.vdot, np.vdot, [_a(2, 2), _a(4)]),
    ("kron", gg.kron, np.kron, [_a(2, 2), _a(3, 2)]),
    ("kron-ranks", gg.kron, np.kron, [_a(3), _a(2, 2)]),
    ("cross", gg.cross, np.cross, [_a(2, 3), _a(3)]),
    ("cross-2x3", gg.cross, lambda a, b: np.cross(_z0(a), b), [_a(2), _a(2, 3)]),
    ("cross-2x2", gg.cross, lambda a, b: a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0], [_a(4, 2), _a(2)]),
    ("cross-axis", lambda a, b: gg.cross(a, b, axis=0), lambda a, b: np.cross(a, b, axis=0), [_a(3, 2), _a(3, 2)]),
]

CASES = UNARY + REDUCE + ARRANGE + PRODUCTS


@pytest.mark.parametrize("name, f, ref, inputs", CASES, ids=[c[0] for c in CASES])
def test_function_values_and_gradients(name, f, ref, inputs, device):
    ts = [_t(a, device) for a in inputs]
    got = f(*ts)
    want = ref(*inputs)
    assert got.dtype == np.float64 and got.device == ts[0].device
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    check_grad(f, ts, order=2)


# -- linear algebra ----------------------------------------------------------------------------------

LA = gg.linalg
_M = _a(3, 3) + 3 * np.eye(3)
_S = _M @ _M.T
_BS = np.stack([_S, _S + np.diag([1.0, 2.0, 3.0])])


def _rebuild_eigh(a):
    w, v = LA.eigh(a)
    return (v * w[..., None, :]) @ v.mT


def _rebuild_svd(a):
    u, s, vh = LA.svd(a, full_matrices=False)
    return (u * s[..., None, :]) @ vh


LINALG = [
    ("inv", LA.inv, np.linalg.inv, [_M]),
    ("inv-batch", LA.inv, np.linalg.inv, [np.stack([_M, _M.T])]),
    ("det", LA.det, np.linalg.det, [_M]),
    ("det-batch", LA.det, np.linalg.det, [np.stack([_M, 2 * _M])]),
    ("slogdet", lambda a: LA.slogdet(a)[1], lambda a: np.linalg.slogdet(a)[1], [-_M]),
    ("solve", LA.solve, np.linalg.solve, [_M, _a(3, 2)]),
    ("solve-vector", LA.solve, np.linalg.solve, [_M, _a(3)]),
    ("solve-batch", LA.solve, np.linalg.solve, [np.stack([_M, _M.T]), _a(3, 2)]),
    ("pinv", LA.pinv, np.linalg.pinv, [_a(3, 2)]),
    ("matrix_power", lambda a: LA.matrix_power(a, 3), lambda a: np.linalg.matrix_power(a, 3), [_M / 3]),
    ("matrix_power-neg", lambda a: LA.matrix_power(a, -2), lambda a: np.linalg.matrix_power(a, -2), [_M]),
    ("cholesky", LA.cholesky, np.linalg.cholesky, [_S]),
    ("cholesky-batch", LA.cholesky, np.linalg.cholesky, [_BS]),
    ("eigvalsh", LA.eigvalsh, np.linalg.eigvalsh, [_BS]),
    ("eigh-vectors", lambda a: LA.eigh(a)[1] ** 2, lambda a: np.linalg.eigh(a)[1] ** 2, [_S]),
    ("eigh-rebuild", _rebuild_eigh, lambda a: np.tril(a) + np.tril(a, -1).T, [_a(3, 3)]),
    ("svd-values", lambda a: LA.svd(a, compute_uv=False), lambda a: np.linalg.svd(a, compute_uv=False), [_a(2, 3, 2)]),
    (
        "svd-tall",
        lambda a: LA.svd(a, full_matrices=False)[0] ** 2,
        lambda a: np.linalg.svd(a, full_matrices=False)[0] ** 2,
        [_a(4, 2)],
    ),
    (
        "svd-wide",
        lambda a: LA.svd(a, full_matrices=False)[2] ** 2,
        lambda a: np.linalg.svd(a, full_matrices=False)[2] ** 2,
        [_a(2, 4)],
    ),
    ("svd-rebuild", _rebuild_svd, lambda a: a, [_a(3, 4)]),
    ("qr", lambda a: LA.qr(a)[0] * 2 + LA.qr(a)[1], lambda a: np.linalg.qr(a)[0] * 2 + np.linalg.qr(a)[1], [_a(3, 3)]),
    ("qr-tall", lambda a: LA.qr(a)[0], lambda a: np.linalg.qr(a)[0], [_a(4, 2)]),
    ("qr-r", lambda a: LA.qr(a, mode="r"), lambda a: np.linalg.qr(a, mode="r"), [_a(4, 3)]),
]

_NORMS = (
    [(o, None, 4) for o in (None, 2, 1, 3, 0.5, np.inf, -np.inf, -1)]
    + [(o, None, (3, 4)) for o in (None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf)]
    + [(o, (2, 0), (3, 2, 4)) for o in ("fro", "nuc", 1, 2, -np.inf)]
    + [(o, 1, (2, 3, 2)) for o in (None, 3, np.inf)]
)
for _o, _ax, _shape in _NORMS:
    LINALG.append(
        (
            f"norm-{_o}-{_ax}",
            lambda x, o=_o, ax=_ax: LA.norm(x, o, ax),
            lambda x, o=_o, ax=_ax: np.linalg.norm(x, o, ax),
            [_a(*(_shape if isinstance(_shape, tuple) else (_shape,)))],
        )
    )


@pytest.mark.parametrize("name, f, ref, inputs", LINALG, ids=[c[0] for c in LINALG])
def test_linalg_values_and_gradients(name, f, ref, inputs, device):
    ts = [_t(a, device) for a in inputs]
    got = f(*ts)
    np.testing.assert_allclose(got.numpy(), ref(*inputs), rtol=1e-10, atol=1e-10)
    check_grad(f, ts, order=2)


@pytest.mark.parametrize("ord", [None, 1, np.inf, "nuc", 2])
@pytest.mark.parametrize("keepdims", [False, True])
def test_norm_keepdims_and_top_level(ord, keepdims):
    x = _a(2, 3, 3)
    axis = (1, 2) if ord in ("nuc", 2) else 2
    got = gg.norm(gg.tensor(x), ord=ord, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(got.numpy(), np.linalg.norm(x, ord, axis, keepdims), rtol=1e-12)


def test_norm_zero_counts_nonzeros_as_a_constant():
    x = gg.tensor([0.0, 2.0, -1.0])
    assert float(LA.norm(x, 0)) == 2.0
    assert float(gg.grad(lambda t: LA.norm(t, 0))(x).sum()) == 0.0


MORE = [
    ("diff", lambda x: gg.diff(x, 2, axis=0), lambda x: np.diff(x, 2, axis=0), [_a(4, 3)]),
    ("gradient", gg.gradient, np.gradient, [_a(5)]),
    (
        "gradient-2",
        lambda x: gg.gradient(x, 0.5, axis=1, edge_order=2),
        lambda x: np.gradient(x, 0.5, axis=1, edge_order=2),
        [_a(2, 4)],
    ),
    ("gradient-axes", lambda x: gg.gradient(x)[1], lambda x: np.gradient(x)[1], [_a(3, 4)]),
    ("partition", lambda x: gg.partition(x, 2), lambda x: np.partition(x, 2), [_a(2, 5)]),
    ("rollaxis", lambda x: gg.rollaxis(x, 2), lambda x: np.rollaxis(x, 2), [_a(2, 3, 4)]),
    ("rollaxis-start", lambda x: gg.rollaxis(x, 0, 3), lambda x: np.rollaxis(x, 0, 3), [_a(2, 3, 4)]),
    ("nan_to_num", gg.nan_to_num, np.nan_to_num, [_a(2, 3)]),
    ("fmax", gg.fmax, np.fmax, [_a(2, 3), _a(3)]),
    ("fmin", gg.fmin, np.fmin, [_a(2, 3), _a(3)]),
    ("r_", lambda a, b: gg.r_[a, 2.0, b], lambda a, b: np.r_[a, 2.0, b], [_a(2), _a(3)]),
    ("c_", lambda a, b: gg.c_[a, b], lambda a, b: np.c_[a, b], [_a(3), _a(3, 2)]),
]


@pytest.mark.parametrize("name, f, ref, inputs", MORE, ids=[c[0] for c in MORE])
def test_more_functions(name, f, ref, inputs, device):
    test_function_values_and_gradients(name, f, ref, inputs, device)


def test_nan_handling_of_fmax_and_nan_to_num():
    a = gg.tensor([np.nan, 1.0, 2.0], dtype="float64")
    b = gg.tensor([0.5, np.nan, 3.0], dtype="float64")
    np.testing.assert_array_equal(gg.fmax(a, b).numpy(), [0.5, 1.0, 3.0])
    ga, gb = gg.grad(lambda a, b: gg.fmax(a, b).sum(), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga.numpy(), [0, 1, 0])
    np.testing.assert_array_equal(gb.numpy(), [1, 0, 1])
    x = gg.tensor([np.nan, np.inf, 2.0], dtype="float64")
    np.testing.assert_array_equal(gg.grad(lambda x: gg.nan_to_num(x).sum())(x).numpy(), [0, 0, 1])


# -- zero gradients, as HIPS autograd has them ------------------------------------------------------


@pytest.mark.parametrize("fn", [gg.floor, gg.ceil, gg.trunc, gg.rint, gg.round, gg.sign, lambda x: x // 0.3])
def test_piecewise_constant_functions_have_zero_gradient(fn, device):
    x = _t([0.3, -1.7, 2.5], device)
    g = gg.grad(lambda x: (fn(x) * x).sum())(x)
    np.testing.assert_array_equal(g.numpy(), fn(x).numpy())


def test_sort_gradient_goes_back_to_each_place():
    x = gg.tensor([3.0, 1.0, 2.0], dtype="float64")
    g = gg.grad(lambda x: (gg.sort(x) * gg.tensor([1.0, 10.0, 100.0], dtype="float64")).sum())(x)
    np.testing.assert_array_equal(g.numpy(), [100.0, 1.0, 10.0])
    assert gg.argsort(x).dtype.kind == "i"


def test_prod_with_zeros_is_exact():
    x = gg.tensor([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0]], dtype="float64")
    g = gg.grad(lambda x: gg.prod(x, axis=1).sum())(x)
    np.testing.assert_array_equal(g.numpy(), [[6.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    h = gg.hessian(lambda x: gg.prod(x))(gg.tensor([0.0, 2.0, 3.0], dtype="float64"))
    np.testing.assert_array_equal(h.numpy(), [[0, 3, 2], [3, 0, 0], [2, 0, 0]])


# -- Tensor methods and operators ------------------------------------------------------------------


def test_tensor_methods_follow_numpy(device):
    a = _a(3, 4)
    t = _t(a, device)
    for got, want in [
        (t.prod(), a.prod()),
        (t.prod(axis=0), a.prod(axis=0)),
        (t.cumsum(axis=1), a.cumsum(axis=1)),
        (t.cumprod(), a.cumprod()),
        (t.std(), a.std()),
        (t.var(axis=1, ddof=1), a.var(axis=1, ddof=1)),
        (t.std(correction=1), a.std(ddof=1)),
        (t % 0.3, a % 0.3),
        (0.7 % (t + 2), 0.7 % (a + 2)),
        (t // 0.3, a // 0.3),
        (2.0 // (t + 2), 2.0 // (a + 2)),
        (t.ravel(), a.ravel()),
        (t.flatten(), a.flatten()),
        (t[:3, :3].trace(), a[:3, :3].trace()),
        (t.diagonal(1), a.diagonal(1)),
        (t.swapaxes(0, 1), a.swapaxes(0, 1)),
        (t.dot(t.T), a.dot(a.T)),
        (t.round(1), a.round(1)),
        (t.argsort(axis=0), a.argsort(axis=0, kind="stable")),
    ]:
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


# -- dtypes, empty and NaN inputs ------------------------------------------------------------------

ELEMENTWISE = [gg.sinh, gg.cosh, gg.arcsinh, gg.arctan, gg.log2, gg.exp2, gg.rad2deg, gg.reciprocal, gg.sinc]


@pytest.mark.parametrize("fn", ELEMENTWISE, ids=lambda f: f.__name__)
def test_real_functions_of_integers_are_float32(fn):
    assert fn(gg.tensor([1, 2, 3])).dtype == np.float32
    assert fn(gg.tensor([1.0, 2.0], dtype="float16")).dtype == np.float16


@pytest.mark.parametrize(
    "fn",
    [
        gg.std,
        gg.var,
        gg.linalg.norm,
        lambda x: gg.arctan2(x, 2),
        lambda x: gg.hypot(x, x),
        lambda x: gg.logaddexp(x, 1),
        lambda x: gg.linalg.det(gg.reshape(x, (2, 2))),
    ],
)
def test_more_real_functions_of_integers_are_float32(fn):
    assert fn(gg.tensor([1, 2, 3, 4])).dtype == np.float32


@pytest.mark.parametrize(
    "fn",
    [
        gg.prod,
        gg.cumsum,
        gg.std,
        lambda x: x % 0.7,
        gg.sinh,
        gg.sort,
        lambda x: gg.einsum("ij,jk", x, x.T),
        lambda x: gg.tensordot(x, x, 2),
        lambda x: gg.kron(x, x),
        lambda x: gg.roll(x, 1, 0),
        gg.trace,
        lambda x: gg.pad(x, 1, mode="reflect"),
        lambda x: gg.linalg.norm(x, "nuc"),
    ],
)
def test_float32_stays_float32_and_gradients_keep_the_dtype(fn):
    x = gg.tensor(_a(3, 3), dtype="float32")
    y = fn(x)
    assert y.dtype == np.float32
    g = gg.grad(lambda x: fn(x).sum())(x)
    assert g.dtype == np.float32 and g.shape == x.shape


def test_einsum_promotes_as_the_dtype_table():
    a = gg.tensor(_a(2, 2), dtype="float32")
    b = gg.tensor(_a(2, 2), dtype="float64")
    i = gg.tensor([[1, 2], [3, 4]])
    assert gg.einsum("ij,jk", a, i).dtype == np.float32
    assert gg.einsum("ij,jk", a, b).dtype == np.float64
    ga = gg.grad(lambda a: gg.einsum("ij,jk->", a, b))(a)
    assert ga.dtype == np.float32
    assert gg.einsum("ij,jk", i, i).dtype == i.dtype


EMPTY = [
    ("sinh", gg.sinh, np.sinh, (0, 3)),
    ("prod", lambda x: gg.prod(x, axis=0), lambda x: np.prod(x, axis=0), (0, 3)),
    ("prod-all", gg.prod, np.prod, (0,)),
    ("cumsum", lambda x: gg.cumsum(x, axis=0), lambda x: np.cumsum(x, axis=0), (0, 3)),
    ("cumprod", gg.cumprod, np.cumprod, (0,)),
    ("var", lambda x: gg.var(x, axis=1), lambda x: np.var(x, axis=1), (0, 3)),
    ("sort", gg.sort, np.sort, (2, 0)),
    ("flip", gg.flip, np.flip, (0, 2)),
    ("roll", lambda x: gg.roll(x, 1, 0), lambda x: np.roll(x, 1, 0), (0, 2)),
    ("repeat", lambda x: gg.repeat(x, 2, 0), lambda x: np.repeat(x, 2, 0), (0, 2)),
    ("tile", lambda x: gg.tile(x, 2), lambda x: np.tile(x, 2), (0, 2)),
    ("einsum", lambda x: gg.einsum("ij,kj->ik", x, x), lambda x: np.einsum("ij,kj->ik", x, x), (0, 2)),
    ("einsum-sum", lambda x: gg.einsum("ij->j", x), lambda x: np.einsum("ij->j", x), (0, 2)),
    ("tensordot", lambda x: gg.tensordot(x, x, ([0], [0])), lambda x: np.tensordot(x, x, ([0], [0])), (0, 2)),
    ("outer", lambda x: gg.outer(x, x), lambda x: np.outer(x, x), (0,)),
    ("vstack", lambda x: gg.vstack([x, x]), lambda x: np.vstack([x, x]), (0, 2)),
    ("split", lambda x: gg.array_split(x, 2)[1], lambda x: np.array_split(x, 2)[1], (0, 2)),
    ("triu", gg.triu, np.triu, (0, 2)),
    ("pad", lambda x: gg.pad(x, 1), lambda x: np.pad(x, 1), (0, 2)),
    ("diff", gg.diff, np.diff, (2, 0)),
    ("norm", lambda x: gg.linalg.norm(x, 1, axis=0), lambda x: np.linalg.norm(x, 1, axis=0), (0, 2)),
    ("inv", gg.linalg.inv, np.linalg.inv, (0, 2, 2)),
]


@pytest.mark.parametrize("name, fn, ref, shape", EMPTY, ids=[c[0] for c in EMPTY])
def test_empty_inputs(name, fn, ref, shape, device):
    a = np.zeros(shape)
    x = _t(a, device)
    got = fn(x)
    np.testing.assert_array_equal(got.numpy(), ref(a))
    g = gg.grad(lambda x: fn(x).sum())(x)
    assert g.shape == x.shape


NAN = [
    ("cosh", gg.cosh, np.cosh),
    ("prod", lambda x: gg.prod(x, axis=1), lambda x: np.prod(x, axis=1)),
    ("cumsum", gg.cumsum, np.cumsum),
    ("std", lambda x: gg.std(x, axis=0), lambda x: np.std(x, axis=0)),
    ("sort", gg.sort, np.sort),
    ("einsum", lambda x: gg.einsum("ij,kj->ik", x, x), lambda x: np.einsum("ij,kj->ik", x, x)),
    ("logaddexp", lambda x: gg.logaddexp(x, 0.5), lambda x: np.logaddexp(x, 0.5)),
    ("mod", lambda x: x % 0.7, lambda x: x % 0.7),
    ("roll", lambda x: gg.roll(x, 1), lambda x: np.roll(x, 1)),
    ("norm-inf", lambda x: gg.linalg.norm(x, np.inf, axis=1), lambda x: np.linalg.norm(x, np.inf, axis=1)),
]


@pytest.mark.parametrize("name, fn, ref", NAN, ids=[c[0] for c in NAN])
def test_nan_inputs_propagate_as_in_numpy(name, fn, ref, device):
    a = np.array([[0.5, np.nan, 1.5], [2.0, -1.0, 0.25]])
    x = _t(a, device)
    np.testing.assert_array_equal(fn(x).numpy(), ref(a))
    g = gg.grad(lambda x: fn(x).sum())(x)
    assert g.shape == x.shape
    assert np.isfinite(g.numpy()[1]).all() or name in ("einsum", "std", "norm-inf", "sort")


# -- errors ---------------------------------------------------------------------------------------

X = gg.tensor(_a(2, 3))
SQ = gg.tensor(_a(3, 3))

ERRORS = [
    (lambda: gg.cumsum(X, axis=2), "axis 2"),
    (lambda: gg.prod(X, axis=(0, -2)), r"axis \(0, -2\)"),
    (lambda: gg.std(X, axis=5), "axis 5"),
    (lambda: gg.flip(X, 3), "axis 3"),
    (lambda: gg.roll(X, 1, axis=-3), "axis -3"),
    (lambda: gg.roll(X, (1, 2), axis=(0, 1, 0)), "differ in length"),
    (lambda: gg.repeat(X, [1, 2], axis=1), r"\[1, 2\]"),
    (lambda: gg.moveaxis(X, 0, 4), "axis 4"),
    (lambda: gg.swapaxes(X, 0, 7), "axis 7"),
    (lambda: gg.rot90(X, 1, (0, 0)), "same axis"),
    (lambda: gg.split(X, 2, axis=1), "does not divide into 2"),
    (lambda: gg.diag(gg.ones((2, 2, 2))), r"shape \(2, 2, 2\)"),
    (lambda: gg.triu(gg.ones(3)), r"shape \(3,\)"),
    (lambda: gg.pad(X, -1), "non-negative"),
    (lambda: gg.pad(X, 1, mode="mean"), "'mean'"),
    (lambda: gg.tensordot(X, X, 1), r"\(2, 3\)"),
    (lambda: gg.tensordot(X, X, ([0], [5])), "out of range"),
    (lambda: gg.einsum("ij,jk->ik", X, X), "index 'j'"),
    (lambda: gg.einsum("ij,jk", X), "2 operand"),
    (lambda: gg.einsum("ijk", X), "3 axes"),
    (lambda: gg.einsum("ij->ik", X), "'k'"),
    (lambda: gg.einsum("ij->ii", X), "repeat"),
    (lambda: gg.dot(X, X), r"\(2, 3\)"),
    (lambda: gg.cross(X, X[:, :1]), "dimension must be 2 or 3"),
    (lambda: gg.vstack([X, gg.ones(4)]), r"\(2, 3\) and \(1, 4\)"),
    (lambda: gg.linalg.inv(X), r"square matrices.*\(2, 3\)"),
    (lambda: gg.linalg.solve(SQ, gg.ones(2)), r"\(2,\)"),
    (lambda: gg.linalg.norm(X, "nuc", axis=0), "'nuc'"),
    (lambda: gg.linalg.norm(X, 3, axis=(0, 1)), "ord=3"),
    (lambda: gg.linalg.norm(gg.ones((2, 2, 2)), 1), r"shape \(2, 2, 2\)"),
    (lambda: gg.linalg.matrix_power(SQ, 1.5), "1.5"),
    (lambda: gg.gradient(gg.ones(1)), "too short"),
    (lambda: gg.diff(gg.ones(()), 1), "0-d"),
]


@pytest.mark.parametrize("call, match", ERRORS, ids=[m for _, m in ERRORS])
def test_bad_axes_and_shapes_name_what_was_given(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda c: gg.sinh(c),
        lambda c: gg.prod(c),
        lambda c: gg.einsum("i,i", c, c),
        lambda c: gg.linalg.inv(c.reshape(1, 1)),
        lambda c: gg.vstack([gg.ones(1), c]),
        lambda c: gg.arctan2(gg.ones(1), c),
        lambda c: gg.ones(1) % c,
        lambda c: gg.mean([gg.ones(()), c[0]]),
    ],
)
def test_complex_values_are_refused(call):
    with pytest.raises(TypeError, match="complex"):
        call(np.array([1 + 2j]))


# -- against HIPS autograd --------------------------------------------------------------------------

HIPS = [
    ("einsum", lambda np_: lambda a, b: np_.einsum("i...j,jk->ik...", a, b).sum() ** 2, [_a(2, 3, 2), _a(2, 2)]),
    ("prod", lambda np_: lambda a: np_.prod(a, axis=0).sum(), [np.array([[0.5, 1.5], [2.0, 3.0]])]),
    ("std", lambda np_: lambda a: np_.std(a, axis=1).sum(), [_a(2, 4)]),
    ("cumsum-roll", lambda np_: lambda a: (np_.roll(np_.cumsum(a, axis=1), 1) ** 2).sum(), [_a(2, 3)]),
    ("tensordot", lambda np_: lambda a, b: np_.tensordot(a, b, 1).sum(), [_a(2, 3), _a(3, 2)]),
    ("kron-outer", lambda np_: lambda a, b: np_.sum(np_.kron(a, b) ** 2) + np_.outer(a, b).sum(), [_a(2), _a(3)]),
    (
        "mod-hypot",
        lambda np_: lambda a, b: np_.sum(np_.mod(a, b) * np_.hypot(a, b)),
        [_a(3) + 2, _a(3, lo=0.5, hi=0.9)],
    ),
    ("list-mean", lambda np_: lambda a: np_.mean([a, a * 2 + 1]) ** 2, [_a(3)]),
    ("norm-nuc", lambda np_: lambda a: np_.linalg.norm(a, "nuc"), [_a(3, 2)]),
    ("norm-3", lambda np_: lambda a: np_.linalg.norm(a, 3), [_a(4)]),
    ("eigh", lambda np_: lambda a: (np_.linalg.eigh(a)[1] ** 2 * np_.linalg.eigh(a)[0]).sum(), [_S]),
    ("svd", lambda np_: lambda a: (np_.linalg.svd(a, full_matrices=False)[0] ** 2).sum(), [_a(4, 3)]),
    ("slogdet-solve", lambda np_: lambda a, b: np_.linalg.slogdet(a)[1] + np_.linalg.solve(a, b).sum(), [_M, _a(3)]),
]


@pytest.mark.parametrize("name, make, inputs", HIPS, ids=[c[0] for c in HIPS])
def test_gradients_match_hips_autograd(name, make, inputs):
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    argnums = tuple(range(len(inputs)))
    want = autograd.grad(make(anp), argnums)(*inputs)
    got = gg.grad(make(gg), argnums=argnums)(*[gg.tensor(a) for a in inputs])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-9, atol=1e-12)


def test_ndarray_with_tensor_operators_record_mod():
    a = np.array([2.5, 3.5])
    x = gg.tensor([1.0, 1.5], dtype="float64")
    g = gg.grad(lambda x: (a % x).sum())(x)
    np.testing.assert_allclose(g.numpy(), -np.floor(a / x.numpy()))
    np.testing.assert_array_equal((a // x).numpy(), a // x.numpy())


def test_norm_reduction_and_linalg_norm_of_a_matrix():
    a = _a(3, 4)
    x = gg.tensor(a)
    assert float(gg.norm(x)) == pytest.approx(np.sqrt((a * a).sum()))
    assert float(gg.norm(x, 2)) == pytest.approx(np.sqrt((a * a).sum()))  # a reduction over all elements
    assert float(gg.norm(x, 2, axis=(0, 1))) == pytest.approx(np.linalg.norm(a, 2, axis=(0, 1)))
    assert float(gg.linalg.norm(x, 2)) == pytest.approx(np.linalg.norm(a, 2))
    assert float(gg.norm(x, 1)) == pytest.approx(np.abs(a).sum())
    assert gg.norm(x, np.inf, keepdims=True).shape == (1, 1)
    assert float(gg.linalg.norm(x, 1)) == pytest.approx(np.linalg.norm(a, 1))


def test_asarray_of_a_list_of_tensors_keeps_the_gradient():
    x = gg.tensor(1.5, dtype="float64")
    assert float(gg.grad(lambda x: gg.asarray([x, 2 * x, 1.0]).sum())(x)) == 3.0
    assert float(gg.grad(lambda x: gg.asarray([[x], [x]], dtype="float32").sum())(x)) == 2.0
    assert gg.asarray([x, x], dtype="float32").dtype == np.float32


def test_decompositions_return_numpy_named_results():
    a = gg.tensor(_S)
    assert float(LA.slogdet(a).logabsdet) == pytest.approx(np.linalg.slogdet(_S).logabsdet)
    assert float(LA.slogdet(-a).sign) == np.linalg.slogdet(-_S).sign
    np.testing.assert_allclose(LA.eigh(a).eigenvalues.numpy(), np.linalg.eigh(_S).eigenvalues)
    np.testing.assert_allclose(LA.svd(a).S.numpy(), np.linalg.svd(_S).S)
    np.testing.assert_allclose(np.abs(LA.qr(a).R.numpy()), np.abs(np.linalg.qr(_S).R))


def test_r_and_c_builders_keep_gradients():
    x = gg.tensor([1.0, 2.0], dtype="float64")
    g = gg.grad(lambda x: (gg.r_[x, 0:2, 3.0] ** 2).sum())(x)
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(gg.r_[0:1:3j].numpy(), np.r_[0:1:3j])


@pytest.mark.parametrize("x", [0.0, 0.01, -0.019, 0.021, 0.7])
def test_sinc_derivatives_are_right_at_and_near_zero(x):
    # sinc = Σ (−1)^k (πx)^2k / (2k+1)!: compare three orders with the series' (exact near 0) or
    # central differences of the previous order (away from it)
    f1 = gg.grad(gg.sinc)
    f2 = gg.grad(f1)
    f3 = gg.grad(f2)
    t = gg.tensor(x, dtype="float64")
    if x == 0.0:
        assert (float(f1(t)), float(f2(t)), float(f3(t))) == pytest.approx((0.0, -(np.pi**2) / 3, 0.0))
    h = 1e-5
    for f, df in ((gg.sinc, f1), (f1, f2), (f2, f3)):
        num = (float(f(gg.tensor(x + h, dtype="float64"))) - float(f(gg.tensor(x - h, dtype="float64")))) / (2 * h)
        assert float(df(t)) == pytest.approx(num, rel=1e-5, abs=1e-5)


def test_cumprod_without_zeros_is_linear_in_memory_and_right():
    a = _a(3, 4, lo=0.5, hi=1.5)
    check_grad(lambda x: gg.cumprod(x, axis=1), [gg.tensor(a)], order=2)
    big = gg.tensor(np.full(20000, 1.0001))
    assert gg.grad(lambda x: gg.cumprod(x)[-1])(big).shape == (20000,)


JIT_CASES = (
    CASES
    + LINALG
    + MORE
    + [
        ("prod-zeros-jit", lambda x: gg.prod(x, axis=1), None, [np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0]])]),
        ("cumprod-zeros-jit", lambda x: gg.cumprod(x, axis=1), None, [np.array([[0.5, 0.0, 3.0], [2.0, 1.5, 5.0]])]),
    ]
)


@pytest.mark.parametrize("name, f, ref, inputs", JIT_CASES, ids=[c[0] for c in JIT_CASES])
def test_compiled_gradients_match_eager(name, f, ref, inputs):
    ts = [gg.tensor(a) for a in inputs]
    argnums = tuple(range(len(ts)))

    def loss(*args):
        return (f(*args) * 1.7).sum()

    step = gg.jit(gg.grad(loss, argnums=argnums))
    step(*ts)
    got = step(*ts)  # the replay
    for a, b in zip(got, gg.grad(loss, argnums=argnums)(*ts)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


ARRAY_API = [
    ("vector_norm", lambda x: LA.vector_norm(x), lambda x: np.linalg.vector_norm(x), [_a(2, 3)]),
    (
        "vector_norm-axes",
        lambda x: LA.vector_norm(x, 3, axis=(0, 2), keepdims=True),
        lambda x: np.linalg.vector_norm(x, ord=3, axis=(0, 2), keepdims=True),
        [_a(2, 3, 2)],
    ),
    (
        "vector_norm-inf",
        lambda x: LA.vector_norm(x, np.inf, axis=1),
        lambda x: np.linalg.vector_norm(x, ord=np.inf, axis=1),
        [_a(2, 3)],
    ),
    ("matrix_norm", lambda x: LA.matrix_norm(x, "nuc"), lambda x: np.linalg.matrix_norm(x, ord="nuc"), [_a(2, 3, 2)]),
    ("vecdot", LA.vecdot, np.linalg.vecdot, [_a(2, 3), _a(3)]),
    (
        "multi_dot",
        lambda a, b, c: LA.multi_dot([a, b, c]),
        lambda a, b, c: np.linalg.multi_dot([a, b, c]),
        [_a(3), _a(3, 4), _a(4, 2)],
    ),
    (
        "multi_dot-4",
        lambda a, b, c, d: LA.multi_dot([a, b, c, d]),
        lambda a, b, c, d: np.linalg.multi_dot([a, b, c, d]),
        [_a(2, 3), _a(3, 4), _a(4, 1), _a(1)],
    ),
    ("linalg-diagonal", lambda x: LA.diagonal(x, offset=1), lambda x: np.linalg.diagonal(x, offset=1), [_a(2, 3, 3)]),
    ("linalg-trace", LA.trace, np.linalg.trace, [_a(2, 3, 3)]),
    ("linalg-cross", LA.cross, np.linalg.cross, [_a(2, 3), _a(3)]),
    ("linalg-outer", LA.outer, np.linalg.outer, [_a(2), _a(3)]),
    ("matrix_transpose", LA.matrix_transpose, np.linalg.matrix_transpose, [_a(2, 3, 4)]),
]


@pytest.mark.parametrize("name, f, ref, inputs", ARRAY_API, ids=[c[0] for c in ARRAY_API])
def test_array_api_linalg_names(name, f, ref, inputs, device):
    test_linalg_values_and_gradients(name, f, ref, inputs, device)


class _Twice(gg.Op):
    @staticmethod
    def forward_cpu(x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        return 2 * g


_S5 = 1 / (1 + np.exp(-0.5))


@pytest.mark.parametrize(
    "f, want",
    [
        (lambda x: gg.losses.mse(gg.zeros((1, 2), dtype="float64"), [[x, x]]), 1.0),
        (lambda x: gg.losses.mse([[x, x]], gg.zeros((1, 2), dtype="float64")), 1.0),
        (lambda x: gg.nn.functional.mse_loss([x, x], gg.zeros(2, dtype="float64")), 1.0),
        (lambda x: gg.matmul([[x, 1.0]], gg.ones((2, 1), dtype="float64")).sum(), 1.0),
        (lambda x: gg.where([True, False], [x, 2 * x], 0.0).sum(), 1.0),
        (lambda x: gg.softmax([x, x]).sum() + gg.sigmoid([x])[0] * 4, 4 * _S5 * (1 - _S5)),
        (lambda x: gg.r_[x, [x, 2.0]].sum(), 2.0),
        (lambda x: _Twice.apply([x, x]).sum(), 4.0),
    ],
)
def test_lists_of_tensors_everywhere_an_array_is_taken(f, want):
    assert float(gg.grad(f)(gg.tensor(0.5, dtype="float64"))) == pytest.approx(want)
