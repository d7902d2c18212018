"""``gg.cuda``: is a GPU usable, and how many."""

from __future__ import annotations

from . import backend


def is_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    return backend.cuda_available()


def device_count() -> int:
    return backend.cuda_device_count()


def synchronize() -> None:
    """Wait for all work queued on the current CUDA device (no-op without one)."""
    if backend.cuda_available():
        backend.cupy().cuda.Device().synchronize()
