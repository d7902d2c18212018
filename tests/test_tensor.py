"""Tensors, constructors, dtypes, devices, interop and Variables."""

import os
import subprocess
import sys

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import backend

HAS_GPU = backend.cuda_available()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def restore_default_device():
    saved = backend._default
    yield
    backend._default = saved


# -- constructors ---------------------------------------------------------------------------------------

CONSTRUCTORS = [
    ("zeros", lambda **kw: gg.zeros((2, 3), **kw), np.zeros((2, 3))),
    ("ones", lambda **kw: gg.ones(4, **kw), np.ones(4)),
    ("full", lambda **kw: gg.full((2,), 1.5, **kw), np.full((2,), 1.5)),
    ("zeros_like", lambda **kw: gg.zeros_like(gg.ones((3, 1)), **kw), np.zeros((3, 1))),
    ("ones_like", lambda **kw: gg.ones_like(np.zeros((1, 2), dtype=np.float32), **kw), np.ones((1, 2))),
    ("arange", lambda **kw: gg.arange(0.0, 2.0, 0.5, **kw), np.arange(0.0, 2.0, 0.5)),
    ("linspace", lambda **kw: gg.linspace(-10.0, 10, 10, **kw), np.linspace(-10.0, 10, 10)),
    ("eye", lambda **kw: gg.eye(3, **kw), np.eye(3)),
    ("eye rect", lambda **kw: gg.eye(2, 4, **kw), np.eye(2, 4)),
    ("one_hot", lambda **kw: gg.one_hot([2, 0], 3, **kw), np.eye(3)[[2, 0]]),
    ("constant", lambda **kw: gg.constant([[1.0, 2.0]], **kw), np.array([[1.0, 2.0]])),
    ("tensor", lambda **kw: gg.tensor(2.5, **kw), np.array(2.5)),
]


@pytest.mark.parametrize("name,make,expected", CONSTRUCTORS, ids=[c[0] for c in CONSTRUCTORS])
def test_float_constructors_default_to_float32(device, name, make, expected):
    t = make(device=device)
    assert t.dtype == np.float32
    assert t.device.startswith(device)
    assert t.shape == expected.shape
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32"])
@pytest.mark.parametrize("name,make,expected", CONSTRUCTORS, ids=[c[0] for c in CONSTRUCTORS])
def test_constructors_take_a_dtype(device, name, make, expected, dtype):
    if dtype == "int32" and name in ("full", "arange", "linspace", "constant", "tensor"):
        pytest.skip("fractional values")
    t = make(device=device, dtype=dtype)
    assert t.dtype == dtype
    np.testing.assert_allclose(t.numpy(), expected.astype(dtype), rtol=1e-3)


def test_dtype_objects_and_names(device):
    assert gg.zeros(2, dtype=np.float64, device=device).dtype == np.float64
    assert gg.zeros(2, dtype=gg.float64, device=device).dtype == np.float64
    assert gg.zeros(2, dtype=gg.int32, device=device).dtype == np.int32


def test_integer_inference(device):
    assert gg.constant([1, 2], device=device).dtype == np.int64
    assert gg.arange(5, device=device).dtype == np.int64
    assert gg.full((2,), 3, device=device).dtype == np.int64
    assert gg.constant([True, False], device=device).dtype == np.bool_
    np.testing.assert_array_equal(gg.arange(5, device=device).numpy(), np.arange(5))
    np.testing.assert_array_equal(gg.arange(1, 7, 2, device=device).numpy(), [1, 3, 5])


def test_python_floats_are_float32_numpy_dtypes_are_kept(device):
    assert gg.constant(1.5, device=device).dtype == np.float32
    assert gg.constant([1.0, 2.0], device=device).dtype == np.float32
    assert gg.constant(np.array([1.0, 2.0])).dtype == np.float64
    assert gg.constant(np.array([1.0], dtype=np.float16)).dtype == np.float16
    assert gg.constant(np.float64(2.0)).dtype == np.float64
    assert gg.tensor(np.zeros(2, dtype=np.float32), dtype="float64").dtype == np.float64


def test_float64_is_kept_through_ops(device):
    x = gg.constant([1.0, 2.0], dtype="float64", device=device)
    for y in (x + 1.0, x * 2, 3.0 / x, gg.exp(x), gg.sigmoid(x), gg.softmax(x), gg.sum(x), x @ x, x**2.5):
        assert y.dtype == np.float64


def test_float32_is_kept_with_python_numbers(device):
    x = gg.constant([1.0, 2.0], device=device)
    for y in (x + 1.0, 2 * x, 3.0 / x, x**0.5, 2.0**x, gg.maximum(x, 0.0), gg.where(x > 1, x, 0.0)):
        assert y.dtype == np.float32


def test_like_constructors_keep_dtype_and_device(device):
    x = gg.constant(np.ones((2, 2)), device=device)  # float64
    for t in (gg.zeros_like(x), gg.ones_like(x)):
        assert t.dtype == np.float64 and t.shape == (2, 2) and t.device == x.device
    assert gg.zeros_like(gg.constant([1, 2], device=device)).dtype == np.int64
    assert gg.ones_like(x, dtype="float32").dtype == np.float32


def test_one_hot(device):
    t = gg.one_hot(gg.constant([[0, 2], [1, 1]], device=device), 3)
    assert t.shape == (2, 2, 3)
    np.testing.assert_array_equal(t.numpy()[0, 1], [0, 0, 1])
    # an index outside [0, depth) gives a row of zeros (as TensorFlow)
    np.testing.assert_array_equal(gg.one_hot([3, -1], 3, device=device).numpy(), np.zeros((2, 3)))


def test_one_hot_needs_integers(device):
    with pytest.raises(TypeError, match="integers"):
        gg.one_hot(gg.constant([0.0, 1.0], device=device), 2)


# -- integer tensors ------------------------------------------------------------------------------------


def test_integer_tensors_flow_through_ops(device):
    i = gg.constant([1, 2, 3], device=device)
    j = gg.constant([3, 2, 1], device=device)
    assert (i + j).dtype == np.int64
    np.testing.assert_array_equal((i + j).numpy(), [4, 4, 4])
    np.testing.assert_array_equal((i * j).numpy(), [3, 4, 3])
    assert (i < j).dtype == np.bool_
    np.testing.assert_array_equal((i < j).numpy(), [True, False, False])
    np.testing.assert_array_equal((i == j).numpy(), [False, True, False])
    np.testing.assert_array_equal((i != j).numpy(), [True, False, True])
    np.testing.assert_array_equal((i >= 2).numpy(), [False, True, True])
    assert gg.sum(i).item() == 6 and gg.max(i).item() == 3
    np.testing.assert_array_equal(i[1:].numpy(), [2, 3])


def test_comparisons_of_floats_give_bool(device):
    x = gg.constant([1.0, 2.0], device=device)
    for c in (x < 1.5, x <= 1.0, x > 0.0, x >= 2.0, x == 2.0, x != 2.0, gg.less(x, x), gg.equal(x, 1.0)):
        assert c.dtype == np.bool_


def test_integer_tensors_are_never_differentiated(device):
    i = gg.constant([1, 2, 3], device=device)
    w = gg.constant([0.5, 0.5, 0.5], device=device)
    with gg.GradientTape() as tape:
        tape.watch(w)
        k = i * 2 + i  # integer arithmetic inside the tape
        y = gg.sum(w * k)
        mask = w > 0.1
    dw, di, dk = tape.gradient(y, [w, i, k])
    np.testing.assert_array_equal(dw.numpy(), [3.0, 6.0, 9.0])
    assert dw.dtype == np.float32  # not promoted by the int64 operand
    assert di is None and dk is None
    assert mask.dtype == np.bool_ and not mask.requires_grad


def test_gradient_dtype_follows_the_source_when_an_op_promotes(device):
    w = gg.constant([1.0, 2.0], device=device)
    d = gg.constant([3.0, 4.0], dtype="float64", device=device)
    with gg.GradientTape() as tape:
        tape.watch([w, d])
        y = gg.sum(w * d) + gg.sum(gg.concat([w, d]) ** 2)
    assert y.dtype == np.float64
    gw, gd = tape.gradient(y, [w, d])
    assert gw.dtype == np.float32 and gd.dtype == np.float64
    np.testing.assert_array_equal(gw.numpy(), [3.0 + 2.0, 4.0 + 4.0])
    np.testing.assert_array_equal(gd.numpy(), [1.0 + 6.0, 2.0 + 8.0])


def test_astype_is_differentiable(device):
    x = gg.constant([1.0, 2.0], device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(x.astype("float64") ** 2)
    g = tape.gradient(y, x)
    assert y.dtype == np.float64 and g.dtype == np.float32
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])


# -- conversions and interop -------------------------------------------------------------------------


def test_attributes(device):
    t = gg.constant(np.arange(6.0).reshape(2, 3), device=device)
    assert (t.shape, t.ndim, t.size, len(t)) == ((2, 3), 2, 6, 2)
    assert t.T.shape == (3, 2)
    np.testing.assert_array_equal(t.T.numpy(), np.arange(6.0).reshape(2, 3).T)
    assert gg.constant(3.5, device=device).item() == 3.5
    assert isinstance(gg.constant(3, device=device).item(), int)
    assert float(gg.constant(2.0, device=device)) == 2.0
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    with pytest.raises(TypeError, match="0-d"):
        len(gg.constant(1.0, device=device))


def test_numpy_is_a_host_array(device):
    t = gg.constant([1.0, 2.0], device=device)
    n = t.numpy()
    assert type(n) is np.ndarray and n.dtype == np.float32
    np.testing.assert_array_equal(n, [1.0, 2.0])


def test_numpy_asarray():
    t = gg.constant([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert type(a) is np.ndarray and a.dtype == np.float32
    np.testing.assert_array_equal(a, [[1.0, 2.0], [3.0, 4.0]])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.array(t).shape == (2, 2)


def test_numpy_functions_and_operators_with_tensors():
    t = gg.constant([1.0, 2.0])
    r = np.array([10.0, 20.0]) * t  # NumPy defers to the tensor
    assert isinstance(r, gg.Tensor)
    np.testing.assert_array_equal(r.numpy(), [10.0, 40.0])
    assert np.sum(np.asarray(t)) == 3.0


def test_dlpack_to_numpy_without_a_copy():
    t = gg.constant([1.0, 2.0, 3.0])
    a = np.from_dlpack(t)
    np.testing.assert_array_equal(a, [1.0, 2.0, 3.0])
    assert np.shares_memory(a, t.numpy())
    assert t.__dlpack_device__()[0] == 1  # kDLCPU


def test_dlpack_from_numpy_without_a_copy():
    a = np.arange(6.0).reshape(2, 3)
    t = gg.from_dlpack(a)
    assert isinstance(t, gg.Tensor) and t.dtype == np.float64 and t.shape == (2, 3) and t.device == "cpu"
    assert np.shares_memory(t.numpy(), a)
    back = np.from_dlpack(t)
    np.testing.assert_array_equal(back, a)
    assert np.shares_memory(back, a)


class DLPackOnly:
    """An array from some other library: nothing but the DLPack protocol."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_dlpack_from_any_producer():
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = gg.from_dlpack(DLPackOnly(a))
    assert t.dtype == np.float32 and np.shares_memory(t.numpy(), a)
    t2 = gg.constant(DLPackOnly(a))
    np.testing.assert_array_equal(t2.numpy(), a)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA device")
def test_dlpack_with_cupy_and_implicit_conversion():
    cp = backend.cupy()
    t = gg.constant([1.0, 2.0], device="cuda")
    c = cp.from_dlpack(t)
    assert isinstance(c, cp.ndarray)
    back = gg.from_dlpack(c)
    assert back.device.startswith("cuda")
    with pytest.raises(TypeError, match=r"\.numpy\(\)"):
        np.asarray(t)


def test_to_and_cpu(device):
    t = gg.constant([1.0, 2.0], device=device)
    c = t.to("cpu")
    assert c.device == "cpu"
    np.testing.assert_array_equal(c.numpy(), [1.0, 2.0])
    assert t.cpu().device == "cpu"
    assert t.to(dtype="float64").dtype == np.float64
    assert t.to(device).device == t.device


def test_to_cpu_keeps_the_gradient(device):
    x = gg.constant([1.0, 2.0], device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(x.to("cpu") ** 2)
    g = tape.gradient(y, x)
    assert g.device == x.device
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA device")
def test_moves_between_host_and_gpu_are_differentiable():
    x = gg.constant([1.0, 2.0], device="cpu")
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(x.cuda() ** 3).cpu()
    g = tape.gradient(y, x)
    assert g.device == "cpu"
    np.testing.assert_array_equal(g.numpy(), [3.0, 12.0])


# -- random ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("draw", [
    lambda d, **kw: gg.random.normal([3, 2], device=d, **kw),
    lambda d, **kw: gg.random.normal((4,), mean=5.0, stddev=0.1, device=d, **kw),
    lambda d, **kw: gg.random.uniform([3], device=d, **kw),
    lambda d, **kw: gg.random.uniform([2, 2], minval=-3.0, maxval=-2.0, device=d, **kw),
], ids=["normal", "normal(mean, stddev)", "uniform", "uniform(min, max)"])
def test_random_is_reproducible_with_a_seed(device, draw):
    a = draw(device, seed=7)
    b = draw(device, seed=7)
    c = draw(device, seed=8)
    assert a.dtype == np.float32 and a.device.startswith(device)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())
    gg.random.seed(123)
    d1, d2 = draw(device).numpy(), draw(device).numpy()
    gg.random.seed(123)
    np.testing.assert_array_equal(draw(device).numpy(), d1)
    np.testing.assert_array_equal(draw(device).numpy(), d2)
    assert not np.array_equal(d1, d2)


def test_random_values(device):
    n = gg.random.normal([20000], mean=5.0, stddev=2.0, seed=0, device=device).numpy()
    assert abs(n.mean() - 5.0) < 0.1 and abs(n.std() - 2.0) < 0.1
    u = gg.random.uniform([20000], minval=-1.0, maxval=3.0, seed=0, device=device).numpy()
    assert u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.1
    assert gg.random.normal([2], dtype="float64", seed=0, device=device).dtype == np.float64


# -- devices --------------------------------------------------------------------------------------------


def test_device_context(device):
    with gg.device(device):
        assert gg.default_device().startswith(device)
        assert gg.zeros(2).device.startswith(device)
        assert gg.constant([1.0]).device.startswith(device)
        assert gg.random.normal([2]).device.startswith(device)
        with gg.device("cpu"):
            assert gg.ones(1).device == "cpu"
        assert gg.ones(1).device.startswith(device)


def test_set_default_device(device, restore_default_device):
    gg.set_default_device(device)
    assert gg.default_device().startswith(device)
    assert gg.zeros(3).device.startswith(device)
    assert gg.Variable(1.0).device.startswith(device)


def test_the_default_device(restore_default_device):
    expected = "cuda:0" if HAS_GPU and not os.environ.get("GPUGRAD_DEVICE") else None
    if expected:
        assert gg.default_device() == expected
    assert gg.cuda.is_available() == HAS_GPU
    assert gg.cuda.device_count() == (backend.cuda_device_count() if HAS_GPU else 0)


def run_python(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=full, timeout=60
    )


def test_gpugrad_device_env_var_cpu():
    code = "import gpugrad as gg; print(gg.default_device(), gg.zeros(1).device)"
    r = run_python(code, GPUGRAD_DEVICE="cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cpu", "cpu"]


@pytest.mark.skipif(HAS_GPU, reason="a GPU is present")
def test_gpugrad_device_env_var_cuda_without_a_gpu():
    r = run_python("import gpugrad as gg; gg.zeros(1)", GPUGRAD_DEVICE="cuda")
    assert r.returncode != 0
    assert "RuntimeError" in r.stderr and "no usable GPU" in r.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA device")
def test_gpugrad_device_env_var_cuda():
    r = run_python("import gpugrad as gg; print(gg.default_device())", GPUGRAD_DEVICE="cuda")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("cuda:")


# -- Variables ------------------------------------------------------------------------------------------


def test_variable_basics(device):
    v = gg.Variable(gg.constant([1.0, 2.0], device=device), name="w")
    assert isinstance(v, gg.Tensor) and v.trainable and v.name == "w"
    assert v.dtype == np.float32 and v.device.startswith(device)
    assert "w" in repr(v)
    assert gg.Variable(3.0).dtype == np.float32
    assert gg.Variable(np.zeros(2)).dtype == np.float64
    assert not gg.Variable(1.0, trainable=False).trainable


def test_variable_assign(device):
    v = gg.Variable(gg.constant([1.0, 2.0], device=device))
    before = v * 1.0
    assert v.assign([5.0, 6.0]) is v
    np.testing.assert_array_equal(v.numpy(), [5.0, 6.0])
    v.assign_add(gg.constant([1.0, 1.0], device=device))
    np.testing.assert_array_equal(v.numpy(), [6.0, 7.0])
    v.assign_sub(np.array([0.5, 0.5]))
    np.testing.assert_array_equal(v.numpy(), [5.5, 6.5])
    v.assign(gg.constant([0.0, 0.0], dtype="float64", device=device))
    assert v.dtype == np.float32  # the Variable keeps its dtype
    np.testing.assert_array_equal(before.numpy(), [1.0, 2.0])  # values computed earlier are kept


def test_variable_numpy_is_a_copy(device):
    v = gg.Variable(gg.constant([1.0, 2.0], device=device))
    n = v.numpy()
    n[0] = 100.0
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


def test_a_variable_does_not_share_the_initial_array():
    a = np.array([1.0, 2.0])
    v = gg.Variable(a)
    a[0] = 100.0
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


def test_variables_in_ops(device):
    v = gg.Variable(gg.constant([[1.0, 2.0]], device=device))
    assert isinstance(v @ v.T, gg.Tensor) and not isinstance(v @ v.T, gg.Variable)
    assert (v @ v.T).item() == 5.0
    assert gg.sum(v).item() == 3.0
    v.assign_add([[1.0, 1.0]])
    assert (v @ v.T).item() == 13.0
