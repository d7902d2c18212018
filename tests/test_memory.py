"""Graphs are freed as soon as nothing can use them, by reference counting alone.

Weak references watch intermediate tensors and their arrays: a non-persistent tape lets go of
its graph when its gradient is taken, ``backward`` without ``retain_graph`` releases the values it
saved, and a long training loop does not grow. Each check is made first without the cycle
collector (the design frees by reference count) and then after ``gc.collect()``.
"""

import contextlib
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import gpugrad as gg


@contextlib.contextmanager
def gc_disabled():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def watch(t):
    """Weak references to a tensor and (where the array type allows one) to its array."""
    refs = [weakref.ref(t)]
    try:
        refs.append(weakref.ref(t.data))
    except TypeError:
        pass
    return refs


def alive(refs):
    return any(r() is not None for r in refs)


def intermediate_graph(x):
    """y = Σ log_softmax(tanh(x)·x)², returning y and the intermediates to watch."""
    h1 = gg.tanh(x)
    h2 = h1 * x
    h3 = gg.log_softmax(h2, axis=-1)
    y = gg.sum(h3 * h3)
    return y, [h1, h2, h3]


@pytest.mark.parametrize("collect", [False, True], ids=["refcount", "gc.collect"])
def test_a_non_persistent_tape_frees_its_graph_at_gradient(device, collect):
    x = gg.constant(np.linspace(-1, 1, 64).reshape(8, 8), device=device)
    with gc_disabled():
        with gg.GradientTape() as tape:
            tape.watch(x)
            y, hs = intermediate_graph(x)
        refs = [r for h in hs for r in watch(h)]
        del hs
        assert alive(refs)  # the graph holds them until the gradient
        g = tape.gradient(y, x)
        if collect:
            gc.collect()
        assert not alive(refs)
    assert g.shape == x.shape
    assert y.numpy().shape == ()  # the target itself stays usable


@pytest.mark.parametrize("collect", [False, True], ids=["refcount", "gc.collect"])
def test_a_loss_releases_its_saved_inputs(device, collect):
    z0 = gg.constant(np.random.default_rng(0).standard_normal((4, 5)), device=device)
    labels = gg.constant([0, 1, 4, 2], device=device)
    with gc_disabled():
        with gg.GradientTape() as tape:
            tape.watch(z0)
            z = z0 * 2.0
            loss = gg.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
        refs = watch(z)
        del z
        tape.gradient(loss, z0)
        if collect:
            gc.collect()
        assert not alive(refs)


@pytest.mark.parametrize("collect", [False, True], ids=["refcount", "gc.collect"])
def test_a_graph_is_freed_when_nothing_refers_to_it(device, collect):
    x = gg.constant(np.ones(32), device=device)
    with gc_disabled():
        with gg.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y, hs = intermediate_graph(x)
        refs = [r for h in hs for r in watch(h)]
        del hs
        tape.gradient(y, x)
        tape.gradient(y, x)
        assert alive(refs)  # a persistent tape keeps the graph while the target lives
        del y
        if collect:
            gc.collect()
        assert not alive(refs)
        del tape


@pytest.mark.parametrize("collect", [False, True], ids=["refcount", "gc.collect"])
def test_dropping_the_tape_and_target_without_a_gradient(device, collect):
    x = gg.constant(np.ones(32), device=device)
    with gc_disabled():
        with gg.GradientTape() as tape:
            tape.watch(x)
            y, hs = intermediate_graph(x)
        refs = [r for h in hs for r in watch(h)] + [weakref.ref(y)]
        del hs, y, tape
        if collect:
            gc.collect()
        assert not alive(refs)


@pytest.mark.parametrize("collect", [False, True], ids=["refcount", "gc.collect"])
def test_backward_without_retain_graph_releases_saved_inputs(device, collect):
    x = gg.tensor(np.linspace(-1, 1, 16), requires_grad=True, device=device)
    with gc_disabled():
        y, hs = intermediate_graph(x)
        refs = [r for h in hs for r in watch(h)]
        del hs
        y.backward()
        if collect:
            gc.collect()
        assert not alive(refs)
    assert x.grad is not None


@pytest.mark.parametrize("collect", [False, True], ids=["refcount", "gc.collect"])
def test_backward_with_retain_graph_keeps_them_until_the_output_goes(device, collect):
    x = gg.tensor(np.linspace(-1, 1, 16), requires_grad=True, device=device)
    with gc_disabled():
        y, hs = intermediate_graph(x)
        refs = [r for h in hs for r in watch(h)]
        del hs
        y.backward(retain_graph=True)
        assert alive(refs)
        y.backward()
        assert not alive(refs)
    del y


@pytest.mark.parametrize("collect", [False, True], ids=["refcount", "gc.collect"])
def test_autograd_grad_releases_the_graph(device, collect):
    x = gg.tensor(np.linspace(-1, 1, 16), requires_grad=True, device=device)
    with gc_disabled():
        y, hs = intermediate_graph(x)
        refs = [r for h in hs for r in watch(h)]
        del hs
        gg.autograd.grad(y, [x])
        if collect:
            gc.collect()
        assert not alive(refs)


@pytest.mark.parametrize("collect", [False, True], ids=["refcount", "gc.collect"])
def test_nested_tapes_free_everything(device, collect):
    x = gg.Variable(gg.constant(np.linspace(-1, 1, 8), device=device))
    with gc_disabled():
        with gg.GradientTape() as outer:
            with gg.GradientTape() as inner:
                y, hs = intermediate_graph(x)
            g = inner.gradient(y, x)
            s = gg.sum(g * g)
        refs = [r for h in hs for r in watch(h)] + list(watch(g))
        del hs, g
        h = outer.gradient(s, x)
        del y, s
        if collect:
            gc.collect()
        assert not alive(refs)
    assert h.shape == x.shape


def test_functional_api_keeps_nothing(device):
    seen = []

    def f(x):
        y, hs = intermediate_graph(x)
        seen.extend(r for h in hs for r in watch(h))
        return y

    x = gg.constant(np.linspace(-1, 1, 8), device=device)
    with gc_disabled():
        gg.grad(f)(x)
        gg.hessian(f)(x)
        gc.collect()
    assert len(seen) >= 6 and not alive(seen)


def test_a_variable_outlives_the_tapes_that_watched_it(device):
    w = gg.Variable(gg.constant([1.0, 2.0], device=device))
    tape_refs = []
    for _ in range(3):
        with gg.GradientTape() as tape:
            y = gg.sum(w * w)
        tape.gradient(y, w)
        tape_refs.append(weakref.ref(tape))
        del tape, y
    gc.collect()
    assert not alive(tape_refs)
    assert not w._tapes  # no trace of finished tapes on the variable


# -- a long loop ---------------------------------------------------------------------------------------


def regression_steps(x, y_true, kernel, bias, n):
    for _ in range(n):
        with gg.GradientTape() as tape:
            y_pred = x @ kernel + bias
            loss = gg.reduce_mean((y_true - y_pred) ** 2)
        grads = tape.gradient(loss, [kernel, bias])
        for var, g in zip([kernel, bias], grads, strict=True):
            var.assign_sub(0.01 * g)
    return loss


def test_ten_thousand_training_steps_do_not_grow(device):
    rng = np.random.default_rng(0)
    x = gg.constant(rng.standard_normal((8, 1)), dtype="float32", device=device)
    y_true = 2.0 * x + 1
    kernel = gg.Variable(gg.zeros((1, 1), device=device))
    bias = gg.Variable(gg.zeros((1,), device=device))

    regression_steps(x, y_true, kernel, bias, 200)  # warm-up: caches, lazy imports
    gc.collect()
    before = len(gc.get_objects())
    loss = regression_steps(x, y_true, kernel, bias, 10_000)
    del loss
    gc.collect()
    after = len(gc.get_objects())

    assert after - before < 50, f"{after - before} more objects after 10,000 steps"
    assert kernel.numpy().item() == pytest.approx(2.0, abs=1e-3)
    assert bias.numpy().item() == pytest.approx(1.0, abs=1e-3)


def test_training_steps_keep_no_memory(device):
    rng = np.random.default_rng(1)
    x = gg.constant(rng.standard_normal((8, 1)), dtype="float32", device=device)
    y_true = 2.0 * x + 1
    kernel = gg.Variable(gg.zeros((1, 1), device=device))
    bias = gg.Variable(gg.zeros((1,), device=device))
    regression_steps(x, y_true, kernel, bias, 100)
    gc.collect()
    tracemalloc.start()
    try:
        # the first steps traced settle what caches and the allocator keep once (a few KB, more
        # after a long test session); a leak keeps growing over the next 1,000
        regression_steps(x, y_true, kernel, bias, 500)
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        regression_steps(x, y_true, kernel, bias, 1_000)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 16 * 1024, f"{after - before} bytes kept over 1,000 steps"


def test_ten_thousand_autograd_steps_do_not_grow(device):
    w = gg.Variable(gg.constant([0.0], device=device))
    w.requires_grad_()
    x = gg.constant([1.0, 2.0, 3.0], device=device)

    def step():
        loss = gg.nn.functional.mse_loss(x * w, 2.0 * x)
        loss.backward()
        w.assign_sub(0.05 * w.grad)
        w.grad = None

    for _ in range(100):
        step()
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(10_000):
        step()
    gc.collect()
    assert len(gc.get_objects()) - before < 50
    assert w.item() == pytest.approx(2.0, abs=1e-3)


@pytest.mark.parametrize("collect", [False, True], ids=["refcount", "gc.collect"])
@pytest.mark.parametrize("release", ["gradient", "del tape"])
def test_a_released_tape_frees_its_graph_while_results_live(device, collect, release):
    x = gg.constant(np.linspace(-1, 1, 32), device=device)
    with gc_disabled():
        with gg.GradientTape(persistent=release == "del tape") as tape:
            tape.watch(x)
            y, hs = intermediate_graph(x)
            other = gg.exp(hs[1]) * hs[0]  # a second result, not differentiated
        refs = [r for h in hs for r in watch(h)]
        del hs
        tape.gradient(y, x)
        if release == "del tape":
            assert alive(refs)  # a persistent tape keeps its graph while it lives
            del tape
        if collect:
            gc.collect()
        assert not alive(refs)  # y and other are still alive: they keep their values only
        assert np.isfinite(y.numpy()) and other.shape == x.shape
        assert y.grad_fn is None and other._node.inputs is None


def test_results_kept_from_persistent_tapes_do_not_grow_memory(device):
    w = gg.Variable(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), device=device)
    x = gg.constant(np.ones((32, 64), np.float32), device=device)

    def step(keep):
        with gg.GradientTape(persistent=True) as tape:
            h = gg.tanh(x @ w)
            loss = gg.mean(h * h)
        tape.gradient(loss, w)
        keep.append(loss)  # the tape is dropped at the next step; the loss lives on

    kept: list = []
    for _ in range(20):
        step(kept)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(200):
            step(kept)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # each kept loss is a 0-d value and a released node: well under 1 kB a step, where the
    # graph (two 32x64 activations, saved) would be ~16 kB a step
    assert (after - before) / 200 < 2048, f"{(after - before) / 200:.0f} bytes a step"
