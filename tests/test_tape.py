"""GradientTape semantics, as TensorFlow's: what is watched, what is returned, and when."""

import numpy as np
import pytest

import gpugrad as gg


def const(v, device, dtype="float32"):
    return gg.constant(v, dtype=dtype, device=device)


def var(v, device, **kw):
    return gg.Variable(gg.constant(v, device=device), **kw)


# -- watching -----------------------------------------------------------------------------------------


def test_watch_a_tensor(device):
    x = const([1.0, 2.0], device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(x**2)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [2.0, 4.0])


def test_watch_a_nested_list(device):
    a, b, c = const(1.0, device), const(2.0, device), const(3.0, device)
    with gg.GradientTape() as tape:
        tape.watch([a, [b, c]])
        y = a * b * c
    assert [g.item() for g in tape.gradient(y, [a, b, c])] == [6.0, 3.0, 2.0]


def test_an_unwatched_constant_gets_none(device):
    x, c = const(2.0, device), const(3.0, device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x * c
    dx, dc = tape.gradient(y, [x, c])
    assert dx.item() == 3.0
    assert dc is None


def test_trainable_variables_are_watched_automatically(device):
    w = var(2.0, device)
    with gg.GradientTape() as tape:
        y = w * w
    assert tape.gradient(y, w).item() == 4.0


def test_watch_accessed_variables_false(device):
    w, v = var(2.0, device), var(3.0, device)
    with gg.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(v)
        y = w * v
    dw, dv = tape.gradient(y, [w, v])
    assert dw is None
    assert dv.item() == 2.0
    assert tape.watched_variables() == (v,)


def test_non_trainable_variables_are_not_watched(device):
    w = var(2.0, device)
    n = var(3.0, device, trainable=False)
    with gg.GradientTape() as tape:
        y = w * n
    assert tape.watched_variables() == (w,)
    dw, dn = tape.gradient(y, [w, n])
    assert dw.item() == 3.0 and dn is None


def test_a_non_trainable_variable_can_be_watched_explicitly(device):
    n = var(3.0, device, trainable=False)
    with gg.GradientTape() as tape:
        tape.watch(n)
        y = n * n
    assert tape.gradient(y, n).item() == 6.0


def test_watched_variables_lists_each_once_in_order(device):
    a, b, c = var(1.0, device, name="a"), var(2.0, device, name="b"), var(3.0, device, trainable=False)
    with gg.GradientTape() as tape:
        y = b * a + a * c
        tape.watch(c)
    assert [v.name for v in tape.watched_variables()] == ["b", "a", None]
    assert tape.watched_variables()[2] is c
    tape.gradient(y, [a, b])
    assert len(tape.watched_variables()) == 3  # still listed after the gradient


def test_a_variable_read_before_the_tape_is_not_watched_retroactively(device):
    w = var(2.0, device)
    y0 = w * w
    with gg.GradientTape() as tape:
        y = y0 + w
    assert tape.gradient(y, w).item() == 1.0  # only the part recorded


def test_watching_after_use_does_not_record_the_past(device):
    x = const(2.0, device)
    with gg.GradientTape() as tape:
        y = x * x
        tape.watch(x)
        z = y * x
    assert tape.gradient(z, x).item() == 4.0  # d(y·x)/dx with y a constant


def test_watching_ends_with_the_tape(device):
    x = const(2.0, device)
    with gg.GradientTape() as tape:
        tape.watch(x)
    y = x * x  # after the with block: not recorded
    assert tape.gradient(y, x) is None


# -- what gradient returns -------------------------------------------------------------------------


def test_unconnected_source_gets_none_or_zeros(device):
    x, z = const([1.0, 2.0], device), const([5.0, 6.0, 7.0], device)
    with gg.GradientTape(persistent=True) as tape:
        tape.watch([x, z])
        y = gg.sum(x * 3.0)
    assert tape.gradient(y, z) is None
    zero = tape.gradient(y, z, unconnected_gradients="zero")
    assert zero.shape == (3,) and zero.dtype == np.float32
    np.testing.assert_array_equal(zero.numpy(), [0.0, 0.0, 0.0])
    dx, dz = tape.gradient(y, [x, z], unconnected_gradients="zero")
    np.testing.assert_array_equal(dx.numpy(), [3.0, 3.0])


def test_a_source_that_is_an_intermediate(device):
    x = const(3.0, device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        h = x * x
        y = gg.sin(h)
    dh, dx = tape.gradient(y, [h, x])
    assert dh.item() == pytest.approx(np.cos(9.0), rel=1e-6)
    assert dx.item() == pytest.approx(np.cos(9.0) * 6.0, rel=1e-5)


def test_the_target_itself_as_source(device):
    x = const([1.0, 2.0], device)
    with gg.GradientTape() as tape:
        tape.watch(x)
    np.testing.assert_array_equal(tape.gradient(x, x).numpy(), [1.0, 1.0])


def test_output_gradients_weight_the_target(device):
    x = const([1.0, 2.0, 3.0], device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    g = tape.gradient(y, x, output_gradients=const([1.0, 10.0, 100.0], device))
    np.testing.assert_array_equal(g.numpy(), [2.0, 40.0, 600.0])


def test_output_gradients_for_a_list_of_targets(device):
    x = const([1.0, 2.0], device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y1, y2 = x * x, gg.sum(x) * 3.0
    g = tape.gradient([y1, y2], x, output_gradients=[const([1.0, 0.0], device), const(2.0, device)])
    np.testing.assert_array_equal(g.numpy(), [2.0 + 6.0, 6.0])


def test_a_list_of_targets_is_summed(device):
    x = const([1.0, 2.0], device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y1 = x * x
        y2 = gg.sum(x) * 3.0
    np.testing.assert_array_equal(tape.gradient([y1, y2], x).numpy(), [5.0, 7.0])


def test_sources_keep_their_structure(device):
    a, b, c = var(1.0, device), var(2.0, device), var(3.0, device)
    with gg.GradientTape(persistent=True) as tape:
        y = a * b * c
    assert isinstance(tape.gradient(y, a), gg.Tensor)
    nested = tape.gradient(y, [[a, b], [c]])
    assert [[g.item() for g in row] for row in nested] == [[6.0, 3.0], [2.0]]
    d = tape.gradient(y, {"a": a, "rest": (b, [c])})
    assert set(d) == {"a", "rest"} and isinstance(d["rest"], tuple) and isinstance(d["rest"][1], list)
    assert (d["a"].item(), d["rest"][0].item(), d["rest"][1][0].item()) == (6.0, 3.0, 2.0)
    assert tape.gradient(y, (a,))[0].item() == 6.0 and isinstance(tape.gradient(y, (a,)), tuple)


def test_the_same_source_twice(device):
    a = var(2.0, device)
    with gg.GradientTape() as tape:
        y = a * a
    g1, g2 = tape.gradient(y, [a, a])
    assert g1.item() == g2.item() == 4.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_keep_the_dtype(device, dtype):
    x = const([1.0, 2.0], device, dtype)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(gg.exp(x) * 2.0 + 1.0)
    g = tape.gradient(y, x)
    assert g.dtype == dtype and g.device == x.device


def test_gradient_of_a_broadcast_is_summed_back(device):
    b = var([1.0, 2.0, 3.0], device)
    x = const(np.ones((4, 3)), device)
    with gg.GradientTape() as tape:
        y = gg.sum(x * b)
    np.testing.assert_array_equal(tape.gradient(y, b).numpy(), [4.0, 4.0, 4.0])


# -- persistent, reset, stop_recording ---------------------------------------------------------------------


def test_non_persistent_tape_raises_on_second_call(device):
    x = const(2.0, device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
        z = y * x
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="persistent"):
        tape.gradient(z, x)
    with pytest.raises(RuntimeError, match="persistent"):
        tape.jacobian(z, x)


def test_persistent_tape_answers_many_questions(device):
    x = const(3.0, device)
    with gg.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x
        z = y * y
    assert tape.gradient(z, x).item() == 108.0
    assert tape.gradient(y, x).item() == 6.0
    assert tape.gradient(z, y).item() == 18.0
    assert tape.gradient(z, x).item() == 108.0
    del tape


def test_gradient_inside_the_with_block(device):
    x = const(3.0, device)
    with gg.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x
        g = tape.gradient(y, x)  # recorded by the tape itself: a second order is available
        h = tape.gradient(g, x)
    assert g.item() == 6.0 and h.item() == 2.0


def test_stop_recording(device):
    x = var(2.0, device)
    with gg.GradientTape(persistent=True) as tape:
        y = x * x
        with tape.stop_recording():
            z = x * x * x
        w = y * z
    assert tape.gradient(y, x).item() == 4.0
    assert tape.gradient(z, x) is None
    assert tape.gradient(w, x).item() == 4.0 * 8.0  # z is a constant to the tape


def test_stop_recording_only_stops_this_tape(device):
    x = var(2.0, device)
    with gg.GradientTape() as outer:
        with gg.GradientTape() as inner:
            with inner.stop_recording():
                y = x * x
        assert inner.gradient(y, x) is None
    assert outer.gradient(y, x).item() == 4.0


def test_reset(device):
    x = var(2.0, device)
    with gg.GradientTape() as tape:
        y = x * x
        tape.reset()
        z = x * x * x
    assert y.numpy() == 4.0
    assert tape.gradient(z, x).item() == 12.0


def test_reset_forgets_what_was_recorded(device):
    x = var(2.0, device)
    with gg.GradientTape(persistent=True) as tape:
        y = x * x
        tape.reset()
    assert tape.gradient(y, x) is None
    assert tape.watched_variables() == ()


def test_reset_makes_a_used_tape_usable(device):
    x = const(2.0, device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    tape.gradient(y, x)
    tape.reset()
    with tape:
        tape.watch(x)
        y = x * x * x
    assert tape.gradient(y, x).item() == 12.0


def test_independent_tapes(device):
    x, z = const(2.0, device), const(5.0, device)
    with gg.GradientTape() as t1, gg.GradientTape() as t2:
        t1.watch(x)
        t2.watch(z)
        y = x * z
    assert t1.gradient(y, [x, z])[1] is None
    assert t2.gradient(y, [x, z])[0] is None


# -- higher orders ---------------------------------------------------------------------------------------


def test_nested_tapes_second_order(device):
    x = var(3.0, device)
    with gg.GradientTape() as t2:
        with gg.GradientTape() as t1:
            y = x**3
        dy = t1.gradient(y, x)
    d2y = t2.gradient(dy, x)
    assert dy.item() == 27.0 and d2y.item() == 18.0


def test_third_derivative_of_x4(device):
    x = var(2.0, device)
    with gg.GradientTape() as t3:
        with gg.GradientTape() as t2:
            with gg.GradientTape() as t1:
                y = x**4
            d1 = t1.gradient(y, x)
        d2 = t2.gradient(d1, x)
    d3 = t3.gradient(d2, x)
    assert (d1.item(), d2.item(), d3.item()) == (32.0, 48.0, 48.0)  # 4x³, 12x², 24x


@pytest.mark.parametrize("at", [-1.5, 0.0, 0.5, 2.0])
def test_third_derivative_of_sigmoid(device, at):
    x = gg.Variable(gg.constant(at, dtype="float64", device=device))
    with gg.GradientTape() as t3:
        with gg.GradientTape() as t2:
            with gg.GradientTape() as t1:
                y = gg.sigmoid(x)
            d1 = t1.gradient(y, x)
        d2 = t2.gradient(d1, x)
    d3 = t3.gradient(d2, x)
    s = 1 / (1 + np.exp(-at))
    assert d1.item() == pytest.approx(s * (1 - s), rel=1e-12)
    assert d2.item() == pytest.approx(s * (1 - s) * (1 - 2 * s), rel=1e-10, abs=1e-15)
    assert d3.item() == pytest.approx(s * (1 - s) * (1 - 6 * s + 6 * s * s), rel=1e-10)


def test_third_derivative_of_tanh(device):
    x = gg.Variable(gg.constant([0.3, -0.7], dtype="float64", device=device))
    with gg.GradientTape() as t3:
        with gg.GradientTape() as t2:
            with gg.GradientTape() as t1:
                y = gg.sum(gg.tanh(x))
            d1 = t1.gradient(y, x)
            s1 = gg.sum(d1)  # inside t2: recorded
        d2 = t2.gradient(s1, x)
        s2 = gg.sum(d2)
    d3 = t3.gradient(s2, x)
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(d1.numpy(), 1 - t**2, rtol=1e-12)
    np.testing.assert_allclose(d2.numpy(), -2 * t * (1 - t**2), rtol=1e-12)
    np.testing.assert_allclose(d3.numpy(), -2 * (1 - t**2) * (1 - 3 * t**2), rtol=1e-10)


def test_a_target_computed_after_the_tape_closed_is_not_connected(device):
    x = var([0.3, -0.7], device)
    with gg.GradientTape() as t2:
        with gg.GradientTape() as t1:
            y = gg.sum(gg.tanh(x))
        d1 = t1.gradient(y, x)
    assert t2.gradient(gg.sum(d1), x) is None  # the sum was not recorded by t2


def test_a_persistent_outer_tape_for_a_hessian(device):
    x = var([1.0, 2.0], device)
    with gg.GradientTape(persistent=True) as outer:
        with gg.GradientTape() as inner:
            y = gg.sum(x**3)
        g = inner.gradient(y, x)
    h = outer.jacobian(g, x)
    np.testing.assert_array_equal(h.numpy(), np.diag([6.0, 12.0]))


# -- jacobians -------------------------------------------------------------------------------------------


def test_jacobian(device):
    x = const([1.0, 2.0, 3.0], device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    j = tape.jacobian(y, x)
    np.testing.assert_array_equal(j.numpy(), np.diag([2.0, 4.0, 6.0]))


def test_jacobian_shapes_and_several_sources(device):
    a = const(np.arange(6.0).reshape(2, 3), device)
    b = const([1.0, -1.0, 2.0], device)
    u = const([1.0], device)
    with gg.GradientTape() as tape:
        tape.watch([a, b, u])
        y = a * b  # (2, 3)
    ja, jb, ju = tape.jacobian(y, [a, b, u])
    assert ja.shape == (2, 3, 2, 3) and jb.shape == (2, 3, 3)
    assert ju is None
    np.testing.assert_array_equal(jb.numpy()[1], np.diag(a.numpy()[1]))
    np.testing.assert_array_equal(ja.numpy().reshape(6, 6), np.diag(np.tile(b.numpy(), 2)))


def test_jacobian_unconnected_zero(device):
    x, u = const([1.0, 2.0], device), const([1.0, 2.0, 3.0], device)
    with gg.GradientTape() as tape:
        tape.watch([x, u])
        y = x * 2.0
    j = tape.jacobian(y, u, unconnected_gradients="zero")
    assert j.shape == (2, 3)
    np.testing.assert_array_equal(j.numpy(), 0.0)


def test_batch_jacobian(device):
    x = const(np.arange(1.0, 7.0).reshape(3, 2), device)
    w = const([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0]], device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = (x @ w) ** 2  # (3, 3): row b depends only on x[b]
    bj = tape.batch_jacobian(y, x)
    assert bj.shape == (3, 3, 2)
    xw = x.numpy() @ w.numpy()
    for b in range(3):
        np.testing.assert_allclose(bj.numpy()[b], (2 * xw[b])[:, None] * w.numpy().T, rtol=1e-6)


def test_batch_jacobian_agrees_with_the_jacobian(device):
    x = const(np.random.default_rng(0).standard_normal((4, 3)), device, "float64")
    with gg.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = gg.softmax(x, axis=-1)
    full = tape.jacobian(y, x).numpy()
    bj = tape.batch_jacobian(y, x).numpy()
    for b in range(4):
        np.testing.assert_allclose(bj[b], full[b, :, b, :], rtol=1e-12)


def test_batch_jacobian_needs_a_shared_batch(device):
    x = const(np.ones((3, 2)), device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(x, axis=0)
    with pytest.raises(ValueError, match="batch"):
        tape.batch_jacobian(y, x)
