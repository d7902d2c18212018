"""The benchmark workloads, written once for gpugrad and once for each peer.

Every implementation starts from the same NumPy data and the same initial weights, so that their
results can be compared: a benchmark that computes something different is not a comparison.

- W1 linreg: ``x[N, 1]`` standard normal, ``y = 2x + 1``; a 1-unit linear layer (kernel ``[1, 1]``
  and bias ``[1]``, zeros) fitted by full-batch gradient descent on ``mean((y - (x@k + b))²)``,
  lr 0.01, 1000 steps.
- W2 mlp: ``x[B, 784] -> Dense(256, relu) -> Dense(10)``, softmax cross-entropy from logits with
  integer labels, SGD lr 0.1, 100 steps, float32, glorot-uniform initial weights.
- W3 chain: 50 rounds of ``y = tanh(sigmoid(y*1.01 + 0.1))`` on a 1000-vector, forward and
  backward (the gradient of ``sum(y)`` with respect to the input); one timed step is one such
  forward + backward, 20 of them make a run. It measures per-op overhead.

A :class:`Case` is one workload on one backend and device: ``reset()`` puts the initial weights
back, ``step()`` runs one training step (one forward + backward for W3), ``sync()`` waits for
queued device work, ``result()`` gives the numbers every backend must agree on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class Workload:
    key: str
    name: str
    size_name: str  # what the size counts: "N" samples, "B" batch, "len" vector length
    unit: str  # what one timed step is
    steps: int  # steps in a full run
    sizes: tuple  # sizes on the CPU
    gpu_sizes: tuple  # sizes when a GPU takes part in the run
    quick_steps: int
    quick_sizes: tuple
    description: str


WORKLOADS = {
    "W1": Workload(
        "W1", "linreg", "N", "step", 1000, (100,), (100, 10**6), 100, (100,),
        "linear regression y = 2x + 1, full-batch GD, lr 0.01",
    ),
    "W2": Workload(
        "W2", "mlp", "B", "step", 100, (64, 256, 1024, 4096, 16384, 65536),
        (64, 256, 1024, 4096, 16384, 65536), 10, (64, 256, 1024),
        "784-256(relu)-10 MLP, sparse softmax CE from logits, SGD lr 0.1, float32",
    ),
    "W3": Workload(
        "W3", "chain", "len", "rep", 20, (1000,), (1000,), 5, (1000,),
        "50 x tanh(sigmoid(y*1.01 + 0.1)) forward + backward",
    ),
}

LR = {"W1": 0.01, "W2": 0.1}
W3_ROUNDS = 50
W2_IN, W2_HIDDEN, W2_OUT = 784, 256, 10

# backend -> devices it can run on
BACKENDS = {
    "gpugrad": ("cpu", "cuda"),
    "numpy": ("cpu",),
    "torch": ("cpu", "cuda"),
    "jax": ("cpu", "cuda"),
    "jax-jit": ("cpu", "cuda"),
    "autograd": ("cpu",),
}
BACKEND_NOTES = {
    "gpugrad": "gpugrad (GradientTape, assign_sub)",
    "numpy": "plain NumPy, hand-derived gradients (the floor)",
    "torch": "PyTorch eager (autograd.grad, in-place sub_)",
    "jax": "JAX eager (value_and_grad, no jit)",
    "jax-jit": "JAX, jax.jit of the whole step",
    "autograd": "HIPS autograd (value_and_grad)",
}


# -- the shared data ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def w1_data(n: int):
    x = np.random.default_rng(4).standard_normal((n, 1), dtype=F32)
    return x, 2 * x + 1


@functools.lru_cache(maxsize=1)
def w2_data(b: int):
    """Inputs and integer labels a random linear teacher gives them (so the loss can fall)."""
    x = np.random.default_rng(2).standard_normal((b, W2_IN), dtype=F32)
    teacher = np.random.default_rng(3).standard_normal((W2_IN, W2_OUT), dtype=F32)
    return x, np.argmax(x @ teacher, axis=1).astype(np.int64)


@functools.lru_cache(maxsize=1)
def w2_init():
    """Glorot-uniform kernels and zero biases: [W1, b1, W2, b2]."""
    rng = np.random.default_rng(1)

    def glorot(fan_in, fan_out):
        lim = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-lim, lim, (fan_in, fan_out)).astype(F32)

    w1 = glorot(W2_IN, W2_HIDDEN)
    w2 = glorot(W2_HIDDEN, W2_OUT)
    return w1, np.zeros(W2_HIDDEN, F32), w2, np.zeros(W2_OUT, F32)


def w1_init():
    return np.zeros((1, 1), F32), np.zeros(1, F32)


@functools.lru_cache(maxsize=2)
def w3_data(n: int):
    return np.random.default_rng(5).standard_normal(n, dtype=F32)


# -- the case interface ---------------------------------------------------------------------------


class Unavailable(Exception):
    """The backend (or the device it was asked for) is not there."""


class Case:
    """One workload on one backend and device."""

    backend = ""

    def __init__(self, workload: str, size: int, device: str):
        self.workload = workload
        self.size = size
        self.device = device
        self.params = []
        self.losses = []
        self.out = None
        self.step = getattr(self, "step_" + workload)
        self._init = getattr(self, "init_" + workload)
        getattr(self, "setup_" + workload)()
        self.reset()

    def reset(self) -> None:
        """Back to the initial weights; forget the recorded losses."""
        self.losses = []
        self.out = None
        self._init()

    def sync(self) -> None:
        """Wait for all device work queued so far (no-op on the CPU)."""

    def host(self, a) -> np.ndarray:
        return np.asarray(a)

    def result(self) -> dict:
        """The numbers every backend must agree on, as Python floats."""
        if self.workload == "W3":
            if self.out is None:
                return {}
            s, g = (self.host(v) for v in self.out)
            g = g.astype(np.float64)
            return {"out_sum": float(s), "grad_sum": float(g.sum()), "grad_absmax": float(np.abs(g).max())}
        res = {"loss": [float(self.host(v)) for v in self.losses]}
        if self.workload == "W1":
            k, b = (self.host(p) for p in self.params)
            res["kernel"] = float(k.reshape(-1)[0])
            res["bias"] = float(b.reshape(-1)[0])
        return res

    def init_W3(self):
        pass


# -- plain NumPy, gradients by hand ---------------------------------------------------------------


class NumpyCase(Case):
    backend = "numpy"

    def setup_W1(self):
        self.x, self.y = w1_data(self.size)

    def init_W1(self):
        self.params = [p.copy() for p in w1_init()]

    def step_W1(self):
        k, b = self.params
        x = self.x
        r = x @ k + b - self.y  # pred - y
        loss = np.mean(r * r)
        gr = r * (2.0 / r.size)
        gk = x.T @ gr
        gb = gr.sum(axis=0)
        k -= LR["W1"] * gk
        b -= LR["W1"] * gb
        self.losses.append(loss)

    def setup_W2(self):
        self.x, self.labels = w2_data(self.size)
        self.rows = np.arange(self.size)

    def init_W2(self):
        self.params = [p.copy() for p in w2_init()]

    def step_W2(self):
        w1, b1, w2, b2 = self.params
        x, lab, rows = self.x, self.labels, self.rows
        n = x.shape[0]
        h = x @ w1
        h += b1
        np.maximum(h, 0, out=h)
        z = h @ w2
        z += b2
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        se = e.sum(axis=1, keepdims=True)
        lse = np.log(se) + m
        loss = np.mean(lse[:, 0] - z[rows, lab])
        dz = e / se  # softmax
        dz[rows, lab] -= 1
        dz *= 1.0 / n
        gw2 = h.T @ dz
        gb2 = dz.sum(axis=0)
        dh = dz @ w2.T
        dh *= h > 0
        gw1 = x.T @ dh
        gb1 = dh.sum(axis=0)
        lr = LR["W2"]
        w1 -= lr * gw1
        b1 -= lr * gb1
        w2 -= lr * gw2
        b2 -= lr * gb2
        self.losses.append(loss)

    def setup_W3(self):
        self.x = w3_data(self.size)

    def step_W3(self):
        y = self.x
        saved = []
        for _ in range(W3_ROUNDS):
            s = 1 / (1 + np.exp(-(y * 1.01 + 0.1)))
            y = np.tanh(s)
            saved.append((s, y))
        g = np.ones_like(y)
        for s, t in reversed(saved):
            g = g * (1 - t * t) * (s * (1 - s)) * 1.01
        self.out = (y.sum(), g)


# -- gpugrad -------------------------------------------------------------------------------------


class GpugradCase(Case):
    backend = "gpugrad"

    def __init__(self, workload, size, device):
        import gpugrad as gg

        if device == "cuda" and not gg.cuda.is_available():
            raise Unavailable("gpugrad: no usable CUDA device")
        self.gg = gg
        super().__init__(workload, size, device)

    def _const(self, a):
        return self.gg.constant(a, device=self.device)

    def _vars(self, arrays):
        return [self.gg.Variable(a, device=self.device) for a in arrays]

    def sync(self):
        if self.device != "cpu":
            self.gg.cuda.synchronize()

    def host(self, a):
        if isinstance(a, self.gg.Tensor):
            return a.numpy()
        return a.get() if hasattr(a, "get") else np.asarray(a)

    def setup_W1(self):
        x, y = w1_data(self.size)
        self.x, self.y = self._const(x), self._const(y)

    def init_W1(self):
        self.params = self._vars(w1_init())

    def step_W1(self):
        gg = self.gg
        k, b = self.params
        with gg.GradientTape() as tape:
            loss = gg.mean(gg.square(self.y - (self.x @ k + b)))
        gk, gb = tape.gradient(loss, [k, b])
        lr = LR["W1"]
        k.assign_sub(lr * gk)
        b.assign_sub(lr * gb)
        self.losses.append(loss.data)

    def setup_W2(self):
        x, lab = w2_data(self.size)
        self.x, self.labels = self._const(x), self._const(lab)

    def init_W2(self):
        self.params = self._vars(w2_init())

    def step_W2(self):
        self.losses.append(self.train_W2(self.x, self.labels).data)

    def train_W2(self, x, labels):
        """One SGD step on the current parameters; returns the loss Tensor (what ``gg.jit`` can trace)."""
        gg = self.gg
        w1, b1, w2, b2 = self.params
        with gg.GradientTape() as tape:
            h = gg.relu(x @ w1 + b1)
            z = h @ w2 + b2
            loss = gg.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
        grads = tape.gradient(loss, self.params)
        lr = LR["W2"]
        for p, g in zip(self.params, grads, strict=True):
            p.assign_sub(lr * g)
        return loss

    def setup_W3(self):
        self.x = self._const(w3_data(self.size))

    def step_W3(self):
        gg = self.gg
        x = self.x
        with gg.GradientTape() as tape:
            tape.watch(x)
            y = x
            for _ in range(W3_ROUNDS):
                y = gg.tanh(gg.sigmoid(y * 1.01 + 0.1))
            s = gg.sum(y)
        g = tape.gradient(s, x)
        self.out = (s.data, g.data)


# -- PyTorch -------------------------------------------------------------------------------------


class TorchCase(Case):
    backend = "torch"

    def __init__(self, workload, size, device):
        try:
            import torch
        except Exception as e:
            raise Unavailable(f"torch: {e}") from None
        if device == "cuda" and not torch.cuda.is_available():
            raise Unavailable("torch: no CUDA device")
        self.torch = torch
        self.dev = torch.device(device)
        super().__init__(workload, size, device)

    def _t(self, a, grad=False):
        return self.torch.tensor(a, device=self.dev, requires_grad=grad)

    def sync(self):
        if self.device != "cpu":
            self.torch.cuda.synchronize()

    def host(self, a):
        return a.detach().cpu().numpy() if isinstance(a, self.torch.Tensor) else np.asarray(a)

    def _update(self, grads, lr):
        with self.torch.no_grad():
            for p, g in zip(self.params, grads, strict=True):
                p.sub_(lr * g)

    def setup_W1(self):
        x, y = w1_data(self.size)
        self.x, self.y = self._t(x), self._t(y)

    def init_W1(self):
        self.params = [self._t(p, grad=True) for p in w1_init()]

    def step_W1(self):
        torch = self.torch
        k, b = self.params
        loss = torch.mean(torch.square(self.y - (self.x @ k + b)))
        self._update(torch.autograd.grad(loss, self.params), LR["W1"])
        self.losses.append(loss.detach())

    def setup_W2(self):
        x, lab = w2_data(self.size)
        self.x, self.labels = self._t(x), self._t(lab)

    def init_W2(self):
        self.params = [self._t(p, grad=True) for p in w2_init()]

    def step_W2(self):
        torch = self.torch
        w1, b1, w2, b2 = self.params
        h = torch.relu(self.x @ w1 + b1)
        z = h @ w2 + b2
        loss = torch.nn.functional.cross_entropy(z, self.labels)
        self._update(torch.autograd.grad(loss, self.params), LR["W2"])
        self.losses.append(loss.detach())

    def setup_W3(self):
        self.x = self._t(w3_data(self.size), grad=True)

    def step_W3(self):
        torch = self.torch
        y = self.x
        for _ in range(W3_ROUNDS):
            y = torch.tanh(torch.sigmoid(y * 1.01 + 0.1))
        s = y.sum()
        (g,) = torch.autograd.grad(s, self.x)
        self.out = (s.detach(), g)


# -- JAX -----------------------------------------------------------------------------------------


def _jax_fns(jnp, jax):
    """The loss functions of W1 and W2 and the W3 chain, in jax.numpy."""

    def w1_loss(params, x, y):
        k, b = params
        return jnp.mean(jnp.square(y - (x @ k + b)))

    def w2_loss(params, x, labels):
        w1, b1, w2, b2 = params
        h = jax.nn.relu(x @ w1 + b1)
        z = h @ w2 + b2
        picked = jnp.take_along_axis(z, labels[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - picked)

    def w3_chain(x):
        y = x
        for _ in range(W3_ROUNDS):
            y = jnp.tanh(jax.nn.sigmoid(y * 1.01 + 0.1))
        return jnp.sum(y)

    return {"W1": w1_loss, "W2": w2_loss, "W3": w3_chain}


class JaxCase(Case):
    backend = "jax"
    jit = False

    def __init__(self, workload, size, device):
        try:
            import jax
            import jax.numpy as jnp
        except Exception as e:
            raise Unavailable(f"jax: {e}") from None
        try:
            self.dev = jax.devices("cpu" if device == "cpu" else "gpu")[0]
        except RuntimeError as e:
            raise Unavailable(f"jax: no {device} device ({e})") from None
        self.jax = jax
        fn = _jax_fns(jnp, jax)[workload]
        vg = jax.value_and_grad(fn)
        if workload == "W3":
            step = vg
        else:
            lr = LR[workload]

            def step(params, x, y):
                loss, grads = vg(params, x, y)
                return [p - lr * g for p, g in zip(params, grads, strict=True)], loss

        self._step = jax.jit(step) if self.jit else step
        super().__init__(workload, size, device)

    def _put(self, a):
        return self.jax.device_put(a, self.dev)

    def sync(self):
        self.jax.block_until_ready((self.params, self.out, self.losses[-1:]))

    def setup_W1(self):
        self.x, self.y = (self._put(a) for a in w1_data(self.size))

    def init_W1(self):
        self.params = [self._put(p) for p in w1_init()]

    def step_W1(self):
        self.params, loss = self._step(self.params, self.x, self.y)
        self.losses.append(loss)

    def setup_W2(self):
        x, lab = w2_data(self.size)
        self.x, self.y = self._put(x), self._put(lab.astype(np.int32))

    def init_W2(self):
        self.params = [self._put(p) for p in w2_init()]

    step_W2 = step_W1

    def setup_W3(self):
        self.x = self._put(w3_data(self.size))

    def step_W3(self):
        self.out = self._step(self.x)


class JaxJitCase(JaxCase):
    backend = "jax-jit"
    jit = True


# -- HIPS autograd -------------------------------------------------------------------------------


class AutogradCase(Case):
    backend = "autograd"

    def __init__(self, workload, size, device):
        try:
            import autograd
            import autograd.numpy as anp
            from autograd.scipy.special import expit, logsumexp
        except Exception as e:
            raise Unavailable(f"autograd: {e}") from None
        if device != "cpu":
            raise Unavailable("autograd runs on the CPU only")
        self.anp = anp
        self._expit = expit
        self._logsumexp = logsumexp
        fn = {"W1": self._w1_loss, "W2": self._w2_loss, "W3": self._w3_chain}[workload]
        self._vg = autograd.value_and_grad(fn)
        super().__init__(workload, size, device)

    def _w1_loss(self, params):
        k, b = params
        return self.anp.mean(self.anp.square(self.y - (self.x @ k + b)))

    def _w2_loss(self, params):
        anp = self.anp
        w1, b1, w2, b2 = params
        h = anp.maximum(self.x @ w1 + b1, 0.0)
        z = h @ w2 + b2
        return anp.mean(self._logsumexp(z, axis=1) - z[self.rows, self.labels])

    def _w3_chain(self, x):
        y = x
        for _ in range(W3_ROUNDS):
            y = self.anp.tanh(self._expit(y * 1.01 + 0.1))
        return self.anp.sum(y)

    def _train_step(self):
        loss, grads = self._vg(self.params)
        lr = LR[self.workload]
        self.params = [p - lr * g for p, g in zip(self.params, grads, strict=True)]
        self.losses.append(loss)

    def setup_W1(self):
        self.x, self.y = w1_data(self.size)

    def init_W1(self):
        self.params = [p.copy() for p in w1_init()]

    step_W1 = _train_step

    def setup_W2(self):
        self.x, self.labels = w2_data(self.size)
        self.rows = np.arange(self.size)

    def init_W2(self):
        self.params = [p.copy() for p in w2_init()]

    step_W2 = _train_step

    def setup_W3(self):
        self.x = w3_data(self.size)

    def step_W3(self):
        self.out = self._vg(self.x)


CASES = {
    "gpugrad": GpugradCase,
    "numpy": NumpyCase,
    "torch": TorchCase,
    "jax": JaxCase,
    "jax-jit": JaxJitCase,
    "autograd": AutogradCase,
}


def make_case(workload: str, backend: str, device: str, size: int) -> Case:
    """A ready Case, or :class:`Unavailable` when the backend or device is missing."""
    if device not in BACKENDS[backend]:
        raise Unavailable(f"{backend} does not run on {device}")
    return CASES[backend](workload, size, device)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the out-of-memory errors of NumPy, CuPy, PyTorch and JAX."""
    if isinstance(exc, MemoryError):  # NumPy, and CuPy's OutOfMemoryError
        return True
    text = f"{type(exc).__name__} {exc}"
    return any(s in text for s in ("out of memory", "OutOfMemory", "RESOURCE_EXHAUSTED", "Out of memory"))
