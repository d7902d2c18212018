"""The graph's compiled loops (gpugrad/native/engine.c) against their Python reference in graph.py.

``record`` must build the same Tensor and Node, and the backward sweep must give the same bits,
on every kind of graph: one tape, nested tapes, persistent tapes, ``requires_grad``, Variables
read under a tape, mixed dtypes, broadcasting, and errors raised inside a rule. The whole suite
also runs with the Python loops alone (``GPUGRAD_NATIVE=0``, in a subprocess below)."""

import gc
import importlib
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import graph, native

ENGINE = graph.ENGINE
needs_engine = pytest.mark.skipif(ENGINE is None, reason="the compiled engine could not be built here")


@pytest.fixture(params=["native", "python"])
def loops(request):
    """Each of the two sweeps in turn."""
    if request.param == "python":
        request.getfixturevalue("python_loops")  # restored at the test's teardown
    elif ENGINE is None:
        pytest.skip("the compiled engine could not be built here")
    return request.param


@pytest.fixture
def python_loops():
    """The Python sweep for the duration of a test (``record`` stays as the ops bound it)."""
    saved = graph.ENGINE
    graph.ENGINE = None
    try:
        yield
    finally:
        graph.ENGINE = saved


def test_the_engine_builds_where_a_compiler_and_the_headers_are():
    import sysconfig

    from gpugrad.native.build import compiler

    include = sysconfig.get_paths().get("include")
    if compiler() is None or not include or not os.path.exists(os.path.join(include, "Python.h")):
        pytest.skip("no C compiler or no Python.h here")
    assert os.environ.get("GPUGRAD_NATIVE", "1") == "0" or ENGINE is not None


def test_no_compiler_means_the_python_loops(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUGRAD_CACHE_DIR", str(tmp_path))  # nothing cached
    builder = importlib.import_module("gpugrad.native.build")
    monkeypatch.setattr(builder, "compiler", lambda: None)
    assert native.load() is None
    monkeypatch.setenv("GPUGRAD_NATIVE", "0")
    assert native.load() is None


# -- record -----------------------------------------------------------------------------------------


def _rule(g, out, need):
    return (g, None)


def _fields(t):
    n = t._node
    node = None
    if n is not None:
        node = (n.inputs, n.backward, n.fast, n.tapes, n.rg, n.freed, n.name, n.versions, n.out() is t)
    return (t.data, t._rg, t._tapes, t._grad, node)


def _both(inputs, data=None, name="op"):
    data = np.ones(3) if data is None else data
    a = graph.record_py(data, inputs, _rule, name, _rule)
    b = ENGINE.record(data, inputs, _rule, name, _rule)
    return _fields(a), _fields(b), a, b


@needs_engine
@pytest.mark.parametrize("case", ["plain", "watched", "requires_grad", "variable", "int_result", "two_tapes",
                                  "not_recording", "no_grad"])
def test_record_builds_what_the_python_record_builds(case):
    x = gg.tensor(np.arange(3.0))
    if case == "plain":
        fa, fb, _, _ = _both((x, 2.0))
        assert fa == fb and fa[4] is None
        return
    if case == "requires_grad":
        x.requires_grad_(True)
        fa, fb, a, b = _both((x, 2.0))
        assert fa[1:4] == fb[1:4] and fa[4][1:] == fb[4][1:] and fb[4][4] and fb[1] is True
        return
    if case == "no_grad":
        x.requires_grad_(True)
        with gg.no_grad():
            fa, fb, _, _ = _both((x,))
        assert fa == fb and fb[4] is None
        return
    if case == "variable":
        v = gg.Variable(np.arange(3.0))
        with gg.GradientTape() as tape:
            fa, fb, a, b = _both((v, x))
        assert fa[1:4] == fb[1:4] and fa[4][1:] == fb[4][1:]
        assert fb[4][7] == [(v, 0)] and fb[2] == frozenset({tape._id})
        assert [r() for r in tape._nodes] == [a._node, b._node]
        return
    with gg.GradientTape() as t1:
        t1.watch(x)
        if case == "two_tapes":
            with gg.GradientTape() as t2:
                t2.watch(x)
                fa, fb, a, b = _both((x, 1.0))
            assert fb[2] == frozenset({t1._id, t2._id})
            assert [r() for r in t2._nodes] == [a._node, b._node]
        elif case == "int_result":
            fa, fb, a, b = _both((x,), data=np.arange(3))
            assert fb[4] is None
        elif case == "not_recording":
            with t1.stop_recording():
                fa, fb, a, b = _both((x,))
            assert fb[4] is None
        else:
            fa, fb, a, b = _both((x, 3))
            assert fb[2] == frozenset({t1._id}) and fb[4][8]
    assert fa[1:4] == fb[1:4]
    assert (fa[4] is None) == (fb[4] is None)
    if fa[4] is not None:
        assert fa[4][1:] == fb[4][1:] and fa[4][0] is fb[4][0]
        assert a._node.seq < b._node.seq  # one counter for both


@needs_engine
def test_record_rejects_what_is_not_a_tuple_of_inputs():
    with pytest.raises(TypeError):
        ENGINE.record(np.ones(2), 5, _rule)
    with pytest.raises(TypeError):
        ENGINE.record(np.ones(2))


# -- arithmetic --------------------------------------------------------------------------------------


def _operands():
    f32 = np.arange(1.0, 7.0, dtype=np.float32).reshape(2, 3)
    yield "f32,f32", gg.tensor(f32), gg.tensor(f32 + 1)
    yield "f32,f64", gg.tensor(f32), gg.tensor(np.arange(3.0) + 1)
    yield "f16,number", gg.tensor(f32.astype(np.float16)), 2.5
    yield "int,float", gg.tensor(np.arange(1, 4)), 0.5
    yield "float,int", 0.5, gg.tensor(np.arange(1, 4))
    yield "int,int", gg.tensor(np.arange(1, 4)), 3
    yield "number,f32", 2, gg.tensor(f32)
    yield "variable,f32", gg.Variable(f32), gg.tensor(f32[0])
    yield "f32,array", gg.tensor(f32), np.ones(3)
    yield "f32,list", gg.tensor(f32), [1.0, 2.0, 3.0]
    yield "f32,bool", gg.tensor(f32), True
    yield "broadcast error", gg.tensor(f32), gg.tensor(np.ones(2, np.float32))


@needs_engine
@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide"])
@pytest.mark.parametrize("case", [c[0] for c in _operands()])
def test_compiled_arithmetic_gives_the_python_op_result(op, case):
    a, b = next((x, y) for c, x, y in _operands() if c == case)
    fn = getattr(gg.ops.math, op)
    assert fn.python is not fn
    outs = []
    for f in (fn.python, fn):
        tracked = [t for t in (a, b) if isinstance(t, gg.Tensor) and t.dtype.kind == "f"]
        try:
            with gg.GradientTape() as tape:
                tape.watch(tracked)
                y = f(a, b)
                s = gg.sum(y * y)
            grads = tape.gradient(s, tracked)
        except Exception as e:  # noqa: BLE001 - the same error both ways
            outs.append((type(e), str(e)))
            continue
        outs.append((y.dtype, y.numpy().tolist(), y._node.name if y._node else None,
                     [None if g is None else (g.dtype, g.numpy().tolist()) for g in grads]))
    assert outs[0] == outs[1]


# -- the sweep --------------------------------------------------------------------------------------


def _mlp(x, w1, b1, w2):
    h = gg.relu(x @ w1 + b1)
    return gg.mean(gg.log_softmax(h @ w2, axis=-1) * 0.5) + gg.sum(gg.tanh(gg.sigmoid(w1 * 1.01 + 0.1)))


def _graphs(rng):
    x = gg.tensor(rng.standard_normal((5, 4)))
    w1 = gg.Variable(rng.standard_normal((4, 6)))
    b1 = gg.Variable(rng.standard_normal(6).astype(np.float32))  # mixed dtypes: the gradient is cast back
    w2 = gg.tensor(rng.standard_normal((6, 3)))

    def one_tape():
        with gg.GradientTape() as tape:
            tape.watch(w2)
            y = _mlp(x, w1, b1, w2)
        return tape.gradient(y, [w1, b1, w2])

    def persistent():
        with gg.GradientTape(persistent=True) as tape:
            tape.watch(w2)
            y = _mlp(x, w1, b1, w2)
            z = gg.sum(y * y)
        return tape.gradient(y, [w1, w2]) + tape.gradient(z, [b1, w2])

    def nested():
        with gg.GradientTape() as outer:
            outer.watch(w2)
            with gg.GradientTape() as inner:
                inner.watch(w2)
                y = _mlp(x, w1, b1, w2)
            g = inner.gradient(y, w2)
            s = gg.sum(g * g)
        return [g] + list(outer.gradient(s, [w1, b1, w2]))

    def requires_grad():
        a = gg.tensor(w1.numpy(), requires_grad=True)
        c = gg.tensor(w2.numpy(), requires_grad=True)
        y = _mlp(x, a, b1, c)
        (ga,) = gg.autograd.grad(y, [a], create_graph=True)
        y2 = gg.sum(ga * ga)
        y2.backward()
        return [ga, a.grad, c.grad]

    def functional():
        return [gg.grad(lambda v: gg.sum(gg.tanh(v) * v))(w2), gg.hessian(lambda v: gg.sum(v ** 3))(b1)]

    return {"one_tape": one_tape, "persistent": persistent, "nested": nested,
            "requires_grad": requires_grad, "functional": functional}


@needs_engine
@pytest.mark.parametrize("name", ["one_tape", "persistent", "nested", "requires_grad", "functional"])
def test_the_sweep_gives_the_python_sweep_bits(name, python_loops):
    ref = _graphs(np.random.default_rng(3))[name]()
    graph.ENGINE = ENGINE
    got = _graphs(np.random.default_rng(3))[name]()
    assert len(ref) == len(got)
    for r, g in zip(ref, got):
        assert (r is None) == (g is None)
        if r is not None:
            assert r.dtype == g.dtype and r.shape == g.shape
            np.testing.assert_array_equal(r.numpy(), g.numpy())


def test_an_error_in_a_rule_comes_out_of_the_sweep(loops):
    def broken(g, out, need):
        raise ZeroDivisionError("inside a rule")

    x = gg.tensor(np.arange(3.0))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = graph.record(x.data * 2, (x,), broken, "broken", broken)
        s = gg.sum(y)
    with pytest.raises(ZeroDivisionError, match="inside a rule"):
        tape.gradient(s, x)

    def wrong_shape(g, out, need):
        return (g[:1],)

    with gg.GradientTape() as tape:
        tape.watch(x)
        y = graph.record(x.data * 2, (x,), wrong_shape, "wrong_shape", wrong_shape)
        s = gg.sum(y)
    with pytest.raises(RuntimeError, match=r"wrong_shape: gradient of shape \(1,\) for an input of shape \(3,\)"):
        tape.gradient(s, x)

    v = gg.Variable(np.arange(3.0))
    with gg.GradientTape() as tape:
        s = gg.sum(v * v)
    v.assign(v.numpy() + 1)
    with pytest.raises(RuntimeError, match="modified by an assign"):
        tape.gradient(s, v)


def test_the_sweep_keeps_and_frees_what_the_python_sweep_does(loops):
    x = gg.tensor(np.arange(4.0))
    base = sys.getrefcount(x)
    refs = []
    for _ in range(50):
        with gg.GradientTape() as tape:
            tape.watch(x)
            y = gg.tanh(gg.sigmoid(x * 1.01 + 0.1))
            refs.append(weakref.ref(y._node))
            s = gg.sum(y)
        (g,) = tape.gradient(s, [x])
        assert g.shape == (4,)
        del y, s, tape
    gc.collect()
    assert sys.getrefcount(x) == base  # no reference to an input left behind
    assert all(r() is None for r in refs)  # every node freed with its tape


def test_the_suite_core_passes_with_the_python_loops_alone():
    """The reference loops, end to end: the graph and gradient tests in a process that never
    loads the compiled engine."""
    env = dict(os.environ, GPUGRAD_NATIVE="0")
    code = "import gpugrad.graph as g; assert g.ENGINE is None and g.record is g.record_py"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    here = os.path.dirname(__file__)
    files = ["test_backward_on_arrays.py", "test_tape.py", "test_autograd.py", "test_memory.py"]
    files = [os.path.join(here, f) for f in files if os.path.exists(os.path.join(here, f))]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_threads_record_and_sweep_their_own_graphs(loops):
    """Each thread has its own recording state (tapes, no_grad): the engine reads it per call."""
    import threading

    rng = np.random.default_rng(5)
    xs = [gg.tensor(rng.standard_normal(50)) for _ in range(4)]

    def grad_of(x):
        with gg.GradientTape() as tape:
            tape.watch(x)
            y = x
            for _ in range(20):
                y = gg.tanh(gg.sigmoid(y * 1.01 + 0.1))
            s = gg.sum(y)
        return tape.gradient(s, x).numpy()

    want = [grad_of(x) for x in xs]
    got = [[] for _ in xs]
    errors = []

    def work(i):
        try:
            for _ in range(30):
                if i % 2:
                    with gg.no_grad():  # another thread's no_grad must not reach this one's tapes
                        gg.sigmoid(xs[i] * 2.0)
                got[i].append(grad_of(xs[i]))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for w, g in zip(want, got):
        assert len(g) == 30
        for one in g:
            np.testing.assert_array_equal(one, w)
