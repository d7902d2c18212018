"""``kernels/*.cu`` built for the CPU (see :mod:`gpugrad.testing.simulated_cuda.host.build`) and plugged
into :mod:`gpugrad.kernels` in place of CuPy by :class:`HostRuntime`, so the launch wrappers (layout
choice, grids, shared memory sizes, split-row slices) run unchanged on NumPy arrays."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from gpugrad import kernels as K
from gpugrad.testing.simulated_cuda.host import build as B
from gpugrad.testing.simulated_cuda.host.library import HostLibrary

compiler = B.compiler

#: kernels of selftest.cu (beside cuda_host.h), which check the harness itself
SELFTEST = (
    "shuffles",
    "ballot",
    "block_sum_and_reverse",
    "atomics",
    "bad_full_mask",
    "bad_half_barrier",
    "bad_exit_at_barrier",
    "bad_masks",
)


def build(modules: tuple[str, ...] = (*K.MODULES, "selftest")) -> dict[str, Path]:
    """Shared libraries of ``modules`` (built in parallel where not cached); ``'selftest'`` is the
    harness's own test kernels."""
    jobs = {}
    for module in modules:
        if module == "selftest":
            code = (B.HERE / "selftest.cu").read_text()
            jobs[module] = B.start_build(
                code,
                SELFTEST,
                tag=module,
                include_dirs=[K.KERNEL_DIR],
                key_extra=(K.KERNEL_DIR / "common.cuh").read_text(),
            )
        else:
            jobs[module] = B.start_build(K.source(module), K.kernel_names(module), tag=module)
    errors, out = [], {}
    for module, job in jobs.items():
        try:
            out[module] = job.wait()
        except B.HostCompileError as exc:
            errors.append(f"{module}: {exc}")
    if errors:
        raise RuntimeError("host build of the CUDA kernels failed:\n" + "\n".join(errors))
    return out


class HostKernelError(RuntimeError):
    pass


class HostKernel:
    """Called like ``cupy.RawKernel``: ``kern(grid, block, args, shared_mem=0)``; args are NumPy
    arrays (passed as pointers) and NumPy scalars (passed by value, sizes checked)."""

    def __init__(self, lib: HostLibrary, name: str) -> None:
        self.lib = lib
        self.name = name
        params = lib.params(name)
        if params is None:
            raise KeyError(name)
        self.sizes = params[0]
        self.launches = 0
        self.max_dynamic_shared_size_bytes = 48 * 1024

    def _arg(self, i: int, a: Any) -> ctypes._SimpleCData:
        if isinstance(a, np.ndarray):
            if not a.flags.c_contiguous:
                raise HostKernelError(f"{self.name}: argument {i} is not contiguous")
            v: Any = ctypes.c_void_p(a.ctypes.data)
        elif isinstance(a, np.generic):
            v = np.ctypeslib.as_ctypes_type(a.dtype)(a.item())
        else:
            raise HostKernelError(f"{self.name}: argument {i} is a {type(a).__name__}; pass NumPy arrays or scalars")
        if ctypes.sizeof(v) != self.sizes[i]:
            raise HostKernelError(
                f"{self.name}: argument {i} has {ctypes.sizeof(v)} bytes, the kernel takes {self.sizes[i]}"
            )
        return v

    def __call__(
        self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...], shared_mem: int = 0
    ) -> None:
        if len(args) != len(self.sizes):
            raise HostKernelError(f"{self.name} takes {len(self.sizes)} arguments, got {len(args)}")
        if shared_mem > self.max_dynamic_shared_size_bytes:
            raise HostKernelError(
                f"{self.name}: {shared_mem} bytes of dynamic shared memory without the opt-in "
                f"attribute ({self.max_dynamic_shared_size_bytes})"
            )
        vals = [self._arg(i, a) for i, a in enumerate(args)]
        g = (tuple(grid) + (1, 1))[:3]
        b = (tuple(block) + (1, 1))[:3]
        err = self.lib.launch(self.name, g, b, shared_mem, vals)
        self.launches += 1
        if err:
            raise HostKernelError(f"{self.name} grid={g} block={b} smem={shared_mem}: {err}")


class HostRuntime(K.Runtime):
    """:class:`gpugrad.kernels.Runtime` over the host-built kernels and NumPy.

    The device limits are an H100's by default; tests shrink them to reach every layout with
    small arrays (few multiprocessors: split rows; little shared memory or L2: split and slices).
    """

    def __init__(
        self, libs: dict[str, Path], *, sm_count: int = 132, smem_optin: int = 227 * 1024, l2_bytes: int = 50 << 20
    ) -> None:
        super().__init__(np, sm_count=sm_count, smem_optin=smem_optin, l2_bytes=l2_bytes)
        self._libs = {m: HostLibrary(p) for m, p in libs.items()}
        self._kernels: dict[str, HostKernel] = {}
        self.launched: list[str] = []

    def kernel(self, module: str, name: str) -> Any:
        if name not in (SELFTEST if module == "selftest" else K.kernel_names(module)):
            raise KeyError(f"module {module!r} has no kernel {name!r}")
        kern = self._kernels.get(name)
        if kern is None:
            kern = self._kernels[name] = HostKernel(self._libs[module], name)
        self.launched.append(name)
        return kern

    def allow_smem(self, kern: Any, nbytes: int) -> None:
        if nbytes > 48 * 1024:
            kern.max_dynamic_shared_size_bytes = self.smem_optin
