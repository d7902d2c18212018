"""The CUDA kernels of ``kernels/*.cu``: loading and array-level launch wrappers.

Its parts:

- :mod:`.sources`: the sources, their modules and entries, compile units (one operation's layouts
  and dtype in the row modules, see :func:`compile_unit`);
- :mod:`.nvrtc`: NVRTC without a GPU (``cupy.cuda.nvrtc``, or ``cuda-bindings`` through
  :mod:`._nvrtc_bindings` where CuPy is absent), what the CI compile test runs;
- :mod:`.loader`: ``cupy.RawModule`` on a GPU, compiled on first use once per device and compile
  unit (cached on disk by CuPy), and its kernels memoized;
- :mod:`.raw`: users' CUDA sources (``gg.cuda.RawKernel``, ``gg.cuda.compile_check``);
- :mod:`.runtime`: where the launchers run (CuPy, or the tests' host harness) and the device limits;
- :mod:`.geometry`: block sizes, grids and the row plans (layouts, shared memory, split rows);
- :mod:`.args`: argument checks, dtypes, ``out=`` buffers, the input's device;
- the launchers by op family: :mod:`.activations`, :mod:`.softmax`, :mod:`.losses` (row
  launches of both in :mod:`.rows`).

Importing this package neither imports CuPy nor compiles anything.

Launching. The array-level functions take CuPy arrays and return new CuPy arrays of the input's
float dtype (float32 or float64; float64 is computed in float64). Inputs are made contiguous,
secondary inputs (targets, upstream gradients) are cast to the main input's dtype, and every
function accepts ``out=`` (a contiguous array of the result's shape and dtype, or a tuple of them
for two results) that must not overlap the inputs. "Rows" are all leading axes flattened and ``C``
is the length of the last axis; per-row arguments (``g_row``, the ``saved`` values of the
cross-entropy forwards, ``labels``) have shape ``x.shape[:-1]`` (or any shape of that size, or one
that broadcasts to it). Row operations pick a layout per call (:func:`row_plan`): several rows per
warp, a row in registers or in shared memory, or a row split across blocks; each is its own kernel.

The names below are the package's: ``source`` is read through the package by the loader, so that
replacing ``gpugrad.kernels.source`` (a test's broken module) reaches every compile.
"""

from __future__ import annotations

from .activations import (
    relu_bwd,
    relu_fwd,
    sigmoid_bwd,
    sigmoid_bwd_bwd,
    sigmoid_fwd,
    tanh_bwd,
    tanh_bwd_bwd,
    tanh_fwd,
)
from .args import _suffix
from .geometry import (
    BLOCK_ROWS_MAX_THREADS,
    EW_THREADS,
    SMALL_MAX_COLS,
    SPLIT_THREADS,
    WARP_MAX_COLS,
    WARP_ROWS_THREADS,
    RowPlan,
    ew_grid,
    row_launch,
    row_plan,
)
from .loader import get_kernel
from .losses import (
    bce_bwd,
    bce_fwd,
    bce_logits_bwd,
    bce_logits_fwd,
    mse_bwd,
    mse_fwd,
    softmax_ce_bwd,
    softmax_ce_fwd,
    softmax_ce_sparse_bwd,
    softmax_ce_sparse_fwd,
)
from .nvrtc import _nvrtc_compile_source, load_nvrtc, nvrtc_compile
from .raw import compile_source, get_source_kernel
from .runtime import Runtime, _rt, _use_runtime
from .softmax import log_softmax_bwd, log_softmax_fwd, softmax_bwd, softmax_fwd
from .sources import (
    _KERNELS,
    COMPILE_OPTIONS,
    ELEMENT_LAYOUTS,
    KERNEL_DIR,
    MODULES,
    REDUCE_LAYOUTS,
    KernelCompileError,
    NvrtcUnavailable,
    compile_unit,
    kernel_names,
    source,
    unit_source,
)

__all__ = [
    "KERNEL_DIR",
    "COMPILE_OPTIONS",
    "MODULES",
    "KernelCompileError",
    "NvrtcUnavailable",
    "source",
    "kernel_names",
    "get_kernel",
    "get_source_kernel",
    "compile_source",
    "nvrtc_compile",
    "load_nvrtc",
    "sigmoid_fwd",
    "sigmoid_bwd",
    "sigmoid_bwd_bwd",
    "tanh_fwd",
    "tanh_bwd",
    "tanh_bwd_bwd",
    "relu_fwd",
    "relu_bwd",
    "softmax_fwd",
    "log_softmax_fwd",
    "softmax_bwd",
    "log_softmax_bwd",
    "mse_fwd",
    "mse_bwd",
    "bce_fwd",
    "bce_bwd",
    "bce_logits_fwd",
    "bce_logits_bwd",
    "softmax_ce_fwd",
    "softmax_ce_bwd",
    "softmax_ce_sparse_fwd",
    "softmax_ce_sparse_bwd",
]

# The launchers are public here: they name this package as their module (the jit recognises the
# activation kernels by it).
for _name in __all__[__all__.index("sigmoid_fwd") :]:
    globals()[_name].__module__ = __name__
del _name
