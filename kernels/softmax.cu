// Softmax and log-softmax over the last axis of a contiguous [rows, cols] buffer.
//
//   softmax:      y = exp(x - M) / S,        M = max(x), S = sum exp(x - M)
//   log-softmax:  y = (x - M) - log(S)
//   backward (y is the forward output):
//     softmax:      gx = y * (gy - sum(gy * y))
//     log-softmax:  gx = gy - exp(y) * sum(gy)
//
// M and S come from the online normalizer: a running max and a running sum rescaled whenever the
// max grows, merged across threads as (max, sum) pairs, so the row is read once for them.
//
// Two layouts, chosen by the caller from cols:
//   *_warp   one warp per row, cols <= 1024. Launch with GG_WARP_ROWS_THREADS. The float32
//            forward holds the row in registers (32 lanes x up to 32 values) and reads it once;
//            the others read the row twice, the second time from L1/L2 (the row is at most 8 KB).
//            Register-cached variants of those were measured to cost seconds of NVRTC time on
//            first use for little gain, so they are left out.
//   *_block  one block per row, any cols: a pass for the reduction and a pass for the output (the
//            second read mostly hits L2). Launch with a multiple of 32 threads, at most
//            GG_BLOCK_ROWS_MAX_THREADS.
// Both are grid-stride over rows. A row of -inf gives NaN (0/0), as in PyTorch; cols >= 1.
#include "common.cuh"

namespace gg {

// ------------------------------------------------------------------ warp per row, row in registers

template <typename T, int VPT>
__device__ __forceinline__ void load_row_regs(const T* __restrict__ xr, gg_i64 cols, int lane, T pad, T (&v)[VPT]) {
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        const gg_i64 c = lane + 32 * k;
        v[k] = c < cols ? xr[c] : pad;
    }
}

template <typename T, int VPT, bool LOG>
__device__ __forceinline__ void softmax_fwd_warp_cached(const T* __restrict__ x, T* __restrict__ y, gg_i64 rows,
                                                        gg_i64 cols) {
    const WarpRows g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const T* xr = x + r * cols;
        T* yr = y + r * cols;
        T v[VPT];
        load_row_regs(xr, cols, g.lane, neg_inf<T>(), v);
        T lane_max = neg_inf<T>();
#pragma unroll
        for (int k = 0; k < VPT; ++k) lane_max = g_max(lane_max, v[k]);
        MaxSumState<T> st;
        st.m = lane_max;
        st.s = T(0);
        if constexpr (LOG) {
#pragma unroll
            for (int k = 0; k < VPT; ++k) st.s += exp_sub(v[k], lane_max);
            st = warp_reduce(st);
            const T log_s = g_log(st.s);
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const gg_i64 c = g.lane + 32 * k;
                if (c < cols) yr[c] = (v[k] - st.m) - log_s;
            }
        } else {
            // keep e = exp(x - lane max) and rescale by exp(lane max - M) / S at the end
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                v[k] = exp_sub(v[k], lane_max);
                st.s += v[k];
            }
            st = warp_reduce(st);
            const T scale = exp_sub(lane_max, st.m) / st.s;
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const gg_i64 c = g.lane + 32 * k;
                if (c < cols) yr[c] = v[k] * scale;
            }
        }
    }
}

// ------------------------------------------------------------------ any group per row, two passes

template <typename G, typename T, bool LOG>
__device__ __forceinline__ void softmax_fwd_rows(const T* __restrict__ x, T* __restrict__ y, gg_i64 rows,
                                                 gg_i64 cols) {
    const G g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const T* xr = x + r * cols;
        T* yr = y + r * cols;
        const MaxSumState<T> st = g.reduce(strided_max_sum(xr, g.lane, cols, g.width));
        const T m = st.m;
        auto load = [&](gg_i64 c) { return xr[c]; };
        if constexpr (LOG) {
            const T log_s = g_log(st.s);
            strided_map(g.lane, cols, g.width, load, [&](gg_i64 c, T v) { yr[c] = (v - m) - log_s; });
        } else {
            const T inv = T(1) / st.s;
            strided_map(g.lane, cols, g.width, load, [&](gg_i64 c, T v) { yr[c] = exp_sub(v, m) * inv; });
        }
    }
}

template <typename G, typename T, bool LOG>
__device__ __forceinline__ void softmax_bwd_rows(const T* __restrict__ y, const T* __restrict__ gy,
                                                 T* __restrict__ gx, gg_i64 rows, gg_i64 cols) {
    const G g;
    for (gg_i64 r = g.first; r < rows; r += g.step) {
        const gg_i64 off = r * cols;
        const T* yr = y + off;
        const T* gr = gy + off;
        T* out = gx + off;
        SumState<T> part;
        if constexpr (LOG) {
            part.v = strided_sum<T>(g.lane, cols, g.width, [&](gg_i64 c) { return gr[c]; });
        } else {
            part.v = strided_sum<T>(g.lane, cols, g.width, [&](gg_i64 c) { return gr[c] * yr[c]; });
        }
        const T total = g.reduce(part).v;
        auto load = [&](gg_i64 c) {
            Pair<T> p;
            p.a = yr[c];
            p.b = gr[c];
            return p;
        };
        if constexpr (LOG) {
            strided_map(g.lane, cols, g.width, load, [&](gg_i64 c, Pair<T> p) { out[c] = p.b - g_exp(p.a) * total; });
        } else {
            strided_map(g.lane, cols, g.width, load, [&](gg_i64 c, Pair<T> p) { out[c] = p.a * (p.b - total); });
        }
    }
}

// ------------------------------------------------------------------ dispatch on row length

template <typename T, bool LOG>
__device__ __forceinline__ void softmax_fwd_warp(const T* __restrict__ x, T* __restrict__ y, gg_i64 rows,
                                                 gg_i64 cols) {
    if constexpr (sizeof(T) == 8) {  // float64 rows would need twice the registers; see the header
        softmax_fwd_rows<WarpRows, T, LOG>(x, y, rows, cols);
    } else if (cols <= 32) {
        softmax_fwd_warp_cached<T, 1, LOG>(x, y, rows, cols);
    } else if (cols <= 64) {
        softmax_fwd_warp_cached<T, 2, LOG>(x, y, rows, cols);
    } else if (cols <= 128) {
        softmax_fwd_warp_cached<T, 4, LOG>(x, y, rows, cols);
    } else if (cols <= 256) {
        softmax_fwd_warp_cached<T, 8, LOG>(x, y, rows, cols);
    } else if (cols <= 512) {
        softmax_fwd_warp_cached<T, 16, LOG>(x, y, rows, cols);
    } else if (cols <= 1024) {
        softmax_fwd_warp_cached<T, 32, LOG>(x, y, rows, cols);
    } else {  // not chosen by the loader; correct anyway
        softmax_fwd_rows<WarpRows, T, LOG>(x, y, rows, cols);
    }
}

template <typename T, bool LOG>
__device__ __forceinline__ void softmax_bwd_warp(const T* __restrict__ y, const T* __restrict__ gy,
                                                 T* __restrict__ gx, gg_i64 rows, gg_i64 cols) {
    softmax_bwd_rows<WarpRows, T, LOG>(y, gy, gx, rows, cols);
}

}  // namespace gg

#define GG_WARP_KERNEL __global__ void __launch_bounds__(GG_WARP_ROWS_THREADS)
#define GG_BLOCK_KERNEL __global__ void __launch_bounds__(GG_BLOCK_ROWS_MAX_THREADS)

#define GG_SOFTMAX_FWD(NAME, KIND, T, IMPL, LOG)                                                      \
    extern "C" KIND NAME(const T* __restrict__ x, T* __restrict__ y, gg_i64 rows, gg_i64 cols) { \
        IMPL<T, LOG>(x, y, rows, cols);                                                           \
    }
#define GG_SOFTMAX_BWD(NAME, KIND, T, IMPL, LOG)                                                     \
    extern "C" KIND NAME(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx, gg_i64 rows, \
                         gg_i64 cols) {                                                              \
        IMPL<T, LOG>(y, gy, gx, rows, cols);                                                         \
    }

namespace gg {
template <typename T, bool LOG>
__device__ __forceinline__ void softmax_fwd_block(const T* __restrict__ x, T* __restrict__ y, gg_i64 rows,
                                                  gg_i64 cols) {
    softmax_fwd_rows<BlockRows, T, LOG>(x, y, rows, cols);
}
template <typename T, bool LOG>
__device__ __forceinline__ void softmax_bwd_block(const T* __restrict__ y, const T* __restrict__ gy,
                                                  T* __restrict__ gx, gg_i64 rows, gg_i64 cols) {
    softmax_bwd_rows<BlockRows, T, LOG>(y, gy, gx, rows, cols);
}
}  // namespace gg

GG_SOFTMAX_FWD(softmax_fwd_warp_f32, GG_WARP_KERNEL, float, gg::softmax_fwd_warp, false)
GG_SOFTMAX_FWD(softmax_fwd_warp_f64, GG_WARP_KERNEL, double, gg::softmax_fwd_warp, false)
GG_SOFTMAX_FWD(softmax_fwd_block_f32, GG_BLOCK_KERNEL, float, gg::softmax_fwd_block, false)
GG_SOFTMAX_FWD(softmax_fwd_block_f64, GG_BLOCK_KERNEL, double, gg::softmax_fwd_block, false)
GG_SOFTMAX_FWD(log_softmax_fwd_warp_f32, GG_WARP_KERNEL, float, gg::softmax_fwd_warp, true)
GG_SOFTMAX_FWD(log_softmax_fwd_warp_f64, GG_WARP_KERNEL, double, gg::softmax_fwd_warp, true)
GG_SOFTMAX_FWD(log_softmax_fwd_block_f32, GG_BLOCK_KERNEL, float, gg::softmax_fwd_block, true)
GG_SOFTMAX_FWD(log_softmax_fwd_block_f64, GG_BLOCK_KERNEL, double, gg::softmax_fwd_block, true)

GG_SOFTMAX_BWD(softmax_bwd_warp_f32, GG_WARP_KERNEL, float, gg::softmax_bwd_warp, false)
GG_SOFTMAX_BWD(softmax_bwd_warp_f64, GG_WARP_KERNEL, double, gg::softmax_bwd_warp, false)
GG_SOFTMAX_BWD(softmax_bwd_block_f32, GG_BLOCK_KERNEL, float, gg::softmax_bwd_block, false)
GG_SOFTMAX_BWD(softmax_bwd_block_f64, GG_BLOCK_KERNEL, double, gg::softmax_bwd_block, false)
GG_SOFTMAX_BWD(log_softmax_bwd_warp_f32, GG_WARP_KERNEL, float, gg::softmax_bwd_warp, true)
GG_SOFTMAX_BWD(log_softmax_bwd_warp_f64, GG_WARP_KERNEL, double, gg::softmax_bwd_warp, true)
GG_SOFTMAX_BWD(log_softmax_bwd_block_f32, GG_BLOCK_KERNEL, float, gg::softmax_bwd_block, true)
GG_SOFTMAX_BWD(log_softmax_bwd_block_f64, GG_BLOCK_KERNEL, double, gg::softmax_bwd_block, true)
