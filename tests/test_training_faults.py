"""Training under bad input: callbacks, optimizers, ``fit``/``predict`` and the distributed helpers
refuse what Keras 3, ``torch.optim`` and Horovod refuse, with an error naming what was given.
Each test says which peer behaviour it follows."""

import math
import warnings

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import callbacks as C
from gpugrad.nn import Dense, Input, Sequential


def _data(n=16, features=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x @ np.arange(1, features + 1, dtype=np.float32)[:, None]).astype(np.float32)
    return x, y


def _model(features=2, optimizer="sgd"):
    model = Sequential([Input((features,)), Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


# -- callbacks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, [0.1], "0.1", True])
def test_scheduler_output_must_be_a_float(bad):
    # Keras 3: ValueError "The output of the `schedule` function should be a float"
    model = _model()
    x, y = _data()
    lr_before = model.optimizer.learning_rate
    with pytest.raises(ValueError, match=r"output of the `schedule` function should be a float.*epoch 0"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[C.LearningRateScheduler(lambda epoch, lr: bad)])
    assert model.optimizer.learning_rate == lr_before


def test_scheduler_takes_numpy_and_tensor_scalars():
    model = _model()
    x, y = _data()
    for value, want in ((np.float32(0.25), 0.25), (gg.constant(0.5), 0.5), (np.array(0.125), 0.125), (1, 1.0)):
        sched = C.LearningRateScheduler(lambda epoch, lr, v=value: v)
        h = model.fit(x, y, epochs=1, verbose=0, callbacks=[sched])
        assert h.history["learning_rate"] == [want]


def test_terminate_on_nan_stops_after_the_first_nan_batch():
    # Keras 3's TerminateOnNaN: stop_training once a batch's loss is NaN or inf
    model = _model()
    x, y = _data(n=32)
    x[9] = np.nan  # in the second batch of 8 (no shuffling)
    seen = []

    class Count(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    h = model.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0, callbacks=[C.TerminateOnNaN(), Count()])
    assert seen == [0, 1]
    assert len(h.history["loss"]) == 1 and math.isnan(h.history["loss"][0])
    assert model.stop_training is True


def test_terminate_on_nan_lets_finite_training_run():
    model = _model()
    x, y = _data()
    h = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[C.TerminateOnNaN()])
    assert len(h.history["loss"]) == 3
    assert "TerminateOnNaN" in C.__all__ and gg.callbacks.TerminateOnNaN is C.TerminateOnNaN


# -- optimizers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda s: gg.optimizers.SGD(learning_rate=s),
    lambda s: gg.optimizers.Adam(learning_rate=s),
    lambda s: gg.optimizers.SGD([gg.Variable(np.zeros(2, np.float32))], lr=s),
])
def test_learning_rate_of_a_schedule_built_optimizer_cannot_be_set(make):
    # Keras 3: TypeError, the learning rate of an optimizer built with a schedule is not settable
    sched = gg.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    opt = make(sched)
    with pytest.raises(TypeError, match="schedule"):
        opt.learning_rate = 0.01
    assert opt.learning_rate is sched
    opt2 = gg.optimizers.SGD(learning_rate=0.1)
    opt2.learning_rate = sched  # a schedule may still replace a float
    assert opt2.learning_rate is sched


def test_none_gradients_warn_once_naming_the_variables():
    # Keras 3: warns "Gradients do not exist for variables [...]" and updates the others
    a = gg.Variable(np.ones(2, np.float32), name="used")
    b = gg.Variable(np.ones(3, np.float32), name="unused_bias")
    opt = gg.optimizers.SGD(learning_rate=0.1)
    with pytest.warns(UserWarning, match=r"gradients do not exist for variables \['unused_bias'\]"):
        opt.apply_gradients([(np.ones(2, np.float32), a), (None, b)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.apply_gradients([(np.ones(2, np.float32), a), (None, b)])  # once only
    np.testing.assert_allclose(a.numpy(), [0.8, 0.8])
    np.testing.assert_array_equal(b.numpy(), np.ones(3))


def test_grad_of_another_dtype_or_shape_is_refused_at_assignment():
    # torch: `p.grad = <float64>` on a float32 parameter raises RuntimeError ("assigned grad has data
    # of a different type"); here it used to turn p into float64 at the next step()
    p = gg.tensor(np.ones(3, np.float32), requires_grad=True)
    opt = gg.optimizers.SGD([p], lr=0.1)
    with pytest.raises(RuntimeError, match="different type: float64 for a tensor of float32"):
        p.grad = gg.tensor(np.ones(3, np.float64))
    with pytest.raises(RuntimeError, match="different type"):
        p.grad = np.ones(3, np.float64)
    with pytest.raises(RuntimeError, match=r"different size: shape \(2,\)"):
        p.grad = gg.tensor(np.ones(2, np.float32))
    with pytest.raises(TypeError, match="Tensor or None but got grad of type list"):
        p.grad = [1.0, 1.0, 1.0]
    assert p.grad is None
    opt.step()
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p.numpy(), np.ones(3))
    p.grad = gg.tensor(np.ones(3, np.float32))
    opt.step()
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.numpy(), np.full(3, 0.9, np.float32))


@pytest.mark.gpu
def test_grad_on_another_device_is_refused():
    # torch: "assigned grad expected to be on cuda:0 but got grad on cpu"
    p = gg.tensor(np.ones(3, np.float32), device="cuda", requires_grad=True)
    with pytest.raises(RuntimeError, match="expected to be on cuda:0 but got grad on cpu"):
        p.grad = gg.tensor(np.ones(3, np.float32))


TORCH_STYLE = {
    "sgd-momentum": lambda ps: gg.optimizers.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "sgd": lambda ps: gg.optimizers.SGD(ps, lr=0.1, weight_decay=0.01),
    "adam-amsgrad": lambda ps: gg.optimizers.Adam(ps, lr=0.01, amsgrad=True),
    "adamw": lambda ps: gg.optimizers.AdamW(ps, lr=0.01),
    "rmsprop-centered": lambda ps: gg.optimizers.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
}


def _torch_steps(opt, params, steps, x):
    for _ in range(steps):
        opt.zero_grad()
        loss = ((gg.tensor(x) @ params[0] + params[1]) ** 2).mean()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name", list(TORCH_STYLE))
def test_state_dict_round_trip_continues_bit_for_bit(name):
    # torch.optim: opt2.load_state_dict(opt1.state_dict()) continues training exactly as opt1 does
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    params = [gg.tensor(rng.normal(size=(3, 2)).astype(np.float32), requires_grad=True),
              gg.tensor(np.zeros(2, np.float32), requires_grad=True)]
    opt = TORCH_STYLE[name](params)
    _torch_steps(opt, params, 3, x)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0, 1] and sd["state"][0]["step"] == 3.0
    copies = [[gg.tensor(p.numpy().copy(), requires_grad=True) for p in params] for _ in range(2)]
    restored, fresh = TORCH_STYLE[name](copies[0]), TORCH_STYLE[name](copies[1])
    restored.load_state_dict(sd)
    assert restored.iterations == 3
    for o, ps in ((opt, params), (restored, copies[0]), (fresh, copies[1])):
        _torch_steps(o, ps, 4, x)
    for a, b in zip(params, copies[0], strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    if name != "sgd":  # stateless apart from the step count: a fresh optimizer gives the same
        assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(params, copies[1], strict=True))
    assert sd["state"][0]["step"] == 3.0  # a copy: later steps did not change it


def test_load_state_dict_refuses_a_mismatch_and_changes_nothing():
    # torch.optim raises ValueError for a state dict of other parameter groups or sizes
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    params = [gg.tensor(rng.normal(size=(3, 2)).astype(np.float32), requires_grad=True),
              gg.tensor(np.zeros(2, np.float32), requires_grad=True)]
    opt = gg.optimizers.Adam(params, lr=0.01)
    _torch_steps(opt, params, 2, x)
    sd = opt.state_dict()
    other = gg.optimizers.Adam([gg.tensor(np.zeros((3, 2), np.float32), requires_grad=True)], lr=0.5)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        other.load_state_dict(sd)
    twisted = [gg.tensor(np.zeros((2, 3), np.float32), requires_grad=True),
               gg.tensor(np.zeros(2, np.float32), requires_grad=True)]
    target = gg.optimizers.Adam(twisted, lr=0.5)
    with pytest.raises(ValueError, match=r"variable 0 .* shape \(3, 2\), but the variable has shape \(2, 3\)"):
        target.load_state_dict(sd)
    assert target.iterations == 0 and target.param_groups[0]["lr"] == 0.5 and target.state_dict()["state"] == {}
    with pytest.raises(ValueError, match="unknown state"):
        gg.optimizers.Adam(params, lr=0.01).load_state_dict(
            {"state": {0: {"step": 1.0, "momentum_buffer": np.zeros((3, 2))}}, "param_groups": sd["param_groups"]})
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


# -- fit, evaluate, predict ------------------------------------------------------------------------


def test_empty_validation_data_is_refused():
    # evaluate on the same arrays raises; fit used to log val_loss 0.0 (Keras 3 refuses empty data)
    model = _model()
    x, y = _data()
    with pytest.raises(ValueError, match=r"validation_data has no samples"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x[:0], y[:0]))


@pytest.mark.parametrize("where", ["x", "y"])
def test_object_arrays_holding_none_are_refused(where):
    # Keras 3 (TensorFlow's conversion) refuses None in the data, and the README says TypeError; it
    # used to become NaN and train on it
    model = _model()
    x, y = _data(n=4)
    xo, yo = x.astype(object), y.astype(object)
    (xo if where == "x" else yo)[2, 0] = None
    with pytest.raises(TypeError, match=rf"{where}\[2, 0\] is None"):
        model.fit(xo, yo, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="is None"):
        model.predict(np.array([[1.0, None]], dtype=object))
    w = model.get_weights()
    assert all(np.isfinite(a).all() for a in w)


def test_object_arrays_of_numbers_and_strings():
    model = _model()
    x, y = _data(n=4)
    np.testing.assert_allclose(model.predict(x.astype(object)), model.predict(x), rtol=1e-6)
    with pytest.raises(TypeError, match="dtype <U"):
        model.predict(np.array([["1", "2"]]))


def test_predict_refuses_samples_without_the_batch_axis():
    # Keras 3: predict of one sample of shape (2,) on a 2-feature model raises ValueError, whatever
    # the batch size (it used to return one "prediction" per feature, or raise, by batch size)
    model = Sequential([Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 2\), got x of shape \(2,\).*x\[None\]"):
        model.predict(np.array([1.0, 2.0], np.float32))
    for bs in (1, 2, 32):
        with pytest.raises(ValueError, match=r"got x of shape \(4,\)"):
            model.predict(np.arange(4.0), batch_size=bs)
    with pytest.raises(ValueError, match=r"got x of shape \(16, 3\)"):
        model.evaluate(np.ones((16, 3), np.float32), y)
    assert model.predict(x[:1]).shape == (1, 1)


@pytest.mark.parametrize("shape", [(3, 4), (3, 1, 4), (3, 2, 3)])
def test_input_shape_is_checked_in_sequential(shape):
    # Keras 3: a Sequential model starting with Input((2, 2)) raises for inputs of another shape
    model = Sequential([Input((2, 2)), Dense(3)])
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        model(np.zeros(shape, np.float32))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 2, 2\)"):
        model.predict(np.zeros(shape, np.float32))
    assert model(np.zeros((3, 2, 2), np.float32)).shape == (3, 2, 3)


def test_input_with_a_free_axis_takes_any_size_there():
    model = Sequential([Input((None, 2)), Dense(3)])
    assert model(np.zeros((2, 5, 2), np.float32)).shape == (2, 5, 3)
    with pytest.raises(ValueError):
        model(np.zeros((2, 5, 3), np.float32))


@pytest.mark.parametrize("split", [0.95, 0.999])
def test_validation_split_that_leaves_no_training_samples_names_the_counts(split):
    # Keras 3: "not sufficient to split it ... as specified by `validation_split`"
    model = _model()
    x, y = _data(n=10)
    with pytest.raises(ValueError, match=rf"validation_split={split}.* 10 sample\(s\).*into 0 for training and 10"):
        model.fit(x, y, epochs=1, verbose=0, validation_split=split)


# -- distributed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [42, None, "adam"])
def test_broadcast_optimizer_state_checks_its_argument_in_a_world_of_one(bad):
    # Horovod raises for a non-optimizer at any world size
    with pytest.raises(TypeError, match="broadcast_optimizer_state: expected a gpugrad optimizer"):
        gg.distributed.broadcast_optimizer_state(bad)
    with pytest.raises(ValueError, match="root"):
        gg.distributed.broadcast_optimizer_state(gg.optimizers.Adam(), root=1)
    gg.distributed.broadcast_optimizer_state(gg.optimizers.Adam())  # a world of one: nothing to do
