"""gelu, leaky_relu, elu, softplus, silu/swish and erf: values, gradients to second order, extremes."""

import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.nn import activations
from gpugrad.ops import activation_extra
from gpugrad.testing import check_grad

_erf = np.vectorize(math.erf)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


REFERENCE = {
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0))),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "softplus": lambda x: np.logaddexp(x, 0.0),
    "silu": lambda x: x * _sigmoid(x),
    "erf": _erf,
}
OPS = {
    "gelu": gg.gelu,
    "leaky_relu": gg.leaky_relu,
    "elu": gg.elu,
    "softplus": gg.softplus,
    "silu": gg.silu,
    "erf": gg.erf,
}


def _points(rng, shape):
    x = rng.standard_normal(shape) * 2.0
    # keep finite differences away from the kinks of leaky_relu and elu
    return np.where(np.abs(x) < 0.05, 0.3, x)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 2)])
def test_values_match_reference(device, rng, name, dtype, shape):
    x = _points(rng, shape)
    out = OPS[name](gg.tensor(x, dtype=dtype, device=device))
    assert out.dtype == np.dtype(dtype) and out.shape == shape and out.device.startswith(device)
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out.numpy(), REFERENCE[name](x.astype(dtype).astype(np.float64)), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("shape", [(5,), (2, 3)])
def test_gradients_second_order(device, rng, name, shape):
    x = gg.tensor(_points(rng, shape), dtype="float64", device=device)
    check_grad(OPS[name], [x], order=2)


def test_options_second_order(device, rng):
    x = gg.tensor(_points(rng, (6,)), dtype="float64", device=device)
    check_grad(lambda t: gg.gelu(t, approximate=True), [x], order=2)
    check_grad(lambda t: gg.leaky_relu(t, negative_slope=0.01), [x], order=2)
    check_grad(lambda t: gg.elu(t, alpha=0.7), [x], order=2)


def test_gelu_approximate_matches_tanh_form(rng):
    x = rng.standard_normal(20)
    want = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(gg.gelu(gg.tensor(x, dtype="float64"), approximate=True).numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_inputs_are_finite_with_finite_gradients(device, name, dtype):
    x = gg.tensor([-1e4, -80.0, 0.0, 80.0, 1e4], dtype=dtype, device=device, requires_grad=True)
    y = OPS[name](x)
    (g,) = gg.autograd.grad(y.sum(), [x], create_graph=True)
    h = gg.autograd.grad(g.sum(), [x], allow_unused=True)[0] if g.requires_grad else None
    assert np.all(np.isfinite(y.numpy())), y
    assert np.all(np.isfinite(g.numpy())), g
    assert h is None or np.all(np.isfinite(h.numpy())), h
    np.testing.assert_allclose(y.numpy()[[0, -1]], REFERENCE[name](np.array([-1e4, 1e4])), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(OPS))
def test_nan_in_nan_out(device, name):
    x = gg.tensor([np.nan, 1.0], dtype="float64", device=device, requires_grad=True)
    y = OPS[name](x)
    (g,) = gg.autograd.grad(y.sum(), [x])
    assert np.isnan(y.numpy()[0]) and np.isfinite(y.numpy()[1])
    if name != "leaky_relu":  # piecewise linear: its slope at NaN is the negative side's, as in PyTorch
        assert np.isnan(g.numpy()[0])


def test_swish_is_silu():
    assert gg.swish is gg.silu


@pytest.mark.parametrize("name", ["gelu", "leaky_relu", "elu", "softplus", "silu", "swish"])
def test_by_name(rng, name):
    fn = activations.get(name)
    x = _points(rng, (4, 3))
    want = REFERENCE["silu" if name == "swish" else name](x)
    np.testing.assert_allclose(fn(gg.tensor(x, dtype="float64")).numpy(), want, rtol=1e-12)
    layer = gg.nn.Dense(2, activation=name)
    assert layer(gg.tensor(x)).shape == (4, 2)


def test_erf_without_scipy_matches(rng):
    x = rng.standard_normal(50) * 3
    np.testing.assert_allclose(activation_extra.erf_fallback(x), _erf(x), rtol=0, atol=0)
    x32 = x.astype(np.float32)
    assert activation_extra.erf_fallback(x32).dtype == np.float32


def test_integer_input_is_refused():
    with pytest.raises(TypeError, match="erf"):
        gg.erf(gg.tensor([1, 2]))
    with pytest.raises(TypeError, match="softplus"):
        gg.softplus(gg.tensor([1, 2]))


def test_keras_gelu_matches_where_installed(rng):
    keras = pytest.importorskip("keras")
    x = rng.standard_normal(16).astype(np.float32)
    want = np.asarray(keras.activations.gelu(x))
    np.testing.assert_allclose(gg.gelu(gg.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)
