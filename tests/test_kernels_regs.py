"""Registers and spills of every kernel, for sm_90, from ptxas's verbose report (NVRTC, no GPU).

Prints one line per kernel and fails when a float32 kernel spills. Skips where NVRTC cannot be loaded.
"""

from __future__ import annotations

import functools

import pytest

from bench import kernel_resources as KR
from gpugrad import kernels as K

#: float32 kernels ("module:kernel") allowed to spill for sm_90, with the NVRTC that showed it. Empty:
#: no float32 kernel may spill. A listed kernel that no longer exists fails the test.
KNOWN_FLOAT32_SPILLS: dict[str, str] = {}

SAMPLE_LOG = """\
ptxas info    : 8 bytes gmem
ptxas info    : Compiling entry function 'row_bwd_block_f64' for 'sm_90'
ptxas info    : Function properties for row_bwd_block_f64
ptxas         .     8 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 64 registers, used 1 barriers, 8 bytes cumulative stack size, 264 bytes smem
ptxas info    : Compile time = 42.241 ms
ptxas info    : Function properties for _ZN2gg6helperEf
ptxas         .     16 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Compiling entry function 'row_fwd_warp_f32' for 'sm_90'
ptxas info    : Function properties for row_fwd_warp_f32
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 0 barriers
ptxas info    : Compiling entry function 'row_reduce_f32_split' for 'sm_90'
ptxas info    : Function properties for row_reduce_f32_split
ptxas         .     24 bytes stack frame, 20 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 4096 bytes smem
"""


def test_parse_ptxas_log():
    res = KR.parse_ptxas_log(SAMPLE_LOG)
    assert list(res) == ["row_bwd_block_f64", "_ZN2gg6helperEf", "row_fwd_warp_f32", "row_reduce_f32_split"]
    f64 = res["row_bwd_block_f64"]
    assert (f64.entry, f64.registers, f64.stack_frame, f64.spill_stores, f64.spill_loads) == (True, 64, 8, 8, 12)
    assert (f64.smem, f64.barriers, f64.spill_bytes, f64.float64) == (264, 1, 20, True)
    warp = res["row_fwd_warp_f32"]
    assert (warp.registers, warp.spill_bytes, warp.smem, warp.float64) == (40, 0, 0, False)
    callee = res["_ZN2gg6helperEf"]
    assert not callee.entry and callee.registers is None and callee.spill_bytes == 8
    split = res["row_reduce_f32_split"]
    assert (split.registers, split.spill_bytes, split.smem) == (255, 36, 4096)
    bad = KR.float32_spills({"m": res})
    assert bad == ["m:row_reduce_f32_split (20 B stores, 16 B loads)"]  # not the f64 kernel, not the callee
    text = KR.table({"m": res})
    assert "row_reduce_f32_split" in text and "SPILLS" in text and "callee" in text


@pytest.mark.parametrize(
    "name, f64",
    [("softmax_fwd_warp_f64", True), ("x_f64_split", True), ("f64", True), ("relu_fwd_f32", False),
     ("reduce_rows", False), ("myf64thing", False)],
)
def test_float64_names(name, f64):
    assert KR.is_float64(name) is f64


def test_options_are_the_loaders():
    opts = KR.compile_options("sm_90")
    for opt in K.COMPILE_OPTIONS:
        assert opt in opts
    assert opts[-2:] == ["-arch=sm_90", "-Xptxas=-v"]
    assert sum(o.startswith("-arch") for o in opts) == 1


@pytest.fixture(scope="module")
def nvrtc():
    try:
        return K.load_nvrtc()
    except K.NvrtcUnavailable as exc:
        pytest.skip(f"NVRTC is not available here: {exc}")


@functools.cache
def _resources(module: str) -> dict:
    return KR.module_resources(module, "sm_90")


@pytest.mark.parametrize("module", K.MODULES)
def test_registers_and_spills_sm90(nvrtc, module, capsys):
    res = _resources(module)
    entries = {n: r for n, r in res.items() if r.entry}
    assert entries, f"{module}: ptxas reported no kernel (the report's format changed?)"
    missing_regs = [n for n, r in entries.items() if r.registers is None]
    assert not missing_regs, f"{module}: no register count parsed for {missing_regs}"
    listed = set(K.kernel_names(module)) if hasattr(K, "kernel_names") else set(entries)
    assert listed <= set(entries), f"{module}: kernels absent from the ptxas report: {sorted(listed - set(entries))}"
    with capsys.disabled():
        print(f"\n{KR.table({module: res})}\nNVRTC {'.'.join(map(str, nvrtc.getVersion()))}")
    bad = KR.float32_spills({module: res})
    new = [b for b in bad if b.split(" ")[0] not in KNOWN_FLOAT32_SPILLS]
    assert not new, f"float32 kernels spill registers for sm_90: {'; '.join(new)}"
    gone = sorted(k for k in KNOWN_FLOAT32_SPILLS if k.startswith(f"{module}:") and k.split(":")[1] not in entries)
    assert not gone, f"{gone} no longer exist: remove them from KNOWN_FLOAT32_SPILLS"
