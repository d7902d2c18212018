"""A custom op: swish(x) = x·σ(x) with a NumPy forward, a CUDA C forward and a backward in gpugrad ops.

``Swish`` is a ``gg.Op``, the same base as gpugrad's own sigmoid: ``forward_cpu`` takes NumPy
arrays, ``forward_gpu`` launches a user kernel (``gg.cuda.RawKernel``, compiled by NVRTC on first
use), and ``backward`` is written in gpugrad ops, so second derivatives work on both devices. The
gradients are checked against central differences (``check_grad``, first and second order) and
against the closed forms swish' = σ + y(1 − σ), swish'' = σ(1 − σ)(2 + x(1 − 2σ)).

    python examples/08_custom_op.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

import gpugrad as gg
from gpugrad.kernels import NvrtcUnavailable
from gpugrad.testing import check_grad

SWISH_SRC = r"""
template <typename T>
__device__ void swish(const T* x, T* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        T v = x[i];
        y[i] = v / (T(1) + exp(-v));
    }
}
extern "C" __global__ void swish_f32(const float* x, float* y, long long n) { swish(x, y, n); }
extern "C" __global__ void swish_f64(const double* x, double* y, long long n) { swish(x, y, n); }
"""

KERNELS = {"f": gg.cuda.RawKernel(SWISH_SRC, "swish_f32"), "d": gg.cuda.RawKernel(SWISH_SRC, "swish_f64")}


class Swish(gg.Op):
    gpu_dtypes = "fd"  # other dtypes on CuPy take forward_cpu, which is array-generic

    @staticmethod
    def forward_cpu(x):
        xp = gg.backend.get_array_module(x)
        with np.errstate(over="ignore"):  # e^{-x} = inf for x < -709: x / inf = -0, the right limit
            return x / (1 + xp.exp(-x))

    @staticmethod
    def forward_gpu(x):
        xp = gg.backend.get_array_module(x)
        x = xp.ascontiguousarray(x)
        y = xp.empty_like(x)
        threads = 256
        blocks = max(1, min(math.ceil(x.size / threads), 4096))
        KERNELS[x.dtype.char]((blocks,), (threads,), (x, y, np.int64(x.size)))
        return y

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.inputs
        s = gg.sigmoid(x)
        return gy * (s + ctx.output * (1 - s))


def swish(x) -> gg.Tensor:
    return Swish.apply(x)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: gg.default_device())")
    args = parser.parse_args(argv)
    dev = args.device or gg.default_device()
    print(f"device: {dev}")

    try:
        ptx = gg.cuda.compile_check(SWISH_SRC, "swish_f64")
        compiled = ".entry swish_f64(" in ptx
        print(f"NVRTC compiles the kernel without a GPU: {compiled}")
    except NvrtcUnavailable as exc:
        compiled = None
        print(f"NVRTC is not available here ({exc})")

    n = 7 if args.quick else 21
    xs = np.linspace(-6.0, 6.0, n)
    x = gg.Tensor(xs, device=dev)
    with gg.GradientTape() as outer:
        outer.watch(x)
        with gg.GradientTape() as inner:
            inner.watch(x)
            y = swish(x)
        dy = inner.gradient(y, x)
    d2y = outer.gradient(dy, x)
    s = 1 / (1 + np.exp(-xs))
    closed = {"y": xs * s, "dy": s + xs * s * (1 - s), "d2y": s * (1 - s) * (2 + xs * (1 - 2 * s))}
    got = {"y": y.numpy(), "dy": dy.numpy(), "d2y": d2y.numpy()}
    errors = {k: float(np.max(np.abs(got[k] - closed[k]))) for k in closed}
    for k in closed:
        print(f"{k:>4}: {np.round(got[k], 4)}  (largest difference from the closed form {errors[k]:.1e})")

    check_grad(swish, [gg.Tensor(np.random.default_rng(0).standard_normal((3, 4)), device=dev)], order=2)
    print("check_grad (order 2) against central differences: passed")

    y32 = swish(gg.Tensor(xs, dtype="float32", device=dev))
    err32 = float(np.max(np.abs(y32.numpy() - closed["y"])))
    print(f"float32 forward: largest difference {err32:.1e}")
    return {"device": dev, "compiled": compiled, "max_error": max(errors.values()), "float32_error": err32, **got}


if __name__ == "__main__":
    main()
