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
