"""Simulated ``cupy.testing``: comparisons of device (or host) arrays, on host copies."""

from __future__ import annotations

import numpy as _np

from .._array import ndarray as _ndarray


def _host(a):
    return a.get() if isinstance(a, _ndarray) else a


def assert_array_equal(actual, desired, err_msg: str = "", verbose: bool = True, strict: bool = False) -> None:
    _np.testing.assert_array_equal(_host(actual), _host(desired), err_msg=err_msg, verbose=verbose, strict=strict)


def assert_allclose(actual, desired, rtol=1e-7, atol=0, equal_nan=True, err_msg="", verbose=True) -> None:
    _np.testing.assert_allclose(
        _host(actual), _host(desired), rtol=rtol, atol=atol, equal_nan=equal_nan, err_msg=err_msg, verbose=verbose
    )


def assert_array_almost_equal(actual, desired, decimal=6, err_msg="", verbose=True) -> None:
    _np.testing.assert_array_almost_equal(
        _host(actual), _host(desired), decimal=decimal, err_msg=err_msg, verbose=verbose
    )
