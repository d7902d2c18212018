"""The simulated CUDA device's ``cupy`` stand-in against the real CuPy: every public name it provides
exists in CuPy, and where both signatures can be read its parameters are CuPy's, so the simulator
cannot invent API that would fail on a GPU.

CuPy imports without a GPU. The real package is read in a subprocess, from
``$GPUGRAD_CUPY_REFERENCE`` (a directory it was installed into with ``pip install --target``) or from
the environment; without either, this skips.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MODULES = (
    "cupy",
    "cupy.cuda",
    "cupy.cuda.runtime",
    "cupy.cuda.memory",
    "cupy.cuda.compiler",
    "cupy.cuda.driver",
    "cupy.cuda.graph",
    "cupy.cuda.nccl",
    "cupy.linalg",
    "cupy.random",
    "cupy.testing",
    "cupyx",
    "cupyx.scipy",
    "cupyx.scipy.special",
)
CLASSES = (
    "cupy.ndarray",
    "cupy.RawKernel",
    "cupy.RawModule",
    "cupy.ufunc",
    "cupy.cuda.Device",
    "cupy.cuda.Stream",
    "cupy.cuda.Event",
    "cupy.cuda.MemoryPointer",
    "cupy.cuda.Memory",
    "cupy.cuda.memory.MemoryPool",
    "cupy.cuda.compiler.CompileException",
    "cupy.cuda.runtime.CUDARuntimeError",
    "cupy.cuda.driver.CUDADriverError",
    "cupy.cuda.graph.Graph",
    "cupy.random.RandomState",
)
#: dunders that are part of the array protocol CuPy's ndarray offers
PROTOCOL = (
    "__call__",
    "__init__",
    "__array_ufunc__",
    "__array_function__",
    "__cuda_array_interface__",
    "__dlpack__",
    "__dlpack_device__",
)

# Run in a subprocess: {"module or class": {name: [parameter names] | None | "value" | "module"}}
DUMP = r"""
import importlib, inspect, json, sys, types
modules, classes, protocol = json.loads(sys.argv[1])
if sys.argv[2] == "sim":
    from gpugrad import backend
    backend.cupy()

def resolve(path):
    head, *rest = path.split(".")
    obj = importlib.import_module(head)
    for i, part in enumerate(rest):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join([head, *rest[: i + 1]]))
    return obj

def params(obj):
    try:
        return [p.name for p in inspect.signature(obj).parameters.values()]
    except (TypeError, ValueError):
        return None

def describe(obj, names):
    out = {}
    for n in names:
        v = getattr(obj, n, None)
        out[n] = "module" if isinstance(v, types.ModuleType) else params(v) if callable(v) else "value"
    return out

res = {}
for m in modules:
    try:
        mod = resolve(m)
    except Exception as exc:
        res[m] = {"__error__": repr(exc)}
        continue
    res[m] = describe(mod, [n for n in dir(mod) if not n.startswith("_") and n != "annotations"])
    if m == "cupy.cuda.nccl":
        res[m]["__available__"] = bool(getattr(mod, "available", False))
for c in classes:
    try:
        cls = resolve(c)
    except Exception as exc:
        res[c] = {"__error__": repr(exc)}
        continue
    res[c] = describe(cls, [n for n in dir(cls) if not n.startswith("_") or n in protocol])
print(json.dumps(res))
"""


def _reference_path() -> str | None:
    ref = os.environ.get("GPUGRAD_CUPY_REFERENCE")
    if ref:
        return os.path.abspath(ref)
    if importlib.util.find_spec("cupy") is not None and os.environ.get("GPUGRAD_SIMULATE_CUDA") is None:
        return ""
    return None


def _dump(which: str, path: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GPUGRAD_SIMULATE_CUDA"}
    if which == "sim":
        env["GPUGRAD_SIMULATE_CUDA"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    elif path:
        env["PYTHONPATH"] = path
    proc = subprocess.run(
        [sys.executable, "-c", DUMP, json.dumps([MODULES, CLASSES, PROTOCOL]), which],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT) if which == "sim" else "/",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _user_params(ps: list[str] | None) -> list[str] | None:
    if ps is None:
        return None
    ps = [p for p in ps if p != "self"]
    return None if set(ps) <= {"args", "kwargs", "_obj", "_no_init"} else ps


@pytest.fixture(scope="module")
def surfaces():
    ref = _reference_path()
    if ref is None:
        pytest.skip("no CuPy to compare with (set GPUGRAD_CUPY_REFERENCE to a pip --target directory)")
    return _dump("sim"), _dump("real", ref)


@pytest.mark.parametrize("where", MODULES + CLASSES)
def test_simulated_names_and_signatures_are_cupys(surfaces, where):
    sim, real = surfaces
    mine, theirs = sim[where], real[where]
    assert "__error__" not in mine, mine
    if where == "cupy.cuda.nccl" and not theirs.get("__available__"):
        pytest.skip("this CuPy could not load NCCL, so its binding shows no names")
    assert "__error__" not in theirs, theirs
    invented = sorted(n for n, kind in mine.items() if kind != "module" and not n.startswith("__") and n not in theirs)
    assert not invented, f"{where}: not in CuPy {theirs.get('__version__', '')}: {invented}"
    wrong = {}
    for name, ps in mine.items():
        if name.startswith("__") and name not in PROTOCOL or not isinstance(ps, list):
            continue
        a, b = _user_params(ps), _user_params(theirs.get(name))
        if a is not None and b is not None and not set(a) <= set(b):
            wrong[name] = (a, b)
    assert not wrong, f"{where}: parameters unlike CuPy's (simulated, CuPy): {wrong}"
