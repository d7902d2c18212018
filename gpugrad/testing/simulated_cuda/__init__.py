"""A simulated CUDA device: gpugrad's CUDA code paths (and users' raw CUDA kernels) on a CPU-only machine.

With ``GPUGRAD_SIMULATE_CUDA=1`` in the environment before ``import gpugrad``, ``cuda:0`` is a
simulated NVIDIA H100 SXM (132 multiprocessors, 80 GiB, 50 MB L2, 227 KB opt-in shared memory),
whether or not CuPy is installed, and ``import cupy`` / ``import cupyx`` give the stand-ins here:

- :mod:`.cupy`: the part of CuPy's namespace gpugrad uses, computing with NumPy. Its ``ndarray`` is
  not a NumPy array: ``numpy.asarray`` of one raises ``TypeError``, ``.get()`` copies to the host,
  NumPy functions and ufuncs called on one return device arrays.
- ``cupy.RawModule``/``cupy.RawKernel`` compile the real CUDA source with NVRTC (errors, static
  shared memory) and run it compiled for the host (``host/cuda_host.h``), with the driver's
  launch checks.
- streams, events, the memory pool (``OutOfMemoryError`` past the device's memory), device
  attributes, and CUDA-graph capture that records work and refuses syncs, device-to-host copies
  and module loads while capturing.
- :func:`counters`: kernel launches (by name), graph launches, bytes read and written, syncs,
  host-to-device copies and allocations -- the evidence of GPU behaviour without a GPU. These are
  counts of a simulation, never timings.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from ._device import Counters, counters  # noqa: F401

ENV_VAR = "GPUGRAD_SIMULATE_CUDA"

__all__ = ["ENV_VAR", "Counters", "counters", "enabled", "install", "cupy_module"]


def enabled() -> bool:
    """True when the environment asks for the simulated device (``GPUGRAD_SIMULATE_CUDA`` set, not 0)."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def cupy_module() -> ModuleType:
    """The simulated ``cupy`` module."""
    from . import cupy  # noqa: PLC0415

    return cupy


def install() -> ModuleType:
    """Make ``import cupy`` and ``import cupyx`` (and their submodules) give the simulated ones in
    this process; returns the simulated ``cupy``."""
    from . import cupy, cupyx  # noqa: PLC0415

    for prefix, mod in (("cupy", cupy), ("cupyx", cupyx)):
        base = mod.__name__
        for name, m in list(sys.modules.items()):
            if m is not None and (name == base or name.startswith(base + ".")):
                sys.modules[prefix + name[len(base) :]] = m
    return cupy
