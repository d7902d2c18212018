"""Compile units: a first call on a GPU compiles one operation's layouts, not the whole module."""

from __future__ import annotations

import re

import pytest

from gpugrad import kernels as K


def _entries(src: str) -> set[str]:
    return set(re.findall(r"^GG_[A-Z0-9_]+\((\w+),", src, re.MULTILINE))


@pytest.mark.parametrize("module", K.MODULES)
def test_units_partition_the_module(module):
    names = K.kernel_names(module)
    units: dict[str, set[str]] = {}
    for n in names:
        units.setdefault(K.compile_unit(module, n), set()).add(n)
    assert set().union(*units.values()) == set(names)
    for unit, members in units.items():
        assert _entries(K.unit_source(module, unit)) == members, unit
    if module == "activations":
        assert list(units) == ["activations"]
    else:
        assert len(units) > 4


def test_unit_of_a_row_operation():
    assert K.compile_unit("softmax", "softmax_fwd_regs256_f32") == "softmax:softmax_fwd_f32"
    assert K.compile_unit("softmax", "log_softmax_fwd_part_f64") == "softmax:log_softmax_fwd_f64"
    assert K.compile_unit("losses", "softmax_ce_sparse_fwd_block_f32") == "losses:softmax_ce_sparse_fwd_f32"
    assert K.compile_unit("losses", "mse_bwd_f32") == "losses:mse_bwd_f32"


def test_a_unit_compiles_with_nvrtc():
    try:
        K.load_nvrtc()
    except K.NvrtcUnavailable as exc:
        pytest.skip(f"NVRTC is not available here: {exc}")
    src = K.unit_source("softmax", "softmax:softmax_fwd_f32")
    ptx = K._nvrtc_compile_source(src, "softmax.cu", "compute_90", module="softmax").decode()
    entries = set(re.findall(r"\.entry\s+(\w+)\s*\(", ptx))
    assert entries == {
        n for n in K.kernel_names("softmax") if K.compile_unit("softmax", n) == "softmax:softmax_fwd_f32"
    }
