"""The CUDA sources compile with NVRTC, without a GPU (CuPy's low-level NVRTC binding and the
nvidia-cuda-nvrtc wheel), for the architectures gpugrad targets; plus the loader's contracts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpugrad import kernels as K

ARCHS = ("compute_80", "compute_90")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def nvrtc():
    try:
        return K.load_nvrtc()
    except K.NvrtcUnavailable as exc:
        pytest.skip(f"NVRTC is not available here: {exc}")


def _entries(ptx: str) -> list[str]:
    return re.findall(r"\.entry\s+([A-Za-z_]\w*)\s*\(", ptx)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("module", K.MODULES)
def test_module_compiles_to_ptx(nvrtc, module, arch):
    ptx = K.nvrtc_compile(module, arch).decode()
    names = K.kernel_names(module)
    assert names, module
    entries = _entries(ptx)
    missing = [n for n in names if n not in entries]
    assert not missing, f"{module}: kernels missing from the PTX: {missing}"
    extra = sorted(set(entries) - set(names))
    assert not extra, f"{module}: entries not listed by kernel_names(): {extra}"
    assert len(entries) == len(set(entries))
    target = re.search(r"^\.target\s+(\w+)", ptx, re.MULTILINE)
    assert target and target.group(1) == arch.replace("compute_", "sm_")


@pytest.mark.parametrize("arch", ("sm_80", "sm_90"))
@pytest.mark.parametrize("module", K.MODULES)
def test_module_assembles_to_cubin(nvrtc, module, arch):
    """CuPy asks NVRTC for a cubin on a GPU, which also runs ptxas (register limits of the
    launch bounds, for instance); do the same here."""
    cubin = K._nvrtc_compile_source(K.source(module), f"{module}.cu", arch, module=module, cubin=True)
    assert cubin[:4] == b"\x7fELF"
    for name in K.kernel_names(module):
        assert name.encode() in cubin


def test_every_entry_of_the_source_is_listed():
    for module in K.MODULES:
        text = (K.KERNEL_DIR / f"{module}.cu").read_text()
        # entries are spelled out in full as the first argument of the GG_* entry macros
        spelled = set(re.findall(r"^GG_[A-Z0-9_]+\((\w+),", text, re.MULTILINE))
        assert spelled == set(K.kernel_names(module)), module


def test_broken_source_raises_with_log(nvrtc):
    src = 'extern "C" __global__ void broken_f32(float* x) { x[0] = not_declared_anywhere; }\n'
    with pytest.raises(K.KernelCompileError) as info:
        K._nvrtc_compile_source(src, "broken.cu", "compute_90", module="broken")
    err = info.value
    assert isinstance(err, RuntimeError)
    assert "not_declared_anywhere" in err.log
    assert "not_declared_anywhere" in str(err) and "broken" in str(err)
    assert err.module == "broken"


def test_source_inlines_common_header():
    for module in K.MODULES:
        src = K.source(module)
        assert "#include" not in src, module
        assert "GPUGRAD_COMMON_CUH" in src
        assert src.count("namespace gg {") >= 2
    assert K.source("softmax") is K.source("softmax")  # read once


def test_kernel_dir_and_unknown_module():
    assert K.KERNEL_DIR.is_dir()
    assert (K.KERNEL_DIR / "common.cuh").is_file()
    for module in K.MODULES:
        assert (K.KERNEL_DIR / f"{module}.cu").is_file()
    with pytest.raises(ValueError, match="unknown kernel module"):
        K.source("nope")
    with pytest.raises(ValueError):
        K.kernel_names("nope")


def test_launch_constants_match_header():
    header = (K.KERNEL_DIR / "common.cuh").read_text()
    defines = dict(re.findall(r"^#define\s+(GG_\w+)\s+(\d+)\s*$", header, re.MULTILINE))
    assert int(defines["GG_EW_THREADS"]) == K.EW_THREADS
    assert int(defines["GG_WARP_ROWS_THREADS"]) == K.WARP_ROWS_THREADS
    assert int(defines["GG_BLOCK_ROWS_MAX_THREADS"]) == K.BLOCK_ROWS_MAX_THREADS
    assert int(defines["GG_SPLIT_THREADS"]) == K.SPLIT_THREADS


@pytest.mark.parametrize("cols", [1, 31, 32, 1000, 1024, 1025, 4097, 50257, 131072, 10**7])
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 4096, 10**7])
def test_row_launch_geometry(rows, cols):
    layout, grid, block = K.row_launch(rows, cols)
    if cols <= K.SMALL_MAX_COLS:
        assert layout == "small"
    elif cols <= K.WARP_MAX_COLS:
        assert layout == "warp"
    else:
        assert layout == ("split" if rows < 132 else "block")
    assert 1 <= grid <= 2**31 - 1
    assert block % 32 == 0
    if layout in ("small", "warp"):
        assert block == K.WARP_ROWS_THREADS
    elif layout == "block":
        assert 128 <= block <= K.BLOCK_ROWS_MAX_THREADS
        assert grid <= rows
    else:
        assert block == K.SPLIT_THREADS


@pytest.mark.parametrize("n", [1, 3, 1024, 2**28, 2**33])
def test_elementwise_grid(n):
    grid = K.ew_grid(n, 4, 132)
    assert 1 <= grid <= 132 * 32


def test_dtype_suffix():
    import numpy as np

    assert K._suffix(np.float32) == "f32" and K._suffix(np.float64) == "f64"
    for dt in (np.float16, np.int32, np.bool_, np.complex64):
        with pytest.raises(TypeError, match=np.dtype(dt).name):
            K._suffix(dt)


def test_import_does_not_import_cupy():
    code = (
        "import sys\n"
        "import gpugrad.kernels as K\n"
        "K.kernel_names('softmax'); K.source('losses')\n"
        "bad = sorted(m for m in sys.modules if m == 'cupy' or m.startswith(('cupy.', 'cupy_backends')))\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
