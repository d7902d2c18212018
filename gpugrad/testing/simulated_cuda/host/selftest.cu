// Kernels that exercise the host harness itself (tests/test_kernels_host.py): shuffle variants
// and widths, ballots, shared memory, and the errors it must report instead of computing.
#include "common.cuh"

// out[t] for each thread t of one block of 64: the four shuffle results, packed.
extern "C" __global__ void shuffles(int* out, int width) {
    const int lane = threadIdx.x & 31;
    const int v = 100 * static_cast<int>(threadIdx.x);
    out[4 * threadIdx.x + 0] = __shfl_xor_sync(GG_FULL_MASK, v, 1, width);
    out[4 * threadIdx.x + 1] = __shfl_down_sync(GG_FULL_MASK, v, 3, width);
    out[4 * threadIdx.x + 2] = __shfl_up_sync(GG_FULL_MASK, v, 2, width);
    out[4 * threadIdx.x + 3] = __shfl_sync(GG_FULL_MASK, v, 5, width);
    (void)lane;
}

extern "C" __global__ void ballot(unsigned* out) {
    out[threadIdx.x] = __ballot_sync(GG_FULL_MASK, (threadIdx.x % 3) == 0);
}

// Block sums through static shared memory (block_reduce) and a dynamic-shared-memory reversal.
extern "C" __global__ void block_sum_and_reverse(const float* x, float* sums, float* rev, int n) {
    float* sm = reinterpret_cast<float*>(gg_dyn_smem);
    const int t = threadIdx.x;
    const float v = t < n ? x[blockIdx.x * n + t] : 0.0f;
    if (t < n) sm[t] = v;
    gg::SumState<float> s;
    s.v = v;
    s = gg::block_reduce(s);
    if (t == 0) sums[blockIdx.x] = s.v;
    if (t < n) rev[blockIdx.x * n + t] = sm[n - 1 - t];
}

extern "C" __global__ void atomics(int* counter, float* total) {
    atomicAdd(counter, 1);
    atomicAdd(total, 0.5f);
}

// Errors: a partial-warp shuffle with a full mask; half a warp at a barrier, half at a shuffle; a
// thread that returns while others wait; lanes syncing with different masks.
extern "C" __global__ void bad_full_mask(float* x) { x[threadIdx.x] = __shfl_xor_sync(GG_FULL_MASK, 1.0f, 1); }
extern "C" __global__ void bad_half_barrier(float* x) {
    if ((threadIdx.x & 31) < 16) {
        __syncthreads();
    } else {
        x[0] = __shfl_xor_sync(GG_FULL_MASK, 1.0f, 1);
    }
}
extern "C" __global__ void bad_exit_at_barrier(float* x) {
    if (threadIdx.x == 0) return;
    __syncthreads();
    x[threadIdx.x] = 1.0f;
}
extern "C" __global__ void bad_masks(float* x) {
    const unsigned mask = (threadIdx.x & 1) ? 0xaaaaaaaau : GG_FULL_MASK;
    x[threadIdx.x] = __shfl_xor_sync(mask, 1.0f, 2);
}
