"""Simulated ``cupy.cuda.driver``: its error type."""

from ..._device import CUDADriverError  # noqa: F401

CUDA_ERROR_INVALID_VALUE = 1
