"""Simulated ``cupy.cuda.memory``: allocations, the default pool and the allocator hook."""

from __future__ import annotations

from ... import _device as _D
from ..._device import Memory, MemoryPointer, OutOfMemoryError  # noqa: F401


class MemoryPool:
    """The default pool: ``malloc`` allocates, ``used_bytes`` is what live arrays hold, ``set_limit``
    caps it (an allocation past the cap, or past the device's memory, raises ``OutOfMemoryError``)."""

    def malloc(self, size: int) -> MemoryPointer:
        return _D.default_malloc(size)

    def used_bytes(self) -> int:
        return _D.pool.used

    def total_bytes(self) -> int:
        return _D.pool.used

    def free_bytes(self) -> int:
        return 0

    def free_all_blocks(self, stream=None) -> None:
        pass

    def n_free_blocks(self) -> int:
        return 0

    def set_limit(self, size: int | None = None, fraction: float | None = None) -> None:
        if fraction is not None:
            size = int(_D.TOTAL_MEMORY * fraction)
        _D.pool.limit = int(size or 0)

    def get_limit(self) -> int:
        return _D.pool.limit


class _PinnedMemoryPool:
    def free_all_blocks(self) -> None:
        pass

    def n_free_blocks(self) -> int:
        return 0


_default_pool = MemoryPool()
_pinned_pool = _PinnedMemoryPool()


def alloc(size: int) -> MemoryPointer:
    return _D.malloc(size)


def malloc_managed(size: int) -> MemoryPointer:
    return _D.default_malloc(size)


def set_allocator(allocator=None) -> None:
    """Allocations go through ``allocator(nbytes)`` (None: the default pool)."""
    _D.allocator[0] = None if allocator is None or allocator == _default_pool.malloc else allocator


def get_allocator():
    return _D.allocator[0] or _default_pool.malloc
