"""Properties over random shapes: every binary op broadcasts like NumPy, and its gradients have the
shapes of its inputs and agree with central finite differences."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import gpugrad as gg
from gpugrad.testing import check_grad

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PAIRS = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)
TRIPLES = mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=1, max_side=3)
SEEDS = st.integers(0, 2**32 - 1)


def signed(rng, shape, lo, hi):
    return rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def grid(rng, shape, offset):
    """k/10 + offset: values of two grids with different offsets are never within 0.05."""
    return rng.integers(-10, 10, size=shape) / 10.0 + offset


def operands(name, shapes, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes
    if name == "/":
        return rng.uniform(-1, 1, size=sa), signed(rng, sb, 0.5, 2.0)
    if name == "**":
        return rng.uniform(0.5, 2.0, size=sa), rng.uniform(-2.0, 2.0, size=sb)
    if name in ("maximum", "minimum"):
        return grid(rng, sa, 0.05), grid(rng, sb, 0.0)
    return rng.uniform(-1, 1, size=sa), rng.uniform(-1, 1, size=sb)


BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
    "maximum": gg.maximum,
    "minimum": gg.minimum,
}


def gradient_shapes(device, f, arrays):
    xs = [gg.constant(a, device=device) for a in arrays]
    with gg.GradientTape() as tape:
        tape.watch(xs)
        y = f(*xs)
    return y, tape.gradient(y, xs)


@pytest.mark.parametrize("name", list(BINARY))
@SETTINGS
@given(shapes=PAIRS, seed=SEEDS)
def test_binary_op_broadcasts_and_differentiates(device, name, shapes, seed):
    op = BINARY[name]
    a, b = operands(name, shapes.input_shapes, seed)
    expected = {"maximum": np.maximum, "minimum": np.minimum}.get(name, op)(a, b)

    y, (ga, gb) = gradient_shapes(device, op, [a, b])
    assert y.shape == shapes.result_shape == np.shape(expected)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    assert ga.shape == a.shape and gb.shape == b.shape
    assert ga.dtype == gb.dtype == np.float64
    check_grad(op, [gg.constant(a, device=device), gg.constant(b, device=device)], order=1)


@SETTINGS
@given(shapes=TRIPLES, seed=SEEDS)
def test_where_broadcasts_and_differentiates(device, shapes, seed):
    rng = np.random.default_rng(seed)
    sc, sa, sb = shapes.input_shapes
    cond = gg.constant(rng.random(sc) < 0.5, device=device)
    a, b = rng.uniform(-1, 1, size=sa), rng.uniform(-1, 1, size=sb)

    def f(a, b):
        return gg.where(cond, a, b)

    y, (ga, gb) = gradient_shapes(device, f, [a, b])
    assert y.shape == shapes.result_shape
    np.testing.assert_array_equal(y.numpy(), np.where(cond.numpy(), a, b))
    assert ga.shape == a.shape and gb.shape == b.shape
    # each output element comes from exactly one of a and b
    total = np.broadcast_to(1.0, shapes.result_shape).sum()
    assert ga.numpy().sum() + gb.numpy().sum() == pytest.approx(total)
    check_grad(f, [gg.constant(a, device=device), gg.constant(b, device=device)], order=1)


MATMUL = mutually_broadcastable_shapes(
    signature=np.matmul.signature, min_dims=0, max_dims=2, min_side=1, max_side=3
)


@SETTINGS
@given(shapes=MATMUL, seed=SEEDS)
def test_matmul_with_compatible_shapes(device, shapes, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a, b = rng.uniform(-1, 1, size=sa), rng.uniform(-1, 1, size=sb)

    y, (ga, gb) = gradient_shapes(device, lambda a, b: a @ b, [a, b])
    assert y.shape == shapes.result_shape == np.matmul(a, b).shape
    np.testing.assert_allclose(y.numpy(), np.matmul(a, b), rtol=1e-12, atol=1e-15)
    assert ga.shape == a.shape and gb.shape == b.shape
    check_grad(lambda a, b: a @ b, [gg.constant(a, device=device), gg.constant(b, device=device)], order=1)


@SETTINGS
@given(shapes=PAIRS, seed=SEEDS)
def test_incompatible_shapes_name_both(device, shapes, seed):
    # append a mismatching last axis to one side: never broadcastable
    sa, sb = shapes.input_shapes
    a = gg.zeros(sa + (2,), device=device)
    b = gg.zeros(sb + (3,), device=device)
    with pytest.raises(ValueError) as e:
        a + b
    assert str(sa + (2,)) in str(e.value) and str(sb + (3,)) in str(e.value)
