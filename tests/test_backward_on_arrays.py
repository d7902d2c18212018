"""A first-order backward runs each op's rule on arrays (no Tensor, no recording on the way); a
recorded backward (under an outer tape, or ``create_graph=True``) runs it as ops. Both must give
the same numbers, bit for bit, in the same dtype, on every backend.

Each case differentiates ``f`` twice: once plainly (the rules on arrays), once with an outer tape
recording (the rules as ops), and compares.
"""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import graph

F32, F64 = np.float32, np.float64


def _x(shape, dtype=F64, seed=0, lo=0.5, hi=1.5):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(dtype)


def _ints(shape, seed=0):
    return np.random.default_rng(seed).integers(-3, 4, size=shape)


def _labels(n, k, seed=0):
    return np.random.default_rng(seed).integers(0, k, size=n)


# name, function of (c, *watched tensors) where c(array) is a constant on their device, their arrays
CASES = [
    ("add", lambda c, a, b: a + b, [_x((3, 4)), _x((4,), seed=1)]),
    ("add scalar first", lambda c, a: 2.5 + a, [_x((3,))]),
    ("subtract", lambda c, a, b: a - b, [_x((2, 1, 3)), _x((4, 1), seed=1)]),
    ("multiply", lambda c, a, b: a * b, [_x((3, 4)), _x((3, 1), seed=1)]),
    ("multiply by a Python float", lambda c, a: a * 1.01 + 0.1, [_x((5,), F32)]),
    ("multiply by an int tensor", lambda c, a: a * c(_ints((3, 4))), [_x((3, 4), F32)]),
    ("divide", lambda c, a, b: a / b, [_x((3, 4)), _x((4,), seed=1)]),
    ("float32 with float64", lambda c, a, b: a * b, [_x((3,), F32), _x((3,), F64, seed=1)]),
    ("maximum minimum", lambda c, a, b: gg.maximum(a, b) * gg.minimum(a, 1.0), [_x((3, 4)), _x((4,), seed=1)]),
    ("maximum with ties", lambda c, a: gg.maximum(a, c(np.ones(4, F32))), [np.array([0.5, 1.0, 1.5, 1.0], F32)]),
    ("where", lambda c, a, b: gg.where(c(np.array([True, False, True])), a, b), [_x((2, 3)), _x((3,), seed=1)]),
    ("negative", lambda c, a: -a, [_x((4,))]),
    ("exp log log1p", lambda c, a: gg.log1p(gg.log(gg.exp(a))), [_x((4,))]),
    ("expm1 sqrt tan", lambda c, a: gg.tan(gg.sqrt(gg.expm1(a))) * 0.1, [_x((4,), lo=0.1, hi=0.5)]),
    ("square", lambda c, a: gg.square(a), [_x((2, 3), F32)]),
    ("arctan arctanh", lambda c, a: gg.arctanh(gg.arctan(a) * 0.5), [_x((4,))]),
    ("log2 log10 exp2", lambda c, a: gg.exp2(gg.log2(a) + gg.log10(a)), [_x((4,))]),
    ("rad2deg deg2rad reciprocal", lambda c, a: gg.reciprocal(gg.deg2rad(gg.rad2deg(a))), [_x((4,))]),
    ("sigmoid tanh relu", lambda c, a: gg.relu(gg.tanh(gg.sigmoid(a)) - 0.6), [_x((3, 5), F32, lo=-3, hi=3)]),
    ("softmax", lambda c, a: gg.softmax(a, axis=0) * c(_x((3, 4), seed=2)), [_x((3, 4), F32)]),
    ("log_softmax", lambda c, a: gg.log_softmax(a, axis=-1) * c(_x((3, 4), seed=2)), [_x((3, 4))]),
    ("sum", lambda c, a: gg.sum(a, axis=1) * 2.0 + gg.sum(gg.sum(a, axis=(0, 2), keepdims=True)), [_x((2, 3, 4))]),
    ("mean", lambda c, a: gg.mean(a, axis=0) + gg.mean(a), [_x((3, 4), F32)]),
    ("reshape transpose", lambda c, a: gg.transpose(gg.reshape(a, (4, 6)), (1, 0)) * 2.0, [_x((2, 3, 4))]),
    ("matrix_transpose", lambda c, a: gg.linalg.matrix_transpose(a) * 3.0, [_x((2, 3, 4))]),
    ("getitem", lambda c, a: a[1:, ::2] * 2.0, [_x((3, 4))]),
    ("getitem with repeats", lambda c, a: a[np.array([0, 2, 0, 0])] * 2.0, [_x((3, 4))]),
    ("broadcast_to", lambda c, a: gg.broadcast_to(a, (3, 2, 4)) * 2.0, [_x((2, 1))]),
    ("matmul", lambda c, a, b: a @ b, [_x((3, 4)), _x((4, 5), seed=1)]),
    ("matmul batched", lambda c, a, b: a @ b, [_x((2, 3, 4)), _x((4, 2), seed=1)]),
    ("matmul vector", lambda c, a, b: a @ b, [_x((3, 4)), _x((4,), seed=1)]),
    ("matmul of an int matrix", lambda c, a: c(_ints((3, 4))) @ a, [_x((4, 2), F32)]),
    (
        "sparse softmax cross-entropy",
        lambda c, z: gg.losses.sparse_categorical_crossentropy(c(_labels(4, 5)), z, from_logits=True),
        [_x((4, 5), F32, lo=-3, hi=3)],
    ),
    (
        "softmax cross-entropy",
        lambda c, z: gg.losses.categorical_crossentropy(c(np.eye(5)[_labels(4, 5)]), z, from_logits=True),
        [_x((4, 5), lo=-3, hi=3)],
    ),
    ("mse", lambda c, p: gg.losses.mean_squared_error(c(_x((4, 3), F32, seed=3)), p), [_x((4, 3), F32)]),
    (
        "binary cross-entropy from logits",
        lambda c, z: gg.losses.binary_crossentropy(c(_x((4, 3), F32, seed=3, lo=0, hi=1)), z, from_logits=True),
        [_x((4, 3), F32, lo=-3, hi=3)],
    ),
]


def _grads(f, arrays, device, recorded: bool):
    def c(a):
        return gg.constant(a, device=device)

    xs = [c(a) for a in arrays]
    if not recorded:
        with gg.GradientTape() as tape:
            tape.watch(xs)
            y = gg.sum(f(c, *xs))
        return tape.gradient(y, xs)
    with gg.GradientTape() as outer:  # recording: the inner backward runs its rules as ops
        outer.watch(xs)
        with gg.GradientTape() as tape:
            tape.watch(xs)
            y = gg.sum(f(c, *xs))
        return tape.gradient(y, xs)


@pytest.mark.parametrize("name,f,arrays", CASES, ids=[c[0] for c in CASES])
def test_the_rules_on_arrays_equal_the_recorded_rules(device, name, f, arrays):
    fast = _grads(f, arrays, device, recorded=False)
    slow = _grads(f, arrays, device, recorded=True)
    assert len(fast) == len(slow) == len(arrays)
    for gf, gs, a in zip(fast, slow, arrays):
        assert gf is not None and gs is not None
        assert gf.dtype == gs.dtype == a.dtype and gf.shape == gs.shape == a.shape and gf.device == gs.device
        np.testing.assert_array_equal(gf.numpy(), gs.numpy())


def test_a_plain_gradient_runs_the_rules_on_arrays(monkeypatch):
    """The plain backward calls each node's rule on arrays and wraps only the results: no
    Tensor made in between (the recorded rules are not called)."""
    seen = []
    real = graph.walk

    def spy(*args):
        seen.append(graph.STATE.enabled)
        return real(*args)

    monkeypatch.setattr(graph, "walk", spy)
    x = gg.constant(_x((5,), F32))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(gg.tanh(gg.sigmoid(x * 1.01 + 0.1)))
    node = y._node.inputs[0]._node  # tanh's node: its recorded rule must not run
    called = []
    rec = node.backward
    node.backward = lambda *a: called.append(1) or rec(*a)
    g = tape.gradient(y, x)
    assert seen == [False] and called == []
    assert isinstance(g, gg.Tensor) and g.dtype == np.float32


def test_an_op_without_an_array_rule_still_works_in_a_plain_backward():
    """``sin`` has no rule on arrays: its recorded rule runs on a wrapped gradient."""
    x = gg.constant(_x((4,)))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(gg.sin(x) * 2.0)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), 2 * np.cos(x.numpy()), rtol=1e-15)


def test_second_order_through_the_rules():
    """Higher orders run the recorded rules: d²/dx² of sigmoid(x)·x² at a few points, against the
    closed form."""
    a = _x((3,), lo=-1, hi=1)
    x = gg.constant(a)
    with gg.GradientTape() as t2:
        t2.watch(x)
        with gg.GradientTape() as t1:
            t1.watch(x)
            y = gg.sum(gg.sigmoid(x) * gg.square(x))
        g = t1.gradient(y, x)
    h = t2.gradient(g, x).numpy()
    s = 1 / (1 + np.exp(-a))
    d1, d2 = s * (1 - s), s * (1 - s) * (1 - 2 * s)
    np.testing.assert_allclose(h, d2 * a * a + 4 * d1 * a + 2 * s, rtol=1e-12)


class _Cube(gg.Op):
    """x³ with both backwards; ``backward_arrays`` declines (None) for float64, to test the fall-back."""

    @staticmethod
    def forward_cpu(x):
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.inputs
        return g * 3.0 * x * x

    @staticmethod
    def backward_arrays(ctx, g):
        x = ctx.inputs[0].data
        if x.dtype == np.float64:
            return None
        return (g * 3.0 * x * x,)


class _DoubleGrad(gg.Op):
    @staticmethod
    def forward_cpu(x, g):
        return 2 * g

    @staticmethod
    def backward(ctx, gg_):
        return None, _DoubleGrad.apply(ctx.inputs[0], gg_)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_a_user_op_with_a_rule_on_arrays(dtype):
    a = _x((4,), dtype, lo=-2, hi=2)
    for recorded in (False, True):
        g = _grads(lambda c, x: _Cube.apply(x), [a], "cpu", recorded)[0]
        assert g.dtype == dtype
        np.testing.assert_array_equal(g.numpy(), (3.0 * a * a).astype(dtype))


def test_grad_op_declares_the_backward():
    class Triple(gg.Op):
        grad_op = (_DoubleGrad, "input")

        @staticmethod
        def forward_cpu(x):
            return 3 * x

    x = gg.constant(_x((3,)))
    for recorded in (False, True):
        g = _grads(lambda c, t: Triple.apply(t), [x.numpy()], "cpu", recorded)[0]
        np.testing.assert_array_equal(g.numpy(), np.full(3, 2.0))  # the declared rule: 2·gy
    with pytest.raises(ValueError, match="'output' or the 'input'"):

        class Bad(gg.Op):
            grad_op = (_DoubleGrad, "both")

            @staticmethod
            def forward_cpu(x):
                return x


def test_a_user_rule_on_arrays_is_checked_like_its_backward():
    class Wrong(_Cube):
        @staticmethod
        def backward_arrays(ctx, g):
            return (np.ones((7,)),)  # not the input's shape, and it would broadcast against a sum

    x = gg.constant(_x((4, 7)))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(Wrong.apply(x) + x)
    with pytest.raises(RuntimeError, match="returned a gradient of shape"):
        tape.gradient(y, x)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "gelu", "softplus", "elu", "swish"])
def test_a_model_gradient_equals_the_recorded_one(device, activation):
    """A whole Keras-style model: the plain gradient of every Variable (rules on arrays) equals the
    recorded one bit for bit, through Dense layers, an activation and a fused loss."""
    gg.random.seed(3)
    m = gg.nn.Sequential([gg.nn.Dense(6, activation=activation), gg.nn.Dense(5, activation="tanh"), gg.nn.Dense(3)])
    x = gg.constant(np.random.default_rng(0).standard_normal((8, 7)).astype(F32), device=device)
    y = gg.constant(np.random.default_rng(1).integers(0, 3, 8), device=device)
    m(x)  # build

    def grads(recorded):
        with gg.GradientTape() as outer:
            outer.watch(m.trainable_variables)
            with gg.GradientTape() as tape:
                loss = gg.losses.sparse_categorical_crossentropy(y, m(x), from_logits=True)
            if not recorded:
                with outer.stop_recording():
                    return tape.gradient(loss, m.trainable_variables)
            return tape.gradient(loss, m.trainable_variables)

    for gf, gs in zip(grads(False), grads(True), strict=True):
        assert gf.dtype == gs.dtype == np.float32
        np.testing.assert_array_equal(gf.numpy(), gs.numpy())


def test_torch_spellings_give_the_same_gradients_plain_and_recorded():
    a = _x((3, 4), F32)
    grads = []
    for create_graph in (False, True):
        w = gg.Variable(a)
        w.requires_grad_()
        loss = gg.sum(gg.sigmoid(w @ w.T) * 2.0 - w.mean())
        (g,) = gg.autograd.grad(loss, [w], create_graph=create_graph)
        grads.append(g.numpy())
    np.testing.assert_array_equal(grads[0], grads[1])
