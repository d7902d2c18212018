"""Registers, spills, stack and shared memory of every CUDA kernel, read from ptxas without a GPU.

Each module of ``kernels/`` is compiled to a cubin for ``sm_90`` by NVRTC with the loader's own
source text and options (``gpugrad.kernels``) plus ``-Xptxas=-v``; NVRTC puts ptxas's report in the
program log, which :func:`parse_ptxas_log` reads::

    ptxas info    : Compiling entry function 'softmax_fwd_warp_f32' for 'sm_90'
    ptxas info    : Function properties for softmax_fwd_warp_f32
    ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
    ptxas info    : Used 32 registers, used 0 barriers

Kernel names come from that report, so new kernels are picked up as they are added. A kernel is
float64 when its name carries an ``f64`` token (``..._f64``, ``..._f64_...``); every other kernel is
held to the float32 rule: no spills.

``python -m bench.kernel_resources [--arch sm_90]`` prints the table.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import asdict, dataclass

DEFAULT_ARCH = "sm_90"
VERBOSE_OPTION = "-Xptxas=-v"

_ENTRY_RE = re.compile(r"Compiling entry function '([^']+)' for '(\w+)'")
_PROPS_RE = re.compile(r"Function properties for (\S+)")
_SPILL_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED_RE = re.compile(r"Used (\d+) registers")
_SMEM_RE = re.compile(r"(\d+) bytes smem")
_BARRIERS_RE = re.compile(r"used (\d+) barriers")
_F64_RE = re.compile(r"(?:^|_)f64(?:_|$)")


@dataclass
class Resources:
    """What ptxas reports for one function (``entry``: a kernel, not a callee)."""

    name: str
    entry: bool = False
    registers: int | None = None
    stack_frame: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    smem: int = 0
    barriers: int = 0

    @property
    def spill_bytes(self) -> int:
        return self.spill_stores + self.spill_loads

    @property
    def float64(self) -> bool:
        return is_float64(self.name)


def is_float64(name: str) -> bool:
    """Whether a kernel name marks a float64 kernel (an ``f64`` token); anything else counts as float32."""
    return bool(_F64_RE.search(name))


def parse_ptxas_log(log: str) -> dict[str, Resources]:
    """Every function ptxas reported on, by name, in order of appearance.

    "Compiling entry function" marks a kernel; the stack/spill line follows "Function properties for
    NAME"; the register line follows the entry line it belongs to.
    """
    out: dict[str, Resources] = {}
    current_entry: str | None = None
    current_props: str | None = None

    def get(name: str) -> Resources:
        if name not in out:
            out[name] = Resources(name)
        return out[name]

    for line in log.splitlines():
        m = _ENTRY_RE.search(line)
        if m:
            current_entry = m.group(1)
            get(current_entry).entry = True
            continue
        m = _PROPS_RE.search(line)
        if m:
            current_props = m.group(1)
            get(current_props)
            continue
        m = _SPILL_RE.search(line)
        if m and current_props is not None:
            res = get(current_props)
            res.stack_frame, res.spill_stores, res.spill_loads = (int(v) for v in m.groups())
            current_props = None
            continue
        m = _USED_RE.search(line)
        if m and current_entry is not None:
            res = get(current_entry)
            res.registers = int(m.group(1))
            smem = _SMEM_RE.search(line)
            res.smem = int(smem.group(1)) if smem else 0
            bars = _BARRIERS_RE.search(line)
            res.barriers = int(bars.group(1)) if bars else 0
            current_entry = None
    return out


def compile_options(arch: str = DEFAULT_ARCH) -> list[str]:
    """The loader's NVRTC options (those CuPy adds on a GPU included), the arch and ``-Xptxas=-v``."""
    from gpugrad import kernels as K  # noqa: PLC0415

    opts = [*getattr(K, "COMPILE_OPTIONS", ()), *getattr(K, "_CUPY_IMPLICIT_OPTIONS", ())]
    opts = [o for o in opts if not o.startswith(("-arch", "--gpu-architecture"))]
    return [*opts, f"-arch={arch}", VERBOSE_OPTION]


def compile_module(module: str, arch: str = DEFAULT_ARCH) -> tuple[bytes, str]:
    """(cubin, NVRTC program log) of one module of ``kernels/``; needs NVRTC, not a GPU.

    Raises ``gpugrad.kernels.NvrtcUnavailable`` without NVRTC and ``KernelCompileError`` when the
    source does not compile.
    """
    from gpugrad import kernels as K  # noqa: PLC0415

    nvrtc = K.load_nvrtc()
    prog = nvrtc.createProgram(K.source(module), f"{module}.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, compile_options(arch))
        except nvrtc.NVRTCError as exc:
            log = nvrtc.getProgramLog(prog)
            raise K.KernelCompileError(
                f"NVRTC failed to compile {module}.cu for {arch}: {exc}\n{log}", module=module, log=log
            ) from exc
        return nvrtc.getCUBIN(prog), nvrtc.getProgramLog(prog)
    finally:
        nvrtc.destroyProgram(prog)


def module_resources(module: str, arch: str = DEFAULT_ARCH) -> dict[str, Resources]:
    return parse_ptxas_log(compile_module(module, arch)[1])


def table(by_module: dict[str, dict[str, Resources]]) -> str:
    """One line per function: module, name, registers, spill bytes (stores/loads), stack, smem."""
    lines = [f"{'module':12s} {'kernel':40s} {'regs':>4s} {'spill st/ld':>11s} {'stack':>5s} {'smem':>6s}  dtype"]
    for module, funcs in by_module.items():
        for r in funcs.values():
            kind = ("f64" if r.float64 else "f32") if r.entry else "callee"
            regs = "-" if r.registers is None else str(r.registers)
            spills = f"{r.spill_stores}/{r.spill_loads}"
            flag = "  SPILLS" if r.spill_bytes else ""
            lines.append(
                f"{module:12s} {r.name:40s} {regs:>4s} {spills:>11s} {r.stack_frame:>5d} {r.smem:>6d}  {kind}{flag}"
            )
    return "\n".join(lines)


def float32_spills(by_module: dict[str, dict[str, Resources]]) -> list[str]:
    """``module:kernel (N bytes)`` for every float32 kernel that spills."""
    return [
        f"{module}:{r.name} ({r.spill_stores} B stores, {r.spill_loads} B loads)"
        for module, funcs in by_module.items()
        for r in funcs.values()
        if r.entry and not r.float64 and r.spill_bytes
    ]


def all_resources(arch: str = DEFAULT_ARCH) -> dict[str, dict[str, Resources]]:
    from gpugrad import kernels as K  # noqa: PLC0415

    return {module: module_resources(module, arch) for module in K.MODULES}


def as_json(by_module: dict[str, dict[str, Resources]]) -> dict[str, list[dict]]:
    return {m: [{**asdict(r), "float64": r.float64} for r in funcs.values()] for m, funcs in by_module.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="registers and spills of every kernel (NVRTC + ptxas -v)")
    parser.add_argument("--arch", default=DEFAULT_ARCH)
    args = parser.parse_args(argv)
    res = all_resources(args.arch)
    print(table(res))
    bad = float32_spills(res)
    if bad:
        print("float32 kernels that spill: " + "; ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
