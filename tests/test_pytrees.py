"""Pytrees: gg.tree, and nested dict / list / tuple / namedtuple structures through every transform,
GradientTape.gradient and every optimizer."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import gpugrad as gg

Params = collections.namedtuple("Params", ["w", "b"])


def f64(v, device="cpu"):
    return gg.constant(v, dtype="float64", device=device)


def _np(t):
    return t.numpy() if isinstance(t, gg.Tensor) else np.asarray(t)


# -- gg.tree --------------------------------------------------------------------------------------------------


def test_flatten_order_is_jax_order():
    tree = {"b": [1, None, (2, 3)], "a": Params(4, 5)}
    leaves, treedef = gg.tree.flatten(tree)
    assert leaves == [4, 5, 1, 2, 3]  # sorted keys, None is an empty subtree
    assert treedef.num_leaves == 5
    back = gg.tree.unflatten(treedef, [10, 20, 30, 40, 50])
    assert back == {"b": [30, None, (40, 50)], "a": Params(10, 20)}
    assert list(back) == ["b", "a"] and isinstance(back["a"], Params)
    assert gg.tree.leaves(tree) == leaves
    assert gg.tree.structure(tree) == treedef
    assert gg.tree.structure({"a": 1}) != gg.tree.structure({"b": 1})
    with pytest.raises(ValueError, match="5 leaves, got 2"):
        gg.tree.unflatten(treedef, [1, 2])


def test_tree_map_several_trees():
    a = {"x": 1.0, "y": [2.0, 3.0]}
    b = {"x": 10.0, "y": [20.0, 30.0]}
    assert gg.tree.map(lambda p, q: p + q, a, b) == {"x": 11.0, "y": [22.0, 33.0]}
    with pytest.raises(ValueError):
        gg.tree.map(lambda p, q: p + q, a, [1.0, 2.0])
    t = gg.tree.map(lambda v: v * 2.0, {"w": f64([1.0, 2.0])})
    np.testing.assert_array_equal(t["w"].numpy(), [2.0, 4.0])
    assert gg.tree.all_equal_structure(a, b) and not gg.tree.all_equal_structure(a, [1])


def test_tensors_are_leaves():
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    leaves, _ = gg.tree.flatten([x, np.ones(2)])
    assert len(leaves) == 2 and leaves[0] is x


# -- the first JAX snippet ----------------------------------------------------------------------------------


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 3)), rng.standard_normal((8, 2))


def _loss(params, x, y):
    pred = x @ params["w"] + params["b"]
    return gg.mean((pred - y) ** 2)


def test_jax_first_snippet():
    x, y = _data()
    params = {"w": np.full((3, 2), 0.1), "b": np.zeros(2)}  # plain NumPy arrays, as a JAX user writes them
    g = gg.grad(_loss)(params, x, y)
    assert set(g) == {"w", "b"} and g["w"].shape == (3, 2) and g["b"].shape == (2,)
    r = x @ params["w"] + params["b"] - y  # closed form
    np.testing.assert_allclose(g["w"].numpy(), 2 * x.T @ r / r.size, rtol=1e-12)
    np.testing.assert_allclose(g["b"].numpy(), 2 * r.sum(0) / r.size, rtol=1e-12)
    new = gg.tree.map(lambda p, d: p - 0.1 * d, params, g)  # an update in the JAX style
    assert _loss(new, x, y).item() < _loss(params, x, y).item()


def test_dict_of_tensors_on_each_device(device):
    x, y = _data()
    params = {"w": f64(np.full((3, 2), 0.1), device), "b": f64(np.zeros(2), device)}
    value, g = gg.value_and_grad(_loss)(params, f64(x, device), f64(y, device))
    assert g["w"].device == params["w"].device and g["w"].dtype == np.float64
    r = x @ np.full((3, 2), 0.1) - y
    assert value.item() == pytest.approx(np.mean(r**2))
    np.testing.assert_allclose(g["b"].numpy(), 2 * r.sum(0) / r.size, rtol=1e-12)


# -- every transform over pytrees ---------------------------------------------------------------------------


def _tree_params(device):
    return {
        "layer": Params(w=f64([[0.5, -0.2], [0.1, 0.3]], device), b=f64([0.1, -0.1], device)),
        "scale": [f64(1.5, device), (f64([0.2], device),)],
    }


def _tree_f(p):
    h = gg.tanh(f64([[1.0, 2.0]], p["layer"].w.device) @ p["layer"].w + p["layer"].b)
    return gg.sum(h * p["scale"][0]) + gg.sum(p["scale"][1][0] ** 2)


def _flat_f(device):
    """_tree_f on the flat vector of leaves, for comparisons."""
    p = _tree_params(device)
    leaves, treedef = gg.tree.flatten(p)
    shapes = [leaf.shape for leaf in leaves]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(v):
        parts, k = [], 0
        for s, n in zip(shapes, sizes):
            parts.append(gg.reshape(v[k:k + n], s))
            k += n
        return gg.tree.unflatten(treedef, parts)

    flat = gg.concat([gg.reshape(leaf, (-1,)) for leaf in leaves], axis=0)
    return (lambda v: _tree_f(unpack(v))), flat, unpack, p


def _same_tree(a, b, **tol):
    assert gg.tree.structure(a) == gg.tree.structure(b)
    for x, y in zip(gg.tree.leaves(a), gg.tree.leaves(b)):
        np.testing.assert_allclose(_np(x), _np(y), **tol)


def test_grad_and_value_and_grad(device):
    ff, flat, unpack, p = _flat_f(device)
    g = gg.grad(_tree_f)(p)
    _same_tree(g, unpack(gg.grad(ff)(flat)), rtol=1e-13)
    assert isinstance(g["layer"], Params) and isinstance(g["scale"][1], tuple)
    v, g2 = gg.value_and_grad(_tree_f)(p)
    assert v.item() == pytest.approx(_tree_f(p).item())
    _same_tree(g, g2, rtol=0)
    (g3, aux) = gg.grad(lambda p: (_tree_f(p), {"aux": 1}), has_aux=True)(p)
    _same_tree(g, g3, rtol=0)
    assert aux == {"aux": 1}


def test_grad_of_tuple_argnums_of_pytrees(device):
    a = {"x": f64([1.0, 2.0], device)}
    b = [f64(3.0, device)]
    ga, gb = gg.grad(lambda a, b: gg.sum(a["x"] * b[0]), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga["x"].numpy(), [3.0, 3.0])
    assert gb[0].item() == 3.0


def test_repeated_leaf_gets_its_own_gradient(device):
    x = f64([2.0, 3.0], device)
    g = gg.grad(lambda p: gg.sum(p[0] * p[1] ** 2))([x, x])  # JAX: inputs are independent
    np.testing.assert_array_equal(g[0].numpy(), [4.0, 9.0])
    np.testing.assert_array_equal(g[1].numpy(), [8.0, 18.0])
    gx, gy = gg.grad(lambda a, b: gg.sum(a * b), argnums=(0, 1))(x, x)
    np.testing.assert_array_equal(gx.numpy(), x.numpy())
    np.testing.assert_array_equal(gy.numpy(), x.numpy())


def test_vjp_and_jvp(device):
    ff, flat, unpack, p = _flat_f(device)
    out, vjp_fn = gg.vjp(_tree_f, p)
    (ct,) = vjp_fn(f64(2.0, device))
    _same_tree(ct, unpack(2.0 * gg.grad(ff)(flat)), rtol=1e-13)
    tangents = gg.tree.map(lambda t: gg.ones_like(t) * 0.5, p)
    out2, t = gg.jvp(_tree_f, (p,), (tangents,))
    assert out2.item() == pytest.approx(out.item())
    expect = float(np.sum(gg.grad(ff)(flat).numpy() * 0.5))
    assert t.item() == pytest.approx(expect, rel=1e-13)
    # pytree outputs: the tangent has the output's structure
    out, t = gg.jvp(lambda p: {"h": p["layer"].w * 2.0, "s": [p["scale"][0]]}, (p,), (tangents,))
    assert set(t) == {"h", "s"} and t["h"].shape == (2, 2)
    np.testing.assert_array_equal(t["h"].numpy(), np.ones((2, 2)))
    assert t["s"][0].item() == 0.5
    # and the cotangent of a pytree output
    out, vjp_fn = gg.vjp(lambda p: {"h": p["layer"].w * 2.0, "s": [p["scale"][0]]}, p)
    (ct,) = vjp_fn({"h": gg.ones((2, 2), dtype="float64", device=device), "s": [f64(1.0, device)]})
    np.testing.assert_array_equal(ct["layer"].w.numpy(), 2 * np.ones((2, 2)))
    np.testing.assert_array_equal(ct["layer"].b.numpy(), [0.0, 0.0])
    assert ct["scale"][0].item() == 1.0


def test_jacobians_and_hessian(device):
    ff, flat, unpack, p = _flat_f(device)
    n = flat.shape[0]
    for jac in (gg.jacrev, gg.jacfwd, gg.jacobian):
        j = jac(_tree_f)(p)
        _same_tree(j, unpack(gg.grad(ff)(flat)), rtol=1e-13)
    h = gg.hessian(_tree_f)(p)
    hf = gg.hessian(ff)(flat).numpy()
    leaves, treedef = gg.tree.flatten(p)
    sizes = [leaf.size for leaf in leaves]
    offs = np.cumsum([0] + sizes)
    # h is a tree of trees: h[path_i][path_j] has shape in_i + in_j
    rows = treedef.flatten_up_to(h)
    assert len(rows) == len(leaves)
    for i, row in enumerate(rows):
        blocks = treedef.flatten_up_to(row)
        for k, blk in enumerate(blocks):
            assert blk.shape == leaves[i].shape + leaves[k].shape
            np.testing.assert_allclose(
                blk.numpy().reshape(sizes[i], sizes[k]), hf[offs[i]:offs[i + 1], offs[k]:offs[k + 1]], atol=1e-13)
    assert hf.shape == (n, n)


def test_jacobian_of_pytree_output(device):
    x = f64([1.0, 2.0], device)
    j = gg.jacfwd(lambda x: {"sq": x * x, "sum": [gg.sum(x)]})(x)
    np.testing.assert_array_equal(j["sq"].numpy(), np.diag([2.0, 4.0]))
    np.testing.assert_array_equal(j["sum"][0].numpy(), [1.0, 1.0])
    j2 = gg.jacrev(lambda x: {"sq": x * x, "sum": [gg.sum(x)]})(x)
    _same_tree(j, j2, rtol=0)


def test_hvp_over_pytrees(device):
    ff, flat, unpack, p = _flat_f(device)
    v = gg.tree.map(lambda t: gg.ones_like(t), p)
    hv = gg.hvp(_tree_f, p, v)
    expect = gg.hessian(ff)(flat).numpy() @ np.ones(flat.shape[0])
    _same_tree(hv, unpack(gg.constant(expect, dtype="float64", device=device)), rtol=1e-12, atol=1e-14)
    fo = gg.jvp(gg.grad(_tree_f), (p,), (v,))[1]  # forward-over-reverse
    _same_tree(hv, fo, rtol=1e-12, atol=1e-14)


def test_mismatched_tangent_structure(device):
    p = {"w": f64([1.0], device), "b": f64([2.0], device)}
    with pytest.raises(TypeError, match=r"tangents\[0\] must have the structure"):
        gg.jvp(lambda p: p["w"] * p["b"], (p,), ({"w": f64([1.0], device)},))
    with pytest.raises(TypeError, match="structure"):
        gg.hvp(lambda p: gg.sum(p["w"] * p["b"]), p, [f64([1.0], device)])


# -- GradientTape.gradient ---------------------------------------------------------------------------------


def test_tape_gradient_over_pytrees(device):
    w = gg.Variable(f64([[1.0, 2.0]], device), name="w")
    b = gg.Variable(f64([0.5], device), name="b")
    s = f64(3.0, device)
    with gg.GradientTape(persistent=True) as tape:
        tape.watch(s)
        y = gg.sum(w * s) + gg.sum(b)
        z = {"y": y, "more": [y * 2.0]}
    g = tape.gradient(y, {"params": Params(w=w, b=b), "scale": [s]})
    assert isinstance(g["params"], Params)
    np.testing.assert_array_equal(g["params"].w.numpy(), [[3.0, 3.0]])
    np.testing.assert_array_equal(g["params"].b.numpy(), [1.0])
    assert g["scale"][0].item() == 3.0
    g = tape.gradient(z, {"s": s}, output_gradients={"y": f64(1.0, device), "more": [f64(10.0, device)]})
    assert g["s"].item() == pytest.approx(21 * 3.0)
    g = tape.gradient(z, s, output_gradients={"y": None, "more": [f64(0.0, device)]})  # None: ones
    assert g.item() == 3.0
    with pytest.raises(TypeError, match="output_gradients must have the structure"):
        tape.gradient(z, s, output_gradients=[f64(1.0, device)])


def test_tape_watch_and_jacobian_over_pytrees(device):
    a, b = f64([1.0, 2.0], device), f64(3.0, device)
    with gg.GradientTape(persistent=True) as tape:
        tape.watch({"a": a, "rest": (b,)})
        y = a * b
    j = tape.jacobian(y, {"a": a, "rest": (b,)})
    np.testing.assert_array_equal(j["a"].numpy(), 3.0 * np.eye(2))
    np.testing.assert_array_equal(j["rest"][0].numpy(), [1.0, 2.0])
    with pytest.raises(TypeError, match="None"):
        tape.watch(None)


# -- optimizers -----------------------------------------------------------------------------------------------


def _optimizers():
    return [cls for _, cls in sorted(gg.optimizers.OPTIMIZERS.items())]


@pytest.mark.parametrize("cls", _optimizers(), ids=lambda c: c.__name__)
def test_optimizers_take_pytrees(cls, device):
    def make():
        return {"w": gg.Variable(f64([[1.0, -2.0]], device)), "b": [gg.Variable(f64([0.5], device))]}

    def loss_of(p):
        return lambda: gg.sum(p["w"] ** 2) + gg.sum(p["b"][0] ** 2)

    # the reference: flat lists of Variables
    ref = make()
    flat = [ref["b"][0], ref["w"]]
    opt = cls()
    with gg.GradientTape() as tape:
        loss = loss_of(ref)()
    opt.apply_gradients(zip(tape.gradient(loss, flat), flat))
    # pairs of pytrees
    p = make()
    opt = cls()
    with gg.GradientTape() as tape:
        loss = loss_of(p)()
    grads = tape.gradient(loss, p)
    assert set(grads) == {"w", "b"}
    opt.apply_gradients([(grads, p)])
    _same_tree(p, ref, rtol=0)
    # minimize over a dict of Variables
    q = make()
    opt = cls()
    opt.minimize(loss_of(q), q)
    _same_tree(q, ref, rtol=0)
    with pytest.raises(TypeError, match="pairs their keys"):
        opt.apply_gradients(zip(grads, p))
    with pytest.raises(TypeError, match="structure"):
        opt.apply_gradients([({"w": grads["w"]}, p)])
