"""PyTorch habits: requires_grad= on constructors, manual_seed, argmax/argmin, unsqueeze,
float()/double(), format(), gg.cat."""

import numpy as np
import pytest

import gpugrad as gg

CONSTRUCTORS = [
    lambda d, rg: gg.zeros((2, 3), device=d, requires_grad=rg),
    lambda d, rg: gg.ones((2, 3), device=d, requires_grad=rg),
    lambda d, rg: gg.full((2, 3), 1.5, device=d, requires_grad=rg),
    lambda d, rg: gg.zeros_like(gg.ones((2, 3)), device=d, requires_grad=rg),
    lambda d, rg: gg.ones_like(gg.ones((2, 3)), device=d, requires_grad=rg),
    lambda d, rg: gg.arange(0.0, 6.0, device=d, requires_grad=rg),
    lambda d, rg: gg.linspace(0, 1, 5, device=d, requires_grad=rg),
    lambda d, rg: gg.eye(3, device=d, requires_grad=rg),
    lambda d, rg: gg.constant([1.0, 2.0], device=d, requires_grad=rg),
    lambda d, rg: gg.tensor([1.0, 2.0], device=d, requires_grad=rg),
    lambda d, rg: gg.random.normal((2, 2), device=d, requires_grad=rg),
    lambda d, rg: gg.random.uniform((2, 2), device=d, requires_grad=rg),
]


@pytest.mark.parametrize("make", CONSTRUCTORS)
def test_requires_grad_on_every_constructor(device, make):
    t = make(device, True)
    assert t.requires_grad and t.is_leaf
    (g,) = gg.autograd.grad((t * t).sum(), [t])
    np.testing.assert_allclose(g.numpy(), 2 * t.numpy(), rtol=1e-6)
    assert not make(device, False).requires_grad


def test_requires_grad_refused_for_integers():
    with pytest.raises(RuntimeError, match="floating"):  # as PyTorch
        gg.arange(5, requires_grad=True)


def test_manual_seed_reproduces():
    gg.manual_seed(5)
    a = gg.random.normal((4,)).numpy()
    gg.manual_seed(5)
    np.testing.assert_array_equal(a, gg.random.normal((4,)).numpy())


def test_argmax_argmin(device, rng):
    x = rng.standard_normal((3, 4, 5))
    t = gg.tensor(x, device=device)
    assert int(t.argmax()) == x.argmax() and int(gg.argmin(t)) == x.argmin()
    for axis in (0, 1, 2, -1):
        np.testing.assert_array_equal(t.argmax(axis).numpy(), x.argmax(axis))
        np.testing.assert_array_equal(t.argmin(dim=axis).numpy(), x.argmin(axis))
        np.testing.assert_array_equal(t.argmax(axis, keepdims=True).numpy(), x.argmax(axis, keepdims=True))
    assert t.argmax().dtype == np.int64
    with pytest.raises(ValueError, match="axis 3"):
        t.argmax(3)
    with pytest.raises(ValueError, match="empty"):
        gg.zeros((0,)).argmax()


def test_unsqueeze_float_double(device):
    t = gg.tensor([1, 2, 3], device=device)
    assert t.unsqueeze(0).shape == (1, 3) and t.unsqueeze(-1).shape == (3, 1)
    assert t.float().dtype == np.float32 and t.double().dtype == np.float64
    x = gg.tensor([1.0, 2.0], dtype="float64", requires_grad=True, device=device)
    (g,) = gg.autograd.grad((x.float() * 3).sum(), [x])
    assert g.dtype == np.float64 and np.allclose(g.numpy(), 3)


def test_format():
    loss = gg.tensor(0.123456)
    assert f"{loss:.3f}" == "0.123" and f"{gg.tensor([2.5]):.1f}" == "2.5"
    assert f"{gg.tensor([1.0, 2.0])}" == str(gg.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="one-element"):
        f"{gg.tensor([1.0, 2.0]):.2f}"


def test_cat_is_concat(device):
    a, b = gg.ones((2, 2), device=device), gg.zeros((1, 2), device=device)
    assert gg.cat is gg.concat
    assert gg.cat([a, b], axis=0).shape == (3, 2)
