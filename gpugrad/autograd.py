"""PyTorch's way of asking for gradients: ``requires_grad``, ``backward`` and ``autograd.grad``."""

from __future__ import annotations

from . import graph, tensor
from .custom import Function, FunctionCtx
from .graph import enable_grad, no_grad
from .tensor import Tensor

__all__ = ["backward", "grad", "no_grad", "enable_grad", "Function", "FunctionCtx"]

def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _seeds(outputs, grad_outputs):
    from .ops.creation import ones_like

    gos = [None] * len(outputs) if grad_outputs is None else _as_list(grad_outputs)
    if len(gos) != len(outputs):
        raise ValueError(f"grad_outputs has {len(gos)} entries for {len(outputs)} outputs")
    seeds = []
    for i, (o, g) in enumerate(zip(outputs, gos)):
        if g is None:
            if o.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs: output {i} has shape "
                    f"{o.shape}; pass gradient= (or grad_outputs=) of that shape"
                )
            seeds.append(ones_like(o))
        else:
            g = g if isinstance(g, Tensor) else Tensor(g, dtype=o.dtype, device=o.device)
            if g.shape != o.shape:
                raise RuntimeError(f"gradient of shape {g.shape} given for an output of shape {o.shape}")
            seeds.append(g)
    return seeds


def _check_outputs(outputs):
    for i, o in enumerate(outputs):
        if not isinstance(o, Tensor) or not o._rg:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` (weighted by ``grad_outputs``) with respect to ``inputs``, as a tuple."""
    outputs = _as_list(outputs)
    inputs = _as_list(inputs)
    _check_outputs(outputs)
    for x in inputs:
        if not isinstance(x, Tensor) or not x._rg:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    retain = create_graph if retain_graph is None else retain_graph
    seeds = _seeds(outputs, grad_outputs)
    with enable_grad() if create_graph else no_grad():
        got = graph.walk(outputs, seeds, inputs, None, retain)
    res = []
    for x in inputs:
        g = got.get(id(x))
        if g is None and not allow_unused:
            raise RuntimeError(
                "One of the differentiated Tensors appears to not have been used in the graph. "
                "Set allow_unused=True if this is the desired behavior."
            )
        res.append(g if create_graph or g is None else g.detach())
    return tuple(res)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Accumulate gradients into ``.grad`` of every leaf tensor that requires grad."""
    outputs = _as_list(tensors)
    _check_outputs(outputs)
    retain = create_graph if retain_graph is None else retain_graph
    seeds = _seeds(outputs, grad_tensors)
    leaves = _leaves(outputs)
    with enable_grad() if create_graph else no_grad():
        got = graph.walk(outputs, seeds, leaves, None, retain)
        for leaf in leaves:
            g = got.get(id(leaf))
            if g is None:
                continue
            if not create_graph:
                g = g.detach()
            if leaf.grad is None:
                leaf.grad = g
                if graph.GRAD_SET_HOOK is not None:
                    graph.GRAD_SET_HOOK(leaf, g)
            else:
                leaf.grad = leaf.grad + g


def _leaves(outputs):
    """Leaf tensors requiring grad that the outputs' graph reaches (iterative)."""
    seen, leaves = set(), []
    stack = list(outputs)
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        n = t._node
        if n is not None and graph.keeps(n, None):
            stack.extend(x for x in n.inputs if isinstance(x, Tensor))
        elif t._rg and n is None:
            leaves.append(t)
    return leaves


tensor.BOUND["backward"] = backward  # ``Tensor.backward`` (tensor.py imports no front end)
