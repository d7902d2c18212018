"""A fused group (:mod:`gpugrad.jit.fusion`) as CUDA C: one grid-stride elementwise kernel.

The same description as the C loop (:mod:`gpugrad.jit.render_c`): the op expressions are shared,
only the loop and the math library differ. Compiled once by NVRTC through the kernel loader and
kept by a hash of its source; it compiles as every CuPy kernel does (CuPy adds ``-ftz=true``, as
for gpugrad's own kernels). Host numbers are read from device memory (``const double *``), so
that a captured CUDA graph sees each call's numbers.
"""

from __future__ import annotations

import hashlib

from .fusion import Group
from .render_c import CTYPE, statement

__all__ = ["render", "kernel_name"]

# NVRTC has the device math functions built in, but not <math.h>'s macros
_PRELUDE = """#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#define NAN __int_as_float(0x7fffffff)
#endif
"""


def kernel_name(src_body: str) -> str:
    return "gg_fused_" + hashlib.sha256(src_body.encode()).hexdigest()[:16]


def render(group: Group) -> tuple[str, str]:
    """``(source, kernel name)``. Parameters: the inputs in order (host numbers as ``double *``), then
    the outputs written in fresh arrays (those written in place go through their input's pointer),
    then the element count."""
    written = set(group.inplace.values())
    # out= may be one of the inputs (see Group.plannable): no __restrict__, no read-only cache path
    rs = "" if group.plannable else "__restrict__ "
    params = []
    for k, inp in enumerate(group.inputs):
        if inp.kind == "host":  # device memory: a captured graph reads it afresh at each launch
            params.append(f"const double *__restrict__ in{k}")
        else:
            const = "" if k in written else "const "
            params.append(f"{const}{CTYPE[inp.dtype]} *{rs}in{k}")
    for q, (j, (slot, _)) in enumerate(zip(group.outputs, group.output_blocks())):
        if slot >= 0:
            params.append(f"{CTYPE[group.ops[j].dtype]} *{rs}out{q}")
    params.append("const long long n")
    body = [
        "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;",
        "         i += (long long)gridDim.x * blockDim.x) {",
        f"        const long long o = i / {group.inner}, c = i % {group.inner};",
        "        (void)o; (void)c;",
    ]
    for j, op in enumerate(group.ops):
        ct = CTYPE[op.dtype]
        body.append(f"        const {ct} t{j} = ({ct}){statement(group, op)};")
    for q, (j, (slot, pos)) in enumerate(zip(group.outputs, group.output_blocks())):
        body.append(f"        {f'in{pos}' if slot < 0 else f'out{q}'}[i] = t{j};")
    body.append("    }")
    inner = "\n".join(body)
    sig = ",\n    ".join(params)
    name = kernel_name(sig + inner)
    src = _PRELUDE + f'extern "C" __global__ void {name}(\n    {sig}) {{\n{inner}\n}}\n'
    return src, name

