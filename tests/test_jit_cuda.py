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


def _chain(x):
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x
        for _ in range(50):
            y = gg.tanh(gg.sigmoid(y * 1.01 + 0.1))
        s = gg.sum(y)
    return s, tape.gradient(s, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_chain_benchmark_is_a_few_launches_and_equals_eager(dtype, monkeypatch):
    sim = _sim()
    monkeypatch.setenv("GPUGRAD_FUSION", "1")
    x = gg.constant(np.random.default_rng(5).standard_normal(1000).astype(dtype), device="cuda")
    f = gg.jit(_chain, cuda_graph=False)
    f(x)
    with sim.counters() as fused:
        s, g = f(x)
    with sim.counters() as eager:
        s0, g0 = _chain(x)
    # 50 rounds of 4 ops forward and their gradients: one fused kernel, the sum, nothing more
    assert fused.launches <= 6 < eager.launches, (fused.by_kernel, eager.launches)
    assert fused.bytes_read + fused.bytes_written < (eager.bytes_read + eager.bytes_written) / 50
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(s.numpy(), s0.numpy(), rtol=tol)
    np.testing.assert_allclose(g.numpy(), g0.numpy(), rtol=tol * 10, atol=tol)
    jg = gg.jit(_chain)  # and captured: one graph launch
    jg(x)
    with sim.counters() as c:
        s1, _ = jg(x)
    assert c.graph_launches == 1 and c.syncs == 0, c
    np.testing.assert_allclose(s1.numpy(), s0.numpy(), rtol=tol)


def test_fused_groups_on_cuda_match_the_unfused_replay(monkeypatch):
    _sim()
    rng = np.random.default_rng(2)
    x = gg.constant(rng.standard_normal((8, 33)).astype(np.float32), device="cuda")
    b = gg.constant(rng.standard_normal((33,)).astype(np.float32), device="cuda")

    def f(x, b):
        h = gg.relu(x * 1.5 + b)
        return gg.where(gg.greater(h, 0.25), gg.exp(-h) * h, h - 1.0) + gg.maximum(x, b)

    results = []
    for fusion in ("1", "0"):
        monkeypatch.setenv("GPUGRAD_FUSION", fusion)
        results.append(gg.jit(f, cuda_graph=False)(x, b).numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(results[0], f(x, b).numpy(), rtol=1e-6, atol=1e-7)


SCALE = r"""
extern "C" __global__ void scale_add(const float* x, float* y, const float a, const int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] += a * x[i];
}
"""


def test_a_user_raw_kernel_inside_a_compiled_step_is_replayed():
    sim = _sim()
    k = gg.cuda.RawKernel(SCALE, "scale_add")
    assert k.written_params() == (1,)

    def step(x):
        y = gg.ones(x.shape, device="cuda")
        k((4,), (64,), (x, y, np.float32(2.0), np.int32(x.shape[0])))
        return y * 1.0

    f = gg.jit(step)
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = gg.constant(rng.standard_normal(300).astype(np.float32), device="cuda")
        np.testing.assert_allclose(f(x).numpy(), 1.0 + 2.0 * x.numpy(), rtol=1e-6)
    with sim.counters() as c:
        f(x)
    assert c.graph_launches == 1, c
    assert f.trace_count == 1


def test_a_captured_step_updates_variables_in_place_and_moves_no_more_than_eager():
    sim = _sim()
    x, labels, ws = _setup("cuda")
    _, _, eager_ws = _setup("cuda")
    step = _step(eager_ws, gg.optimizers.SGD(0.1))
    jstep = gg.jit(_step(ws, gg.optimizers.SGD(0.1)))
    for _ in range(3):
        jstep(x, labels)
        step(x, labels)
    with sim.counters() as eager:
        step(x, labels)
    arrays = [id(w.data) for w in ws]  # ids: holding the arrays would make the step stay off the graph
    with sim.counters() as compiled:
        jstep(x, labels)
    assert compiled.graph_launches == 1
    assert [id(w.data) for w in ws] == arrays  # the graph's own buffers, updated in place
    inputs = x.data.nbytes + labels.data.nbytes
    # no copy of any Variable per launch: only the inputs copied into the graph's buffers beyond eager
    assert compiled.bytes_read + compiled.bytes_written <= eager.bytes_read + eager.bytes_written + 2 * inputs + 64


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_and_erf_compile_on_cuda(approximate):
    _sim()
    f = gg.jit(lambda x: gg.sum(gg.gelu(x, approximate=approximate) * gg.erf(x)))
    g = gg.jit(gg.grad(lambda x: gg.sum(gg.gelu(x, approximate=approximate))))
    rng = np.random.default_rng(4)
    for _ in range(3):
        x = gg.constant(rng.standard_normal(64).astype(np.float32), device="cuda")
        want = gg.sum(gg.gelu(x, approximate=approximate) * gg.erf(x)).numpy()
        np.testing.assert_allclose(f(x).numpy(), want, rtol=1e-5)
        gw = gg.grad(lambda x: gg.sum(gg.gelu(x, approximate=approximate)))(x).numpy()
        np.testing.assert_allclose(g(x).numpy(), gw, rtol=1e-5, atol=1e-6)
    assert f.trace_count == g.trace_count == 1


def test_a_step_with_dropout_adam_a_schedule_and_clipnorm_is_one_graph_launch_and_equals_eager():
    sim = _sim()
    runs = []
    for compiled in (False, True):
        gg.random.seed(21)
        x, labels, ws = _setup("cuda")
        drop = gg.nn.Dropout(0.3)
        opt = OPTS["adam_schedule_clipnorm"]()

        def step(x, labels, ws=ws, opt=opt, drop=drop):
            with gg.GradientTape() as tape:
                h = drop(gg.tanh(x @ ws[0] + ws[1]), training=True)
                loss = gg.losses.sparse_categorical_crossentropy(labels, h @ ws[2] + ws[3], from_logits=True)
            opt.apply_gradients(zip(tape.gradient(loss, ws), ws))
            return loss

        f = gg.jit(step) if compiled else step
        losses = [f(x, labels).numpy() for _ in range(3)]
        if compiled:
            with sim.counters() as c:
                losses.append(f(x, labels).numpy())
            assert c.graph_launches == 1 and c.h2d <= 1 and c.syncs == 1, c  # the sync: .numpy()
        else:
            losses.append(f(x, labels).numpy())
        losses += [f(x, labels).numpy() for _ in range(2)]
        runs.append((losses, [w.numpy() for w in ws]))
    (l0, w0), (l1, w1) = runs
    assert len(set(np.round(l0, 6))) == len(l0)  # a new mask at every step
    np.testing.assert_allclose(l1, l0, rtol=1e-5)  # the same masks as eager code
    for a, b in zip(w1, w0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cuda_draws_are_the_same_eager_and_compiled_and_follow_reseeding():
    _sim()
    f = gg.jit(lambda x: x + gg.random.normal((6,), device="cuda"))
    gg.random.seed(4)
    eager = [(gg.zeros(6, device="cuda") + gg.random.normal((6,), device="cuda")).numpy() for _ in range(3)]
    gg.random.seed(4)
    got = [f(gg.zeros(6, device="cuda")).numpy() for _ in range(3)]
    np.testing.assert_array_equal(np.array(got), np.array(eager))
    gg.random.seed(4)
    np.testing.assert_array_equal(f(gg.zeros(6, device="cuda")).numpy(), eager[0])
    seeded = gg.jit(lambda x: x + gg.random.uniform((6,), seed=9, device="cuda"))
    first = seeded(gg.zeros(6, device="cuda")).numpy()
    np.testing.assert_array_equal(seeded(gg.zeros(6, device="cuda")).numpy(), first)


def test_a_pytorch_style_step_on_cuda_is_one_graph_launch():
    sim = _sim()
    runs = []
    for compiled in (False, True):
        gg.random.seed(2)
        x, labels, _ = _setup("cuda")
        rng = np.random.default_rng(8)
        ps = [gg.tensor(rng.standard_normal(s).astype(np.float32) * 0.3, device="cuda", requires_grad=True)
              for s in ((12, 5), (5,))]
        opt = gg.optimizers.Adam(ps, lr=0.01)

        def step(x, labels, ps=ps, opt=opt):
            opt.zero_grad()
            loss = gg.losses.sparse_categorical_crossentropy(labels, x @ ps[0] + ps[1], from_logits=True)
            loss.backward()
            opt.step()
            return loss

        f = gg.jit(step) if compiled else step
        losses = [f(x, labels).numpy() for _ in range(4)]
        if compiled:
            with sim.counters() as c:
                losses.append(f(x, labels).numpy())
            assert c.graph_launches == 1 and c.syncs == 1, c
        else:
            losses.append(f(x, labels).numpy())
        runs.append((losses, [p.numpy() for p in ps]))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    for a, b in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(300, 7), (5, 300), (2, 3, 4), (4096, 3)])
def test_a_fused_group_ending_with_a_sum_over_rows_on_cuda(shape):
    sim = _sim()
    rng = np.random.default_rng(9)
    x = gg.constant(rng.standard_normal(shape).astype(np.float32), device="cuda")
    b = gg.constant(rng.standard_normal(shape[1:]).astype(np.float32), device="cuda")

    def f(x, b):
        y = gg.relu(x + b) * 2.0
        return y, gg.sum(y, axis=0)

    jf = gg.jit(f)
    for k in range(3):
        (y, s), (y0, s0) = jf(x * (k + 1), b), f(x * (k + 1), b)
        np.testing.assert_array_equal(y.numpy(), y0.numpy())
        np.testing.assert_allclose(s.numpy(), s0.numpy(), rtol=1e-5, atol=1e-5)
    with sim.counters() as c:
        jf(x, b)
    names = [n for n, _, _, _ in next(iter(jf._cache.values()))[0]._graph.copying.graph._nodes]
    assert not any(n == "cupy_sum" for n in names), names  # the sum runs in the group's kernels
    assert c.graph_launches == 1
