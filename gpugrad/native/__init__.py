"""The graph's hot loops in C (``engine.c``): ``record`` and the backward sweep, built on first
import with the system C compiler against this Python's headers and cached on disk.

:func:`load` gives the compiled module, or None where it cannot be had (``GPUGRAD_NATIVE=0``, no
compiler, no ``Python.h``, a failed compile): :mod:`gpugrad.graph` then runs its own Python loops,
which are the reference and compute the same, only slower.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from .build import build

SOURCE = Path(__file__).with_name("engine.c")
NAME = "gpugrad_engine"


def enabled() -> bool:
    return os.environ.get("GPUGRAD_NATIVE", "1") != "0"


def load():
    """The compiled engine module, or None (see the module docstring); never raises."""
    if not enabled():
        return None
    include = sysconfig.get_paths().get("include")
    if not include or not os.path.exists(os.path.join(include, "Python.h")):
        return None
    src = SOURCE.read_text()
    # the key also holds this interpreter's version and ABI: the module is built against its headers
    tag = f"/* {sys.version} {sysconfig.get_config_var('SOABI')} */\n"
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    flags = ["-O2", "-fPIC", "-shared", f"-I{include}", "-Wno-deprecated-declarations"]
    try:
        path = build(tag + src, flags, [], "native", suffix=suffix, what="the native graph engine",
                     native=False)
        spec = importlib.util.spec_from_file_location(NAME, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    except (RuntimeError, OSError, ImportError, subprocess.SubprocessError):
        return None
    return mod
