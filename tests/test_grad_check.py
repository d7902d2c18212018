"""Every differentiable op against central finite differences, to the first and second order.

``gg.testing.check_grad`` reduces an op's output to a scalar with fixed random weights and
compares the tape's gradients (and, with ``order=2``, the gradients of a random projection of
those gradients) with central differences in float64. Inputs are drawn away from kinks: no
``abs``/``relu`` at 0, no ties in ``max``/``maximum``, nothing on a ``clip`` boundary.
"""

import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import graph
from gpugrad.testing import check_grad

ORDERS = [1, 2]


def uniform(shape, lo=-1.0, hi=1.0, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape)


def away_from_zero(shape, lo=0.2, hi=1.0, seed=0):
    """|values| in [lo, hi] with random signs."""
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def on_grid(shape, offset, seed=0):
    """Values k/10 + offset: two grids with different offsets never tie."""
    return np.random.default_rng(seed).integers(-10, 10, size=shape) / 10.0 + offset


def check(device, f, arrays, order, **tol):
    inputs = [
        a if isinstance(a, gg.Tensor) else gg.constant(np.asarray(a), device=device) for a in arrays
    ]
    check_grad(f, inputs, order=order, **tol)


# -- operators with NumPy broadcasting on both sides --------------------------------------------

BROADCAST_PAIRS = [
    ((), ()),
    ((3,), ()),
    ((), (2, 3)),
    ((2, 3), (2, 3)),
    ((3, 1), (1, 4)),
    ((2, 1, 3), (4, 1)),
    ((4,), (2, 3, 4)),
]
SHAPE_IDS = [f"{a}-{b}" for a, b in BROADCAST_PAIRS]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("sa,sb", BROADCAST_PAIRS, ids=SHAPE_IDS)
@pytest.mark.parametrize(
    "name,op,make_b",
    [
        ("add", lambda a, b: a + b, uniform),
        ("sub", lambda a, b: a - b, uniform),
        ("mul", lambda a, b: a * b, uniform),
        ("div", lambda a, b: a / b, lambda s, seed: away_from_zero(s, 0.5, 2.0, seed)),
        ("gg.add", gg.add, uniform),
        ("gg.subtract", gg.subtract, uniform),
        ("gg.multiply", gg.multiply, uniform),
        ("gg.divide", gg.divide, lambda s, seed: away_from_zero(s, 0.5, 2.0, seed)),
    ],
)
def test_arithmetic_broadcasting(device, name, op, make_b, sa, sb, order):
    a = uniform(sa, seed=1)
    b = make_b(sb, seed=2)
    check(device, op, [a, b], order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("sa,sb", BROADCAST_PAIRS, ids=SHAPE_IDS)
@pytest.mark.parametrize("spelling", [lambda a, b: a**b, gg.pow], ids=["**", "gg.pow"])
def test_pow_tensor_base_and_exponent(device, spelling, sa, sb, order):
    base = uniform(sa, 0.5, 2.0, seed=3)
    exponent = uniform(sb, -2.0, 2.0, seed=4)
    check(device, spelling, [base, exponent], order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)], ids=str)
@pytest.mark.parametrize(
    "name,op,lo,hi",
    [
        ("x+2", lambda x: x + 2.0, -1, 1),
        ("2+x", lambda x: 2.0 + x, -1, 1),
        ("x-2", lambda x: x - 2.0, -1, 1),
        ("2-x", lambda x: 2.0 - x, -1, 1),
        ("3*x", lambda x: 3.0 * x, -1, 1),
        ("x*3", lambda x: x * 3.0, -1, 1),
        ("x/2", lambda x: x / 2.0, -1, 1),
        ("2/x", lambda x: 2.0 / x, 0.5, 2),
        ("x**3", lambda x: x**3, -1, 1),
        ("x**2.5", lambda x: x**2.5, 0.5, 2),
        ("x**-1", lambda x: x**-1, 0.5, 2),
        ("x**0.5", lambda x: x**0.5, 0.5, 2),
        ("2**x", lambda x: 2.0**x, -2, 2),
        ("pow(3,x)", lambda x: gg.pow(3.0, x), -2, 2),
        ("0.5**x", lambda x: 0.5**x, -2, 2),
        ("e**x", lambda x: math.e**x, -2, 2),
        ("-x", lambda x: -x, -1, 1),
        ("gg.negative", gg.negative, -1, 1),
        ("exp", gg.exp, -2, 2),
        ("log", gg.log, 0.3, 3),
        ("log1p", gg.log1p, -0.5, 2),
        ("expm1", gg.expm1, -2, 2),
        ("sqrt", gg.sqrt, 0.3, 3),
        ("square", gg.square, -2, 2),
        ("sin", gg.sin, -3, 3),
        ("cos", gg.cos, -3, 3),
        ("tan", gg.tan, -1.2, 1.2),
        ("sigmoid", gg.sigmoid, -4, 4),
        ("tanh", gg.tanh, -2, 2),
        ("log_a(x)", lambda x: gg.log(x) / math.log(7.0), 0.3, 3),
        ("x.exp()", lambda x: x.exp(), -2, 2),
        ("x.sqrt()", lambda x: x.sqrt(), 0.3, 3),
        ("x.square()", lambda x: x.square(), -2, 2),
        ("x.tanh()", lambda x: x.tanh(), -2, 2),
    ],
)
def test_elementwise(device, name, op, lo, hi, shape, order):
    check(device, op, [uniform(shape, lo, hi, seed=5)], order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("shape", [(), (7,), (2, 3)], ids=str)
@pytest.mark.parametrize(
    "name,op",
    [
        ("abs", gg.abs),
        ("abs()", abs),
        ("relu", gg.relu),
        ("x.relu()", lambda x: x.relu()),
        ("x*relu(x)", lambda x: x * gg.relu(x)),
        ("abs(x)**3", lambda x: gg.abs(x) ** 3),
    ],
)
def test_kinked_away_from_the_kink(device, name, op, shape, order):
    check(device, op, [away_from_zero(shape, seed=6)], order)


# -- indexing --------------------------------------------------------------------------------------

INDEXES = [
    ("x[1]", lambda x: x[1]),
    ("x[-1]", lambda x: x[-1]),
    ("x[1:3]", lambda x: x[1:3]),
    ("x[::2]", lambda x: x[::2]),
    ("x[:, ::-2]", lambda x: x[:, ::-2]),
    ("x[..., 1]", lambda x: x[..., 1]),
    ("x[None, 1]", lambda x: x[None, 1]),
    ("x[1, 2]", lambda x: x[1, 2]),
    ("x[[0, 2, 0]] repeats", lambda x: x[[0, 2, 0]]),
    ("x[array, array] repeats", lambda x: x[np.array([1, 1, 0]), np.array([0, 2, 2])]),
    ("x[-1, [0, 0, 3]]", lambda x: x[-1, [0, 0, 3]]),
    ("x[:, [3, 1, 3, 3]]", lambda x: x[:, [3, 1, 3, 3]]),
    ("x[int tensor]", lambda x: x[gg.constant([2, 2, 1], device=x.device)]),
    ("x[bool mask]", lambda x: x[np.array([[True, False, True, True]] * 3)]),
    ("x[row mask]", lambda x: x[np.array([True, False, True])]),
    ("x[1:][[1, 0, 1]] * x[0]", lambda x: x[1:][[1, 0, 1]] * x[0]),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name,op", INDEXES, ids=[n for n, _ in INDEXES])
def test_indexing(device, name, op, order):
    # squared after indexing, so the second order has something to check
    check(device, lambda x: op(x) ** 2, [uniform((3, 4), seed=7)], order)


# -- shape ops ------------------------------------------------------------------------------------

SHAPE_OPS = [
    ("reshape", lambda x: gg.reshape(x, (4, 6)), [(2, 3, 4)]),
    ("reshape -1", lambda x: gg.reshape(x, (-1,)), [(2, 3, 4)]),
    ("reshape scalar", lambda x: gg.reshape(x, (1, 1)), [()]),
    ("x.reshape(3, 8)", lambda x: x.reshape(3, 8), [(2, 3, 4)]),
    ("transpose", gg.transpose, [(2, 3, 4)]),
    ("transpose perm", lambda x: gg.transpose(x, (1, 2, 0)), [(2, 3, 4)]),
    ("x.T", lambda x: x.T, [(3, 4)]),
    ("expand_dims 0", lambda x: gg.expand_dims(x, 0), [(2, 3)]),
    ("expand_dims -1", lambda x: gg.expand_dims(x, -1), [(2, 3)]),
    ("expand_dims scalar", lambda x: gg.expand_dims(x, 0), [()]),
    ("squeeze", gg.squeeze, [(1, 3, 1)]),
    ("squeeze axis", lambda x: gg.squeeze(x, axis=2), [(1, 3, 1)]),
    ("concat 0", lambda a, b, c: gg.concat([a, b, c], axis=0), [(1, 3), (2, 3), (3, 3)]),
    ("concat -1", lambda a, b: gg.concat([a, b], axis=-1), [(2, 1), (2, 4)]),
    ("concat reuse", lambda a: gg.concat([a, a * a], axis=0), [(3,)]),
    ("stack 0", lambda a, b: gg.stack([a, b], axis=0), [(2, 3), (2, 3)]),
    ("stack 1", lambda a, b: gg.stack([a, b], axis=1), [(2, 3), (2, 3)]),
    ("stack -1", lambda a, b, c: gg.stack([a, b, c], axis=-1), [(4,), (4,), (4,)]),
    ("stack scalars", lambda a, b: gg.stack([a, b]), [(), ()]),
    ("broadcast_to row", lambda x: gg.broadcast_to(x, (2, 3)), [(3,)]),
    ("broadcast_to col", lambda x: gg.broadcast_to(x, (2, 4, 3)), [(4, 1)]),
    ("broadcast_to scalar", lambda x: gg.broadcast_to(x, (2, 2)), [()]),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name,op,shapes", SHAPE_OPS, ids=[n for n, *_ in SHAPE_OPS])
def test_shape_ops(device, name, op, shapes, order):
    arrays = [uniform(s, seed=10 + i) for i, s in enumerate(shapes)]
    check(device, lambda *xs: op(*xs) ** 2, arrays, order)


WHERE_SHAPES = [((2, 3), (2, 3), (2, 3)), ((2, 1), (2, 3), (3,)), ((3,), (), (2, 3)), ((), (3,), (3,))]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("sc,sa,sb", WHERE_SHAPES, ids=[str(s) for s in WHERE_SHAPES])
def test_where(device, sc, sa, sb, order):
    cond = gg.constant(np.random.default_rng(8).random(sc) > 0.4, device=device)
    a, b = uniform(sa, seed=1), uniform(sb, seed=2)
    check(device, lambda a, b: gg.where(cond, a, b) * (a + 2.0), [a, b], order)


@pytest.mark.parametrize("order", ORDERS)
def test_where_with_a_python_number(device, order):
    cond = gg.constant([True, False, True], device=device)
    check(device, lambda a: gg.where(cond, a * a, 0.5), [uniform((3,), seed=1)], order)
    check(device, lambda a: gg.where(cond, -1.0, gg.sin(a)), [uniform((3,), seed=1)], order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("sa,sb", BROADCAST_PAIRS, ids=SHAPE_IDS)
@pytest.mark.parametrize("op", [gg.maximum, gg.minimum], ids=["maximum", "minimum"])
def test_maximum_minimum(device, op, sa, sb, order):
    a = on_grid(sa, 0.05, seed=1)
    b = on_grid(sb, 0.0, seed=2)
    check(device, lambda a, b: op(a, b) ** 2, [a, b], order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("op", [gg.maximum, gg.minimum], ids=["maximum", "minimum"])
def test_maximum_minimum_with_a_number(device, op, order):
    x = on_grid((2, 5), 0.05, seed=3)
    check(device, lambda x: op(x, 0.0) * x, [x], order)
    check(device, lambda x: op(0.3, x) * x, [x], order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("shape", [(), (9,), (3, 4)], ids=str)
def test_clip(device, shape, order):
    x = on_grid(shape, 0.05, seed=4)  # never on the bounds -0.5 / 0.3
    check(device, lambda x: gg.clip(x, -0.5, 0.3) * x, [x], order)
    check(device, lambda x: x.clip(-0.5, 0.3) ** 3, [x], order)


# -- reductions ------------------------------------------------------------------------------------

AXES = [None, 0, -1, 1, (0, 2), (2, 0, 1)]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize(
    "name,op",
    [
        ("sum", gg.sum),
        ("mean", gg.mean),
        ("max", gg.max),
        ("min", gg.min),
        ("logsumexp", gg.logsumexp),
        ("norm", gg.norm),
        ("reduce_sum", gg.reduce_sum),
        ("reduce_mean", gg.reduce_mean),
        ("reduce_max", gg.reduce_max),
        ("reduce_min", gg.reduce_min),
    ],
)
def test_reductions(device, name, op, axis, keepdims, order):
    x = uniform((2, 3, 4), seed=9)
    # multiplied by x so that the second order of linear reductions is not trivially zero
    check(device, lambda x: op(x, axis=axis, keepdims=keepdims) * gg.mean(x * x), [x], order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp", "norm"])
def test_reductions_as_methods_and_of_scalars(device, name, order):
    check(device, lambda x: getattr(x, name)(axis=1) ** 2, [uniform((3, 2), seed=2)], order)
    check(device, lambda x: getattr(x, name)() ** 2, [uniform((5,), seed=3)], order)
    check(device, lambda x: getattr(gg, name)(x) ** 2, [np.array(0.7)], order)
    # axis 0 of a 0-d tensor is the tensor itself (as PyTorch)
    check(device, lambda x: getattr(gg, name)(x, axis=0) ** 2, [np.array(0.7)], order)
    check(device, lambda x: getattr(gg, name)(x, axis=0, keepdims=True) ** 2, [np.array(0.7)], order)


@pytest.mark.parametrize("order", ORDERS)
def test_max_of_ties_splits_the_gradient(device, order):
    # not a finite-difference check (a kink): the documented convention, even split among ties
    x = gg.constant([1.0, 3.0, 3.0, 0.0], dtype="float64", device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.max(x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [0.0, 0.5, 0.5, 0.0])


@pytest.mark.parametrize(
    "name,f,x,expected",
    [
        ("relu'(0) = 0", gg.relu, [-1.0, 0.0, 2.0], [0.0, 0.0, 1.0]),
        ("abs'(0) = 0", gg.abs, [-1.0, 0.0, 2.0], [-1.0, 0.0, 1.0]),
        ("maximum tie to the first", lambda x: gg.maximum(x, 0.0), [-1.0, 0.0, 2.0], [0.0, 1.0, 1.0]),
        ("minimum tie to the first", lambda x: gg.minimum(x, 0.0), [-1.0, 0.0, 2.0], [1.0, 1.0, 0.0]),
        ("maximum tie, second", lambda x: gg.maximum(0.0, x), [-1.0, 0.0, 2.0], [0.0, 0.0, 1.0]),
        ("clip passes at its bounds", lambda x: gg.clip(x, 0.0, 1.0), [-1.0, 0.0, 1.0, 2.0], [0, 1.0, 1.0, 0]),
        ("norm'(0) = 0", gg.norm, [0.0, 0.0], [0.0, 0.0]),
        ("min of ties", gg.min, [2.0, 1.0, 1.0, 1.0], [0.0, 1 / 3, 1 / 3, 1 / 3]),
    ],
)
def test_conventions_at_kinks(device, name, f, x, expected):
    x = gg.constant(x, dtype="float64", device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(f(x))
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), expected, rtol=1e-15)


# -- linear algebra --------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 2)),
    ((4,), (4, 2)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((1, 1), (1, 1)),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("spelling", [lambda a, b: a @ b, gg.matmul], ids=["@", "gg.matmul"])
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul(device, spelling, sa, sb, order):
    check(device, lambda a, b: spelling(a, b) ** 2, [uniform(sa, seed=1), uniform(sb, seed=2)], order)


@pytest.mark.parametrize("order", ORDERS)
def test_matmul_with_itself(device, order):
    check(device, lambda a: a @ a.T @ a, [uniform((3, 3), seed=3)], order)


# -- activations ------------------------------------------------------------------------------------

SOFTMAX_CASES = [
    ((5,), 0), ((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), 0),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=[f"{s}-axis{a}" for s, a in SOFTMAX_CASES])
@pytest.mark.parametrize("op", [gg.softmax, gg.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_and_log_softmax(device, op, shape, axis, order):
    check(device, lambda x: op(x, axis=axis), [uniform(shape, -2, 2, seed=4)], order)
    check(device, lambda x: op(x * x, axis=axis) * x, [uniform(shape, -2, 2, seed=5)], order)


@pytest.mark.parametrize("order", ORDERS)
def test_activations_composed(device, order):
    check(
        device,
        lambda x, w: gg.softmax(gg.tanh(x @ w) + gg.sigmoid(x @ w) + gg.relu(x @ w), axis=-1),
        [uniform((3, 2), seed=1), uniform((2, 4), seed=2)],
        order,
        atol=1e-5,
    )


# -- losses -----------------------------------------------------------------------------------------

REDUCTIONS = ["mean", "sum", "none"]


def soft_targets(shape, seed):
    t = np.random.default_rng(seed).uniform(0.1, 1.0, size=shape)
    return t / t.sum(-1, keepdims=True)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)], ids=str)
def test_mse(device, shape, reduction, order):
    check(
        device,
        lambda t, p: gg.losses.mse(t, p, reduction=reduction),
        [uniform(shape, seed=1), uniform(shape, seed=2)],
        order,
    )


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)], ids=str)
def test_binary_crossentropy(device, shape, from_logits, reduction, order):
    t = uniform(shape, 0.0, 1.0, seed=1)
    p = uniform(shape, -3, 3, seed=2) if from_logits else uniform(shape, 0.05, 0.95, seed=2)
    check(
        device,
        lambda t, p: gg.losses.binary_crossentropy(t, p, from_logits=from_logits, reduction=reduction),
        [t, p],
        order,
    )


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)], ids=str)
def test_categorical_crossentropy(device, shape, from_logits, reduction, order):
    t = soft_targets(shape, seed=1)
    p = uniform(shape, -3, 3, seed=2) if from_logits else uniform(shape, 0.1, 1.0, seed=2)
    check(
        device,
        lambda t, p: gg.losses.categorical_crossentropy(t, p, from_logits=from_logits, reduction=reduction),
        [t, p],
        order,
    )


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)], ids=str)
def test_sparse_categorical_crossentropy(device, shape, from_logits, reduction, order):
    labels = gg.constant(np.random.default_rng(3).integers(0, shape[-1], size=shape[:-1]), device=device)
    p = uniform(shape, -3, 3, seed=2) if from_logits else uniform(shape, 0.1, 1.0, seed=2)
    check(
        device,
        lambda lab, p: gg.losses.sparse_categorical_crossentropy(
            lab, p, from_logits=from_logits, reduction=reduction
        ),
        [labels, p],
        order,
    )


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", sorted(gg.losses.LOSSES))
def test_every_loss_by_name(device, name, order):
    loss = gg.losses.get(name)
    if name.startswith("sparse"):
        y_true = gg.constant([0, 2, 1], device=device)
    else:
        y_true = soft_targets((3, 3), seed=4)
    check(device, lambda t, p: loss(t, p), [y_true, uniform((3, 3), 0.1, 0.9, seed=5)], order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 1, 3)], ids=str)
def test_torch_mse_loss(device, shape, reduction, order):
    check(
        device,
        lambda x, y: gg.nn.functional.mse_loss(x, y, reduction=reduction),
        [uniform(shape, seed=1), uniform(shape, seed=2)],
        order,
    )


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("targets", ["class ids", "probabilities"])
def test_torch_cross_entropy(device, targets, reduction, order):
    z = uniform((4, 3), -2, 2, seed=1)
    if targets == "class ids":
        t = gg.constant([2, 0, 1, 2], device=device)
    else:
        t = soft_targets((4, 3), seed=2)
    check(device, lambda z, t: gg.nn.functional.cross_entropy(z, t, reduction=reduction), [z, t], order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_torch_binary_cross_entropy(device, reduction, order):
    t = uniform((3, 2), 0.0, 1.0, seed=1)
    F = gg.nn.functional
    check(device, lambda p, t: F.binary_cross_entropy(p, t, reduction=reduction),
          [uniform((3, 2), 0.1, 0.9, seed=2), t], order)
    check(device, lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction=reduction),
          [uniform((3, 2), -3, 3, seed=2), t], order)


@pytest.mark.parametrize("order", ORDERS)
def test_loss_of_a_network(device, order):
    def f(x, w, b):
        logits = gg.tanh(x @ w + b)
        return gg.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)

    labels = gg.constant([0, 2], device=device)
    check(device, f, [uniform((2, 3), seed=1), uniform((3, 3), seed=2), uniform((3,), seed=3)], order)


# -- the checker itself ---------------------------------------------------------------------------


def square_with_backward(factor, detach_saved=False):
    """x² as a custom op whose backward is ``factor · 2x · g`` (right for factor 1)."""

    def op(x):
        def backward(g, out, need):
            (x_,) = out._node.inputs
            saved = gg.Tensor(x_.data) if detach_saved else x_
            return (g * saved * (2.0 * factor),)

        return graph.record(x.data * x.data, (x,), backward, "square")

    return op


def test_a_correct_custom_op_passes(device):
    check(device, square_with_backward(1.0), [uniform((2, 3), seed=1)], order=2)


def test_a_wrong_first_order_gradient_is_caught(device):
    with pytest.raises(AssertionError, match=r"first-order gradient of input 0 .* at index \(\d+, \d+\)"):
        check(device, square_with_backward(1.01), [uniform((2, 3), seed=1)], order=1)


def test_the_failing_input_is_named(device):
    def f(a, b):
        return a * square_with_backward(0.9)(b)

    with pytest.raises(AssertionError, match=r"input 1 \(shape \(4,\)\)"):
        check(device, f, [uniform((4,), seed=1), uniform((4,), seed=2)], order=1)


def test_a_wrong_second_order_gradient_is_caught(device):
    # the backward uses x as a constant: right first order, second order missing 2·g
    op = square_with_backward(1.0, detach_saved=True)
    check(device, op, [uniform((3,), seed=1)], order=1)
    with pytest.raises(AssertionError, match=r"second-order gradient of input 0"):
        check(device, op, [uniform((3,), seed=1)], order=2)


def test_a_non_finite_gradient_is_caught(device):
    def f(x):
        return graph.record(x.data.copy(), (x,), lambda g, out, need: (g * float("nan"),), "nan")

    with pytest.raises(AssertionError, match="input 0"):
        check(device, f, [uniform((3,), seed=1)], order=1)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    "loss",
    [
        lambda t, p: gg.losses.binary_crossentropy(t, p),
        lambda t, p: gg.losses.binary_crossentropy(t, p, reduction="none"),
        lambda t, p: gg.nn.functional.binary_cross_entropy(p, t),
    ],
    ids=["binary_crossentropy", "binary_crossentropy-none", "F.binary_cross_entropy"],
)
def test_clipped_probabilities_follow_the_clip(device, loss, order):
    # probabilities outside [eps, 1 - eps] are clipped: the loss is flat in them there
    t = uniform((2, 3), 0.0, 1.0, seed=1)
    p = np.array([[-0.5, 0.3, 1.5], [0.2, 2.0, 0.6]])
    check(device, loss, [t, p], order)
