"""Simulated ``cupy.linalg``: NumPy's ``numpy.linalg`` on device arrays (one launch per call)."""

from __future__ import annotations

import numpy as np

from .._array import call as _call

_NAMES = (
    "cholesky det eigh eigvalsh inv lstsq matrix_power matrix_rank norm pinv qr slogdet solve svd "
    "tensorinv tensorsolve"
)


def _function(name: str):
    fn = getattr(np.linalg, name)

    def f(*args, **kwargs):
        return _call(f"linalg_{name}", fn, args, kwargs)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Simulated ``cupy.linalg.{name}`` (NumPy's, on device arrays)."
    return f


for _name in _NAMES.split():
    globals()[_name] = _function(_name)

__all__ = _NAMES.split()
