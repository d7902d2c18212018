"""The JAX spelling: grad, value_and_grad, jacobian, hessian, hvp, and their compositions."""

import numpy as np
import pytest

import gpugrad as gg


def f64(v, device):
    return gg.constant(v, dtype="float64", device=device)


def test_grad_of_sin(device):
    with gg.device(device):
        assert gg.grad(gg.sin)(0.0).item() == 1.0
    g = gg.grad(lambda t: gg.sum(gg.sin(t)))(f64([0.0, 1.0], device))
    np.testing.assert_allclose(g.numpy(), np.cos([0.0, 1.0]))


def test_grad_of_grad(device):
    x = f64(1.0, device)
    d2 = gg.grad(gg.grad(gg.sin))(x)
    d3 = gg.grad(gg.grad(gg.grad(gg.sin)))(x)
    d4 = gg.grad(gg.grad(gg.grad(gg.grad(gg.sin))))(x)
    assert d2.item() == pytest.approx(-np.sin(1.0), rel=1e-14)
    assert d3.item() == pytest.approx(-np.cos(1.0), rel=1e-14)
    assert d4.item() == pytest.approx(np.sin(1.0), rel=1e-14)


def test_grad_of_x4(device):
    f = lambda x: x**4  # noqa: E731
    x = f64(2.0, device)
    assert [gg.grad(f)(x).item(), gg.grad(gg.grad(f))(x).item(), gg.grad(gg.grad(gg.grad(f)))(x).item()] == [
        32.0, 48.0, 48.0]


def test_grad_keeps_shape_and_dtype(device):
    x = gg.constant(np.ones((2, 3)), dtype="float32", device=device)
    g = gg.grad(lambda x: gg.sum(x * x))(x)
    assert g.shape == (2, 3) and g.dtype == np.float32 and g.device == x.device


def test_argnums(device):
    def f(x, y, z):
        return gg.sum(x * y**2 + z)

    x, y, z = f64([1.0, 2.0], device), f64([3.0, 4.0], device), f64([5.0, 6.0], device)
    np.testing.assert_array_equal(gg.grad(f)(x, y, z).numpy(), [9.0, 16.0])
    np.testing.assert_array_equal(gg.grad(f, argnums=1)(x, y, z).numpy(), [6.0, 16.0])
    gx, gz = gg.grad(f, argnums=(0, 2))(x, y, z)
    np.testing.assert_array_equal(gx.numpy(), [9.0, 16.0])
    np.testing.assert_array_equal(gz.numpy(), [1.0, 1.0])
    (gy,) = gg.grad(f, argnums=(1,))(x, y, z)
    np.testing.assert_array_equal(gy.numpy(), [6.0, 16.0])
    np.testing.assert_array_equal(gg.grad(f, argnums=-1)(x, y, z).numpy(), [1.0, 1.0])


def test_value_and_grad(device):
    def f(w, b):
        return gg.sum((w * 2.0 + b) ** 2)

    w, b = f64([1.0, -1.0], device), f64(0.5, device)
    value, g = gg.value_and_grad(f)(w, b)
    assert value.item() == pytest.approx(2.5**2 + 1.5**2)
    np.testing.assert_array_equal(g.numpy(), [4 * 2.5, 4 * -1.5])
    value, (gw, gb) = gg.value_and_grad(f, argnums=(0, 1))(w, b)
    assert gb.shape == () and gb.item() == pytest.approx(2 * 2.5 + 2 * -1.5)


def test_has_aux(device):
    def f(x):
        y = x * x
        return gg.sum(y), y

    x = f64([1.0, 2.0], device)
    g, aux = gg.grad(f, has_aux=True)(x)
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(aux.numpy(), [1.0, 4.0])
    (value, aux), g = gg.value_and_grad(f, has_aux=True)(x)
    assert value.item() == 5.0


def test_grad_of_an_unconnected_argument_is_zero(device):
    g = gg.grad(lambda x, y: gg.sum(x), argnums=1)(f64([1.0], device), f64([1.0, 2.0], device))
    np.testing.assert_array_equal(g.numpy(), [0.0, 0.0])


def test_grad_does_not_leak_into_outer_tapes_of_other_tensors(device):
    w = gg.Variable(f64(3.0, device))
    with gg.GradientTape() as tape:
        g = gg.grad(lambda x: x * w)(f64(2.0, device))  # = w, recorded by the outer tape
    assert g.item() == 3.0
    assert tape.gradient(g, w).item() == 1.0


# -- jacobian, hessian, hvp --------------------------------------------------------------------------------


def test_jacobian(device):
    A = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]])
    j = gg.jacobian(lambda x: f64(A, device) @ x)(f64([1.0, 1.0, 1.0], device))
    np.testing.assert_array_equal(j.numpy(), A)
    j = gg.jacobian(lambda x: x**2)(f64([1.0, 2.0], device))
    np.testing.assert_array_equal(j.numpy(), np.diag([2.0, 4.0]))


def test_jacobian_shapes(device):
    j = gg.jacobian(lambda x: x @ x.T)(f64(np.arange(6.0).reshape(2, 3), device))
    assert j.shape == (2, 2, 2, 3)
    j = gg.jacobian(lambda x: gg.sum(x**2))(f64([1.0, 2.0], device))
    assert j.shape == (2,)
    np.testing.assert_array_equal(j.numpy(), [2.0, 4.0])


def test_jacobian_argnums(device):
    jx, jy = gg.jacobian(lambda x, y: x * y, argnums=(0, 1))(f64([1.0, 2.0], device), f64([3.0, 4.0], device))
    np.testing.assert_array_equal(jx.numpy(), np.diag([3.0, 4.0]))
    np.testing.assert_array_equal(jy.numpy(), np.diag([1.0, 2.0]))


def test_jacobian_of_softmax_is_p_delta_minus_p(device):
    a = f64([0.1440, 0.5349, 0.7022], device)
    j = gg.jacobian(lambda a: gg.softmax(a, axis=0))(a)
    p = np.exp(a.numpy()) / np.exp(a.numpy()).sum()
    np.testing.assert_allclose(j.numpy(), np.diag(p) - np.outer(p, p), rtol=1e-12, atol=1e-15)


def test_hessian_of_cubes(device):
    h = gg.hessian(lambda t: (t**3).sum())(gg.constant([1.0, 2.0], device=device))
    np.testing.assert_array_equal(h.numpy(), [[6.0, 0.0], [0.0, 12.0]])


def test_hessian_of_a_quadratic_form(device):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    b = rng.standard_normal(4)

    def f(x):
        return gg.sum(x * (f64(A, device) @ x)) + gg.sum(f64(b, device) * x)

    h = gg.hessian(f)(f64(rng.standard_normal(4), device))
    np.testing.assert_allclose(h.numpy(), A + A.T, rtol=1e-12)


def test_hessian_of_log_sum_exp(device):
    x = f64([0.3, -1.2, 0.8], device)
    h = gg.hessian(lambda x: gg.logsumexp(x))(x)
    p = np.exp(x.numpy()) / np.exp(x.numpy()).sum()
    np.testing.assert_allclose(h.numpy(), np.diag(p) - np.outer(p, p), rtol=1e-10, atol=1e-15)


def test_hessian_of_a_matrix_argument(device):
    x = f64([[1.0, 2.0], [3.0, 4.0]], device)
    h = gg.hessian(lambda x: gg.sum(x**3))(x)
    assert h.shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(h.numpy().reshape(4, 4), np.diag(6 * x.numpy().ravel()))


def test_hessian_argnums_tuple(device):
    # H[i][j] = d² f / d args[i] d args[j], as JAX
    x, y = f64([1.0, 2.0], device), f64([3.0, 4.0], device)
    (hxx, hxy), (hyx, hyy) = gg.hessian(lambda x, y: gg.sum(x * x * y), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(hxx.numpy(), np.diag(2 * y.numpy()))
    np.testing.assert_array_equal(hxy.numpy(), np.diag(2 * x.numpy()))
    np.testing.assert_array_equal(hyx.numpy(), np.diag(2 * x.numpy()))
    np.testing.assert_array_equal(hyy.numpy(), np.zeros((2, 2)))


def test_jacobian_of_a_function_with_two_outputs(device):
    j1, j2 = gg.jacobian(lambda x: (x * 2.0, gg.sum(x)))(f64([1.0, 2.0], device))
    np.testing.assert_array_equal(j1.numpy(), 2 * np.eye(2))
    np.testing.assert_array_equal(j2.numpy(), [1.0, 1.0])


def test_hvp_is_the_hessian_times_v(device):
    rng = np.random.default_rng(1)

    def f(x):
        return gg.sum(gg.sin(x) * x) + gg.logsumexp(x) ** 2

    x = f64(rng.standard_normal(5), device)
    v = f64(rng.standard_normal(5), device)
    h = gg.hessian(f)(x).numpy()
    np.testing.assert_allclose(gg.hvp(f, x, v).numpy(), h @ v.numpy(), rtol=1e-10)


def test_hvp_of_a_quadratic(device):
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    f = lambda x: 0.5 * gg.sum(x * (f64(A, device) @ x))  # noqa: E731
    x = f64([1.0, 2.0], device)
    np.testing.assert_allclose(gg.hvp(f, x, f64([1.0, 0.0], device)).numpy(), [2.0, 1.0])
    np.testing.assert_allclose(gg.hvp(f, x, [0.0, 1.0]).numpy(), [1.0, 3.0])


def test_functional_and_tape_agree_on_a_network(device):
    rng = np.random.default_rng(2)
    x = f64(rng.standard_normal((5, 3)), device)
    labels = gg.constant([0, 1, 2, 1, 0], device=device)

    def loss(w, b):
        return gg.losses.sparse_categorical_crossentropy(labels, gg.relu(x @ w + b), from_logits=True)

    w, b = f64(rng.standard_normal((3, 3)), device), f64(rng.standard_normal(3), device)
    gw, gb = gg.grad(loss, argnums=(0, 1))(w, b)
    with gg.GradientTape() as tape:
        tape.watch([w, b])
        out = loss(w, b)
    tw, tb = tape.gradient(out, [w, b])
    np.testing.assert_allclose(gw.numpy(), tw.numpy(), rtol=1e-14)
    np.testing.assert_allclose(gb.numpy(), tb.numpy(), rtol=1e-14)
