"""A host-built kernel library (see :mod:`.build`) loaded with ctypes: parameters and launches."""

from __future__ import annotations

import ctypes
from pathlib import Path


class HostLibrary:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lib = ctypes.CDLL(str(path))

    def _query(self, fn: str, name: str) -> str | None:
        buf = ctypes.create_string_buffer(1024)
        if getattr(self.lib, fn)(name.encode(), buf, ctypes.c_size_t(1024)) != 0:
            return None
        return buf.value.decode()

    def params(self, name: str) -> tuple[list[int], str] | None:
        """(byte size of each parameter, kinds: 'r' const pointer, 'w' pointer, 'v' value), or None
        where the library has no kernel ``name``."""
        sizes = self._query("gg_param_sizes", name)
        if sizes is None:
            return None
        kinds = self._query("gg_param_kinds", name) or ""
        return [int(x) for x in sizes.split(",") if x], kinds

    def launch(
        self, name: str, grid: tuple[int, int, int], block: tuple[int, int, int], smem: int, values: list
    ) -> str:
        """Runs kernel ``name``; ``values`` are ctypes objects, one per parameter. Returns "" or the
        harness's error."""
        ptrs = (ctypes.c_void_p * max(1, len(values)))(*[ctypes.addressof(v) for v in values])
        err = ctypes.create_string_buffer(512)
        rc = self.lib.gg_launch(
            name.encode(),
            *(ctypes.c_uint(int(x)) for x in (*grid, *block)),
            ctypes.c_size_t(int(smem)),
            ptrs,
            err,
            ctypes.c_size_t(512),
        )
        return "" if rc == 0 else (err.value.decode() or "launch failed")
