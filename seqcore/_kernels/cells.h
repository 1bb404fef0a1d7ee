/* Pointwise math of the recurrent cells: activations, the fused per-step passes of every cell
 * (forward and backward), denormal control. The Cython scans (lstm.pyx, gru.pyx, rnn.pyx) call
 * these once per step on a block of rows x hidden units; GEMMs and threads stay in Cython.
 *
 * Why C and not Cython: the hot loops are compiled several times for different instruction
 * sets and picked at run time (GCC target_clones), which Cython cannot express. The loops are
 * written once, in cells_impl.h, and instantiated here for float and double.
 */
#ifndef SEQCORE_CELLS_H
#define SEQCORE_CELLS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(SEQCORE_NATIVE)
#define SC_DISPATCH __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define SC_DISPATCH
#endif

/* ---- float32 activations: branch-free so loops over them vectorize; accurate to a few ulp
 * (tests/test_kernels.py checks <= 1e-6 relative error against float64 NumPy). ---- */

static inline float sc_bits_to_float(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
static inline int32_t sc_float_to_bits(float f) { int32_t i; memcpy(&i, &f, 4); return i; }

/* exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln(2)/2; exp(r) by its Taylor series to
 * r^7 (truncation error < 6e-9 relative). x is clamped to [ln(FLT_MIN), 88.3] so 2^n stays a normal
 * float; NaN passes through the clamps and comes out NaN. */
static inline float sc_expf(float x) {
    const float shifter = 12582912.0f;          /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -87.3365447f ? -87.3365447f : x;     /* ln(FLT_MIN) = -126 ln 2 */
    x = x > 88.3f ? 88.3f : x;
    float k = x * 1.44269504088896341f + shifter;
    int32_t n = sc_float_to_bits(k) - sc_float_to_bits(shifter);
    float nf = k - shifter;
    float r = x - nf * 0.693359375f - nf * -2.12194440e-4f;   /* ln 2 split in hi + lo */
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
              + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    return p * sc_bits_to_float((n + 127) << 23);
}

/* sigmoid via e = exp(-|x|) in (0, 1]: 1/(1+e) for x >= 0, e/(1+e) below, so neither branch
 * overflows or cancels. */
static inline float sc_sigmoidf(float x) {
    float e = sc_expf(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

/* tanh: (1-e)/(1+e) with e = exp(-2|x|) for |x| >= 0.5; below, where 1-e would cancel, the
 * odd Taylor series to x^13 (error < 1e-7 relative at |x| = 0.5). */
static inline float sc_tanhf(float x) {
    float a = fabsf(x);
    float e = sc_expf(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    float a2 = a * a;
    float small = a * (1.0f + a2 * (-1.0f / 3 + a2 * (2.0f / 15 + a2 * (-17.0f / 315
                  + a2 * (62.0f / 2835 + a2 * (-1382.0f / 155925 + a2 * (21844.0f / 6081075)))))));
    return copysignf(a < 0.5f ? small : big, x);
}

/* float64: libm, exact to the last bit or so; the double path is for validation and users who
 * need it, float32 is the fast path. */
static inline double sc_sigmoid(double x) {
    double e = exp(-fabs(x));
    double s = 1.0 / (1.0 + e);
    return x >= 0.0 ? s : e * s;
}

static inline double sc_tanh(double x) { return tanh(x); }

/* ---- denormals: flush-to-zero and denormals-are-zero for the calling thread during a kernel
 * call (RNN states decaying towards zero otherwise hit slow microcode paths). MXCSR is per
 * thread: every thread that works sets it and restores it before returning. ---- */
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
static inline unsigned int sc_ftz_enter(void) {
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040);   /* FTZ (bit 15) | DAZ (bit 6) */
    return old;
}
static inline void sc_ftz_exit(unsigned int old) { _mm_setcsr(old); }
static inline unsigned int sc_get_fpu_mode(void) { return _mm_getcsr(); }
#else
static inline unsigned int sc_ftz_enter(void) { return 0; }
static inline void sc_ftz_exit(unsigned int old) { (void)old; }
static inline unsigned int sc_get_fpu_mode(void) { return 0; }
#endif

/* ---- threads: a step's pass is split by hidden units, thread k taking a block of whole SIMD
 * vectors (multiples of 16 units). Each thread sets flush-to-zero for itself. The caller decides
 * n_threads (1 runs on the calling thread, no OpenMP region). ---- */
#include <omp.h>

static inline void sc_unit_block(int k, int n_blocks, int H, int *j0, int *j1) {
    int per = ((H + n_blocks - 1) / n_blocks + 15) / 16 * 16;
    *j0 = k * per < H ? k * per : H;
    *j1 = (k + 1) * per < H ? (k + 1) * per : H;
}

#define SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, CALL)                                \
    do {                                                                            \
        if ((n_threads) <= 1) {                                                     \
            int j0 = 0, j1 = (H);                                                   \
            CALL;                                                                   \
        } else {                                                                    \
            _Pragma("omp parallel num_threads(n_threads)")                          \
            {                                                                       \
                int j0, j1;                                                         \
                unsigned int sc_mode_ = sc_ftz_enter();                             \
                sc_unit_block(omp_get_thread_num(), omp_get_num_threads(), (H), &j0, &j1); \
                CALL;                                                               \
                sc_ftz_exit(sc_mode_);                                              \
            }                                                                       \
        }                                                                           \
    } while (0)

/* ---- the cells, once per precision ---- */
#define SC_T float
#define SC_NAME(name) name##_f32
#define SC_SIGMOID sc_sigmoidf
#define SC_TANH sc_tanhf
#include "cells_impl.h"
#undef SC_T
#undef SC_NAME
#undef SC_SIGMOID
#undef SC_TANH

#define SC_T double
#define SC_NAME(name) name##_f64
#define SC_SIGMOID sc_sigmoid
#define SC_TANH sc_tanh
#include "cells_impl.h"
#undef SC_T
#undef SC_NAME
#undef SC_SIGMOID
#undef SC_TANH

#endif
