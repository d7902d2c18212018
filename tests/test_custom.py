"""gg.Op user ops and the three custom-gradient spellings (TensorFlow, PyTorch, JAX), to second
order; the peers' own documented examples in closed form, and against JAX / PyTorch where present."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.testing import check_grad


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _d(f, x, order=1, device="cpu"):
    """The ``order``-th derivative of scalar-sum ``f`` at array ``x`` by nested tapes."""
    t = gg.Tensor(x, device=device)
    tapes = [gg.GradientTape() for _ in range(order)]
    for tp in tapes:
        tp.__enter__()
        tp.watch(t)
    y = gg.sum(f(t))
    for tp in reversed(tapes):
        tp.__exit__(None, None, None)
        y = tp.gradient(y, t)
        y = gg.sum(y) if tp is not tapes[0] else y
    return y.numpy()


# --------------------------------------------------------------------------------------- gg.Op


class Swish(gg.Op):
    @staticmethod
    def forward_cpu(x):
        return x * _sig(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.inputs
        s = gg.sigmoid(x)
        return gy * (s + ctx.output * (1 - s))


class Scale(gg.Op):
    """y = a·x with a keyword factor; the backward is another gg.Op."""

    @staticmethod
    def forward_cpu(x, factor):
        return x * factor

    @staticmethod
    def backward(ctx, gy):
        return (Scale.apply(gy, factor=ctx.factor),)


class RowNorm(gg.Op):
    """Two inputs, a residual: y = Σ_last (a·b) / n, with n saved by the forward."""

    residual = True

    @staticmethod
    def forward_cpu(a, b):
        n = a.shape[-1]
        return (a * b).sum(axis=-1) / n, n

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.inputs
        g = gg.expand_dims(gy, -1) * (1.0 / ctx.residual)
        return (g * b if ctx.needs_input_grad[0] else None, g * a if ctx.needs_input_grad[1] else None)


@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
def test_user_op_forward_and_second_order(device, rng, shape):
    x = rng.standard_normal(shape)
    y = Swish.apply(gg.Tensor(x, device=device))
    assert y.device == gg.Tensor(x, device=device).device
    np.testing.assert_allclose(y.numpy(), x * _sig(x), rtol=1e-12)
    check_grad(Swish.apply, [gg.Tensor(x, device=device)], order=2)
    s = _sig(x)
    np.testing.assert_allclose(_d(Swish.apply, x, 1, device), s + x * s * (1 - s), rtol=1e-10)
    d2 = s * (1 - s) * (2 + x * (1 - 2 * s))
    np.testing.assert_allclose(_d(Swish.apply, x, 2, device), d2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_user_op_keywords_residual_and_dtypes(device, rng, dtype):
    a = gg.Tensor(rng.standard_normal((2, 3)), dtype=dtype, device=device)
    b = gg.Tensor(rng.standard_normal((2, 3)), dtype=dtype, device=device)
    y = Scale.apply(a, factor=3.0)
    assert y.dtype == a.dtype
    np.testing.assert_allclose(y.numpy(), 3 * a.numpy())
    check_grad(lambda x: Scale.apply(x, factor=-1.5), [a], order=2)
    check_grad(RowNorm.apply, [a, b], order=2)
    np.testing.assert_allclose(RowNorm.apply(a, b).numpy(), (a.numpy() * b.numpy()).mean(-1), rtol=1e-6)


def test_user_op_needs_input_grad_and_numbers(rng):
    seen = []

    class Mul(gg.Op):
        @staticmethod
        def forward_cpu(a, b):
            return a * b

        @staticmethod
        def backward(ctx, gy):
            seen.append(ctx.needs_input_grad)
            a, b = ctx.inputs
            return gy * b, gy * a

    a = gg.Tensor(rng.standard_normal(3))
    b = gg.Tensor(rng.standard_normal(3))
    with gg.GradientTape() as tape:
        tape.watch(a)
        y = gg.sum(Mul.apply(a, b))
    np.testing.assert_allclose(tape.gradient(y, a).numpy(), b.numpy())
    assert seen == [(True, False)]
    z = Mul.apply(a, 2.0)  # a number becomes a tensor of the first input's dtype and device
    np.testing.assert_allclose(z.numpy(), 2 * a.numpy())


def test_user_op_without_gradient_records_nothing(rng):
    y = Swish.apply(gg.Tensor(rng.standard_normal(3)))
    assert y.grad_fn is None and not y.requires_grad
    x = gg.Tensor(rng.standard_normal(3), requires_grad=True)
    y = Swish.apply(x)
    gg.sum(y).backward()
    s = _sig(x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), s + x.numpy() * s * (1 - s))


def test_user_op_nan_in_nan_out():
    y = Swish.apply(gg.Tensor([np.nan, 1.0]))
    assert np.isnan(y.numpy()[0]) and np.isfinite(y.numpy()[1])


def _bad_op(returned):
    class Bad(gg.Op):
        @staticmethod
        def forward_cpu(a, b):
            return a + b

        @staticmethod
        def backward(ctx, gy):
            return returned(ctx, gy)

    return Bad


@pytest.mark.parametrize(
    "returned, message",
    [
        (lambda ctx, gy: (gy,), "returned 1 gradient(s) for 2 input(s)"),
        (lambda ctx, gy: (gy, gy, gy), "returned 3 gradient(s) for 2 input(s)"),
        (lambda ctx, gy: (gy, gg.ones((7,))), "gradient of shape (7,) for input 1 of shape (3,)"),
        (lambda ctx, gy: (gy, "zero"), "returned a str as the gradient of input 1"),
    ],
)
def test_user_op_bad_gradients_name_the_op(rng, returned, message):
    Bad = _bad_op(returned)
    a = gg.Tensor(rng.standard_normal(3), requires_grad=True)
    b = gg.Tensor(rng.standard_normal(3), requires_grad=True)
    with pytest.raises((RuntimeError, TypeError), match="Bad") as info:
        gg.sum(Bad.apply(a, b)).backward()
    assert message in str(info.value)


def test_user_op_broadcast_gradient_is_summed_back(rng):
    Bcast = _bad_op(lambda ctx, gy: (gy, gg.broadcast_to(gy, (2, 3))))
    a = gg.Tensor(rng.standard_normal(3), requires_grad=True)
    b = gg.Tensor(rng.standard_normal(3), requires_grad=True)
    gg.sum(Bcast.apply(a, b)).backward()
    np.testing.assert_allclose(b.grad.numpy(), [2.0, 2.0, 2.0])


def test_user_op_definition_errors():
    with pytest.raises(TypeError, match="NoForward.*forward_cpu"):

        class NoForward(gg.Op):
            @staticmethod
            def backward(ctx, gy):
                return gy

    class ReturnsTensor(gg.Op):
        @staticmethod
        def forward_cpu(x):
            return gg.Tensor(x)

        @staticmethod
        def backward(ctx, gy):
            return gy

    with pytest.raises(TypeError, match="ReturnsTensor: the forward must return one array"):
        ReturnsTensor.apply(gg.Tensor([1.0]))
    with pytest.raises(TypeError, match="Swish.apply: inputs are tensors"):
        Swish.apply("x")


@pytest.mark.gpu
def test_user_op_device_errors():
    class HostForward(gg.Op):
        @staticmethod
        def forward_cpu(x):
            return x

        @staticmethod
        def forward_gpu(x):
            return x.get()  # a NumPy array for a CuPy input

        @staticmethod
        def backward(ctx, gy):
            return gy

    with pytest.raises(RuntimeError, match="HostForward: the forward returned an array on cpu for inputs on cuda"):
        HostForward.apply(gg.Tensor([1.0], device="cuda"))

    HostGrad = _bad_op(lambda ctx, gy: (gy, gg.Tensor(np.ones(3))))
    a = gg.Tensor(np.ones(3), device="cuda", requires_grad=True)
    with pytest.raises(RuntimeError, match="backward of Bad returned the gradient of input 1 on cpu"):
        gg.sum(HostGrad.apply(a, a)).backward()


# --------------------------------------------------------------------------- TensorFlow spelling


@gg.custom_gradient
def log1pexp(x):
    """TensorFlow's documented example: a numerically stable gradient of log(1 + e^x)."""
    e = gg.exp(x)

    def grad(upstream):
        return upstream * (1 - 1 / (1 + e))

    return gg.log(1 + e), grad


def test_tf_log1pexp_stable_gradient():
    x = gg.Tensor(np.float32(100.0))
    with np.errstate(over="ignore"), gg.GradientTape() as tape:
        tape.watch(x)
        y = log1pexp(x)
    assert tape.gradient(y, x).numpy() == np.float32(1.0)  # the naive formula gives nan


@pytest.mark.parametrize("shape", [(), (6,)])
def test_tf_log1pexp_second_order(device, rng, shape):
    x = rng.standard_normal(shape) * 2
    check_grad(log1pexp, [gg.Tensor(x, device=device)], order=2)
    s = _sig(x)
    np.testing.assert_allclose(_d(log1pexp, x, 1, device), s, rtol=1e-12)
    np.testing.assert_allclose(_d(log1pexp, x, 2, device), s * (1 - s), rtol=1e-10)


def test_tf_two_inputs_two_outputs_and_numbers(rng):
    @gg.custom_gradient
    def prod_and_sum(a, b):
        def grad(dp, ds):
            return dp * b + ds, dp * a + ds

        return (a * b, a + b), grad

    a, b = rng.standard_normal(4), rng.standard_normal(4)
    check_grad(lambda x, y: prod_and_sum(x, y)[0] * 2 + prod_and_sum(x, y)[1], [a, b], order=2)
    p, s = prod_and_sum(gg.Tensor(a), 2.0)
    np.testing.assert_allclose(p.numpy(), a * 2)
    np.testing.assert_allclose(s.numpy(), a + 2)
    ta = gg.Tensor(a)
    with gg.GradientTape() as tape:
        tape.watch(ta)
        p, _ = prod_and_sum(ta, gg.Tensor(b))  # the second output unused: its gradient is zero
        p = gg.sum(p)
    np.testing.assert_allclose(tape.gradient(p, ta).numpy(), b)


def test_tf_variables_keyword(rng):
    w = gg.Variable(rng.standard_normal(3), name="w")

    @gg.custom_gradient
    def scaled(x):
        def grad(dy, variables=None):
            assert variables == [w]
            return dy * w, [dy * x]

        return x * w, grad

    x = gg.Tensor(rng.standard_normal(3))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(scaled(x))
    gx, gw = tape.gradient(y, [x, w])
    np.testing.assert_allclose(gx.numpy(), w.numpy())
    np.testing.assert_allclose(gw.numpy(), x.numpy())

    @gg.custom_gradient
    def no_vars_kw(x):
        return x * w, lambda dy: dy * w

    with pytest.raises(TypeError, match="no_vars_kw reads the Variable.*'w'.*variables="):
        with gg.GradientTape():
            no_vars_kw(x)


def test_tf_method_and_non_tensor_arguments(rng):
    class Layer:
        scale = 3.0

        @gg.custom_gradient
        def call(self, x):
            return x * self.scale, lambda dy: dy * self.scale

    x = rng.standard_normal(4)
    check_grad(lambda t: Layer().call(t), [x], order=2)
    np.testing.assert_allclose(_d(lambda t: Layer().call(t), x), 3.0)


def test_tf_errors_name_the_function(rng):
    @gg.custom_gradient
    def wrong_count(a, b):
        return a * b, lambda dy: dy

    @gg.custom_gradient
    def no_grad_fn(a):
        return a

    a = gg.Tensor(rng.standard_normal(2), requires_grad=True)
    b = gg.Tensor(rng.standard_normal(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="wrong_count returned 1 gradient"):
        gg.sum(wrong_count(a, b)).backward()
    with pytest.raises(TypeError, match="no_grad_fn: a custom_gradient function must return"):
        no_grad_fn(a)


# ------------------------------------------------------------------------------ PyTorch spelling


class Exp(gg.autograd.Function):
    """PyTorch's documented example."""

    @staticmethod
    def forward(ctx, i):
        result = gg.exp(i)
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        (result,) = ctx.saved_tensors
        return grad_output * result


@pytest.mark.parametrize("shape", [(), (2, 3)])
def test_torch_exp_to_third_order(device, rng, shape):
    x = rng.standard_normal(shape)
    check_grad(Exp.apply, [gg.Tensor(x, device=device)], order=2)
    t = gg.Tensor(x, device=device, requires_grad=True)
    y = Exp.apply(t)
    (g1,) = gg.autograd.grad(gg.sum(y), t, create_graph=True)
    (g2,) = gg.autograd.grad(gg.sum(g1), t, create_graph=True)
    (g3,) = gg.autograd.grad(gg.sum(g2), t)
    for g in (y, g1, g2, g3):
        np.testing.assert_allclose(g.numpy(), np.exp(x), rtol=1e-12)


def test_torch_forward_does_not_record_and_ctx(rng):
    record = {}

    class MulConst(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k, w):
            record["forward_needs"] = ctx.needs_input_grad
            y = x * k * w
            record["inside_tracked"] = y.requires_grad
            ctx.k = k
            ctx.save_for_backward(x, w)
            return y

        @staticmethod
        def backward(ctx, gy):
            record["backward_needs"] = ctx.needs_input_grad
            x, w = ctx.saved_tensors
            return gy * ctx.k * w, None, gy * ctx.k * x

    x = gg.Tensor(rng.standard_normal(3), requires_grad=True)
    w = gg.Tensor(rng.standard_normal(3))
    y = MulConst.apply(x, 2.0, w)
    gg.sum(y).backward()
    assert record == {
        "forward_needs": (True, False, False),
        "inside_tracked": False,
        "backward_needs": (True, False, False),
    }
    np.testing.assert_allclose(x.grad.numpy(), 2 * w.numpy())
    check_grad(lambda a, b: MulConst.apply(a, 3.0, b), [x.numpy(), w.numpy()], order=2)


def test_torch_setup_context_style_and_two_outputs(rng):
    class SinCos(gg.autograd.Function):
        @staticmethod
        def forward(x):
            return gg.sin(x), gg.cos(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, gs, gc):
            (x,) = ctx.saved_tensors
            return gs * gg.cos(x) - gc * gg.sin(x)

    x = rng.standard_normal(5)
    s, c = SinCos.apply(gg.Tensor(x))
    np.testing.assert_allclose(s.numpy(), np.sin(x))
    np.testing.assert_allclose(c.numpy(), np.cos(x))
    check_grad(lambda t: SinCos.apply(t)[0] * 2 + SinCos.apply(t)[1] ** 2, [x], order=2)


def test_torch_mark_non_differentiable(rng):
    class WithMask(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            m = (x > 0).astype(x.dtype)
            ctx.mark_non_differentiable(m)
            return x * 2, m

        @staticmethod
        def backward(ctx, gy, gm):
            return gy * 2

    x = gg.Tensor(rng.standard_normal(4), requires_grad=True)
    y, m = WithMask.apply(x)
    assert not m.requires_grad and y.requires_grad
    gg.sum(y).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


def test_torch_errors_name_the_function(rng):
    class TooFew(gg.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, gy):
            return gy

    class GradForNumber(gg.autograd.Function):
        @staticmethod
        def forward(ctx, a, k):
            return a * k

        @staticmethod
        def backward(ctx, gy):
            return gy, gy

    a = gg.Tensor(rng.standard_normal(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="backward of TooFew returned 1 gradient.*2 argument"):
        gg.sum(TooFew.apply(a, a)).backward()
    with pytest.raises(RuntimeError, match="GradForNumber returned a gradient for argument 1, which is a float"):
        gg.sum(GradForNumber.apply(a, 2.0)).backward()
    with pytest.raises(TypeError, match="save_for_backward takes Tensors"):
        ctx = gg.autograd.FunctionCtx(())
        ctx.save_for_backward(np.ones(2))


def test_torch_exp_against_pytorch(rng):
    torch = pytest.importorskip("torch")

    class TExp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, i):
            result = i.exp()
            ctx.save_for_backward(result)
            return result

        @staticmethod
        def backward(ctx, grad_output):
            (result,) = ctx.saved_tensors
            return grad_output * result

    x = rng.standard_normal(4)
    w = rng.standard_normal(4)
    tx = torch.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad((TExp.apply(tx) * torch.tensor(w)).sin().sum(), tx, create_graph=True)
    (tgg,) = torch.autograd.grad(tg.pow(2).sum(), tx)
    gx = gg.Tensor(x, requires_grad=True)
    (g,) = gg.autograd.grad(gg.sum(gg.sin(Exp.apply(gx) * w)), gx, create_graph=True)
    (gg2,) = gg.autograd.grad(gg.sum(g**2), gx)
    np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gg2.numpy(), tgg.numpy(), rtol=1e-12)


# ---------------------------------------------------------------------------------- JAX spelling


@gg.custom_vjp
def clip_gradient(lo, hi, x):
    """JAX's documented example: the identity, with its cotangent clipped to [lo, hi]."""
    return x


def _clip_fwd(lo, hi, x):
    return x, (lo, hi)


def _clip_bwd(res, g):
    lo, hi = res
    return (None, None, gg.clip(g, lo, hi))


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def clip_sin(x):
    return gg.sin(clip_gradient(-0.75, 0.75, x))


def _away_from_kinks(n):
    t = np.linspace(0.1, 10, n)
    return t[np.abs(np.abs(np.cos(t)) - 0.75) > 0.05]


def test_jax_clip_gradient_closed_form(device):
    t = _away_from_kinks(40)
    np.testing.assert_allclose(_d(clip_sin, t, 1, device), np.clip(np.cos(t), -0.75, 0.75), rtol=1e-12)
    # second order: d/dt clip(cos t) is −sin t inside the clip and 0 outside
    inside = np.abs(np.cos(t)) < 0.75
    np.testing.assert_allclose(_d(clip_sin, t, 2, device), np.where(inside, -np.sin(t), 0.0), atol=1e-12)
    # with bounds that never bind, the rule is the true derivative: finite differences agree
    check_grad(lambda x: gg.sin(clip_gradient(-100.0, 100.0, x)), [gg.Tensor(t, device=device)], order=2)
    y = clip_gradient(-0.75, 0.75, gg.Tensor(t, device=device))  # nothing differentiated: f runs
    np.testing.assert_array_equal(y.numpy(), t)


def test_jax_residuals_carry_the_graph_and_nondiff_argnums(rng):
    def f(n, x):
        return gg.sin(x) * n

    def fwd(n, x):
        return f(n, x), gg.cos(x)

    def bwd(n, cos_x, g):
        return (g * cos_x * n,)

    F = gg.custom_vjp(f, nondiff_argnums=(0,))
    F.defvjp(fwd, bwd)
    x = rng.standard_normal(5)
    check_grad(lambda t: F(3.0, t), [x], order=2)
    np.testing.assert_allclose(_d(lambda t: F(3.0, t), x, 2), -3 * np.sin(x), rtol=1e-12)


def test_jax_tuple_output(rng):
    @gg.custom_vjp
    def both(x):
        return gg.exp(x), x * 2

    def fwd(x):
        e = gg.exp(x)
        return (e, x * 2), e

    def bwd(e, gs):
        ge, g2 = gs
        return (ge * e + 2 * g2,)

    both.defvjp(fwd, bwd)
    x = rng.standard_normal(3)
    check_grad(lambda t: both(t)[0] + both(t)[1] ** 2, [x], order=2)


def test_jax_errors_name_the_function(rng):
    @gg.custom_vjp
    def undefined(x):
        return x

    x = gg.Tensor(rng.standard_normal(2), requires_grad=True)
    with pytest.raises(AttributeError, match="No VJP defined for custom_vjp function .*undefined"):
        undefined(x)

    @gg.custom_vjp
    def short(x, y):
        return x * y

    short.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1],))
    with pytest.raises(RuntimeError, match="bwd of .*short must return a tuple with one cotangent per .*, got 1"):
        gg.sum(short(x, x)).backward()


def test_jax_clip_gradient_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    @jax.custom_vjp
    def jclip(lo, hi, x):
        return x

    jclip.defvjp(lambda lo, hi, x: (x, (lo, hi)), lambda res, g: (None, None, jnp.clip(g, *res)))

    def jf(x):
        return jnp.sum(jnp.sin(jclip(-0.75, 0.75, x)) ** 2)

    def gf(x):
        return gg.sum(clip_sin(x) ** 2)

    t = _away_from_kinks(30)
    np.testing.assert_allclose(gg.grad(gf)(gg.Tensor(t)).numpy(), np.asarray(jax.grad(jf)(t)), rtol=1e-12)
    hv = np.asarray(jax.grad(lambda x: jnp.sum(jax.grad(jf)(x) ** 2))(t))
    ours = gg.grad(lambda x: gg.sum(gg.grad(gf)(x) ** 2))(gg.Tensor(t)).numpy()
    np.testing.assert_allclose(ours, hv, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------ NVRTC


SCALE_SRC = r"""
extern "C" __global__ void scale_f64(const double* x, double* y, double a, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i];
}
"""


@pytest.fixture(scope="module")
def nvrtc():
    from gpugrad import kernels

    try:
        return kernels.load_nvrtc()
    except kernels.NvrtcUnavailable as exc:
        pytest.skip(f"NVRTC is not available here: {exc}")


def test_compile_check_success(nvrtc):
    ptx = gg.cuda.compile_check(SCALE_SRC, "scale_f64")
    assert ".entry scale_f64(" in ptx
    assert ".target sm_90" in gg.cuda.RawKernel(SCALE_SRC, "scale_f64").compile_check("compute_90")


def test_compile_check_errors_carry_the_log(nvrtc):
    from gpugrad.kernels import KernelCompileError

    with pytest.raises(KernelCompileError, match='identifier "xx" is undefined') as info:
        gg.cuda.compile_check(SCALE_SRC.replace("a * x[i]", "a * xx[i]"), "scale_f64")
    assert "undefined" in info.value.log
    with pytest.raises(KernelCompileError, match="defines no kernel 'scale_f32'"):
        gg.cuda.compile_check(SCALE_SRC, "scale_f32")


def test_raw_kernel_arguments():
    with pytest.raises(TypeError, match="RawKernel"):
        gg.cuda.RawKernel(SCALE_SRC, "not a name")
    assert repr(gg.cuda.RawKernel(SCALE_SRC, "scale_f64")) == "RawKernel('scale_f64')"


@pytest.mark.gpu
def test_raw_kernel_launch_and_memo():
    cp = pytest.importorskip("cupy")
    k = gg.cuda.RawKernel(SCALE_SRC, "scale_f64")
    x = gg.Tensor(np.arange(1000.0), device="cuda")
    y = cp.empty(1000)
    k((4,), (256,), (x, y, 2.5, np.int64(1000)))
    np.testing.assert_allclose(cp.asnumpy(y), 2.5 * np.arange(1000.0))
    assert k.kernel() is gg.cuda.RawKernel(SCALE_SRC, "scale_f64").kernel()
