"""model.save / gg.nn.load_model (one file: JSON config + arrays), get_config / from_config."""

import json
import os
import stat
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
    loss = lambda t, p: ((t - p) ** 2).mean()  # noqa: E731  (written by name only)
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "m")
    # Keras 3 refuses a loss it cannot find rather than handing back an uncompiled model
    with pytest.raises(gg.nn.ModelFileError, match=r"loss function '<lambda>'.*custom_objects"):
        gg.nn.load_model(tmp_path / "m")
    back = gg.nn.load_model(tmp_path / "m", compile=False)
    assert back.optimizer is None and back.dtype == np.float64
    np.testing.assert_array_equal(back.get_weights()[0], model.get_weights()[0])
    assert gg.nn.load_model(tmp_path / "m", custom_objects={"<lambda>": loss}).loss is loss


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


# -- bad files, atomic writes, compile state and optimizer state ----------------------------------


def _small(optimizer="adam", jit_compile=False, loss="mse", metrics=None):
    gg.manual_seed(5)
    model = Sequential([Input((3,)), Dense(4, activation="tanh"), Dense(2)], name="small")
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)
    return model


def _regression(n=24):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, np.stack([x.sum(1), x[:, 0] - x[:, 2]], 1).astype(np.float32)


def _rewrite(path, edit):
    """Rewrite a model file with ``edit(config dict, arrays dict)`` applied."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("__config__")))
    edit(meta, arrays)
    arrays["__config__"] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _corrupt_member(path, member="weight_0000.npy"):
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size - 1] ^= 0xFF  # the last byte of the member's array data
    path.write_bytes(bytes(data))


BAD_FILES = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a zip"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "text": (lambda p: p.write_text("hello, I am not a model\n"), "not a zip"),
    "corrupted member": (_corrupt_member, r"member 'weight_0000'\): BadZipFile: Bad CRC"),
    "bad json": (lambda p: _replace_config(p, "{not json"), "not valid JSON"),
    "unknown optimizer": (
        lambda p: _rewrite(p, lambda m, a: m["compile"]["optimizer"].update(class_name="Nadam9")),
        r"unknown optimizer class 'Nadam9'.*custom_objects",
    ),
    "unknown loss class": (
        lambda p: _rewrite(p, lambda m, a: m["compile"].update(loss={"class_name": "Hinge9", "config": {}})),
        r"unknown loss class 'Hinge9'.*custom_objects",
    ),
    "unknown layer": (
        lambda p: _rewrite(p, lambda m, a: m["config"]["layers"][0].update(class_name="Dense9")),
        r"unknown layer class 'Dense9'.*custom_objects",
    ),
    "wrong weight shape": (
        lambda p: _rewrite(p, lambda m, a: a.update(weight_0000=np.zeros((5, 4), np.float32))),
        r"weight 0 .* shape \(5, 4\) in the file .* \(3, 4\)",
    ),
    "missing weight": (lambda p: _rewrite(p, lambda m, a: a.pop("weight_0003")), r"holds 3 weight array\(s\).* 4"),
    "bad optimizer state": (
        lambda p: _rewrite(p, lambda m, a: a.update(optimizer_0000_0=np.zeros((2, 2), np.float32))),
        r"optimizer state: a state array of variable 0 .* shape \(2, 2\)",
    ),
}


def _replace_config(path, text):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["__config__"] = np.array(text)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_raise_one_error_type_naming_the_file(tmp_path, case):
    # Keras 3 raises its own ValueError naming the file and what is wrong (here: ModelFileError, a
    # ValueError), never the zip, NumPy or JSON parser's error; the model is never half-built
    model = _small()
    model.fit(*_regression(), epochs=1, verbose=0)
    path = tmp_path / "m.model"
    model.save(path)
    gg.nn.load_model(path)  # the good file loads
    damage, message = BAD_FILES[case]
    damage(path)
    with pytest.raises(gg.nn.ModelFileError, match=message) as info:
        gg.nn.load_model(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_failed_save_leaves_the_earlier_file_intact(tmp_path, monkeypatch):
    # Keras writes to a temporary file and moves it into place; a disk-full error midway must not
    # destroy the good file already there (model.save used to truncate it first)
    model = _small()
    x, y = _regression()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.model"
    model.save(path)
    before = path.read_bytes()
    model.fit(x, y, epochs=1, verbose=0)
    real = np.savez

    def disk_full(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        model.save(path)
    with pytest.raises(OSError, match="No space left"):
        model.save_weights(tmp_path / "w.npz")
    monkeypatch.setattr(np, "savez", real)
    assert path.read_bytes() == before
    model.save(tmp_path / "fresh")  # a new file gets the usual permissions (the umask's), not 0600
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "fresh").st_mode) == 0o666 & ~umask
    os.remove(tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.model"]  # no temporary file left behind
    np.testing.assert_array_equal(gg.nn.load_model(path).predict(x), gg.nn.load_model(path).predict(x))


def test_jit_compile_is_saved(tmp_path):
    # Keras 3 keeps jit_compile in the compile config
    model = _small(jit_compile=True)
    model.fit(*_regression(), epochs=1, verbose=0)
    model.save(tmp_path / "m")
    assert gg.nn.load_model(tmp_path / "m").jit_compile is True
    assert _small().jit_compile is False


def test_custom_loss_metric_and_optimizer_need_custom_objects(tmp_path):
    # Keras 3: a custom object the loader cannot find raises, naming it and custom_objects; a model
    # compiled with a custom loss used to come back silently uncompiled
    def my_loss(t, p):
        return ((t - p) ** 2).mean()

    def my_metric(t, p):
        return abs(t - p).mean()

    class Hinge9(gg.losses.MeanSquaredError):
        pass

    class MySGD(gg.optimizers.SGD):
        pass

    x, y = _regression()
    model = _small(optimizer=MySGD(0.05, momentum=0.5), loss=my_loss, metrics=[my_metric])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m")
    with pytest.raises(gg.nn.ModelFileError, match=r"loss function 'my_loss'.*custom_objects"):
        gg.nn.load_model(tmp_path / "m")
    with pytest.raises(gg.nn.ModelFileError, match=r"metric 'my_metric'"):
        gg.nn.load_model(tmp_path / "m", custom_objects={"my_loss": my_loss})
    with pytest.raises(gg.nn.ModelFileError, match=r"unknown optimizer class 'MySGD'"):
        gg.nn.load_model(tmp_path / "m", custom_objects={"my_loss": my_loss, "my_metric": my_metric})
    custom = {"my_loss": my_loss, "my_metric": my_metric, "MySGD": MySGD}
    back = gg.nn.load_model(tmp_path / "m", custom_objects=custom)
    assert back.loss is my_loss and type(back.optimizer) is MySGD and back.metrics_names == ["loss", "my_metric"]
    assert back.optimizer.momentum == 0.5 and back.optimizer.iterations == model.optimizer.iterations
    assert gg.nn.load_model(tmp_path / "m", compile=False).optimizer is None

    model2 = _small(loss=Hinge9())
    model2.save(tmp_path / "h")
    with pytest.raises(gg.nn.ModelFileError, match=r"unknown loss class 'Hinge9'"):
        gg.nn.load_model(tmp_path / "h")
    assert isinstance(gg.nn.load_model(tmp_path / "h", custom_objects={"Hinge9": Hinge9}).loss, Hinge9)


def _schedule():
    return gg.optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)


OPTIMIZERS = {
    "adam": lambda: gg.optimizers.Adam(0.01, amsgrad=True),
    "sgd-nesterov": lambda: gg.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: gg.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adamw-schedule": lambda: gg.optimizers.AdamW(_schedule(), clipnorm=1.0),
}


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_save_load_train_equals_train_bit_for_bit(tmp_path, name, jit_compile):
    # Keras 3 saves the optimizer's variables (iterations, moments) with the model: training the
    # loaded model continues exactly as the saved one would (it used to restart Adam at step 0)
    x, y = _regression()
    model = _small(OPTIMIZERS[name](), jit_compile=jit_compile)
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    model.save(tmp_path / "m")
    back = gg.nn.load_model(tmp_path / "m")
    assert back.optimizer.iterations == model.optimizer.iterations == 6
    fresh = gg.nn.load_model(tmp_path / "m", compile=False)
    fresh.compile(optimizer=OPTIMIZERS[name](), loss="mse")
    for m in (model, back, fresh):
        m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), back.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), fresh.get_weights(), strict=True))


def test_torch_style_optimizer_is_saved_with_its_state(tmp_path):
    x, y = _regression()
    model = _small(optimizer="sgd")
    model.compile(optimizer=gg.optimizers.Adam(model.parameters(), lr=0.01), loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    model.save(tmp_path / "m")
    back = gg.nn.load_model(tmp_path / "m")
    assert type(back.optimizer) is type(model.optimizer) and back.optimizer.params == back.trainable_variables
    for m in (model, back):
        m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), back.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
