"""gg.jit equals eager code on every call, not only the first: operands of every kind on either
side, pytrees, random draws, state made during the first call, ``.grad`` in and out."""

from collections import OrderedDict, defaultdict, deque, namedtuple

import numpy as np
import pytest

import gpugrad as gg

INPUTS = [np.full((2, 3), v, np.float64) for v in (1.0, 0.0, -2.5, 4.0)]


def _same_on_every_call(f, inputs, to_host=lambda r: r.numpy()):
    """f compiled equals f eager on each of several calls with different inputs."""
    jf = gg.jit(f)
    for x in inputs:
        np.testing.assert_allclose(to_host(jf(x)), to_host(f(x)), rtol=1e-12, atol=1e-12)
    return jf


# -- a NumPy argument on the left of a Tensor, a Variable or a captured constant ----------------


def test_numpy_argument_left_of_a_variable_in_matmul_is_not_frozen():
    w = gg.Variable(np.ones((5, 3), np.float32))
    f = gg.jit(lambda x: gg.sum(x @ w))
    assert f(np.ones((8, 5), np.float32)).item() == 120.0
    assert f(np.zeros((8, 5), np.float32)).item() == 0.0


OPERATORS = {
    "add": lambda x, t: x + t,
    "sub": lambda x, t: x - t,
    "mul": lambda x, t: x * t,
    "div": lambda x, t: x / (t + 10.0),
    "pow": lambda x, t: (x * x + 1.0) ** (t * 0.1),
    "matmul": lambda x, t: x @ t.T,
    "less": lambda x, t: gg.where(x < t, x, t),
    "np.add": lambda x, t: np.add(x, t),
    "np.multiply": lambda x, t: np.multiply(x, t),
}


@pytest.mark.parametrize("other", ["tensor", "variable", "captured tensor"])
@pytest.mark.parametrize("op", list(OPERATORS))
def test_numpy_argument_on_either_side_of_a_tensor(op, other):
    fn = OPERATORS[op]
    t = gg.constant(np.arange(6.0).reshape(2, 3))
    v = gg.Variable(np.arange(6.0).reshape(2, 3))
    if other == "tensor":
        def f(x, t=t):
            return gg.sum(fn(x, t)) + gg.sum(fn(t, x))
        jf = gg.jit(f)
        for x in INPUTS:
            np.testing.assert_allclose(jf(x, t).numpy(), f(x, t).numpy(), rtol=1e-12)
        return
    operand = v if other == "variable" else t
    _same_on_every_call(lambda x: gg.sum(fn(x, operand)) + gg.sum(fn(operand, x)), INPUTS)


def test_numpy_scalar_and_python_number_arguments_follow_each_call():
    t = gg.constant([1.0, 2.0])
    f = gg.jit(lambda s, n: t * s + n)
    for k in range(4):
        got = f(np.float64(k), k + 0.5).numpy()
        np.testing.assert_allclose(got, np.array([1.0, 2.0]) * k + k + 0.5)


# -- arguments: pytrees, unhashable objects, one Tensor twice -------------------------------------


Pair = namedtuple("Pair", "a b")


@pytest.mark.parametrize("make", [
    lambda i: OrderedDict(a=np.full(3, float(i)), b=np.ones(3)),
    lambda i: defaultdict(list, a=np.full(3, float(i)), b=np.ones(3)),
    lambda i: deque([np.full(3, float(i)), np.ones(3)]),
    lambda i: Pair(np.full(3, float(i)), np.ones(3)),
    lambda i: {"b": np.ones(3), "a": np.full(3, float(i))},
], ids=["OrderedDict", "defaultdict", "deque", "namedtuple", "dict"])
def test_every_container_optree_knows_is_a_pytree_argument(make):
    def first(d):
        return d["a"] if isinstance(d, dict) else d[0]

    f = gg.jit(lambda d: gg.sum(first(d)) * 2.0)
    assert [f(make(i)).item() for i in range(4)] == [0.0, 6.0, 12.0, 18.0]
    assert f.trace_count == 1


def test_an_unhashable_object_argument_is_refused_naming_it():
    class Box:
        __hash__ = None

    f = gg.jit(lambda x, box: x * 2)
    with pytest.raises(TypeError, match="argument 1.*Box"):
        f(np.ones(2), Box())


def test_a_hashable_object_argument_is_static_by_value():
    f = gg.jit(lambda x, k: x * k)
    assert f(np.ones(2), 2).tolist() == [2.0, 2.0]
    assert f(np.ones(2), 3).tolist() == [3.0, 3.0]
    assert f.trace_count == 2


def test_jit_of_something_not_callable_raises_at_once():
    with pytest.raises(TypeError, match="int"):
        gg.jit(3)


def test_one_tensor_passed_twice_is_one_leaf():
    def f(x, y):
        with gg.GradientTape() as tape:
            tape.watch(x)
            s = gg.sum(x * y)
        return tape.gradient(s, x)

    jf = gg.jit(f)
    for k in range(1, 4):
        w = gg.constant(np.full(3, float(k)))
        np.testing.assert_allclose(jf(w, w).numpy(), 2 * k)  # d(w·w)/dw
        u = gg.constant(np.full(3, 7.0))
        np.testing.assert_allclose(jf(w, u).numpy(), 7.0)  # two Tensors: two leaves


# -- results --------------------------------------------------------------------------------------


def test_an_ordered_dict_result_comes_back_as_one_with_real_tensors():
    f = gg.jit(lambda x: OrderedDict(b=gg.constant(x) * 2, a=gg.constant(x) + 1))
    for k in range(3):
        r = f(np.full(2, float(k)))
        assert type(r) is OrderedDict and list(r) == ["b", "a"]
        np.testing.assert_allclose(r["b"].numpy(), 2 * k)
        np.testing.assert_allclose(r["a"].numpy(), k + 1)


def test_gradients_with_respect_to_an_ordered_dict_argument():
    g = gg.jit(gg.grad(lambda d: gg.sum(d["a"] ** 2) + gg.sum(d["b"])))
    for k in range(3):
        r = g(OrderedDict(a=gg.constant(np.full(2, float(k))), b=gg.constant(np.ones(2))))
        assert type(r) is OrderedDict
        np.testing.assert_allclose(r["a"].numpy(), 2 * k)
        np.testing.assert_allclose(r["b"].numpy(), 1.0)


# -- random draws ---------------------------------------------------------------------------------


def test_a_seeded_draw_gives_the_same_numbers_on_every_call():
    f = gg.jit(lambda x: x + gg.random.uniform((4,), seed=123))
    eager = (gg.zeros(4) + gg.random.uniform((4,), seed=123)).numpy()
    for _ in range(4):
        np.testing.assert_array_equal(f(gg.zeros(4)).numpy(), eager)


def test_unseeded_draws_follow_the_eager_sequence_and_reseeding_between_calls():
    def f(x):
        return x + gg.random.normal((3,))

    gg.random.seed(5)
    eager = [f(gg.zeros(3)).numpy() for _ in range(4)]
    jf = gg.jit(f)
    gg.random.seed(5)
    np.testing.assert_array_equal(np.array([jf(gg.zeros(3)).numpy() for _ in range(4)]), np.array(eager))
    for _ in range(3):  # gg.random.seed between calls restarts the sequence the replay draws from
        gg.random.seed(5)
        np.testing.assert_array_equal(jf(gg.zeros(3)).numpy(), eager[0])


def test_dropout_masks_in_a_compiled_step_follow_the_global_seed():
    layer = gg.nn.Dropout(0.5)

    def f(x):
        return layer(x, training=True)

    x = gg.ones([64])
    gg.random.seed(11)
    eager = [f(x).numpy() for _ in range(3)]
    jf = gg.jit(f)
    gg.random.seed(11)
    for e in eager:
        np.testing.assert_array_equal(jf(x).numpy(), e)


# -- state made during the first call -------------------------------------------------------------


def test_a_layer_built_in_the_first_call_then_updated_by_assign_sub():
    gg.random.seed(0)
    layer = gg.nn.Dense(2)
    twin = gg.nn.Dense(2)

    def step(layer, x):
        with gg.GradientTape() as tape:
            loss = gg.sum(layer(x) ** 2)
        for v, g in zip(layer.trainable_variables, tape.gradient(loss, layer.trainable_variables)):
            v.assign_sub(0.01 * g)
        return loss

    jstep = gg.jit(lambda x: step(layer, x))
    x = np.linspace(-1, 1, 12).reshape(3, 4).astype(np.float32)
    gg.random.seed(0)
    got = [jstep(x).item() for _ in range(4)]
    gg.random.seed(0)
    want = [step(twin, x).item() for _ in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert jstep.trace_count == 1


@pytest.mark.parametrize("make", [
    lambda: gg.optimizers.SGD(0.1, momentum=0.9),
    lambda: gg.optimizers.Adam(0.1),
    lambda: gg.optimizers.RMSprop(0.1, momentum=0.5, centered=True),
], ids=["momentum", "adam", "rmsprop"])
def test_optimizer_slots_made_in_the_first_call_are_part_of_its_only_trace(make):
    runs = []
    for compiled in (False, True):
        w = gg.Variable(np.array([1.0, -2.0, 3.0]))
        opt = make()

        def step(x, w=w, opt=opt):
            with gg.GradientTape() as tape:
                loss = gg.sum(w * w * x)
            return opt.apply_gradients([(tape.gradient(loss, w), w)])

        f = gg.jit(step) if compiled else step
        counts = [int(f(np.full(3, 0.5))) for _ in range(5)]
        runs.append((counts, w.numpy()))
        if compiled:
            assert f.trace_count == 1
    assert runs[0][0] == runs[1][0] == [1, 2, 3, 4, 5]  # the step count of each call, not frozen
    np.testing.assert_allclose(runs[1][1], runs[0][1], rtol=1e-12)


def test_a_variable_made_and_dropped_inside_the_step_starts_afresh_each_call():
    def f(x):
        v = gg.Variable(np.zeros(2))
        v.assign_add(x)
        return v * 2.0

    jf = gg.jit(f)
    for k in range(4):
        np.testing.assert_allclose(jf(np.full(2, float(k))).numpy(), 2.0 * k)


# -- .grad in and out -------------------------------------------------------------------------------


def test_backward_writes_grad_of_a_requires_grad_argument():
    def step(t):
        loss = gg.sum(t * t)
        loss.backward()
        return loss

    f = gg.jit(step)
    for k in range(4):
        t = gg.tensor(np.full(3, float(k)), requires_grad=True)
        f(t)
        np.testing.assert_allclose(t.grad.numpy(), 2.0 * k)
    t = gg.tensor(np.full(3, 1.0), requires_grad=True)
    f(t)
    f(t)  # a second backward adds to the grad found there, as in eager code
    np.testing.assert_allclose(t.grad.numpy(), 4.0)


def test_returning_a_grad_after_backward_gives_this_calls_grad():
    v = gg.Variable(np.ones(3))
    v.requires_grad_()

    def step(x):
        v.grad = None
        gg.sum(v * x).backward()
        return v.grad

    f = gg.jit(step)
    for k in range(4):
        np.testing.assert_allclose(f(np.full(3, float(k))).numpy(), float(k))


def test_backward_into_variables_traces_once_and_accumulates_as_eager():
    grads = []
    for compiled in (False, True):
        v = gg.Variable(np.ones(3))
        v.requires_grad_()

        def step(x, v=v):
            loss = gg.sum(v * x)
            loss.backward()
            return loss

        f = gg.jit(step) if compiled else step
        for k in range(4):
            f(np.full(3, float(k)))
        grads.append(v.grad.numpy())
        if compiled:
            assert f.trace_count == 1
            v.grad = None  # zero_grad between calls: the same program sets it afresh
            f(np.full(3, 5.0))
            np.testing.assert_allclose(v.grad.numpy(), 5.0)
            assert f.trace_count == 1
    np.testing.assert_allclose(grads[1], grads[0])
    np.testing.assert_allclose(grads[0], 6.0)


def test_a_zero_d_variable_with_a_numpy_scalar_grad_does_not_disturb_other_functions():
    v = gg.Variable(np.float64(2.0))
    v.requires_grad_()
    (v * 3).backward()
    f = gg.jit(lambda x: x * 2)
    for k in range(4):
        f(np.full(2, float(k)))
    assert f.trace_count == 1
    v.grad = None  # zero_grad: no compiled function may write the old grad back
    f(np.ones(2))
    assert v.grad is None
    (v * 3).backward()
    assert v.grad.item() == 3.0


# -- in-place updates of arrays made from constants, gelu/erf --------------------------------------


def test_ops_that_fill_an_array_made_from_constants_replay():
    logits = gg.constant(np.array([0.5, -1.0, 2.0, 40.0]))

    def bce(y):
        return gg.losses.binary_crossentropy(y, logits, from_logits=True)

    _same_on_every_call(bce, [np.full(4, k / 3.0) for k in range(4)])

    def grad_through_constant(x):
        c = gg.constant(np.array([0.3, -0.7, 1.5]))
        with gg.GradientTape() as tape:
            tape.watch(c)
            y = gg.sum(gg.sigmoid(c) * x) + gg.sum(gg.tanh(c) * x)
        return tape.gradient(y, c)

    _same_on_every_call(grad_through_constant, [np.full(3, float(k)) for k in range(4)])


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_and_erf_compile(approximate):
    xs = [np.linspace(-3, 3, 7) * k for k in (1.0, 0.5, -2.0, 0.0)]
    _same_on_every_call(lambda x: gg.gelu(x, approximate=approximate) + gg.erf(x), xs)
    g = gg.grad(lambda x: gg.sum(gg.gelu(x, approximate=approximate)))
    _same_on_every_call(g, [gg.constant(x) for x in xs])


def test_the_readme_gelu_model_fits_with_jit_compile():
    def history(jit):
        gg.random.seed(0)
        model = gg.nn.Sequential([gg.nn.Input((4,)), gg.nn.Dense(8, activation="gelu"), gg.nn.Dropout(0.2),
                                  gg.nn.Dense(3)])
        model.compile(optimizer="adam", loss=gg.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=jit)
        x = np.random.default_rng(1).standard_normal((32, 4)).astype(np.float32)
        y = np.arange(32) % 3
        return model.fit(x, y, epochs=3, batch_size=8, verbose=0).history["loss"]

    np.testing.assert_allclose(history(True), history(False), rtol=1e-5)


def test_returned_tensors_keep_requires_grad_and_say_why_they_have_no_graph():
    w = gg.tensor(np.ones(3), requires_grad=True)

    def loss_after_backward(x):
        loss = gg.sum(w * x)
        loss.backward()
        return loss

    def loss_only(x):
        return gg.sum(w * x)

    f, g = gg.jit(loss_after_backward), gg.jit(loss_only)
    for k in range(3):
        eager = loss_after_backward(np.full(3, float(k)))
        compiled = f(np.full(3, float(k)))
        assert compiled.requires_grad and eager.requires_grad and not compiled.is_leaf
        assert compiled.item() == eager.item()
        for t in (eager, compiled):  # the graph was used inside the step: both say so
            with pytest.raises(RuntimeError, match="backward through the graph a second time"):
                t.backward()
        out = g(np.full(3, float(k)))
        assert out.requires_grad
        with pytest.raises(RuntimeError, match="compiled step"):
            out.backward()
    plain = gg.jit(lambda x: x * 2.0)(gg.constant([1.0]))
    assert not plain.requires_grad


def test_captured_requires_grad_tensors_get_their_grad_and_updates_on_every_call():
    def run(compiled):
        w = gg.tensor(np.linspace(0.5, 1.5, 3), requires_grad=True)  # PyTorch-style parameter
        opt = gg.optimizers.SGD([w], lr=0.1, momentum=0.9)

        def step(x):
            opt.zero_grad()
            loss = gg.sum(w * w * x)
            loss.backward()
            opt.step()
            return loss

        f = gg.jit(step) if compiled else step
        losses = [f(np.full(3, k + 1.0)).item() for k in range(5)]
        grads = []

        def accumulate(x):
            gg.sum(w * x).backward()

        g = gg.jit(accumulate) if compiled else accumulate
        for k in range(3):
            g(np.full(3, k + 1.0))
            grads.append(w.grad.numpy().copy())
        return losses, w.numpy(), grads

    (l0, w0, g0), (l1, w1, g1) = run(False), run(True)
    np.testing.assert_allclose(l1, l0, rtol=1e-12)
    np.testing.assert_allclose(w1, w0, rtol=1e-12)
    np.testing.assert_allclose(np.array(g1), np.array(g0), rtol=1e-12)


def test_variable_updates_write_in_place_unless_someone_holds_the_array():
    w = gg.Variable(np.zeros(1000, np.float32))
    opt = gg.optimizers.SGD(0.1)
    f = gg.jit(lambda g: opt.apply_gradients([(g, w)]))
    g = gg.constant(np.ones(1000, np.float32))
    f(g)
    f(g)
    before = id(w.data)
    f(g)
    assert id(w.data) == before  # the update wrote into the Variable's own array
    held = w.data  # now someone else holds it: the next update must not write into it
    f(g)
    assert w.data is not held
    np.testing.assert_array_equal(held, np.full(1000, -0.3, np.float32))
    np.testing.assert_allclose(w.numpy(), np.full(1000, -0.4), rtol=1e-6)
