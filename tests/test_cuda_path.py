"""The CuPy path's own behaviour: dtypes, launches and limits that only a CUDA device (or the simulated
one, ``GPUGRAD_SIMULATE_CUDA=1``) shows. Each test here failed on the simulated device before the fix
it checks."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from conftest import HAS_GPU

import gpugrad as gg
from gpugrad import backend
from gpugrad import kernels as K

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA device")]


@pytest.mark.parametrize("dtype", ["int64", "int32", "float32"])
def test_randint_on_cuda(dtype):
    t = gg.random.randint((50,), 0, 7, dtype=dtype, seed=3, device="cuda")
    assert t.dtype == np.dtype(dtype) and t.device.startswith("cuda")
    v = t.numpy()
    assert v.min() >= 0 and v.max() < 7


@pytest.mark.parametrize("fn", ["normal", "uniform"])
def test_float16_draws_on_cuda_as_on_the_cpu(fn):
    for device in ("cpu", "cuda"):
        t = getattr(gg.random, fn)((8,), dtype="float16", seed=1, device=device)
        assert t.dtype == np.float16


@pytest.mark.parametrize(
    "module, op, params",
    [
        ("activation", "SigmoidGrad", {}),
        ("activation", "TanhGrad", {}),
        ("activation", "ReLUGrad", {}),
        ("softmax", "SoftmaxGrad", {"axis": -1}),
        ("softmax", "LogSoftmaxGrad", {"axis": -1}),
    ],
)
def test_kernel_op_dtype_follows_every_input(module, op, params):
    """A float32 output with a float64 upstream gradient: the same result dtype on both devices."""
    cls = getattr(importlib.import_module(f"gpugrad.ops.{module}"), op)
    dtypes = {}
    for device in ("cpu", "cuda"):
        y = gg.constant(np.linspace(0.1, 0.9, 24, dtype=np.float32).reshape(4, 6), device=device)
        gy = gg.constant(np.ones((4, 6)), dtype="float64", device=device)
        dtypes[device] = cls.apply(y, gy, **params).dtype
    assert dtypes["cuda"] == dtypes["cpu"]


@pytest.mark.parametrize("cols", [12221, 12288])
def test_softmax_rows_just_under_48k_of_shared_memory(cols):
    """A row of 12,221-12,288 float32 columns needs under 48 KB of dynamic shared memory but over 48 KB
    with the kernel's static shared memory: the opt-in limit must be raised for it."""
    rows = 132
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    cp = backend.cupy()
    plan = K.row_plan(rows, cols, 4, elementwise=True)
    assert plan.layout == "smem" and plan.smem <= 48 * 1024
    y = K.softmax_fwd(cp.asarray(x)).get()
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-9)


def test_dropout_draws_float32_uniforms_for_float32_inputs(monkeypatch):
    cp = backend.cupy()
    seen = []
    orig = cp.random.RandomState.random_sample

    def spy(self, size=None, dtype=float):
        seen.append(np.dtype(dtype))
        return orig(self, size, dtype)

    monkeypatch.setattr(cp.random.RandomState, "random_sample", spy)
    layer = gg.nn.Dropout(0.5, seed=1)
    x = gg.ones((16, 32), device="cuda")
    y = layer(x, training=True)
    assert y.dtype == np.float32
    assert seen == [np.dtype(np.float32)]
