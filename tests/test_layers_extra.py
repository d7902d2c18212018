"""Input / input_shape=, Dropout, Flatten, Activation; training flag; get_config round trips."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.nn import Activation, Dense, Dropout, Flatten, Input, Sequential


def test_input_builds_the_model_at_once(capsys):
    model = Sequential([Input((4,)), Dense(8, activation="relu"), Dense(3)])
    assert model.built and [v.shape for v in model.weights] == [(4, 8), (8,), (8, 3), (3,)]
    assert len(model.layers) == 2  # the Input is not a layer of the stack (as Keras)
    model.summary()
    assert "(None, 3)" in capsys.readouterr().out


def test_input_shape_on_first_layer_and_add():
    model = Sequential()
    model.add(Dense(5, input_shape=(2,)))
    assert model.built and model.weights[0].shape == (2, 5)
    model.add(Dense(1))
    assert model.weights[-2].shape == (5, 1)
    assert model.predict(np.zeros((3, 2), np.float32)).shape == (3, 1)


def test_input_dtype_and_errors():
    model = Sequential([Input((3,), dtype="float64"), Dense(2)])
    assert model.dtype == np.float64
    with pytest.raises(ValueError, match="shape"):
        Input()
    with pytest.raises(ValueError, match="positive"):
        Input((0,))
    with pytest.raises(ValueError, match="first"):
        Sequential([Dense(2), Input((3,))])


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.9])
def test_dropout_scaling_and_rate(device, rate):
    layer = Dropout(rate, seed=3)
    x = gg.ones((200, 50), device=device)
    y = layer(x, training=True).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1.0 / (1.0 - rate), rtol=1e-6)  # inverted dropout, as Keras
    assert abs(1.0 - kept.mean() - rate) < 0.03
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())  # inference: the identity
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())


def test_dropout_seeding(device):
    x = gg.ones((8, 16), device=device)
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    first = a(x, training=True).numpy()
    np.testing.assert_array_equal(first, b(x, training=True).numpy())  # same seed, same masks
    assert not np.array_equal(first, a(x, training=True).numpy())  # a new mask on every call
    gg.manual_seed(11)
    c = Dropout(0.5)(x, training=True).numpy()
    gg.manual_seed(11)
    np.testing.assert_array_equal(c, Dropout(0.5)(x, training=True).numpy())


def test_dropout_gradient_is_the_mask(device):
    x = gg.tensor(np.arange(1.0, 13.0).reshape(3, 4), device=device, requires_grad=True, dtype="float64")
    y = Dropout(0.5, seed=0)(x, training=True)
    (g,) = gg.autograd.grad(y.sum(), [x])
    np.testing.assert_allclose(g.numpy(), (y.numpy() != 0) * 2.0)


def test_dropout_noise_shape_and_errors():
    y = Dropout(0.5, noise_shape=(None, 1), seed=1)(gg.ones((6, 5)), training=True).numpy()
    assert all(len(set(row)) == 1 for row in y)  # one mask value per sample, shared along axis 1
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match="rate"):
            Dropout(bad)


def test_flatten_and_activation(device, rng):
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    out = Flatten()(gg.tensor(x, device=device))
    assert out.shape == (4, 6)
    np.testing.assert_array_equal(out.numpy(), x.reshape(4, 6))
    assert Flatten()(gg.tensor(np.arange(3.0), device=device)).shape == (3, 1)
    assert Flatten().compute_output_shape((None, 2, 3)) == (None, 6)
    act = Activation("gelu")
    np.testing.assert_allclose(act(gg.tensor(x)).numpy(), gg.gelu(gg.tensor(x)).numpy())
    with pytest.raises(ValueError, match="unknown activation"):
        Activation("nope")


def test_model_with_flatten_and_dropout_trains_and_predicts(rng):
    x = rng.standard_normal((64, 2, 2)).astype(np.float32)
    y = (x.reshape(64, 4).sum(axis=1) > 0).astype(np.int64)
    model = Sequential([Input((2, 2)), Flatten(), Dense(16, activation="silu"), Dropout(0.2, seed=0), Dense(2)])
    model.compile(optimizer="adam", loss=gg.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    p1, p2 = model.predict(x), model.predict(x)
    np.testing.assert_array_equal(p1, p2)  # no dropout at inference


def test_layer_configs_round_trip():
    for layer in (
        Dense(3, activation="elu", use_bias=False, kernel_initializer="he_normal", input_shape=(4,)),
        Dropout(0.3, noise_shape=(None, 1), seed=5),
        Flatten(),
        Activation("leaky_relu"),
        Input((2, 3), dtype="float64"),
    ):
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config


def test_dropout_draws_a_new_mask_in_every_compiled_call():
    layer = Dropout(0.5, seed=2)
    step = gg.jit(lambda x: layer(x, training=True))
    x = gg.ones((16, 16))
    a, b = step(x).numpy(), step(x).numpy()
    assert step.trace_count == 1 and not np.array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 2.0}


def test_fit_with_dropout_and_jit_compile_matches_eager(rng):
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def train(jit):
        gg.manual_seed(1)
        model = Sequential([Input((4,)), Dense(8, activation="relu"), Dropout(0.5, seed=3), Dense(2)])
        model.compile(optimizer="adam", loss=gg.losses.SparseCategoricalCrossentropy(True), jit_compile=jit)
        return model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]

    np.testing.assert_allclose(train(True), train(False), rtol=1e-5)
