// Elementwise activations: forward, backward and the backward's own gradient.
//
//   sigmoid:  y = 1 / (1 + exp(-x))     gx = gy * y * (1 - y)
//             d(gx)/dy = gy * (1 - 2y)  d(gx)/dgy = y * (1 - y)
//   tanh:     y = tanh(x)               gx = gy * (1 - y^2)
//             d(gx)/dy = -2 gy y        d(gx)/dgy = 1 - y^2
//   1 - y^2 is evaluated as (1 - y)(1 + y), which keeps its relative accuracy as |y| -> 1.
//   relu:     y = x if x > 0 else 0     gx = gy if x > 0 else 0   (relu'(0) = 0; relu(NaN) = NaN)
//
// Every entry takes contiguous buffers of n elements (outputs must not overlap inputs) and is
// launched with GG_EW_THREADS threads per block, any grid size.
#include "common.cuh"

namespace gg {

template <typename T> __device__ __forceinline__ void sigmoid_fwd(const T* x, T* y, gg_i64 n) {
    const T* in[1] = {x};
    T* out[1] = {y};
    ew_map<T, 1, 1, false>(in, out, n, 0, [](gg_i64, gg_i64, const T (&a)[1], T (&o)[1]) { o[0] = sigmoid(a[0]); });
}

template <typename T> __device__ __forceinline__ void sigmoid_bwd(const T* y, const T* gy, T* gx, gg_i64 n) {
    const T* in[2] = {y, gy};
    T* out[1] = {gx};
    ew_map<T, 2, 1, false>(in, out, n, 0, [](gg_i64, gg_i64, const T (&a)[2], T (&o)[1]) {
        o[0] = a[1] * a[0] * (T(1) - a[0]);
    });
}

// Gradients of gx = gy * y * (1 - y) given ggx: w.r.t. y and w.r.t. gy.
template <typename T>
__device__ __forceinline__ void sigmoid_bwd_bwd(const T* y, const T* gy, const T* ggx, T* g_y, T* g_gy, gg_i64 n) {
    const T* in[3] = {y, gy, ggx};
    T* out[2] = {g_y, g_gy};
    ew_map<T, 3, 2, false>(in, out, n, 0, [](gg_i64, gg_i64, const T (&a)[3], T (&o)[2]) {
        const T yv = a[0];
        o[0] = a[2] * a[1] * (T(1) - T(2) * yv);
        o[1] = a[2] * yv * (T(1) - yv);
    });
}

template <typename T> __device__ __forceinline__ void tanh_fwd(const T* x, T* y, gg_i64 n) {
    const T* in[1] = {x};
    T* out[1] = {y};
    ew_map<T, 1, 1, false>(in, out, n, 0, [](gg_i64, gg_i64, const T (&a)[1], T (&o)[1]) { o[0] = g_tanh(a[0]); });
}

template <typename T> __device__ __forceinline__ void tanh_bwd(const T* y, const T* gy, T* gx, gg_i64 n) {
    const T* in[2] = {y, gy};
    T* out[1] = {gx};
    ew_map<T, 2, 1, false>(in, out, n, 0, [](gg_i64, gg_i64, const T (&a)[2], T (&o)[1]) {
        o[0] = a[1] * ((T(1) - a[0]) * (T(1) + a[0]));
    });
}

// Gradients of gx = gy * (1 - y^2) given ggx: w.r.t. y and w.r.t. gy.
template <typename T>
__device__ __forceinline__ void tanh_bwd_bwd(const T* y, const T* gy, const T* ggx, T* g_y, T* g_gy, gg_i64 n) {
    const T* in[3] = {y, gy, ggx};
    T* out[2] = {g_y, g_gy};
    ew_map<T, 3, 2, false>(in, out, n, 0, [](gg_i64, gg_i64, const T (&a)[3], T (&o)[2]) {
        const T yv = a[0];
        o[0] = T(-2) * a[2] * a[1] * yv;
        o[1] = a[2] * ((T(1) - yv) * (T(1) + yv));
    });
}

template <typename T> __device__ __forceinline__ void relu_fwd(const T* x, T* y, gg_i64 n) {
    const T* in[1] = {x};
    T* out[1] = {y};
    // x <= 0 is false for NaN, so NaN passes through; -0.0 becomes +0.0.
    ew_map<T, 1, 1, false>(in, out, n, 0, [](gg_i64, gg_i64, const T (&a)[1], T (&o)[1]) {
        o[0] = a[0] <= T(0) ? T(0) : a[0];
    });
}

template <typename T> __device__ __forceinline__ void relu_bwd(const T* x, const T* gy, T* gx, gg_i64 n) {
    const T* in[2] = {x, gy};
    T* out[1] = {gx};
    ew_map<T, 2, 1, false>(in, out, n, 0, [](gg_i64, gg_i64, const T (&a)[2], T (&o)[1]) {
        o[0] = a[0] > T(0) ? a[1] : T(0);
    });
}

}  // namespace gg

#define GG_EW __global__ void __launch_bounds__(GG_EW_THREADS)

#define GG_ACT_UNARY(NAME, T, IMPL) \
    extern "C" GG_EW NAME(const T* x, T* y, gg_i64 n) { gg::IMPL<T>(x, y, n); }
#define GG_ACT_BINARY(NAME, T, IMPL) \
    extern "C" GG_EW NAME(const T* a, const T* b, T* out, gg_i64 n) { gg::IMPL<T>(a, b, out, n); }
#define GG_ACT_TERNARY2(NAME, T, IMPL)                                                     \
    extern "C" GG_EW NAME(const T* y, const T* gy, const T* ggx, T* g_y, T* g_gy, gg_i64 n) { \
        gg::IMPL<T>(y, gy, ggx, g_y, g_gy, n);                                             \
    }

GG_ACT_UNARY(sigmoid_fwd_f32, float, sigmoid_fwd)
GG_ACT_UNARY(sigmoid_fwd_f64, double, sigmoid_fwd)
GG_ACT_BINARY(sigmoid_bwd_f32, float, sigmoid_bwd)
GG_ACT_BINARY(sigmoid_bwd_f64, double, sigmoid_bwd)
GG_ACT_TERNARY2(sigmoid_bwd_bwd_f32, float, sigmoid_bwd_bwd)
GG_ACT_TERNARY2(sigmoid_bwd_bwd_f64, double, sigmoid_bwd_bwd)

GG_ACT_UNARY(tanh_fwd_f32, float, tanh_fwd)
GG_ACT_UNARY(tanh_fwd_f64, double, tanh_fwd)
GG_ACT_BINARY(tanh_bwd_f32, float, tanh_bwd)
GG_ACT_BINARY(tanh_bwd_f64, double, tanh_bwd)
GG_ACT_TERNARY2(tanh_bwd_bwd_f32, float, tanh_bwd_bwd)
GG_ACT_TERNARY2(tanh_bwd_bwd_f64, double, tanh_bwd_bwd)

GG_ACT_UNARY(relu_fwd_f32, float, relu_fwd)
GG_ACT_UNARY(relu_fwd_f64, double, relu_fwd)
GG_ACT_BINARY(relu_bwd_f32, float, relu_bwd)
GG_ACT_BINARY(relu_bwd_f64, double, relu_bwd)
