"""Simulated ``cupy.testing``: comparisons of device (or host) arrays, on host copies."""

from __future__ import annotations

import numpy as np

from .._array import ndarray


def _host(a):
    return a.get() if isinstance(a, ndarray) else a


def assert_array_equal(x, y, err_msg: str = "", verbose: bool = True, strides_check: bool = False) -> None:
    np.testing.assert_array_equal(_host(x), _host(y), err_msg=err_msg, verbose=verbose)


def assert_allclose(actual, desired, rtol=1e-7, atol=0, err_msg="", verbose=True) -> None:
    np.testing.assert_allclose(_host(actual), _host(desired), rtol=rtol, atol=atol, err_msg=err_msg, verbose=verbose)


def assert_array_almost_equal(x, y, decimal=6, err_msg="", verbose=True) -> None:
    np.testing.assert_array_almost_equal(_host(x), _host(y), decimal=decimal, err_msg=err_msg, verbose=verbose)
