"""Compiled steps on CUDA (run on the simulated device in CI): one graph launch per training step,
host numbers as device scalars, results equal to eager code."""

import numpy as np
import pytest

import gpugrad as gg

pytestmark = pytest.mark.gpu


def _sim():
    sim = pytest.importorskip("gpugrad.testing.simulated_cuda")
    if not sim.enabled():
        pytest.skip("counts the simulated device's launches")
    return sim


OPTS = {
    "adam_schedule_clipnorm": lambda: gg.optimizers.Adam(
        gg.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5), clipnorm=1.0),
    "adamw": lambda: gg.optimizers.AdamW(0.01, weight_decay=0.05),
    "rmsprop": lambda: gg.optimizers.RMSprop(0.01, momentum=0.9),
    "sgd_momentum": lambda: gg.optimizers.SGD(0.05, momentum=0.9),
}


def _setup(device):
    rng = np.random.default_rng(1)
    x = gg.constant(rng.standard_normal((32, 12)).astype(np.float32), device=device)
    labels = gg.constant(rng.integers(0, 5, 32), device=device)
    shapes = ((12, 16), (16,), (16, 5), (5,))
    ws = [gg.Variable(gg.constant(rng.standard_normal(s).astype(np.float32) * 0.3, device=device)) for s in shapes]
    return x, labels, ws


def _step(ws, opt):
    def step(x, labels):
        with gg.GradientTape() as tape:
            z = gg.tanh(x @ ws[0] + ws[1]) @ ws[2] + ws[3]
            loss = gg.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
        opt.apply_gradients(zip(tape.gradient(loss, ws), ws))
        return loss

    return step


@pytest.mark.parametrize("opt_name", list(OPTS))
def test_an_optimizer_step_with_host_numbers_is_one_graph_launch(opt_name):
    sim = _sim()
    runs = []
    for compiled in (False, True):
        x, labels, ws = _setup("cuda")
        opt = OPTS[opt_name]()
        step = _step(ws, opt)
        if compiled:
            step = gg.jit(step)
        losses = [step(x, labels).numpy() for _ in range(3)]
        if compiled:
            with sim.counters() as c:
                losses.append(step(x, labels).numpy())
            assert c.graph_launches == 1, c
            assert c.h2d <= 1, c  # the step's host numbers, in one copy
            assert c.syncs == 1, c  # the .numpy() of the loss
        else:
            losses.append(step(x, labels).numpy())
        losses += [step(x, labels).numpy() for _ in range(3)]
        runs.append((losses, [w.numpy() for w in ws], opt.iterations))
    (l0, w0, i0), (l1, w1, i1) = runs
    assert i0 == i1 == 7
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for a, b in zip(w1, w0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
