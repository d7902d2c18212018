"""NVRTC through NVIDIA's cuda-bindings, the compile path used where CuPy is not installed."""

import sys

import pytest

from gpugrad import kernels as K

bindings = pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-bindings is not installed")


@pytest.fixture
def nvrtc():
    from gpugrad.kernels import _nvrtc_bindings

    try:
        return _nvrtc_bindings.load()
    except Exception as exc:  # the bindings without a libnvrtc to load
        pytest.skip(f"libnvrtc not loadable through cuda-bindings: {exc}")


@pytest.fixture
def without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy...` now raises ImportError
    monkeypatch.setitem(sys.modules, "cupy.cuda", None)


def test_load_nvrtc_falls_back_to_the_bindings(nvrtc, without_cupy):
    loaded = K.load_nvrtc()
    assert type(loaded).__name__ == "BindingsNvrtc"
    major, minor = loaded.getVersion()
    assert major >= 12 and minor >= 0


@pytest.mark.parametrize("module", K.MODULES)
def test_every_module_compiles_without_cupy(nvrtc, without_cupy, module):
    ptx = K.nvrtc_compile(module, "compute_90").decode()
    assert ".version" in ptx and ".entry" in ptx
    for name in K.kernel_names(module):
        assert f".entry {name}(" in ptx


def test_cubin_and_errors_without_cupy(nvrtc, without_cupy):
    cubin = K._nvrtc_compile_source(K.source("activations"), "activations.cu", "sm_90", module="activations",
                                    cubin=True)
    assert cubin[:4] == b"\x7fELF"
    with pytest.raises(K.KernelCompileError, match="broken.cu") as info:
        K._nvrtc_compile_source("__global__ void f( {", "broken.cu", "compute_90", module="broken")
    assert "error" in info.value.log


def test_nothing_loadable_says_what_to_install(monkeypatch, without_cupy):
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings.nvrtc", None)
    with pytest.raises(K.NvrtcUnavailable, match="cuda-bindings"):
        K.load_nvrtc()
