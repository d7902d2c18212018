"""Every public op, activation and loss under gg.jit: value and gradient equal eager code on each of
four calls with different inputs, fed as NumPy arrays, Tensors and Variables; plus random small
programs (ops, operand kinds on either side, shapes) compiled and compared with eager code."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpugrad as gg

W = np.linspace(-1.0, 1.5, 12).reshape(3, 4)  # a fixed weight: sum(f(x) * W) is the scalar to differentiate
POS = {"log", "log1p", "sqrt", "pow", "pow_t"}  # need positive inputs

OPS = {
    "abs": gg.abs, "cos": gg.cos, "sin": gg.sin, "tan": lambda x: gg.tan(x * 0.3), "exp": gg.exp,
    "expm1": gg.expm1, "log": gg.log, "log1p": gg.log1p, "sqrt": gg.sqrt, "square": gg.square,
    "negative": gg.negative, "sign": gg.sign, "tanh": gg.tanh, "sigmoid": gg.sigmoid, "relu": gg.relu,
    "elu": gg.elu, "gelu": gg.gelu, "gelu_tanh": lambda x: gg.gelu(x, approximate=True), "erf": gg.erf,
    "leaky_relu": gg.leaky_relu, "silu": gg.silu, "swish": gg.swish, "softplus": gg.softplus,
    "softmax": gg.softmax, "log_softmax": gg.log_softmax, "softmax0": lambda x: gg.softmax(x, axis=0),
    "add": lambda x: gg.add(x, W), "subtract": lambda x: gg.subtract(W, x), "multiply": lambda x: gg.multiply(x, W),
    "divide": lambda x: gg.divide(W, x * x + 1.0), "pow": lambda x: gg.pow(x, 1.5), "pow_t": lambda x: x ** x,
    "maximum": lambda x: gg.maximum(x, W), "minimum": lambda x: gg.minimum(W, x),
    "matmul": lambda x: gg.matmul(x, W.T), "rmatmul": lambda x: W.T @ x, "lmatmul": lambda x: x.T @ W,
    "where": lambda x: gg.where(gg.greater(x, W), x, W * x), "clip": lambda x: gg.clip(x, -0.5, 0.7),
    "sum": lambda x: gg.sum(x, axis=1), "mean": lambda x: gg.mean(x, axis=0), "max": lambda x: gg.max(x, axis=1),
    "min": lambda x: gg.min(x), "logsumexp": lambda x: gg.logsumexp(x, axis=1), "norm": gg.norm,
    "reshape": lambda x: gg.reshape(x, (4, 3)), "transpose": gg.transpose,
    "expand_squeeze": lambda x: gg.squeeze(gg.expand_dims(x, 0), 0),
    "broadcast_to": lambda x: gg.broadcast_to(x, (2, 3, 4)),
    "concat": lambda x: gg.concat([x, x * 2.0], axis=0), "stack": lambda x: gg.stack([x, W], axis=1),
    "unstack": lambda x: gg.unstack(x)[1], "getitem": lambda x: x[1:, ::2],
    "mse": lambda x: gg.losses.mse(W, x),
    "bce_logits": lambda x: gg.losses.binary_crossentropy((W > 0).astype(np.float64), x, from_logits=True),
    "bce": lambda x: gg.losses.binary_crossentropy((W > 0).astype(np.float64), gg.sigmoid(x)),
    "cce_logits": lambda x: gg.losses.categorical_crossentropy(gg.softmax(gg.constant(W)), x, from_logits=True),
    "scce_logits": lambda x: gg.losses.sparse_categorical_crossentropy(np.array([0, 3, 1]), x, from_logits=True),
    "scce": lambda x: gg.losses.sparse_categorical_crossentropy(np.array([2, 0, 1]), gg.softmax(x)),
}


def _inputs(name):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    xs = [rng.standard_normal((3, 4)) * s for s in (1.0, 2.0, 0.5, 3.0)]
    return [np.abs(x) + 0.1 for x in xs] if name in POS else xs


def _host(r):
    return r.numpy() if isinstance(r, gg.Tensor) else np.asarray(r)


def _close(got, want, rtol=1e-12):
    if want is None:  # no gradient (sign): none compiled either
        assert got is None
        return
    np.testing.assert_allclose(_host(got), _host(want), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("kind", ["numpy", "tensor", "variable"])
@pytest.mark.parametrize("name", list(OPS))
def test_op_value_and_gradient_under_jit_equal_eager_on_every_call(name, kind):
    op = OPS[name]
    if kind == "variable":  # the input is state: assigned between calls, read by the program
        v = gg.Variable(np.zeros((3, 4)))

        def value(_):
            return op(v)

        def gradient(_):
            with gg.GradientTape() as tape:
                y = gg.sum(op(v) * 1.0)
            return tape.gradient(y, v)
    else:
        def value(x):
            return op(x)

        def gradient(x):
            x = gg.constant(x) if not isinstance(x, gg.Tensor) else x
            with gg.GradientTape() as tape:
                tape.watch(x)
                y = op(x)
                y = gg.sum(y * gg.constant(np.ones(y.shape)))
            return tape.gradient(y, x)

    jv, jg = gg.jit(value), gg.jit(gradient)
    for x in _inputs(name):
        arg = gg.constant(x) if kind == "tensor" else x
        if kind == "variable":
            v.assign(x)
        _close(jv(arg), value(arg))
        _close(jg(arg), gradient(arg))
    assert jv.trace_count == jg.trace_count == 1


# -- random small programs --------------------------------------------------------------------------

UNARY = ["exp_tanh", "sigmoid", "square", "neg", "relu", "sum_keep", "mean0", "softplus"]
BINARY = ["add", "sub", "mul", "div", "matmul", "maximum", "where"]
KINDS = ["numpy", "tensor", "variable", "number", "captured"]


def _unary(name, a):
    return {
        "exp_tanh": lambda: gg.exp(gg.tanh(a)), "sigmoid": lambda: gg.sigmoid(a), "square": lambda: a * a,
        "neg": lambda: -a, "relu": lambda: gg.relu(a), "sum_keep": lambda: gg.sum(a, axis=-1, keepdims=True) + a,
        "mean0": lambda: a - gg.mean(a, axis=0), "softplus": lambda: gg.softplus(a),
    }[name]()


def _binary(name, a, b):
    if name == "matmul":
        return a @ gg.transpose(b) if isinstance(b, gg.Tensor) else a @ np.transpose(b)
    return {
        "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / (b * b + 1.0),
        "maximum": lambda: gg.maximum(a, b), "where": lambda: gg.where(gg.greater(a, b), a, b),
    }[name]()


program = st.lists(
    st.one_of(
        st.tuples(st.just("u"), st.sampled_from(UNARY)),
        st.tuples(st.just("b"), st.sampled_from(BINARY), st.sampled_from(KINDS), st.booleans()),
    ),
    min_size=1, max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(program, st.sampled_from([(3, 3), (2, 2), (4, 4)]), st.sampled_from(["numpy", "tensor"]))
def test_random_programs_compiled_equal_eager_on_every_call(prog, shape, input_kind):
    rng = np.random.default_rng(len(prog))
    captured = gg.constant(rng.standard_normal(shape))
    var = gg.Variable(rng.standard_normal(shape))

    def run(x, other):
        a = x
        for step in prog:
            if step[0] == "u":
                a = _unary(step[1], a if isinstance(a, gg.Tensor) else gg.constant(a))
                continue
            _, name, kind, left = step
            b = {"numpy": other, "tensor": gg.constant(other), "variable": var, "number": 0.75,
                 "captured": captured}[kind]
            if name == "matmul" and kind == "number":
                b = captured
            a, b = (b, a) if left else (a, b)
            if not isinstance(a, gg.Tensor) and not isinstance(b, gg.Tensor):
                a = gg.constant(a)
            a = _binary(name, a, b)
        return a

    def loss_and_grad(x, other):
        x = gg.constant(x) if not isinstance(x, gg.Tensor) else x
        with gg.GradientTape() as tape:
            tape.watch(x)
            y = gg.sum(run(x, other))
        return y, tape.gradient(y, [x, var])

    jrun, jgrad = gg.jit(run), gg.jit(loss_and_grad)
    for _ in range(4):
        x = rng.standard_normal(shape)
        other = rng.standard_normal(shape)
        var.assign(rng.standard_normal(shape))
        xin = gg.constant(x) if input_kind == "tensor" else x
        _close(jrun(xin, other), run(xin, other), rtol=1e-10)
        (jy, jgs), (ey, egs) = jgrad(xin, other), loss_and_grad(xin, other)
        _close(jy, ey, rtol=1e-10)
        for jg, eg in zip(jgs, egs):
            _close(jg, eg, rtol=1e-10)
