"""The PyTorch spelling: requires_grad, backward into .grad, autograd.grad, no_grad, detach."""

import numpy as np
import pytest

import gpugrad as gg


def leaf(v, device, dtype="float32"):
    return gg.tensor(v, dtype=dtype, device=device, requires_grad=True)


# -- requires_grad, leaves, detach, no_grad -----------------------------------------------------------------


def test_requires_grad_flows_to_results(device):
    x = leaf([1.0, 2.0], device)
    c = gg.tensor([3.0, 4.0], device=device)
    assert x.requires_grad and x.is_leaf and x.grad_fn is None
    assert not c.requires_grad
    y = x * c
    assert y.requires_grad and not y.is_leaf and y.grad_fn is not None
    assert not (c * c).requires_grad


def test_requires_grad_underscore(device):
    w = gg.full([1], 2.0, device=device)
    assert not w.requires_grad
    assert w.requires_grad_() is w
    assert w.requires_grad
    w.requires_grad_(False)
    assert not w.requires_grad
    w.requires_grad = True
    assert w.requires_grad


def test_requires_grad_cannot_be_switched_off_on_a_result(device):
    y = leaf([1.0], device) * 2.0
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)


def test_detach(device):
    x = leaf([1.0, 2.0], device)
    y = x * x
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), [1.0, 4.0])
    z = gg.sum(d * x)
    (g,) = gg.autograd.grad(z, [x])
    np.testing.assert_array_equal(g.numpy(), [1.0, 4.0])  # d is a constant


def test_no_grad(device):
    x = leaf([1.0, 2.0], device)
    with gg.no_grad():
        y = x * x
        assert not y.requires_grad and y.grad_fn is None
    assert (x * x).requires_grad


def test_no_grad_also_stops_tapes(device):
    x = gg.constant(2.0, device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        with gg.no_grad():
            y = x * x
    assert tape.gradient(y, x) is None


def test_enable_grad_inside_no_grad(device):
    x = leaf([1.0], device)
    with gg.no_grad():
        with gg.enable_grad():
            y = x * 3.0
    assert y.requires_grad


def test_integer_results_never_require_grad(device):
    x = leaf([1.5, 2.5], device)
    assert not (x > 2.0).requires_grad
    i = gg.tensor([1, 2], device=device)
    assert not (i + i).requires_grad


# -- backward -----------------------------------------------------------------------------------------


def test_backward_fills_grad_of_leaves(device):
    w = leaf([[1.0, 2.0], [3.0, 4.0]], device)
    b = leaf([0.5, -0.5], device)
    x = gg.tensor([[1.0, 1.0]], device=device)
    loss = gg.sum((x @ w + b) ** 2)
    loss.backward()
    r = x.numpy() @ w.numpy() + b.numpy()
    np.testing.assert_allclose(w.grad.numpy(), x.numpy().T @ (2 * r))
    np.testing.assert_allclose(b.grad.numpy(), (2 * r).sum(0))
    assert x.grad is None
    assert not w.grad.requires_grad


def test_backward_accumulates_over_two_calls(device):
    x = leaf([1.0, 2.0], device)
    y = gg.sum(x**2)
    y.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    x.grad = None
    gg.sum(x**3).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 12.0])


def test_backward_twice_without_retain_graph_raises(device):
    x = leaf([1.0, 2.0], device)
    y = gg.sum(gg.exp(x))
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_a_shared_subgraph_is_freed_by_the_first_backward(device):
    x = leaf([1.0, 2.0], device)
    h = gg.exp(x)
    gg.sum(h).backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        gg.sum(h * 2.0).backward()


def test_backward_with_a_gradient(device):
    x = leaf([1.0, 2.0, 3.0], device)
    y = x * x
    y.backward(gg.tensor([1.0, 0.1, 0.01], device=device))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 0.4, 0.06], rtol=1e-6)


def test_backward_of_a_size_one_tensor(device):
    x = leaf([3.0], device)
    (x * x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0])


def test_backward_create_graph_gives_a_differentiable_grad(device):
    x = leaf([1.0, 2.0], device)
    gg.sum(x**3).backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    np.testing.assert_array_equal(g.numpy(), [3.0, 12.0])
    x.grad = None
    gg.sum(g).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 12.0])


def test_backward_through_a_tensor_used_twice(device):
    x = leaf(3.0, device)
    y = x * x + x
    y.backward()
    assert x.grad.item() == 7.0


def test_non_leaf_tensors_get_no_grad(device):
    x = leaf([1.0], device)
    h = x * 2.0
    gg.sum(h * h).backward()
    assert h.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), [8.0])


# -- autograd.grad ------------------------------------------------------------------------------------------


def test_grad_returns_a_tuple(device):
    x, y = leaf(2.0, device), leaf(5.0, device)
    z = x * y
    g = gg.autograd.grad(z, [x, y])
    assert isinstance(g, tuple) and [t.item() for t in g] == [5.0, 2.0]
    assert x.grad is None  # grad does not touch .grad


def test_grad_with_a_single_input(device):
    x = leaf(2.0, device)
    (g,) = gg.autograd.grad(x**3, x)
    assert g.item() == 12.0


def test_grad_outputs(device):
    x = leaf([1.0, 2.0], device)
    y = x**2
    (g,) = gg.autograd.grad(y, [x], grad_outputs=gg.tensor([1.0, 3.0], device=device))
    np.testing.assert_array_equal(g.numpy(), [2.0, 12.0])


def test_grad_of_several_outputs_is_summed(device):
    x = leaf([1.0, 2.0], device)
    (g,) = gg.autograd.grad([gg.sum(x * x), gg.sum(x) * 3.0], [x])
    np.testing.assert_array_equal(g.numpy(), [5.0, 7.0])


def test_retain_graph(device):
    a = leaf([0.1, 0.5, 0.7], device)
    p = gg.softmax(a, axis=0)
    g0 = gg.autograd.grad(p[0], [a], retain_graph=True)[0]
    g1 = gg.autograd.grad(p[1], [a], retain_graph=True)[0]
    g2 = gg.autograd.grad(p[2], [a])[0]
    total = g0.numpy() + g1.numpy() + g2.numpy()
    np.testing.assert_allclose(total, 0.0, atol=1e-6)  # Σ_i p_i = 1
    with pytest.raises(RuntimeError, match="retain_graph"):
        gg.autograd.grad(p[0], [a])


def test_grad_of_grad_with_create_graph(device):
    x = leaf([0.5, -1.0], device, "float64")
    y = gg.sum(gg.sin(x) * x)
    (g,) = gg.autograd.grad(y, [x], create_graph=True)
    assert g.requires_grad
    np.testing.assert_allclose(g.numpy(), np.cos(x.numpy()) * x.numpy() + np.sin(x.numpy()))
    (h,) = gg.autograd.grad(gg.sum(g), [x])
    xs = x.numpy()
    np.testing.assert_allclose(h.numpy(), -np.sin(xs) * xs + 2 * np.cos(xs), rtol=1e-12)
    assert not h.requires_grad


def test_third_order_with_create_graph(device):
    x = leaf(2.0, device)
    (g1,) = gg.autograd.grad(x**4, [x], create_graph=True)
    (g2,) = gg.autograd.grad(g1, [x], create_graph=True)
    (g3,) = gg.autograd.grad(g2, [x])
    assert (g1.item(), g2.item(), g3.item()) == (32.0, 48.0, 48.0)


def test_grad_without_create_graph_is_detached(device):
    x = leaf([1.0], device)
    (g,) = gg.autograd.grad(gg.sum(x**2), [x])
    assert not g.requires_grad and g.grad_fn is None


def test_allow_unused(device):
    x, z = leaf([1.0], device), leaf([2.0], device)
    gx, gz = gg.autograd.grad(gg.sum(x * 2.0), [x, z], allow_unused=True)
    np.testing.assert_array_equal(gx.numpy(), [2.0])
    assert gz is None


def test_grad_of_an_intermediate(device):
    x = leaf([1.0, 2.0], device)
    h = x * 3.0
    y = gg.sum(h * h)
    gh, gx = gg.autograd.grad(y, [h, x])
    np.testing.assert_array_equal(gh.numpy(), [6.0, 12.0])
    np.testing.assert_array_equal(gx.numpy(), [18.0, 36.0])


def test_seed_003_in_the_autograd_spelling(device):
    x = gg.ones(1, device=device)
    w = gg.full([1], 2.0, device=device)
    w.requires_grad_()
    mse = gg.nn.functional.mse_loss(gg.ones(1, device=device), x * w)
    (g,) = gg.autograd.grad(mse, [w], retain_graph=True)
    mse.backward()
    np.testing.assert_array_equal(g.numpy(), w.grad.numpy())
    np.testing.assert_array_equal(g.numpy(), [2.0])


def test_autograd_and_tape_agree(device):
    x_np = np.random.default_rng(0).standard_normal((3, 4))
    x = leaf(x_np, device, "float64")
    loss = gg.sum(gg.log_softmax(gg.tanh(x), axis=1) * x)
    (g_autograd,) = gg.autograd.grad(loss, [x])
    xc = gg.constant(x_np, device=device)
    with gg.GradientTape() as tape:
        tape.watch(xc)
        loss2 = gg.sum(gg.log_softmax(gg.tanh(xc), axis=1) * xc)
    np.testing.assert_allclose(g_autograd.numpy(), tape.gradient(loss2, xc).numpy(), rtol=1e-14)


def test_variables_in_the_autograd_spelling(device):
    v = gg.Variable(gg.constant([1.0, 2.0], device=device))
    v.requires_grad_()
    gg.sum(v * v).backward()
    np.testing.assert_array_equal(v.grad.numpy(), [2.0, 4.0])
