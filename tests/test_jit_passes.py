"""The program's rewrites before planning (common subexpressions merged, a ReLU's backward reading
its output) and fused updates written into the Variable's own array: the same numbers as eager
code, with nothing merged that a write, a draw or a side effect tells apart."""

import sys

import numpy as np
import pytest

import gpugrad as gg

cpu = sys.modules["gpugrad.jit.cpu"]
fusion = sys.modules["gpugrad.jit.fusion"]
passes = sys.modules["gpugrad.jit.passes"]


def _prog(f):
    return next(iter(f._cache.values()))[0]


def _calls(f, name):
    return [ins for ins in _prog(f).instrs if getattr(ins.fn, "__name__", None) == name]


def test_a_repeated_pure_call_runs_once(monkeypatch):
    monkeypatch.setenv("GPUGRAD_FUSION", "0")

    def f(x):
        return gg.exp(x) * 2.0 + gg.exp(x) + gg.sum(gg.tanh(x)) * gg.sum(gg.tanh(x))

    jf = gg.jit(f)
    for k in range(3):
        x = gg.constant(np.linspace(-2, 2, 9) * (k + 1))
        np.testing.assert_allclose(jf(x).numpy(), f(x).numpy(), rtol=1e-6)
    assert len(_calls(jf, "exp")) == 1
    assert len(_calls(jf, "tanh")) == 1


def test_calls_on_a_buffer_written_in_between_are_not_merged(monkeypatch):
    monkeypatch.setenv("GPUGRAD_FUSION", "0")

    def f(x):
        y = x * 1.0
        a = np.exp(y)
        y += 1.0  # the same buffer, another value
        return a + np.exp(y)

    jf = gg.jit(f)
    for k in range(3):
        x = np.linspace(-1, 1, 7) * (k + 1)
        np.testing.assert_allclose(jf(x), f(x), rtol=1e-12)
    assert len(_calls(jf, "exp")) == 2


def test_a_variable_read_before_and_after_its_update_is_read_twice():
    v = gg.Variable(np.arange(1.0, 5.0))
    ve = gg.Variable(np.arange(1.0, 5.0))

    def step(x, v):
        a = v * 2.0 + x
        v.assign(a)
        return v * 2.0 + x + a

    jstep = gg.jit(lambda x: step(x, v))
    for k in range(3):
        x = np.full(4, float(k))
        np.testing.assert_allclose(jstep(x).numpy(), step(x, ve).numpy())
        np.testing.assert_allclose(v.numpy(), ve.numpy())


def test_random_draws_of_the_same_shape_are_never_merged():
    f = gg.jit(lambda x: x + gg.random.normal((6,)) - gg.random.normal((6,)))
    gg.random.seed(3)
    eager = [(gg.zeros(6) + gg.random.normal((6,)) - gg.random.normal((6,))).numpy() for _ in range(3)]
    gg.random.seed(3)
    got = [f(gg.zeros(6)).numpy() for _ in range(3)]
    np.testing.assert_array_equal(np.array(got), np.array(eager))
    assert np.all(np.abs(np.array(got)) > 0)


def test_impure_and_constructor_calls_are_not_pure():
    assert not passes._pure(np.empty)
    assert not passes._pure(np.zeros)
    assert not passes._pure(np.random.standard_normal)
    assert not passes._pure(("setitem",))
    assert not passes._pure(("method", "fill"))
    assert passes._pure(np.add) and passes._pure(("getitem",)) and passes._pure(np.take_along_axis)


@pytest.mark.parametrize("fused", ["0", "1"])
def test_relu_backward_reads_the_relu_output_and_equals_eager_at_zero_and_nan(fused, monkeypatch):
    monkeypatch.setenv("GPUGRAD_FUSION", fused)
    monkeypatch.setattr(fusion, "LARGE", 0)
    x = gg.constant(np.array([[-1.0, -0.0, 0.0, 2.0, np.nan, np.inf, -np.inf, 1e-45]], np.float32))
    b = gg.constant(np.zeros(8, np.float32))
    c = gg.constant(np.arange(1.0, 9.0, dtype=np.float32))

    def f(x, b):
        with gg.GradientTape() as tape:
            tape.watch(x)
            loss = gg.sum(gg.relu(x + b) * c)
        return loss, tape.gradient(loss, x)

    jf = gg.jit(f)
    for k in range(2):
        (l0, g0), (l1, g1) = f(x * (k + 1), b), jf(x * (k + 1), b)
        np.testing.assert_array_equal(l1.numpy(), l0.numpy())
        np.testing.assert_array_equal(g1.numpy(), g0.numpy())
    if fused == "0":
        prog = _prog(jf)
        made = {ins.out.i: getattr(ins.fn, "__name__", None) for ins in prog.instrs if hasattr(ins.out, "i")}
        (mask,) = _calls(jf, "greater")
        assert made[mask.args[0].i] == "maximum"  # relu(x) > 0, not x > 0: x dies after the forward


def test_an_sgd_update_of_a_large_variable_is_one_loop_written_in_place():
    if cpu.compiler() is None:
        pytest.skip("needs a C compiler")
    n = 1 << 16
    rng = np.random.default_rng(0)
    w = gg.Variable(rng.standard_normal(n).astype(np.float32))
    we = gg.Variable(w.numpy().copy())
    step = gg.jit(lambda g: w.assign_sub(0.1 * g))
    ids = set()
    for _ in range(4):
        g = rng.standard_normal(n).astype(np.float32)
        step(g)
        we.assign_sub(0.1 * g)
        ids.add(id(w.data))
        np.testing.assert_array_equal(w.numpy(), we.numpy())
    prog = _prog(step)
    assert len(prog.instrs) == 1 and isinstance(prog.instrs[0].fn, cpu.FusedKernel)
    assert len(ids) == 1  # the Variable's own array, written by the loop


def test_a_fused_update_reading_a_view_of_its_variable_equals_eager(monkeypatch):
    monkeypatch.setattr(fusion, "LARGE", 0)
    w = gg.Variable(np.arange(16.0).reshape(4, 4))
    we = gg.Variable(np.arange(16.0).reshape(4, 4))
    step = gg.jit(lambda g: w.assign_sub(0.1 * (g + gg.reshape(w, (4, 4)) + w.T)))
    for k in range(3):
        g = np.full((4, 4), float(k))
        step(g)
        we.assign_sub(0.1 * (g + gg.reshape(we, (4, 4)) + we.T))
        np.testing.assert_allclose(w.numpy(), we.numpy(), rtol=1e-12)


@pytest.mark.parametrize("label_dtype", ["int64", "int32", "uint8"])
def test_a_cross_entropys_picks_are_plain_indexing_and_equal_eager(label_dtype):
    rng = np.random.default_rng(5)
    z = gg.constant(rng.standard_normal((16, 7)).astype(np.float32))

    def f(z, labels):
        with gg.GradientTape() as tape:
            tape.watch(z)
            loss = gg.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
        return loss, tape.gradient(loss, z)

    jf = gg.jit(f)
    for k in range(3):
        labels = rng.integers(0, 7, 16).astype(label_dtype)
        (l0, g0), (l1, g1) = f(z * (k + 1), labels), jf(z * (k + 1), labels)
        np.testing.assert_array_equal(l1.numpy(), l0.numpy())
        np.testing.assert_array_equal(g1.numpy(), g0.numpy())
    names = {getattr(ins.fn, "__name__", None) for ins in _prog(jf).instrs}
    assert not names & {"take_along_axis", "put_along_axis"}
    with pytest.raises(ValueError, match="out of range"):
        jf(z, np.full(16, 7, label_dtype))
