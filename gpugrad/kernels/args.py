"""Argument handling of the launchers: dtype suffixes, contiguous inputs, per-row arguments,
``out=`` buffers and the input's device."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backend as _backend

_DTYPE_SUFFIX = {"f": "f32", "d": "f64"}


def _suffix(dtype: Any) -> str:
    s = _DTYPE_SUFFIX.get(np.dtype(dtype).char)
    if s is None:
        raise TypeError(f"the CUDA kernels support float32 and float64 arrays, not {np.dtype(dtype).name}")
    return s


def _main(cp: Any, a: Any, name: str) -> Any:
    """The main float input: a contiguous CuPy array of float32/float64."""
    if not isinstance(a, cp.ndarray):
        raise TypeError(f"{name} must be a cupy.ndarray, got {type(a).__name__}")
    _suffix(a.dtype)
    return a if a.flags.c_contiguous else cp.ascontiguousarray(a)


def _like(cp: Any, a: Any, ref: Any, name: str) -> Any:
    """A secondary input of the same shape as ``ref``, cast to its dtype and made contiguous."""
    a = cp.asarray(a)
    if a.shape != ref.shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {ref.shape}")
    if a.dtype != ref.dtype:
        a = a.astype(ref.dtype)
    return a if a.flags.c_contiguous else cp.ascontiguousarray(a)


def _per_row(cp: Any, a: Any, lead: tuple[int, ...], dtype: Any, name: str) -> Any:
    """A per-row argument as a contiguous array of shape ``lead`` and dtype ``dtype``."""
    a = cp.asarray(a)
    if a.shape != lead:
        if a.size == int(np.prod(lead, dtype=np.int64)) and a.ndim > 0:
            a = a.reshape(lead)
        else:
            try:
                a = cp.broadcast_to(a, lead)
            except ValueError:
                raise ValueError(f"{name} has shape {a.shape}, expected {lead} (one value per row)") from None
    if a.dtype != dtype:
        a = a.astype(dtype)
    return a if a.flags.c_contiguous else cp.ascontiguousarray(a)


def _labels(cp: Any, labels: Any, lead: tuple[int, ...]) -> Any:
    labels = cp.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be an integer array, not {labels.dtype.name}")
    return _per_row(cp, labels, lead, np.int64, "labels")


def _out(cp: Any, out: Any, shape: tuple[int, ...], dtype: Any, name: str = "out") -> Any:
    if out is None:
        return cp.empty(shape, dtype)
    if not isinstance(out, cp.ndarray):
        raise TypeError(f"{name} must be a cupy.ndarray, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"{name} must be a C-contiguous {np.dtype(dtype).name} array of shape {shape}, got "
            f"{out.dtype.name} {out.shape}{'' if out.flags.c_contiguous else ' (not contiguous)'}"
        )
    return out


def _outs(cp: Any, out: Any, shapes: tuple[tuple[int, ...], ...], dtype: Any) -> tuple[Any, ...]:
    if out is None:
        return tuple(cp.empty(s, dtype) for s in shapes)
    if not isinstance(out, (tuple, list)) or len(out) != len(shapes):
        raise TypeError(f"out must be a tuple of {len(shapes)} arrays")
    return tuple(_out(cp, o, s, dtype, f"out[{i}]") for i, (o, s) in enumerate(zip(out, shapes, strict=True)))


def _ptr(a: Any) -> int:
    return a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data


def _no_overlap(out: Any, *inputs: Any) -> None:
    for a in inputs:
        if out is a or (out.size and a.size and _ptr(out) == _ptr(a)):
            raise ValueError("out must not share memory with an input")


def _on_input_device(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Runs ``fn`` with the device of its first CuPy array argument current, so that outputs are
    allocated and kernels launched there (a no-op when it already is)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cp = _backend.cupy()
        if cp is not None:
            for a in args:
                if isinstance(a, cp.ndarray):
                    dev = a.device
                    if dev.id != cp.cuda.runtime.getDevice():
                        with dev:
                            return fn(*args, **kwargs)
                    break
        return fn(*args, **kwargs)

    return wrapper


def _rows_cols(x: Any, name: str) -> tuple[tuple[int, ...], int, int]:
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the class/feature axis is the last)")
    lead = tuple(x.shape[:-1])
    cols = int(x.shape[-1])
    rows = int(np.prod(lead, dtype=np.int64))
    return lead, rows, cols


def _i64(v: int) -> np.int64:
    return np.int64(v)
