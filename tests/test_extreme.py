"""Extreme inputs in float32: logits of ±1e4 and probabilities of exactly 0 and 1.

Every forward value and every gradient must be finite, and the values must be the limits one
expects (σ(−1e4) = 0, the largest log-softmax entry 0, ...).
"""

import warnings

import numpy as np
import pytest

import gpugrad as gg

BIG = 1e4
EXTREMES = {
    "-1e4": [-BIG],
    "+1e4": [BIG],
    "mixed": [-BIG, 0.0, BIG],
    "mixed rows": [[-BIG, 0.0, BIG], [BIG, BIG, -BIG], [0.0, -BIG, -BIG]],
}


@pytest.fixture(autouse=True)
def no_numpy_warnings():
    # an overflow or 0/0 inside an op shows up as a RuntimeWarning: make it an error
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


def value_and_gradient(f, x):
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    g = tape.gradient(y, x)
    assert np.all(np.isfinite(y.numpy())), y
    assert g is not None and np.all(np.isfinite(g.numpy())), g
    assert g.shape == x.shape and g.dtype == np.float32
    return y.numpy(), g.numpy()


def logits(device, name):
    return gg.constant(EXTREMES[name], dtype="float32", device=device)


@pytest.mark.parametrize("name", list(EXTREMES))
def test_sigmoid(device, name):
    x = logits(device, name)
    y, g = value_and_gradient(gg.sigmoid, x)
    xs = x.numpy()
    np.testing.assert_array_equal(y[xs == -BIG], 0.0)
    np.testing.assert_array_equal(y[xs == BIG], 1.0)
    np.testing.assert_array_equal(y[xs == 0], 0.5)
    np.testing.assert_array_equal(g[xs != 0], 0.0)
    np.testing.assert_array_equal(g[xs == 0], 0.25)


@pytest.mark.parametrize("name", list(EXTREMES))
def test_tanh(device, name):
    x = logits(device, name)
    y, g = value_and_gradient(gg.tanh, x)
    np.testing.assert_array_equal(y, np.sign(x.numpy()))
    np.testing.assert_array_equal(g, (x.numpy() == 0).astype(np.float32))


@pytest.mark.parametrize("name", list(EXTREMES))
def test_relu(device, name):
    x = logits(device, name)
    y, g = value_and_gradient(gg.relu, x)
    np.testing.assert_array_equal(y, np.maximum(x.numpy(), 0))
    np.testing.assert_array_equal(g, (x.numpy() > 0).astype(np.float32))  # relu'(0) = 0


@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("name", list(EXTREMES))
def test_softmax(device, name, axis):
    x = logits(device, name)
    y, _ = value_and_gradient(lambda x: gg.softmax(x, axis=axis), x)
    assert np.all(y >= 0) and np.all(y <= 1)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-6)
    # a weighted sum, so the gradient is not identically zero by symmetry
    w = gg.constant(np.arange(x.size, dtype=np.float32).reshape(x.shape), device=device)
    value_and_gradient(lambda x: gg.sum(gg.softmax(x, axis=axis) * w), x)


def test_softmax_of_mixed_extremes_is_one_hot(device):
    y = gg.softmax(logits(device, "mixed")).numpy()
    np.testing.assert_array_equal(y, [0.0, 0.0, 1.0])
    rows = gg.softmax(logits(device, "mixed rows"), axis=-1).numpy()
    np.testing.assert_allclose(rows, [[0, 0, 1], [0.5, 0.5, 0], [1, 0, 0]], atol=1e-7)


@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("name", list(EXTREMES))
def test_log_softmax(device, name, axis):
    x = logits(device, name)
    y, g = value_and_gradient(lambda x: gg.log_softmax(x, axis=axis), x)
    # the largest entry is −log(number of maxima): 0 for a single maximum
    xs = x.numpy()
    ties = (xs == xs.max(axis=axis, keepdims=True)).sum(axis=axis)
    np.testing.assert_allclose(y.max(axis=axis), -np.log(ties), atol=1e-6)
    assert np.all(y <= 0)
    # d Σ log_softmax / dx = 1 − n·softmax
    n = x.shape[axis]
    np.testing.assert_allclose(g, 1 - n * gg.softmax(x, axis=axis).numpy(), atol=1e-5)


def test_log_softmax_max_element_is_zero(device):
    y = gg.log_softmax(logits(device, "mixed")).numpy()
    assert y.max() == 0.0
    np.testing.assert_array_equal(y, [-2 * BIG, -BIG, 0.0])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1])
@pytest.mark.parametrize("name", list(EXTREMES))
def test_logsumexp(device, name, axis, keepdims):
    x = logits(device, name)
    y, g = value_and_gradient(lambda x: gg.logsumexp(x, axis=axis, keepdims=keepdims), x)
    xs = x.numpy().astype(np.float64)
    m = xs.max(axis=axis, keepdims=True)
    expected = np.log(np.exp(xs - m).sum(axis=axis, keepdims=True)) + m
    np.testing.assert_allclose(y, expected if keepdims else np.squeeze(expected, axis=axis), rtol=1e-6)
    e = np.exp(xs - m)
    # the softmax, up to the rounding of a float32 log-sum-exp of 1e4 (an ulp is ~1e-3)
    np.testing.assert_allclose(g, e / e.sum(axis=axis, keepdims=True), rtol=1e-3, atol=1e-7)


def test_logsumexp_of_mixed_extremes(device):
    assert gg.logsumexp(logits(device, "mixed")).item() == BIG
    assert gg.logsumexp(logits(device, "-1e4")).item() == -BIG


# -- losses ------------------------------------------------------------------------------------------

LABELS = [2, 0, 1]  # rows of "mixed rows": right, tied-right, wrong


def onehot(device):
    return gg.one_hot(gg.constant(LABELS, device=device), 3)


def probs_0_1(device):
    """Probabilities of exactly 0 and 1: right, right and confidently wrong."""
    return gg.constant([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], device=device)


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_categorical_crossentropy_from_logits(device, reduction):
    z = logits(device, "mixed rows")
    def loss(z):
        return gg.losses.categorical_crossentropy(onehot(device), z, from_logits=True, reduction=reduction)

    y, g = value_and_gradient(loss, z)
    rows = [0.0, np.log(2.0), BIG]  # exact, a tie, a margin of 1e4
    expected = {"mean": np.mean(rows), "sum": np.sum(rows), "none": rows}[reduction]
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=2e-3)  # float32 resolves 1e4 to ~1e-3
    scale = {"mean": 1 / 3, "sum": 1.0, "none": 1.0}[reduction]
    p = gg.softmax(z).numpy()
    np.testing.assert_allclose(g, scale * (p - onehot(device).numpy()), atol=1e-7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sparse_categorical_crossentropy_from_logits(device, reduction):
    z = logits(device, "mixed rows")
    labels = gg.constant(LABELS, device=device)
    def loss(z):
        return gg.losses.sparse_categorical_crossentropy(labels, z, from_logits=True, reduction=reduction)

    y, g = value_and_gradient(loss, z)
    dense = gg.losses.categorical_crossentropy(onehot(device), z, from_logits=True, reduction=reduction)
    np.testing.assert_allclose(y, dense.numpy(), rtol=1e-6)
    assert np.abs(g).max() <= 1.0


def test_torch_cross_entropy(device):
    z = logits(device, "mixed rows")
    labels = gg.constant(LABELS, device=device)
    y, g = value_and_gradient(lambda z: gg.nn.functional.cross_entropy(z, labels), z)
    assert y == pytest.approx((np.log(2.0) + BIG) / 3, rel=1e-6)
    y, g = value_and_gradient(lambda z: gg.nn.functional.cross_entropy(z, onehot(device)), z)
    assert y == pytest.approx((np.log(2.0) + BIG) / 3, rel=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_crossentropy_from_logits(device, reduction):
    z = logits(device, "mixed rows")
    t = onehot(device)
    y, g = value_and_gradient(
        lambda z: gg.losses.binary_crossentropy(t, z, from_logits=True, reduction=reduction), z
    )
    zs, ts = z.numpy().astype(np.float64), t.numpy()
    rows = np.mean(np.maximum(zs, 0) - zs * ts + np.log1p(np.exp(-np.abs(zs))), axis=-1)
    expected = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    scale = {"mean": 1 / 9, "sum": 1 / 3, "none": 1 / 3}[reduction]
    np.testing.assert_allclose(g, scale * (gg.sigmoid(z).numpy() - ts), atol=1e-7)
    y2, _ = value_and_gradient(lambda z: gg.nn.functional.binary_cross_entropy_with_logits(z, t), z)
    if reduction == "mean":
        assert y2 == pytest.approx(y.item(), rel=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_crossentropy_of_probabilities_0_and_1(device, reduction):
    p = probs_0_1(device)
    t = onehot(device)
    y, g = value_and_gradient(lambda p: gg.losses.binary_crossentropy(t, p, reduction=reduction), p)
    # clipped into [1e-7, 1 − 1e-7] (as float32): a right 0/1 costs about 1e-7, a wrong one about 16
    ps = np.clip(p.numpy(), np.float32(1e-7), np.float32(1 - 1e-7)).astype(np.float64)
    ts = t.numpy()
    rows = -np.mean(ts * np.log(ps) + (1 - ts) * np.log(1 - ps), axis=-1)
    assert rows[2] > 10
    expected = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]
    np.testing.assert_allclose(y, expected, rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(g, 0.0)  # the clip is flat beyond its bounds
    value_and_gradient(lambda p: gg.nn.functional.binary_cross_entropy(p, t, reduction=reduction), p)


def test_binary_crossentropy_targets_at_0_and_1_are_finite_in_the_targets(device):
    p = probs_0_1(device)
    t = onehot(device)
    _, g = value_and_gradient(lambda t: gg.losses.binary_crossentropy(t, p), t)
    # d/dt = −(log p − log(1 − p)) / 9 with p clipped: about ±16.1 / 9
    np.testing.assert_allclose(np.abs(g), -np.log(1e-7) / 9, rtol=2e-2)  # 1 − 1e-7 rounds in float32


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_categorical_crossentropy_of_probabilities_0_and_1(device, sparse, reduction):
    p = probs_0_1(device)
    if sparse:
        labels = gg.constant(LABELS, device=device)
        y, g = value_and_gradient(
            lambda p: gg.losses.sparse_categorical_crossentropy(labels, p, reduction=reduction), p
        )
    else:
        y, g = value_and_gradient(
            lambda p: gg.losses.categorical_crossentropy(onehot(device), p, reduction=reduction), p
        )
    rows = np.array([-np.log1p(-1e-7), -np.log1p(-1e-7), -np.log(1e-7)])
    expected = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]
    np.testing.assert_allclose(y, expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_of_extremes(device, reduction):
    z = logits(device, "mixed rows")
    t = onehot(device)
    y, g = value_and_gradient(lambda z: gg.losses.mse(t, z, reduction=reduction), z)
    rows = np.mean((z.numpy().astype(np.float64) - t.numpy()) ** 2, axis=-1)
    expected = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    value_and_gradient(lambda z: gg.nn.functional.mse_loss(z, t, reduction=reduction), z)


@pytest.mark.parametrize("name", sorted(gg.losses.LOSSES))
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_every_loss_by_name(device, name, from_logits):
    loss = gg.losses.get(name)
    y_true = gg.constant(LABELS, device=device) if name.startswith("sparse") else onehot(device)
    if name in ("mse", "mean_squared_error"):
        if from_logits:
            pytest.skip("mse has no logits form")
        kwargs = {}
    else:
        kwargs = {"from_logits": from_logits}
    x = logits(device, "mixed rows") if from_logits else probs_0_1(device)
    value_and_gradient(lambda x: loss(y_true, x, **kwargs), x)


def test_second_order_at_extremes_is_finite(device):
    z = logits(device, "mixed rows")
    labels = gg.constant(LABELS, device=device)
    with gg.GradientTape() as outer:
        outer.watch(z)
        with gg.GradientTape() as inner:
            inner.watch(z)
            loss = gg.losses.sparse_categorical_crossentropy(labels, z, from_logits=True) + gg.sum(
                gg.sigmoid(z) + gg.tanh(z) + gg.log_softmax(z)
            )
        g = inner.gradient(loss, z)
        s = gg.sum(g * g)
    h = outer.gradient(s, z)
    assert np.all(np.isfinite(g.numpy())) and np.all(np.isfinite(h.numpy()))
