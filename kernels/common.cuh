// Shared device helpers for gpugrad's kernels.
//
// This header is inlined textually by gpugrad/kernels.py before the source goes to NVRTC, so it
// must not include anything: NVRTC has no standard headers (no <cmath>, no INFINITY).
//
// Launch geometry contract with gpugrad/kernels.py (checked by tests/test_kernels_compile.py):
//   elementwise kernels         blockDim.x == GG_EW_THREADS
//   warp-per-row kernels        blockDim.x == GG_WARP_ROWS_THREADS (a multiple of 32)
//   block-per-row kernels       blockDim.x a multiple of 32, <= GG_BLOCK_ROWS_MAX_THREADS
// Every kernel is grid-stride, so any grid size >= 1 is correct.
#ifndef GPUGRAD_COMMON_CUH
#define GPUGRAD_COMMON_CUH

#define GG_EW_THREADS 256
#define GG_WARP_ROWS_THREADS 128
#define GG_BLOCK_ROWS_MAX_THREADS 512
#define GG_FULL_MASK 0xffffffffu

typedef long long gg_i64;
typedef unsigned long long gg_u64;

namespace gg {

// ------------------------------------------------------------------ constants and math overloads

template <typename T> __device__ __forceinline__ T neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double neg_inf<double>() {
    return __longlong_as_double(0xfff0000000000000ULL);
}

template <typename T> __device__ __forceinline__ T quiet_nan();
template <> __device__ __forceinline__ float quiet_nan<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ __forceinline__ double quiet_nan<double>() {
    return __longlong_as_double(0x7ff8000000000000ULL);
}

__device__ __forceinline__ float g_exp(float x) { return expf(x); }
__device__ __forceinline__ double g_exp(double x) { return exp(x); }
__device__ __forceinline__ float g_log(float x) { return logf(x); }
__device__ __forceinline__ double g_log(double x) { return log(x); }
__device__ __forceinline__ float g_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double g_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float g_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double g_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float g_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double g_abs(double x) { return fabs(x); }
// fmax/fmin return the other operand when one is NaN; NaN still reaches every sum that follows.
__device__ __forceinline__ float g_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double g_max(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ float g_min(float a, float b) { return fminf(a, b); }
__device__ __forceinline__ double g_min(double a, double b) { return fmin(a, b); }

// exp(v - m) for v <= m, defined as 0 when m is -inf (then v is -inf too and v - m would be NaN).
template <typename T> __device__ __forceinline__ T exp_sub(T v, T m) {
    return m == neg_inf<T>() ? T(0) : g_exp(v - m);
}

// 1 / (1 + exp(-x)) without overflow in exp for either sign of x.
template <typename T> __device__ __forceinline__ T sigmoid(T x) {
    if (x >= T(0)) {
        return T(1) / (T(1) + g_exp(-x));
    }
    const T e = g_exp(x);
    return e / (T(1) + e);
}

template <typename T> struct Pair {
    T a;
    T b;
};

// ------------------------------------------------------------------ 16-byte vectors

template <typename T> struct Vec16;
template <> struct Vec16<float> {
    typedef float4 type;
    static constexpr int N = 4;
};
template <> struct Vec16<double> {
    typedef double2 type;
    static constexpr int N = 2;
};

__device__ __forceinline__ void load16(const float* p, float (&r)[4]) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    r[0] = v.x;
    r[1] = v.y;
    r[2] = v.z;
    r[3] = v.w;
}
__device__ __forceinline__ void load16(const double* p, double (&r)[2]) {
    const double2 v = *reinterpret_cast<const double2*>(p);
    r[0] = v.x;
    r[1] = v.y;
}
__device__ __forceinline__ void store16(float* p, const float (&r)[4]) {
    float4 v;
    v.x = r[0];
    v.y = r[1];
    v.z = r[2];
    v.w = r[3];
    *reinterpret_cast<float4*>(p) = v;
}
__device__ __forceinline__ void store16(double* p, const double (&r)[2]) {
    double2 v;
    v.x = r[0];
    v.y = r[1];
    *reinterpret_cast<double2*>(p) = v;
}

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<gg_u64>(p) & 15ULL) == 0ULL;
}

// ------------------------------------------------------------------ grid-stride indexing

__device__ __forceinline__ gg_i64 global_tid() {
    return static_cast<gg_i64>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ gg_i64 global_stride() {
    return static_cast<gg_i64>(gridDim.x) * blockDim.x;
}

// i / cols with a 32-bit division when the whole tensor is indexable in 32 bits (small == true).
__device__ __forceinline__ gg_i64 row_of(gg_i64 i, gg_i64 cols, bool small) {
    if (small) {
        return static_cast<gg_i64>(static_cast<unsigned>(i) / static_cast<unsigned>(cols));
    }
    return static_cast<gg_i64>(static_cast<gg_u64>(i) / static_cast<gg_u64>(cols));
}

// ------------------------------------------------------------------ elementwise maps
//
// ew_map applies f to n elements of NIN inputs, writing NOUT outputs, all contiguous buffers of
// the same length: f(row, col, a, o) reads a[NIN] and writes o[NOUT]. With ROWS the buffers are
// [n / cols, cols] and row/col are the element's coordinates; without it row = 0 and col = index.
// 16-byte vectors are used when every pointer is 16-byte aligned (and, with ROWS, cols is a
// multiple of the vector width so that a vector never straddles two rows); the rest, or
// everything when misaligned, goes through the scalar grid-stride loop.

template <typename T, int NIN, int NOUT, bool ROWS, typename F>
__device__ __forceinline__ void ew_map(const T* const (&in)[NIN], T* const (&out)[NOUT], gg_i64 n, gg_i64 cols,
                                       F f) {
    constexpr int N = Vec16<T>::N;
    const gg_i64 tid = global_tid();
    const gg_i64 stride = global_stride();
    const bool small = n <= 0xffffffffLL;
    bool vec = !ROWS || (cols % N) == 0;
#pragma unroll
    for (int j = 0; j < NIN; ++j) vec = vec && aligned16(in[j]);
#pragma unroll
    for (int j = 0; j < NOUT; ++j) vec = vec && aligned16(out[j]);

    gg_i64 done = 0;
    if (vec) {
        const gg_i64 nv = n / N;
        for (gg_i64 v = tid; v < nv; v += stride) {
            const gg_i64 i0 = v * N;
            T a[NIN][N];
#pragma unroll
            for (int j = 0; j < NIN; ++j) load16(in[j] + i0, a[j]);
            gg_i64 row = 0;
            gg_i64 col = i0;
            if constexpr (ROWS) {
                row = row_of(i0, cols, small);
                col = i0 - row * cols;
            }
            T o[NOUT][N];
#pragma unroll
            for (int k = 0; k < N; ++k) {
                T ak[NIN];
                T ok[NOUT];
#pragma unroll
                for (int j = 0; j < NIN; ++j) ak[j] = a[j][k];
                f(row, col + k, ak, ok);
#pragma unroll
                for (int j = 0; j < NOUT; ++j) o[j][k] = ok[j];
            }
#pragma unroll
            for (int j = 0; j < NOUT; ++j) store16(out[j] + i0, o[j]);
        }
        done = nv * N;
    }
    for (gg_i64 i = done + tid; i < n; i += stride) {
        T ak[NIN];
        T ok[NOUT];
#pragma unroll
        for (int j = 0; j < NIN; ++j) ak[j] = in[j][i];
        gg_i64 row = 0;
        gg_i64 col = i;
        if constexpr (ROWS) {
            row = row_of(i, cols, small);
            col = i - row * cols;
        }
        f(row, col, ak, ok);
#pragma unroll
        for (int j = 0; j < NOUT; ++j) out[j][i] = ok[j];
    }
}

// ------------------------------------------------------------------ reductions
//
// A reduction state S provides: S::identity(), s.merge(const S&) and s.shfl_xor(int lane_mask),
// the latter returning the state held by lane (lane ^ lane_mask) of the same warp. Every lane of
// the warp must call warp_reduce (full-mask shuffles).

template <typename T> struct SumState {
    T v;
    static __device__ __forceinline__ SumState identity() {
        SumState s;
        s.v = T(0);
        return s;
    }
    __device__ __forceinline__ void merge(const SumState& o) { v += o.v; }
    __device__ __forceinline__ SumState shfl_xor(int mask) const {
        SumState s;
        s.v = __shfl_xor_sync(GG_FULL_MASK, v, mask);
        return s;
    }
};

template <typename T> struct Sum2State {
    T a;
    T b;
    static __device__ __forceinline__ Sum2State identity() {
        Sum2State s;
        s.a = T(0);
        s.b = T(0);
        return s;
    }
    __device__ __forceinline__ void merge(const Sum2State& o) {
        a += o.a;
        b += o.b;
    }
    __device__ __forceinline__ Sum2State shfl_xor(int mask) const {
        Sum2State s;
        s.a = __shfl_xor_sync(GG_FULL_MASK, a, mask);
        s.b = __shfl_xor_sync(GG_FULL_MASK, b, mask);
        return s;
    }
};

// Online softmax normalizer (Milakov & Gimelshein): m is the running max, s = sum exp(x - m).
template <typename T> struct MaxSumState {
    T m;
    T s;
    static __device__ __forceinline__ MaxSumState identity() {
        MaxSumState r;
        r.m = neg_inf<T>();
        r.s = T(0);
        return r;
    }
    __device__ __forceinline__ void merge(const MaxSumState& o) {
        const T mn = g_max(m, o.m);
        s = s * exp_sub(m, mn) + o.s * exp_sub(o.m, mn);
        m = mn;
    }
    // Folds K values in with one rescale of the running sum; pad unused slots with -inf.
    template <int K> __device__ __forceinline__ void update(const T (&v)[K]) {
        T mn = m;
#pragma unroll
        for (int k = 0; k < K; ++k) mn = g_max(mn, v[k]);
        T acc = s * exp_sub(m, mn);
#pragma unroll
        for (int k = 0; k < K; ++k) acc += exp_sub(v[k], mn);
        m = mn;
        s = acc;
    }
    __device__ __forceinline__ MaxSumState shfl_xor(int mask) const {
        MaxSumState r;
        r.m = __shfl_xor_sync(GG_FULL_MASK, m, mask);
        r.s = __shfl_xor_sync(GG_FULL_MASK, s, mask);
        return r;
    }
};

template <typename S> __device__ __forceinline__ S warp_reduce(S st) {
#pragma unroll
    for (int mask = 16; mask > 0; mask >>= 1) st.merge(st.shfl_xor(mask));
    return st;
}

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    SumState<T> s;
    s.v = v;
    return warp_reduce(s).v;
}

// Block-wide reduction; every thread of the block must call it and gets the same result.
// blockDim.x must be a multiple of 32 and at most 1024. Safe to call repeatedly.
template <typename S> __device__ __forceinline__ S block_reduce(S st) {
    __shared__ S partial[33];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    st = warp_reduce(st);
    __syncthreads();  // partial[] may still be read by a previous call
    if (lane == 0) partial[warp] = st;
    __syncthreads();
    if (warp == 0) {
        S w = lane < nwarps ? partial[lane] : S::identity();
        w = warp_reduce(w);
        if (lane == 0) partial[32] = w;
    }
    __syncthreads();
    return partial[32];
}

// ------------------------------------------------------------------ row groups
//
// A row group is the set of threads that handles one row of a [rows, cols] buffer: a warp
// (WarpRows) or the whole block (BlockRows). Both iterate over rows grid-stride; loops over rows
// are uniform across the group, so reductions inside them are safe.

struct WarpRows {
    int lane;
    int width;
    gg_i64 first;
    gg_i64 step;
    __device__ __forceinline__ WarpRows() {
        const int per_block = blockDim.x >> 5;
        lane = threadIdx.x & 31;
        width = 32;
        first = static_cast<gg_i64>(blockIdx.x) * per_block + (threadIdx.x >> 5);
        step = static_cast<gg_i64>(gridDim.x) * per_block;
    }
    template <typename S> __device__ __forceinline__ S reduce(S st) const { return warp_reduce(st); }
};

struct BlockRows {
    int lane;
    int width;
    gg_i64 first;
    gg_i64 step;
    __device__ __forceinline__ BlockRows() {
        lane = threadIdx.x;
        width = blockDim.x;
        first = blockIdx.x;
        step = gridDim.x;
    }
    template <typename S> __device__ __forceinline__ S reduce(S st) const { return block_reduce(st); }
};

// sum over c = begin, begin + step, ... < end of f(c), four independent loads in flight.
template <typename T, typename F>
__device__ __forceinline__ T strided_sum(gg_i64 begin, gg_i64 end, gg_i64 step, F f) {
    T a0 = T(0), a1 = T(0), a2 = T(0), a3 = T(0);
    gg_i64 c = begin;
    for (; c + 3 * step < end; c += 4 * step) {
        a0 += f(c);
        a1 += f(c + step);
        a2 += f(c + 2 * step);
        a3 += f(c + 3 * step);
    }
    for (; c < end; c += step) a0 += f(c);
    return (a0 + a1) + (a2 + a3);
}

// Two-phase strided loop: for c = begin, begin + step, ... < end, v = load(c) then store(c, v).
// Four loads are issued before their stores, so the loads are not serialized behind stores the
// compiler cannot prove to be disjoint from them.
template <typename L, typename S>
__device__ __forceinline__ void strided_map(gg_i64 begin, gg_i64 end, gg_i64 step, L load, S store) {
    gg_i64 c = begin;
    for (; c + 3 * step < end; c += 4 * step) {
        const auto v0 = load(c);
        const auto v1 = load(c + step);
        const auto v2 = load(c + 2 * step);
        const auto v3 = load(c + 3 * step);
        store(c, v0);
        store(c + step, v1);
        store(c + 2 * step, v2);
        store(c + 3 * step, v3);
    }
    for (; c < end; c += step) store(c, load(c));
}

// Online max/sum of x[begin:end:step] for one thread.
template <typename T>
__device__ __forceinline__ MaxSumState<T> strided_max_sum(const T* __restrict__ x, gg_i64 begin, gg_i64 end,
                                                          gg_i64 step) {
    MaxSumState<T> st = MaxSumState<T>::identity();
    gg_i64 c = begin;
    for (; c + 3 * step < end; c += 4 * step) {
        const T v[4] = {x[c], x[c + step], x[c + 2 * step], x[c + 3 * step]};
        st.update(v);
    }
    for (; c < end; c += step) {
        const T v[1] = {x[c]};
        st.update(v);
    }
    return st;
}

}  // namespace gg

#endif  // GPUGRAD_COMMON_CUH
