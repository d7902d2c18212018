"""The GPU install extras give a working install on a machine with only an NVIDIA driver."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_cuda_extras_pull_the_cuda_toolkit_wheels():
    # CuPy 14's wheels ship no NVRTC, CUDA headers or cuBLAS; its [ctk] extra installs them
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name, pkg in (("cuda12", "cupy-cuda12x"), ("cuda13", "cupy-cuda13x")):
        (req,) = extras[name]
        m = re.fullmatch(rf"{pkg}\[([\w,]+)\]>=(\d+)", req)
        assert m and "ctk" in m.group(1).split(",") and int(m.group(2)) >= 14, req
    readme = (ROOT / "README.md").read_text()
    assert "[ctk]" in readme and "NVRTC" in readme
