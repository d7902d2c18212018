"""Programs that tests/test_distributed.py runs under ``mpiexec -n N``; also the single-process
references they are compared with (imported by the tests).

    python tests/mpi_job.py suite OUTDIR   # every collective, optimizers, fit: OUTDIR/rank<r>.npz
    python tests/mpi_job.py fail           # the last rank raises while the others wait
    python tests/mpi_job.py exit           # the last rank ends early (sys.exit(0)) while the others wait
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

import gpugrad as gg
from gpugrad import distributed as dist

N_OPT, D_IN, D_HID = 12, 5, 4  # 12 samples split evenly over 1, 2, 3 or 4 ranks
OPT_STEPS = 4
FIT_N, FIT_BATCH, FIT_EPOCHS, FIT_SEED = 25, 8, 2, 7  # batches of 8, 8, 8 and 1 rows


def opt_data():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N_OPT, D_IN))
    y = np.sin(x @ rng.standard_normal((D_IN, 1)))
    return x, y


def opt_init(shift: float = 0.0):
    """Weights [w1, b1, w2, b2, u, z] (float64); ``shift`` makes a rank's start differ."""
    rng = np.random.default_rng(5)
    return [rng.standard_normal(s) * 0.5 + shift for s in ((D_IN, D_HID), (D_HID,), (D_HID, 1), (1,), (1,), (2,))]


def opt_loss(params, x, y, cu: float, step: int):
    """Mean squared error of a tanh MLP plus ``cu * 0.1 * sum(u²)``; ``u`` is left out when ``cu``
    is 0 (so some ranks have no gradient for it), and ``z`` enters at step 0 only (then no rank
    has a gradient for it: it must not move, though a momentum would move it on zero gradients)."""
    w1, b1, w2, b2, u, z = params
    pred = gg.tanh(x @ w1 + b1) @ w2 + b2
    loss = gg.mean(gg.square(pred - y))
    if cu:
        loss = loss + (0.1 * cu) * gg.sum(gg.square(u))
    if step == 0:
        loss = loss + gg.sum(gg.square(z))
    return loss


def u_used(rank: int, step: int) -> bool:
    """Whether ``rank`` puts ``u`` into its loss at ``step``: rank 0 always, others at even steps."""
    return rank == 0 or step % 2 == 0


def make_optimizer(kind: str):
    if kind == "sgd":
        return gg.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    return gg.optimizers.Adam(learning_rate=0.05)


def train_opt(x, y, steps, start, optimizer, cu=lambda step: 1.0, first: int = 0):
    """One process: updates ``first .. steps-1`` of the full batch with ``optimizer``; the final
    weights."""
    params = [gg.Variable(a) for a in start]
    for step in range(first, steps):
        optimizer.minimize(lambda s=step: opt_loss(params, x, y, cu(s), s), params)
    return np.concatenate([p.numpy().ravel() for p in params])


def torch_run(x, y, start, steps, first=0, wrap=lambda opt: opt):
    """PyTorch style: leaf tensors, ``backward``, ``step`` of SGD with momentum (``wrap`` makes it
    distributed); steps ``first .. steps-1``; the final weights."""
    params = [gg.tensor(a, requires_grad=True) for a in start]
    opt = wrap(gg.optimizers.SGD(params, lr=0.1, momentum=0.9))
    for step in range(first, steps):
        opt.zero_grad()
        opt_loss(params, x, y, 1.0, step).backward()
        opt.step()
    return np.concatenate([p.numpy().ravel() for p in params])


def fit_data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((FIT_N, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3).astype(np.float32)


def fit_model(seed: int, jit: bool = False):
    """A small model whose starting weights depend on ``seed`` (``jit``: compiled steps)."""
    rng = np.random.default_rng(seed)
    model = gg.nn.Sequential([gg.nn.Dense(4, activation="tanh"), gg.nn.Dense(1)])
    model.build((None, 3))
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in model.weights])
    model.compile(optimizer=gg.optimizers.Adam(0.02), loss="mse", metrics=["mae"], jit_compile=jit)
    return model


def run_fit(model, verbose: int):
    x, y = fit_data()
    hist = model.fit(x, y, batch_size=FIT_BATCH, epochs=FIT_EPOCHS, shuffle=True, verbose=verbose)
    return hist.history, [w.numpy() for w in model.weights]


# -- the job ----------------------------------------------------------------------------------------


def _error(fn) -> str:
    try:
        fn()
    except (ValueError, TypeError, RuntimeError) as e:
        return f"{type(e).__name__}: {e}"
    return ""


def suite(outdir: str) -> None:
    dist.init()
    r, w = dist.rank(), dist.world_size()
    out = {"rank": r, "world": w, "local_rank": dist.local_rank()}
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    mine = gg.constant(base * (r + 1))
    out["sum"] = dist.all_reduce(mine).numpy()
    out["mean"] = dist.all_reduce(gg.constant(base * (r + 1), dtype="float64"), op="mean").numpy()
    out["max"] = dist.all_reduce(mine, op="max").numpy()
    out["min"] = dist.all_reduce(mine, op="min").numpy()
    out["int_sum"] = dist.all_reduce(gg.constant(np.array([r, 10 * r], np.int64))).numpy()
    out["half_sum"] = dist.all_reduce(gg.constant(np.full(3, 0.5 * (r + 1)), dtype="float16")).numpy()
    out["bcast"] = dist.broadcast(gg.constant(np.full((2, 2), float(r))), root=w - 1).numpy()
    out["gather"] = dist.all_gather(gg.constant(np.full((r + 1, 2), float(r), np.float32))).numpy()
    out["gather0d"] = dist.all_gather(gg.constant(float(r))).numpy()
    dist.barrier()
    twice = gg.jit(lambda t: dist.all_reduce(t * 2.0))  # inside a compiled step: at every replay
    out["jit_sum"] = np.stack([twice(gg.constant(np.full(2, float(r + k)))).numpy() for k in range(3)])
    v1, v2 = gg.Variable(np.full(3, float(r))), gg.Variable(np.full((2, 2), 10 + r, np.int64), trainable=False)
    out["bv_changed"] = dist.broadcast_variables([v1, {"b": v2}], root=1 % w)
    out["bv_v1"], out["bv_v2"] = v1.numpy(), v2.numpy()
    out["bv_same"] = dist.broadcast_variables([v1, v2], root=0)
    # mismatches raise the same clear error on every rank, and the job goes on
    out["err_shape"] = _error(lambda: dist.all_reduce(gg.ones(r + 1)))
    out["err_call"] = _error(lambda: dist.broadcast(gg.ones(2)) if r == 0 else dist.all_reduce(gg.ones(2)))
    out["err_gather"] = _error(lambda: dist.all_gather(gg.ones((2, r + 1))))
    out["after_errors"] = dist.all_reduce(gg.constant(1.0)).numpy()

    # DistributedOptimizer: this rank's rows of every step; equal shards and a mean loss
    x, y = opt_data()
    xs, ys = gg.constant(x[r::w]), gg.constant(y[r::w])
    for kind in ("sgd", "adam"):
        params = [gg.Variable(a) for a in opt_init(shift=0.1 * r)]
        dist.broadcast_variables(params)  # rank 0's start everywhere
        opt = dist.DistributedOptimizer(make_optimizer(kind))
        for step in range(OPT_STEPS):
            opt.minimize(lambda p=params, s=step: opt_loss(p, xs, ys, float(u_used(r, s)), s), params)
        out[f"opt_{kind}"] = np.concatenate([p.numpy().ravel() for p in params])
        out[f"opt_{kind}_iterations"] = opt.iterations
    # pytrees: one (gradients, variables) pair of two dicts
    tree = {"w": gg.Variable(np.full((2, 2), 1.0 + r)), "b": gg.Variable(np.zeros(2))}
    dist.broadcast_variables(tree)
    opt = dist.DistributedOptimizer(gg.optimizers.SGD(0.1))
    with gg.GradientTape() as tape:
        loss = gg.sum(gg.square(gg.constant(np.full((1, 2), float(r + 1))) @ tree["w"] + tree["b"]))
    opt.apply_gradients([(tape.gradient(loss, tree), tree)])
    out["tree_w"], out["tree_b"] = tree["w"].numpy(), tree["b"].numpy()
    # PyTorch style: .grad averaged before step(); different starts, so step 0 only broadcasts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["torch_style"] = torch_run(xs, ys, opt_init(shift=0.1 * r), 4, wrap=dist.DistributedOptimizer)
    # optimizer state: rank 1's slots and step count everywhere
    params = [gg.Variable(np.full(3, 1.0 + r))]
    opt = gg.optimizers.Adam(0.1)
    for _ in range(r + 1):
        opt.minimize(lambda p=params: gg.sum(gg.square(p[0])), params)
    dist.broadcast_optimizer_state(opt, root=1 % w)
    out["state_iterations"] = opt.iterations
    out["state_slots"] = np.concatenate([np.asarray(a).ravel() for a in opt.variables()])
    # without an explicit broadcast: the first update is replaced by one (with a warning on rank 0)
    params = [gg.Variable(a) for a in opt_init(shift=0.1 * r)]
    opt = dist.DistributedOptimizer("sgd")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            opt.minimize(lambda p=params, s=step: opt_loss(p, xs, ys, 1.0, s), params)
    out["skip_weights"] = np.concatenate([p.numpy().ravel() for p in params])
    out["skip_iterations"] = opt.iterations
    out["skip_warned"] = any("skipped" in str(c.message) for c in caught)

    # fit: every rank has all the data and a different seed; rank 0's shuffle and weights win
    gg.random.seed(FIT_SEED if r == 0 else 100 + r)
    history, weights = run_fit(fit_model(seed=r), verbose=2)
    for k, vals in history.items():
        out[f"fit_{k}"] = np.array(vals)
    out["fit_weights"] = np.concatenate([a.ravel() for a in weights])
    gg.random.seed(FIT_SEED if r == 0 else 100 + r)
    history, weights = run_fit(fit_model(seed=r, jit=True), verbose=0)  # compiled steps
    out["jit_fit_loss"] = np.array(history["loss"])
    out["jit_fit_weights"] = np.concatenate([a.ravel() for a in weights])

    # a compiled step of DistributedOptimizer: the all-reduce runs at every replay
    params = [gg.Variable(a) for a in opt_init(shift=0.1 * r)]
    opt = dist.DistributedOptimizer("sgd")
    step = gg.jit(lambda: opt.minimize(lambda: opt_loss(params, xs, ys, 1.0, 1), params))
    out["err_jit"] = _error(step)  # the variables differ across ranks: refused inside the trace
    dist.broadcast_variables(params)
    for _ in range(3):
        step()
    out["jit_opt"] = np.concatenate([p.numpy().ravel() for p in params])
    out["jit_traces"] = step.trace_count
    np.savez(f"{outdir}/rank{r}.npz", **out)


def fail() -> None:
    dist.init()
    r, w = dist.rank(), dist.world_size()
    dist.barrier()
    if r == w - 1:
        raise RuntimeError("deliberate failure")
    dist.all_reduce(gg.ones(3))  # the others wait here until the job is aborted
    dist.barrier()
    print("unreachable: the job should have been aborted", flush=True)


def exit_early() -> None:
    dist.init()
    r, w = dist.rank(), dist.world_size()
    if r == w - 1:
        sys.exit(0)
    dist.barrier()  # never completes: the job must be aborted by the rank that left
    print("unreachable: the job should have been aborted", flush=True)


def cuda() -> None:
    """CUDA collectives (NCCL) and a DistributedOptimizer step on each rank's cuda:0."""
    dist.init()
    r, w = dist.rank(), dist.world_size()
    x = gg.constant([[1.0 + r, 2.0 * r]], device="cuda")
    total = dist.all_reduce(x, op="sum").numpy()
    mean = dist.all_reduce(x, op="mean").numpy()
    v = gg.Variable(gg.constant([1.0, 2.0], device="cuda"))
    dist.DistributedOptimizer(gg.optimizers.SGD(0.25)).minimize(lambda: gg.sum(gg.square(v)) * (1.0 + r), [v])
    print(f"rank {r}/{w} sum {total.tolist()} mean {mean.tolist()} v {v.numpy().tolist()}", flush=True)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "suite":
        suite(sys.argv[2])
    elif what == "fail":
        fail()
    elif what == "exit":
        exit_early()
    elif what == "cuda":
        cuda()
    else:
        raise SystemExit(f"unknown job {what!r}")
