"""Mistakes get clear errors: the right exception type and a message that says what was wrong."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import backend
from gpugrad.ops.base import check_devices

HAS_GPU = backend.cuda_available()


def shapes_named(excinfo, *shapes):
    msg = str(excinfo.value)
    for s in shapes:
        assert str(tuple(s)) in msg, f"{s} not named in: {msg}"


# -- shapes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sa,sb",
    [((2, 3), (4, 2)), ((3,), (4,)), ((5,), (4, 2)), ((2, 3), (2,)), ((2, 2, 3), (2, 4, 5))],
    ids=str,
)
def test_matmul_shape_mismatch_names_both_shapes(device, sa, sb):
    a, b = gg.zeros(sa, device=device), gg.zeros(sb, device=device)
    with pytest.raises(ValueError, match="matmul") as e:
        a @ b
    shapes_named(e, sa, sb)
    with pytest.raises(ValueError, match="matmul"):
        gg.matmul(a, b)


def test_matmul_batch_mismatch_names_both_shapes(device):
    a, b = gg.zeros((2, 3, 4), device=device), gg.zeros((3, 4, 5), device=device)
    with pytest.raises(ValueError, match="matmul") as e:
        a @ b
    shapes_named(e, (2, 3, 4), (3, 4, 5))


def test_matmul_of_a_scalar(device):
    with pytest.raises(ValueError, match="at least one dimension"):
        gg.constant(2.0, device=device) @ gg.zeros((2, 2), device=device)


BINARY = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "maximum": gg.maximum,
    "minimum": gg.minimum,
    "less": lambda a, b: a < b,
    "equal": lambda a, b: a == b,
}


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("sa,sb", [((2, 3), (4,)), ((2, 3), (3, 2)), ((4, 1, 3), (2, 2))], ids=str)
def test_broadcast_mismatch_names_both_shapes(device, name, sa, sb):
    a, b = gg.ones(sa, device=device), gg.ones(sb, device=device)
    with pytest.raises(ValueError, match=f"{name}.*broadcast") as e:
        BINARY[name](a, b)
    shapes_named(e, sa, sb)


def test_broadcast_mismatch_with_a_numpy_array():
    with pytest.raises(ValueError) as e:
        gg.ones((2, 3), device="cpu") + np.ones((2, 2))
    shapes_named(e, (2, 3), (2, 2))


def test_where_names_the_three_shapes(device):
    with pytest.raises(ValueError, match="where") as e:
        gg.where(gg.ones((2,), device=device) > 0, gg.ones((3,), device=device), gg.ones((4,), device=device))
    shapes_named(e, (2,), (3,), (4,))


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda d: gg.reshape(gg.zeros(6, device=d), (4, 2)), ["(6,)", "(4, 2)"]),
        (lambda d: gg.broadcast_to(gg.zeros(3, device=d), (2, 4)), ["(3,)", "(2, 4)"]),
        (lambda d: gg.concat([gg.zeros((2, 3), device=d), gg.zeros((2, 4), device=d)]), ["(2, 3)", "(2, 4)"]),
        (lambda d: gg.stack([gg.zeros(2, device=d), gg.zeros(3, device=d)]), ["(2,)", "(3,)"]),
        (lambda d: gg.squeeze(gg.zeros((2, 3), device=d), axis=1), ["axis 1", "(2, 3)"]),
        (lambda d: gg.sum(gg.zeros((2, 3), device=d), axis=2), ["axis 2"]),
        (lambda d: gg.mean(gg.zeros((), device=d), axis=1), ["axis 1", "0 dimension"]),
        (lambda d: gg.concat([gg.zeros((), device=d), gg.ones((), device=d)]), ["0-d", "stack"]),
        (
            lambda d: gg.losses.mse(gg.zeros((2, 3), device=d), gg.zeros((2, 4), device=d)),
            ["(2, 3)", "(2, 4)"],
        ),
    ],
    ids=["reshape", "broadcast_to", "concat", "stack", "squeeze", "axis", "axis of 0-d", "concat 0-d",
         "loss shapes"],
)
def test_shape_errors_of_other_ops(device, call, words):
    with pytest.raises(ValueError) as e:
        call(device)
    for w in words:
        assert w in str(e.value)


# -- devices -----------------------------------------------------------------------------------------


class OnAnotherDevice(gg.Tensor):
    """A CPU tensor that says it lives on a GPU: the device check, without a GPU."""

    __slots__ = ()

    @property
    def device(self):
        return "cuda:0"


def test_check_devices_names_both_devices_and_the_op():
    a = gg.zeros(3, device="cpu")
    b = OnAnotherDevice(np.zeros(3, dtype=np.float32))
    with pytest.raises(RuntimeError) as e:
        check_devices(a, b, "add")
    msg = str(e.value)
    assert "add" in msg and "cpu" in msg and "cuda:0" in msg and "different devices" in msg
    assert ".to(" in msg  # says how to fix it
    check_devices(a, gg.ones(3, device="cpu"), "add")  # the same device: no error


def test_a_loss_refuses_mixed_devices():
    pred = gg.zeros((2, 3), device="cpu")
    target = OnAnotherDevice(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"mse.*different devices \(cuda:0 and cpu\)"):
        gg.losses.mse(target, pred)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize(
    "op",
    [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a @ b, lambda a, b: gg.concat([a, b]),
     lambda a, b: gg.where(a > 0, a, b), lambda a, b: gg.losses.mse(a, b)],
    ids=["add", "mul", "matmul", "concat", "where", "mse"],
)
def test_real_cpu_and_cuda_tensors_do_not_mix(op):
    a = gg.ones((2, 2), device="cpu")
    b = gg.ones((2, 2), device="cuda")
    with pytest.raises(RuntimeError, match="different devices"):
        op(a, b)
    with pytest.raises(RuntimeError, match="different devices"):
        op(b, a)


@pytest.mark.skipif(HAS_GPU, reason="a GPU is present")
@pytest.mark.parametrize(
    "make",
    [
        lambda: gg.zeros(3, device="cuda"),
        lambda: gg.constant([1.0], device="cuda"),
        lambda: gg.tensor([1.0], device="cuda:0"),
        lambda: gg.ones(3).to("cuda"),
        lambda: gg.ones(3).cuda(),
        lambda: gg.set_default_device("cuda"),
        lambda: gg.device("cuda").__enter__(),
        lambda: gg.random.normal([2], device="cuda"),
    ],
    ids=["zeros", "constant", "tensor", "to", "cuda()", "set_default_device", "device()", "random"],
)
def test_cuda_without_a_gpu_is_a_clear_error(make):
    with pytest.raises(RuntimeError, match="no usable GPU"):
        make()
    assert gg.default_device() == "cpu"


def test_unknown_device_name():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        gg.zeros(2, device="tpu")


# -- losses ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss",
    [
        lambda r, d: gg.losses.mse(gg.zeros((2, 3), device=d), gg.ones((2, 3), device=d), reduction=r),
        lambda r, d: gg.losses.binary_crossentropy(gg.zeros((2, 3), device=d), gg.ones((2, 3), device=d),
                                                   reduction=r),
        lambda r, d: gg.losses.categorical_crossentropy(gg.zeros((2, 3), device=d), gg.ones((2, 3), device=d),
                                                        reduction=r),
        lambda r, d: gg.losses.sparse_categorical_crossentropy(gg.constant([0, 1], device=d),
                                                               gg.ones((2, 3), device=d), reduction=r),
        lambda r, d: gg.nn.functional.mse_loss(gg.zeros(3, device=d), gg.ones(3, device=d), reduction=r),
        lambda r, d: gg.nn.functional.cross_entropy(gg.ones((2, 3), device=d), gg.constant([0, 1], device=d),
                                                    reduction=r),
    ],
    ids=["mse", "binary_crossentropy", "categorical_crossentropy", "sparse", "mse_loss", "cross_entropy"],
)
def test_unknown_reduction(device, loss):
    with pytest.raises(ValueError, match="unknown reduction 'average'") as e:
        loss("average", device)
    assert "mean" in str(e.value) and "sum" in str(e.value)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="unknown loss 'hinge'") as e:
        gg.losses.get("hinge")
    assert "categorical_crossentropy" in str(e.value)  # lists the known ones
    assert gg.losses.get("MSE") is gg.losses.mse
    assert gg.losses.get(gg.losses.mse) is gg.losses.mse


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("label", [3, 7, -1])
def test_sparse_labels_out_of_range(device, label, from_logits):
    y_pred = gg.ones((2, 3), device=device) / 3.0
    labels = gg.constant([0, label], device=device)
    with pytest.raises(ValueError, match=f"label {label} is out of range for 3 classes"):
        # on a GPU the check's verdict stays on the device until a value is read
        gg.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=from_logits).numpy()


def test_torch_cross_entropy_label_out_of_range(device):
    with pytest.raises(ValueError, match="label 5 is out of range for 3 classes"):
        gg.nn.functional.cross_entropy(gg.zeros((2, 3), device=device), gg.constant([0, 5], device=device)).item()


def test_sparse_labels_must_be_integers(device):
    with pytest.raises(TypeError, match="integer class ids"):
        gg.losses.sparse_categorical_crossentropy(
            gg.constant([0.5, 1.0], device=device), gg.ones((2, 3), device=device)
        )


def test_sparse_labels_of_the_wrong_shape(device):
    with pytest.raises(ValueError, match=r"labels of shape \(3,\)") as e:
        gg.losses.sparse_categorical_crossentropy(
            gg.constant([0, 1, 2], device=device), gg.ones((2, 3), device=device)
        )
    assert "(2,)" in str(e.value)


# -- gradients ---------------------------------------------------------------------------------------


def test_tape_gradient_of_a_non_scalar_target_is_summed(device):
    x = gg.constant([1.0, 2.0, 3.0], device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [2.0, 4.0, 6.0])


def test_backward_of_a_non_scalar_needs_a_gradient(device):
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    y = x * x
    with pytest.raises(RuntimeError, match="only for scalar outputs") as e:
        y.backward()
    assert "(3,)" in str(e.value)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        gg.autograd.grad(y, [x])
    y.backward(gg.ones(3, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_backward_gradient_of_the_wrong_shape(device):
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    with pytest.raises(RuntimeError, match=r"\(2,\).*\(3,\)"):
        (x * x).backward(gg.ones(2, device=device))


def test_output_gradients_of_the_wrong_shape(device):
    x = gg.constant([1.0, 2.0, 3.0], device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        tape.gradient(y, x, output_gradients=gg.ones(2, device=device))


def test_watching_an_integer_tensor(device):
    with gg.GradientTape() as tape:
        with pytest.raises(TypeError, match="int64"):
            tape.watch(gg.constant([1, 2], device=device))
        with pytest.raises(TypeError, match="Tensor"):
            tape.watch([1.0, 2.0])


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_requires_grad_on_a_non_float_tensor(device, dtype):
    # RuntimeError, as torch.tensor([1], requires_grad=True) raises
    with pytest.raises(RuntimeError, match="floating point"):
        gg.tensor([1, 0], dtype=dtype, requires_grad=True, device=device)
    t = gg.tensor([1, 0], dtype=dtype, device=device)
    with pytest.raises(RuntimeError, match="floating point"):
        t.requires_grad_()


def test_a_trainable_integer_variable(device):
    with pytest.raises(TypeError, match="floating dtype"):
        gg.Variable(gg.constant([1, 2], device=device))
    v = gg.Variable(gg.constant([1, 2], device=device), trainable=False)  # allowed: a counter
    v.assign_add([1, 1])
    np.testing.assert_array_equal(v.numpy(), [2, 3])


def test_grad_of_a_function_with_a_non_scalar_output(device):
    with pytest.raises(TypeError, match="scalar output"):
        gg.grad(lambda x: x * 2)(gg.zeros(3, device=device))


def test_grad_of_an_integer_argument(device):
    with pytest.raises(TypeError, match="argument 0"):
        gg.grad(lambda x: gg.sum(x))(gg.constant([1, 2], device=device))


def test_argnums_out_of_range(device):
    with pytest.raises(TypeError, match="argnums=2"):  # as JAX
        gg.grad(lambda x, y: gg.sum(x * y), argnums=2)(gg.ones(2, device=device), gg.ones(2, device=device))


def test_unconnected_gradients_must_be_none_or_zero(device):
    x = gg.ones(2, device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x * 2.0
    with pytest.raises(ValueError, match="'none' or 'zero'"):
        tape.gradient(y, x, unconnected_gradients="nan")


def test_autograd_grad_of_an_unused_input(device):
    x = gg.tensor([1.0], requires_grad=True, device=device)
    z = gg.tensor([1.0], requires_grad=True, device=device)
    with pytest.raises(RuntimeError, match="allow_unused"):
        gg.autograd.grad(gg.sum(x * 2.0), [x, z])


def test_autograd_grad_with_respect_to_a_tensor_without_requires_grad(device):
    x = gg.tensor([1.0], requires_grad=True, device=device)
    c = gg.ones(1, device=device)
    with pytest.raises(RuntimeError, match="does not require grad"):
        gg.autograd.grad(gg.sum(x * c), [c])


def test_stop_recording_outside_the_with_block(device):
    tape = gg.GradientTape()
    with pytest.raises(ValueError, match="while the tape is recording"):
        with tape.stop_recording():
            pass


# -- Variables ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [lambda v: v.assign([5.0, 6.0]), lambda v: v.assign_add([1.0, 1.0]), lambda v: v.assign_sub([1.0, 1.0])],
    ids=["assign", "assign_add", "assign_sub"],
)
def test_assign_to_a_variable_a_live_graph_needs(device, change):
    v = gg.Variable(gg.constant([1.0, 2.0], device=device), name="kernel")
    with gg.GradientTape() as tape:
        y = gg.sum(v * v)
    change(v)
    with pytest.raises(RuntimeError, match="modified by an assign") as e:
        tape.gradient(y, v)
    assert "'kernel'" in str(e.value) and "version" in str(e.value)


def test_assign_before_backward_in_the_autograd_spelling(device):
    v = gg.Variable(gg.constant([1.0, 2.0], device=device))
    v.requires_grad_()
    y = gg.sum(gg.sin(v))
    v.assign([0.0, 0.0])
    with pytest.raises(RuntimeError, match="modified by an assign"):
        y.backward()


def test_assign_after_the_gradient_is_fine(device):
    v = gg.Variable(gg.constant([1.0, 2.0], device=device))
    with gg.GradientTape() as tape:
        y = gg.sum(v * v)
    g = tape.gradient(y, v)
    v.assign_sub(0.1 * g)
    np.testing.assert_allclose(v.numpy(), [0.8, 1.6], rtol=1e-6)
    np.testing.assert_allclose(y.numpy(), 5.0)  # computed values keep the old value


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v.assign([1.0, 2.0, 3.0]),
        lambda v: v.assign_add(np.ones((2, 1))),
        lambda v: v.assign_sub([[1.0]]),
    ],
    ids=["assign", "assign_add", "assign_sub"],
)
def test_assign_with_the_wrong_shape(device, change):
    v = gg.Variable(gg.constant([1.0, 2.0], device=device))
    with pytest.raises(ValueError, match=r"shape .* to a Variable of shape \(2,\)"):
        change(v)
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])  # unchanged
