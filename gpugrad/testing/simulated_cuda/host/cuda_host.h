// The CUDA built-ins gpugrad's kernels use, for compiling kernels/*.cu with a host C++ compiler.
//
// This is a logic check, not a simulator of speed: every CUDA thread of a block is a fiber (a
// stack switch written in assembly on x86-64, ucontext elsewhere) of one OS thread, and the block's fibers run round-robin, each until it reaches a
// barrier (__syncthreads, a warp shuffle, __syncwarp) or returns. Blocks of a grid run one after
// another, so kernels must not rely on blocks running at the same time (CUDA does not promise it
// either). Shared memory: `static __shared__` variables are ordinary statics (one block runs at a
// time, so they are the block's); `extern __shared__` dynamic memory is one global buffer, filled
// with a NaN pattern before each block so that a read of memory nothing wrote shows up.
//
// Checked here, reported as a launch error rather than undefined behaviour: a lane that shuffles
// or syncs with a mask that does not hold it, lanes of one warp that sync with different masks, a
// shuffle from a lane outside the mask, a mask naming a lane that has exited or does not exist,
// a thread that exits while others wait at __syncthreads, barriers that can never complete
// (deadlock), and dynamic shared memory above the launch's request.
#ifndef GG_CUDA_HOST_H
#define GG_CUDA_HOST_H

#include <ucontext.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#define GG_HOST_HARNESS 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__

using std::exp;
using std::log;
using std::log1p;
using std::tanh;
using std::fabs;
using std::fmax;
using std::fmin;
// CUDA's math headers declare these at global scope too (a fused kernel's finite-value tests)
using std::isfinite;
using std::isinf;
using std::isnan;

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

#define GG_VEC2(NAME, T, A)  \
    struct alignas(A) NAME { \
        T x, y;              \
    };
#define GG_VEC4(NAME, T, A)  \
    struct alignas(A) NAME { \
        T x, y, z, w;        \
    };
GG_VEC2(float2, float, 8)
GG_VEC4(float4, float, 16)
GG_VEC2(double2, double, 16)
GG_VEC2(int2, int, 8)
GG_VEC4(int4, int, 16)
GG_VEC2(longlong2, long long, 16)
#undef GG_VEC2
#undef GG_VEC4

static constexpr int warpSize = 32;

namespace gg_host {

// ------------------------------------------------------------------ fiber switching
//
// gg_switch(from, to) saves the callee-saved registers on the current stack, stores the stack
// pointer in *from and resumes the fiber whose stack pointer is `to`. On x86-64 this is a few
// instructions; elsewhere swapcontext, which also makes a signal-mask system call per switch.
#if defined(__x86_64__) && !defined(GG_HOST_UCONTEXT)
#define GG_HOST_FAST_SWITCH 1
extern "C" void gg_switch(void** from, void* to);
__asm__(
    ".text\n"
    ".globl gg_switch\n"
    ".hidden gg_switch\n"
    ".type gg_switch,@function\n"
    "gg_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size gg_switch,.-gg_switch\n");
#endif

struct Fiber {
    ucontext_t ctx;
    void* sp = nullptr;
    uint3 tid;
    int linear = 0;
    bool done = false;
    char* stack = nullptr;
};

struct Warp {
    int arrived = 0;
    unsigned gen = 0;
    unsigned mask = 0;
    unsigned long long slot[32] = {};
};

struct State {
    ucontext_t sched;
    void* sched_sp = nullptr;
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    Fiber* cur = nullptr;
    uint3 block_idx{0, 0, 0};
    dim3 block_dim, grid_dim;
    int nthreads = 0;
    int bar_arrived = 0;
    int exited = 0;  // threads of the current block that have returned
    unsigned bar_gen = 0;
    unsigned long long progress = 0;
    std::function<void()> body;
    std::string error;
    size_t smem_bytes = 0;
};

inline State& st() {
    static State s;
    return s;
}

constexpr size_t kMaxDynamicSmem = 256 * 1024;
constexpr size_t kStackBytes = 256 * 1024;

inline void fail(const std::string& msg) {
    State& s = st();
    if (s.error.empty()) {
        char where[128];
        const Fiber* f = s.cur;
        std::snprintf(where, sizeof where, " (block %u,%u,%u thread %u,%u,%u)", s.block_idx.x, s.block_idx.y,
                      s.block_idx.z, f ? f->tid.x : 0u, f ? f->tid.y : 0u, f ? f->tid.z : 0u);
        s.error = msg + where;
    }
}

// Back to the scheduler; returns when this fiber is resumed. A fiber resumed after an error
// stays parked (the scheduler stops resuming fibers once an error is recorded).
inline void yield() {
    State& s = st();
    Fiber* f = s.cur;
#ifdef GG_HOST_FAST_SWITCH
    gg_switch(&f->sp, s.sched_sp);
#else
    swapcontext(&f->ctx, &s.sched);
#endif
}

inline int lane_id() { return st().cur->linear & 31; }
inline int warp_id() { return st().cur->linear >> 5; }

inline unsigned live_lanes(int warp) {
    State& s = st();
    unsigned m = 0;
    for (int l = 0; l < 32; ++l) {
        const int t = warp * 32 + l;
        if (t < s.nthreads && !s.fibers[t].done) m |= 1u << l;
    }
    return m;
}

inline void warp_sync(unsigned mask) {
    State& s = st();
    const int lane = lane_id();
    Warp& w = s.warps[warp_id()];
    if (!((mask >> lane) & 1u)) {
        fail("a lane synced or shuffled with a mask that does not hold it");
        yield();
    }
    if ((mask & live_lanes(warp_id())) != mask) {
        fail("a warp mask names a lane that has exited or does not exist");
        yield();
    }
    if (w.arrived == 0) {
        w.mask = mask;
    } else if (w.mask != mask) {
        fail("lanes of one warp synced with different masks");
        yield();
    }
    ++s.progress;
    const unsigned gen = w.gen;
    if (++w.arrived == __builtin_popcount(mask)) {
        w.arrived = 0;
        ++w.gen;
        return;
    }
    while (w.gen == gen) yield();
}

template <typename T> inline unsigned long long to_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    unsigned long long b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <typename T> inline T from_bits(unsigned long long b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

// Every lane of the mask publishes v, then reads the value of lane src (its own when src < 0).
template <typename T> inline T exchange(unsigned mask, T v, int src) {
    State& s = st();
    const int lane = lane_id();
    Warp& w = s.warps[warp_id()];
    warp_sync(mask);  // the slots are free: every lane has read the previous exchange
    w.slot[lane] = to_bits(v);
    warp_sync(mask);
    T r = v;
    if (src >= 0) {
        if (!((mask >> src) & 1u)) {
            fail("a shuffle read a lane outside its mask");
            yield();
        }
        r = from_bits<T>(w.slot[src]);
    }
    return r;
}

inline void check_width(int width) {
    if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
        fail("shuffle width must be a power of two in [1, 32]");
        yield();
    }
}

inline void syncthreads() {
    State& s = st();
    if (s.exited > 0) {
        fail("a thread exited while others wait at __syncthreads");
        yield();
    }
    ++s.progress;
    const unsigned gen = s.bar_gen;
    if (++s.bar_arrived == s.nthreads) {
        s.bar_arrived = 0;
        ++s.bar_gen;
        return;
    }
    while (s.bar_gen == gen) yield();
}

inline void fiber_main() {
    State& s = st();
    s.body();
    s.cur->done = true;
    ++s.exited;
    ++s.progress;
    if (s.bar_arrived > 0) fail("a thread exited while others wait at __syncthreads");
    // ucontext: returning switches to uc_link (the scheduler)
}

#ifdef GG_HOST_FAST_SWITCH
[[noreturn]] inline void fiber_trampoline() {
    fiber_main();
    for (;;) yield();  // never resumed once done
}

// A fresh fiber stack whose first gg_switch "returns" into fiber_trampoline.
inline void* fresh_stack(char* stack, size_t bytes) {
    unsigned long long top = reinterpret_cast<unsigned long long>(stack + bytes) & ~15ULL;
    void** ret_slot = reinterpret_cast<void**>(top - 16);  // 16-aligned: the entry sees rsp % 16 == 8
    *ret_slot = reinterpret_cast<void*>(&fiber_trampoline);
    void** sp = ret_slot - 6;  // rbp rbx r12 r13 r14 r15
    for (int i = 0; i < 6; ++i) sp[i] = nullptr;
    return sp;
}
#endif

}  // namespace gg_host

// `extern __shared__ __align__(16) unsigned char gg_dyn_smem[];` in a kernel source names this.
alignas(16) unsigned char gg_dyn_smem[gg_host::kMaxDynamicSmem];

namespace gg_host {

inline unsigned char* dynamic_smem() { return gg_dyn_smem; }

// Runs body once per CUDA thread of every block of the grid. Returns "" or the first error.
inline std::string launch(dim3 grid, dim3 block, size_t smem, std::function<void()> body) {
    State& s = st();
    s.error.clear();
    s.grid_dim = grid;
    s.block_dim = block;
    s.smem_bytes = smem;
    s.body = std::move(body);
    const long long n = static_cast<long long>(block.x) * block.y * block.z;
    if (n < 1 || n > 1024 || grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.y > 65535 || grid.z > 65535) {
        return "invalid launch configuration";
    }
    if (smem > kMaxDynamicSmem) return "dynamic shared memory request above the harness limit";
    s.nthreads = static_cast<int>(n);
    if (s.fibers.size() < static_cast<size_t>(n)) s.fibers.resize(static_cast<size_t>(n));
    s.warps.assign(static_cast<size_t>((n + 31) / 32), Warp());
    for (unsigned bz = 0; bz < grid.z; ++bz) {
        for (unsigned by = 0; by < grid.y; ++by) {
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                s.block_idx = {bx, by, bz};
                s.bar_arrived = 0;
                s.exited = 0;
                for (auto& w : s.warps) w = Warp();
                // a NaN pattern (0xff bytes) in dynamic shared memory: unwritten reads stay visible
                std::memset(dynamic_smem(), 0xff, smem);
                for (int t = 0; t < n; ++t) {
                    Fiber& f = s.fibers[t];
                    if (!f.stack) f.stack = static_cast<char*>(std::malloc(kStackBytes));
                    f.linear = t;
                    f.tid = {static_cast<unsigned>(t % block.x), static_cast<unsigned>((t / block.x) % block.y),
                             static_cast<unsigned>(t / (block.x * block.y))};
                    f.done = false;
#ifdef GG_HOST_FAST_SWITCH
                    f.sp = fresh_stack(f.stack, kStackBytes);
#else
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack;
                    f.ctx.uc_stack.ss_size = kStackBytes;
                    f.ctx.uc_link = &s.sched;
                    makecontext(&f.ctx, fiber_main, 0);
#endif
                }
                int live = static_cast<int>(n);
                while (live > 0) {
                    const unsigned long long before = s.progress;
                    live = 0;
                    for (int t = 0; t < n; ++t) {
                        Fiber& f = s.fibers[t];
                        if (f.done) continue;
                        s.cur = &f;
#ifdef GG_HOST_FAST_SWITCH
                        gg_switch(&s.sched_sp, f.sp);
#else
                        swapcontext(&s.sched, &f.ctx);
#endif
                        s.cur = nullptr;
                        if (!s.error.empty()) return s.error;
                        if (!f.done) ++live;
                    }
                    if (live > 0 && s.progress == before) {
                        return "deadlock: threads wait at barriers that can never complete";
                    }
                }
            }
        }
    }
    return "";
}

template <typename T> struct Arg {
    typedef typename std::remove_cv<typename std::remove_reference<T>::type>::type type;
};

template <typename... A, size_t... I>
inline void call_packed(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*static_cast<typename Arg<A>::type*>(args[I])...);
}

// Launches kernel k with cuLaunchKernel-style arguments (args[i] points at the i-th value).
template <typename... A>
inline std::string launch_packed(void (*k)(A...), dim3 grid, dim3 block, size_t smem, void** args) {
    return launch(grid, block, smem, [=]() { call_packed(k, args, std::index_sequence_for<A...>{}); });
}

// "size,size,..." of a kernel's parameters, for the caller to check its argument list against.
template <typename... A> inline std::string param_sizes(void (*)(A...)) {
    std::string out;
    const size_t sizes[] = {sizeof(typename Arg<A>::type)..., 0};
    for (size_t i = 0; i < sizeof...(A); ++i) out += (i ? "," : "") + std::to_string(sizes[i]);
    return out;
}

// One letter per kernel parameter: 'r' a pointer to const (the kernel reads what it points at), 'w'
// a pointer to non-const (it may write there), 'v' a value. The simulated device counts bytes by it.
template <typename T> inline char param_kind() {
    typedef typename Arg<T>::type U;
    if (!std::is_pointer<U>::value) return 'v';
    return std::is_const<typename std::remove_pointer<U>::type>::value ? 'r' : 'w';
}
template <typename... A> inline std::string param_kinds(void (*)(A...)) {
    return std::string{param_kind<A>()..., '\0'}.c_str();
}

}  // namespace gg_host

// ------------------------------------------------------------------ the built-ins

#define threadIdx (gg_host::st().cur->tid)
#define blockIdx (gg_host::st().block_idx)
#define blockDim (gg_host::st().block_dim)
#define gridDim (gg_host::st().grid_dim)

inline void __syncthreads() { gg_host::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { gg_host::warp_sync(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <typename T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    gg_host::check_width(width);
    const int lane = gg_host::lane_id();
    return gg_host::exchange(mask, v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    gg_host::check_width(width);
    const int lane = gg_host::lane_id();
    const int src = lane ^ lane_mask;
    // a lane may read earlier groups of `width` lanes, never later ones (then it keeps its own)
    return gg_host::exchange(mask, v, src >= ((lane / width) + 1) * width ? -1 : src);
}
template <typename T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    gg_host::check_width(width);
    const int lane = gg_host::lane_id();
    const int in_group = (lane & (width - 1)) + static_cast<int>(delta);
    return gg_host::exchange(mask, v, in_group >= width ? -1 : lane + static_cast<int>(delta));
}
template <typename T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    gg_host::check_width(width);
    const int lane = gg_host::lane_id();
    const int in_group = (lane & (width - 1)) - static_cast<int>(delta);
    return gg_host::exchange(mask, v, in_group < 0 ? -1 : lane - static_cast<int>(delta));
}

inline unsigned __ballot_sync(unsigned mask, int pred) {
    gg_host::State& s = gg_host::st();
    const int lane = gg_host::lane_id();
    gg_host::Warp& w = s.warps[gg_host::warp_id()];
    gg_host::exchange(mask, pred ? 1 : 0, -1);  // publishes pred in the lane's slot
    unsigned r = 0;
    for (int l = 0; l < 32; ++l) {
        if (((mask >> l) & 1u) && w.slot[l]) r |= 1u << l;
    }
    (void)lane;
    gg_host::warp_sync(mask);  // nobody overwrites a slot before every lane has read them all
    return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }

// Fibers switch only at barriers, so read-modify-write is atomic here.
template <typename T> inline T atomicAdd(T* p, T v) {
    const T old = *p;
    *p = old + v;
    return old;
}
template <typename T> inline T atomicMax(T* p, T v) {
    const T old = *p;
    *p = old > v ? old : v;
    return old;
}
template <typename T> inline T atomicExch(T* p, T v) {
    const T old = *p;
    *p = v;
    return old;
}
template <typename T> inline T atomicCAS(T* p, T cmp, T v) {
    const T old = *p;
    if (old == cmp) *p = v;
    return old;
}

inline float __int_as_float(int v) { return gg_host::from_bits<float>(static_cast<unsigned>(v)); }
inline int __float_as_int(float v) { return static_cast<int>(static_cast<unsigned>(gg_host::to_bits(v))); }
inline double __longlong_as_double(long long v) {
    return gg_host::from_bits<double>(static_cast<unsigned long long>(v));
}
inline long long __double_as_longlong(double v) { return static_cast<long long>(gg_host::to_bits(v)); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }

#endif  // GG_CUDA_HOST_H
