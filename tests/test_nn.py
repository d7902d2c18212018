"""Dense, Sequential and the Keras-style training loop."""

import sys

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import metrics
from gpugrad.nn import Dense, Sequential, activations, initializers


def _dev(device):
    """The normalized name ('cpu' or 'cuda:N') of the fixture's device."""
    return gg.zeros(1, device=device).device


def _blobs(rng, n=240, classes=3, features=4):
    centres = rng.normal(0, 3.0, (classes, features))
    labels = rng.integers(0, classes, n)
    x = (centres[labels] + rng.standard_normal((n, features))).astype(np.float32)
    return x, labels.astype(np.int64)


def _classifier(device, classes=3):
    with gg.device(device):
        gg.random.seed(0)
        model = Sequential([Dense(8, activation="relu"), Dense(classes)])
    return model


def _sparse_logits(y, z):
    return gg.losses.sparse_categorical_crossentropy(y, z, from_logits=True)


# -- Dense ------------------------------------------------------------------------------------------


def test_dense_builds_on_first_call_from_the_input(device, rng):
    layer = Dense(3)
    assert not layer.built and layer.kernel is None and layer.trainable_variables == []
    x = gg.constant(rng.standard_normal((5, 4)), device=device)  # float64
    y = layer(x)
    assert layer.built
    assert layer.kernel.shape == (4, 3) and layer.bias.shape == (3,)
    assert layer.kernel.dtype == np.float64 and layer.kernel.device == _dev(device)
    assert layer.trainable_variables == [layer.kernel, layer.bias]
    assert y.shape == (5, 3) and y.device == _dev(device)
    expected = x.numpy() @ layer.kernel.numpy() + layer.bias.numpy()
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)


def test_dense_integer_inputs_give_float32_weights(device):
    layer = Dense(2)
    out = layer(gg.constant([[1, 2, 3]], device=device))
    assert layer.kernel.dtype == np.float32 and out.dtype == np.float32


def test_dense_activations_by_name_and_callable(device, rng):
    x = gg.constant(rng.standard_normal((6, 3)).astype(np.float32), device=device)
    ref = Dense(4, kernel_initializer="glorot_uniform")
    z = ref(x).numpy()
    for name, fn in [
        ("relu", lambda a: np.maximum(a, 0)),
        ("sigmoid", lambda a: 1 / (1 + np.exp(-a))),
        ("tanh", np.tanh),
        ("softmax", lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
        ("linear", lambda a: a),
        (None, lambda a: a),
        (lambda t: t * 2.0, lambda a: 2 * a),
    ]:
        layer = Dense(4, activation=name)
        layer(x)
        layer.kernel.assign(ref.kernel)
        np.testing.assert_allclose(layer(x).numpy(), fn(z), rtol=1e-5, atol=1e-6, err_msg=str(name))


def test_dense_without_bias_and_callable_initializer(device):
    def init(shape, dtype, device):
        return gg.ones(shape, dtype=dtype, device=device) * 0.5

    layer = Dense(2, use_bias=False, kernel_initializer=init)
    y = layer(gg.ones((1, 3), device=device))
    assert layer.bias is None and len(layer.trainable_variables) == 1
    np.testing.assert_allclose(y.numpy(), [[1.5, 1.5]])


@pytest.mark.parametrize("name", ["zeros", "glorot_uniform", "he_normal"])
def test_initializers(device, name):
    fn = initializers.get(name)
    gg.random.seed(1)
    w = fn((400, 300), "float32", device)
    a = w.numpy()
    assert a.shape == (400, 300) and a.dtype == np.float32
    if name == "zeros":
        assert not a.any()
    elif name == "glorot_uniform":
        limit = np.sqrt(6 / 700)
        assert np.abs(a).max() <= limit and a.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    else:
        std = np.sqrt(2 / 400)
        assert np.abs(a).max() <= 2 * std / 0.8796 + 1e-6
        assert a.std() == pytest.approx(std, rel=0.03)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="relu.*sigmoid.*softmax.*tanh"):
        Dense(2, activation="swishy")
    with pytest.raises(ValueError, match="glorot_uniform.*he_normal.*zeros"):
        Dense(2, kernel_initializer="orthogonal-ish")
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    assert activations.get("ReLU") is activations.relu


def test_dense_rejects_a_changed_input_width():
    layer = Dense(2)
    layer(gg.ones((1, 3)))
    with pytest.raises(ValueError, match="last dimension 3"):
        layer(gg.ones((1, 4)))


# -- Sequential -------------------------------------------------------------------------------------


def test_sequential_structure(device):
    model = Sequential([Dense(4, activation="relu")])
    model.add(Dense(2))
    assert len(model) == 2 and isinstance(model[0], Dense) and model.layers[1] is model[1]
    assert model.trainable_variables == [] and not model.built
    out = model(gg.ones((3, 5), device=device))
    assert out.shape == (3, 2) and model.built
    tv = model.trainable_variables
    assert tv == [model[0].kernel, model[0].bias, model[1].kernel, model[1].bias]
    assert model.count_params() == 5 * 4 + 4 + 4 * 2 + 2


def test_fit_decreases_the_loss_and_history_has_one_value_per_epoch(device, rng):
    x, y = _blobs(rng)
    model = _classifier(device)
    model.compile(gg.optimizers.Adam(0.02), _sparse_logits, metrics=["accuracy"])
    hist = model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    assert isinstance(hist, gg.nn.History)
    assert hist.epoch == list(range(6))
    assert len(hist.history["loss"]) == 6 and len(hist.history["accuracy"]) == 6
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.9
    assert model[0].kernel.device == _dev(device)


def test_linear_regression_recovers_w_and_b(device, rng):
    x = rng.standard_normal((64, 1)).astype(np.float32)
    y = 2 * x + 1
    with gg.device(device):
        model = Sequential([Dense(1)])
    model.compile(optimizer="SGD", loss="mse")
    model.fit(x, y, epochs=150, batch_size=16, verbose=0)
    assert model[0].kernel.item() == pytest.approx(2.0, abs=1e-3)
    assert model[0].bias.item() == pytest.approx(1.0, abs=1e-3)


def test_targets_of_rank_one_against_a_single_output(device, rng):
    x = rng.standard_normal((32, 2)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0], np.float32)).astype(np.float32)  # shape (32,)
    with gg.device(device):
        model = Sequential([Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    hist = model.fit(x, y, epochs=3, verbose=0)
    assert np.isfinite(hist.history["loss"]).all() and "mae" in hist.history


def test_validation_data_adds_val_keys(device, rng):
    x, y = _blobs(rng)
    model = _classifier(device)
    model.compile("adam", _sparse_logits, metrics=["accuracy"])
    hist = model.fit(x[:200], y[:200], epochs=2, validation_data=(x[200:], y[200:]), verbose=0)
    assert list(hist.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(hist.history["val_loss"]) == 2
    loss, acc = model.evaluate(x[200:], y[200:])
    assert hist.history["val_loss"][-1] == pytest.approx(loss, rel=1e-5)
    assert hist.history["val_accuracy"][-1] == pytest.approx(acc)
    hist = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
    assert "val_loss" in hist.history


def test_evaluate_and_metrics_match_numpy(device, rng):
    x, y = _blobs(rng)
    model = _classifier(device)
    mets = ["accuracy", metrics.sparse_categorical_accuracy]
    model.compile("adam", "sparse_categorical_crossentropy", metrics=mets)
    model.fit(x, y, epochs=1, verbose=0)
    probs_model = Sequential([model[0], model[1], gg.softmax])
    p = probs_model.predict(x)
    logs = model.evaluate(x, y, return_dict=True)
    assert set(logs) == {"loss", "accuracy", "sparse_categorical_accuracy"}
    # the compiled loss is on the raw outputs (from_logits=False, as Keras): check accuracy only
    assert logs["accuracy"] == pytest.approx(np.mean(np.argmax(p, -1) == y))
    assert logs["sparse_categorical_accuracy"] == logs["accuracy"]
    assert model.metrics_names == ["loss", "accuracy", "sparse_categorical_accuracy"]
    single = Sequential([Dense(1)])
    single.compile("sgd", "mse")
    assert isinstance(single.evaluate(x, y.astype(np.float32)), float)


@pytest.mark.parametrize("kind", ["binary", "categorical", "sparse"])
def test_accuracy_follows_keras_rules(kind, rng):
    x, y = _blobs(rng, classes=2 if kind == "binary" else 3)
    if kind == "binary":
        model, loss, target = Sequential([Dense(1, activation="sigmoid")]), "binary_crossentropy", y[:, None]
        target = target.astype(np.float32)
    elif kind == "categorical":
        model, loss = Sequential([Dense(3, activation="softmax")]), "categorical_crossentropy"
        target = np.eye(3, dtype=np.float32)[y]
    else:
        model, loss = Sequential([Dense(3, activation="softmax")]), "sparse_categorical_crossentropy"
        target = y
    model.compile("adam", loss, metrics=["accuracy"])
    model.fit(x, target, epochs=1, verbose=0)
    p = model.predict(x)
    expected = np.mean((p[:, 0] > 0.5) == y) if kind == "binary" else np.mean(np.argmax(p, -1) == y)
    _, acc = model.evaluate(x, target)
    assert acc == pytest.approx(expected)


def test_functional_metrics(device):
    t = gg.constant([[0.0, 1.0], [1.0, 0.0]], device=device)
    p = gg.constant([[0.2, 0.8], [0.3, 0.7]], device=device)
    np.testing.assert_allclose(metrics.categorical_accuracy(t, p).numpy(), [1, 0])
    labels = gg.constant([1, 1], device=device)
    np.testing.assert_allclose(metrics.sparse_categorical_accuracy(labels, p).numpy(), [1, 1])
    np.testing.assert_allclose(metrics.binary_accuracy(t, p).numpy(), [1, 0])
    np.testing.assert_allclose(metrics.mae(t, p).numpy(), [0.2, 0.7], rtol=1e-6)
    with pytest.raises(ValueError, match="accuracy.*mae"):
        metrics.get("f1")


def test_predict_batches_match_one_call(device, rng):
    x, _ = _blobs(rng, n=100)
    model = _classifier(device)
    whole = model(gg.constant(x, device=device)).numpy()
    for bs in (7, 32, 100, None):
        out = model.predict(x, batch_size=bs)
        assert type(out) is np.ndarray  # host NumPy, as Keras returns
        np.testing.assert_allclose(out, whole, rtol=1e-6, atol=1e-6)


def test_summary_prints_parameter_counts(capsys):
    model = Sequential([Dense(10, activation="relu"), Dense(10)], name="two_layers")
    model.summary()
    out = capsys.readouterr().out
    assert "two_layers" in out and "unbuilt" in out
    model.build((None, 4))
    model.summary()
    out = capsys.readouterr().out
    assert "(None, 10)" in out
    assert " 50" in out and " 110" in out  # 4*10+10, 10*10+10
    assert "Total params: 160" in out and "Trainable params: 160" in out


def test_save_and_load_weights_round_trip(device, rng, tmp_path):
    x, y = _blobs(rng, n=64)
    model = _classifier(device)
    model.compile("adam", _sparse_logits)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "weights.npz"
    model.save_weights(path)
    expected = model.predict(x)

    # into a built model with other weights, on the same device
    other = _classifier(device)
    other(gg.constant(x[:1], device=device))
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x), expected)

    # into a fresh, unbuilt model, on the CPU (GPU -> CPU when device is cuda)
    with gg.device("cpu"):
        fresh = Sequential([Dense(8, activation="relu"), Dense(3)])
        fresh.load_weights(str(path)[:-4])  # the suffix is optional
    assert fresh.built and fresh[0].kernel.device == "cpu"
    for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(fresh.predict(x), expected, rtol=1e-5, atol=1e-6)

    # and back onto the device of the fixture
    with gg.device(device):
        back = Sequential([Dense(8, activation="relu"), Dense(3)])
    fresh.save_weights(tmp_path / "cpu.npz")
    back.load_weights(tmp_path / "cpu.npz")
    assert back[0].kernel.device == _dev(device)
    np.testing.assert_allclose(back.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_load_weights_into_a_different_architecture_fails(tmp_path):
    model = Sequential([Dense(2)])
    model.build((None, 3))
    model.save_weights(tmp_path / "w")
    wrong = Sequential([Dense(2), Dense(1)])
    wrong.build((None, 3))
    with pytest.raises(ValueError, match="architectures differ"):
        wrong.load_weights(tmp_path / "w")
    wider = Sequential([Dense(4)])
    wider.build((None, 3))
    with pytest.raises(ValueError, match="shape"):
        wider.load_weights(tmp_path / "w")  # save_weights wrote exactly the path given
    with pytest.raises(ValueError, match="no weights yet"):
        Sequential([Dense(1)]).save_weights(tmp_path / "none")


def test_fit_is_reproducible_with_a_seed(rng):
    x, y = _blobs(rng, n=64)
    runs = []
    for _ in range(2):
        gg.random.seed(3)
        model = Sequential([Dense(4, activation="tanh"), Dense(3)])
        model.compile("sgd", _sparse_logits)
        runs.append(model.fit(x, y, epochs=2, batch_size=8, verbose=0).history["loss"])
    assert runs[0] == runs[1]


def test_train_on_batch_and_integer_labels(device, rng):
    x, y = _blobs(rng, n=32)
    model = _classifier(device)
    model.compile("sgd", _sparse_logits)
    first = model.train_on_batch(x, y)
    for _ in range(20):
        last = model.train_on_batch(gg.constant(x, device=device), gg.constant(y[:, None], device=device))
    assert last < first


def test_callbacks_and_stop_training(rng):
    x, y = _blobs(rng, n=32)
    model = _classifier("cpu")
    model.compile("sgd", _sparse_logits)

    class Stop:
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch, logs):
            self.seen.append((epoch, sorted(logs)))
            if epoch == 1:
                model.stop_training = True

    cb = Stop()
    hist = model.fit(x, y, epochs=10, verbose=0, callbacks=[cb])
    assert hist.epoch == [0, 1] and cb.seen == [(0, ["loss"]), (1, ["loss"])]


# -- errors -----------------------------------------------------------------------------------------


def test_fit_and_evaluate_before_compile():
    model = Sequential([Dense(1)])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(np.ones((4, 2)), np.ones((4, 1)))
    with pytest.raises(RuntimeError, match="compile"):
        model.evaluate(np.ones((4, 2)), np.ones((4, 1)))


def test_x_and_y_of_different_lengths():
    model = Sequential([Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"x has 5 .*y has 4"):
        model.fit(np.ones((5, 2), np.float32), np.ones((4, 1), np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"x has 3 .*y has 2"):
        model.evaluate(np.ones((3, 2), np.float32), np.ones((2, 1), np.float32))


def test_unknown_compile_names():
    model = Sequential([Dense(1)])
    with pytest.raises(ValueError, match="adam, adamw, rmsprop, sgd"):
        model.compile("rmsprop-ish", "mse")
    with pytest.raises(ValueError, match="binary_crossentropy.*mse"):
        model.compile("sgd", "hinge-ish")
    with pytest.raises(ValueError, match="accuracy.*mae"):
        model.compile("sgd", "mse", metrics=["f1"])
    with pytest.raises(ValueError, match="loss is required"):
        model.compile("sgd")


def test_loss_shape_mismatch_names_both_shapes():
    model = Sequential([Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 1\)"):
        model.fit(np.ones((4, 2), np.float32), np.ones((4, 3), np.float32), verbose=0)


# -- output -------------------------------------------------------------------------------------------


def _small_fit(verbose, epochs=2):
    rng = np.random.default_rng(0)
    x, y = _blobs(rng, n=40)
    model = _classifier("cpu")
    model.compile("sgd", _sparse_logits, metrics=["accuracy"])
    return model.fit(x, y, epochs=epochs, batch_size=16, verbose=verbose)


def test_verbose_0_prints_nothing(capsys):
    _small_fit(0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    _small_fit(2, epochs=3)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3") and "loss: " in lines[0]
    assert "accuracy: " in lines[-1]


def test_verbose_1_without_tqdm_falls_back_to_lines(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes `from tqdm.auto import ...` fail
    monkeypatch.setitem(sys.modules, "tqdm", None)
    _small_fit(1, epochs=2)
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2") and "loss: " in lines[1]


def test_verbose_1_shows_a_progress_bar(capsys):
    pytest.importorskip("tqdm")
    _small_fit(1, epochs=1)
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "3/3" in out and "loss: " in out and "accuracy: " in out
