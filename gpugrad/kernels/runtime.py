"""Where the launchers run: the array module, kernel lookup and device limits (CuPy on the current
device, or the tests' host harness)."""

from __future__ import annotations

from typing import Any

from .geometry import _DEFAULT_SMEM
from .loader import _cupy, get_kernel


class Runtime:
    """Where the launch wrappers below run: the array module, kernel lookup and device limits.

    The default is CuPy on the current device. The host harness of the tests supplies one that
    runs the same kernels compiled for the CPU on NumPy arrays (see :func:`_use_runtime`).
    ``force_layout`` (tests only) makes every row operation use that layout where it applies.
    """

    force_layout: str | None = None

    def __init__(self, xp: Any, sm_count: int, smem_optin: int, l2_bytes: int) -> None:
        self.xp = xp
        self.sm_count = sm_count
        self.smem_optin = smem_optin
        self.l2_bytes = l2_bytes

    def kernel(self, module: str, name: str) -> Any:
        return get_kernel(module, name)

    def allow_smem(self, kern: Any, nbytes: int) -> None:
        """Lets ``kern`` use ``nbytes`` of dynamic shared memory: where it and the kernel's static
        shared memory pass the default 48 KB (a limit on both together), the opt-in attribute
        (cudaFuncAttributeMaxDynamicSharedMemorySize) is raised, once, to what the device allows
        beside the static part."""
        static = int(getattr(kern, "shared_size_bytes", 0))
        if nbytes + static > _DEFAULT_SMEM and getattr(kern, "max_dynamic_shared_size_bytes", 0) < nbytes:
            kern.max_dynamic_shared_size_bytes = self.smem_optin - static


_runtimes: dict[int, Runtime] = {}
_runtime_override: list[Runtime] = []


def _rt() -> Runtime:
    if _runtime_override:
        return _runtime_override[-1]
    cp = _cupy()
    dev = cp.cuda.runtime.getDevice()
    rt = _runtimes.get(dev)
    if rt is None:
        attr = cp.cuda.runtime.deviceGetAttribute
        rtm = cp.cuda.runtime
        rt = Runtime(
            cp,
            sm_count=int(attr(rtm.cudaDevAttrMultiProcessorCount, dev)),
            smem_optin=int(attr(rtm.cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)),
            l2_bytes=int(attr(rtm.cudaDevAttrL2CacheSize, dev)),
        )
        _runtimes[dev] = rt
    return rt


class _use_runtime:  # noqa: N801 - a context manager used like a function
    """``with _use_runtime(rt):`` runs the launch wrappers on ``rt`` (the tests' host harness)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def __enter__(self) -> Runtime:
        _runtime_override.append(self.rt)
        return self.rt

    def __exit__(self, *exc: object) -> None:
        _runtime_override.pop()
