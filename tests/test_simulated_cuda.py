"""The simulated CUDA device itself: its array type, counters, launch checks, memory and graph capture.

These run in the process's own simulator whatever the environment: the simulated ``cupy`` module is
used directly (``import cupy`` is not touched unless ``GPUGRAD_SIMULATE_CUDA`` is set).
"""

from __future__ import annotations

import numpy as np
import pytest

from gpugrad.testing import simulated_cuda as sc
from gpugrad.testing.simulated_cuda.host import build as B

cp = sc.cupy_module()

needs_cxx = pytest.mark.skipif(B.compiler() is None, reason="no C++ compiler")

COPY_SRC = r"""
extern "C" __global__ void scale(const float* x, float* y, float a, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i];
}
extern "C" __global__ void block_sum(const float* x, float* out, long long n) {
    extern __shared__ float buf[];
    int t = threadIdx.x;
    buf[t] = t < n ? x[t] : 0.0f;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s /= 2) {
        if (t < s) buf[t] += buf[t + s];
        __syncthreads();
    }
    if (t == 0) out[0] = buf[0];
}
extern "C" __global__ void with_static(float* out) {
    __shared__ float tile[1024];
    tile[threadIdx.x] = threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = tile[threadIdx.x];
}
"""


@pytest.fixture(scope="module")
def module():
    if B.compiler() is None:
        pytest.skip("no C++ compiler")
    return cp.RawModule(code=COPY_SRC, options=("-std=c++17",))


# ------------------------------------------------------------------------------ the array type


def test_array_is_not_numpy():
    a = cp.arange(4, dtype=cp.float32)
    assert not isinstance(a, np.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        np.array(a)
    np.testing.assert_array_equal(a.get(), [0, 1, 2, 3])
    np.testing.assert_array_equal(cp.asnumpy(a), [0, 1, 2, 3])


def test_numpy_functions_and_ufuncs_return_device_arrays():
    a = cp.arange(6, dtype=cp.float64).reshape(2, 3)
    for res in (np.exp(a), np.sum(a, axis=0), np.concatenate([a, a]), a + 1, 2 * a, a @ a.T, np.where(a > 2, a, 0)):
        assert isinstance(res, cp.ndarray)
    s = a.sum()
    assert isinstance(s, cp.ndarray) and s.ndim == 0  # reductions give 0-d arrays, not NumPy scalars
    assert isinstance(a[0, 0], cp.ndarray)
    assert float(np.max(a)) == 5.0


def test_host_arrays_are_refused_where_cupy_refuses_them():
    a = cp.ones(3)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3)
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.concatenate([a, np.ones(3)])
    b = cp.asarray(np.ones(3))  # an explicit copy is fine
    assert isinstance(b, cp.ndarray)


def test_interfaces():
    a = cp.zeros((2, 3), dtype=cp.float32)
    cai = a.__cuda_array_interface__
    assert cai["shape"] == (2, 3) and cai["typestr"] == "<f4" and cai["data"][0] == a.data.ptr
    assert a.__dlpack_device__() == (2, 0)
    assert a.device.id == 0 and cp.cuda.Device().id == 0
    assert a[1:].data.ptr == a.data.ptr + 12
    b = cp.from_dlpack(a)
    b[0, 0] = 5
    assert float(a[0, 0]) == 5.0


def test_views_share_memory_and_copies_do_not():
    a = cp.arange(6, dtype=cp.float32)
    v = a.reshape(2, 3)[:, 1]
    v[...] = -1
    np.testing.assert_array_equal(a.get(), [0, -1, 2, 3, -1, 5])
    c = a.copy()
    c[0] = 9
    assert float(a[0]) == 0.0


def test_device_attributes_of_an_h100():
    rt = cp.cuda.runtime
    assert rt.getDeviceCount() == 1
    assert rt.deviceGetAttribute(rt.cudaDevAttrMultiProcessorCount, 0) == 132
    assert rt.deviceGetAttribute(rt.cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) == 227 * 1024
    assert rt.deviceGetAttribute(rt.cudaDevAttrL2CacheSize, 0) == 50 * 1024 * 1024
    props = rt.getDeviceProperties(0)
    assert props["totalGlobalMem"] == 80 * 1024**3 and (props["major"], props["minor"]) == (9, 0)


def test_random_dtype_rules():
    rs = cp.random.RandomState(1)
    assert rs.normal(size=3, dtype=cp.float32).dtype == np.float32
    assert rs.uniform(size=3).dtype == np.float64
    with pytest.raises(TypeError):
        rs.normal(size=3, dtype=np.float16)
    with pytest.raises(ValueError):
        rs.randint(0, 5, size=3, dtype=None)
    r = rs.randint(0, 5, size=100, dtype=np.int32)
    assert r.dtype == np.int32 and 0 <= int(r.min()) and int(r.max()) < 5


# ------------------------------------------------------------------------------ counters


def test_counters_exact_on_small_cases():
    x = cp.ones((4, 8), dtype=cp.float32)  # 128 bytes
    with sc.counters() as c:
        y = x * 2  # one launch: reads 128, writes 128
        s = y.sum()  # one launch: reads 128, writes 4
        v = float(s)  # one sync
        h = cp.asarray(np.zeros(3))  # one host-to-device copy
        _ = x.reshape(32)  # a view: nothing
    assert v == 64.0
    assert c.launches == 2
    assert dict(c.by_kernel) == {"cupy_multiply": 1, "cupy_sum": 1}
    assert (c.bytes_read, c.bytes_written) == (256, 132)
    assert (c.syncs, c.h2d, c.allocations, c.graph_launches) == (1, 1, 3, 0)
    assert isinstance(h, cp.ndarray)


def test_counters_count_reads_to_the_host():
    a = cp.arange(3)
    with sc.counters() as c:
        a.get()
        a[0].item()
        bool(a[1] > 0)
        int(a[2])
        cp.asnumpy(a)
    assert c.syncs == 5


@needs_cxx
def test_raw_kernel_runs_and_counts(module):
    k = module.get_function("scale")
    x = cp.arange(1000, dtype=cp.float32)
    y = cp.empty_like(x)
    with sc.counters() as c:
        k((4,), (256,), (x, y, np.float32(3.0), np.int64(1000)))
    np.testing.assert_array_equal(y.get(), 3 * np.arange(1000, dtype=np.float32))
    assert c.launches == 1 and c.by_kernel == {"scale": 1}
    assert (c.bytes_read, c.bytes_written) == (4000, 4000)  # const float* read, float* written


@needs_cxx
def test_dynamic_shared_memory(module):
    k = module.get_function("block_sum")
    x = cp.arange(256, dtype=cp.float32)
    out = cp.zeros(1, dtype=cp.float32)
    k((1,), (256,), (x, out, np.int64(256)), shared_mem=256 * 4)
    assert float(out[0]) == float(np.arange(256).sum())


# ------------------------------------------------------------------------------ launch checks


@needs_cxx
def test_launch_checks(module):
    k = module.get_function("scale")
    x = cp.zeros(4, dtype=cp.float32)
    y = cp.zeros(4, dtype=cp.float32)
    err = cp.cuda.driver.CUDADriverError
    with pytest.raises(err, match="1025 threads"):
        k((1,), (1025,), (x, y, np.float32(1), np.int64(4)))
    with pytest.raises(err, match="positive"):
        k((0,), (32,), (x, y, np.float32(1), np.int64(4)))
    with pytest.raises(err, match="takes 4 arguments"):
        k((1,), (32,), (x, y, np.float32(1)))
    with pytest.raises(err, match="4-byte float32; the kernel takes 8"):
        k((1,), (32,), (x, y, np.float32(1), np.float32(4)))
    with pytest.raises(err, match="takes a pointer"):
        k((1,), (32,), (x, np.int64(0), np.float32(1), np.int64(4)))
    with pytest.raises(TypeError, match="Unsupported type"):
        k((1,), (32,), (x, np.zeros(4, np.float32), np.float32(1), np.int64(4)))
    with pytest.raises(err, match="NOT_FOUND"):
        module.get_function("no_such_kernel")


@needs_cxx
def test_shared_memory_limits_count_static_memory(module):
    k = module.get_function("with_static")
    out = cp.zeros(1024, dtype=cp.float32)
    if k.shared_size_bytes == 0:
        pytest.skip("NVRTC is not available to report static shared memory")
    assert k.shared_size_bytes == 4096
    assert k.max_dynamic_shared_size_bytes == 48 * 1024 - 4096
    k((1,), (1024,), (out,), shared_mem=48 * 1024 - 4096)  # static + dynamic = 48 KB: fine
    err = cp.cuda.driver.CUDADriverError
    with pytest.raises(err, match="shared memory"):
        k((1,), (1024,), (out,), shared_mem=48 * 1024 - 4095)
    k.max_dynamic_shared_size_bytes = 227 * 1024 - 4096
    k((1,), (1024,), (out,), shared_mem=227 * 1024 - 4096)
    with pytest.raises(err, match="INVALID_VALUE"):
        k.max_dynamic_shared_size_bytes = 227 * 1024 - 4095
    np.testing.assert_array_equal(out.get(), np.arange(1024, dtype=np.float32))


@needs_cxx
def test_compile_errors_are_cupy_compile_exceptions():
    mod = cp.RawModule(code='extern "C" __global__ void broken(float* x) { x[0] = undefined_name; }')
    with pytest.raises(cp.cuda.compiler.CompileException):
        mod.get_function("broken")


# ------------------------------------------------------------------------------ memory


def test_out_of_memory():
    with pytest.raises(cp.cuda.memory.OutOfMemoryError):
        cp.empty(81 * 1024**3, dtype=cp.uint8)
    pool = cp.get_default_memory_pool()
    before = pool.used_bytes()
    a = cp.empty(1 << 20, dtype=cp.uint8)
    assert pool.used_bytes() == before + (1 << 20)
    del a
    assert pool.used_bytes() == before


def test_memory_pool_limit():
    pool = cp.get_default_memory_pool()
    pool.set_limit(size=pool.used_bytes() + 1000)
    try:
        with pytest.raises(cp.cuda.memory.OutOfMemoryError):
            cp.zeros(2000, dtype=cp.uint8)
    finally:
        pool.set_limit(size=0)


# ------------------------------------------------------------------------------ CUDA graphs


def test_graph_capture_records_and_replays():
    x = cp.ones(4, dtype=cp.float32)
    acc = cp.zeros(4, dtype=cp.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        y = x * 2
        acc += y
        graph = stream.end_capture()
    assert float(acc.sum()) == 0.0  # captured work does not run
    with sc.counters() as c:
        graph.launch(stream)
        graph.launch(stream)
    np.testing.assert_array_equal(acc.get(), [4, 4, 4, 4])
    assert c.graph_launches == 2 and c.launches == 0
    assert c.bytes_written == 2 * (16 + 16)
    x[...] = 5  # values are read at each launch
    graph.launch(stream)
    np.testing.assert_array_equal(acc.get(), [14, 14, 14, 14])


def test_copies_casts_gathers_and_fills_made_in_a_capture_run_again_at_each_launch():
    x = cp.arange(4, dtype=cp.float32)
    idx = cp.asarray(np.array([3, 0]))
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        cast = x.astype(cp.float64)
        copied = x.copy()
        gathered = x[idx]
        acc = cp.zeros(4, dtype=cp.float32)  # a fill kernel: zero again at every launch
        acc += x
        graph = stream.end_capture()
    for k in range(1, 4):
        x[...] = k
        graph.launch(stream)
        np.testing.assert_array_equal(cast.get(), [k] * 4)
        np.testing.assert_array_equal(copied.get(), [k] * 4)
        np.testing.assert_array_equal(gathered.get(), [k] * 2)
        np.testing.assert_array_equal(acc.get(), [k] * 4)


@pytest.mark.parametrize("what", ["get", "item", "sync", "h2d"])
def test_capture_refuses_syncs_and_copies(what):
    x = cp.ones(4)
    stream = cp.cuda.Stream(non_blocking=True)
    err = cp.cuda.runtime.CUDARuntimeError
    with stream:
        stream.begin_capture()
        with pytest.raises(err, match="capturing"):
            if what == "get":
                x.get()
            elif what == "item":
                float(x.sum())
            elif what == "sync":
                cp.cuda.Device().synchronize()
            else:
                cp.asarray(np.ones(3))
        with pytest.raises(err, match="Invalidated"):
            stream.end_capture()


@needs_cxx
def test_capture_refuses_module_loads():
    mod = cp.RawModule(code=COPY_SRC.replace("scale", "scale_again"))
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="module load"):
            mod.get_function("scale_again")
        with pytest.raises(cp.cuda.runtime.CUDARuntimeError):
            stream.end_capture()


@needs_cxx
def test_capture_records_raw_kernels(module):
    k = module.get_function("scale")
    x = cp.arange(8, dtype=cp.float32)
    y = cp.zeros(8, dtype=cp.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        k((1,), (32,), (x, y, np.float32(2), np.int64(8)))
        graph = stream.end_capture()
    assert float(y.sum()) == 0.0
    with sc.counters() as c:
        graph.launch(stream)
    np.testing.assert_array_equal(y.get(), 2 * np.arange(8))
    assert c.graph_launches == 1 and c.bytes_read == 32 and c.bytes_written == 32


def test_dlpack_exchange_between_device_arrays():
    class Producer:  # another library's array on the (simulated) CUDA device
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kwargs):
            return self.a.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    a = cp.arange(4, dtype=cp.float32)
    b = cp.from_dlpack(Producer(a))
    b[0] = 7
    assert float(a[0]) == 7.0 and b.device.id == 0
    with pytest.raises(RuntimeError, match="CUDA device"):
        cp.from_dlpack(np.arange(3))
