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
    from gpugrad import philox

    seen = []
    orig = philox._launch

    def spy(k0, k1, ctr, out, *rest):
        seen.append(out.dtype)
        return orig(k0, k1, ctr, out, *rest)

    monkeypatch.setattr(philox, "_launch", spy)
    layer = gg.nn.Dropout(0.5, seed=1)
    x = gg.ones((16, 32), device="cuda")
    y = layer(x, training=True)
    assert y.dtype == np.float32
    assert seen == [np.dtype(np.float32)]


# ------------------------------------------------------------------------------ device-to-host reads


def _w2(batch: int = 64):
    """The W2 workload: 784 -> 256 relu -> 10, sparse softmax cross-entropy from logits, SGD."""
    rng = np.random.default_rng(0)
    params = [
        gg.Variable(gg.constant(rng.standard_normal((784, 256)).astype(np.float32) * 0.05, device="cuda")),
        gg.Variable(gg.zeros((256,), device="cuda")),
        gg.Variable(gg.constant(rng.standard_normal((256, 10)).astype(np.float32) * 0.05, device="cuda")),
        gg.Variable(gg.zeros((10,), device="cuda")),
    ]
    x = gg.constant(rng.standard_normal((batch, 784)).astype(np.float32), device="cuda")
    y = gg.constant(rng.integers(0, 10, batch), device="cuda")
    opt = gg.optimizers.SGD(0.1)

    def step():
        with gg.GradientTape() as tape:
            h = gg.relu(gg.matmul(x, params[0]) + params[1])
            z = gg.matmul(h, params[2]) + params[3]
            loss = gg.losses.sparse_categorical_crossentropy(y, z, from_logits=True)
        opt.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss

    return step


def test_eager_w2_step_reads_nothing_back():
    sim = pytest.importorskip("gpugrad.testing.simulated_cuda")
    if not sim.enabled():
        pytest.skip("counts the simulated device's reads")
    step = _w2()
    step()
    step()
    with sim.counters() as c:
        loss = step()
    assert c.syncs == 0, c
    assert c.launches > 0
    with sim.counters() as c:
        loss.numpy()
    assert c.syncs == 1  # the value, with the deferred label check's verdict


def test_a_bad_label_raises_at_the_next_read():
    z = gg.zeros((2, 3), device="cuda")
    loss = gg.losses.sparse_categorical_crossentropy(gg.constant([0, 7], device="cuda"), z, from_logits=True)
    with pytest.raises(ValueError, match="label 7 is out of range for 3 classes"):
        loss.numpy()
    gg.losses.sparse_categorical_crossentropy(gg.constant([0, -1], device="cuda"), z, from_logits=True)
    with pytest.raises(ValueError, match="label -1 is out of range"):
        gg.cuda.synchronize()
    gg.cuda.synchronize()  # reported once


def test_a_bad_label_fixed_before_the_read_still_raises():
    """The verdict is taken when the loss is computed; labels changed in place before the next read
    still raise, saying the label was out of range when it was checked."""
    z = gg.zeros((2, 3), device="cuda")
    labels = gg.constant([0, 7], device="cuda")
    loss = gg.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
    labels.data[1] = 2
    with pytest.raises(ValueError, match="a label was out of range for 3 classes .* when it was checked"):
        loss.numpy()


def test_gpu_environment_query_survives_a_missing_nvrtc():
    """The GPU check's device query reports the device even where NVRTC cannot be read (the simulated
    device has none): a missing NVRTC is reported on its own line."""
    from bench import gpu_env

    info = gpu_env.cuda_info()
    assert "error" not in info, info
    assert info["multiprocessors"] > 0 and isinstance(info["nvrtc"], str)


def test_jitted_step_is_one_graph_launch_and_no_reads():
    sim = pytest.importorskip("gpugrad.testing.simulated_cuda")
    if not sim.enabled():
        pytest.skip("counts the simulated device's launches")
    rng = np.random.default_rng(1)
    x = gg.constant(rng.standard_normal((64, 20)).astype(np.float32), device="cuda")
    labels = gg.constant(rng.integers(0, 10, 64), device="cuda")
    shapes = ((20, 32), (32,), (32, 10), (10,))
    ws = [gg.Variable(gg.constant(rng.standard_normal(s).astype(np.float32) * 0.1, device="cuda")) for s in shapes]

    @gg.jit
    def step(x, labels):
        with gg.GradientTape() as tape:
            z = gg.relu(x @ ws[0] + ws[1]) @ ws[2] + ws[3]
            loss = gg.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
        for w, g in zip(ws, tape.gradient(loss, ws)):
            w.assign_sub(0.1 * g)
        return loss

    for _ in range(3):
        step(x, labels)
    with sim.counters() as c:
        loss = step(x, labels)
    assert (c.graph_launches, c.syncs, c.h2d) == (1, 0, 0), c
    # outside the graph: the loss copied out; the same inputs again are read where they are
    assert c.by_kernel.get("cupy_setitem", 0) == 0 and c.by_kernel["cupy_copy"] == 1, c.by_kernel
    assert np.isfinite(loss.numpy())


def test_gpu_check_records_whether_the_jit_used_a_cuda_graph(tmp_path):
    import json

    from bench import gpu_steps

    record = tmp_path / "r.json"
    record.write_text(json.dumps({"steps": {}}))
    gpu_steps.step_w2_jit(gpu_steps.Writer(record, "w2_jit"), "cuda", 64, budget_s=0.05)
    data = json.loads(record.read_text())["steps"]["w2_jit"]["data"]
    assert isinstance(data["cuda_graph"]["used"], bool), data
    if not data["cuda_graph"]["used"]:
        assert data["cuda_graph"]["warnings"], data  # why it was not


def test_fit_reads_once_per_progress_update(monkeypatch):
    sim = pytest.importorskip("gpugrad.testing.simulated_cuda")
    if not sim.enabled():
        pytest.skip("counts the simulated device's reads")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 784)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    model = gg.nn.Sequential([gg.nn.Dense(256, activation="relu", input_shape=(784,)), gg.nn.Dense(10)])
    model.compile(optimizer=gg.optimizers.SGD(0.1), loss=gg.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    with sim.counters() as c:
        model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    assert c.syncs == 2  # the epoch's loss, once an epoch
    from gpugrad.nn import model as model_module

    lines = []
    fmt = model_module._format
    monkeypatch.setattr(model_module, "_format", lambda logs: lines.append(logs) or fmt(logs))
    with sim.counters() as c:
        model.fit(x, y, epochs=2, batch_size=64, verbose=1)
    assert 0 < c.syncs <= len(lines), (c.syncs, len(lines))  # one read per line shown, at most


def test_float32_subnormal_results_where_the_backends_differ():
    """CuPy compiles every kernel with ``-ftz=true``: on a GPU a float32 result below 1.18e-38 is
    flushed to 0. The CPU (and the simulated device, which runs the kernels on the CPU) keeps the
    subnormal. Exactly this differs; normal values agree."""
    x = np.array([-88.0, -80.0, 0.0], np.float32)  # sigmoid: 6.1e-39 (subnormal), 1.8e-35, 0.5
    cpu = gg.sigmoid(gg.constant(x)).numpy()
    gpu = gg.sigmoid(gg.constant(x, device="cuda")).numpy()
    assert 0 < cpu[0] < np.finfo(np.float32).tiny
    np.testing.assert_allclose(gpu[1:], cpu[1:], rtol=1e-6)
    sim = pytest.importorskip("gpugrad.testing.simulated_cuda")
    assert gpu[0] == (cpu[0] if sim.enabled() else 0.0)


def test_simulated_counts_of_the_workloads_and_kernel_ops():
    sim = pytest.importorskip("gpugrad.testing.simulated_cuda")
    if not sim.enabled():
        pytest.skip("counts on the simulated device")
    from bench import sim_counts

    eager = sim_counts.count_workload("W2", 64, "gpugrad")
    jitted = sim_counts.count_workload("W2", 64, "gpugrad-jit")
    assert eager["syncs"] == jitted["syncs"] == 0
    assert eager["graph_launches"] == 0 and jitted["graph_launches"] == 1
    assert 0 < jitted["launches"] < eager["launches"]
    assert eager["floor_bytes"] == 784 * 64 * 4 + 64 * 8 + 2 * 4 * (784 * 256 + 256 + 256 * 10 + 10) + 4
    ops = {r["what"].split()[0]: r for r in sim_counts.count_ops()}
    assert all(r["launches"] == 1 and r["syncs"] == 0 for r in ops.values()), ops
    assert "| W2 B=64 | gpugrad |" in sim_counts.table([eager])


def test_a_bad_label_raises_at_the_read_of_a_large_value_too():
    z = gg.zeros((2, 3), device="cuda")
    big = gg.ones((512, 1024), device="cuda")  # 2 MB: read after the verdicts, not packed with them
    gg.losses.sparse_categorical_crossentropy(gg.constant([0, 3], device="cuda"), z, from_logits=True)
    with pytest.raises(ValueError, match="label 3 is out of range"):
        big.numpy()
    assert big.numpy().sum() == 512 * 1024
