"""``gg.cuda``: is a GPU usable, and how many; users' own CUDA kernels."""

from __future__ import annotations

from . import backend


def is_available() -> bool:
    """True when CuPy imports and a CUDA device answers."""
    return backend.cuda_available()


def device_count() -> int:
    return backend.cuda_device_count()


def synchronize() -> None:
    """Wait for all work queued on the current CUDA device (no-op without one); a failed value check
    of device arrays (a label out of range) raises here at the latest."""
    if backend.cuda_available():
        backend.cupy().cuda.Device().synchronize()
        backend.raise_deferred()


class RawKernel:
    """A user's CUDA C kernel: ``RawKernel(source, name)`` with ``name`` declared
    ``extern "C" __global__``. Compiled by NVRTC on first launch, once per device, and memoized
    (and cached on disk by CuPy) by the same loader as gpugrad's own kernels.

    ``kernel(grid, block, args, shared_mem=0)`` launches it on the current device, as
    ``cupy.RawKernel`` does; ``args`` may hold CuPy arrays, gpugrad Tensors (their arrays are
    passed) and NumPy scalars (``numpy.int32(n)``: the C type must match).
    """

    def __init__(self, source: str, name: str, options: tuple[str, ...] = ()) -> None:
        if not isinstance(source, str) or not isinstance(name, str) or not name.isidentifier():
            raise TypeError("RawKernel(source, name) takes the CUDA source text and the kernel's C name")
        self.source = source
        self.name = name
        self.options = tuple(options)

    def __repr__(self) -> str:
        return f"RawKernel({self.name!r})"

    def kernel(self):
        """The compiled ``cupy.RawKernel`` for the current device."""
        from . import kernels

        return kernels.get_source_kernel(self.source, self.name, self.options)

    def __call__(self, grid, block, args, shared_mem: int = 0) -> None:
        from .tensor import Tensor

        args = tuple(a.data if isinstance(a, Tensor) else a for a in args)
        kernel = self.kernel()  # compiled and loaded now (never inside a CUDA-graph capture)
        grid, block = tuple(grid), tuple(block)

        def launch(*arrays):
            kernel(grid, block, arrays, shared_mem=shared_mem)

        # inside gg.jit the launch is recorded, writing the pointers the kernel does not take const
        backend.array_launch(launch, args, self.written_params())

    def written_params(self) -> tuple[int, ...]:
        """Positions of the kernel's parameters that are pointers to non-const data."""
        import re

        m = re.search(r"__global__\s+void\s+" + re.escape(self.name) + r"\s*\(([^)]*)\)", self.source)
        if m is None:
            return ()
        params = [p.strip() for p in m.group(1).split(",") if p.strip()]
        return tuple(i for i, p in enumerate(params) if "*" in p and not re.search(r"\bconst\b[^*]*\*", p))

    def compile_check(self, arch: str = "compute_80") -> str:
        """:func:`compile_check` of this kernel."""
        return compile_check(self.source, self.name, arch, self.options)


def compile_check(source: str, name: str, arch: str = "compute_80", options: tuple[str, ...] = ()) -> str:
    """Compile a CUDA source with NVRTC, without a GPU, as :class:`RawKernel` would; returns the
    PTX. Raises ``gpugrad.kernels.KernelCompileError`` (with NVRTC's log) when it does not compile
    or defines no kernel ``name``, and ``gpugrad.kernels.NvrtcUnavailable`` without NVRTC."""
    from . import kernels

    return kernels.compile_source(source, name, arch, options)
