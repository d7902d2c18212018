"""RMSprop, AdamW, clipping, weight decay, schedules, and PyTorch-style optimizers: five steps of
each checked against its update rule written out in NumPy (and the real library where installed)."""

import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.optimizers import schedules

C = np.array([[1.0, 3.0, 0.5], [2.0, 0.2, 4.0]])
B = np.array([[0.3, -1.0, 2.0], [-0.5, 0.1, -3.0]])
W0 = np.array([[0.5, -1.5, 2.0], [1.0, 0.7, -0.4]])
STEPS = 5


def grad_of(w):
    """The gradient of 0.5·Σ c·w² + Σ b·w."""
    return C * w + B


def _loss(w):
    return 0.5 * (gg.tensor(C, dtype="float64", device=w.device) * w * w).sum() + (
        gg.tensor(B, dtype="float64", device=w.device) * w
    ).sum()


def run_keras(opt, device, steps=STEPS):
    v = gg.Variable(W0, dtype="float64", device=device, name="dense/kernel")
    out = []
    for _ in range(steps):
        opt.minimize(lambda: _loss(v), [v])
        out.append(v.numpy().copy())
    return out


def run_torch(make, device, steps=STEPS):
    w = gg.tensor(W0, dtype="float64", device=device, requires_grad=True)
    opt = make([w])
    out = []
    for _ in range(steps):
        opt.zero_grad()
        _loss(w).backward()
        opt.step()
        out.append(w.numpy().copy())
    return out


def reference(update, state=None, steps=STEPS, lrs=None):
    w = W0.copy()
    state = {} if state is None else state
    out = []
    for t in range(1, steps + 1):
        lr = None if lrs is None else lrs(t - 1)
        w = update(w, grad_of(w), t, state, lr)
        out.append(w.copy())
    return out


def assert_same(got, want):
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {i + 1}")


# -- Keras 3 rules ---------------------------------------------------------------------------------


def keras_clip(g, clipnorm=None, clipvalue=None):
    if clipnorm is not None:
        n = np.sqrt((g * g).sum())
        return g * clipnorm / max(n, clipnorm)
    if clipvalue is not None:
        return np.clip(g, -clipvalue, clipvalue)
    return g


def keras_sgd(lr, momentum=0.0, nesterov=False, wd=None, **clip):
    def upd(w, g, t, s, lr_t):
        lr_ = lr if lr_t is None else lr_t
        g = keras_clip(g, **clip)
        if wd:
            w = w - w * wd * lr_
        m = s.get("m", np.zeros_like(w))
        m = momentum * m - lr_ * g
        s["m"] = m
        if not momentum:
            return w - lr_ * g
        return w + (momentum * m - lr_ * g if nesterov else m)

    return upd


def keras_adam(lr, b1=0.9, b2=0.999, eps=1e-7, wd=None, amsgrad=False, **clip):
    def upd(w, g, t, s, lr_t):
        g = keras_clip(g, **clip)
        if wd:
            w = w - w * wd * lr
        m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        if amsgrad:
            v = s["vh"] = np.maximum(s.get("vh", 0.0), v)
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        return w - alpha * m / (np.sqrt(v) + eps)

    return upd


def keras_rmsprop(lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False, wd=None):
    def upd(w, g, t, s, lr_t):
        if wd:
            w = w - w * wd * lr
        vel = s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g * g
        if centered:
            a = s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g
            denom = vel - a * a + eps
        else:
            denom = vel + eps
        inc = lr * g / np.sqrt(denom)
        if momentum:
            s["m"] = momentum * s.get("m", 0.0) + inc
            return w - s["m"]
        return w - inc

    return upd


KERAS = [
    ("sgd", lambda: gg.optimizers.SGD(0.1), keras_sgd(0.1)),
    ("sgd-momentum", lambda: gg.optimizers.SGD(0.1, momentum=0.9), keras_sgd(0.1, 0.9)),
    ("sgd-nesterov-wd", lambda: gg.optimizers.SGD(0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
     keras_sgd(0.05, 0.8, True, wd=0.1)),
    ("sgd-clipnorm", lambda: gg.optimizers.SGD(0.1, clipnorm=1.0), keras_sgd(0.1, clipnorm=1.0)),
    ("sgd-clipvalue", lambda: gg.optimizers.SGD(0.1, clipvalue=0.5), keras_sgd(0.1, clipvalue=0.5)),
    ("adam", lambda: gg.optimizers.Adam(0.1), keras_adam(0.1)),
    ("adam-amsgrad-wd", lambda: gg.optimizers.Adam(0.1, amsgrad=True, weight_decay=0.05),
     keras_adam(0.1, wd=0.05, amsgrad=True)),
    ("adamw", lambda: gg.optimizers.AdamW(0.1), keras_adam(0.1, wd=0.004)),
    ("adamw-clip", lambda: gg.optimizers.AdamW(learning_rate=0.05, weight_decay=0.1, beta_1=0.8, clipnorm=2.0),
     keras_adam(0.05, b1=0.8, wd=0.1, clipnorm=2.0)),
    ("rmsprop", lambda: gg.optimizers.RMSprop(0.01), keras_rmsprop(0.01)),
    ("rmsprop-centered-momentum", lambda: gg.optimizers.RMSprop(0.01, momentum=0.9, centered=True),
     keras_rmsprop(0.01, momentum=0.9, centered=True)),
    ("rmsprop-wd", lambda: gg.optimizers.RMSprop(0.02, rho=0.8, weight_decay=0.3), keras_rmsprop(0.02, 0.8, wd=0.3)),
]


@pytest.mark.parametrize("name,make,rule", KERAS, ids=[k[0] for k in KERAS])
def test_keras_rules_five_steps(device, name, make, rule):
    assert_same(run_keras(make(), device), reference(rule))


def test_global_clipnorm_over_all_gradients(device):
    a = gg.Variable([3.0, 4.0], dtype="float64", device=device)
    b = gg.Variable([12.0], dtype="float64", device=device)
    opt = gg.optimizers.SGD(1.0, global_clipnorm=6.5)
    opt.apply_gradients([(gg.tensor([3.0, 4.0], dtype="float64", device=device), a),
                         (gg.tensor([12.0], dtype="float64", device=device), b)])
    np.testing.assert_allclose(a.numpy(), [3.0 - 1.5, 4.0 - 2.0])  # the norm 13 is scaled to 6.5
    np.testing.assert_allclose(b.numpy(), [12.0 - 6.0])


def test_keras_defaults():
    assert gg.optimizers.RMSprop().get_config()["learning_rate"] == 0.001
    cfg = gg.optimizers.RMSprop().get_config()
    assert (cfg["rho"], cfg["momentum"], cfg["epsilon"], cfg["centered"]) == (0.9, 0.0, 1e-7, False)
    cfg = gg.optimizers.AdamW().get_config()
    assert (cfg["learning_rate"], cfg["weight_decay"], cfg["epsilon"]) == (0.001, 0.004, 1e-7)
    assert isinstance(gg.optimizers.get("rmsprop"), gg.optimizers.RMSprop)
    assert isinstance(gg.optimizers.get("AdamW"), gg.optimizers.AdamW)


def test_weight_decay_exclusion(device):
    k = gg.Variable([1.0], dtype="float64", device=device, name="d/kernel")
    b = gg.Variable([1.0], dtype="float64", device=device, name="d/bias")
    opt = gg.optimizers.SGD(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    zero = gg.tensor([0.0], dtype="float64", device=device)
    opt.apply_gradients([(zero, k), (zero, b)])
    assert k.numpy()[0] == pytest.approx(0.95) and b.numpy()[0] == 1.0


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="only one"):
        gg.optimizers.SGD(0.1, clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="clipnorm"):
        gg.optimizers.Adam(clipnorm=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        gg.optimizers.RMSprop(weight_decay=-0.1)
    with pytest.raises(TypeError, match="lr="):
        gg.optimizers.SGD(lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        gg.optimizers.SGD(gg.tensor([1.0], requires_grad=True), lr=0.1)


# -- schedules -------------------------------------------------------------------------------------


def test_schedules_keras_rules():
    e = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert e(0) == 0.1 and e(10) == pytest.approx(0.05) and e(5) == pytest.approx(0.1 * 0.5**0.5)
    s = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert s(9) == 0.1 and s(10) == pytest.approx(0.05)
    c = schedules.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert c(0) == 1.0 and c(50) == pytest.approx(0.55)
    assert c(100) == pytest.approx(0.1) and c(500) == pytest.approx(0.1)
    w = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=5)
    assert w(0) == 0.0 and w(2) == pytest.approx(0.4) and w(5) == pytest.approx(1.0) and w(15) == pytest.approx(0.0)
    p = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [p(s) for s in (0, 10, 11, 20, 21)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    with pytest.raises(ValueError, match="one more"):
        schedules.PiecewiseConstantDecay([1], [1.0])
    for sched in (e, c, w, p):
        assert type(sched).from_config(sched.get_config()).get_config() == sched.get_config()


def test_schedule_drives_five_steps(device):
    sched = schedules.ExponentialDecay(0.2, decay_steps=2, decay_rate=0.5)
    got = run_keras(gg.optimizers.SGD(sched, momentum=0.5), device)
    assert_same(got, reference(keras_sgd(None, 0.5), lrs=sched))


def test_optimizer_config_round_trip_with_schedule():
    opt = gg.optimizers.Adam(schedules.CosineDecay(0.1, 100), clipvalue=1.0, amsgrad=True)
    back = gg.optimizers.Adam.from_config(opt.get_config())
    assert back.get_config() == opt.get_config()
    assert back.current_learning_rate() == pytest.approx(0.1)


# -- PyTorch rules ---------------------------------------------------------------------------------


def torch_sgd(lr, momentum=0.0, dampening=0.0, wd=0.0, nesterov=False, maximize=False):
    def upd(w, g, t, s, _):
        g = -g if maximize else g
        g = g + wd * w
        if momentum:
            s["b"] = g.copy() if "b" not in s else momentum * s["b"] + (1 - dampening) * g
            g = g + momentum * s["b"] if nesterov else s["b"]
        return w - lr * g

    return upd


def torch_adam(lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, amsgrad=False, decoupled=False):
    def upd(w, g, t, s, _):
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        if amsgrad:
            v = s["vm"] = np.maximum(s.get("vm", 0.0), v)
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
        return w - lr / (1 - b1**t) * m / denom

    return upd


def torch_rmsprop(lr, alpha=0.99, eps=1e-8, wd=0.0, momentum=0.0, centered=False):
    def upd(w, g, t, s, _):
        g = g + wd * w
        sq = s["sq"] = alpha * s.get("sq", 0.0) + (1 - alpha) * g * g
        if centered:
            ga = s["ga"] = alpha * s.get("ga", 0.0) + (1 - alpha) * g
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        if momentum:
            s["b"] = momentum * s.get("b", 0.0) + g / avg
            return w - lr * s["b"]
        return w - lr * g / avg

    return upd


O = gg.optimizers
TORCH = [
    ("sgd-default", lambda p: O.SGD(p), torch_sgd(1e-3)),
    ("sgd-momentum", lambda p: O.SGD(p, lr=0.1, momentum=0.9), torch_sgd(0.1, 0.9)),
    ("sgd-nesterov-wd", lambda p: O.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
     torch_sgd(0.05, 0.8, wd=0.1, nesterov=True)),
    ("sgd-dampening-maximize", lambda p: O.SGD(params=p, lr=0.01, momentum=0.5, dampening=0.3, maximize=True),
     torch_sgd(0.01, 0.5, 0.3, maximize=True)),
    ("adam", lambda p: O.Adam(p, lr=0.1), torch_adam(0.1)),
    ("adam-wd-amsgrad", lambda p: O.Adam(p, lr=0.1, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True),
     torch_adam(0.1, 0.8, 0.99, wd=0.1, amsgrad=True)),
    ("adamw-default", lambda p: O.AdamW(p), torch_adam(1e-3, wd=1e-2, decoupled=True)),
    ("adamw", lambda p: O.AdamW(p, lr=0.1, weight_decay=0.2, eps=1e-6), torch_adam(0.1, eps=1e-6, wd=0.2,
                                                                                   decoupled=True)),
    ("rmsprop-default", lambda p: O.RMSprop(p), torch_rmsprop(1e-2)),
    ("rmsprop-centered-momentum-wd", lambda p: O.RMSprop(p, lr=0.01, momentum=0.9, centered=True, weight_decay=0.1),
     torch_rmsprop(0.01, momentum=0.9, centered=True, wd=0.1)),
]


@pytest.mark.parametrize("name,make,rule", TORCH, ids=[t[0] for t in TORCH])
def test_torch_rules_five_steps(device, name, make, rule):
    assert_same(run_torch(make, device), reference(rule))


def test_torch_style_over_variables_and_a_model(device, rng):
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], np.float32))[:, None]
    model = gg.nn.Sequential([gg.nn.Input((3,)), gg.nn.Dense(1)])
    opt = gg.optimizers.SGD(model.parameters(), lr=0.1, momentum=0.9)
    xt, yt = gg.tensor(x, device=model.device), gg.tensor(y, device=model.device)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = gg.nn.functional.mse_loss(model(xt), yt)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 1e-2 * first
    assert all(v.grad is not None for v in model.trainable_variables)
    opt.zero_grad()
    assert all(v.grad is None for v in model.trainable_variables)


def test_torch_style_param_groups_lr_and_closure():
    w = gg.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    opt = gg.optimizers.SGD([w], lr=0.1)
    opt.param_groups[0]["lr"] = 0.5  # the way PyTorch code changes a rate

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    np.testing.assert_allclose(w.numpy(), [0.0, 0.0])
    assert w.is_leaf and w.requires_grad


def test_torch_style_refusals():
    w = gg.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="empty"):
        gg.optimizers.Adam([])
    with pytest.raises(ValueError, match="non-leaf"):
        gg.optimizers.Adam([w * 2])
    with pytest.raises(ValueError, match="more than once"):
        gg.optimizers.Adam([w, w])
    with pytest.raises(ValueError, match="Nesterov"):
        gg.optimizers.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta"):
        gg.optimizers.AdamW([w], betas=(1.0, 0.9))
    with pytest.raises(TypeError, match="groups"):
        gg.optimizers.SGD([{"params": [w]}], lr=0.1)


def test_matches_real_torch_where_installed():
    torch = pytest.importorskip("torch")
    makers = {
        "SGD": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        "Adam": dict(lr=0.1, weight_decay=0.01, amsgrad=True),
        "AdamW": dict(lr=0.1),
        "RMSprop": dict(lr=0.01, momentum=0.5, centered=True),
    }
    for name, kw in makers.items():
        ours = run_torch(lambda p, name=name, kw=kw: getattr(gg.optimizers, name)(p, **kw), "cpu")
        t = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
        opt = getattr(torch.optim, name)([t], **kw)
        for step in range(STEPS):
            opt.zero_grad()
            loss = 0.5 * (torch.tensor(C) * t * t).sum() + (torch.tensor(B) * t).sum()
            loss.backward()
            opt.step()
            np.testing.assert_allclose(ours[step], t.detach().numpy(), rtol=1e-10, err_msg=name)


def test_matches_real_keras_where_installed():
    keras = pytest.importorskip("keras")
    makers = {
        "SGD": dict(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        "Adam": dict(learning_rate=0.1, amsgrad=True, clipnorm=1.0),
        "AdamW": dict(learning_rate=0.1),
        "RMSprop": dict(learning_rate=0.01, momentum=0.5, centered=True),
    }
    for name, kw in makers.items():
        ours = run_keras(getattr(gg.optimizers, name)(**kw), "cpu")
        v = keras.Variable(W0.astype(np.float64), dtype="float64")
        opt = getattr(keras.optimizers, name)(**kw)
        for step in range(STEPS):
            g = grad_of(np.asarray(v))
            opt.apply_gradients([(keras.ops.convert_to_tensor(g), v)])
            np.testing.assert_allclose(ours[step], np.asarray(v), rtol=1e-6, err_msg=name)


JIT_CASES = {
    "adamw-clipnorm": lambda v: gg.optimizers.AdamW(0.1, clipnorm=1.0),
    "sgd-global-clipnorm-wd": lambda v: gg.optimizers.SGD(0.01, momentum=0.9, global_clipnorm=2.0, weight_decay=0.1),
    "rmsprop-clipvalue": lambda v: gg.optimizers.RMSprop(0.01, clipvalue=0.5, centered=True, momentum=0.5),
    "adam-schedule": lambda v: gg.optimizers.Adam(schedules.ExponentialDecay(0.1, 1, 0.5)),
    "torch-adamw-amsgrad": lambda v: gg.optimizers.AdamW([v], lr=0.1, amsgrad=True),
    "torch-sgd-dampening": lambda v: gg.optimizers.SGD([v], lr=0.01, momentum=0.9, dampening=0.3),
}


@pytest.mark.parametrize("name", sorted(JIT_CASES))
def test_compiled_steps_equal_eager(name):
    """Clipping, weight decay, schedules and step counts replay correctly in a compiled step."""

    def run(jit):
        v = gg.Variable(W0, dtype="float64")
        x = gg.constant(C, dtype="float64")
        opt = JIT_CASES[name](v)

        def step(x):
            with gg.GradientTape() as tape:
                loss = ((x * v) ** 2).sum()
            opt.apply_gradients(zip(tape.gradient(loss, [v]), [v]))
            return loss

        f = gg.jit(step) if jit else step
        for _ in range(STEPS):
            f(x)
        return v.numpy()

    np.testing.assert_allclose(run(True), run(False), rtol=1e-12)
