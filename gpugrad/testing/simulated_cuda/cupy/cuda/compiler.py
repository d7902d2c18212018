"""Simulated ``cupy.cuda.compiler``: its error type."""

from __future__ import annotations


class CompileException(Exception):
    """A CUDA source failed to compile: ``get_message()`` is the compiler's log."""

    def __init__(self, msg: str, source: str, name: str, options: tuple[str, ...], backend: str = "nvrtc") -> None:
        self._msg = msg
        self.source = source
        self.name = name
        self.options = options
        self.backend = backend
        super().__init__(msg)

    def get_message(self) -> str:
        return self._msg

    def __str__(self) -> str:
        return self.name + "\n" + self._msg
