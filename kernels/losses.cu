// Per-row losses over the last axis of contiguous [rows, cols] buffers (C = cols), and their
// gradients given a per-row upstream gradient g[rows]. The reduction over rows is the caller's.
//
//   mse:         loss = mean_c (p - t)^2                  dp = 2 (p - t) / C * g
//   bce:         pc = clip(p, eps, 1 - eps)
//                loss = mean_c -(t log pc + (1 - t) log(1 - pc))
//                dp = g / C * (pc - t) / (pc (1 - pc)) where eps < p < 1 - eps, else 0
//   bce logits:  loss = mean_c w z + log1p(exp(-|z|)),  w = 1 - t where z >= 0, else -t
//                dz = g / C * (sigmoid(z) - t)
//   softmax CE, dense target t, with m = max(z) where finite, else 0, and ls = log sum_c exp(z - m):
//                loss = sum_{c: t != 0} t (ls - (z - m))  dz = g * (exp((z - m) - ls) T - t), T = sum_c t
//   softmax CE, sparse label l:
//                loss = ls - (z[l] - m)                   dz = g * (exp((z - m) - ls) - [c == l])
//
// The forwards save m, ls (and T) per row, apart: exp((z - m) - ls) is then exact to float32
// rounding at any logit scale (a saved lse = m + ls rounded to float32 would be off by half an ulp
// of m, 5e-4 at logits of 1e4, and scale every probability by that), so each backward is one
// elementwise pass: read z (and t), write dz. NaN and +-inf follow the NumPy path's formulas: a
// class with a zero target adds nothing (a masked -inf logit with t = 0 adds 0, not 0 * inf); a
// NaN logit or a row of -inf makes the loss NaN (0 when every target is 0); a +inf logit makes the
// shift 0 and ls = +inf, so the loss is sum t (inf - z) over t != 0.
//
// Row reductions (the forwards) have the layouts of common.cuh: *_small (cols <= 32), *_warp,
// *_block, and *_part + *_fin for rows split across blocks. The elementwise gradients run with
// GG_EW_THREADS per block. All are grid-stride; cols >= 1; outputs must not overlap inputs.
#include "common.cuh"

namespace gg {

// ------------------------------------------------------------------ per-row means

// clip(p, eps, 1 - eps), NaN passing through
template <typename T> __device__ __forceinline__ T clip_prob(T p, T eps, T hi) {
    return p < eps ? eps : (p > hi ? hi : p);
}

struct MseTerm {
    template <typename T> __device__ __forceinline__ T operator()(T t, T p) const {
        const T d = p - t;
        return d * d;
    }
};
template <typename T> struct BceTerm {
    T eps;
    __device__ __forceinline__ T operator()(T t, T p) const {
        const T pc = clip_prob(p, eps, T(1) - eps);
        return -(t * g_log(pc) + (T(1) - t) * g_log1p(-pc));
    }
};
// softplus(z) - z t = w z + log1p(exp(-|z|)), w = 1 - t where z >= 0 and -t below: a zero weight
// adds 0 even at z = +-inf, as on the NumPy path
struct BceLogitsTerm {
    template <typename T> __device__ __forceinline__ T operator()(T t, T z) const {
        const T w = z >= T(0) ? T(1) - t : -t;
        return g_log1p(g_exp(-g_abs(z))) + (w != T(0) ? w * z : T(0));
    }
};

// loss[r] = mean_c term(t, x) over the row.
template <typename T, typename F> struct RowMean {
    static constexpr int NIN = 2;  // t, x
    static constexpr bool ELEMENTWISE = false;
    typedef SumState<T> State;
    const T* in[2];
    T* loss;
    gg_i64 cols;
    F term;
    static __device__ __forceinline__ T pad(int) { return T(0); }
    template <int K> __device__ __forceinline__ State scan(const T (&v)[2][K], int n) const {
        State st = State::identity();
#pragma unroll
        for (int k = 0; k < K; ++k) {
            if (k < n) st.v += term(v[0][k], v[1][k]);
        }
        return st;
    }
    __device__ __forceinline__ void row_done(gg_i64 r, const State& st) const { loss[r] = st.v / T(cols); }
};

// ------------------------------------------------------------------ softmax cross-entropy

// Dense CE state: MaxSum of z, ts = sum t, a = sum_{t != 0} t (sh - z) with sh the state's shift,
// and for the rows whose max is not finite, b = sum_{t != 0} t (inf - z) (the loss once the max is
// +inf) and nz = the count of t != 0. Merging shifts a by ts (sh' - sh). For a finite max the loss
// is ts ls + a: a sum of non-negative terms for targets in [0, 1], without the cancellation of
// lse T - sum t z at large logits.
template <typename T> struct CEState {
    static constexpr int NS = 6;
    MaxSum<T> ms;
    T ts;
    T a;
    T b;
    T nz;
    static __device__ __forceinline__ CEState identity() {
        CEState r;
        r.ms = MaxSum<T>::identity();
        r.ts = T(0);
        r.a = T(0);
        r.b = T(0);
        r.nz = T(0);
        return r;
    }
    __device__ __forceinline__ void merge(const CEState& o) {
        const T sh = ms.shift();
        const T osh = o.ms.shift();
        ms.merge(o.ms);
        const T nsh = ms.shift();
        a = (a + ts * (nsh - sh)) + (o.a + o.ts * (nsh - osh));
        ts += o.ts;
        b += o.b;
        nz += o.nz;
    }
    __device__ __forceinline__ CEState shfl_xor(int mask) const {
        CEState r;
        r.ms = ms.shfl_xor(mask);
        r.ts = __shfl_xor_sync(GG_FULL_MASK, ts, mask);
        r.a = __shfl_xor_sync(GG_FULL_MASK, a, mask);
        r.b = __shfl_xor_sync(GG_FULL_MASK, b, mask);
        r.nz = __shfl_xor_sync(GG_FULL_MASK, nz, mask);
        return r;
    }
    __device__ __forceinline__ void store(T* p) const {
        ms.store(p);
        p[2] = ts;
        p[3] = a;
        p[4] = b;
        p[5] = nz;
    }
    static __device__ __forceinline__ CEState load(const T* p) {
        CEState r;
        r.ms = MaxSum<T>::load(p);
        r.ts = p[2];
        r.a = p[3];
        r.b = p[4];
        r.nz = p[5];
        return r;
    }
};

// Writes the saved row quantities m (the shift) and ls = log S; returns ls.
template <typename T>
__device__ __forceinline__ T save_shift(const MaxSum<T>& ms, gg_i64 r, T* __restrict__ m, T* __restrict__ ls) {
    const T l = g_log(ms.s);
    m[r] = ms.shift();
    ls[r] = l;
    return l;
}

template <typename T> struct SoftmaxCE {
    static constexpr int NIN = 2;  // z, t
    static constexpr bool ELEMENTWISE = false;
    typedef CEState<T> State;
    const T* in[2];
    T* loss;
    T* m;
    T* ls;
    T* tsum;
    static __device__ __forceinline__ T pad(int j) { return j == 0 ? neg_inf<T>() : T(0); }
    template <int K> static __device__ __forceinline__ State scan(const T (&v)[2][K], int n) {
        State st;
        st.ms = MaxSum<T>::of(v[0], n);
        const T sh = st.ms.shift();
        st.ts = T(0);
        st.a = T(0);
        st.b = T(0);
        st.nz = T(0);
        const T inf = -neg_inf<T>();
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const T t = v[1][k];
            if (k < n) st.ts += t;
            if (k < n && t != T(0)) {
                st.a += t * (sh - v[0][k]);
                st.b += t * (inf - v[0][k]);
                st.nz += T(1);
            }
        }
        return st;
    }
    __device__ __forceinline__ void row_done(gg_i64 r, const State& st) const {
        const T l = save_shift(st.ms, r, m, ls);
        tsum[r] = st.ts;
        const T mx = st.ms.m;
        T v;
        if (is_finite(mx)) {
            v = st.ts * l + st.a;
        } else if (mx == -neg_inf<T>()) {
            v = st.b;  // ls = +inf: sum t (inf - z) over t != 0
        } else {
            v = st.nz != T(0) ? quiet_nan<T>() : T(0);  // NaN, or a row of -inf: ls is NaN / -inf
        }
        loss[r] = v;
    }
};

template <typename T> struct SparseSoftmaxCE {
    static constexpr int NIN = 1;  // z
    static constexpr bool ELEMENTWISE = false;
    typedef MaxSum<T> State;
    const T* in[1];
    const gg_i64* labels;
    gg_i64 cols;
    T* loss;
    T* m;
    T* ls;
    static __device__ __forceinline__ T pad(int) { return neg_inf<T>(); }
    template <int K> static __device__ __forceinline__ State scan(const T (&v)[1][K], int n) {
        return State::of(v[0], n);
    }
    __device__ __forceinline__ void row_done(gg_i64 r, const State& st) const {
        const T l = save_shift(st, r, m, ls);
        const gg_i64 lab = labels[r];
        // the caller validates labels; an out-of-range one gives NaN rather than a stray read
        const T z_l = (lab >= 0 && lab < cols) ? in[0][r * cols + lab] : quiet_nan<T>();
        loss[r] = l - (z_l - st.shift());
    }
};

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

// a / b for a divisor known to lie in [eps(1 - eps), 1/4]: float32 takes the 2-ulp hardware divide,
// because IEEE division's slow-path subroutine made this kernel spill registers; float64 keeps "/".
__device__ __forceinline__ float div_bounded(float a, float b) { return __fdividef(a, b); }
__device__ __forceinline__ double div_bounded(double a, double b) { return a / b; }

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
        o[0] = (pv <= eps || pv >= hi) ? T(0) : div_bounded((g[r] * inv_c) * (pv - a[0]), pv * (T(1) - pv));
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

// dz = ((exp((z - m) - ls) * ts) - t) * g, in the NumPy path's order of operations.
template <typename T>
__device__ __forceinline__ void softmax_ce_bwd(const T* z, const T* t, const T* __restrict__ m,
                                               const T* __restrict__ ls, const T* __restrict__ ts,
                                               const T* __restrict__ g, T* dz, gg_i64 rows, gg_i64 cols) {
    const T* in[2] = {z, t};
    T* out[1] = {dz};
    ew_map<T, 2, 1, true>(in, out, rows * cols, cols, [&](gg_i64 r, gg_i64, const T (&a)[2], T (&o)[1]) {
        o[0] = (g_exp((a[0] - m[r]) - ls[r]) * ts[r] - a[1]) * g[r];
    });
}

template <typename T>
__device__ __forceinline__ void softmax_ce_sparse_bwd(const T* z, const gg_i64* __restrict__ labels,
                                                      const T* __restrict__ m, const T* __restrict__ ls,
                                                      const T* __restrict__ g, T* dz, gg_i64 rows, gg_i64 cols) {
    const T* in[1] = {z};
    T* out[1] = {dz};
    ew_map<T, 1, 1, true>(in, out, rows * cols, cols, [&](gg_i64 r, gg_i64 c, const T (&a)[1], T (&o)[1]) {
        const T p = g_exp((a[0] - m[r]) - ls[r]);
        o[0] = (c == labels[r] ? p - T(1) : p) * g[r];
    });
}

}  // namespace gg

#define GG_EW __global__ void __launch_bounds__(GG_EW_THREADS)

// ------------------------------------------------------------------ entries
//
// Row kernels: (inputs..., outputs..., rows, cols[, eps]); their split halves take the same
// arguments with (ws, rows, cols, chunk, nch) at the end. NAME is spelled out in full for the
// loader's list.

#define GG_KERNEL(L) extern "C" __global__ void __launch_bounds__(L::MAX_THREADS)

namespace gg {
// one call for both kinds of layout tags, so that every entry below has the same body
template <typename P, typename T, typename L>
__device__ __forceinline__ void run_layout(L tag, const P& p, T*, gg_i64 rows, gg_i64 cols, gg_i64, gg_i64) {
    run_rows<P, T>(tag, p, rows, cols);
}
template <typename P, typename T>
__device__ __forceinline__ void run_layout(Part tag, const P& p, T* ws, gg_i64 rows, gg_i64 cols, gg_i64 chunk,
                                           gg_i64 nch) {
    run_split<P, T>(tag, p, ws, rows, cols, chunk, nch);
}
template <typename P, typename T>
__device__ __forceinline__ void run_layout(Fin tag, const P& p, T* ws, gg_i64 rows, gg_i64 cols, gg_i64 chunk,
                                           gg_i64 nch) {
    run_split<P, T>(tag, p, ws, rows, cols, chunk, nch);
}
}  // namespace gg

#define GG_SPLIT_PARAMS(T) T *__restrict__ ws, gg_i64 rows, gg_i64 cols, gg_i64 chunk, gg_i64 nch
#define GG_ROW_PARAMS(T) gg_i64 rows, gg_i64 cols
#define GG_NO_SPLIT(T)               \
    T* ws = nullptr;                 \
    const gg_i64 chunk = 0, nch = 0; \
    (void)ws;

// mean losses: (t, x, loss, rows, cols[, eps])
#define GG_MEAN_BODY(T, TERM, L)                              \
    gg::RowMean<T, TERM> p;                                   \
    p.in[0] = t;                                              \
    p.in[1] = x;                                              \
    p.loss = loss;                                            \
    p.cols = cols;                                            \
    p.term = term;                                            \
    gg::run_layout<gg::RowMean<T, TERM>, T>(L(), p, ws, rows, cols, chunk, nch);
#define GG_MEAN(NAME, T, TERM, L)                                                                        \
    GG_KERNEL(L) NAME(const T* __restrict__ t, const T* __restrict__ x, T* __restrict__ loss, GG_ROW_PARAMS(T)) { \
        GG_NO_SPLIT(T)                                                                                   \
        const TERM term{};                                                                               \
        GG_MEAN_BODY(T, TERM, L)                                                                         \
    }
#define GG_MEAN_SPLIT(NAME, T, TERM, L)                                                                  \
    GG_KERNEL(L) NAME(const T* __restrict__ t, const T* __restrict__ x, T* __restrict__ loss, GG_SPLIT_PARAMS(T)) { \
        const TERM term{};                                                                               \
        GG_MEAN_BODY(T, TERM, L)                                                                         \
    }
#define GG_BCE(NAME, T, L)                                                                               \
    GG_KERNEL(L) NAME(const T* __restrict__ t, const T* __restrict__ x, T* __restrict__ loss, GG_ROW_PARAMS(T), T eps) { \
        GG_NO_SPLIT(T)                                                                                   \
        const gg::BceTerm<T> term{eps};                                                                  \
        GG_MEAN_BODY(T, gg::BceTerm<T>, L)                                                               \
    }
#define GG_BCE_SPLIT(NAME, T, L)                                                                         \
    GG_KERNEL(L) NAME(const T* __restrict__ t, const T* __restrict__ x, T* __restrict__ loss, GG_SPLIT_PARAMS(T), T eps) { \
        const gg::BceTerm<T> term{eps};                                                                  \
        GG_MEAN_BODY(T, gg::BceTerm<T>, L)                                                               \
    }

// dense CE: (z, t, loss, m, ls, tsum, rows, cols)
#define GG_CE_BODY(T, L)                                                         \
    gg::SoftmaxCE<T> p;                                                          \
    p.in[0] = z;                                                                 \
    p.in[1] = t;                                                                 \
    p.loss = loss;                                                               \
    p.m = m;                                                                     \
    p.ls = ls;                                                                   \
    p.tsum = tsum;                                                               \
    gg::run_layout<gg::SoftmaxCE<T>, T>(L(), p, ws, rows, cols, chunk, nch);
#define GG_CE_ARGS(T)                                                                                   \
    const T *__restrict__ z, const T *__restrict__ t, T *__restrict__ loss, T *__restrict__ m, T *__restrict__ ls, \
        T *__restrict__ tsum
#define GG_CE(NAME, T, L)                               \
    GG_KERNEL(L) NAME(GG_CE_ARGS(T), GG_ROW_PARAMS(T)) { \
        GG_NO_SPLIT(T)                                  \
        GG_CE_BODY(T, L)                                \
    }
#define GG_CE_SPLIT(NAME, T, L) \
    GG_KERNEL(L) NAME(GG_CE_ARGS(T), GG_SPLIT_PARAMS(T)) { GG_CE_BODY(T, L) }

// sparse CE: (z, labels, loss, m, ls, rows, cols)
#define GG_SCE_BODY(T, L)                                                              \
    gg::SparseSoftmaxCE<T> p;                                                          \
    p.in[0] = z;                                                                       \
    p.labels = labels;                                                                 \
    p.cols = cols;                                                                     \
    p.loss = loss;                                                                     \
    p.m = m;                                                                           \
    p.ls = ls;                                                                         \
    gg::run_layout<gg::SparseSoftmaxCE<T>, T>(L(), p, ws, rows, cols, chunk, nch);
#define GG_SCE_ARGS(T) \
    const T *__restrict__ z, const gg_i64 *__restrict__ labels, T *__restrict__ loss, T *__restrict__ m, T *__restrict__ ls
#define GG_SCE(NAME, T, L)                               \
    GG_KERNEL(L) NAME(GG_SCE_ARGS(T), GG_ROW_PARAMS(T)) { \
        GG_NO_SPLIT(T)                                   \
        GG_SCE_BODY(T, L)                                \
    }
#define GG_SCE_SPLIT(NAME, T, L) \
    GG_KERNEL(L) NAME(GG_SCE_ARGS(T), GG_SPLIT_PARAMS(T)) { GG_SCE_BODY(T, L) }

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
#define GG_CE_BWD(NAME, T)                                                                               \
    extern "C" GG_EW NAME(const T* __restrict__ z, const T* __restrict__ t, const T* __restrict__ m,      \
                          const T* __restrict__ ls, const T* __restrict__ ts, const T* __restrict__ g,     \
                          T* __restrict__ dz, gg_i64 rows, gg_i64 cols) {                                 \
        gg::softmax_ce_bwd<T>(z, t, m, ls, ts, g, dz, rows, cols);                                       \
    }
#define GG_SCE_BWD(NAME, T)                                                                              \
    extern "C" GG_EW NAME(const T* __restrict__ z, const gg_i64* __restrict__ labels, const T* __restrict__ m, \
                          const T* __restrict__ ls, const T* __restrict__ g, T* __restrict__ dz, gg_i64 rows, \
                          gg_i64 cols) {                                                                 \
        gg::softmax_ce_sparse_bwd<T>(z, labels, m, ls, g, dz, rows, cols);                               \
    }

GG_MEAN(mse_fwd_small_f32, float, gg::MseTerm, gg::Small)
GG_MEAN(mse_fwd_warp_f32, float, gg::MseTerm, gg::Warp)
GG_MEAN(mse_fwd_block_f32, float, gg::MseTerm, gg::Block)
GG_MEAN_SPLIT(mse_fwd_part_f32, float, gg::MseTerm, gg::Part)
GG_MEAN_SPLIT(mse_fwd_fin_f32, float, gg::MseTerm, gg::Fin)
GG_MEAN(bce_logits_fwd_small_f32, float, gg::BceLogitsTerm, gg::Small)
GG_MEAN(bce_logits_fwd_warp_f32, float, gg::BceLogitsTerm, gg::Warp)
GG_MEAN(bce_logits_fwd_block_f32, float, gg::BceLogitsTerm, gg::Block)
GG_MEAN_SPLIT(bce_logits_fwd_part_f32, float, gg::BceLogitsTerm, gg::Part)
GG_MEAN_SPLIT(bce_logits_fwd_fin_f32, float, gg::BceLogitsTerm, gg::Fin)
GG_BCE(bce_fwd_small_f32, float, gg::Small)
GG_BCE(bce_fwd_warp_f32, float, gg::Warp)
GG_BCE(bce_fwd_block_f32, float, gg::Block)
GG_BCE_SPLIT(bce_fwd_part_f32, float, gg::Part)
GG_BCE_SPLIT(bce_fwd_fin_f32, float, gg::Fin)
GG_CE(softmax_ce_fwd_small_f32, float, gg::Small)
GG_CE(softmax_ce_fwd_warp_f32, float, gg::Warp)
GG_CE(softmax_ce_fwd_block_f32, float, gg::Block)
GG_CE_SPLIT(softmax_ce_fwd_part_f32, float, gg::Part)
GG_CE_SPLIT(softmax_ce_fwd_fin_f32, float, gg::Fin)
GG_SCE(softmax_ce_sparse_fwd_small_f32, float, gg::Small)
GG_SCE(softmax_ce_sparse_fwd_warp_f32, float, gg::Warp)
GG_SCE(softmax_ce_sparse_fwd_block_f32, float, gg::Block)
GG_SCE_SPLIT(softmax_ce_sparse_fwd_part_f32, float, gg::Part)
GG_SCE_SPLIT(softmax_ce_sparse_fwd_fin_f32, float, gg::Fin)
GG_PAIR_BWD(mse_bwd_f32, float, mse_bwd)
GG_BCE_BWD(bce_bwd_f32, float)
GG_PAIR_BWD(bce_logits_bwd_f32, float, bce_logits_bwd)
GG_CE_BWD(softmax_ce_bwd_f32, float)
GG_SCE_BWD(softmax_ce_sparse_bwd_f32, float)

GG_MEAN(mse_fwd_small_f64, double, gg::MseTerm, gg::Small)
GG_MEAN(mse_fwd_warp_f64, double, gg::MseTerm, gg::Warp)
GG_MEAN(mse_fwd_block_f64, double, gg::MseTerm, gg::Block)
GG_MEAN_SPLIT(mse_fwd_part_f64, double, gg::MseTerm, gg::Part)
GG_MEAN_SPLIT(mse_fwd_fin_f64, double, gg::MseTerm, gg::Fin)
GG_MEAN(bce_logits_fwd_small_f64, double, gg::BceLogitsTerm, gg::Small)
GG_MEAN(bce_logits_fwd_warp_f64, double, gg::BceLogitsTerm, gg::Warp)
GG_MEAN(bce_logits_fwd_block_f64, double, gg::BceLogitsTerm, gg::Block)
GG_MEAN_SPLIT(bce_logits_fwd_part_f64, double, gg::BceLogitsTerm, gg::Part)
GG_MEAN_SPLIT(bce_logits_fwd_fin_f64, double, gg::BceLogitsTerm, gg::Fin)
GG_BCE(bce_fwd_small_f64, double, gg::Small)
GG_BCE(bce_fwd_warp_f64, double, gg::Warp)
GG_BCE(bce_fwd_block_f64, double, gg::Block)
GG_BCE_SPLIT(bce_fwd_part_f64, double, gg::Part)
GG_BCE_SPLIT(bce_fwd_fin_f64, double, gg::Fin)
GG_CE(softmax_ce_fwd_small_f64, double, gg::Small)
GG_CE(softmax_ce_fwd_warp_f64, double, gg::Warp)
GG_CE(softmax_ce_fwd_block_f64, double, gg::Block)
GG_CE_SPLIT(softmax_ce_fwd_part_f64, double, gg::Part)
GG_CE_SPLIT(softmax_ce_fwd_fin_f64, double, gg::Fin)
GG_SCE(softmax_ce_sparse_fwd_small_f64, double, gg::Small)
GG_SCE(softmax_ce_sparse_fwd_warp_f64, double, gg::Warp)
GG_SCE(softmax_ce_sparse_fwd_block_f64, double, gg::Block)
GG_SCE_SPLIT(softmax_ce_sparse_fwd_part_f64, double, gg::Part)
GG_SCE_SPLIT(softmax_ce_sparse_fwd_fin_f64, double, gg::Fin)
GG_PAIR_BWD(mse_bwd_f64, double, mse_bwd)
GG_BCE_BWD(bce_bwd_f64, double)
GG_PAIR_BWD(bce_logits_bwd_f64, double, bce_logits_bwd)
GG_CE_BWD(softmax_ce_bwd_f64, double)
GG_SCE_BWD(softmax_ce_sparse_bwd_f64, double)
