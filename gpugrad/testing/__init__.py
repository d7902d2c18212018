"""Testing helpers: :func:`check_grad` (gradients against central finite differences in float64)
and :mod:`.simulated_cuda` (a simulated CUDA device for CPU-only machines).

Nothing is imported here up front: the backend loads :mod:`.simulated_cuda` while gpugrad itself
is still importing, so this package must not pull in the tape and the ops. ``check_grad`` is
loaded from :mod:`.grad_check` on first use.
"""

from __future__ import annotations

import importlib

__all__ = ["check_grad"]


def __getattr__(name: str):
    if name == "check_grad":
        return importlib.import_module(".grad_check", __name__).check_grad
    raise AttributeError(f"module 'gpugrad.testing' has no attribute {name!r}")
