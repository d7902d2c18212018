"""More activations: ``gelu``, ``leaky_relu``, ``elu``, ``softplus``, ``silu`` (alias ``swish``), and
the error function ``erf`` that exact GELU needs.

These have no dedicated CUDA kernels: each is composed of generic array calls (NumPy, or CuPy on a
GPU) and existing gpugrad ops, so every order of derivative comes from the ops they are built of.
Each is finite with a finite gradient for inputs as large as ±1e4 and gives NaN for NaN.

Defaults follow Keras 3: ``gelu`` is the exact (erf) form unless ``approximate=True``,
``leaky_relu`` has ``negative_slope=0.2``, ``elu`` has ``alpha=1``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend
from .activation import sigmoid, tanh
from .base import record, unary
from .math import exp, expm1, square, where

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

# -- erf ----------------------------------------------------------------------------------------

_vector_erf = np.frompyfunc(math.erf, 1, 1)  # the C library's erf, one element at a time


def _erf_numpy(d: np.ndarray) -> np.ndarray:
    try:  # SciPy's vectorized erf when it is installed (much faster than a Python call per element)
        from scipy.special import erf as sp_erf  # noqa: PLC0415
    except ImportError:
        sp_erf = None
    if sp_erf is not None:
        return np.asarray(sp_erf(d), dtype=d.dtype)
    return erf_fallback(d)


def erf_fallback(d: np.ndarray) -> np.ndarray:
    """``math.erf`` over an array (accurate to float64; used where SciPy is not installed)."""
    return np.asarray(_vector_erf(d), dtype=d.dtype)


def _erf_array(d):
    return backend.array_call(_erf_real, d)  # one recorded call inside gg.jit, on either backend


def _erf_real(d):
    if backend.is_cupy_array(d):
        return backend.cupy_special().erf(d)
    if d.dtype.kind not in "f":
        d = d.astype(np.float64)
    return _erf_numpy(d)


def erf(x):
    """The error function 2/√π ∫₀ˣ e^{−t²} dt; its derivative 2/√π·e^{−x²} is written in ops."""
    x = unary(x)
    d = x.data
    if d.dtype.kind not in "f":
        raise TypeError(f"erf: expected a floating tensor, got dtype {d.dtype}")
    return record(_erf_array(d), (x,), _erf_bwd, "erf")


def _erf_bwd(g, out, need):
    x = out._node.inputs[0]
    return (g * (_TWO_OVER_SQRT_PI * exp(-square(x))),)


# -- activations --------------------------------------------------------------------------------


def gelu(x, approximate: bool = False):
    """Gaussian error linear unit, x·Φ(x) = ½x(1 + erf(x/√2)) (Keras 3's default form).

    ``approximate=True`` gives the tanh form ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
    """
    x = unary(x)
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * (x * square(x)))
        return 0.5 * x * (1.0 + tanh(inner))
    return 0.5 * x * (1.0 + erf(x * _SQRT_HALF))


def leaky_relu(x, negative_slope: float = 0.2):
    """x for x > 0, ``negative_slope``·x otherwise (Keras 3's default slope is 0.2)."""
    x = unary(x)
    return where(x > 0, x, x * float(negative_slope))


def elu(x, alpha: float = 1.0):
    """x for x > 0, alpha·(eˣ − 1) otherwise."""
    x = unary(x)
    # expm1 sees 0 where x > 0, so the branch that where() discards never overflows (a discarded
    # inf would turn its zero gradient into NaN); NaN takes the expm1 branch and stays NaN
    positive = x > 0
    return where(positive, x, float(alpha) * expm1(where(positive, 0.0, x)))


def softplus(x):
    """log(1 + eˣ), computed as logaddexp(x, 0) (no overflow); its derivative is σ(x)."""
    x = unary(x)
    d = x.data
    if d.dtype.kind not in "f":
        raise TypeError(f"softplus: expected a floating tensor, got dtype {d.dtype}")
    xp = backend.get_array_module(d)
    with np.errstate(invalid="ignore"):  # NumPy warns on NaN input; the NaN result is the answer
        out = xp.logaddexp(d, d.dtype.type(0))
    return record(out, (x,), _softplus_bwd, "softplus")


def _softplus_bwd(g, out, need):
    return (g * sigmoid(out._node.inputs[0]),)


def silu(x):
    """x·σ(x) (also called swish)."""
    x = unary(x)
    return x * sigmoid(x)


swish = silu
