// Softmax and log-softmax over the last axis of a contiguous [rows, cols] buffer.
//
//   softmax:      y = exp(x - m) / S,        m = max(x) where finite, else 0;  S = sum exp(x - m)
//   log-softmax:  y = (x - m) - log(S)
//   backward (y is the forward output):
//     softmax:      gx = y * (gy - sum(gy * y))
//     log-softmax:  gx = gy - exp(y) * sum(gy)
//
// These are the formulas of the NumPy path, shift included, so NaN and +-inf give its results: a
// NaN anywhere in a row makes the whole row NaN; a row of -inf is NaN (0 / 0); a +inf gives NaN at
// the +inf (and where exp overflows) and 0 elsewhere. m and S come from the online normalizer
// (common.cuh, MaxSum), so each layout reads a row once for both.
//
// Each operation has one entry per layout (see "row passes and their layouts" in common.cuh):
//   <op>_small_<t>      cols <= 32, several rows per warp
//   <op>_regs<N>_<t>    32 < cols <= N (N = 64 ... 1024), one warp per row held in registers
//   <op>_smem_<t>       one block per row held in dynamic shared memory (NIN * cols values)
//   <op>_part_<t>, <op>_fin_<t>   a row split across blocks, for rows longer than shared memory
//                       holds and for fewer rows than multiprocessors; one launch of each over all
//                       rows, starting at row `first` (Fin starts at the rows Part read last)
// so a row is read from HBM once per pass, and each kernel is compiled for its own row length.
#include "common.cuh"

namespace gg {

template <typename T, bool LOG> struct SoftmaxFwd {
    static constexpr int NIN = 1;
    static constexpr bool ELEMENTWISE = true;
    typedef MaxSum<T> State;
    struct Final {
        T m;  // the shift
        T a;  // 1 / S (softmax) or log(S) (log-softmax)
    };
    const T* in[1];
    T* y;
    static __device__ __forceinline__ T pad(int) { return neg_inf<T>(); }
    template <int K> static __device__ __forceinline__ State scan(const T (&v)[1][K], int n) {
        return State::of(v[0], n);
    }
    static __device__ __forceinline__ Final finish(const State& st) {
        Final f;
        f.m = st.shift();
        f.a = LOG ? g_log(st.s) : T(1) / st.s;
        return f;
    }
    static __device__ __forceinline__ T out(const T (&v)[1], const Final& f) {
        return LOG ? (v[0] - f.m) - f.a : g_exp(v[0] - f.m) * f.a;
    }
};

template <typename T, bool LOG> struct SoftmaxBwd {
    static constexpr int NIN = 2;  // y, gy
    static constexpr bool ELEMENTWISE = true;
    typedef SumState<T> State;
    typedef T Final;  // sum(gy * y) (softmax) or sum(gy) (log-softmax)
    const T* in[2];
    T* y;
    static __device__ __forceinline__ T pad(int) { return T(0); }
    template <int K> static __device__ __forceinline__ State scan(const T (&v)[2][K], int n) {
        State st = State::identity();
#pragma unroll
        for (int k = 0; k < K; ++k) {
            if (k < n) st.v += LOG ? v[1][k] : v[1][k] * v[0][k];
        }
        return st;
    }
    static __device__ __forceinline__ Final finish(const State& st) { return st.v; }
    static __device__ __forceinline__ T out(const T (&v)[2], const Final& tot) {
        return LOG ? v[1] - g_exp(v[0]) * tot : v[0] * (v[1] - tot);
    }
};

}  // namespace gg

#define GG_SOFTMAX_FWD(NAME, T, LOG, L)                                                                \
    extern "C" __global__ void __launch_bounds__(L::MAX_THREADS)                                      \
        NAME(const T* __restrict__ x, T* __restrict__ y, gg_i64 rows, gg_i64 cols) {                 \
        gg::SoftmaxFwd<T, LOG> p;                                                                      \
        p.in[0] = x;                                                                                   \
        p.y = y;                                                                                       \
        gg::run_rows<gg::SoftmaxFwd<T, LOG>, T>(L(), p, rows, cols);                                  \
    }
#define GG_SOFTMAX_FWD_SPLIT(NAME, T, LOG, L)                                                          \
    extern "C" __global__ void __launch_bounds__(L::MAX_THREADS) NAME(                                \
        const T* __restrict__ x, T* __restrict__ y, T* __restrict__ ws, gg_i64 rows, gg_i64 cols,      \
        gg_i64 chunk, gg_i64 nch, gg_i64 first) {                                                      \
        gg::SoftmaxFwd<T, LOG> p;                                                                      \
        p.in[0] = x;                                                                                   \
        p.y = y;                                                                                       \
        gg::run_split<gg::SoftmaxFwd<T, LOG>, T>(L(), p, ws, rows, cols, chunk, nch, first);          \
    }
#define GG_SOFTMAX_BWD(NAME, T, LOG, L)                                                                \
    extern "C" __global__ void __launch_bounds__(L::MAX_THREADS) NAME(                                \
        const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx, gg_i64 rows, gg_i64 cols) { \
        gg::SoftmaxBwd<T, LOG> p;                                                                      \
        p.in[0] = y;                                                                                   \
        p.in[1] = gy;                                                                                  \
        p.y = gx;                                                                                      \
        gg::run_rows<gg::SoftmaxBwd<T, LOG>, T>(L(), p, rows, cols);                                  \
    }
#define GG_SOFTMAX_BWD_SPLIT(NAME, T, LOG, L)                                                          \
    extern "C" __global__ void __launch_bounds__(L::MAX_THREADS) NAME(                                \
        const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx, T* __restrict__ ws,     \
        gg_i64 rows, gg_i64 cols, gg_i64 chunk, gg_i64 nch, gg_i64 first) {                            \
        gg::SoftmaxBwd<T, LOG> p;                                                                      \
        p.in[0] = y;                                                                                   \
        p.in[1] = gy;                                                                                  \
        p.y = gx;                                                                                      \
        gg::run_split<gg::SoftmaxBwd<T, LOG>, T>(L(), p, ws, rows, cols, chunk, nch, first);          \
    }

// One entry per (operation, layout, dtype), spelled out in full for the loader's list.
GG_SOFTMAX_FWD(softmax_fwd_small_f32, float, false, gg::Small)
GG_SOFTMAX_FWD(softmax_fwd_regs64_f32, float, false, gg::Regs<2>)
GG_SOFTMAX_FWD(softmax_fwd_regs128_f32, float, false, gg::Regs<4>)
GG_SOFTMAX_FWD(softmax_fwd_regs256_f32, float, false, gg::Regs<8>)
GG_SOFTMAX_FWD(softmax_fwd_regs512_f32, float, false, gg::Regs<16>)
GG_SOFTMAX_FWD(softmax_fwd_regs1024_f32, float, false, gg::Regs<32>)
GG_SOFTMAX_FWD(softmax_fwd_smem_f32, float, false, gg::Smem)
GG_SOFTMAX_FWD_SPLIT(softmax_fwd_part_f32, float, false, gg::Part)
GG_SOFTMAX_FWD_SPLIT(softmax_fwd_fin_f32, float, false, gg::Fin)
GG_SOFTMAX_FWD(softmax_fwd_small_f64, double, false, gg::Small)
GG_SOFTMAX_FWD(softmax_fwd_regs64_f64, double, false, gg::Regs<2>)
GG_SOFTMAX_FWD(softmax_fwd_regs128_f64, double, false, gg::Regs<4>)
GG_SOFTMAX_FWD(softmax_fwd_regs256_f64, double, false, gg::Regs<8>)
GG_SOFTMAX_FWD(softmax_fwd_regs512_f64, double, false, gg::Regs<16>)
GG_SOFTMAX_FWD(softmax_fwd_regs1024_f64, double, false, gg::Regs<32>)
GG_SOFTMAX_FWD(softmax_fwd_smem_f64, double, false, gg::Smem)
GG_SOFTMAX_FWD_SPLIT(softmax_fwd_part_f64, double, false, gg::Part)
GG_SOFTMAX_FWD_SPLIT(softmax_fwd_fin_f64, double, false, gg::Fin)

GG_SOFTMAX_FWD(log_softmax_fwd_small_f32, float, true, gg::Small)
GG_SOFTMAX_FWD(log_softmax_fwd_regs64_f32, float, true, gg::Regs<2>)
GG_SOFTMAX_FWD(log_softmax_fwd_regs128_f32, float, true, gg::Regs<4>)
GG_SOFTMAX_FWD(log_softmax_fwd_regs256_f32, float, true, gg::Regs<8>)
GG_SOFTMAX_FWD(log_softmax_fwd_regs512_f32, float, true, gg::Regs<16>)
GG_SOFTMAX_FWD(log_softmax_fwd_regs1024_f32, float, true, gg::Regs<32>)
GG_SOFTMAX_FWD(log_softmax_fwd_smem_f32, float, true, gg::Smem)
GG_SOFTMAX_FWD_SPLIT(log_softmax_fwd_part_f32, float, true, gg::Part)
GG_SOFTMAX_FWD_SPLIT(log_softmax_fwd_fin_f32, float, true, gg::Fin)
GG_SOFTMAX_FWD(log_softmax_fwd_small_f64, double, true, gg::Small)
GG_SOFTMAX_FWD(log_softmax_fwd_regs64_f64, double, true, gg::Regs<2>)
GG_SOFTMAX_FWD(log_softmax_fwd_regs128_f64, double, true, gg::Regs<4>)
GG_SOFTMAX_FWD(log_softmax_fwd_regs256_f64, double, true, gg::Regs<8>)
GG_SOFTMAX_FWD(log_softmax_fwd_regs512_f64, double, true, gg::Regs<16>)
GG_SOFTMAX_FWD(log_softmax_fwd_regs1024_f64, double, true, gg::Regs<32>)
GG_SOFTMAX_FWD(log_softmax_fwd_smem_f64, double, true, gg::Smem)
GG_SOFTMAX_FWD_SPLIT(log_softmax_fwd_part_f64, double, true, gg::Part)
GG_SOFTMAX_FWD_SPLIT(log_softmax_fwd_fin_f64, double, true, gg::Fin)

GG_SOFTMAX_BWD(softmax_bwd_small_f32, float, false, gg::Small)
GG_SOFTMAX_BWD(softmax_bwd_regs64_f32, float, false, gg::Regs<2>)
GG_SOFTMAX_BWD(softmax_bwd_regs128_f32, float, false, gg::Regs<4>)
GG_SOFTMAX_BWD(softmax_bwd_regs256_f32, float, false, gg::Regs<8>)
GG_SOFTMAX_BWD(softmax_bwd_regs512_f32, float, false, gg::Regs<16>)
GG_SOFTMAX_BWD(softmax_bwd_regs1024_f32, float, false, gg::Regs<32>)
GG_SOFTMAX_BWD(softmax_bwd_smem_f32, float, false, gg::Smem)
GG_SOFTMAX_BWD_SPLIT(softmax_bwd_part_f32, float, false, gg::Part)
GG_SOFTMAX_BWD_SPLIT(softmax_bwd_fin_f32, float, false, gg::Fin)
GG_SOFTMAX_BWD(softmax_bwd_small_f64, double, false, gg::Small)
GG_SOFTMAX_BWD(softmax_bwd_regs64_f64, double, false, gg::Regs<2>)
GG_SOFTMAX_BWD(softmax_bwd_regs128_f64, double, false, gg::Regs<4>)
GG_SOFTMAX_BWD(softmax_bwd_regs256_f64, double, false, gg::Regs<8>)
GG_SOFTMAX_BWD(softmax_bwd_regs512_f64, double, false, gg::Regs<16>)
GG_SOFTMAX_BWD(softmax_bwd_regs1024_f64, double, false, gg::Regs<32>)
GG_SOFTMAX_BWD(softmax_bwd_smem_f64, double, false, gg::Smem)
GG_SOFTMAX_BWD_SPLIT(softmax_bwd_part_f64, double, false, gg::Part)
GG_SOFTMAX_BWD_SPLIT(softmax_bwd_fin_f64, double, false, gg::Fin)

GG_SOFTMAX_BWD(log_softmax_bwd_small_f32, float, true, gg::Small)
GG_SOFTMAX_BWD(log_softmax_bwd_regs64_f32, float, true, gg::Regs<2>)
GG_SOFTMAX_BWD(log_softmax_bwd_regs128_f32, float, true, gg::Regs<4>)
GG_SOFTMAX_BWD(log_softmax_bwd_regs256_f32, float, true, gg::Regs<8>)
GG_SOFTMAX_BWD(log_softmax_bwd_regs512_f32, float, true, gg::Regs<16>)
GG_SOFTMAX_BWD(log_softmax_bwd_regs1024_f32, float, true, gg::Regs<32>)
GG_SOFTMAX_BWD(log_softmax_bwd_smem_f32, float, true, gg::Smem)
GG_SOFTMAX_BWD_SPLIT(log_softmax_bwd_part_f32, float, true, gg::Part)
GG_SOFTMAX_BWD_SPLIT(log_softmax_bwd_fin_f32, float, true, gg::Fin)
GG_SOFTMAX_BWD(log_softmax_bwd_small_f64, double, true, gg::Small)
GG_SOFTMAX_BWD(log_softmax_bwd_regs64_f64, double, true, gg::Regs<2>)
GG_SOFTMAX_BWD(log_softmax_bwd_regs128_f64, double, true, gg::Regs<4>)
GG_SOFTMAX_BWD(log_softmax_bwd_regs256_f64, double, true, gg::Regs<8>)
GG_SOFTMAX_BWD(log_softmax_bwd_regs512_f64, double, true, gg::Regs<16>)
GG_SOFTMAX_BWD(log_softmax_bwd_regs1024_f64, double, true, gg::Regs<32>)
GG_SOFTMAX_BWD(log_softmax_bwd_smem_f64, double, true, gg::Smem)
GG_SOFTMAX_BWD_SPLIT(log_softmax_bwd_part_f64, double, true, gg::Part)
GG_SOFTMAX_BWD_SPLIT(log_softmax_bwd_fin_f64, double, true, gg::Fin)
