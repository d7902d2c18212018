"""A fused group (:mod:`gpugrad.jit.fusion`) as C source: one loop over the group's elements.

The source is plain C99 with the loop marked ``omp simd``; the math functions are declared with
GCC's ``simd`` attribute where glibc's vector math library (libmvec) has them, so that the loop
vectorizes without ``-ffast-math`` (which would break NaN and infinity semantics and, linked, turn
on flush-to-zero for the whole process). The CUDA renderer reads the same description.
"""

from __future__ import annotations

import math

from .fusion import Group

CTYPE = {"f32": "float", "f64": "double", "bool": "unsigned char"}

# name -> (C function for double, for float); libmvec has vector forms of these (glibc >= 2.35)
MATH = {
    "exp": ("exp", "expf"), "exp2": ("exp2", "exp2f"), "expm1": ("expm1", "expm1f"), "log": ("log", "logf"),
    "log2": ("log2", "log2f"), "log10": ("log10", "log10f"), "log1p": ("log1p", "log1pf"),
    "sin": ("sin", "sinf"), "cos": ("cos", "cosf"), "tan": ("tan", "tanf"), "arcsin": ("asin", "asinf"),
    "arccos": ("acos", "acosf"), "arctan": ("atan", "atanf"), "sinh": ("sinh", "sinhf"),
    "cosh": ("cosh", "coshf"), "tanh": ("tanh", "tanhf"), "arcsinh": ("asinh", "asinhf"),
    "arccosh": ("acosh", "acoshf"), "arctanh": ("atanh", "atanhf"), "power": ("pow", "powf"),
    "arctan2": ("atan2", "atan2f"), "hypot": ("hypot", "hypotf"),
}
# whose vector forms differ from NumPy's own by more than 2 ulp in float32: computed in double
# there (then rounded, so within half an ulp of the exact value)
VIA_DOUBLE = {"log", "log2", "log10"}
PLAIN = {"sqrt": ("sqrt", "sqrtf"), "absolute": ("fabs", "fabsf"), "floor": ("floor", "floorf"),
         "ceil": ("ceil", "ceilf")}
INFIX = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "greater": ">", "greater_equal": ">=",
         "less": "<", "less_equal": "<=", "equal": "==", "not_equal": "!=", "logical_and": "&&",
         "logical_or": "||"}


def literal(v, ctype: str) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    v = float(v)
    if math.isnan(v):
        return f"(({ctype})NAN)"
    if math.isinf(v):
        return f"(({ctype}){'-' if v < 0 else ''}INFINITY)"
    return f"(({ctype}){v.hex()})"


def expression(op, operands: list[str]) -> str:
    """One op on operands already converted to its compute type."""
    t = CTYPE[op.compute]
    f = 1 if op.compute == "f32" else 0
    n = op.name
    a = operands[0]
    if n in INFIX:
        return f"({a} {INFIX[n]} {operands[1]})"
    if n in MATH:
        fn = MATH[n][f]
        if f and n in VIA_DOUBLE:
            return f"(({t}){MATH[n][0]}((double){a}))"
        return f"{fn}({', '.join(operands)})"
    if n in PLAIN:
        return f"{PLAIN[n][f]}({a})"
    b = operands[1] if len(operands) > 1 else None
    c = operands[2] if len(operands) > 2 else None
    exp = MATH["exp"][f]
    return {
        # the activation kernels' own formulas (kernels/activations.cu), so a fused group computes
        # what the unfused kernel calls compute
        "sigmoid": f"({a} >= ({t})0 ? ({t})1 / (({t})1 + {exp}(-{a})) : {exp}({a}) / (({t})1 + {exp}({a})))",
        "sigmoid_bwd": f"({b} * {a} * (({t})1 - {a}))",
        "tanh_bwd": f"({b} * ((({t})1 - {a}) * (({t})1 + {a})))",
        "relu": f"({a} <= ({t})0 ? ({t})0 : {a})",
        "relu_bwd": f"({a} > ({t})0 ? {b} : ({t})0)",
        "negative": f"(-{a})",
        "positive": f"(+{a})",
        "square": f"({a} * {a})",
        "reciprocal": f"(({t})1 / {a})",
        "sign": f"({a} > 0 ? ({t})1 : ({a} < 0 ? ({t})-1 : {a}))",  # NaN and ±0 come back as they are
        # NumPy's maximum/minimum propagate a NaN from either side
        "maximum": f"(({a} >= {b} || {a} != {a}) ? {a} : {b})",
        "minimum": f"(({a} <= {b} || {a} != {a}) ? {a} : {b})",
        "isfinite": f"isfinite({a})",
        "isnan": f"isnan({a})",
        "isinf": f"isinf({a})",
        "logical_not": f"(!{a})",
        "where": f"({a} ? {b} : {c})",
    }[n]


INDEX = {"full": "i", "scalar": "0", "row": "c", "col": "o", "host": "0"}  # the loops' index names


def statement(group: Group, op) -> str:
    """``op`` as an expression over the loop's inputs (``in<k>[...]``), earlier values (``t<j>``) and
    literals, each operand converted to the op's compute type (the same text for C and CUDA C)."""
    operands = []
    for slot, (kind, v) in enumerate(op.args):
        want = "bool" if (op.name == "where" and slot == 0) or op.name.startswith("logical") else op.compute
        wt = CTYPE[want]
        if kind == "lit":
            operands.append(literal(v, wt))
            continue
        if kind == "in":
            src, dt = f"in{v}[{INDEX[group.inputs[v].kind]}]", group.inputs[v].dtype
        else:
            src, dt = f"t{v}", group.ops[v].dtype
        if want == "bool" and dt != "bool":
            operands.append(f"({src} != 0)")
        else:
            operands.append(src if dt == want else f"(({wt}){src})")
    return expression(op, operands)


def math_functions(group: Group) -> set[str]:
    """The C math functions the group calls (to declare with the ``simd`` attribute)."""
    used = set()
    for op in group.ops:
        if op.name == "sigmoid":
            used.add((MATH["exp"][op.compute == "f32"], "float" if op.compute == "f32" else "double", 1))
        if op.name in MATH:
            f = 1 if op.compute == "f32" and op.name not in VIA_DOUBLE else 0
            arity = 2 if op.name in ("power", "arctan2", "hypot") else 1
            used.add((MATH[op.name][f], "float" if f else "double", arity))
    return used


def render(group: Group, simd_decls: bool, name: str = "gg_fused") -> str:
    """C source of ``void name(char **p)``: ``p`` holds the inputs' addresses, then one block per
    output dtype that holds those outputs one after another (see :meth:`Group.output_blocks`), then
    the row of sums when the group ends with one (:attr:`Group.reduce_op`)."""
    lines = ["#include <math.h>", "#include <stdint.h>", ""]
    if simd_decls:
        for fn, ty, arity in sorted(math_functions(group)):
            params = ", ".join([ty] * arity)
            lines.append(f'__attribute__((simd("notinbranch"))) {ty} {fn}({params});')
        lines.append("")
    lines.append(f"void {name}(char **p) {{")
    written = set(group.inplace.values())
    restrict = "" if group.plannable else "restrict "  # out= may be an input (see Group.plannable)
    for k, inp in enumerate(group.inputs):
        const = "" if k in written else "const "  # read, then written back at the same element
        lines.append(f"    {const}{CTYPE[inp.dtype]} *{restrict}in{k} = ({const}{CTYPE[inp.dtype]} *)p[{k}];")
    n = group.outer * group.inner
    for q, (j, (slot, pos)) in enumerate(zip(group.outputs, group.output_blocks())):
        ct = CTYPE[group.ops[j].dtype]
        if slot < 0:
            continue  # written back through its input's pointer
        lines.append(f"    {ct} *{restrict}out{q} = ({ct} *)p[{len(group.inputs) + slot}] + {pos * n};")
    red = group.reduce_op
    if red is not None:  # the sum over rows: started at -0.0 (x + -0.0 is x), rows added in order
        rt = CTYPE[group.ops[red].dtype]
        lines.append(f"    {rt} *restrict red = ({rt} *)p[{len(group.inputs) + len(group.block_dtypes())}];")
        lines.append(f"    for (int64_t c = 0; c < {group.inner}; c++) red[c] = -({rt})0;")
    lines.append(f"    for (int64_t o = 0; o < {group.outer}; o++) {{")
    lines.append("        #pragma omp simd")
    lines.append(f"        for (int64_t c = 0; c < {group.inner}; c++) {{")
    lines.append(f"            const int64_t i = o * {group.inner} + c;")
    for j, op in enumerate(group.ops):
        if op.dtype == "bool":  # held as an int 0/1: GCC leaves a loop with char temporaries scalar
            lines.append(f"            const int t{j} = ({statement(group, op)}) != 0;")
        else:
            lines.append(f"            const {CTYPE[op.dtype]} t{j} = ({CTYPE[op.dtype]}){statement(group, op)};")
    for q, (j, (slot, pos)) in enumerate(zip(group.outputs, group.output_blocks())):
        lines.append(f"            {f'in{pos}' if slot < 0 else f'out{q}'}[i] = t{j};")
    if red is not None:
        lines.append(f"            red[c] += t{red};")
    lines += ["        }", "    }", "}", ""]
    return "\n".join(lines)
