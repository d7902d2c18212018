"""Launch geometry: block sizes, elementwise grids and the row plans (layout, grid, block, dynamic
shared memory, split-row chunks) of the row operations. The constants must match the ``#define``s of
``kernels/common.cuh`` (checked by the compile test)."""

from __future__ import annotations

EW_THREADS = 256
WARP_ROWS_THREADS = 128
BLOCK_ROWS_MAX_THREADS = 512
SPLIT_THREADS = 256
#: rows up to this many columns get one warp each (the row lives in registers), longer ones a block
WARP_MAX_COLS = 1024
#: rows up to this many columns share a warp (several rows per warp)
SMALL_MAX_COLS = 32
_GRID_BLOCKS_PER_SM = 32
_MAX_ROW_GRID = 1 << 16
#: blocks per multiprocessor a split row's launches aim at (chunks per row follow from it)
_SPLIT_BLOCKS_PER_SM = 4
#: dynamic shared memory a block may use without the opt-in attribute
_DEFAULT_SMEM = 48 * 1024
#: kept free of the opt-in limit for the kernels' static shared memory (block_reduce's partials)
_STATIC_SMEM_RESERVE = 2048


def ew_grid(n: int, itemsize: int, sm_count: int) -> int:
    """Blocks for an elementwise kernel over n elements: one 16-byte vector per thread, capped."""
    per_block = EW_THREADS * max(1, 16 // itemsize)
    return max(1, min(-(-n // per_block), sm_count * _GRID_BLOCKS_PER_SM))


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class RowPlan:
    """How a row operation runs: ``layout`` (a kernel name part), its grid/block/dynamic shared
    memory, and for split rows the chunk length, chunks per row, Fin's grid and block and the row
    Fin starts at (``fin_first``: Fin walks the rows from there and wraps)."""

    __slots__ = ("layout", "grid", "block", "smem", "chunk", "nch", "fin_grid", "fin_block", "fin_first")

    def __init__(
        self,
        layout: str,
        grid: int,
        block: int,
        smem: int = 0,
        chunk: int = 0,
        nch: int = 0,
        fin_grid: int = 0,
        fin_block: int = 0,
        fin_first: int = 0,
    ) -> None:
        self.layout, self.grid, self.block, self.smem = layout, grid, block, smem
        self.chunk, self.nch = chunk, nch
        self.fin_grid, self.fin_block, self.fin_first = fin_grid, fin_block, fin_first

    def __repr__(self) -> str:
        return "RowPlan(" + ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__) + ")"


def _cap(n: int) -> int:
    return max(1, min(n, _MAX_ROW_GRID))


def _block_threads(cols: int) -> int:
    return max(128, min(BLOCK_ROWS_MAX_THREADS, _pow2_at_least(-(-cols // 16))))


def _split_plan(rows: int, cols: int, row_bytes: int, sm_count: int, l2_bytes: int, elementwise: bool) -> RowPlan:
    """One Part and one Fin launch over all rows (grid-stride, whatever the row count).

    Chunks of 1K..16K columns, enough of them for ``_SPLIT_BLOCKS_PER_SM`` blocks per
    multiprocessor. An elementwise Fin re-reads the row's inputs; it starts at the last rows whose
    inputs fit in half of L2 (the rows Part read last, still in L2) and wraps round to row 0.
    """
    want = max(1, -(-_SPLIT_BLOCKS_PER_SM * sm_count // max(rows, 1)))
    chunk = min(16384, max(1024, -(-cols // want)))
    chunk = -(-chunk // 256) * 256
    nch = -(-cols // chunk)
    grid = _cap(rows * nch)
    if elementwise:
        in_l2 = max(1, min(rows, (l2_bytes // 2) // max(row_bytes, 1)))
        return RowPlan(
            "split",
            grid,
            SPLIT_THREADS,
            chunk=chunk,
            nch=nch,
            fin_grid=grid,
            fin_block=SPLIT_THREADS,
            fin_first=rows - in_l2,
        )
    per_block = SPLIT_THREADS // 32
    return RowPlan(
        "split",
        grid,
        SPLIT_THREADS,
        chunk=chunk,
        nch=nch,
        fin_grid=_cap(-(-rows // per_block)),
        fin_block=SPLIT_THREADS,
    )


def _layout_fits(layout: str, cols: int, elementwise: bool, fits_smem: bool) -> bool:
    if layout == "small":
        return cols <= SMALL_MAX_COLS
    if layout.startswith("regs"):
        return elementwise and cols <= int(layout[4:])
    if layout == "smem":
        return elementwise and fits_smem
    if layout in ("warp", "block"):
        return not elementwise
    return layout == "split"


def row_plan(
    rows: int,
    cols: int,
    itemsize: int,
    *,
    elementwise: bool,
    nin: int = 1,
    sm_count: int = 132,
    smem_bytes: int = 227 * 1024,
    l2_bytes: int = 50 << 20,
    force: str | None = None,
) -> RowPlan:
    """The layout and launch configuration of a row operation over [rows, cols].

    ``elementwise``: the softmax family, whose output has the input's shape: the row stays on chip
    between the reduction and the write (``small``, ``regs<N>``, ``smem``), or is split across
    blocks (``split``: Part + Fin). Otherwise a row reduction (the losses): ``small``, ``warp``,
    ``block`` or ``split``. ``nin`` inputs per element are kept on chip; ``smem_bytes`` is what a
    block may use. ``force`` picks a layout (tests), falling back where it cannot hold the row.
    """
    warps = WARP_ROWS_THREADS // 32
    row_bytes = nin * cols * itemsize
    fits_smem = row_bytes <= smem_bytes - _STATIC_SMEM_RESERVE
    if force is not None and _layout_fits(force, cols, elementwise, fits_smem):
        layout = force
    elif cols <= SMALL_MAX_COLS:
        layout = "small"
    elif cols <= WARP_MAX_COLS:
        layout = f"regs{max(64, _pow2_at_least(cols))}" if elementwise else "warp"
    elif rows < sm_count:
        layout = "split"
    elif elementwise:
        layout = "smem" if fits_smem else "split"
    else:
        layout = "block"
    if layout == "small":
        per_block = warps * (32 // _pow2_at_least(cols))
        return RowPlan("small", _cap(-(-rows // per_block)), WARP_ROWS_THREADS)
    if layout.startswith("regs") or layout == "warp":
        return RowPlan(layout, _cap(-(-rows // warps)), WARP_ROWS_THREADS)
    if layout == "smem":
        return RowPlan("smem", _cap(min(rows, sm_count * _GRID_BLOCKS_PER_SM)), _block_threads(cols), smem=row_bytes)
    if layout == "block":
        return RowPlan("block", _cap(rows), _block_threads(cols))
    return _split_plan(rows, cols, row_bytes, sm_count, l2_bytes, elementwise)


def row_launch(rows: int, cols: int) -> tuple[str, int, int]:
    """(layout, grid, block) of a row reduction (a loss forward) on a device of 132 multiprocessors."""
    plan = row_plan(rows, cols, 4, elementwise=False)
    return plan.layout, plan.grid, plan.block
