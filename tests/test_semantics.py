"""The semantics every op keeps: copies on construction, dtype promotion, bad values refused,
weights loaded all or nothing (the lifetime checks live in test_memory.py)."""

import os
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpugrad as gg
from gpugrad.nn import Dense, Sequential


def _dev(device):
    return "cpu" if device == "cpu" else "cuda:0"


def _xp(device):
    if device == "cpu":
        return np
    import cupy

    return cupy


# -- copies on construction ----------------------------------------------------------------------


@pytest.mark.parametrize("make", ["constant", "tensor", "Tensor"])
def test_constructors_copy_so_a_later_write_changes_nothing(device, make):
    xp = _xp(device)
    a = xp.asarray(np.array([1.0, 2.0, 3.0], "f4"))
    c = getattr(gg, make)(a, device=device)
    x = gg.tensor([1.0, 1.0, 1.0], requires_grad=True, device=device)
    y = (x * c).sum()
    a[:] = 0
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 2, 3])
    np.testing.assert_array_equal(c.numpy(), [1, 2, 3])


def test_an_array_operand_is_copied_into_the_graph(device):
    xp = _xp(device)
    a = xp.asarray(np.array([1.0, 2.0, 3.0], "f4"))
    x = gg.tensor([1.0, 1.0, 1.0], requires_grad=True, device=device)
    y = (x * a).sum()
    a[:] = 0
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 2, 3])


def test_from_numpy_and_asarray_share_memory():
    a = np.array([1.0, 2.0], "f4")
    for t in (gg.from_numpy(a), gg.asarray(a)):
        a[0] = 5
        assert t.numpy()[0] == 5
        a[0] = 1
    assert gg.asarray(a, dtype="float64").numpy()[0] == 1  # a cast has to copy
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray, got list"):
        gg.from_numpy([1.0])


def test_numpy_of_a_cpu_tensor_is_a_read_only_view():
    t = gg.constant([1.0, 2.0])
    v = t.numpy()
    with pytest.raises(ValueError, match="read-only"):
        v[0] = 7
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(t)[0] = 7
    w = np.array(t)  # an explicit copy may be written
    w[0] = 7
    np.testing.assert_array_equal(t.numpy(), [1, 2])
    var = gg.Variable([1.0, 2.0])
    var.numpy()[0] = 7  # a Variable's numpy() is a copy
    np.testing.assert_array_equal(var.numpy(), [1, 2])


# -- promotion -----------------------------------------------------------------------------------

FLOATS = ["float16", "float32", "float64"]
OTHERS = ["bool", "int8", "int16", "int32", "int64", "uint8"]


def expected_dtype(a, b):
    """The documented table: a float with an integer/bool keeps the float; otherwise NumPy."""
    fa, fb = np.dtype(a).kind == "f", np.dtype(b).kind == "f"
    if fa and not fb:
        return np.dtype(a)
    if fb and not fa:
        return np.dtype(b)
    return np.result_type(np.dtype(a), np.dtype(b))


def test_float32_with_int64_stays_float32(device):
    f = gg.constant([1.5, 2.5], dtype="float32", device=device)
    i = gg.constant([1, 2], dtype="int64", device=device)
    for out in (f * i, i * f, f + i, f - i, i / f, f ** i, gg.maximum(f, i), gg.where(f > 2, f, i), f @ i):
        assert out.dtype == np.float32
    assert (f * gg.constant(2.0, dtype="float64", device=device)).dtype == np.float64
    assert (gg.constant([1, 2], device=device) * 2.5).dtype == np.float32  # int with a Python float
    assert (gg.constant([1, 2], device=device) * 2).dtype == np.int64
    g = gg.grad(lambda x: (x * i).sum())(f)  # gradients keep the input's dtype
    assert g.dtype == np.float32


@settings(max_examples=60, deadline=None)
@given(
    a=st.sampled_from(FLOATS + OTHERS),
    b=st.sampled_from(FLOATS + OTHERS),
    op=st.sampled_from(["add", "multiply", "maximum", "minimum", "subtract"]),
)
def test_promotion_table_over_dtype_pairs(a, b, op):
    if op == "subtract" and a == b == "bool":
        return  # NumPy refuses bool - bool
    x = gg.constant(np.array([1, 0, 1]).astype(a))
    y = gg.constant(np.array([0, 1, 1]).astype(b))
    assert getattr(gg, op)(x, y).dtype == expected_dtype(a, b)


@settings(max_examples=40, deadline=None)
@given(a=st.sampled_from(FLOATS + OTHERS), scalar=st.sampled_from([2, 2.5, True]))
def test_promotion_with_python_numbers(a, scalar):
    x = gg.constant(np.array([1, 0, 1]).astype(a))
    got = (x * scalar).dtype
    if np.dtype(a).kind == "f":
        assert got == np.dtype(a)
    elif isinstance(scalar, float):
        assert got == np.float32
    else:
        assert got == (np.array([1, 0, 1]).astype(a) * scalar).dtype  # NumPy among integers


@settings(max_examples=30, deadline=None)
@given(a=st.sampled_from(FLOATS), b=st.sampled_from(OTHERS + FLOATS))
def test_gradient_dtype_follows_the_input(a, b):
    x = gg.constant(np.array([1.0, 2.0]).astype(a))
    y = gg.constant(np.array([3, 1]).astype(b))
    gx = gg.grad(lambda x: gg.sum(x * y + x))(x)
    assert gx.dtype == np.dtype(a)
    np.testing.assert_allclose(gx.numpy().astype(np.float64), np.array([3, 1]).astype(b).astype(np.float64) + 1)


# -- bad values refused --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, words",
    [(None, "None"), ("abc", "str"), ([1.0, None], "object"), (1 + 2j, "complex"), (np.ones(2, complex), "complex")],
)
def test_none_strings_objects_and_complex_are_refused(device, bad, words):
    with pytest.raises(TypeError, match=words):
        gg.constant(bad, device=device)
    with pytest.raises(TypeError, match=rf"add: .*{words}"):
        gg.ones(2, device=device) + bad
    with pytest.raises(TypeError, match=rf"multiply: .*{words}"):
        bad * gg.ones(2, device=device)


def test_gradient_of_none_raises_type_error(device):
    x = gg.constant([1.0, 2.0], device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
        _ = x * x
    with pytest.raises(TypeError, match="None.*return"):
        tape.gradient(None, x)


# -- weights: exactly the path given, all or nothing ---------------------------------------------


def _model(units=(4, 2), device="cpu"):
    with gg.device(device):
        m = Sequential([Dense(u) for u in units])
        m.build((None, 3))
    return m


def test_save_weights_writes_exactly_the_path_given(device, tmp_path):
    m = _model(device=device)
    path = tmp_path / "m.weights.h5"
    m.save_weights(path)
    assert sorted(os.listdir(tmp_path)) == ["m.weights.h5"]
    other = _model(device=device)
    other.load_weights(path)
    for a, b in zip(other.get_weights(), m.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def _corrupt(src, dst, member):
    """A copy of the zip ``src`` with one byte of ``member``'s stored data flipped (a bad CRC)."""
    raw = bytearray(open(src, "rb").read())
    with zipfile.ZipFile(src) as z:
        info = z.getinfo(member)
    name_len = int.from_bytes(raw[info.header_offset + 26: info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28: info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.compress_size - 1] ^= 0xFF  # the last data byte: the npy header stays intact
    open(dst, "wb").write(bytes(raw))


def _snapshot(model):
    return [w.numpy().copy() for w in model.weights]


def test_load_weights_with_any_corrupted_member_changes_nothing(device, tmp_path):
    src = tmp_path / "good.npz"
    _model(device=device).save_weights(src)
    with zipfile.ZipFile(src) as z:
        members = z.namelist()
    assert len(members) >= 6
    for member in members:
        bad = tmp_path / f"bad_{member}"
        _corrupt(src, bad, member)
        target = _model(device=device)
        before = _snapshot(target)
        with pytest.raises(ValueError, match=rf"cannot read .*bad_{member}.*{member[:-4]}"):
            target.load_weights(bad)
        for a, b in zip(_snapshot(target), before, strict=True):
            np.testing.assert_array_equal(a, b)
        with gg.device(device):
            unbuilt = Sequential([Dense(4), Dense(2)])
        with pytest.raises(ValueError, match="cannot read"):
            unbuilt.load_weights(bad)
        assert not unbuilt.built and unbuilt.weights == []


def test_load_weights_of_other_shapes_changes_nothing(device, tmp_path):
    src = tmp_path / "w.npz"
    _model((4, 2), device=device).save_weights(src)
    target = _model((4, 5), device=device)  # the first layer matches, the second does not
    before = _snapshot(target)
    with pytest.raises(ValueError, match=r"w\.npz.*'dense.*/kernel'.*\(4, 2\) in the file but \(4, 5\)"):
        target.load_weights(src)
    for a, b in zip(_snapshot(target), before, strict=True):
        np.testing.assert_array_equal(a, b)
    with gg.device(device):
        unbuilt = Sequential([Dense(4), Dense(7)])  # another architecture, built from the file
    with pytest.raises(ValueError, match="architectures differ"):
        unbuilt.load_weights(src)
    assert not unbuilt.built and unbuilt.weights == []
    unbuilt.build((None, 3))  # and it still builds normally afterwards
    assert unbuilt[1].kernel.shape == (4, 7)


# -- empty arrays --------------------------------------------------------------------------------


def test_empty_arrays_through_softmax_reductions_and_losses(device):
    for shape in [(0,), (3, 0)]:
        x = gg.zeros(shape, device=device)
        assert gg.softmax(x).shape == shape and gg.log_softmax(x).shape == shape
    e = gg.zeros((0, 3), device=device)
    assert gg.max(e, axis=1).shape == (0,) and gg.min(e, axis=1).shape == (0,)
    with pytest.raises(ValueError, match="axis 0 .* empty"):
        gg.max(e, axis=0)
    assert np.isnan(gg.mean(gg.zeros((0,), device=device)).item())  # a mean over nothing
    assert gg.logsumexp(gg.zeros((2, 0), device=device), axis=1).numpy().tolist() == [-np.inf, -np.inf]
    t = gg.zeros((3, 0), device=device)
    mean_losses = [
        gg.losses.mse, gg.losses.binary_crossentropy,
        lambda a, b: gg.losses.binary_crossentropy(a, b, from_logits=True),
        lambda a, b: gg.nn.functional.mse_loss(b, a),
        lambda a, b: gg.nn.functional.binary_cross_entropy_with_logits(b, a),
    ]
    for fn in mean_losses:
        p = gg.zeros((3, 0), device=device)
        with gg.GradientTape() as tape:
            tape.watch(p)
            loss = fn(t, p)
        assert np.isnan(loss.item())
        assert tape.gradient(loss, p).shape == (3, 0)
    sums = gg.losses.categorical_crossentropy(t, gg.zeros((3, 0), device=device), from_logits=True, reduction="none")
    np.testing.assert_array_equal(sums.numpy(), [0, 0, 0])  # a sum over no classes
    assert gg.nn.functional.mse_loss(t, t, reduction="sum").item() == 0


UNARY = [
    gg.exp, gg.log1p, gg.expm1, gg.sqrt, gg.square, gg.sin, gg.cos, gg.tan, gg.abs, gg.negative,
    gg.sigmoid, gg.tanh, gg.relu, gg.gelu, gg.elu, gg.softplus, gg.silu, gg.leaky_relu, gg.erf,
    gg.softmax, gg.log_softmax,
    lambda x: gg.reshape(x, (-1,)), gg.transpose, lambda x: gg.expand_dims(x, 0),
    lambda x: gg.concat([x, x], axis=0), lambda x: gg.stack([x, x]), lambda x: x[..., :1],
    lambda x: gg.where(x > 0, x, 2.0 * x), lambda x: gg.maximum(x, 0.5), lambda x: gg.clip(x, -1, 1),
    lambda x: x * x + x / 2.0 - 1.0, lambda x: x ** 2.0, lambda x: gg.sum(x, axis=0),
    lambda x: gg.mean(x, axis=-1), lambda x: gg.logsumexp(x, axis=-1), lambda x: gg.norm(x, axis=0),
    lambda x: gg.broadcast_to(x, (2, *x.shape)), lambda x: x @ gg.ones((x.shape[-1], 2)),
    lambda x: gg.losses.mse(x, x * 2.0, reduction="none"),
    lambda x: gg.losses.categorical_crossentropy(x, x, from_logits=True, reduction="none"),
]


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(0, 3), min_size=1, max_size=3).filter(lambda s: 0 in s),
    which=st.integers(0, len(UNARY) - 1),
)
def test_empty_shapes_flow_through_every_op(shape, which):
    x = gg.zeros(tuple(shape))
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = UNARY[which](x)
    g = tape.gradient(gg.sum(y), x, unconnected_gradients="zero")
    assert g.shape == x.shape
    assert y.dtype == np.float32


# -- axes ----------------------------------------------------------------------------------------


def test_axes_out_of_range_repeated_or_not_a_permutation_raise(device):
    x = gg.ones((2, 3), device=device)
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        gg.transpose(x, (1, 2))
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        gg.transpose(x, (0, 2))
    with pytest.raises(ValueError, match=r"\(0, 0\)"):
        gg.transpose(x, (0, 0))
    assert gg.transpose(x, (-1, 0)).shape == (3, 2)
    for bad in [(0, 0), (1, -1)]:
        with pytest.raises(ValueError, match="repeats"):
            gg.sum(x, axis=bad)
    with pytest.raises(ValueError, match="out of range"):
        gg.mean(x, axis=2)


# -- integer inputs and constructors -------------------------------------------------------------


def test_integer_inputs_are_taken_as_float32_and_bad_arguments_raise(device):
    i = gg.constant([0, 1, 2], device=device)
    for fn in (gg.sigmoid, gg.tanh, gg.exp, gg.log1p, gg.sqrt, gg.softmax, gg.mean, gg.logsumexp):
        assert fn(i).dtype == np.float32
    np.testing.assert_allclose(gg.sigmoid(i).numpy(), 1 / (1 + np.exp(-np.arange(3.0))), rtol=1e-6)
    with pytest.raises(ValueError, match="delta must not be zero"):
        gg.arange(0, 5, 0, device=device)
    with pytest.raises(ValueError, match="depth must be non-negative, got -1"):
        gg.one_hot([0, 1], depth=-1)
    with pytest.raises(TypeError, match="depth must be an int"):
        gg.one_hot([0, 1], depth=2.5)


# -- behaviours from the peers -------------------------------------------------------------------


def test_a_source_used_as_its_own_target_gets_ones(device):
    v = gg.Variable([1.0, 2.0], device=device)
    with gg.GradientTape() as tape:
        pass
    np.testing.assert_array_equal(tape.gradient(v, v).numpy(), [1, 1])
    x = gg.constant([1.0, 2.0, 3.0], device=device)
    with gg.GradientTape() as tape:
        tape.watch(x)
    np.testing.assert_array_equal(tape.gradient(x, x).numpy(), [1, 1, 1])
    with gg.GradientTape(watch_accessed_variables=False) as tape:
        pass
    assert tape.gradient(v, v) is None  # neither watched nor read
    with gg.GradientTape() as tape:
        y = v * 2.0
    np.testing.assert_array_equal(tape.gradient([y, v], v).numpy(), [3, 3])


def test_numpy_functions_on_a_tensor_give_values():
    t = gg.constant([[1.0, 2.0], [3.0, 5.0]])
    m = np.mean(t, axis=0)
    assert isinstance(m, np.ndarray) and m.tolist() == [2.0, 3.5]
    assert np.sum(t) == 11 and np.max(t) == 5 and np.min(t, axis=1).tolist() == [1, 3]
    e = np.exp(t)
    assert isinstance(e, np.ndarray)
    np.testing.assert_allclose(e, np.exp(t.numpy()))
    assert np.concatenate([t, t]).shape == (4, 2)
    a = np.ones((2, 2), np.float32)
    for out in (a + t, a * t, a - t, a / t, a @ t, a < t):
        assert isinstance(out, gg.Tensor)
    x = gg.constant([1.0, 2.0])
    with gg.GradientTape() as tape:
        tape.watch(x)
        y = gg.sum(np.array([3.0, 4.0], np.float32) * x)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [3, 4])
    with pytest.raises(TypeError, match="immutable"):
        np.add(a, a, out=(t,))


def test_sparse_crossentropy_from_probabilities_clips_then_logs(device):
    p = gg.constant([[0.0, 0.5, 0.5], [0.2, 0.3, 0.5]], device=device)
    with gg.GradientTape() as tape:
        tape.watch(p)
        loss = gg.losses.sparse_categorical_crossentropy([1, 2], p, reduction="none")
    g = tape.gradient(loss, p).numpy()
    assert g[0, 0] == 0  # the clipped entry gets no gradient (Keras)
    eps = 1e-7
    pc = np.clip(p.numpy().astype(np.float64), eps, 1 - eps)
    want = -np.log(pc[[0, 1], [1, 2]]) + np.log(pc.sum(axis=1))
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(g[1], 1 / pc[1].sum() - np.array([0, 0, 1 / pc[1, 2]]), rtol=1e-5)


def test_integer_requires_grad_and_argnums_raise_as_the_peers(device):
    with pytest.raises(RuntimeError, match="floating point"):  # PyTorch's error type
        gg.tensor([1, 2], requires_grad=True, device=device)
    with pytest.raises(TypeError, match="argnums=2"):  # JAX's error type
        gg.grad(lambda x: gg.sum(x), argnums=2)(gg.ones(2, device=device))


# -- numerics beyond the peers -------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e4, 1e5, -1e5])
def test_logsumexp_gradient_is_exact_at_large_logits(device, scale):
    x = gg.constant([scale, scale], dtype="float32", device=device)
    g = gg.grad(lambda x: gg.logsumexp(x))(x)
    np.testing.assert_array_equal(g.numpy(), [0.5, 0.5])
    h = gg.hessian(lambda x: gg.logsumexp(x))(gg.constant([scale, scale], dtype="float64", device=device))
    np.testing.assert_allclose(h.numpy(), [[0.25, -0.25], [-0.25, 0.25]], atol=1e-12)


def test_masked_logits_and_infinite_bce_logits_give_finite_loss_and_gradient(device):
    z = gg.constant([[0.0, 1.0, -np.inf], [2.0, -np.inf, 0.0]], device=device)
    t = gg.constant([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], device=device)
    with gg.GradientTape() as outer:
        outer.watch(z)
        with gg.GradientTape() as tape:
            tape.watch(z)
            loss = gg.losses.categorical_crossentropy(t, z, from_logits=True)
        g = tape.gradient(loss, z)
        gg_ = outer.gradient(gg.sum(g * g), z)
    assert np.isfinite(loss.item()) and np.isfinite(g.numpy()).all() and np.isfinite(gg_.numpy()).all()
    want = np.mean([np.log(1 + np.e) - 0.0, np.log(np.exp(2.0) + 1) - 0.0])
    np.testing.assert_allclose(loss.item(), want, rtol=1e-6)
    assert g.numpy()[0, 2] == 0 and g.numpy()[1, 1] == 0

    zb = gg.constant([[np.inf, -np.inf, 3.0]], device=device)
    tb = gg.constant([[1.0, 0.0, 1.0]], device=device)
    with gg.GradientTape() as tape:
        tape.watch(zb)
        lb = gg.losses.binary_crossentropy(tb, zb, from_logits=True)
    gb = tape.gradient(lb, zb).numpy()
    np.testing.assert_allclose(lb.item(), np.log1p(np.exp(-3.0)) / 3, rtol=1e-6)
    np.testing.assert_allclose(gb, [[0, 0, (1 / (1 + np.exp(-3.0)) - 1) / 3]], rtol=1e-6)


# -- layering ------------------------------------------------------------------------------------


def test_ops_import_no_front_end_and_composed_vjp_lives_in_the_engine():
    import ast
    import pathlib

    import gpugrad.graph
    import gpugrad.tape

    fronts = {"tape", "autograd", "functional", "custom", "jit"}
    for path in pathlib.Path(gg.__file__).parent.joinpath("ops").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level >= 2:
                assert node.module.split(".")[0] not in fronts, f"{path.name} imports {node.module}"
    assert gpugrad.tape.composed_vjp is gpugrad.graph.composed_vjp
    x = gg.constant([1.0, 2.0])
    (g,) = gpugrad.graph.composed_vjp(lambda a: a * a, (x,), gg.constant([1.0, 1.0]), (True,))
    np.testing.assert_array_equal(g.numpy(), [2, 4])
