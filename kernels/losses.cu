// Per-row losses over the last axis of contiguous [rows, cols] buffers (C = cols), and their
// gradients given a per-row upstream gradient g[rows]. The reduction over rows is the caller's.
//
//   mse:         loss = mean_c (p - t)^2                  dp = 2 (p - t) / C * g
//   bce:         pc = clip(p, eps, 1 - eps)
//                loss = mean_c -(t log pc + (1 - t) log(1 - pc))
//                dp = g / C * (pc - t) / (pc (1 - pc)) where eps < p < 1 - eps, else 0
//   bce logits:  loss = mean_c max(z, 0) - z t + log1p(exp(-|z|))
//                dz = g / C * (sigmoid(z) - t)
//   softmax CE, dense target t:
//                lse = log sum_c exp(z), S = sum_c t
//                loss = sum_c t (lse - z) = lse S - sum_c t z
//                dz = g * (exp(z - lse) S - t)
//   softmax CE, sparse label l:
//                loss = lse - z[l]            dz = g * (exp(z - lse) - [c == l])
//
// The saved lse is rounded to the input dtype: in float32 a row with logits near 1e4 has lse off
// by up to half an ulp of 1e4 (5e-4), which would scale every exp(z - lse) by up to 5e-4. The
// backward kernels therefore sum P = sum_c exp(z - lse) first (P = 1 up to that rounding) and use
// exp(z - lse) / P: one more read of the row, which mostly hits L2, for softmax-exact gradients.
//
// Row reductions come as *_warp (one warp per row, for cols <= 1024, GG_WARP_ROWS_THREADS per
// block) and *_block (one block per row, a multiple of 32 threads up to GG_BLOCK_ROWS_MAX_THREADS).
// The elementwise gradients (mse_bwd, bce_bwd, bce_logits_bwd) run with GG_EW_THREADS per block. All are grid-stride; cols >= 1; outputs must not overlap inputs.
#include "common.cuh"

namespace gg {

// ------------------------------------------------------------------ per-row means

template <typename G, typename T, typename F>
__device__ __forceinline__ void row_means(T* __restrict__ out, gg_i64 rows, gg_i64 cols, F term) {
    const G g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const gg_i64 off = r * cols;
        SumState<T> part;
        part.v = strided_sum<T>(g.lane, cols, g.width, [&](gg_i64 c) { return term(off + c); });
        const T total = g.reduce(part).v;
        if (g.lane == 0) out[r] = total / T(cols);
    }
}

// clip(p, eps, 1 - eps), NaN passing through
template <typename T> __device__ __forceinline__ T clip_prob(T p, T eps, T hi) {
    return p < eps ? eps : (p > hi ? hi : p);
}

template <typename G, typename T>
__device__ __forceinline__ void mse_fwd(const T* __restrict__ t, const T* __restrict__ p, T* __restrict__ loss,
                                        gg_i64 rows, gg_i64 cols) {
    row_means<G, T>(loss, rows, cols, [&](gg_i64 i) {
        const T d = p[i] - t[i];
        return d * d;
    });
}

template <typename G, typename T>
__device__ __forceinline__ void bce_fwd(const T* __restrict__ t, const T* __restrict__ p, T* __restrict__ loss,
                                        gg_i64 rows, gg_i64 cols, T eps) {
    const T hi = T(1) - eps;
    row_means<G, T>(loss, rows, cols, [&](gg_i64 i) {
        const T pc = clip_prob(p[i], eps, hi);
        const T tv = t[i];
        return -(tv * g_log(pc) + (T(1) - tv) * g_log1p(-pc));
    });
}

template <typename G, typename T>
__device__ __forceinline__ void bce_logits_fwd(const T* __restrict__ t, const T* __restrict__ z,
                                               T* __restrict__ loss, gg_i64 rows, gg_i64 cols) {
    row_means<G, T>(loss, rows, cols, [&](gg_i64 i) {
        // softplus(z) - z t = w z + log1p(e^{-|z|}), w = 1 - t for z >= 0 and -t below: a zero
        // weight adds 0 even at z = +-inf (no inf - inf, no 0 * inf)
        const T zv = z[i];
        const T w = zv >= T(0) ? T(1) - t[i] : -t[i];
        return (w != T(0) ? w * zv : T(0)) + g_log1p(g_exp(-g_abs(zv)));
    });
}

// ------------------------------------------------------------------ elementwise gradients

template <typename T>
__device__ __forceinline__ void mse_bwd(const T* t, const T* p, const T* __restrict__ g, T* dp, gg_i64 rows,
                                        gg_i64 cols) {
    const T* in[2] = {t, p};
    T* out[1] = {dp};
    const T two_over_c = T(2) / T(cols);
    ew_map<T, 2, 1, true>(in, out, rows * cols, cols, [&](gg_i64 r, gg_i64, const T (&a)[2], T (&o)[1]) {
        o[0] = (a[1] - a[0]) * (two_over_c * g[r]);
    });
}

template <typename T>
__device__ __forceinline__ void bce_bwd(const T* t, const T* p, const T* __restrict__ g, T* dp, gg_i64 rows,
                                        gg_i64 cols, T eps) {
    const T* in[2] = {t, p};
    T* out[1] = {dp};
    const T hi = T(1) - eps;
    const T inv_c = T(1) / T(cols);
    ew_map<T, 2, 1, true>(in, out, rows * cols, cols, [&](gg_i64 r, gg_i64, const T (&a)[2], T (&o)[1]) {
        const T pv = a[1];
        // written so that a NaN p gives NaN, not 0
        o[0] = (pv <= eps || pv >= hi) ? T(0) : (g[r] * inv_c) * (pv - a[0]) / (pv * (T(1) - pv));
    });
}

template <typename T>
__device__ __forceinline__ void bce_logits_bwd(const T* t, const T* z, const T* __restrict__ g, T* dz, gg_i64 rows,
                                               gg_i64 cols) {
    const T* in[2] = {t, z};
    T* out[1] = {dz};
    const T inv_c = T(1) / T(cols);
    ew_map<T, 2, 1, true>(in, out, rows * cols, cols, [&](gg_i64 r, gg_i64, const T (&a)[2], T (&o)[1]) {
        o[0] = (g[r] * inv_c) * (sigmoid(a[1]) - a[0]);
    });
}

// ------------------------------------------------------------------ softmax cross-entropy, dense

// Online state for a row of (z, t): m, s as in MaxSumState; ts = sum t; a = sum t (m - z) over
// the terms with t != 0 (so a zero target on a -inf logit adds nothing instead of NaN). When the
// running max moves from m to m', a grows by ts (m' - m). At the end loss = a + ts log(s): a sum of
// non-negative terms, without the cancellation of lse S - sum t z for large logits.
template <typename T> struct CEState {
    T m;
    T s;
    T ts;
    T a;
    static __device__ __forceinline__ CEState identity() {
        CEState r;
        r.m = neg_inf<T>();
        r.s = T(0);
        r.ts = T(0);
        r.a = T(0);
        return r;
    }
    static __device__ __forceinline__ T shift(T ts, T m_from, T m_to) {
        return ts != T(0) ? ts * (m_to - m_from) : T(0);
    }
    __device__ __forceinline__ void merge(const CEState& o) {
        const T mn = g_max(m, o.m);
        s = s * exp_sub(m, mn) + o.s * exp_sub(o.m, mn);
        a = (a + shift(ts, m, mn)) + (o.a + shift(o.ts, o.m, mn));
        ts = ts + o.ts;
        m = mn;
    }
    template <int K> __device__ __forceinline__ void update(const T (&z)[K], const T (&t)[K]) {
        T mn = m;
#pragma unroll
        for (int k = 0; k < K; ++k) mn = g_max(mn, z[k]);
        T acc = s * exp_sub(m, mn);
        T add = shift(ts, m, mn);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            acc += exp_sub(z[k], mn);
            add += t[k] != T(0) ? t[k] * (mn - z[k]) : T(0);
            ts += t[k];
        }
        a += add;
        s = acc;
        m = mn;
    }
    __device__ __forceinline__ CEState shfl_xor(int mask) const {
        CEState r;
        r.m = __shfl_xor_sync(GG_FULL_MASK, m, mask);
        r.s = __shfl_xor_sync(GG_FULL_MASK, s, mask);
        r.ts = __shfl_xor_sync(GG_FULL_MASK, ts, mask);
        r.a = __shfl_xor_sync(GG_FULL_MASK, a, mask);
        return r;
    }
};

template <typename G, typename T>
__device__ __forceinline__ void softmax_ce_fwd(const T* __restrict__ z, const T* __restrict__ t,
                                               T* __restrict__ loss, T* __restrict__ lse, gg_i64 rows, gg_i64 cols) {
    const G g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const T* zr = z + r * cols;
        const T* tr = t + r * cols;
        CEState<T> st = CEState<T>::identity();
        const gg_i64 step = g.width;
        gg_i64 c = g.lane;
        for (; c + 3 * step < cols; c += 4 * step) {
            const T zv[4] = {zr[c], zr[c + step], zr[c + 2 * step], zr[c + 3 * step]};
            const T tv[4] = {tr[c], tr[c + step], tr[c + 2 * step], tr[c + 3 * step]};
            st.update(zv, tv);
        }
        for (; c < cols; c += step) {
            const T zv[1] = {zr[c]};
            const T tv[1] = {tr[c]};
            st.update(zv, tv);
        }
        st = g.reduce(st);
        if (g.lane == 0) {
            const T log_s = g_log(st.s);
            lse[r] = st.m + log_s;
            loss[r] = st.a + (st.ts != T(0) ? st.ts * log_s : T(0));
        }
    }
}

template <typename G, typename T>
__device__ __forceinline__ void softmax_ce_bwd(const T* __restrict__ z, const T* __restrict__ lse,
                                               const T* __restrict__ t, const T* __restrict__ g_row,
                                               T* __restrict__ dz, gg_i64 rows, gg_i64 cols) {
    const G g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const gg_i64 off = r * cols;
        const T* zr = z + off;
        const T* tr = t + off;
        T* out = dz + off;
        const T l = lse[r];
        // pass 1: S = sum t and P = sum exp(z - lse)
        Sum2State<T> part;
        part.a = strided_sum<T>(g.lane, cols, g.width, [&](gg_i64 c) { return tr[c]; });
        part.b = strided_sum<T>(g.lane, cols, g.width, [&](gg_i64 c) { return g_exp(zr[c] - l); });
        part = g.reduce(part);
        const T scale = part.a / part.b;
        const T gr = g_row[r];
        strided_map(
            g.lane, cols, g.width,
            [&](gg_i64 c) {
                Pair<T> v;
                v.a = zr[c];
                v.b = tr[c];
                return v;
            },
            [&](gg_i64 c, Pair<T> v) { out[c] = gr * (g_exp(v.a - l) * scale - v.b); });
    }
}

// ------------------------------------------------------------------ softmax cross-entropy, sparse

template <typename G, typename T>
__device__ __forceinline__ void softmax_ce_sparse_fwd(const T* __restrict__ z, const gg_i64* __restrict__ labels,
                                                      T* __restrict__ loss, T* __restrict__ lse, gg_i64 rows,
                                                      gg_i64 cols) {
    const G g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const T* zr = z + r * cols;
        const MaxSumState<T> st = g.reduce(strided_max_sum(zr, g.lane, cols, g.width));
        if (g.lane == 0) {
            const gg_i64 l = labels[r];
            const T log_s = g_log(st.s);
            lse[r] = st.m + log_s;
            // the caller validates labels; an out-of-range one gives NaN rather than a stray read
            const T z_l = (l >= 0 && l < cols) ? zr[l] : quiet_nan<T>();
            loss[r] = (st.m - z_l) + log_s;
        }
    }
}

template <typename G, typename T>
__device__ __forceinline__ void softmax_ce_sparse_bwd(const T* __restrict__ z, const T* __restrict__ lse,
                                                      const gg_i64* __restrict__ labels, const T* __restrict__ g_row,
                                                      T* __restrict__ dz, gg_i64 rows, gg_i64 cols) {
    const G g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const gg_i64 off = r * cols;
        const T* zr = z + off;
        T* out = dz + off;
        const T l = lse[r];
        SumState<T> part;
        part.v = strided_sum<T>(g.lane, cols, g.width, [&](gg_i64 c) { return g_exp(zr[c] - l); });
        const T inv = T(1) / g.reduce(part).v;
        const T gr = g_row[r];
        const gg_i64 label = labels[r];
        strided_map(
            g.lane, cols, g.width, [&](gg_i64 c) { return zr[c]; },
            [&](gg_i64 c, T v) { out[c] = gr * (g_exp(v - l) * inv - (c == label ? T(1) : T(0))); });
    }
}

}  // namespace gg

#define GG_WARP_KERNEL __global__ void __launch_bounds__(GG_WARP_ROWS_THREADS)
#define GG_BLOCK_KERNEL __global__ void __launch_bounds__(GG_BLOCK_ROWS_MAX_THREADS)
#define GG_EW __global__ void __launch_bounds__(GG_EW_THREADS)

// ------------------------------------------------------------------ entries

#define GG_PAIR_ROW_FWD(NAME, KIND, G, T, IMPL)                                                     \
    extern "C" KIND NAME(const T* __restrict__ t, const T* __restrict__ x, T* __restrict__ loss, gg_i64 rows, \
                         gg_i64 cols) {                                                             \
        gg::IMPL<G, T>(t, x, loss, rows, cols);                                                     \
    }
#define GG_BCE_FWD(NAME, KIND, G, T)                                                               \
    extern "C" KIND NAME(const T* __restrict__ t, const T* __restrict__ p, T* __restrict__ loss, gg_i64 rows, \
                         gg_i64 cols, T eps) {                                                     \
        gg::bce_fwd<G, T>(t, p, loss, rows, cols, eps);                                            \
    }
#define GG_PAIR_BWD(NAME, T, IMPL)                                                                  \
    extern "C" GG_EW NAME(const T* __restrict__ t, const T* __restrict__ x, const T* __restrict__ g, \
                          T* __restrict__ dx, gg_i64 rows, gg_i64 cols) {                           \
        gg::IMPL<T>(t, x, g, dx, rows, cols);                                                       \
    }
#define GG_BCE_BWD(NAME, T)                                                                         \
    extern "C" GG_EW NAME(const T* __restrict__ t, const T* __restrict__ p, const T* __restrict__ g, \
                          T* __restrict__ dp, gg_i64 rows, gg_i64 cols, T eps) {                    \
        gg::bce_bwd<T>(t, p, g, dp, rows, cols, eps);                                               \
    }
#define GG_CE_FWD(NAME, KIND, G, T)                                                                 \
    extern "C" KIND NAME(const T* __restrict__ z, const T* __restrict__ t, T* __restrict__ loss,    \
                         T* __restrict__ lse, gg_i64 rows, gg_i64 cols) {                           \
        gg::softmax_ce_fwd<G, T>(z, t, loss, lse, rows, cols);                                      \
    }
#define GG_CE_BWD(NAME, KIND, G, T)                                                                 \
    extern "C" KIND NAME(const T* __restrict__ z, const T* __restrict__ lse, const T* __restrict__ t, \
                         const T* __restrict__ g, T* __restrict__ dz, gg_i64 rows, gg_i64 cols) {   \
        gg::softmax_ce_bwd<G, T>(z, lse, t, g, dz, rows, cols);                                     \
    }
#define GG_CE_SPARSE_FWD(NAME, KIND, G, T)                                                          \
    extern "C" KIND NAME(const T* __restrict__ z, const gg_i64* __restrict__ labels, T* __restrict__ loss, \
                         T* __restrict__ lse, gg_i64 rows, gg_i64 cols) {                           \
        gg::softmax_ce_sparse_fwd<G, T>(z, labels, loss, lse, rows, cols);                          \
    }
#define GG_CE_SPARSE_BWD(NAME, KIND, G, T)                                                          \
    extern "C" KIND NAME(const T* __restrict__ z, const T* __restrict__ lse, const gg_i64* __restrict__ labels, \
                         const T* __restrict__ g, T* __restrict__ dz, gg_i64 rows, gg_i64 cols) {   \
        gg::softmax_ce_sparse_bwd<G, T>(z, lse, labels, g, dz, rows, cols);                         \
    }

GG_PAIR_ROW_FWD(mse_fwd_warp_f32, GG_WARP_KERNEL, gg::WarpRows, float, mse_fwd)
GG_PAIR_ROW_FWD(mse_fwd_warp_f64, GG_WARP_KERNEL, gg::WarpRows, double, mse_fwd)
GG_PAIR_ROW_FWD(mse_fwd_block_f32, GG_BLOCK_KERNEL, gg::BlockRows, float, mse_fwd)
GG_PAIR_ROW_FWD(mse_fwd_block_f64, GG_BLOCK_KERNEL, gg::BlockRows, double, mse_fwd)
GG_PAIR_BWD(mse_bwd_f32, float, mse_bwd)
GG_PAIR_BWD(mse_bwd_f64, double, mse_bwd)

GG_BCE_FWD(bce_fwd_warp_f32, GG_WARP_KERNEL, gg::WarpRows, float)
GG_BCE_FWD(bce_fwd_warp_f64, GG_WARP_KERNEL, gg::WarpRows, double)
GG_BCE_FWD(bce_fwd_block_f32, GG_BLOCK_KERNEL, gg::BlockRows, float)
GG_BCE_FWD(bce_fwd_block_f64, GG_BLOCK_KERNEL, gg::BlockRows, double)
GG_BCE_BWD(bce_bwd_f32, float)
GG_BCE_BWD(bce_bwd_f64, double)

GG_PAIR_ROW_FWD(bce_logits_fwd_warp_f32, GG_WARP_KERNEL, gg::WarpRows, float, bce_logits_fwd)
GG_PAIR_ROW_FWD(bce_logits_fwd_warp_f64, GG_WARP_KERNEL, gg::WarpRows, double, bce_logits_fwd)
GG_PAIR_ROW_FWD(bce_logits_fwd_block_f32, GG_BLOCK_KERNEL, gg::BlockRows, float, bce_logits_fwd)
GG_PAIR_ROW_FWD(bce_logits_fwd_block_f64, GG_BLOCK_KERNEL, gg::BlockRows, double, bce_logits_fwd)
GG_PAIR_BWD(bce_logits_bwd_f32, float, bce_logits_bwd)
GG_PAIR_BWD(bce_logits_bwd_f64, double, bce_logits_bwd)

GG_CE_FWD(softmax_ce_fwd_warp_f32, GG_WARP_KERNEL, gg::WarpRows, float)
GG_CE_FWD(softmax_ce_fwd_warp_f64, GG_WARP_KERNEL, gg::WarpRows, double)
GG_CE_FWD(softmax_ce_fwd_block_f32, GG_BLOCK_KERNEL, gg::BlockRows, float)
GG_CE_FWD(softmax_ce_fwd_block_f64, GG_BLOCK_KERNEL, gg::BlockRows, double)
GG_CE_BWD(softmax_ce_bwd_warp_f32, GG_WARP_KERNEL, gg::WarpRows, float)
GG_CE_BWD(softmax_ce_bwd_warp_f64, GG_WARP_KERNEL, gg::WarpRows, double)
GG_CE_BWD(softmax_ce_bwd_block_f32, GG_BLOCK_KERNEL, gg::BlockRows, float)
GG_CE_BWD(softmax_ce_bwd_block_f64, GG_BLOCK_KERNEL, gg::BlockRows, double)

GG_CE_SPARSE_FWD(softmax_ce_sparse_fwd_warp_f32, GG_WARP_KERNEL, gg::WarpRows, float)
GG_CE_SPARSE_FWD(softmax_ce_sparse_fwd_warp_f64, GG_WARP_KERNEL, gg::WarpRows, double)
GG_CE_SPARSE_FWD(softmax_ce_sparse_fwd_block_f32, GG_BLOCK_KERNEL, gg::BlockRows, float)
GG_CE_SPARSE_FWD(softmax_ce_sparse_fwd_block_f64, GG_BLOCK_KERNEL, gg::BlockRows, double)
GG_CE_SPARSE_BWD(softmax_ce_sparse_bwd_warp_f32, GG_WARP_KERNEL, gg::WarpRows, float)
GG_CE_SPARSE_BWD(softmax_ce_sparse_bwd_warp_f64, GG_WARP_KERNEL, gg::WarpRows, double)
GG_CE_SPARSE_BWD(softmax_ce_sparse_bwd_block_f32, GG_BLOCK_KERNEL, gg::BlockRows, float)
GG_CE_SPARSE_BWD(softmax_ce_sparse_bwd_block_f64, GG_BLOCK_KERNEL, gg::BlockRows, double)
