"""model.save / gg.nn.load_model (one file: JSON config + arrays), get_config / from_config."""

import json
import zipfile

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.nn import Activation, Dense, Dropout, Flatten, Input, Layer, Sequential


def _model():
    gg.manual_seed(3)
    model = Sequential([
        Input((2, 3)),
        Flatten(),
        Dense(8, activation="gelu", kernel_initializer="he_normal"),
        Dropout(0.25, seed=4),
        Activation("softplus"),
        Dense(4, use_bias=False),
    ], name="saved")
    model.compile(optimizer=gg.optimizers.AdamW(0.01, clipnorm=1.0),
                  loss=gg.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def _xy(rng, n=40):
    return rng.standard_normal((n, 2, 3)).astype(np.float32), rng.integers(0, 4, n)


def test_round_trip_architecture_weights_and_compile(tmp_path, rng):
    model = _model()
    x, y = _xy(rng)
    model.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "model.anything"  # written at exactly this path, no suffix added
    model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.anything"]
    back = gg.nn.load_model(path)
    assert back.name == "saved" and [type(layer).__name__ for layer in back.layers] == [
        "Flatten", "Dense", "Dropout", "Activation", "Dense"]
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    assert back.get_config() == model.get_config()
    assert isinstance(back.optimizer, gg.optimizers.AdamW) and back.optimizer.clipnorm == 1.0
    assert isinstance(back.loss, gg.losses.SparseCategoricalCrossentropy) and back.loss.from_logits
    assert back.evaluate(x, y, return_dict=True) == pytest.approx(model.evaluate(x, y, return_dict=True))
    back.fit(x, y, epochs=1, verbose=0)  # trainable again


def test_file_is_a_plain_npz_with_json_config(tmp_path):
    model = _model()
    path = tmp_path / "m.npz"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        assert "__config__.npy" in z.namelist()
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__config__"]))
        assert meta["format"] == "gpugrad.model/1" and meta["config"]["input"]["shape"] == [2, 3]
        assert len([k for k in f.files if k.startswith("weight_")]) == len(model.weights)


def test_uncompiled_and_uncompilable_models(tmp_path, rng):
    model = Sequential([Dense(3)])
    with pytest.raises(ValueError, match="no weights"):
        model.save(tmp_path / "x")
    model(np.zeros((2, 5), np.float64))  # built on data (float64): the input spec is saved
    model.compile(optimizer="sgd", loss=lambda t, p: ((t - p) ** 2).mean())  # a lambda cannot be written
    model.save(tmp_path / "m")
    back = gg.nn.load_model(tmp_path / "m")
    assert back.optimizer is None and back.dtype == np.float64
    np.testing.assert_array_equal(back.get_weights()[0], model.get_weights()[0])
    assert gg.nn.load_model(tmp_path / "m", compile=False).optimizer is None


def test_custom_layers_need_custom_objects(tmp_path):
    class Scale(Layer):
        def __init__(self, factor=2.0, **kw):
            super().__init__(**kw)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    def cube(x):
        return x * x * x

    model = Sequential([Input((2,)), Dense(2, activation=cube), Scale(3.0)])
    model.save(tmp_path / "c")
    with pytest.raises(ValueError, match="custom_objects"):
        gg.nn.load_model(tmp_path / "c")
    back = gg.nn.load_model(tmp_path / "c", custom_objects={"Scale": Scale, "cube": cube})
    x = np.ones((1, 2), np.float32)
    np.testing.assert_allclose(back.predict(x), model.predict(x))


def test_plain_callables_cannot_be_saved(tmp_path):
    model = Sequential([Input((2,)), Dense(2), lambda t: t * 2])
    with pytest.raises(TypeError, match="get_config"):
        model.save(tmp_path / "p")


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        gg.nn.load_model(tmp_path / "nope")
    model = _model()
    model.save_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="load_weights"):
        gg.nn.load_model(tmp_path / "w.npz")


def test_from_config_gives_fresh_weights():
    model = _model()
    clone = Sequential.from_config(model.get_config())
    assert clone.built and [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    assert not np.array_equal(clone.weights[0].numpy(), model.weights[0].numpy())
