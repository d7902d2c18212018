"""The CUDA sources of ``kernels/*.cu``: where they are, their modules and entries, the text NVRTC
compiles (``kernels/common.cuh`` inlined in place of its ``#include``) and the compile units (one
operation's layouts and dtype in the row modules, so that a first call compiles a few kernels)."""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path


def _kernel_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    installed = package / "_cuda"  # a wheel force-includes kernels/ here
    return installed if installed.is_dir() else package.parent / "kernels"


KERNEL_DIR: Path = _kernel_dir()

#: NVRTC options of every build. CuPy adds the architecture on a GPU (and, by itself, ``-ftz=true``
#: and ``--device-as-default-execution-space``, which :func:`nvrtc_compile` adds too).
COMPILE_OPTIONS: tuple[str, ...] = ("-std=c++17",)

_CUPY_IMPLICIT_OPTIONS: tuple[str, ...] = ("-ftz=true", "--device-as-default-execution-space")

MODULES: tuple[str, ...] = ("activations", "softmax", "losses")


def _both(*bases: str) -> tuple[str, ...]:
    return tuple(f"{b}_{s}" for b in bases for s in ("f32", "f64"))


#: row layouts of the softmax family (one row on chip per pass) and of the row reductions (losses)
ELEMENT_LAYOUTS: tuple[str, ...] = (
    "small",
    "regs64",
    "regs128",
    "regs256",
    "regs512",
    "regs1024",
    "smem",
    "part",
    "fin",
)
REDUCE_LAYOUTS: tuple[str, ...] = ("small", "warp", "block", "part", "fin")

_KERNELS: dict[str, tuple[str, ...]] = {
    "activations": _both(
        "sigmoid_fwd",
        "sigmoid_bwd",
        "sigmoid_bwd_bwd",
        "tanh_fwd",
        "tanh_bwd",
        "tanh_bwd_bwd",
        "relu_fwd",
        "relu_bwd",
    ),
    "softmax": _both(
        *(
            f"{op}_{layout}"
            for op in ("softmax_fwd", "log_softmax_fwd", "softmax_bwd", "log_softmax_bwd")
            for layout in ELEMENT_LAYOUTS
        )
    ),
    "losses": _both(
        *(
            f"{op}_{layout}"
            for op in ("mse_fwd", "bce_logits_fwd", "bce_fwd", "softmax_ce_fwd", "softmax_ce_sparse_fwd")
            for layout in REDUCE_LAYOUTS
        ),
        "mse_bwd",
        "bce_bwd",
        "bce_logits_bwd",
        "softmax_ce_bwd",
        "softmax_ce_sparse_bwd",
    ),
}


class KernelCompileError(RuntimeError):
    """NVRTC rejected a kernel source; the message names the module/kernel and carries the log."""

    def __init__(self, message: str, *, module: str = "", kernel: str = "", log: str = "") -> None:
        super().__init__(message)
        self.module = module
        self.kernel = kernel
        self.log = log


class NvrtcUnavailable(RuntimeError):
    """CuPy's NVRTC binding or the libnvrtc shared library cannot be loaded."""


# ----------------------------------------------------------------------------------------- sources

_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.MULTILINE)


def _check_module(module: str) -> None:
    if module not in _KERNELS:
        raise ValueError(f"unknown kernel module {module!r}; expected one of {MODULES}")


@cache
def source(module: str) -> str:
    """The CUDA source of ``kernels/<module>.cu`` with its local ``#include "..."`` lines inlined."""
    _check_module(module)
    text = (KERNEL_DIR / f"{module}.cu").read_text(encoding="utf-8")

    def inline(m: re.Match[str]) -> str:
        header = (KERNEL_DIR / m.group(1)).read_text(encoding="utf-8")
        return f"// ---- begin {m.group(1)}\n{header}\n// ---- end {m.group(1)}"

    return _INCLUDE_RE.sub(inline, text)


def kernel_names(module: str) -> list[str]:
    """Every ``extern "C"`` entry of a module (one per operation, layout and dtype)."""
    _check_module(module)
    return list(_KERNELS[module])


_ENTRY_RE = re.compile(r"^GG_[A-Z0-9_]+\((\w+),")
_UNIT_MODULES = ("softmax", "losses")


def compile_unit(module: str, name: str) -> str:
    """The unit NVRTC compiles for kernel ``name``: in the row modules, every layout of one
    operation and dtype (``'softmax:softmax_fwd_f32'``), so that a first call compiles a few
    kernels rather than the whole module; elsewhere, the module."""
    parts = name.rsplit("_", 2)
    if module in _UNIT_MODULES and len(parts) == 3 and parts[1] in (*ELEMENT_LAYOUTS, *REDUCE_LAYOUTS):
        return f"{module}:{parts[0]}_{parts[2]}"
    if module in _UNIT_MODULES:
        return f"{module}:{name}"
    return module


@cache
def unit_source(module: str, unit: str) -> str:
    """``source(module)`` keeping only the entries of compile unit ``unit``."""
    if unit == module:
        return _source(module)
    keep = {n for n in _KERNELS[module] if compile_unit(module, n) == unit}
    text = _source(module)
    lines = [line for line in text.splitlines() if (m := _ENTRY_RE.match(line)) is None or m.group(1) in keep]
    return "\n".join(lines) + "\n"


def _source(module: str) -> str:
    """``source(module)`` as the package ``gpugrad.kernels`` names it now (tests may replace it there)."""
    return sys.modules[__package__].source(module)
