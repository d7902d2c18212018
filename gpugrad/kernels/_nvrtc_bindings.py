"""NVRTC through NVIDIA's own Python bindings (``cuda-bindings``, with the ``nvidia-cuda-nvrtc``
wheel or a CUDA toolkit), for compiling kernels without CuPy and without a GPU.

:func:`load` returns an object with the few calls of ``cupy.cuda.nvrtc`` that the kernel loader
uses (``createProgram``, ``compileProgram``, ``getProgramLog``, ``getPTX``, ``getCUBIN``,
``destroyProgram``, ``getVersion`` and the ``NVRTCError`` exception), so the same compile code
runs on either binding.
"""

from __future__ import annotations

from typing import Any


class NVRTCError(RuntimeError):
    """An NVRTC call returned an error (``cupy.cuda.nvrtc.NVRTCError``'s counterpart)."""


class BindingsNvrtc:
    """``cuda.bindings.nvrtc`` behind ``cupy.cuda.nvrtc``'s call shapes."""

    NVRTCError = NVRTCError

    def __init__(self, module: Any):
        self._m = module

    def _ok(self, result, call: str):
        """Unpack a bindings result tuple ``(status, values...)``, raising on a failed status."""
        status, *values = result
        if status != self._m.nvrtcResult.NVRTC_SUCCESS:
            _, text = self._m.nvrtcGetErrorString(status)
            raise NVRTCError(f"{call}: {text.decode() if isinstance(text, bytes) else text}")
        return values[0] if len(values) == 1 else tuple(values)

    def getVersion(self) -> tuple[int, int]:  # noqa: N802 (CuPy's names)
        return self._ok(self._m.nvrtcVersion(), "nvrtcVersion")

    def createProgram(self, src: str, name: str, headers, include_names):  # noqa: N802
        return self._ok(
            self._m.nvrtcCreateProgram(
                src.encode(), name.encode(), len(headers), [h.encode() for h in headers],
                [n.encode() for n in include_names],
            ),
            "nvrtcCreateProgram",
        )

    def compileProgram(self, prog, options) -> None:  # noqa: N802
        opts = [o.encode() for o in options]
        self._ok(self._m.nvrtcCompileProgram(prog, len(opts), opts), "nvrtcCompileProgram")

    def _buffer(self, prog, size_call: str, get_call: str) -> bytes:
        size = self._ok(getattr(self._m, size_call)(prog), size_call)
        buf = b" " * size
        self._ok(getattr(self._m, get_call)(prog, buf), get_call)
        return buf

    def getProgramLog(self, prog) -> str:  # noqa: N802
        return self._buffer(prog, "nvrtcGetProgramLogSize", "nvrtcGetProgramLog").rstrip(b"\0").decode(
            errors="replace"
        )

    def getPTX(self, prog) -> bytes:  # noqa: N802
        return self._buffer(prog, "nvrtcGetPTXSize", "nvrtcGetPTX").rstrip(b"\0")

    def getCUBIN(self, prog) -> bytes:  # noqa: N802
        return self._buffer(prog, "nvrtcGetCUBINSize", "nvrtcGetCUBIN")

    def destroyProgram(self, prog) -> None:  # noqa: N802
        self._ok(self._m.nvrtcDestroyProgram(prog), "nvrtcDestroyProgram")


def load() -> BindingsNvrtc:
    """The bindings-backed NVRTC with libnvrtc loaded; ImportError or RuntimeError when it is not there."""
    from cuda.bindings import nvrtc  # noqa: PLC0415

    wrapped = BindingsNvrtc(nvrtc)
    wrapped.getVersion()  # loads libnvrtc (found by cuda-pathfinder in the wheel or the toolkit)
    return wrapped
