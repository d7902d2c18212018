"""Row launches: a row operation over [rows, cols] in the layout :func:`row_plan` picks (one kernel, or
a split row's Part and Fin kernels), and the elementwise row kernels of the loss backwards."""

from __future__ import annotations

from typing import Any

from .args import _i64, _suffix
from .geometry import EW_THREADS, ew_grid, row_plan
from .runtime import _rt

#: words of T per partial state of a split row (common.cuh: SumState 1, MaxSum 2, CEState 6)
_SPLIT_STATE_WORDS = {"softmax_fwd": 2, "log_softmax_fwd": 2, "softmax_ce_fwd": 6, "softmax_ce_sparse_fwd": 2}


def _launch_rows(
    module: str,
    base: str,
    ref: Any,
    rows: int,
    cols: int,
    inputs: tuple[Any, ...],
    outputs: tuple[Any, ...],
    extra: tuple[Any, ...] = (),
    *,
    elementwise: bool,
) -> None:
    """Launches ``<base>_<layout>_<dtype>`` over [rows, cols], the layout from :func:`row_plan`.

    Row kernels take ``(*inputs, *outputs, rows, cols, *extra)``; a split row runs one
    ``<base>_part`` then one ``<base>_fin`` over all rows, both with ``(*inputs, *outputs, ws, rows,
    cols, chunk, nch, *extra)``; the softmax family's (elementwise) ones take the row they start at
    last (Part 0, Fin ``plan.fin_first``).
    """
    rt = _rt()
    sfx = _suffix(ref.dtype)
    nin = len(inputs) if elementwise else 1
    plan = row_plan(
        rows,
        cols,
        ref.dtype.itemsize,
        elementwise=elementwise,
        nin=nin,
        sm_count=rt.sm_count,
        smem_bytes=rt.smem_optin,
        l2_bytes=rt.l2_bytes,
        force=rt.force_layout,
    )
    if plan.layout != "split":
        kern = rt.kernel(module, f"{base}_{plan.layout}_{sfx}")
        if plan.smem:
            rt.allow_smem(kern, plan.smem)
        kern((plan.grid,), (plan.block,), (*inputs, *outputs, _i64(rows), _i64(cols), *extra), shared_mem=plan.smem)
        return
    part = rt.kernel(module, f"{base}_part_{sfx}")
    fin = rt.kernel(module, f"{base}_fin_{sfx}")
    ns = _SPLIT_STATE_WORDS.get(base, 1)
    ws = rt.xp.empty(rows * plan.nch * ns, ref.dtype)
    args = (*inputs, *outputs, ws, _i64(rows), _i64(cols), _i64(plan.chunk), _i64(plan.nch), *extra)
    if elementwise:
        part((plan.grid,), (plan.block,), (*args, _i64(0)))
        fin((plan.fin_grid,), (plan.fin_block,), (*args, _i64(plan.fin_first)))
    else:
        part((plan.grid,), (plan.block,), args)
        fin((plan.fin_grid,), (plan.fin_block,), args)


def _launch_rows_ew(
    module: str, base: str, ref: Any, rows: int, cols: int, args: tuple[Any, ...], extra: tuple[Any, ...] = ()
) -> None:
    """One elementwise kernel over [rows, cols]: ``base_<dtype>(*args, rows, cols, *extra)``."""
    rt = _rt()
    kern = rt.kernel(module, f"{base}_{_suffix(ref.dtype)}")
    grid = ew_grid(rows * cols, ref.dtype.itemsize, rt.sm_count)
    kern((grid,), (EW_THREADS,), (*args, _i64(rows), _i64(cols), *extra))
