"""A compiled CUDA step called again on the same device arrays launches a graph captured against
those arrays (no copy into the graph's own buffers): it sees writes into them between calls, other
arrays get their own answers, and every array a kept graph reads stays alive while it is kept."""

import gc
import importlib
import weakref

import numpy as np
import pytest

import gpugrad as gg

pytestmark = pytest.mark.gpu
cuda_graph = importlib.import_module("gpugrad.jit.cuda_graph")


def _cp():
    sim = pytest.importorskip("gpugrad.testing.simulated_cuda")
    if not sim.enabled():
        pytest.skip("counts the simulated device's copies")
    return sim, gg.backend.cupy()


def _runner(f):
    return next(iter(f._cache.values()))[0]._graph


def _f(x, b):
    return gg.tanh(x * 2.0 + b) - x


def _want(x, b):
    return np.tanh(x * 2.0 + b) - x


def test_the_same_arrays_again_are_read_where_they_are_without_a_copy():
    sim, cp = _cp()
    rng = np.random.default_rng(0)
    x = cp.asarray(rng.standard_normal((64, 32)).astype(np.float32))
    b = cp.asarray(rng.standard_normal(32).astype(np.float32))
    f = gg.jit(_f)
    for _ in range(3):
        f(x, b)
    x2, b2 = x.copy(), b.copy()
    with sim.counters() as copied:  # other arrays, seen once: copied into the first graph's buffers
        f(x2, b2)
    with sim.counters() as c:
        got = f(x, b)
    assert c.graph_launches == copied.graph_launches == 1
    assert c.by_kernel.get("cupy_setitem", 0) == 0, c.by_kernel  # no input copied into the graph
    moved = c.bytes_read + c.bytes_written
    assert moved == copied.bytes_read + copied.bytes_written - 2 * (x.nbytes + b.nbytes)
    np.testing.assert_allclose(got.numpy(), _want(cp.asnumpy(x), cp.asnumpy(b)), rtol=1e-5, atol=1e-6)
    assert len(_runner(f).by_pointer) == 1


def test_writes_into_a_captured_array_between_calls_are_seen():
    _, cp = _cp()
    x = cp.asarray(np.linspace(-1, 1, 40, dtype=np.float32).reshape(8, 5))
    b = cp.asarray(np.zeros(5, np.float32))
    f = gg.jit(_f)
    for k in range(5):
        got = f(x, b).numpy()
        np.testing.assert_allclose(got, _want(cp.asnumpy(x), cp.asnumpy(b)), rtol=1e-5, atol=1e-6)
        x[...] = x * 1.5 + k  # in place: the same address, new values
        b += 0.25
    assert len(_runner(f).by_pointer) == 1  # the later calls ran the graph over x and b themselves


def test_other_arrays_and_other_strides_get_their_own_answers():
    _, cp = _cp()
    rng = np.random.default_rng(1)
    xs = [cp.asarray(rng.standard_normal((6, 6)).astype(np.float32)) for _ in range(4)]
    xs.append(xs[0].T)  # the same address as xs[0], other strides
    b = cp.asarray(rng.standard_normal(6).astype(np.float32))
    f = gg.jit(_f)
    for order in (0, 0, 1, 1, 0, 2, 2, 3, 3, 4, 4, 0, 1, 2, 3, 4, 1, 0):
        x = xs[order]
        np.testing.assert_allclose(f(x, b).numpy(), _want(cp.asnumpy(x), cp.asnumpy(b)), rtol=1e-5, atol=1e-6)
    assert len(_runner(f).by_pointer) <= cuda_graph.MAX_POINTER_GRAPHS
    assert f.trace_count == 1


def test_a_captured_array_stays_alive_until_its_graph_is_evicted():
    _, cp = _cp()
    b = cp.asarray(np.ones(5, np.float32))
    f = gg.jit(_f)
    x = cp.asarray(np.arange(40, dtype=np.float32).reshape(8, 5))
    for _ in range(3):  # traced, then copied, then captured against x
        f(x, b)
    assert len(_runner(f).by_pointer) == 1
    ref = weakref.ref(x)
    del x
    gc.collect()
    assert ref() is not None  # the graph reads it: its memory must not be handed out again
    others = [cp.asarray(np.full((8, 5), k, np.float32)) for k in range(cuda_graph.MAX_POINTER_GRAPHS)]
    for y in others:
        for _ in range(3):
            np.testing.assert_allclose(f(y, b).numpy(), _want(cp.asnumpy(y), cp.asnumpy(b)), rtol=1e-5)
    gc.collect()
    assert ref() is None  # evicted: let go


def test_a_new_array_at_every_call_is_copied_and_never_held():
    _, cp = _cp()
    b = cp.asarray(np.ones(5, np.float32))
    f = gg.jit(_f)
    refs = []
    for k in range(6):
        x = cp.asarray(np.full((8, 5), k * 0.5, np.float32))
        refs.append(weakref.ref(x))
        np.testing.assert_allclose(f(x, b).numpy(), _want(cp.asnumpy(x), cp.asnumpy(b)), rtol=1e-5)
        del x
    gc.collect()
    assert not _runner(f).by_pointer
    assert all(r() is None for r in refs)


def test_a_training_step_on_the_same_batch_equals_eager_with_updates_in_place():
    _, cp = _cp()
    rng = np.random.default_rng(2)
    x = gg.constant(rng.standard_normal((32, 12)).astype(np.float32), device="cuda")
    labels = gg.constant(rng.integers(0, 5, 32), device="cuda")
    runs = []
    for compiled in (False, True):
        r = np.random.default_rng(3)
        ws = [gg.Variable(gg.constant(r.standard_normal(s).astype(np.float32) * 0.3, device="cuda"))
              for s in ((12, 16), (16,), (16, 5), (5,))]

        def step(x, labels, ws=ws):
            with gg.GradientTape() as tape:
                z = gg.relu(x @ ws[0] + ws[1]) @ ws[2] + ws[3]
                loss = gg.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
            for w, g in zip(ws, tape.gradient(loss, ws)):
                w.assign_sub(0.1 * g)
            return loss

        f = gg.jit(step) if compiled else step
        losses = [f(x, labels).numpy() for _ in range(6)]
        runs.append((losses, [w.numpy() for w in ws]))
    (l0, w0), (l1, w1) = runs
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for a, b in zip(w1, w0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
