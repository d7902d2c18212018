"""Optimizers against hand-written NumPy references of Keras 3's update rules."""

import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import optimizers

STEPS = 5


def _problem(device, rng):
    """Two Variables and a loss whose gradient changes from step to step."""
    w0 = rng.standard_normal((3, 2)).astype(np.float32)
    b0 = rng.standard_normal((2,)).astype(np.float32)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w = gg.Variable(w0, device=device)
    b = gg.Variable(b0, device=device)
    xt = gg.constant(x, device=device)

    def loss():
        return gg.reduce_sum(gg.tanh(xt @ w + b) ** 2)

    def grads_np(wv, bv):  # d/dw, d/db of sum(tanh(xw + b)^2), in float64
        z = x.astype(np.float64) @ wv + bv
        t = np.tanh(z)
        gz = 2 * t * (1 - t * t)
        return x.T.astype(np.float64) @ gz, gz.sum(0)

    return w, b, loss, grads_np, w0.astype(np.float64), b0.astype(np.float64)


def _run(opt, w, b, loss):
    for _ in range(STEPS):
        with gg.GradientTape() as tape:
            value = loss()
        grads = tape.gradient(value, [w, b])
        opt.apply_gradients(zip(grads, [w, b], strict=True))


def _sgd_reference(params, grads_np, lr, momentum, nesterov):
    ms = [np.zeros_like(p) for p in params]
    for _ in range(STEPS):
        gs = grads_np(*params)
        for i, g in enumerate(gs):
            if momentum == 0:
                params[i] = params[i] - lr * g
                continue
            ms[i] = momentum * ms[i] - lr * g
            params[i] = params[i] + (momentum * ms[i] - lr * g if nesterov else ms[i])
    return params


def _adam_reference(params, grads_np, lr, b1, b2, eps):
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    for t in range(1, STEPS + 1):
        gs = grads_np(*params)
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        for i, g in enumerate(gs):
            ms[i] = b1 * ms[i] + (1 - b1) * g
            vs[i] = b2 * vs[i] + (1 - b2) * g * g
            params[i] = params[i] - lr_t * ms[i] / (np.sqrt(vs[i]) + eps)
    return params


@pytest.mark.parametrize(
    "momentum,nesterov",
    [(0.0, False), (0.9, False), (0.9, True), (0.5, True)],
    ids=["plain", "momentum", "nesterov", "nesterov-0.5"],
)
def test_sgd_matches_reference(device, rng, momentum, nesterov):
    w, b, loss, grads_np, w0, b0 = _problem(device, rng)
    opt = optimizers.SGD(learning_rate=0.1, momentum=momentum, nesterov=nesterov)
    _run(opt, w, b, loss)
    rw, rb = _sgd_reference([w0, b0], grads_np, 0.1, momentum, nesterov)
    np.testing.assert_allclose(w.numpy(), rw, atol=1e-6, rtol=0)
    np.testing.assert_allclose(b.numpy(), rb, atol=1e-6, rtol=0)
    assert opt.iterations == STEPS


@pytest.mark.parametrize("lr,b1,b2,eps", [(0.001, 0.9, 0.999, 1e-7), (0.05, 0.8, 0.99, 1e-3)])
def test_adam_matches_reference(device, rng, lr, b1, b2, eps):
    w, b, loss, grads_np, w0, b0 = _problem(device, rng)
    opt = optimizers.Adam(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps)
    _run(opt, w, b, loss)
    rw, rb = _adam_reference([w0, b0], grads_np, lr, b1, b2, eps)
    np.testing.assert_allclose(w.numpy(), rw, atol=1e-6, rtol=0)
    np.testing.assert_allclose(b.numpy(), rb, atol=1e-6, rtol=0)
    assert opt.iterations == STEPS


def test_state_lives_on_the_variables_device(device):
    v = gg.Variable(np.ones(3, np.float32), device=device)
    opt = optimizers.Adam()
    opt.apply_gradients([(gg.ones(3, device=device), v)])
    assert v.device == gg.ones(1, device=device).device
    for state in opt.variables():
        assert gg.constant(state).device == v.device


def test_minimize_with_a_zero_argument_loss(device):
    x = gg.Variable(3.0, device=device)
    opt = optimizers.SGD(learning_rate=0.1)
    for _ in range(50):
        opt.minimize(lambda: (x - 1.0) ** 2, [x])
    assert abs(x.item() - 1.0) < 1e-4
    assert opt.iterations == 50


def test_minimize_accepts_a_loss_tensor_with_its_tape():
    x = gg.Variable(2.0)
    opt = optimizers.SGD(learning_rate=0.25)
    with gg.GradientTape() as tape:
        loss = x * x
    opt.minimize(loss, [x], tape=tape)
    assert x.item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tape"):
        opt.minimize(x * x, [x])


def test_none_gradients_are_skipped():
    a, b = gg.Variable(1.0), gg.Variable(1.0)
    opt = optimizers.SGD(learning_rate=0.5)
    with pytest.warns(UserWarning, match="gradients do not exist"):  # as Keras 3 warns
        opt.apply_gradients([(gg.constant(2.0), a), (None, b)])
    assert a.item() == 0.0 and b.item() == 1.0
    with pytest.raises(ValueError, match="no gradients"):
        opt.apply_gradients([(None, a), (None, b)])


def test_learning_rate_schedule_is_called_with_the_step():
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.1 / (1 + step)

    x = gg.Variable(0.0)
    opt = optimizers.SGD(learning_rate=schedule)
    for _ in range(3):
        opt.apply_gradients([(gg.constant(-1.0), x)])
    assert seen == [0, 1, 2]
    assert x.item() == pytest.approx(0.1 + 0.05 + 0.1 / 3)


def test_updates_record_nothing_and_bump_the_version():
    x = gg.Variable(1.0)
    with gg.GradientTape() as tape:
        y = x * x
        optimizers.SGD(0.1).apply_gradients([(gg.constant(1.0), x)])
    assert x.item() == pytest.approx(0.9)
    with pytest.raises(RuntimeError, match="modified by an assign"):
        tape.gradient(y, x)  # the graph saved x before the update


def test_get_by_name_and_instance():
    assert isinstance(optimizers.get("SGD"), optimizers.SGD)
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    opt = optimizers.Adam(0.01)
    assert optimizers.get(opt) is opt
    with pytest.raises(ValueError, match="adam, adamw, rmsprop, sgd"):
        optimizers.get("nadam")


def test_bad_arguments():
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.SGD(learning_rate=-1)
    with pytest.raises(ValueError, match="shape"):
        optimizers.SGD().apply_gradients([(gg.ones(2), gg.Variable(np.ones(3, np.float32)))])
