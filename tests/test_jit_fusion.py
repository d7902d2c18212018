"""Fused elementwise groups in compiled steps (CPU, C loops): the same numbers as the unfused replay
(to a few ulp of the math functions), NumPy's NaN/inf rules, subnormals kept, every broadcast
layout, the on-disk cache, and the fallback when fusion is off."""

import importlib
import sys

import numpy as np
import pytest

import gpugrad as gg

cpu = sys.modules["gpugrad.jit.cpu"]
fusion = sys.modules["gpugrad.jit.fusion"]
pytestmark = pytest.mark.skipif(cpu.compiler() is None, reason="needs a C compiler")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GPUGRAD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "gg-cache"))
    monkeypatch.setenv("GPUGRAD_FUSION", "1")
    monkeypatch.setattr(fusion, "LARGE", 0)  # fuse the small arrays of these tests too


def _fused_calls(f):
    progs = [p for ps in f._cache.values() for p in ps]
    return [ins.fn for p in progs for ins in p.instrs if isinstance(ins.fn, cpu.FusedKernel)]


def _both(fn, args, monkeypatch):
    """(fused result, unfused result, the fused kernels) of one compiled function."""
    fused = gg.jit(fn)
    a = fused(*args)
    monkeypatch.setenv("GPUGRAD_FUSION", "0")
    plain = gg.jit(fn)
    b = plain(*args)
    monkeypatch.setenv("GPUGRAD_FUSION", "1")
    assert not _fused_calls(plain)
    return a, b, _fused_calls(fused)


def _ulps(a, b):
    a, b = np.asarray(a), np.asarray(b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    d = np.abs(a.astype(np.float64) - b.astype(np.float64)) / np.spacing(np.abs(b)).astype(np.float64)
    return float(np.max(np.where(same, 0.0, d), initial=0.0))


# float32 bounds, in ulp of NumPy's own result: glibc's vector math versus NumPy's SIMD math (both
# within about 2.6 ulp of the exact value for exp); float64 keeps 1e-12 relative
UNARY = {
    "exp": (np.exp, 4), "expm1": (np.expm1, 2), "log": (np.log, 1), "log1p": (np.log1p, 2),
    "tanh": (np.tanh, 2), "sin": (np.sin, 2), "cos": (np.cos, 2), "sqrt": (np.sqrt, 0), "abs": (np.abs, 0),
    "negative": (np.negative, 0), "square": (np.square, 0), "sign": (np.sign, 0), "arctan": (np.arctan, 2),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(UNARY))
def test_each_math_function_fused_matches_numpy(name, dtype, monkeypatch):
    fn, bound = UNARY[name]
    rng = np.random.default_rng(0)
    x = rng.uniform(-30, 30, 4096).astype(dtype)
    if name in ("log", "log1p", "sqrt"):
        x = np.abs(x) * np.exp(rng.uniform(-20, 20, x.size)).astype(dtype)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40 if dtype == "float32" else 1e-310], dtype)
    x = np.concatenate([x, specials])

    def f(x):  # three ops, so that they are fused: (x * 1) then the function then + 0
        return fn(x * 1.0) + 0.0

    got, want, kernels = _both(f, (x,), monkeypatch)
    assert kernels, "the chain was not fused"
    with np.errstate(all="ignore"):
        exact = fn(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(exact))
    np.testing.assert_array_equal(got[np.isinf(exact)], exact[np.isinf(exact)])
    if dtype == "float32":
        assert _ulps(got, want) <= bound
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


BINARY = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
    "maximum": np.maximum, "minimum": np.minimum, "power": np.power,
    "greater": np.greater, "less_equal": np.less_equal, "equal": np.equal,
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_ops_and_comparisons_follow_numpy_with_nan_and_inf(name, dtype, monkeypatch):
    fn = BINARY[name]
    vals = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 3.0], dtype)
    a = np.repeat(vals, vals.size)
    b = np.tile(vals, vals.size)

    def f(a, b):
        return np.logical_not(np.logical_not(fn(a, b))) if fn in (np.greater, np.less_equal, np.equal) \
            else fn(a * 1.0, b) + 0.0

    got, want, kernels = _both(f, (a, b), monkeypatch)
    assert kernels
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


def test_where_and_a_bool_mask_in_one_group(monkeypatch):
    x = np.linspace(-3, 3, 101)

    def f(x):
        m = np.greater(x, 0.5)
        return np.where(m, x * 2.0, -x) + m * 3.0

    got, want, kernels = _both(f, (x,), monkeypatch)
    assert kernels
    np.testing.assert_array_equal(got, want)


def test_float32_subnormals_survive_fusion_and_stay_on_in_the_process(monkeypatch):
    x = np.full(64, 1e-40, np.float32)
    got, want, kernels = _both(lambda x: x * 1.0 + 0.0 - 0.0, (x,), monkeypatch)
    assert kernels
    np.testing.assert_array_equal(got, want)
    assert got[0] != 0  # no flush-to-zero in the loop
    assert np.float32(1e-40) * np.float32(1.0) != 0  # nor process-wide (no -ffast-math linked)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["row", "col", "scalar", "zero_d", "mixed"])
def test_broadcast_layouts(layout, dtype, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5, 4)).astype(dtype)
    other = {
        "row": rng.standard_normal((5, 4)), "col": rng.standard_normal((6, 1, 1)),
        "scalar": rng.standard_normal((1, 1, 1)), "zero_d": np.array(1.5), "mixed": rng.standard_normal((4,)),
    }[layout].astype(dtype)

    def f(x, o):
        return np.tanh(x * o + 1.0) * o - x

    got, want, kernels = _both(f, (x, other), monkeypatch)
    assert kernels
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_a_training_step_fused_equals_eager_and_keeps_state():
    gg.random.seed(0)
    x = np.random.default_rng(2).standard_normal((256, 8)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    runs = []
    for compiled in (False, True):
        gg.random.seed(0)
        model = gg.nn.Sequential([gg.nn.Dense(16, activation="tanh"), gg.nn.Dense(1)])
        opt = gg.optimizers.Adam(0.01)

        def step(x, y, model=model, opt=opt):
            with gg.GradientTape() as tape:
                loss = gg.losses.binary_crossentropy(y, model(x), from_logits=True)
            opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        f = gg.jit(step) if compiled else step
        losses = [f(x, y).item() for _ in range(20)]
        runs.append((losses, [v.numpy() for v in model.trainable_variables]))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    for a, b in zip(runs[1][1], runs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_chain_benchmark_becomes_one_loop():
    def chain(x):
        with gg.GradientTape() as tape:
            tape.watch(x)
            y = x
            for _ in range(50):
                y = gg.tanh(gg.sigmoid(y * 1.01 + 0.1))
            s = gg.sum(y)
        return s, tape.gradient(s, x)

    f = gg.jit(chain)
    x = gg.constant(np.random.default_rng(5).standard_normal(1000).astype(np.float32))
    s, g = f(x)
    s0, g0 = chain(x)
    np.testing.assert_allclose(s.numpy(), s0.numpy(), rtol=1e-5)
    np.testing.assert_allclose(g.numpy(), g0.numpy(), rtol=1e-4)
    prog = next(iter(f._cache.values()))[0]
    assert len(prog.instrs) <= 3  # one fused loop (forward and backward), the sum, nothing else
    assert len(_fused_calls(f)) == 1


def test_a_non_contiguous_argument_at_a_later_call(monkeypatch):
    def f(x):
        return np.exp(x * 0.5) - x * x + 1.0

    jf = gg.jit(f)
    a = np.random.default_rng(3).standard_normal((40, 30))
    np.testing.assert_allclose(jf(a), f(a), rtol=1e-12)
    b = np.random.default_rng(4).standard_normal((30, 40)).T  # same shape, another layout
    np.testing.assert_allclose(jf(b), f(b), rtol=1e-12)
    assert _fused_calls(jf)


def test_compiled_loops_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUGRAD_CACHE_DIR", str(tmp_path))
    cpu._loaded.clear()

    def f(x):
        return np.tanh(x * 3.0 + 0.25) * x - 0.5

    gg.jit(f)(np.ones(10))
    built = sorted(p.name for p in (tmp_path / "fusion").glob("*.so"))
    assert built
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "fusion").glob("*.so")}
    cpu._loaded.clear()
    gg.jit(f)(np.ones(10) * 2)  # a new process would do the same: load, not compile
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "fusion").glob("*.so")} == stamps


def test_small_groups_of_few_ops_are_left_to_numpy(monkeypatch):
    monkeypatch.setattr(fusion, "LARGE", 1 << 15)
    short = gg.jit(lambda x, y: np.tanh(x * y + 1.0))  # 3 ops over 3 arrays: a fused call costs more
    short(np.ones(100), np.ones(100))
    assert not _fused_calls(short)
    big = gg.jit(lambda x, y: np.tanh(x * y + 1.0))  # the same on 2^16 elements: memory traffic counts
    big(np.ones(1 << 16), np.ones(1 << 16))
    assert _fused_calls(big)


def test_fusion_off_runs_the_calls_one_by_one(monkeypatch):
    monkeypatch.setenv("GPUGRAD_FUSION", "0")
    f = gg.jit(lambda x: np.tanh(x * 3.0 + 0.25) * x - 0.5)
    np.testing.assert_allclose(f(np.ones(10)), np.tanh(3.25) - 0.5)
    assert not _fused_calls(f)


@pytest.mark.parametrize("make", [
    lambda: gg.optimizers.Adam(1e-2, amsgrad=True),
    lambda: gg.optimizers.AdamW(1e-2, weight_decay=0.1),
    lambda: gg.optimizers.RMSprop(1e-2, momentum=0.9, centered=True),
    lambda: gg.optimizers.SGD(1e-2, momentum=0.9, nesterov=True),
], ids=["adam", "adamw", "rmsprop", "nesterov"])
def test_optimizer_updates_fuse_with_their_slots_written_in_place(make, monkeypatch):
    g = np.random.default_rng(6).standard_normal(5000).astype(np.float32)
    results = []
    for fused in ("1", "0"):
        monkeypatch.setenv("GPUGRAD_FUSION", fused)
        w = gg.Variable(np.linspace(-1, 1, 5000).astype(np.float32))
        opt = make()
        step = gg.jit(lambda g, w=w, opt=opt: opt.apply_gradients([(g, w)]))
        counts = [step(g * (k + 1)) for k in range(6)]  # the learning rate's host numbers change each call
        results.append((w.numpy(), [np.array(s) for s in opt.variables() if np.shape(s) == w.shape], counts))
        if fused == "1":
            assert _fused_calls(step)
    (w1, s1, c1), (w0, s0, c0) = results
    assert c1 == c0 == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(w1, w0, rtol=1e-6, atol=1e-7)
    for a, b in zip(s1, s0):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_every_fused_group_renders_to_cuda_that_nvrtc_compiles():
    from gpugrad import kernels

    render_cuda = importlib.import_module("gpugrad.jit.render_cuda")
    programs = [
        (lambda x, o: np.where(np.greater(x, o), np.tanh(x * o + 1.0), -x) - np.maximum(x, 0.5),
         (np.ones((6, 5, 4), np.float32), np.ones((5, 4), np.float32))),
        (lambda x, o: np.isfinite(np.log1p(np.abs(x)) / o) * np.exp(x) + np.power(x, 2.5),
         (np.ones((3, 7)), np.ones((3, 1)))),
    ]
    groups = []
    for f, args in programs:
        jf = gg.jit(f)
        jf(*args)
        groups += [k.group for k in _fused_calls(jf)]
    w = gg.Variable(np.zeros(64, np.float32))
    opt = gg.optimizers.Adam(0.1)
    step = gg.jit(lambda g: opt.apply_gradients([(g, w)]))
    step(np.ones(64, np.float32))
    groups += [k.group for k in _fused_calls(step)]  # host numbers and slots written in place
    assert len(groups) == 3
    for g in groups:
        src, name = render_cuda.render(g)
        try:
            ptx = gg.cuda.compile_check(src, name)
        except kernels.NvrtcUnavailable:
            pytest.skip("NVRTC is not installed")
        assert name in ptx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(300, 7), (3, 5, 4), (1, 9)])
def test_a_sum_over_rows_ends_a_fused_group_with_numpys_sums(shape, dtype, monkeypatch):
    rng = np.random.default_rng(7)
    x = gg.constant(rng.standard_normal(shape).astype(dtype))
    b = gg.constant(rng.standard_normal(shape[1:]).astype(dtype))
    x.data.flat[::7] = -0.0

    def f(x, b):
        y = gg.relu(x + b) * 2.0
        return y, gg.sum(y, axis=0), gg.sum(gg.tanh(x) * 0.5 - 1.0, axis=0)

    jf = gg.jit(f)
    for k in range(2):
        got, want = jf(x * (k + 1), b), f(x * (k + 1), b)
        np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
        np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())  # rows added in NumPy's order
        np.testing.assert_allclose(got[2].numpy(), want[2].numpy(), rtol=1e-5 if dtype == "float32" else 1e-12)
    kernels = _fused_calls(jf)
    assert len(kernels) == 2 and all(k.group.reduce_op is not None for k in kernels)
    assert not any(getattr(ins, "fn", None) == ("method", "sum") for ins in next(iter(jf._cache.values()))[0].instrs)


def test_sums_over_other_axes_or_kept_dims_stay_outside_the_loop():
    x = gg.constant(np.random.default_rng(8).standard_normal((6, 5)))

    def f(x):
        y = gg.exp(x) * 2.0 - 1.0
        return gg.sum(y, axis=1), gg.sum(y, axis=0, keepdims=True), gg.sum(y)

    jf = gg.jit(f)
    for got, want in zip(jf(x), f(x)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
    assert all(k.group.reduce_op is None for k in _fused_calls(jf))


def test_a_group_ending_with_a_sum_renders_to_cuda_that_nvrtc_compiles():
    from gpugrad import kernels

    render_cuda = importlib.import_module("gpugrad.jit.render_cuda")
    jf = gg.jit(lambda x, b: gg.sum(gg.relu(x + b) * 2.0, axis=0))
    jf(np.ones((40, 3), np.float32), np.ones(3, np.float32))
    (k,) = _fused_calls(jf)
    src, name = render_cuda.render(k.group)
    assert f"void {name}_sum(" in src
    try:
        ptx = gg.cuda.compile_check(src, name)
    except kernels.NvrtcUnavailable:
        pytest.skip("NVRTC is not installed")
    assert name in ptx
