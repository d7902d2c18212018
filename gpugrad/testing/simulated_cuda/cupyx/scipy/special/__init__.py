"""Simulated ``cupyx.scipy.special``: elementwise special functions of device arrays (one launch
each). Like CuPy's ufuncs they take device arrays and scalars only: anything else raises
``TypeError: Unsupported type``."""

from __future__ import annotations

import math as _math

import numpy as np

from ...._array import call as _call
from ...._array import ndarray as _ndarray

_erf = np.frompyfunc(_math.erf, 1, 1)
_erfc = np.frompyfunc(_math.erfc, 1, 1)
_lgamma = np.frompyfunc(_math.lgamma, 1, 1)


def _special(name: str, fn):
    def f(x, out=None):
        if not isinstance(x, (_ndarray, int, float, np.generic)):
            raise TypeError(f"Unsupported type {type(x)}")

        def compute(a, out=None):
            a = np.asarray(a)
            dt = a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)
            res = fn(a).astype(dt)
            if out is not None:
                out[...] = res
                return out
            return res

        return _call(name, compute, (x,), {} if out is None else {"out": out})

    f.__name__ = name
    return f


erf = _special("erf", _erf)
erfc = _special("erfc", _erfc)
gammaln = _special("gammaln", _lgamma)
