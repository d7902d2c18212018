// Shared device helpers for gpugrad's kernels.
//
// This header is inlined textually by gpugrad/kernels.py before the source goes to NVRTC, so it
// must not include anything: NVRTC has no standard headers (no <cmath>, no INFINITY).
//
// Launch geometry contract with gpugrad/kernels.py (checked by tests/test_kernels_compile.py):
//   elementwise kernels                  blockDim.x == GG_EW_THREADS
//   small, regs<N> and warp row kernels  blockDim.x == GG_WARP_ROWS_THREADS (a multiple of 32)
//   smem and block row kernels           blockDim.x a multiple of 32, <= GG_BLOCK_ROWS_MAX_THREADS
//   part and fin (split-row) kernels     blockDim.x == GG_SPLIT_THREADS
// Every kernel is grid-stride, so any grid size >= 1 is correct.
#ifndef GPUGRAD_COMMON_CUH
#define GPUGRAD_COMMON_CUH

#define GG_EW_THREADS 256
#define GG_WARP_ROWS_THREADS 128
#define GG_BLOCK_ROWS_MAX_THREADS 512
#define GG_SPLIT_THREADS 256
#define GG_FULL_MASK 0xffffffffu

typedef long long gg_i64;
typedef unsigned long long gg_u64;

// Dynamic shared memory of the smem row kernels (sized per launch; above 48 KB the loader raises
// the kernel's cudaFuncAttributeMaxDynamicSharedMemorySize first).
extern __shared__ __align__(16) unsigned char gg_dyn_smem[];

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
// NaN-propagating max/min (fmaxf/fminf would drop a NaN operand): NaN in, NaN out, as NumPy.
template <typename T> __device__ __forceinline__ T g_max(T a, T b) { return (a > b || a != a) ? a : b; }
template <typename T> __device__ __forceinline__ T g_min(T a, T b) { return (a < b || a != a) ? a : b; }

// false for +-inf and NaN; a bit test, so no compiler flag can fold it away
__device__ __forceinline__ bool is_finite(float x) { return (__float_as_int(x) & 0x7f800000) != 0x7f800000; }
__device__ __forceinline__ bool is_finite(double x) {
    return (__double_as_longlong(x) & 0x7ff0000000000000LL) != 0x7ff0000000000000LL;
}
// x where finite, else 0: the shift NumPy's path subtracts (m = where(isfinite(m), m, 0))
template <typename T> __device__ __forceinline__ T finite_or_zero(T x) { return is_finite(x) ? x : T(0); }

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
// A reduction state S provides: S::identity(), s.merge(const S&), s.shfl_xor(int lane_mask) (the
// state held by lane ^ lane_mask of the same warp), and S::NS words of T that s.store(p) writes and
// S::load(p) reads back (partial states of split rows). Every lane of the warp must take part in
// a shuffle (full-mask shuffles), so loops around reductions are uniform across the warp.

template <typename T> struct SumState {
    static constexpr int NS = 1;
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
    __device__ __forceinline__ void store(T* p) const { p[0] = v; }
    static __device__ __forceinline__ SumState load(const T* p) {
        SumState s;
        s.v = p[0];
        return s;
    }
};

// Softmax normalizer of a set of values: m = max (NaN if any is NaN), s = sum exp(v - shift) with
// shift = m where finite, else 0 -- the shift NumPy's path uses, so that every non-finite case
// gives NumPy's answer: a NaN anywhere makes s NaN; a +inf makes s = +inf; a row of -inf has s = 0.
// Partial states merge (Milakov & Gimelshein's online normalizer) with the same rule: once the
// max is not finite, s is NaN, +inf or 0 whatever the parts held.
template <typename T> struct MaxSum {
    static constexpr int NS = 2;
    T m;
    T s;
    static __device__ __forceinline__ MaxSum identity() {
        MaxSum r;
        r.m = neg_inf<T>();
        r.s = T(0);
        return r;
    }
    // the first nvalid of K values (the rest are padding and ignored)
    template <int K> static __device__ __forceinline__ MaxSum of(const T (&v)[K], int nvalid) {
        MaxSum r;
        r.m = neg_inf<T>();
#pragma unroll
        for (int k = 0; k < K; ++k) {
            if (k < nvalid) r.m = g_max(r.m, v[k]);
        }
        const T sh = finite_or_zero(r.m);
        r.s = T(0);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            if (k < nvalid) r.s += g_exp(v[k] - sh);
        }
        return r;
    }
    __device__ __forceinline__ void merge(const MaxSum& o) {
        const T mn = g_max(m, o.m);
        if (is_finite(mn)) {
            // a part with m = -inf holds s = 0, and exp(-inf) = 0: it adds nothing
            s = s * g_exp(m - mn) + o.s * g_exp(o.m - mn);
        } else {
            s = mn == neg_inf<T>() ? T(0) : mn;  // NaN stays NaN; +inf gives s = +inf
        }
        m = mn;
    }
    __device__ __forceinline__ MaxSum shfl_xor(int mask) const {
        MaxSum r;
        r.m = __shfl_xor_sync(GG_FULL_MASK, m, mask);
        r.s = __shfl_xor_sync(GG_FULL_MASK, s, mask);
        return r;
    }
    __device__ __forceinline__ void store(T* p) const {
        p[0] = m;
        p[1] = s;
    }
    static __device__ __forceinline__ MaxSum load(const T* p) {
        MaxSum r;
        r.m = p[0];
        r.s = p[1];
        return r;
    }
    __device__ __forceinline__ T shift() const { return finite_or_zero(m); }
};

template <typename S> __device__ __forceinline__ S warp_reduce(S st) {
#pragma unroll
    for (int mask = 16; mask > 0; mask >>= 1) st.merge(st.shfl_xor(mask));
    return st;
}

// Reduction within aligned groups of g lanes (g a power of two <= 32, uniform across the warp).
template <typename S> __device__ __forceinline__ S group_reduce(S st, int g) {
    for (int mask = g >> 1; mask > 0; mask >>= 1) st.merge(st.shfl_xor(mask));
    return st;
}

// Block-wide reduction; every thread of the block must call it and gets the same result.
// blockDim.x must be a multiple of 32 and at most 1024. Safe to call repeatedly.
template <typename S> __device__ __forceinline__ S block_reduce(S st) {
    static __shared__ S partial[33];
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

// ------------------------------------------------------------------ row passes and their layouts
//
// A row pass P is an object holding its pointers, with
//   static constexpr int NIN; const T* in[NIN];     the inputs read per element (same [rows, cols])
//   typedef ... State;                              a reduction state (above)
//   static T pad(int j);                            a value of input j that scan ignores
//   template <int K> static State scan(const T (&v)[NIN][K], int nvalid);
//                                                   the state of the first nvalid of K elements
//   static constexpr bool ELEMENTWISE;
// An elementwise pass (softmax and its backward: the output has the input's shape) also has
//   T* y; typedef ... Final; static Final finish(const State&); static T out(const T (&v)[NIN], const Final&)
// and a reduction pass (the losses: one value per row) has
//   void row_done(gg_i64 r, const State&) const     called by one thread per row.
//
// Layouts (tags; each entry point is one layout, sized for its row lengths):
//   Small     rows of <= 32 columns: aligned groups of g = next_pow2(cols) lanes, one row each,
//             32 / g rows per warp; the element stays in a register.
//   Regs<V>   one warp per row, V values per lane in registers (cols <= 32 V): one HBM read.
//   Smem      one block per row, the row(s) in dynamic shared memory: one HBM read.
//   Warp      one warp per row, streaming (reduction passes: nothing to keep).
//   Block     one block per row, streaming (reduction passes).
//   Part/Fin  a row split into chunks of `chunk` columns (nch per row), one block per chunk:
//             Part writes each chunk's state to ws[(r * nch + k) * NS]; Fin merges a row's states
//             and, for an elementwise pass, writes the chunk (one block per chunk, reading the
//             chunk again; the loader runs one Part and one Fin over all rows, Fin starting at the
//             rows Part read last, whose second read may still come from L2), or, for a reduction
//             pass, calls row_done (one warp per row).

struct Small {
    static constexpr int MAX_THREADS = GG_WARP_ROWS_THREADS;
};
template <int V> struct Regs {
    static constexpr int MAX_THREADS = GG_WARP_ROWS_THREADS;
};
struct Smem {
    static constexpr int MAX_THREADS = GG_BLOCK_ROWS_MAX_THREADS;
};
struct Warp {
    static constexpr int MAX_THREADS = GG_WARP_ROWS_THREADS;
};
struct Block {
    static constexpr int MAX_THREADS = GG_BLOCK_ROWS_MAX_THREADS;
};
struct Part {
    static constexpr int MAX_THREADS = GG_SPLIT_THREADS;
};
struct Fin {
    static constexpr int MAX_THREADS = GG_SPLIT_THREADS;
};

// v[j][k] = input j at column c0 + k * step of the row at off (padding past end); returns nvalid.
template <typename P, typename T, int K>
__device__ __forceinline__ int gather(const P& p, gg_i64 off, gg_i64 c0, gg_i64 step, gg_i64 end,
                                      T (&v)[P::NIN][K]) {
    int nvalid = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const gg_i64 c = c0 + k * step;
        const bool ok = c < end;
        nvalid += ok ? 1 : 0;
#pragma unroll
        for (int j = 0; j < P::NIN; ++j) v[j][k] = ok ? p.in[j][off + c] : P::pad(j);
    }
    return nvalid;
}

template <typename P, typename T, int K> __device__ __forceinline__ T out_at(const T (&v)[P::NIN][K], int k,
                                                                            const typename P::Final& f) {
    T e[P::NIN];
#pragma unroll
    for (int j = 0; j < P::NIN; ++j) e[j] = v[j][k];
    return P::out(e, f);
}

// State of columns c0, c0 + step, ... < end of the row at off, four elements in flight at a time.
template <typename P, typename T>
__device__ __forceinline__ typename P::State stream_scan(const P& p, gg_i64 off, gg_i64 c0, gg_i64 end, gg_i64 step) {
    typename P::State st = P::State::identity();
    for (gg_i64 c = c0; c < end; c += 4 * step) {
        T v[P::NIN][4];
        const int n = gather<P, T, 4>(p, off, c, step, end, v);
        st.merge(p.template scan<4>(v, n));
    }
    return st;
}

template <typename P, typename T> __device__ __forceinline__ void run_rows(Small, const P& p, gg_i64 rows, gg_i64 cols) {
    const int lane = threadIdx.x & 31;
    int g = 1;
    while (g < cols) g <<= 1;
    const int per_warp = 32 / g;
    const int sub = lane / g;
    const gg_i64 c = lane & (g - 1);
    const gg_i64 warp = static_cast<gg_i64>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const gg_i64 nwarps = static_cast<gg_i64>(gridDim.x) * (blockDim.x >> 5);
    for (gg_i64 base = warp * per_warp; base < rows; base += nwarps * per_warp) {
        const gg_i64 r = base + sub;
        const gg_i64 off = r * cols;
        T v[P::NIN][1];
        const int n = gather<P, T, 1>(p, off, c, 1, r < rows ? cols : 0, v);
        const typename P::State st = group_reduce(p.template scan<1>(v, n), g);
        if constexpr (P::ELEMENTWISE) {
            if (n) p.y[off + c] = out_at<P, T, 1>(v, 0, P::finish(st));
        } else {
            if (c == 0 && r < rows) p.row_done(r, st);
        }
    }
}

template <typename P, typename T, int V>
__device__ __forceinline__ void run_rows(Regs<V>, const P& p, gg_i64 rows, gg_i64 cols) {
    const WarpRows g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const gg_i64 off = r * cols;
        T v[P::NIN][V];
        const int n = gather<P, T, V>(p, off, g.lane, 32, cols, v);
        const typename P::Final f = P::finish(warp_reduce(p.template scan<V>(v, n)));
#pragma unroll
        for (int k = 0; k < V; ++k) {
            if (k < n) p.y[off + g.lane + 32 * k] = out_at<P, T, V>(v, k, f);
        }
    }
}

template <typename P, typename T> __device__ __forceinline__ void run_rows(Smem, const P& p, gg_i64 rows, gg_i64 cols) {
    constexpr int N = Vec16<T>::N;
    T* sm = reinterpret_cast<T*>(gg_dyn_smem);  // NIN rows of cols values
    const gg_i64 tid = threadIdx.x;
    const gg_i64 nt = blockDim.x;
    // 16-byte accesses when every row starts 16-byte aligned
    bool vec = (cols % N) == 0 && aligned16(p.y);
#pragma unroll
    for (int j = 0; j < P::NIN; ++j) vec = vec && aligned16(p.in[j]);
    const gg_i64 nv = cols / N;
    for (gg_i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const gg_i64 off = r * cols;
#pragma unroll
        for (int j = 0; j < P::NIN; ++j) {
            const T* src = p.in[j] + off;
            T* dst = sm + j * cols;
            if (vec) {
#pragma unroll 4
                for (gg_i64 q = tid; q < nv; q += nt) {
                    T a[N];
                    load16(src + q * N, a);
                    store16(dst + q * N, a);
                }
            } else {
#pragma unroll 4
                for (gg_i64 c = tid; c < cols; c += nt) dst[c] = src[c];
            }
        }
        __syncthreads();
        typename P::State st = P::State::identity();
        for (gg_i64 c = tid; c < cols; c += 4 * nt) {
            T v[P::NIN][4];
            int n = 0;
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const gg_i64 cc = c + k * nt;
                n += cc < cols ? 1 : 0;
#pragma unroll
                for (int j = 0; j < P::NIN; ++j) v[j][k] = cc < cols ? sm[j * cols + cc] : P::pad(j);
            }
            st.merge(p.template scan<4>(v, n));
        }
        const typename P::Final f = P::finish(block_reduce(st));
        if (vec) {
            for (gg_i64 q = tid; q < nv; q += nt) {
                T v[P::NIN][N];
#pragma unroll
                for (int j = 0; j < P::NIN; ++j) load16(sm + j * cols + q * N, v[j]);
                T o[N];
#pragma unroll
                for (int k = 0; k < N; ++k) o[k] = out_at<P, T, N>(v, k, f);
                store16(p.y + off + q * N, o);
            }
        } else {
            for (gg_i64 c = tid; c < cols; c += nt) {
                T v[P::NIN][1];
#pragma unroll
                for (int j = 0; j < P::NIN; ++j) v[j][0] = sm[j * cols + c];
                p.y[off + c] = out_at<P, T, 1>(v, 0, f);
            }
        }
        __syncthreads();  // the next row overwrites sm
    }
}

template <typename P, typename T, typename G> __device__ __forceinline__ void run_stream(const P& p, gg_i64 rows,
                                                                                         gg_i64 cols) {
    const G g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const typename P::State st = g.reduce(stream_scan<P, T>(p, r * cols, g.lane, cols, g.width));
        if (g.lane == 0) p.row_done(r, st);
    }
}
template <typename P, typename T> __device__ __forceinline__ void run_rows(Warp, const P& p, gg_i64 rows, gg_i64 cols) {
    run_stream<P, T, WarpRows>(p, rows, cols);
}
template <typename P, typename T> __device__ __forceinline__ void run_rows(Block, const P& p, gg_i64 rows, gg_i64 cols) {
    run_stream<P, T, BlockRows>(p, rows, cols);
}

// A split row: item i of [0, rows * nch) is chunk i % nch of row (i / nch + first) mod rows, so a
// launch may start at any row (`first`) and wrap; ws holds the states of row r at (r * nch + k).
__device__ __forceinline__ gg_i64 split_row(gg_i64 i, gg_i64 nch, gg_i64 rows, gg_i64 first) {
    const gg_i64 r = i / nch + first;
    return r < rows ? r : r - rows;
}

template <typename P, typename T>
__device__ __forceinline__ void run_split(Part, const P& p, T* __restrict__ ws, gg_i64 rows, gg_i64 cols,
                                          gg_i64 chunk, gg_i64 nch, gg_i64 first = 0) {
    for (gg_i64 i = blockIdx.x; i < rows * nch; i += gridDim.x) {
        const gg_i64 r = split_row(i, nch, rows, first);
        const gg_i64 k = i % nch;
        const gg_i64 c0 = k * chunk;
        const gg_i64 c1 = c0 + chunk < cols ? c0 + chunk : cols;
        const typename P::State st = block_reduce(stream_scan<P, T>(p, r * cols, c0 + threadIdx.x, c1, blockDim.x));
        if (threadIdx.x == 0) st.store(ws + (r * nch + k) * P::State::NS);
    }
}

// Merge of the nch partial states of row r by a group of `width` threads (lane `lane`).
template <typename P, typename T>
__device__ __forceinline__ typename P::State merge_parts(const T* __restrict__ ws, gg_i64 r, gg_i64 nch, gg_i64 lane,
                                                         gg_i64 width) {
    typename P::State st = P::State::identity();
    for (gg_i64 k = lane; k < nch; k += width) st.merge(P::State::load(ws + (r * nch + k) * P::State::NS));
    return st;
}

template <typename P, typename T>
__device__ __forceinline__ void run_split(Fin, const P& p, const T* __restrict__ ws, gg_i64 rows, gg_i64 cols,
                                          gg_i64 chunk, gg_i64 nch, gg_i64 first = 0) {
    if constexpr (P::ELEMENTWISE) {
        for (gg_i64 i = blockIdx.x; i < rows * nch; i += gridDim.x) {
            const gg_i64 r = split_row(i, nch, rows, first);
            const gg_i64 c0 = (i % nch) * chunk;
            const gg_i64 c1 = c0 + chunk < cols ? c0 + chunk : cols;
            const typename P::Final f = P::finish(block_reduce(merge_parts<P, T>(ws, r, nch, threadIdx.x, blockDim.x)));
            const gg_i64 off = r * cols;
            for (gg_i64 c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
                T v[P::NIN][1];
#pragma unroll
                for (int j = 0; j < P::NIN; ++j) v[j][0] = p.in[j][off + c];
                p.y[off + c] = out_at<P, T, 1>(v, 0, f);
            }
        }
    } else {
        const WarpRows g;
        for (gg_i64 r = g.first; r < rows; r += g.step) {
            const typename P::State st = warp_reduce(merge_parts<P, T>(ws, r, nch, g.lane, 32));
            if (g.lane == 0) p.row_done(r, st);
        }
    }
}

}  // namespace gg

#endif  // GPUGRAD_COMMON_CUH
