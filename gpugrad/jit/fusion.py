"""Fusing a compiled step's elementwise chains: which recorded calls form a group, and the group as a
backend-neutral description that a renderer turns into one loop (C for the CPU, CUDA C on a GPU).

A traced step is a flat program of array calls, so it knows every elementwise chain: ``y*1.01 +
0.1``, a sigmoid, its gradient. A *group* is a run of elementwise calls (NumPy ufuncs and
``where``) whose results all have one shape; each of its inputs is read whole, as a scalar, as a
row repeated over the leading axes (a bias) or as a column repeated over the trailing ones. The
values it makes that a later call, a result, a Variable or a ``.grad`` needs are its outputs; the
rest live in registers. Following XLA's loop fusion, nothing is duplicated and a group is capped
(:data:`MAX_OPS`) so that its compile time stays small; TorchInductor's ``max_fusion_size`` plays
the same role.

Each op computes in the dtype NumPy would (its result's dtype; a comparison in its operands'
common dtype), with Python numbers converted to that dtype first (NEP 50), so a fused result is
the unfused one up to the last bits of the math functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from .trace import Ref, _collect

MAX_OPS = 1024  # ops per group: the compile time of one loop grows with its size
MIN_OPS = 2  # one call alone is never worth a loop of its own
REDUCE = True  # a sum over the outer axis of a group's value may end the group
LARGE = 1 << 15  # elements from which memory traffic, not Python, is what fusing saves
DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.bool_): "bool"}

# the ufuncs a group may hold: name -> arity
UFUNCS = {
    "add": 2, "subtract": 2, "multiply": 2, "divide": 2, "power": 2, "maximum": 2, "minimum": 2,
    "greater": 2, "greater_equal": 2, "less": 2, "less_equal": 2, "equal": 2, "not_equal": 2,
    "logical_and": 2, "logical_or": 2, "arctan2": 2, "hypot": 2,
    "negative": 1, "positive": 1, "absolute": 1, "square": 1, "sqrt": 1, "reciprocal": 1, "sign": 1,
    "exp": 1, "exp2": 1, "expm1": 1, "log": 1, "log2": 1, "log10": 1, "log1p": 1,
    "sin": 1, "cos": 1, "tan": 1, "arcsin": 1, "arccos": 1, "arctan": 1,
    "sinh": 1, "cosh": 1, "tanh": 1, "arcsinh": 1, "arccosh": 1, "arctanh": 1,
    "isfinite": 1, "isnan": 1, "isinf": 1, "logical_not": 1, "floor": 1, "ceil": 1,
    # gpugrad's activation kernels (the CUDA path records them as one call each), in their own formulas
    "sigmoid": 1, "sigmoid_bwd": 2, "tanh_bwd": 2, "relu": 1, "relu_bwd": 2,
}
KERNEL_OPS = {"sigmoid_fwd": "sigmoid", "sigmoid_bwd": "sigmoid_bwd", "tanh_fwd": "tanh", "tanh_bwd": "tanh_bwd",
              "relu_fwd": "relu", "relu_bwd": "relu_bwd"}
COMPARISONS = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal", "isfinite", "isnan",
               "isinf", "logical_and", "logical_or", "logical_not"}


@dataclass
class Input:
    kind: str  # 'full' | 'scalar' | 'row' (repeated over the leading axes) | 'col' (over the trailing)
    #          | 'host' (a number the host computes at each call, passed as a double)
    dtype: str


@dataclass
class FusedOp:
    name: str  # a UFUNCS name, or 'where'
    args: list  # ('in', k) | ('t', j) | ('lit', python number)
    dtype: str  # the result's dtype
    compute: str  # the dtype the operands are converted to


@dataclass
class Group:
    """One fused loop: ``outer × inner`` elements (``inner`` splits rows from columns)."""

    shape: tuple
    outer: int
    inner: int
    inputs: list[Input] = field(default_factory=list)
    ops: list[FusedOp] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)  # ops whose values leave the loop
    inplace: dict = field(default_factory=dict)  # output position -> the input it is written over
    # the op whose values are also summed over the outer axis (``v.sum(axis=0)``, a bias's
    # gradient), a result of shape ``shape[1:]`` after the others; None: no reduction
    reduce_op: int | None = None

    @property
    def plannable(self) -> bool:
        """One output, written into a fresh array: the call may take ``out=`` (a reused buffer, or
        the array of a Variable it updates, which it also reads). Its loop is then rendered without
        ``restrict``: the output may be one of the inputs (each element is read before it is written)."""
        return len(self.outputs) == 1 and not self.inplace and self.reduce_op is None

    def out_dtypes(self) -> list[str]:
        """The dtypes of the outputs written into fresh blocks (not in place)."""
        return [self.ops[j].dtype for q, j in enumerate(self.outputs) if q not in self.inplace]

    def block_dtypes(self) -> list[str]:
        """The outputs are written into one block per dtype (one allocation, one address each)."""
        return list(dict.fromkeys(self.out_dtypes()))

    def output_blocks(self) -> list[tuple[int, int]]:
        """``(block, position in it)`` of each output; ``(-1, input)`` for one written in place."""
        blocks = self.block_dtypes()
        seen = dict.fromkeys(blocks, 0)
        out = []
        for q, j in enumerate(self.outputs):
            if q in self.inplace:
                out.append((-1, self.inplace[q]))
                continue
            d = self.ops[j].dtype
            out.append((blocks.index(d), seen[d]))
            seen[d] += 1
        return out


def _name(fn):
    """The op name of a NumPy or CuPy elementwise function."""
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        return None
    if getattr(fn, "__module__", None) == "gpugrad.kernels":
        return KERNEL_OPS.get(name)
    name = name.removeprefix("cupy_")  # CuPy names its ufuncs cupy_add, ...
    if name == "where" and (fn is np.where or type(fn).__module__.split(".")[0] != "numpy"):
        return "where"
    if getattr(fn, "nout", None) == 1 and name in ("true_divide",) + tuple(UFUNCS):
        return "divide" if name == "true_divide" else name
    return None


def _is_array(x) -> bool:
    return type(x) is np.ndarray or backend.is_cupy_array(x)


def _value_of(a, bufs):
    """What NumPy's promotion rules see of an operand: an array's dtype, a Python number itself."""
    v = bufs[a.i].value if isinstance(a, Ref) else a
    return v.dtype if _is_array(v) or isinstance(v, np.generic) else v


def _candidate(ins, bufs):
    """The op name when ``ins`` is an elementwise call a group may hold, else None. A call that
    writes its result over one of its own temporaries (``np.multiply(t, g, out=t)``) may be one too:
    :meth:`_Open.add` takes it only when that temporary was made inside the group."""
    if ins.host or not isinstance(ins.out, Ref):
        return None
    if ins.kwargs or ins.writes:
        o = ins.out.i
        out = ins.kwargs.get("out")
        if (len(ins.kwargs) != 1 or not isinstance(out, Ref) or out.i != o or ins.writes != [o] or ins.fresh
                or bufs[o].root != o):
            return None
    elif ins.fresh != [ins.out.i]:
        return None
    name = _name(ins.fn)
    if name is None or len(ins.args) != (3 if name == "where" else UFUNCS[name]):
        return None
    v = bufs[ins.out.i].value
    if not _is_array(v) or v.dtype not in DTYPES or not v.flags.c_contiguous or v.size == 0:
        return None
    for a in ins.args:
        if isinstance(a, Ref):
            x = bufs[a.i].value
            if bufs[a.i].kind == "host":  # a number the host computes at each call (a learning rate)
                if type(x) not in (int, float):
                    return None
            elif not (_is_array(x) or isinstance(x, np.generic)) or x.dtype not in DTYPES:
                return None
        elif type(a) not in (int, float, bool) or (type(a) is int and abs(a) > 2**53):
            return None
    return name


def _layout(shape, full):
    """How an input of ``shape`` is read in a loop over ``full``: (kind, split) or None."""
    if shape == full:
        return "full", None
    if math.prod(shape) == 1:
        return "scalar", None
    s = tuple(shape)
    while s and s[0] == 1:
        s = s[1:]
    if len(s) <= len(full) and s == full[len(full) - len(s):]:
        return "row", len(full) - len(s)
    s = (1,) * (len(full) - len(shape)) + tuple(shape)
    if len(s) == len(full):
        k = len(s)
        while k > 0 and s[k - 1] == 1:
            k -= 1
        if s[:k] == full[:k]:
            return "col", k
    return None


class _Open:
    """A group being gathered."""

    def __init__(self, shape):
        self.shape = shape
        self.split = None
        self.members = []  # instruction indices
        self.made = {}  # buffer -> op index
        self.ops = []
        self.inputs = []  # buffer indices
        self.input_kinds = []
        self.inplace = {}  # buffer made outside the group and written back in place -> its input
        self.reduce = None  # (op, result buffer) of a trailing sum over the outer axis

    def add(self, i, ins, name, bufs) -> bool:
        """Take instruction ``i`` if its operands fit this group's loop. A call that writes into an
        array made outside the group (a Variable's slot, ``m *= beta``) reads it whole as an input
        and writes the group's last value of it back in place."""
        target = None
        if ins.writes and ins.out.i not in self.made:
            target = ins.out.i
            if bufs[target].kind not in ("var", "new") or tuple(bufs[target].value.shape) != self.shape:
                return False
        args, new_inputs, split = [], [], self.split
        operands = list(ins.args) + ([Ref(target)] if target is not None else [])
        for n_arg, a in enumerate(operands):
            if not isinstance(a, Ref):
                args.append(("lit", a))
                continue
            if a.i in self.made:
                args.append(("t", self.made[a.i]))
                continue
            x = bufs[a.i].value
            if bufs[a.i].kind == "host":
                lay = ("host", None)
            else:
                lay = _layout(tuple(x.shape), self.shape)
            if lay is None:
                return False
            kind, k = lay
            if k is not None:
                if split is not None and split != k:
                    return False
                split = k
            if a.i in self.inputs:
                args.append(("in", self.inputs.index(a.i)))
            else:
                pos = len(self.inputs) + len(new_inputs)
                for q, (b, _, _) in enumerate(new_inputs):
                    if b == a.i:
                        pos = len(self.inputs) + q
                        break
                else:
                    new_inputs.append((a.i, kind, "f64" if kind == "host" else DTYPES[x.dtype]))
                if n_arg < len(ins.args):
                    args.append(("in", pos))
        out = bufs[ins.out.i].value
        vals = [_value_of(a, bufs) for a in ins.args]  # dtypes, and Python numbers (weak)
        if name == "where":
            compute = DTYPES[out.dtype]
        else:  # NumPy's rule: Python numbers (and host numbers) are weak
            compute = DTYPES.get(np.result_type(*vals))
        if compute is None:
            return False
        self.split = split
        for b, kind, dt in new_inputs:
            self.inputs.append(b)
            self.input_kinds.append(Input(kind, dt))
        if target is not None:
            self.inplace[target] = self.inputs.index(target)
        self.made[ins.out.i] = len(self.ops)
        self.ops.append(FusedOp(name, args, DTYPES[out.dtype], compute))
        self.members.append(i)
        return True

    def add_reduce(self, i, ins, bufs) -> bool:
        """Take ``v.sum(axis=0)`` of a value ``v`` made here as the group's last step: the loop
        runs over rows (the outer axis) and adds each row into the result."""
        if ins.fn != ("method", "sum") or ins.writes or not isinstance(ins.out, Ref) or len(ins.args) != 1:
            return False
        a = ins.args[0]
        kw = dict(ins.kwargs)
        if not isinstance(a, Ref) or a.i not in self.made or kw.pop("axis", None) not in (0, (0,)):
            return False
        if kw.pop("keepdims", False) is not False or kw or len(self.shape) < 2 or self.split not in (None, 1):
            return False
        j = self.made[a.i]
        out = bufs[ins.out.i].value
        if self.ops[j].dtype not in ("f32", "f64") or not _is_array(out) or DTYPES.get(out.dtype) != self.ops[j].dtype:
            return False
        self.split = 1
        self.reduce = (j, ins.out.i)
        self.members.append(i)
        return True

    def group(self, outputs) -> Group:
        k = self.split if self.split is not None else 0  # no row or column input: one flat loop
        outer = math.prod(self.shape[:k])
        inner = math.prod(self.shape[k:])
        inplace = {q: self.inplace[b] for q, b in enumerate(outputs) if b in self.inplace}
        made = [self.made[b] for b in outputs]
        return Group(self.shape, outer, inner, self.input_kinds, self.ops, made, inplace,
                     self.reduce[0] if self.reduce is not None else None)


def _worth_it(n_ops: int, n_arrays: int, size: int, on_gpu: bool = False) -> bool:
    """A fused call costs about what a few NumPy calls cost in Python (one per array it passes);
    on large arrays each call it saves also saves reading and writing a whole array. On a GPU each
    call saved is a kernel launch and a pass over memory saved, whatever the size."""
    return on_gpu or size >= LARGE or n_ops >= 4 * n_arrays


def find_groups(instrs, bufs, sinks, on_gpu=False):
    """``[(members, group, input buffers, output buffers, deferred)]`` for the program: a group runs
    where its last member was; ``deferred`` are calls in between that read what the group makes
    (a loss's ``sum`` of the forward's last value) and so move to just after it."""
    readers: dict = {}
    for i, ins in enumerate(instrs):
        for r in ins.reads():
            readers.setdefault(r, set()).add(i)
            readers.setdefault(bufs[r].root, set()).add(i)
    sink_set = set(sinks) | {bufs[s].root for s in sinks}
    found = []
    cur = None
    deferred, after = [], set()  # calls moved after the open group, and the buffers they make

    def close():
        nonlocal cur, deferred, after
        if cur is not None and len(cur.members) >= MIN_OPS:
            members = set(cur.members)
            outs = [b for b in cur.made if b in sink_set or b in cur.inplace
                    or any(r not in members for r in readers.get(b, ()))]
            red = [cur.reduce[1]] if cur.reduce is not None else []
            if (outs or red) and _worth_it(len(members), len(cur.inputs) + len(outs), math.prod(cur.shape), on_gpu):
                found.append((list(cur.members), cur.group(outs), list(cur.inputs), outs + red, deferred))
        cur, deferred, after = None, [], set()

    def reads_any(ins, made):
        return any(r in made or bufs[r].root in made for r in ins.reads())

    for i, ins in enumerate(instrs):
        name = _candidate(ins, bufs)
        if name is not None:
            shape = tuple(bufs[ins.out.i].value.shape)
            if cur is not None and (cur.shape != shape or len(cur.members) >= MAX_OPS or reads_any(ins, after)):
                close()
            if cur is None:
                cur = _Open(shape)
            if cur.add(i, ins, name, bufs):
                continue
            close()
            cur = _Open(shape)
            if not cur.add(i, ins, name, bufs):
                cur = None
            continue
        if cur is None:
            continue
        if REDUCE and not reads_any(ins, after) and cur.add_reduce(i, ins, bufs):
            close()  # the reduction is a group's last step
        elif ins.writes or ins.host:
            close()
        elif reads_any(ins, cur.made) or reads_any(ins, after):
            deferred.append(i)
            refs = []
            _collect(ins.out, refs)
            after.update(refs)
            after.update(ins.fresh)
    close()
    return found
