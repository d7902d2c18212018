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
    red = group.reduce_op
    if red is not None:
        return _render_reduce(group, params, red)
    params.append("const long long n")
    body = [
        "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;",
        "         i += (long long)gridDim.x * blockDim.x) {",
        f"        const long long o = i / {group.inner}, c = i % {group.inner};",
        "        (void)o; (void)c;",
    ]
    body += _element(group, "        ")
    body.append("    }")
    inner = "\n".join(body)
    sig = ",\n    ".join(params)
    name = kernel_name(sig + inner)
    src = _PRELUDE + f'extern "C" __global__ void {name}(\n    {sig}) {{\n{inner}\n}}\n'
    return src, name


def _element(group: Group, pad: str) -> list[str]:
    """The ops at element ``i`` (row ``o``, column ``c``) and the stores of the outputs."""
    lines = []
    for j, op in enumerate(group.ops):
        ct = CTYPE[op.dtype]
        lines.append(f"{pad}const {ct} t{j} = ({ct}){statement(group, op)};")
    for q, (j, (slot, pos)) in enumerate(zip(group.outputs, group.output_blocks())):
        lines.append(f"{pad}{f'in{pos}' if slot < 0 else f'out{q}'}[i] = t{j};")
    return lines


#: blocks of a group that ends with a sum over rows (see :func:`_render_reduce`)
REDUCE_PARTS = 128
#: rows each partial sum takes at least: its partial row costs a write and a read
REDUCE_ROWS = 16


def _render_reduce(group: Group, params: list[str], red: int) -> tuple[str, str]:
    """A group ending with ``v.sum(axis=0)``: kernel ``name`` writes ``parts`` partial rows, each
    the sum of rows ``v, v + parts, ...`` (a block holds ``lanes`` of them when rows are narrower
    than the block: thread ``t`` takes lane ``t / cols`` and columns ``t % cols, + cols, ...``);
    kernel ``name_sum`` adds the partial rows in order into the result. Parameters: the inputs,
    the outputs, ``part``, ``parts``, ``lanes``, ``cols``; then ``part``, the result, ``parts``."""
    rt = CTYPE[group.ops[red].dtype]
    params = params + [f"{rt} *__restrict__ part", "const long long parts", "const long long lanes",
                       "const long long cols"]
    body = [
        "    const long long lane = threadIdx.x / cols;",
        "    if (lane >= lanes) return;",
        "    const long long v = blockIdx.x * lanes + lane;",
        f"    for (long long c = threadIdx.x % cols; c < {group.inner}; c += cols) {{",
        f"        {rt} acc = -({rt})0;  /* x + -0.0 is x */",
        f"        for (long long o = v; o < {group.outer}; o += parts) {{",
        f"            const long long i = o * {group.inner} + c;",
    ]
    body += _element(group, "            ")
    body += [
        f"            acc += t{red};",
        "        }",
        f"        part[v * {group.inner} + c] = acc;",
        "    }",
    ]
    inner = "\n".join(body)
    sig = ",\n    ".join(params)
    name = kernel_name(sig + inner)
    total = [
        f"    for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c < {group.inner};",
        "         c += (long long)gridDim.x * blockDim.x) {",
        f"        {rt} acc = -({rt})0;",
        f"        for (long long p = 0; p < parts; p++) acc += part[p * {group.inner} + c];",
        "        out[c] = acc;",
        "    }",
    ]
    src = (_PRELUDE + f'extern "C" __global__ void {name}(\n    {sig}) {{\n{inner}\n}}\n\n'
           + f'extern "C" __global__ void {name}_sum(const {rt} *__restrict__ part, {rt} *__restrict__ out, '
           + "const long long parts) {\n" + "\n".join(total) + "\n}\n")
    return src, name

