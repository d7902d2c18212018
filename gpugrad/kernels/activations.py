"""Launchers of the activation kernels (``kernels/activations.cu``): elementwise, one grid-stride
kernel per call."""

from __future__ import annotations

from typing import Any

from .args import _i64, _like, _main, _no_overlap, _on_input_device, _out, _outs, _suffix
from .geometry import EW_THREADS, ew_grid
from .runtime import _rt


def _ew(module: str, base: str, inputs: list[Any], nout: int, out: Any, extra: tuple[Any, ...] = ()) -> Any:
    rt = _rt()
    cp = rt.xp
    ref = inputs[0]
    shapes = (ref.shape,) * nout
    outs = (_out(cp, out, ref.shape, ref.dtype),) if nout == 1 else _outs(cp, out, shapes, ref.dtype)
    for o in outs:
        _no_overlap(o, *inputs)
    n = ref.size
    if n:
        kern = rt.kernel(module, f"{base}_{_suffix(ref.dtype)}")
        grid = ew_grid(n, ref.dtype.itemsize, rt.sm_count)
        kern((grid,), (EW_THREADS,), (*inputs, *outs, _i64(n), *extra))
    return outs[0] if nout == 1 else outs


def _act1(base: str, x: Any, out: Any) -> Any:
    cp = _rt().xp
    x = _main(cp, x, "x")
    return _ew("activations", base, [x], 1, out)


def _act2(base: str, a: Any, b: Any, out: Any, names: tuple[str, str]) -> Any:
    cp = _rt().xp
    a = _main(cp, a, names[0])
    b = _like(cp, b, a, names[1])
    return _ew("activations", base, [a, b], 1, out)


def _act3(base: str, y: Any, gy: Any, ggx: Any, out: Any) -> tuple[Any, Any]:
    cp = _rt().xp
    y = _main(cp, y, "y")
    gy = _like(cp, gy, y, "gy")
    ggx = _like(cp, ggx, y, "ggx")
    return _ew("activations", base, [y, gy, ggx], 2, out)


@_on_input_device
def sigmoid_fwd(x: Any, out: Any = None) -> Any:
    """y = 1 / (1 + exp(-x))."""
    return _act1("sigmoid_fwd", x, out)


@_on_input_device
def sigmoid_bwd(y: Any, gy: Any, out: Any = None) -> Any:
    """gx = gy * y * (1 - y), from the forward output y."""
    return _act2("sigmoid_bwd", y, gy, out, ("y", "gy"))


@_on_input_device
def sigmoid_bwd_bwd(y: Any, gy: Any, ggx: Any, out: Any = None) -> tuple[Any, Any]:
    """Gradients of gx = gy * y * (1 - y) given ggx: ``(ggx * gy * (1 - 2y), ggx * y * (1 - y))``
    (w.r.t. y, w.r.t. gy)."""
    return _act3("sigmoid_bwd_bwd", y, gy, ggx, out)


@_on_input_device
def tanh_fwd(x: Any, out: Any = None) -> Any:
    """y = tanh(x)."""
    return _act1("tanh_fwd", x, out)


@_on_input_device
def tanh_bwd(y: Any, gy: Any, out: Any = None) -> Any:
    """gx = gy * (1 - y^2), from the forward output y."""
    return _act2("tanh_bwd", y, gy, out, ("y", "gy"))


@_on_input_device
def tanh_bwd_bwd(y: Any, gy: Any, ggx: Any, out: Any = None) -> tuple[Any, Any]:
    """Gradients of gx = gy * (1 - y^2) given ggx: ``(-2 * ggx * gy * y, ggx * (1 - y^2))``."""
    return _act3("tanh_bwd_bwd", y, gy, ggx, out)


@_on_input_device
def relu_fwd(x: Any, out: Any = None) -> Any:
    """y = max(x, 0) (NaN stays NaN)."""
    return _act1("relu_fwd", x, out)


@_on_input_device
def relu_bwd(x: Any, gy: Any, out: Any = None) -> Any:
    """gx = gy where x > 0, else 0 (so relu'(0) = 0), from the forward input x."""
    return _act2("relu_bwd", x, gy, out, ("x", "gy"))
