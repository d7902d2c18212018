"""The examples of the course notes, with their numbers.

Each test follows one notebook cell or slide: the same calls, spelled the gpugrad way, and the
values the notes print (or the closed form they derive, computed in float64 NumPy).
"""

import math

import numpy as np
import pytest

import gpugrad as gg

# -- 001 / 002: the tape ---------------------------------------------------------------------------


def test_a_target_computed_outside_the_tape_has_no_gradient(device):
    w = gg.constant(1.0, device=device)
    x = gg.constant(2.0, device=device)
    y = x * w
    with gg.GradientTape() as tape:
        tape.watch([w])
        y2 = x * w  # noqa: F841
    grad1 = tape.gradient(y, [w])
    assert grad1 == [None]


def test_a_target_computed_inside_the_tape(device):
    w = gg.constant(1.0, device=device)
    x = gg.constant(2.0, device=device)
    with gg.GradientTape() as tape:
        tape.watch([w])
        y2 = x * w
    grad2 = tape.gradient(y2, [w])
    assert isinstance(grad2, list) and len(grad2) == 1
    assert grad2[0].shape == () and grad2[0].dtype == np.float32
    assert grad2[0].item() == 2.0


def test_a_non_persistent_tape_answers_once(device):
    w = gg.constant(1.0, device=device)
    x = gg.constant(2.0, device=device)
    with gg.GradientTape() as tape:
        tape.watch([w])
        y2 = x * w
    assert tape.gradient(y2, [w])[0].item() == 2.0
    with pytest.raises(RuntimeError, match="persistent"):
        tape.gradient(y2, [w])


def test_a_persistent_tape_answers_twice(device):
    w = gg.constant(1.0, device=device)
    x = gg.constant(2.0, device=device)
    with gg.GradientTape(persistent=True) as tape:
        tape.watch([w])
        y2 = x * w
    assert tape.gradient(y2, [w])[0].item() == 2.0
    assert tape.gradient(y2, [w])[0].item() == 2.0
    assert tape.gradient(y2, w).item() == 2.0


def test_second_order_of_xw_plus_b_is_none(device):
    w = gg.Variable(gg.constant(1.0, device=device))  # watched by default
    b = gg.Variable(gg.constant(2.0, device=device))
    x = gg.Variable(gg.constant(3.0, device=device))
    with gg.GradientTape() as tape1:
        with gg.GradientTape() as tape2:
            y = x * w + b
        dy_dw, dy_db = tape2.gradient(y, [w, b])
    d2y_dw2 = tape1.gradient(dy_dw, w)

    assert dy_dw.item() == 3.0
    assert dy_db.item() == 1.0
    assert d2y_dw2 is None


def test_second_order_of_xw2_is_2x(device):
    # the same nesting where the second derivative exists: y = x·w², d²y/dw² = 2x
    w = gg.Variable(gg.constant(1.5, device=device))
    x = gg.Variable(gg.constant(3.0, device=device))
    with gg.GradientTape() as tape1:
        with gg.GradientTape() as tape2:
            y = x * w * w
        dy_dw = tape2.gradient(y, w)
    assert dy_dw.item() == pytest.approx(2 * 3.0 * 1.5)
    assert tape1.gradient(dy_dw, w).item() == pytest.approx(6.0)


# -- 002: the sigmoid's gradient ------------------------------------------------------------------

# the notebook's printout (TensorFlow, float32)
TF_SIGMOID = [4.5388937e-05, 4.1878223e-04, 3.8510561e-03, 3.4445226e-02, 2.4766389e-01,
              7.5233626e-01, 9.6555483e-01, 9.9614894e-01, 9.9958128e-01, 9.9995458e-01]
TF_SIGMOID_GRAD = [4.5386874e-05, 4.1860685e-04, 3.8362255e-03, 3.3258751e-02, 1.8632649e-01,
                   1.8632641e-01, 3.3258699e-02, 3.8362255e-03, 4.1854731e-04, 4.5416677e-05]


def sigmoid64(a):
    return 1.0 / (1.0 + np.exp(-np.asarray(a, dtype=np.float64)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_gradient_is_sigma_times_one_minus_sigma(device, dtype):
    a = gg.linspace(-10.0, 10, 10, dtype=dtype, device=device)
    with gg.GradientTape() as tape:
        tape.watch(a)
        y = gg.sigmoid(a)
    grads = tape.gradient(y, [a])

    assert a.dtype == dtype and y.dtype == dtype and grads[0].dtype == dtype
    s = sigmoid64(a.numpy())
    if dtype == "float64":
        np.testing.assert_allclose(y.numpy(), s, rtol=1e-14)
        np.testing.assert_allclose(grads[0].numpy(), s * (1 - s), rtol=1e-10)
    else:
        # σ(1−σ) from a float32 σ near 1 loses digits to 1−σ: within float32's resolution of σ
        np.testing.assert_allclose(y.numpy(), s, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(grads[0].numpy(), s * (1 - s), rtol=1e-5, atol=1e-7)


def test_sigmoid_gradient_matches_the_printout(device):
    a = gg.linspace(-10.0, 10, 10, device=device)
    np.testing.assert_allclose(
        a.numpy(),
        [-10.0, -7.7777777, -5.5555553, -3.333333, -1.1111107,
         1.1111116, 3.333334, 5.5555563, 7.7777786, 10.0],
        rtol=1e-6,
    )
    with gg.GradientTape() as tape:
        tape.watch(a)
        y = gg.sigmoid(a)
    grads = tape.gradient(y, [a])
    np.testing.assert_allclose(y.numpy(), TF_SIGMOID, rtol=1e-3)
    np.testing.assert_allclose(grads[0].numpy(), TF_SIGMOID_GRAD, rtol=1e-3)
    assert grads[0].numpy()[0] == pytest.approx(4.5386e-05, rel=1e-3)
    assert grads[0].numpy()[4] == pytest.approx(1.8633e-01, rel=1e-3)
    assert grads[0].numpy()[5] == pytest.approx(1.8633e-01, rel=1e-3)


def test_torch_sigmoid_tanh_relu_printouts(device):
    # 003's torch cells: sigmoid on linspace(-100, 100, 10), tanh and relu on linspace(-1, 1, 10)
    a = gg.linspace(-100.0, 100, 10, device=device)
    np.testing.assert_allclose(
        gg.sigmoid(a).numpy(),
        [0.0, 1.6655e-34, 7.4564e-25, 3.3382e-15, 1.4945e-05, 9.9999e-01, 1.0, 1.0, 1.0, 1.0],
        rtol=1e-3,
        atol=1e-38,
    )
    b = gg.linspace(-1.0, 1, 10, device=device)
    np.testing.assert_allclose(
        gg.tanh(b).numpy(),
        [-0.7616, -0.6514, -0.5047, -0.3215, -0.1107, 0.1107, 0.3215, 0.5047, 0.6514, 0.7616],
        atol=1e-4,
    )
    np.testing.assert_allclose(
        gg.relu(b).numpy(),
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.1111, 0.3333, 0.5556, 0.7778, 1.0],
        atol=1e-4,
    )
    np.testing.assert_allclose(gg.nn.functional.relu(b).numpy(), gg.relu(b).numpy())


@pytest.mark.parametrize("op,deriv", [
    (gg.tanh, lambda x: 1 - np.tanh(x) ** 2),
    (gg.relu, lambda x: (x > 0).astype(np.float64)),
])
def test_tanh_and_relu_derivatives_from_the_slides(device, op, deriv):
    x = gg.linspace(-1.0, 1, 10, dtype="float64", device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = op(x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), deriv(x.numpy()), rtol=1e-12)


# -- 003: autograd.grad and backward on an MSE ------------------------------------------------------


def test_mse_gradient_through_autograd_grad(device):
    x = gg.ones(1, device=device)
    w = gg.full([1], 2.0, device=device)
    mse = gg.nn.functional.mse_loss(gg.ones(1, device=device), x * w)
    assert mse.item() == 1.0

    with pytest.raises(RuntimeError, match="does not require grad"):
        gg.autograd.grad(mse, [w])

    w.requires_grad_()
    assert w.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        gg.autograd.grad(mse, [w])  # mse was computed before w required grad

    mse = gg.nn.functional.mse_loss(gg.ones(1, device=device), x * w)
    (dw,) = gg.autograd.grad(mse, [w])
    assert dw.shape == (1,)
    np.testing.assert_array_equal(dw.numpy(), [2.0])


def test_mse_gradient_through_backward(device):
    x = gg.ones(1, device=device)
    w = gg.full([1], 2.0, device=device)
    w.requires_grad_()
    mse = gg.nn.functional.mse_loss(gg.ones(1, device=device), x * w)
    mse.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0])
    assert x.grad is None


def test_backward_twice_without_retain_graph(device):
    a = gg.random.uniform([3], seed=0, device=device)
    a.requires_grad_()
    p = gg.softmax(a, axis=0)
    loss = (p * p).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_softmax_jacobian_row_by_row(device):
    a = gg.tensor([0.1440, 0.5349, 0.7022], device=device)
    a.requires_grad_()
    p = gg.softmax(a, axis=0)
    pn = np.exp(a.numpy().astype(np.float64))
    pn /= pn.sum()
    for i in range(3):
        last = i == 2
        (g,) = gg.autograd.grad(p[i], [a], retain_graph=not last)
        expected = pn[i] * (np.eye(3)[i] - pn)  # p_i (δ_ij − p_j)
        np.testing.assert_allclose(g.numpy(), expected, rtol=1e-5, atol=1e-7)
    # the printed rows of the notes
    np.testing.assert_allclose(
        gg.autograd.grad(gg.softmax(a, axis=0)[1], [a])[0].numpy(), [-0.0828, 0.2274, -0.1447], atol=1e-4
    )
    np.testing.assert_allclose(
        gg.autograd.grad(gg.softmax(a, axis=0)[2], [a])[0].numpy(), [-0.0979, -0.1447, 0.2425], atol=1e-4
    )


# -- 003: the table of common derivatives ------------------------------------------------------------

A = 2.5
POINTS = [0.3, 1.0, 2.0, 4.7]
DERIVATIVES = [
    ("x", lambda x: x, lambda x: 1.0),
    ("ax", lambda x: A * x, lambda x: A),
    ("x^2", lambda x: x**2, lambda x: 2 * x),
    ("sqrt(x)", gg.sqrt, lambda x: 0.5 * x**-0.5),
    ("x^0.5", lambda x: x**0.5, lambda x: 0.5 * x**-0.5),
    ("e^x", gg.exp, math.exp),
    ("a^x", lambda x: A**x, lambda x: math.log(A) * A**x),
    ("ln(x)", gg.log, lambda x: 1 / x),
    ("log_a(x)", lambda x: gg.log(x) / math.log(A), lambda x: 1 / (x * math.log(A))),
    ("sin(x)", gg.sin, math.cos),
    ("cos(x)", gg.cos, lambda x: -math.sin(x)),
    ("tan(x)", gg.tan, lambda x: 1 / math.cos(x) ** 2),
]


@pytest.mark.parametrize("dtype,rtol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("name,f,df", DERIVATIVES, ids=[d[0] for d in DERIVATIVES])
def test_common_derivatives(device, name, f, df, dtype, rtol):
    x = gg.constant(POINTS, dtype=dtype, device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    dy_dx = tape.gradient(y, x)
    assert dy_dx.dtype == dtype and dy_dx.shape == x.shape
    xs = x.numpy().astype(np.float64)
    np.testing.assert_allclose(dy_dx.numpy(), [df(v) for v in xs], rtol=rtol)


def test_derivative_of_a_constant_is_zero(device):
    x = gg.constant(POINTS, device=device)
    c = gg.constant(7.0, device=device)
    with gg.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = c + 0.0 * x
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), np.zeros(4))
    # a constant that does not touch x at all: None, or zeros if asked
    assert tape.gradient(c, x) is None
    np.testing.assert_array_equal(tape.gradient(c, x, unconnected_gradients="zero").numpy(), np.zeros(4))


# -- 003: the five expressions of the slides, in x, w, b (and y) -------------------------------------

EXPRESSIONS = [
    ("xw+b", lambda x, w, b, y: x * w + b, lambda x, w, b, y: (x, 1.0)),
    ("xw^2+b^2", lambda x, w, b, y: x * w**2 + b**2, lambda x, w, b, y: (2 * x * w, 2 * b)),
    ("xe^w+e^b", lambda x, w, b, y: x * gg.exp(w) + gg.exp(b), lambda x, w, b, y: (x * np.exp(w), np.exp(b))),
    (
        "[y-(xw+b)]^2",
        lambda x, w, b, y: (y - (x * w + b)) ** 2,
        lambda x, w, b, y: (-2 * x * (y - (x * w + b)), -2 * (y - (x * w + b))),
    ),
    (
        "y log(xw+b)",
        lambda x, w, b, y: y * gg.log(x * w + b),
        lambda x, w, b, y: (y * x / (x * w + b), y / (x * w + b)),
    ),
]


@pytest.mark.parametrize("point", [(2.0, 1.5, 0.5, 3.0), (0.5, -0.3, 1.2, -1.0), (1.0, 2.0, 0.1, 0.7)])
@pytest.mark.parametrize("name,f,grads", EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_slide_expressions(device, name, f, grads, point):
    x, w, b, y = (gg.Variable(gg.constant(v, dtype="float64", device=device)) for v in point)
    with gg.GradientTape() as tape:
        out = f(x, w, b, y)
    dw, db = tape.gradient(out, [w, b])
    ew, eb = grads(*point)
    assert dw.item() == pytest.approx(ew, rel=1e-12)
    assert db.item() == pytest.approx(eb, rel=1e-12)


def test_z_equals_y2_minus_x2(device):
    x = gg.Variable(gg.constant(1.5, device=device))
    y = gg.Variable(gg.constant(-2.0, device=device))
    with gg.GradientTape() as tape:
        z = y**2 - x**2
    dz_dx, dz_dy = tape.gradient(z, [x, y])
    assert dz_dx.item() == pytest.approx(-2 * 1.5)
    assert dz_dy.item() == pytest.approx(2 * -2.0)


def test_gradient_descent_on_a_bowl(device):
    # J(θ1, θ2) = θ1² + θ2², θ := θ − α ∇J
    theta = gg.Variable(gg.constant([3.0, -4.0], device=device))
    for _ in range(200):
        with gg.GradientTape() as tape:
            J = gg.sum(theta**2)
        g = tape.gradient(J, theta)
        np.testing.assert_allclose(g.numpy(), 2 * theta.numpy(), rtol=1e-6)
        theta.assign_sub(0.1 * g)
    np.testing.assert_allclose(theta.numpy(), [0.0, 0.0], atol=1e-6)


# -- 004: x**2 and a linear regression fitted by gradient descent ----------------------------------------


def test_dx2_dx_is_6_at_3(device):
    x = gg.Variable(gg.constant(3.0, device=device))
    with gg.GradientTape() as tape:
        y = x**2
    dy_dx = tape.gradient(y, x)
    assert dy_dx.numpy() == 6.0


def test_dx2_dx_with_a_python_number(device):
    with gg.device(device):
        x = gg.Variable(3.0)
        with gg.GradientTape() as tape:
            y = x**2
    assert tape.gradient(y, x).item() == 6.0


def test_linear_regression_by_gradient_descent(device):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(size=(100, 1))
    x = gg.constant(x_np, dtype="float32", device=device)
    y_true = 2.0 * x + 1
    kernel = gg.Variable(gg.zeros((1, 1), device=device))
    bias = gg.Variable(gg.zeros((1,), device=device))
    learning_rate = 0.01

    for _ in range(1000):
        with gg.GradientTape() as tape:
            y_pred = x @ kernel + bias
            loss = gg.reduce_mean((y_true - y_pred) ** 2)
        grad = tape.gradient(loss, [kernel, bias])
        for var, g in zip([kernel, bias], grad, strict=True):
            var.assign_sub(learning_rate * g)

    assert kernel.numpy().item() == pytest.approx(2.0, abs=1e-3)
    assert bias.numpy().item() == pytest.approx(1.0, abs=1e-3)
    # the closed-form least-squares solution
    design = np.hstack([x_np, np.ones_like(x_np)])
    (w_ls, b_ls), *_ = np.linalg.lstsq(design, 2.0 * x_np + 1, rcond=None)
    assert kernel.numpy().item() == pytest.approx(w_ls.item(), abs=1e-3)
    assert bias.numpy().item() == pytest.approx(b_ls.item(), abs=1e-3)
    assert loss.item() < 1e-6


def test_first_gradient_of_the_regression_is_the_closed_form(device):
    # the notes print one gradient of the MSE: d/dk = −2 mean(x·r), d/db = −2 mean(r), r = y − ŷ
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal(size=(100, 1))
    x = gg.constant(x_np, dtype="float64", device=device)
    kernel = gg.Variable(gg.constant([[0.3]], dtype="float64", device=device))
    bias = gg.Variable(gg.constant([-0.2], dtype="float64", device=device))
    with gg.GradientTape() as tape:
        loss = gg.reduce_mean((2.0 * x + 1 - (x @ kernel + bias)) ** 2)
    dk, db = tape.gradient(loss, [kernel, bias])
    r = 2.0 * x_np + 1 - (x_np * 0.3 - 0.2)
    np.testing.assert_allclose(dk.numpy(), [[-2 * np.mean(x_np * r)]], rtol=1e-12)
    np.testing.assert_allclose(db.numpy(), [-2 * np.mean(r)], rtol=1e-12)


# -- 002: gradients of a loss through softmax, and of cross-entropy from logits -------------------------


def softmax64(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def batch(device):
    gg.random.seed(22)
    x = gg.random.normal([2, 4], device=device)
    w = gg.random.normal([4, 3], device=device)
    b = gg.zeros([3], device=device)
    y = gg.constant([2, 0], device=device)
    return x, w, b, y


def test_softmax_mse_gradients(batch):
    x, w, b, y = batch
    with gg.GradientTape() as tape:
        tape.watch([w, b])
        prob = gg.softmax(x @ w + b, axis=1)
        loss = gg.reduce_mean(gg.losses.mse(gg.one_hot(y, depth=3), prob))
    grads = tape.gradient(loss, [w, b])

    xn, wn, bn = (t.numpy().astype(np.float64) for t in (x, w, b))
    t = np.eye(3)[y.numpy()]
    p = softmax64(xn @ wn + bn)
    n, c = p.shape
    assert loss.item() == pytest.approx(np.mean(np.mean((t - p) ** 2, axis=1)), rel=1e-5)
    dp = 2 * (p - t) / (n * c)  # d mean(mean((p − t)², axis=1)) / dp
    dz = p * (dp - np.sum(dp * p, axis=1, keepdims=True))  # through the softmax
    assert grads[0].shape == (4, 3) and grads[1].shape == (3,)
    np.testing.assert_allclose(grads[0].numpy(), xn.T @ dz, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads[1].numpy(), dz.sum(axis=0), rtol=1e-4, atol=1e-6)


def test_crossentropy_from_logits_gradients(batch):
    x, w, b, y = batch
    with gg.GradientTape() as tape:
        tape.watch([w, b])
        logits = x @ w + b
        loss = gg.reduce_mean(
            gg.losses.categorical_crossentropy(gg.one_hot(y, depth=3), logits, from_logits=True)
        )
    grads = tape.gradient(loss, [w, b])

    xn, wn, bn = (t.numpy().astype(np.float64) for t in (x, w, b))
    t = np.eye(3)[y.numpy()]
    z = xn @ wn + bn
    p = softmax64(z)
    assert loss.item() == pytest.approx(-np.mean(np.sum(t * np.log(p), axis=1)), rel=1e-5)
    dz = (p - t) / len(z)
    np.testing.assert_allclose(grads[0].numpy(), xn.T @ dz, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads[1].numpy(), dz.sum(axis=0), rtol=1e-4, atol=1e-6)


def test_crossentropy_spellings_agree(batch):
    x, w, b, y = batch
    logits = x @ w + b
    onehot = gg.one_hot(y, depth=3)
    a = gg.losses.categorical_crossentropy(onehot, logits, from_logits=True)
    s = gg.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    t = gg.nn.functional.cross_entropy(logits, y)
    p = gg.losses.categorical_crossentropy(onehot, gg.softmax(logits), from_logits=False)
    assert a.item() == pytest.approx(s.item(), rel=1e-6)
    assert a.item() == pytest.approx(t.item(), rel=1e-6)
    assert a.item() == pytest.approx(p.item(), rel=1e-5)
