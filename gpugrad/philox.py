"""Random numbers on CUDA devices from a counter-based generator (Philox4x32-10, the one cuRAND and
JAX use): the numbers at position ``i`` of a draw are a pure function of (key, counter + i/4).

A generator is its key (from the seed) and a counter on the host; a draw of ``n`` numbers takes
``ceil(n/4)`` counter values and launches one kernel that reads the key and its first counter
value from device memory. So a compiled step captured as a CUDA graph draws fresh numbers at every
launch: the host advances the counter before each launch and the step's host numbers (the key and
the counter among them) reach the graph in one copy. Eager code and compiled code draw the same
numbers from the same seed.

Uniforms keep 24 random bits in float32 and 32 in float64; normals come from Box-Muller pairs.
"""

from __future__ import annotations

import math
import os

import numpy as np

from . import backend

SOURCE = r"""
__device__ __forceinline__ void gg_philox(unsigned int c[4], unsigned int k0, unsigned int k1) {
    for (int r = 0; r < 10; r++) {
        const unsigned long long p0 = (unsigned long long)0xD2511F53u * c[0];
        const unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c[2];
        const unsigned int n0 = (unsigned int)(p1 >> 32) ^ c[1] ^ k0;
        const unsigned int n2 = (unsigned int)(p0 >> 32) ^ c[3] ^ k1;
        c[0] = n0; c[1] = (unsigned int)p1; c[2] = n2; c[3] = (unsigned int)p0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
}

template <typename T>
__device__ __forceinline__ void gg_fill(const double* k0, const double* k1, const double* ctr, T* out,
                                        long long n, int dist, double a, double b) {
    const unsigned int key0 = (unsigned int)k0[0], key1 = (unsigned int)k1[0];
    const unsigned long long base = (unsigned long long)ctr[0];
    const long long blocks = (n + 3) / 4;
    for (long long blk = (long long)blockIdx.x * blockDim.x + threadIdx.x; blk < blocks;
         blk += (long long)gridDim.x * blockDim.x) {
        const unsigned long long at = base + (unsigned long long)blk;
        unsigned int c[4] = {(unsigned int)at, (unsigned int)(at >> 32), 0u, 0u};
        gg_philox(c, key0, key1);
        double v[4];
        if (dist == 0) {  // uniform in [a, b): 24 random bits for float32, 32 for float64
            for (int j = 0; j < 4; j++) {
                const double u = sizeof(T) == 4 ? (double)(c[j] >> 8) * (1.0 / 16777216.0)
                                                : (double)c[j] * (1.0 / 4294967296.0);
                v[j] = a + (b - a) * u;
            }
        } else {  // normal(a, b): Box-Muller on two pairs
            for (int j = 0; j < 4; j += 2) {
                const double u1 = ((double)c[j] + 1.0) * (1.0 / 4294967296.0);  // (0, 1]
                const double u2 = (double)c[j + 1] * (1.0 / 4294967296.0);
                const double r = sqrt(-2.0 * log(u1));
                v[j] = a + b * r * cos(6.283185307179586 * u2);
                v[j + 1] = a + b * r * sin(6.283185307179586 * u2);
            }
        }
        for (int j = 0; j < 4; j++) {
            const long long i = blk * 4 + j;
            if (i < n) out[i] = (T)v[j];
        }
    }
}

extern "C" __global__ void gg_philox_f32(const double* k0, const double* k1, const double* ctr, float* out,
                                         long long n, int dist, double a, double b) {
    gg_fill<float>(k0, k1, ctr, out, n, dist, a, b);
}

extern "C" __global__ void gg_philox_f64(const double* k0, const double* k1, const double* ctr, double* out,
                                         long long n, int dist, double a, double b) {
    gg_fill<double>(k0, k1, ctr, out, n, dist, a, b);
}
"""

UNIFORM, NORMAL = 0, 1
THREADS = 256


class Philox:
    """A generator: a 64-bit key from the seed (a fresh random one without a seed) and a counter."""

    def __init__(self, seed: int | None = None) -> None:
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        seed = int(seed) % (1 << 64)
        self.key = (float(seed & 0xFFFFFFFF), float(seed >> 32))  # exact in doubles
        self.counter = 0

    def take(self, n: int) -> tuple[float, float, float]:
        """The key and the first counter value of a draw of ``n`` numbers; advances the counter."""
        start = self.counter
        self.counter += (n + 3) // 4
        return (*self.key, float(start))


def _launch(k0, k1, ctr, out, n, dist, a, b) -> None:
    """The draw's kernel. ``k0, k1, ctr`` are host numbers (eager code, a plain replay: one copy to
    the device) or device scalars (a captured graph, which reads them afresh at each launch)."""
    from . import kernels  # noqa: PLC0415 - the CUDA loader, loaded on first CUDA draw

    if n == 0:
        return
    if not backend.is_cupy_array(k0):
        st = backend.cupy().asarray(np.array([k0, k1, ctr], np.float64))
        k0, k1, ctr = st[0:1], st[1:2], st[2:3]
    name = "gg_philox_f32" if out.dtype == np.float32 else "gg_philox_f64"
    kernel = kernels.get_source_kernel(SOURCE, name)
    blocks = max(1, min(-(-((n + 3) // 4) // THREADS), 4096))
    kernel((blocks,), (THREADS,), (k0, k1, ctr, out, np.int64(n), np.int32(dist), np.float64(a), np.float64(b)))


_launch.host_dtype = np.dtype(np.float64)  # inside a captured graph its host numbers are doubles


def _empty(shape, dtype):
    return backend.cupy().empty(shape, dtype)


def draw(take, dev: str, shape: tuple, dtype, dist: int, a: float, b: float):
    """A device array of ``shape`` drawn from the generator ``take`` returns at call time (a
    compiled step records the host part and the launch, so each replay draws afresh)."""
    dtype = np.dtype(dtype)
    draw_dt = dtype if dtype.char in "fd" else np.dtype(np.float32 if dtype.itemsize <= 4 else np.float64)
    n = math.prod(shape)
    cp = backend.cupy()
    with cp.cuda.Device(int(dev.split(":")[1])):
        k0, k1, ctr = backend.host_value(lambda: take(n))
        out = backend.array_call(_empty, shape, draw_dt)
        backend.array_launch(_launch, (k0, k1, ctr, out, n, dist, float(a), float(b)), writes=(3,))
        if draw_dt != dtype:
            out = out.astype(dtype)
    return out
