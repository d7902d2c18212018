"""gg.distributed: jobs of 2 and 3 processes started with mpiexec (tests/mpi_job.py), compared with
one process; and the world of one that needs no MPI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import mpi_job as job
import numpy as np
import pytest

import gpugrad as gg
from gpugrad import distributed as dist
from gpugrad.distributed import _world, launch

ROOT = Path(__file__).resolve().parent.parent
JOB = Path(__file__).with_name("mpi_job.py")
TIMEOUT = 120  # seconds for one job, start to end: a hang fails the test instead of the run

MPIEXEC = launch.find_mpiexec()
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec beside this Python or on PATH")


def run_job(n: int, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    """``mpiexec -n n python tests/mpi_job.py args...``, killed (the whole process group) on timeout."""
    cmd = launch.mpiexec_command(n, [sys.executable, str(JOB), *args], MPIEXEC)
    env = launch.environment()
    env.pop("GPUGRAD_DIST_CHECK", None)
    env.update(extra_env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"  # several ranks share few cores
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {' '.join(args)} did not finish in {TIMEOUT} s\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(scope="module", params=[2, 3], ids=["n2", "n3"])
def suite(request, tmp_path_factory):
    """The suite job's per-rank results (a list of dicts) and its output."""
    if MPIEXEC is None:
        pytest.skip("no mpiexec beside this Python or on PATH")
    n = request.param
    outdir = tmp_path_factory.mktemp(f"mpi{n}")
    # 3 ranks also compare the gradient layout at every optimizer step (the strictest checks)
    done = run_job(n, "suite", str(outdir), **({"GPUGRAD_DIST_CHECK": "2"} if n == 3 else {}))
    assert done.returncode == 0, f"the job failed:\n{done.stdout}\n{done.stderr}"
    ranks = []
    for r in range(n):
        with np.load(outdir / f"rank{r}.npz") as f:
            ranks.append({k: f[k] for k in f.files})
    return n, ranks, done


def test_world(suite):
    n, ranks, _ = suite
    assert [int(d["rank"]) for d in ranks] == list(range(n))
    assert all(int(d["world"]) == n for d in ranks)
    assert sorted(int(d["local_rank"]) for d in ranks) == list(range(n))  # one machine


def test_all_reduce(suite):
    n, ranks, _ = suite
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    total = sum(range(1, n + 1))
    for d in ranks:
        np.testing.assert_array_equal(d["sum"], base * total)
        assert d["sum"].dtype == np.float32
        np.testing.assert_allclose(d["mean"], base * total / n, rtol=1e-15)
        assert d["mean"].dtype == np.float64
        np.testing.assert_array_equal(d["max"], base * n)
        np.testing.assert_array_equal(d["min"], base)
        np.testing.assert_array_equal(d["int_sum"], [sum(range(n)), 10 * sum(range(n))])
        assert d["int_sum"].dtype == np.int64
        np.testing.assert_array_equal(d["half_sum"], np.full(3, 0.5 * total, np.float16))
        assert d["half_sum"].dtype == np.float16


def test_collective_in_compiled_step(suite):
    n, ranks, _ = suite
    want = [np.full(2, 2.0 * sum(r + k for r in range(n))) for k in range(3)]
    for d in ranks:
        np.testing.assert_array_equal(d["jit_sum"], want)


def test_broadcast_and_all_gather(suite):
    n, ranks, _ = suite
    gathered = np.concatenate([np.full((r + 1, 2), float(r), np.float32) for r in range(n)])
    for d in ranks:
        np.testing.assert_array_equal(d["bcast"], np.full((2, 2), float(n - 1)))
        np.testing.assert_array_equal(d["gather"], gathered)
        np.testing.assert_array_equal(d["gather0d"], np.arange(n, dtype=np.float32))


def test_broadcast_variables(suite):
    n, ranks, _ = suite
    for d in ranks:
        assert bool(d["bv_changed"]) and not bool(d["bv_same"])
        np.testing.assert_array_equal(d["bv_v1"], np.full(3, 1.0))
        np.testing.assert_array_equal(d["bv_v2"], np.full((2, 2), 11))
        assert d["bv_v2"].dtype == np.int64


def test_broadcast_optimizer_state(suite):
    n, ranks, _ = suite
    params = [gg.Variable(np.full(3, 2.0))]  # rank 1's run: its start, two updates
    opt = gg.optimizers.Adam(0.1)
    for _ in range(2):
        opt.minimize(lambda: gg.sum(gg.square(params[0])), params)
    want = np.concatenate([np.asarray(a).ravel() for a in opt.variables()])
    for d in ranks:
        assert int(d["state_iterations"]) == 2
        np.testing.assert_allclose(d["state_slots"], want, rtol=1e-6)


def test_mismatched_calls_raise_on_every_rank(suite):
    n, ranks, _ = suite
    for d in ranks:
        err = str(d["err_shape"])
        assert err.startswith("ValueError: all_reduce") and "shape (1,)" in err and "shape (2,)" in err
        assert "rank 1" in err
        err = str(d["err_call"])
        assert "broadcast(root=0)" in err and "all_reduce(op='sum')" in err
        assert "first dimension excepted" in str(d["err_gather"])
        assert float(d["after_errors"]) == n  # the job goes on after the errors


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_distributed_optimizer_equals_full_batch(suite, kind):
    n, ranks, _ = suite
    x, y = job.opt_data()
    # u is in the loss on rank 0 always and on the others at even steps: on average cu = used / n
    cu = lambda step: sum(job.u_used(r, step) for r in range(n)) / n  # noqa: E731
    want = job.train_opt(x, y, job.OPT_STEPS, job.opt_init(), job.make_optimizer(kind), cu)
    for d in ranks:
        np.testing.assert_allclose(d[f"opt_{kind}"], want, rtol=1e-5, atol=1e-7)
        assert int(d[f"opt_{kind}_iterations"]) == job.OPT_STEPS


def test_first_update_without_broadcast_is_replaced_by_one(suite):
    n, ranks, _ = suite
    x, y = job.opt_data()
    want = job.train_opt(x, y, 3, job.opt_init(), gg.optimizers.SGD(), first=1)  # step 0 made them equal
    for d in ranks:
        np.testing.assert_allclose(d["skip_weights"], want, rtol=1e-5, atol=1e-7)
        assert int(d["skip_iterations"]) == 2
    assert [bool(d["skip_warned"]) for d in ranks] == [True] + [False] * (n - 1)


def test_pytree_pairs(suite):
    n, ranks, _ = suite
    # rank r's row x = (r+1)·[1, 1]; at w = 1, b = 0 the loss sum((x @ w + b)²) has the gradients
    # 2·outer(x, x @ w) for w and 2·(x @ w) for b: averaged over the ranks, one SGD step of 0.1
    w = np.ones((2, 2))
    gw = sum(2 * np.outer(np.full(2, r + 1.0), np.full(2, r + 1.0) @ w) for r in range(n)) / n
    gb = sum(2 * (np.full(2, r + 1.0) @ w) for r in range(n)) / n
    for d in ranks:
        np.testing.assert_allclose(d["tree_w"], w - 0.1 * gw, rtol=1e-12)
        np.testing.assert_allclose(d["tree_b"], -0.1 * gb, rtol=1e-12)


def test_pytorch_style_step(suite):
    n, ranks, _ = suite
    x, y = job.opt_data()
    want = job.torch_run(x, y, job.opt_init(), 4, first=1)
    for d in ranks:
        np.testing.assert_allclose(d["torch_style"], want, rtol=1e-5, atol=1e-7)


def test_fit_equals_one_process(suite):
    n, ranks, _ = suite
    gg.random.seed(job.FIT_SEED)
    history, weights = job.run_fit(job.fit_model(seed=0), verbose=0)
    want = np.concatenate([a.ravel() for a in weights])
    for d in ranks:
        np.testing.assert_allclose(d["fit_weights"], want, rtol=1e-5, atol=1e-6)
        for k in ("loss", "mae"):
            np.testing.assert_allclose(d[f"fit_{k}"], history[k], rtol=1e-5)


def test_compiled_steps(suite):
    n, ranks, _ = suite
    gg.random.seed(job.FIT_SEED)
    history, weights = job.run_fit(job.fit_model(seed=0), verbose=0)
    x, y = job.opt_data()
    want = job.train_opt(x, y, 4, job.opt_init(), gg.optimizers.SGD(), first=1)
    for d in ranks:
        np.testing.assert_allclose(d["jit_fit_weights"], np.concatenate([a.ravel() for a in weights]),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(d["jit_fit_loss"], history["loss"], rtol=1e-5)
        assert "broadcast_variables(variables) first" in str(d["err_jit"])
        np.testing.assert_allclose(d["jit_opt"], want, rtol=1e-5, atol=1e-7)
        assert int(d["jit_traces"]) <= 2  # the refused call, then one trace replayed twice


def test_fit_prints_from_rank_0_only(suite):
    _, _, done = suite
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("Epoch ")]
    assert [ln.split(" - ")[0] for ln in lines] == [f"Epoch {e + 1}/{job.FIT_EPOCHS}" for e in range(job.FIT_EPOCHS)]


@needs_mpiexec
def test_failing_rank_aborts_the_job():
    done = run_job(3, "fail")
    assert done.returncode != 0
    assert "unreachable" not in done.stdout
    assert "RuntimeError: deliberate failure" in done.stderr
    assert "rank 2 of 3 failed" in done.stderr


@needs_mpiexec
def test_rank_ending_early_aborts_the_job():
    done = run_job(2, "exit", GPUGRAD_DIST_EXIT_TIMEOUT="1")
    assert done.returncode != 0
    assert "unreachable" not in done.stdout
    assert "rank 1 of 2 reached the end of its program, but not every rank did within 1 s" in done.stderr


# -- a world of one: no launcher, no MPI ------------------------------------------------------------


def test_world_of_one():
    dist.init()
    assert dist.is_initialized() and (dist.rank(), dist.world_size(), dist.local_rank()) == (0, 1, 0)
    x = gg.constant([[1.0, 2.0]])
    for op in ("sum", "mean", "max", "min"):
        out = dist.all_reduce(x, op=op)
        np.testing.assert_array_equal(out.numpy(), x.numpy())
        assert out is not x
    np.testing.assert_array_equal(dist.broadcast(x).numpy(), x.numpy())
    np.testing.assert_array_equal(dist.all_gather(gg.constant(3.0)).numpy(), [3.0])
    dist.barrier()
    assert dist.broadcast_variables([gg.Variable([1.0])]) is False


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: dist.all_reduce(gg.ones(2), op="prod"), ValueError, "op must be one of"),
        (lambda: dist.all_reduce(gg.constant([True])), TypeError, "bool"),
        (lambda: dist.all_reduce(gg.constant([1, 2]), op="mean"), TypeError, "floating"),
        (lambda: dist.all_reduce(None), TypeError, "NoneType"),
        (lambda: dist.broadcast(gg.ones(2), root=1), ValueError, "root must be a rank"),
        (lambda: dist.broadcast_variables([gg.ones(2)]), TypeError, "Variables"),
        (lambda: dist.DistributedOptimizer(), TypeError, "optimizer to wrap"),
        (lambda: dist.DistributedOptimizer("nope"), ValueError, "unknown optimizer"),
    ],
)
def test_bad_calls_raise(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_collectives_inside_compiled_steps_world_of_one():
    step = gg.jit(lambda t: dist.all_reduce(t, op="mean") + dist.broadcast(t) + dist.all_gather(t))
    for k in range(3):
        np.testing.assert_array_equal(step(gg.constant([1.0 + k])).numpy(), [3.0 + 3 * k])
    v = gg.Variable([1.0])
    with pytest.raises(RuntimeError, match="inside a compiled step"):
        gg.jit(lambda: dist.broadcast_variables([v]))()


def test_distributed_optimizer_wraps_and_shares_state():
    adam = gg.optimizers.Adam(0.1)
    opt = dist.DistributedOptimizer(adam)
    assert isinstance(opt, gg.optimizers.Adam) and isinstance(opt, dist.DistributedOptimizer)
    assert dist.DistributedOptimizer(opt) is opt
    v = gg.Variable([1.0, 2.0])
    plain = gg.Variable([1.0, 2.0])
    ref = gg.optimizers.Adam(0.1)
    for _ in range(3):
        opt.minimize(lambda: gg.sum(gg.square(v)), [v])
        ref.minimize(lambda: gg.sum(gg.square(plain)), [plain])
    np.testing.assert_array_equal(v.numpy(), plain.numpy())
    assert adam.iterations == opt.iterations == 3
    adam.learning_rate = 0.5
    assert opt.learning_rate == 0.5
    model = gg.nn.Sequential([gg.nn.Dense(1)])
    model.compile(optimizer=dist.DistributedOptimizer("sgd"), loss="mse")
    assert type(model.optimizer).__name__ == "DistributedSGD"
    assert not hasattr(opt, "step")  # Keras style: no PyTorch step() appears


def test_distributed_optimizer_pytorch_style_world_of_one():
    w = gg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    ref = gg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = dist.DistributedOptimizer(gg.optimizers.SGD([w], lr=0.1, momentum=0.9))
    plain = gg.optimizers.SGD([ref], lr=0.1, momentum=0.9)

    def closure(p):
        loss = gg.sum(p * p)
        loss.backward()
        return loss

    for _ in range(3):
        for o, p in ((opt, w), (plain, ref)):
            o.zero_grad()
            assert float(o.step(lambda p=p: closure(p))) > 0
    np.testing.assert_array_equal(w.numpy(), ref.numpy())


def test_launcher_detection_and_mismatched_mpi(monkeypatch):
    for var in _world._LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    assert not dist.launched()
    monkeypatch.setenv("PMI_SIZE", "4")
    assert dist.launched()
    with pytest.raises(RuntimeError, match="different MPI installations"):
        _world._check_launcher_size(1)
    _world._check_launcher_size(4)


def test_environment_settings(monkeypatch):
    monkeypatch.setenv("GPUGRAD_DIST_EXIT_TIMEOUT", "2.5")
    assert _world._exit_timeout() == 2.5
    monkeypatch.setenv("GPUGRAD_DIST_EXIT_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="GPUGRAD_DIST_EXIT_TIMEOUT"):
        _world._exit_timeout()
    monkeypatch.setenv("GPUGRAD_DIST_CHECK", "2")
    assert _world._check_level() == 2
    monkeypatch.setenv("GPUGRAD_DIST_CHECK", "yes")
    with pytest.raises(ValueError, match="GPUGRAD_DIST_CHECK"):
        _world._check_level()


def test_mpiexec_command(monkeypatch):
    monkeypatch.setattr(launch, "implementation", lambda exe: "openmpi")
    cmd = launch.mpiexec_command(3, ["python", "x.py"], mpiexec="/opt/mpi/bin/mpiexec")
    assert cmd[:3] == ["/opt/mpi/bin/mpiexec", "-n", "3"] and "--oversubscribe" in cmd
    assert cmd[-2:] == ["python", "x.py"]
    monkeypatch.setattr(launch, "implementation", lambda exe: "mpich")
    assert launch.mpiexec_command(2, ["a"], mpiexec="m") == ["m", "-n", "2", "a"]
    with pytest.raises(ValueError, match="positive integer"):
        launch.mpiexec_command(0, ["a"], mpiexec="m")


# -- NCCL in a world of one (needs a GPU and the NCCL library) --------------------------------------


@pytest.mark.gpu
def test_nccl_world_of_one():
    pytest.importorskip("cupy")
    from cupy.cuda import nccl

    if not getattr(nccl, "available", True):
        pytest.skip("CuPy cannot load the NCCL library")
    import cupy as cp

    from gpugrad.distributed import _nccl

    w = _world.World()
    a = cp.arange(6, dtype=cp.float32).reshape(2, 3)
    buf = a.copy()
    _nccl.all_reduce_(w, buf, "sum")
    cp.testing.assert_array_equal(buf, a)
    h = cp.arange(4, dtype=cp.float16)
    _nccl.bcast_(w, h, 0)
    cp.testing.assert_array_equal(h, cp.arange(4, dtype=cp.float16))
    out = _nccl.all_gather(w, a.copy(), [2])
    cp.testing.assert_array_equal(out, a)
    with pytest.raises(ValueError, match="move it"):
        _nccl.communicator(w, w.nccl[0] + 1)


@pytest.mark.gpu
def test_cuda_collectives_and_optimizer_world_of_one():
    x = gg.constant([[1.0, 2.0]], device="cuda")
    out = dist.all_reduce(x, op="mean")
    assert out.device == x.device
    np.testing.assert_array_equal(out.numpy(), x.numpy())
    v = gg.Variable(gg.constant([1.0, 2.0], device="cuda"))
    dist.DistributedOptimizer(gg.optimizers.SGD(0.5)).minimize(lambda: gg.sum(gg.square(v)), [v])
    np.testing.assert_allclose(v.numpy(), [0.0, 0.0])


@pytest.mark.gpu
@needs_mpiexec
def test_cuda_collectives_over_two_ranks():
    """NCCL's all-reduce and a data-parallel step on CUDA tensors, 2 ranks (the simulated device,
    or a machine with a GPU per rank)."""
    from gpugrad.testing import simulated_cuda

    if not simulated_cuda.enabled() and gg.cuda.device_count() < 2:
        pytest.skip("needs a GPU per rank (or the simulated device)")
    done = run_job(2, "cuda")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = sorted(re.findall(r"rank \d/2 sum .*? v \[[^\]]*\]", done.stdout))
    # sum over ranks of [1 + r, 2 r], the mean half of it; v = [1, 2] - 0.25 * (the mean over ranks of 2 v (1 + r))
    assert lines == [
        "rank 0/2 sum [[3.0, 2.0]] mean [[1.5, 1.0]] v [0.25, 0.5]",
        "rank 1/2 sum [[3.0, 2.0]] mean [[1.5, 1.0]] v [0.25, 0.5]",
    ], done.stdout + done.stderr


@needs_mpiexec
def test_bench_ranks_smoke(tmp_path):
    cmd = [sys.executable, "-m", "bench", "--workloads", "w2", "--ranks", "2", "--sizes", "W2=64",
           "--steps", "W2=5", "--out", str(tmp_path), "--tag", "smoke", "--timeout", str(TIMEOUT)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=2 * TIMEOUT + 30)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [ln.split() for ln in done.stdout.splitlines() if ln.strip().startswith("64 ")]
    assert [(r[1], r[-1]) for r in rows] == [("1", "ok"), ("2", "ok")]
    assert (tmp_path / "smoke.json").exists()
