/* Pointwise math of the recurrent cells: activations, the fused per-step passes of every cell
 * (forward and backward), denormal control. The Cython scans (lstm.pyx, gru.pyx, rnn.pyx) call
 * these once per step on a block of rows x hidden units; GEMMs and threads stay in Cython.
 *
 * Why C and not Cython: the hot loops are compiled several times for different instruction
 * sets (AVX-512, AVX2+FMA, baseline) and picked at run time, which Cython cannot express.
 * Layout of the sources:
 *   cells.h        this file: shared helpers, the per-ISA instantiation, the dispatch
 *   cells_isa.h    activations over arrays + the passes, for one instruction set
 *   cells_impl.h   the passes (per-step, per block of units), written once for both precisions
 *   cells_entry.h  entry points: split a pass over threads, call the best variant
 *
 * Why #pragma GCC target regions and not target_clones: with target_clones GCC lowers the
 * 8-lane vector code and decides vectorization for the default target before cloning, and the
 * AVX clones ran baseline code (measured 6x slower activations).
 */
#ifndef SEQCORE_CELLS_H
#define SEQCORE_CELLS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>

/* restrict: the blocks a pass reads and writes never overlap, and saying so lets the
 * compiler vectorize loops over several of them without run-time overlap checks */
#define SC_R __restrict__

/* Before the backward passes' unit loops, which read and write a dozen such blocks: GCC 12
 * leaves them scalar ("no vectype" / "complicated access pattern") although every pointer is
 * restrict, and vectorizes them once told that iterations do not depend on each other (they
 * do not: iteration j touches unit j of each block only). Measured: the LSTM backward pass
 * was 3.6% of a training step at B = 64, H = 512. */
#define SC_IVDEP _Pragma("GCC ivdep")

/* Several instruction sets are compiled only for GCC on x86-64 and not in native builds
 * (SEQCORE_NATIVE=1 compiles one variant with -march=native). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(SEQCORE_NATIVE)
#define SC_MULTI_ISA 1
#endif

#define SC_CAT_(a, b, c) a##b##c
#define SC_CAT(a, b, c) SC_CAT_(a, b, c)

/* Rows for the next register tile when n rows are left: the fewest tiles of up to 6 rows, as
 * even as can be (8: 4 + 4, 16: 6 + 5 + 5, 32: 6 + 6 + 5 + 5 + 5 + 5, not 6 + 6 + 6 + 6 + 4 +
 * 4): a tile's rows share each load of the weights, and on AVX2 a tile of R rows has 2R
 * independent chains, fewer than about 10 of which do not hide the multiply-add latency.
 * 6 or fewer come back as is: the callers decide whether 1 or 2 rows take a tile (the AVX2
 * products take 2; the AVX2 LSTM step gives both to its 8-chain one-row tile). */
#define SC_TILE_ROWS_FOR(n) SC_TILE_ROWS_UPTO(n, 6)
/* the same for tiles of up to m rows: ceil(n / tiles) rows, tiles = ceil(n / m) */
#define SC_TILE_ROWS_UPTO(n, m)                                                              \
    ((n) <= (m) ? (n) : ((n) + ((n) + (m) - 1) / (m) - 1) / (((n) + (m) - 1) / (m)))

/* v stays in its register from here on: the compiler sees an opaque value, which it cannot
 * fold back into the instructions that use it as a memory operand. The register tiles' pieces
 * of U serve every row of a tile, but in tiles of 2 and 3 rows GCC 12 loads each piece again
 * for each row, inside the multiply-add (an LSTM tile of 3 rows: 12 loads of U and 3
 * broadcasts a k instead of 4 and 3), and the loads, not the multiply-adds, then set the pace:
 * the LSTM's fused step (C harness, 1 thread, H = 256) at B = 2 took 11.1-12.6 us, 8.6-9.2
 * with this, B = 3 17.9 -> 11.3-11.5 us (more than B = 4's 13.8-14.7), B = 7 (4 + 3 rows)
 * 33 -> 26 us. From 4 rows on GCC keeps the pieces in registers by itself, and those tiles are
 * left as they were. Only for x86's vector registers ("v": the AVX-512 regions' 64-byte
 * vectors among them); elsewhere nothing. */
#if defined(__GNUC__) && defined(__x86_64__)
#define SC_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define SC_IN_REGISTER(v) ((void)0)
#endif

/* ---- activations, applied to arrays: out[j] = act(x[j]) for j < n (out may equal x). ----
 *
 * float32: written with GCC vector extensions, 8 lanes at a time, so they are SIMD on every
 * target without relying on the auto-vectorizer (which gives up on the bit casts exp needs);
 * the baseline region of cells_isa.h compiles this 8-lane code, the AVX-512 and AVX2 regions
 * use intrinsic versions of the same formulas (below). Accurate to a few ulp:
 * tests/test_kernels.py checks <= 1e-6 relative error against float64 NumPy. */
typedef float sc_v8f __attribute__((vector_size(32)));
typedef int32_t sc_v8i __attribute__((vector_size(32)));
typedef double sc_v4d __attribute__((vector_size(32)));
typedef float sc_v16f __attribute__((vector_size(64)));
typedef double sc_v8d __attribute__((vector_size(64)));
#define SC_V8(c) ((sc_v8f){c, c, c, c, c, c, c, c})

/* The 8-lane helpers are macros so that they belong to no instruction set of their own: each
 * is compiled inside the cells_isa.h region that uses it. */

/* lane-wise m ? a : b for a comparison mask m (all ones / all zeros per lane) */
#define SC_V8_SELECT(m, a, b) ((sc_v8f)(((m) & (sc_v8i)(a)) | (~(m) & (sc_v8i)(b))))

#define SC_V8_ABS(x) ((sc_v8f)((sc_v8i)(x) & 0x7fffffff))

/* exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln(2)/2; exp(r) by its Taylor series to
 * r^7 (truncation error < 6e-9 relative). x is clamped to [ln(FLT_MIN), 88.3] so 2^n stays a
 * normal float; NaN fails both comparisons, passes through and comes out NaN. Adding
 * 1.5 * 2^23 (bits 0x4B400000) rounds to an integer n, left in the low mantissa bits. */
#define SC_V8_EXP(arg) ({                                                                 \
    sc_v8f ex_ = (arg);                                                                   \
    ex_ = SC_V8_SELECT(ex_ < -87.3365447f, SC_V8(-87.3365447f), ex_); /* ln(FLT_MIN) */   \
    ex_ = SC_V8_SELECT(ex_ > 88.3f, SC_V8(88.3f), ex_);                                   \
    sc_v8f ek_ = ex_ * 1.44269504088896341f + 12582912.0f;                                \
    sc_v8f en_ = ek_ - 12582912.0f;                                                       \
    sc_v8f er_ = ex_ - en_ * 0.693359375f - en_ * -2.12194440e-4f;   /* ln 2 = hi + lo */  \
    sc_v8f ep_ = 1.0f + er_ * (1.0f + er_ * (0.5f + er_ * (1.0f / 6 + er_ * (1.0f / 24     \
                 + er_ * (1.0f / 120 + er_ * (1.0f / 720 + er_ * (1.0f / 5040)))))));     \
    ep_ * (sc_v8f)(((sc_v8i)ek_ - 0x4B400000 + 127) << 23);                               \
})

/* sigmoid via e = exp(-|x|) in (0, 1]: 1/(1+e) for x >= 0, e/(1+e) below, so neither branch
 * overflows or cancels. */
#define SC_V8_SIGMOID(arg) ({                                                             \
    sc_v8f sx_ = (arg);                                                                   \
    sc_v8f se_ = SC_V8_EXP(-SC_V8_ABS(sx_));                                              \
    sc_v8f ss_ = 1.0f / (1.0f + se_);                                                     \
    SC_V8_SELECT(sx_ >= 0.0f, ss_, se_ * ss_);                                            \
})

/* tanh: (1-e)/(1+e) with e = exp(-2|x|) for |x| >= 0.5; below, where 1-e would cancel, the
 * odd Taylor series to x^13 (error < 1e-7 relative at |x| = 0.5). Sign copied from x. */
#define SC_V8_TANH(arg) ({                                                                \
    sc_v8f tx_ = (arg);                                                                   \
    sc_v8f ta_ = SC_V8_ABS(tx_);                                                          \
    sc_v8f te_ = SC_V8_EXP(-2.0f * ta_);                                                  \
    sc_v8f tbig_ = (1.0f - te_) / (1.0f + te_);                                           \
    sc_v8f t2_ = ta_ * ta_;                                                               \
    sc_v8f tsmall_ = ta_ * (1.0f + t2_ * (-1.0f / 3 + t2_ * (2.0f / 15 + t2_ * (-17.0f / 315 \
                     + t2_ * (62.0f / 2835 + t2_ * (-1382.0f / 155925                     \
                     + t2_ * (21844.0f / 6081075)))))));                                 \
    sc_v8f tt_ = SC_V8_SELECT(ta_ < 0.5f, tsmall_, tbig_);                                \
    (sc_v8f)((sc_v8i)tt_ | ((sc_v8i)tx_ & (int32_t)0x80000000));                          \
})

/* Apply an L-lane function fn (vectors of type V) to n values of type T; the tail goes through
 * a zero-padded buffer. SC_V8_MAP: 8 floats; SC_D4_MAP (below): 4 doubles. */
#define SC_LANES_MAP(V, T, L, fn, x, out, n) do {                                          \
    int j_ = 0;                                                                           \
    V v_;                                                                                 \
    for (; j_ + (L) <= (n); j_ += (L)) {                                                  \
        memcpy(&v_, (x) + j_, sizeof v_);                                                 \
        v_ = fn(v_);                                                                      \
        memcpy((out) + j_, &v_, sizeof v_);                                               \
    }                                                                                     \
    if (j_ < (n)) {                                                                       \
        T buf_[L] = {0};                                                                  \
        memcpy(buf_, (x) + j_, (size_t)((n) - j_) * sizeof(T));                           \
        memcpy(&v_, buf_, sizeof v_);                                                     \
        v_ = fn(v_);                                                                      \
        memcpy(buf_, &v_, sizeof v_);                                                     \
        memcpy((out) + j_, buf_, (size_t)((n) - j_) * sizeof(T));                         \
    }                                                                                     \
} while (0)
#define SC_V8_MAP(fn, x, out, n) SC_LANES_MAP(sc_v8f, float, 8, fn, x, out, n)

/* float64, 4 lanes at a time with the same vector extensions (one AVX2 register, two SSE2 ones;
 * each cells_isa.h region compiles them), by the float32 formulas with more terms: the
 * scalar libm calls they replace took 42% of the samples of a float64 LSTM inference at
 * (T, B, I, H) = (100, 16, 64, 128). Paired in one process (Sapphire Rapids), that inference
 * 0.42x the time (the GRU's 0.41x, batch 1 0.48x, 2 threads 0.47x), the training steps 0.56x
 * (LSTM) and 0.61x (GRU). Error: at most ~2 ulp over -40..40 (tests/test_kernels.py checks
 * <= 1e-14 relative against NumPy); the float64 kernel tests and gradient checks unchanged. */
typedef int64_t sc_v4l __attribute__((vector_size(32)));
#define SC_D4(c) ((sc_v4d){c, c, c, c})
#define SC_D4_SELECT(m, a, b) ((sc_v4d)(((m) & (sc_v4l)(a)) | (~(m) & (sc_v4l)(b))))
#define SC_D4_ABS(x) ((sc_v4d)((sc_v4l)(x) & 0x7fffffffffffffffLL))

/* For x <= 0 (or NaN), clamped below at ln(DBL_MIN) so that 2^n stays a normal double: x =
 * n ln 2 + r, |r| <= ln(2)/2, into s_ = 2^n and rq_ = exp(r) - 1 = r q(r), q by the Taylor
 * series of (exp(r) - 1) / r to r^12 (truncation error < 5e-18). Then exp(x) = s_ + s_ rq_
 * and expm1(x) = s_ rq_ + (s_ - 1), neither cancelling where it matters (n = 0: rq_ alone).
 * Adding 1.5 * 2^52 (bits 0x4338000000000000) rounds to an integer n, left in the low
 * mantissa bits; ln 2 in two parts (Cody and Waite). */
#define SC_D4_PARTS(arg, s_, rq_) do {                                                     \
    sc_v4d x_ = (arg);                                                                    \
    x_ = SC_D4_SELECT(x_ < -708.3964185322641, SC_D4(-708.3964185322641), x_);            \
    sc_v4d k_ = x_ * 1.4426950408889634 + 6755399441055744.0;                             \
    sc_v4d n_ = k_ - 6755399441055744.0;                                                  \
    sc_v4d r_ = x_ - n_ * 0.6931471803691238 - n_ * 1.9082149292705877e-10;               \
    sc_v4d q_ = r_ * (1.0 / 6227020800.0) + 1.0 / 479001600.0;                           \
    q_ = q_ * r_ + 1.0 / 39916800.0;                                                      \
    q_ = q_ * r_ + 1.0 / 3628800.0;                                                       \
    q_ = q_ * r_ + 1.0 / 362880.0;                                                        \
    q_ = q_ * r_ + 1.0 / 40320.0;                                                         \
    q_ = q_ * r_ + 1.0 / 5040.0;                                                          \
    q_ = q_ * r_ + 1.0 / 720.0;                                                           \
    q_ = q_ * r_ + 1.0 / 120.0;                                                           \
    q_ = q_ * r_ + 1.0 / 24.0;                                                            \
    q_ = q_ * r_ + 1.0 / 6.0;                                                             \
    q_ = q_ * r_ + 0.5;                                                                   \
    q_ = q_ * r_ + 1.0;                                                                   \
    (rq_) = r_ * q_;                                                                      \
    (s_) = (sc_v4d)(((sc_v4l)k_ - 0x4338000000000000LL + 1023) << 52);                    \
} while (0)

/* sigmoid as SC_V8_SIGMOID: e = exp(-|x|), then 1/(1+e) or e/(1+e) */
#define SC_D4_SIGMOID(arg) ({                                                             \
    sc_v4d sx_ = (arg), ss_, srq_;                                                        \
    SC_D4_PARTS(-SC_D4_ABS(sx_), ss_, srq_);                                              \
    sc_v4d se_ = ss_ + ss_ * srq_;                                                        \
    sc_v4d sy_ = 1.0 / (1.0 + se_);                                                       \
    SC_D4_SELECT(sx_ >= 0.0, sy_, se_ * sy_);                                             \
})

/* tanh in one path: m = expm1(-2|x|) in (-1, 0], tanh|x| = -m / (2 + m), no cancellation
 * near 0 (m then carries its own relative accuracy); sign copied from x. */
#define SC_D4_TANH(arg) ({                                                                \
    sc_v4d tx_ = (arg), ts_, trq_;                                                        \
    SC_D4_PARTS(-2.0 * SC_D4_ABS(tx_), ts_, trq_);                                        \
    sc_v4d tm_ = ts_ * trq_ + (ts_ - 1.0);                                                \
    sc_v4d tt_ = SC_D4_ABS(tm_ / (2.0 + tm_));                 /* +0 at x = 0, not -0 */  \
    (sc_v4d)((sc_v4l)tt_ | ((sc_v4l)tx_ & (int64_t)0x8000000000000000ULL));              \
})

#define SC_D4_MAP(fn, x, out, n) SC_LANES_MAP(sc_v4d, double, 4, fn, x, out, n)

/* The fused LSTM update of row b's units j, j + 1, ... (one vector of them), written once for
 * the AVX-512 and the AVX2 tiles (MM: the intrinsics' prefix, _mm512 or _mm256; V: their
 * vector type; TANH: their tanh; LD (p) and ST (p, v): their loads and stores of the state
 * rows, masked ones for an edge panel's units), from the gate activations ig, fg, gv, og in
 * registers: a valid row takes Ct = f * c + i * g and Ht = o * tanh(Ct), a masked row keeps c
 * and h; then the outputs as cells_impl.h's sc_lstm_row_outputs, and with keep_act the
 * activations into Z for backward. Uses the tile's own names H, Z, keep_act, c, h, valid, y,
 * c_store, rmask and Hp_next. */
#define SC_LSTM_ROW_UPDATE(MM, V, TANH, LD, ST, b, j, ig, fg, gv, og) do {               \
    long o_ = (long)(b) * H + (j);                                                        \
    V cn_ = LD(c + o_), hn_ = LD(h + o_);                                                 \
    if (valid[b]) {                                                                       \
        cn_ = MM##_add_ps(MM##_mul_ps(fg, cn_), MM##_mul_ps(ig, gv));          /* Ct */   \
        hn_ = MM##_mul_ps(og, TANH(cn_));                                      /* Ht */   \
        ST(c + o_, cn_);                                                                  \
        ST(h + o_, hn_);                                                                  \
    }                                                                                     \
    if (y) ST(y + o_, valid[b] ? hn_ : MM##_setzero_ps());                                \
    if (c_store) ST(c_store + o_, cn_);                                                   \
    if (Hp_next) ST(Hp_next + o_, rmask ? MM##_mul_ps(hn_, LD(rmask + o_)) : hn_);         \
    if (keep_act) {                                                                       \
        float *zb_ = Z + (long)(b) * 4 * H + (j);                                         \
        ST(zb_, ig);                                                                      \
        ST(zb_ + H, fg);                                                                  \
        ST(zb_ + 2 * H, gv);                                                              \
        ST(zb_ + 3 * H, og);                                                              \
    }                                                                                     \
} while (0)

/* AVX-512 float32 activations, 16 lanes at a time, with the instructions this set adds: exp's
 * 2^n by vscalefps (no integer bit tricks), the clamps by vmaxps, and the divisions by a 14-bit
 * reciprocal estimate refined by one Newton step (relative error ~2^-27 before rounding)
 * instead of vdivps, whose throughput bounded the 8-lane code. Same formulas and the same
 * accuracy test as the 8-lane versions; measured alone on Zen 4: sigmoid 0.53 -> 0.30 ns and
 * tanh 0.73 -> 0.46 ns per value (tanh's one path, below, since: 0.46 -> 0.38 ns on Sapphire
 * Rapids). Their own target region, listing features rather than
 * arch=: GCC 12 refuses to inline the AVX-512 intrinsics into arch= regions. */
#ifdef SC_MULTI_ISA
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,fma")
#define SC_V16(c) _mm512_set1_ps(c)

/* q(r) = (exp(r) - 1) / r by the Taylor series of exp to r^7, for |r| <= ln(2)/2 (truncation
 * error < 6e-9 relative): exp(r) = 1 + r q(r), expm1(r) = r q(r). */
static inline __m512 sc_exp_q_v16(__m512 r) {
    __m512 q = _mm512_fmadd_ps(r, SC_V16(1.0f / 5040), SC_V16(1.0f / 720));
    q = _mm512_fmadd_ps(r, q, SC_V16(1.0f / 120));
    q = _mm512_fmadd_ps(r, q, SC_V16(1.0f / 24));
    q = _mm512_fmadd_ps(r, q, SC_V16(1.0f / 6));
    q = _mm512_fmadd_ps(r, q, SC_V16(0.5f));
    return _mm512_fmadd_ps(r, q, SC_V16(1.0f));
}

/* x <= 0 (or NaN), clamped below at ln(FLT_MIN) as SC_V8_EXP, as n ln 2 + r with n an integer
 * (into *n) and |r| <= ln(2)/2 (returned): exp's and expm1's range reduction. vmaxps returns
 * its second operand when one is NaN, so x goes second and NaN passes through. */
static inline __m512 sc_exp_reduce_v16(__m512 x, __m512 *n) {
    x = _mm512_max_ps(SC_V16(-87.3365447f), x);
    *n = _mm512_roundscale_ps(_mm512_mul_ps(x, SC_V16(1.44269504088896341f)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(*n, SC_V16(0.693359375f), x);         /* ln 2 = hi + lo */
    return _mm512_fnmadd_ps(*n, SC_V16(-2.12194440e-4f), r);
}

/* exp(x) for x <= 0 (or NaN), clamped below at ln(FLT_MIN) */
static inline __m512 sc_exp_nonpos_v16(__m512 x) {
    __m512 n, r = sc_exp_reduce_v16(x, &n);
    return _mm512_scalef_ps(_mm512_fmadd_ps(r, sc_exp_q_v16(r), SC_V16(1.0f)), n);
}

/* 1/d for d in [1, 2]: the estimate r, then r + r(1 - dr) */
static inline __m512 sc_recip_v16(__m512 d) {
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, SC_V16(1.0f)), r);
}

static inline __m512 sc_sigmoid_v16(__m512 x) {
    __m512 e = sc_exp_nonpos_v16(_mm512_or_ps(x, SC_V16(-0.0f)));        /* exp(-|x|) */
    __m512 s = sc_recip_v16(_mm512_add_ps(SC_V16(1.0f), e));
    __mmask16 neg = _mm512_cmp_ps_mask(x, SC_V16(0.0f), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(s, neg, e, s);
}

/* tanh(x) = -m / (2 + m) with m = expm1(-2|x|), sign copied from x: one path for every x (the
 * exp-based formula (1 - e) / (1 + e) cancels for small |x| and needs a second, polynomial
 * branch there: 34 instructions against 25). expm1(y) = 2^n expm1(r) + (2^n - 1) with
 * y = n ln 2 + r, expm1(r) = r (1 + r/2 + ... + r^6/5040), which keeps its relative accuracy
 * as y -> 0 (n = 0), and the sum does not cancel when n < 0 (2^n - 1 <= -1/2,
 * |2^n expm1(r)| < 0.21). */
static inline __m512 sc_tanh_v16(__m512 x) {
    __m512 n, r = sc_exp_reduce_v16(_mm512_mul_ps(_mm512_andnot_ps(SC_V16(-0.0f), x),
                                                  SC_V16(-2.0f)), &n);
    __m512 s = _mm512_scalef_ps(SC_V16(1.0f), n);                         /* 2^n */
    __m512 m = _mm512_fmadd_ps(s, _mm512_mul_ps(r, sc_exp_q_v16(r)),
                               _mm512_sub_ps(s, SC_V16(1.0f)));
    __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), m),
                             sc_recip_v16(_mm512_add_ps(SC_V16(2.0f), m)));
    return _mm512_or_ps(t, _mm512_and_ps(x, SC_V16(-0.0f)));             /* sign of x */
}

/* out[j] = fn(x[j]), j < n; the tail through masked loads and stores */
#define SC_V16_MAP(fn, x, out, n) do {                                                    \
    int j_ = 0;                                                                           \
    for (; j_ + 16 <= (n); j_ += 16)                                                      \
        _mm512_storeu_ps((out) + j_, fn(_mm512_loadu_ps((x) + j_)));                      \
    if (j_ < (n)) {                                                                       \
        __mmask16 m_ = (__mmask16)((1u << ((n) - j_)) - 1);                               \
        _mm512_mask_storeu_ps((out) + j_, m_, fn(_mm512_maskz_loadu_ps(m_, (x) + j_)));   \
    }                                                                                     \
} while (0)

static void sc_sigmoid16_array(const float *x, float *out, int n) {
    SC_V16_MAP(sc_sigmoid_v16, x, out, n);
}

static void sc_tanh16_array(const float *x, float *out, int n) {
    SC_V16_MAP(sc_tanh_v16, x, out, n);
}

/* Loads and stores of the register tiles below, EDGE (a constant in each tile function) and m
 * being the tile's: an edge panel's (EDGE) only touch its units' lanes (m: the n < 16 units
 * below H), whatever lies past them (the next gate's or row's values, or the end of the
 * array) neither read nor written; a full panel's are plain 16-lane ones. An edge panel (H not
 * a multiple of 16: H = 100 has 7 panels, the last of 4 units) went through the generic item
 * of cells_impl.h (gate sums to small arrays, activations over them, the update in loops) or,
 * for the GRU, the unfused product and pass, and cost about what 3 full panels do. Paired in
 * one process, inference, 1 thread: GRU (T, B, I, H) = (100, 16, 64, 100) 0.88x the time,
 * (100, 1, 64, 100) 0.77x, (100, 16, 64, 200) 0.93x; LSTM 0.96x, 0.96x and 0.98x; training
 * GRU 0.96 / 0.975x (H = 100 / 200); H = 256 unchanged. H = 100 now takes the time of H = 112
 * (1.77 against 1.83 ms for the LSTM at B = 16; 1.86 against 1.76 before). */
#define SC_LD16(p) (EDGE ? _mm512_maskz_loadu_ps(m, (p)) : _mm512_loadu_ps(p))
#define SC_ST16(p, v) do {                                                                  \
    if (EDGE) _mm512_mask_storeu_ps((p), m, (v));                                          \
    else _mm512_storeu_ps((p), (v));                                                       \
} while (0)

/* The fused LSTM step's register tile of R rows x one panel of 16 units (rows r..r+R-1,
 * units j0..j0+15; EDGE: an edge panel, whose units below H are m's lanes: its packed U is
 * zero past H, so its product runs as a full one's and its loads and stores of Z and the
 * state rows are masked), as sc_lstm_forward_item's generic tile in cells_impl.h with the same
 * arguments, but with the activations and the state update done on the accumulators in
 * registers: the generic tile stores the gates to small arrays, calls the activation
 * functions on them and updates the state in loops (its activations cannot be inlined there:
 * GCC 12 does not inline these intrinsics into the arch= region that code is compiled in).
 * u: gate g of the tile's units at u + g * gs, consecutive k ks values apart; the product
 * runs over K values of k (H, or a part of the state: Hp and u then start at its first k).
 * R is a constant in each of the functions below (R x 4 accumulators, 4 pieces of U and a
 * broadcast: up to 29 of the 32 registers at R = 6). PARTIAL (a constant): the sums go back to
 * Z after the product, nothing else is done (the overlapped step's first part:
 * sc_lstm_partial_tiles_v16). */
static inline __attribute__((always_inline)) void sc_lstm_tile_v16(
        const int R, const int EDGE, const int PARTIAL, __mmask16 m, int r, int j0, int H, int K,
        const float *Hp,
        const float *u, long gs, long ks, float *Z, int keep_act, float *c, float *h,
        const unsigned char *valid, float *y, float *c_store, const float *rmask,
        float *Hp_next) {
    __m512 acc[6][4];
    const float *a[6];
    for (int i = 0; i < R; i++) {
        a[i] = Hp + (long)(r + i) * H;
        for (int g = 0; g < 4; g++) acc[i][g] = SC_LD16(Z + (long)(r + i) * 4 * H + g * H + j0);
    }
    for (int k = 0; k < K; k++) {
        const float *uk = u + k * ks;
        __m512 u0 = _mm512_loadu_ps(uk), u1 = _mm512_loadu_ps(uk + gs);
        __m512 u2 = _mm512_loadu_ps(uk + 2 * gs), u3 = _mm512_loadu_ps(uk + 3 * gs);
        if (R == 2 || R == 3) {       /* each piece serves R rows: load it once */
            SC_IN_REGISTER(u0);
            SC_IN_REGISTER(u1);
            SC_IN_REGISTER(u2);
            SC_IN_REGISTER(u3);
        }
        for (int i = 0; i < R; i++) {
            __m512 ak = _mm512_set1_ps(a[i][k]);
            acc[i][0] = _mm512_fmadd_ps(ak, u0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ak, u1, acc[i][1]);
            acc[i][2] = _mm512_fmadd_ps(ak, u2, acc[i][2]);
            acc[i][3] = _mm512_fmadd_ps(ak, u3, acc[i][3]);
        }
    }
    if (PARTIAL) {
        for (int i = 0; i < R; i++)
            for (int g = 0; g < 4; g++) SC_ST16(Z + (long)(r + i) * 4 * H + g * H + j0, acc[i][g]);
        return;
    }
    for (int i = 0; i < R; i++) {
        long b = r + i;
        __m512 ig = sc_sigmoid_v16(acc[i][0]), fg = sc_sigmoid_v16(acc[i][1]);
        __m512 gg = sc_tanh_v16(acc[i][2]), og = sc_sigmoid_v16(acc[i][3]);
        SC_LSTM_ROW_UPDATE(_mm512, __m512, sc_tanh_v16, SC_LD16, SC_ST16, b, j0, ig, fg, gg, og);
    }
}

/* sc_lstm_tile<R>_v16 (full panels) and sc_lstm_tile<R>e_v16 (an edge panel, lanes m) */
#define SC_LSTM_TILE_V16(R, EDGE, name)                                                       \
    static void name(__mmask16 m, int r, int j0, int H, int K, const float *Hp,              \
                     const float *u, long gs, long ks, float *Z, int keep_act, float *c,      \
                     float *h, const unsigned char *valid, float *y, float *c_store,          \
                     const float *rmask, float *Hp_next) {                                    \
        sc_lstm_tile_v16(R, EDGE, 0, m, r, j0, H, K, Hp, u, gs, ks, Z, keep_act, c, h, valid, \
                         y, c_store, rmask, Hp_next);                                         \
    }
#define SC_LSTM_TILES_V16(R)                                                                  \
    SC_LSTM_TILE_V16(R, 0, sc_lstm_tile##R##_v16)                                             \
    SC_LSTM_TILE_V16(R, 1, sc_lstm_tile##R##e_v16)
SC_LSTM_TILES_V16(1)
SC_LSTM_TILES_V16(2)
SC_LSTM_TILES_V16(3)
SC_LSTM_TILES_V16(4)
SC_LSTM_TILES_V16(5)
SC_LSTM_TILES_V16(6)
#undef SC_LSTM_TILES_V16
#undef SC_LSTM_TILE_V16

/* TILE(R) for the R (1 to 6, a value known only at run time) that the tile functions below
 * are compiled for, each with R a constant. */
#define SC_TILE_OF_ROWS(R, TILE) do {                                                       \
    switch (R) {                                                                           \
        case 6: TILE(6); break;                                                            \
        case 5: TILE(5); break;                                                            \
        case 4: TILE(4); break;                                                            \
        case 3: TILE(3); break;                                                            \
        case 2: TILE(2); break;                                                            \
        default: TILE(1); break;                                                           \
    }                                                                                      \
} while (0)

/* Rows [0, active) of one panel (units j0.., n of them) in register tiles of up to 6 rows,
 * split as evenly as SC_TILE_ROWS_FOR splits them (16: 6 + 5 + 5): each tile streams the
 * panel's U once, and a
 * pass over U for a single row costs about as much as one for 4 (B = 1, H = 256: 13.7 us a
 * step against 23 us for 4 rows), so a batch of 5 is one tile of 5 rows, not 4 + 1 (42-45 ->
 * 34 us a step). Tiles of 6 and 5 rows rather than 4 (Sapphire Rapids, 1 thread, the LSTM
 * forward with a one-feature input, so that the step is the whole of it, paired in one
 * process): 0.94x the time at B = 12 and 16, H = 256, 0.93x at B = 32, H = 512. */
static void sc_lstm_tiles_v16(int active, int j0, int n, int H, int K, const float *Hp,
                              const float *u, long gs, long ks, float *Z, int keep_act,
                              float *c, float *h, const unsigned char *valid, float *y,
                              float *c_store, const float *rmask, float *Hp_next) {
    const __mmask16 m = (__mmask16)((1u << n) - 1);
#define SC_TILE(R) sc_lstm_tile##R##_v16(m, r, j0, H, K, Hp, u, gs, ks, Z, keep_act, c, h,   \
                                         valid, y, c_store, rmask, Hp_next)
#define SC_TILE_EDGE(R) sc_lstm_tile##R##e_v16(m, r, j0, H, K, Hp, u, gs, ks, Z, keep_act, c, \
                                               h, valid, y, c_store, rmask, Hp_next)
    for (int r = 0, R; r < active; r += R) {
        R = SC_TILE_ROWS_FOR(active - r);
        if (n == 16) SC_TILE_OF_ROWS(R, SC_TILE);
        else SC_TILE_OF_ROWS(R, SC_TILE_EDGE);
    }
#undef SC_TILE
#undef SC_TILE_EDGE
}

/* Rows [0, active) of one panel, one row at a time: the product over K values of k added to
 * Z, nothing else (the first part of the overlapped step: cells_impl.h sc_lstm_partial_item),
 * by the tile above with PARTIAL set. The generic loop there (the sums read from Z and
 * written back through small arrays on the stack) made the step slower: Zen 4, 2 threads,
 * paired in one process, LSTM inference (1000, 1, 8, 256) 1.036x the time, (100, 1, 128, 256)
 * 1.02x, (100, 1, 64, 128) 1.01x, (100, 1, 64, 100) (an edge panel) 1.065x. */
static void sc_lstm_partial_tiles_v16(int active, int j0, int n, int H, int K, const float *Hp,
                                      const float *u, long gs, long ks, float *Z) {
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    for (int r = 0; r < active; r++) {
        if (n == 16)
            sc_lstm_tile_v16(1, 0, 1, m, r, j0, H, K, Hp, u, gs, ks, Z, 0, NULL, NULL, NULL,
                             NULL, NULL, NULL, NULL);
        else
            sc_lstm_tile_v16(1, 1, 1, m, r, j0, H, K, Hp, u, gs, ks, Z, 0, NULL, NULL, NULL,
                             NULL, NULL, NULL, NULL);
    }
}

/* The k loop of the GRU and RNN register tiles below: acc[(i * NP + q) * G + g] += sum over
 * k < K of a[i][k] * (gate g of panel q at k), for rows i < R, panels q < NP and gates g < G
 * (R, NP, G constants at each call, so that the sums stay in registers), gate g of panel q at
 * u + q * ps + g * gs, consecutive k 16 values apart. uk steps by a pointer increment: as
 * u + k * 16 with an int k, GCC 12 rebuilt the address each k from k (shift, sign extension,
 * two adds: 10 instructions for 3 multiply-adds at a batch of 1). */
static inline __attribute__((always_inline)) void sc_panel_sums_v16(
        const int R, const int NP, const int G, int K, const float *const *a, const float *u,
        long ps, long gs, __m512 *acc) {
    const float *uk = u;
    for (int k = 0; k < K; k++, uk += 16) {
        __m512 uv[4][3];
        for (int q = 0; q < NP; q++)
            for (int g = 0; g < G; g++) {
                uv[q][g] = _mm512_loadu_ps(uk + q * ps + g * gs);
                if (R == 2 || R == 3) SC_IN_REGISTER(uv[q][g]);   /* loaded once */
            }
        for (int i = 0; i < R; i++) {
            __m512 ak = _mm512_set1_ps(a[i][k]);
            for (int q = 0; q < NP; q++)
                for (int g = 0; g < G; g++)
                    acc[(i * NP + q) * G + g] = _mm512_fmadd_ps(ak, uv[q][g],
                                                                acc[(i * NP + q) * G + g]);
        }
    }
}

/* The GRU (reset_after) step's register tile of R rows x NP panels of 16 units (rows
 * r..r+R-1, units j0..j0+16NP-1; NP is 1, or 2 for a single row; EDGE: one edge panel, m as
 * the LSTM's tile takes them): the recurrent product of the three gates, starting from the
 * recurrent bias bh (NULL: zero), then the pointwise pass of cells_impl.h's
 * sc_gru_forward_block on the sums in registers, as the LSTM's tile does (the product into
 * the AH workspace and a pass over small arrays cost 13% of the samples of a 2-thread GRU
 * forward at B = 16, H = 256). u: gate g of the tile's first panel at u + g * gs,
 * consecutive k 16 values apart, the next panel 16H values on (sc_pack_panels' gate-by-gate
 * layout). AX (ld 3H) holds Xt W + bx on entry; training (An_store given) gets the activations
 * z, r, n there for valid rows and the n block's recurrent sums in An_store (ld H), as the
 * pass leaves them. R x NP is a constant in each of the functions below (3 accumulators each,
 * 3 NP pieces of U and a broadcast: up to 28 of the 32 registers at R = 8). The lines of AX and
 * h that the pass will read are asked for before the product, which hides their latency behind
 * it (a training step, whose AX comes from memory, 1 thread, B = 16, H = 256: 1.03 -> 0.99x
 * the time of the unfused step).
 * PART (a constant) splits the product over the state for the overlapped step
 * (cells_entry.h): SC_GRU_WHOLE, all of it as above (k0 = 0, K = H, S unused); SC_GRU_FIRST,
 * the sums over the K values of k from k0 on, from bh, go to S (ld 3H, AH's layout) and
 * nothing else is done; SC_GRU_REST, the sums start from S's and run over k0..k0+K-1, then
 * the pass. */
enum { SC_GRU_WHOLE, SC_GRU_FIRST, SC_GRU_REST };
static inline __attribute__((always_inline)) void sc_gru_tile_v16(
        const int R, const int NP, const int EDGE, const int PART, __mmask16 m, int r, int j0,
        int H, int k0, int K, float *S, const float *Hp, const float *u, long gs,
        const float *bh, float *AX, float *h, const unsigned char *valid, float *y,
        float *An_store, const float *rmask, float *Hp_next, float *H_next) {
    __m512 acc[8][3];                   /* [i * NP + q]: row i, panel q */
    const float *a[8];
    for (int q = 0; q < NP; q++)
        for (int g = 0; g < 3; g++) {
            __m512 start = bh ? SC_LD16(bh + g * H + j0 + 16 * q) : _mm512_setzero_ps();
            for (int i = 0; i < R; i++)
                acc[i * NP + q][g] = PART == SC_GRU_REST
                    ? SC_LD16(S + (long)(r + i) * 3 * H + g * H + j0 + 16 * q) : start;
        }
    for (int i = 0; i < R; i++) {
        long b = r + i;
        a[i] = Hp + b * H + k0;
        if (PART == SC_GRU_FIRST) continue;     /* no pass after it */
        for (int q = 0; q < NP; q++) {
            const float *xz = AX + b * 3 * H + j0 + 16 * q;
            __builtin_prefetch(xz, 1, 3);
            __builtin_prefetch(xz + H, 1, 3);
            __builtin_prefetch(xz + 2 * H, 1, 3);
            __builtin_prefetch(h + b * H + j0 + 16 * q, 1, 3);
        }
    }
    sc_panel_sums_v16(R, NP, 3, K, a, u + (long)k0 * 16, (long)H * 16, gs, &acc[0][0]);
    if (PART == SC_GRU_FIRST) {
        for (int i = 0; i < R; i++)
            for (int q = 0; q < NP; q++)
                for (int g = 0; g < 3; g++)
                    SC_ST16(S + (long)(r + i) * 3 * H + g * H + j0 + 16 * q, acc[i * NP + q][g]);
        return;
    }
    for (int i = 0; i < R; i++)
        for (int q = 0; q < NP; q++) {
            long b = r + i, o = b * H + j0 + 16 * q;
            const int t = i * NP + q;
            float *xz = AX + b * 3 * H + j0 + 16 * q, *xr = xz + H, *xn = xz + 2 * H;
            __m512 hv = SC_LD16(h + o);
            if (An_store) SC_ST16(An_store + o, acc[t][2]);
            if (valid[b]) {
                __m512 z = sc_sigmoid_v16(_mm512_add_ps(SC_LD16(xz), acc[t][0]));          /* Zt */
                __m512 rg = sc_sigmoid_v16(_mm512_add_ps(SC_LD16(xr), acc[t][1]));         /* Rt */
                __m512 n = sc_tanh_v16(_mm512_fmadd_ps(rg, acc[t][2], SC_LD16(xn)));
                hv = _mm512_fmadd_ps(z, hv, _mm512_mul_ps(_mm512_sub_ps(SC_V16(1.0f), z), n));
                SC_ST16(h + o, hv);
                if (An_store) {
                    SC_ST16(xz, z);
                    SC_ST16(xr, rg);
                    SC_ST16(xn, n);
                }
            }
            if (y) SC_ST16(y + o, valid[b] ? hv : _mm512_setzero_ps());
            if (Hp_next) SC_ST16(Hp_next + o, rmask ? _mm512_mul_ps(hv, SC_LD16(rmask + o)) : hv);
            if (H_next) SC_ST16(H_next + o, hv);
        }
}

/* sc_gru_tile<R>_v16 (full panels), sc_gru_tile<R>e_v16 (an edge panel, lanes m) */
#define SC_GRU_TILE_V16(R, NP, EDGE, name)                                                    \
    static void name(__mmask16 m, int r, int j0, int H, const float *Hp, const float *u,      \
                     long gs, const float *bh, float *AX, float *h,                           \
                     const unsigned char *valid, float *y, float *An_store,                   \
                     const float *rmask, float *Hp_next, float *H_next) {                     \
        sc_gru_tile_v16(R, NP, EDGE, SC_GRU_WHOLE, m, r, j0, H, 0, H, NULL, Hp, u, gs, bh, AX, \
                        h, valid, y, An_store, rmask, Hp_next, H_next);                       \
    }
#define SC_GRU_TILES_V16(R)                                                                   \
    SC_GRU_TILE_V16(R, 1, 0, sc_gru_tile##R##_v16)                                            \
    SC_GRU_TILE_V16(R, 1, 1, sc_gru_tile##R##e_v16)
SC_GRU_TILES_V16(1)
SC_GRU_TILES_V16(2)
SC_GRU_TILES_V16(3)
SC_GRU_TILES_V16(4)
SC_GRU_TILES_V16(5)
SC_GRU_TILES_V16(6)
SC_GRU_TILES_V16(7)
SC_GRU_TILES_V16(8)
SC_GRU_TILE_V16(1, 2, 0, sc_gru_tile1x2_v16)
#undef SC_GRU_TILES_V16
#undef SC_GRU_TILE_V16

/* Rows [0, active) of `panels` consecutive panels of the GRU step (u: the first's; the
 * caller asks for 2 when active is 1), of n units each: 16, or fewer for an edge panel
 * (panels then 1). Each panel: register tiles of up to 8 rows, the fewest such tiles, as
 * even as can be (16: 8 + 8; 6-row tiles, 6 + 5 + 5, took 1.5-2% more time at
 * B = 16 and 64 on one thread). A single row takes two panels in one tile: its product streams
 * U at the rate of the L2 cache either way, but the pointwise pass after it, a chain of
 * dependent steps (sigmoid, then tanh, then the new state) for a single vector, then has a
 * second, independent one beside it (a tile with no pointwise pass at all took 0.89x the time
 * of one panel's; two panels' 0.95x at H = 256, 0.91x at H = 128: C harness, one thread). */
static void sc_gru_tiles_v16(int active, int panels, int j0, int n, int H, const float *Hp,
                             const float *u, long gs, const float *bh, float *AX, float *h,
                             const unsigned char *valid, float *y, float *An_store,
                             const float *rmask, float *Hp_next, float *H_next) {
    const __mmask16 m = (__mmask16)((1u << n) - 1);
#define SC_TILE(R) sc_gru_tile##R##_v16(m, r, j0, H, Hp, u, gs, bh, AX, h, valid, y,        \
                                        An_store, rmask, Hp_next, H_next)
#define SC_TILE_EDGE(R) sc_gru_tile##R##e_v16(m, r, j0, H, Hp, u, gs, bh, AX, h, valid, y,  \
                                              An_store, rmask, Hp_next, H_next)
    if (panels == 2 && active == 1) {
        int r = 0;
        SC_TILE(1x2);
        return;
    }
/* TILE(R) for R = 1 to 8 */
#define SC_GRU_TILE_OF_ROWS(R, TILE) do {                                                   \
    if ((R) == 8) TILE(8);                                                                 \
    else if ((R) == 7) TILE(7);                                                            \
    else SC_TILE_OF_ROWS(R, TILE);                                                         \
} while (0)
    for (int q = 0; q < panels; q++, j0 += 16, u += (long)H * 16)    /* panel by panel */
        for (int r = 0, R; r < active; r += R) {
            R = SC_TILE_ROWS_UPTO(active - r, 8);
            if (n < 16) SC_GRU_TILE_OF_ROWS(R, SC_TILE_EDGE);
            else SC_GRU_TILE_OF_ROWS(R, SC_TILE);
        }
#undef SC_GRU_TILE_OF_ROWS
#undef SC_TILE
#undef SC_TILE_EDGE
}

/* One row's part of the overlapped GRU step over the panels of units [j0, j1) (j0 a multiple
 * of 16; rest: SC_GRU_REST's part, else SC_GRU_FIRST's, as sc_gru_tile_v16 takes them; row
 * r = 0), two panels a tile where two are left, as sc_gru_tiles_v16 takes a single row. */
#define SC_GRU_SPLIT_TILE_V16(NP, EDGE, PART, name)                                           \
    static void name(__mmask16 m, int j0, int H, int k0, int K, float *S, const float *Hp,   \
                     const float *u, long gs, const float *bh, float *AX, float *h,            \
                     const unsigned char *valid, float *y, const float *rmask,                \
                     float *Hp_next) {                                                        \
        sc_gru_tile_v16(1, NP, EDGE, PART, m, 0, j0, H, k0, K, S, Hp, u, gs, bh, AX, h, valid, \
                        y, NULL, rmask, Hp_next, NULL);                                       \
    }
SC_GRU_SPLIT_TILE_V16(1, 0, SC_GRU_FIRST, sc_gru_first1_v16)
SC_GRU_SPLIT_TILE_V16(1, 1, SC_GRU_FIRST, sc_gru_first1e_v16)
SC_GRU_SPLIT_TILE_V16(2, 0, SC_GRU_FIRST, sc_gru_first2_v16)
SC_GRU_SPLIT_TILE_V16(1, 0, SC_GRU_REST, sc_gru_rest1_v16)
SC_GRU_SPLIT_TILE_V16(1, 1, SC_GRU_REST, sc_gru_rest1e_v16)
SC_GRU_SPLIT_TILE_V16(2, 0, SC_GRU_REST, sc_gru_rest2_v16)
#undef SC_GRU_SPLIT_TILE_V16

static void sc_gru_split_tiles_v16(int rest, int j0, int j1, int H, int k0, int K, float *S,
                                   const float *Hp, const float *Upk, long gs,
                                   const float *bh, float *AX, float *h,
                                   const unsigned char *valid, float *y, const float *rmask,
                                   float *Hp_next) {
    for (int panels; j0 < j1; j0 += 16 * panels) {
        const int n = j1 - j0 < 16 ? j1 - j0 : 16;
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        const float *u = Upk + (long)j0 * H;
        panels = j0 + 32 <= j1 ? 2 : 1;
#define SC_SPLIT_ARGS m, j0, H, k0, K, S, Hp, u, gs, bh, AX, h, valid, y, rmask, Hp_next
        if (panels == 2) {
            if (rest) sc_gru_rest2_v16(SC_SPLIT_ARGS);
            else sc_gru_first2_v16(SC_SPLIT_ARGS);
        } else if (n == 16) {
            if (rest) sc_gru_rest1_v16(SC_SPLIT_ARGS);
            else sc_gru_first1_v16(SC_SPLIT_ARGS);
        } else {
            if (rest) sc_gru_rest1e_v16(SC_SPLIT_ARGS);
            else sc_gru_first1e_v16(SC_SPLIT_ARGS);
        }
#undef SC_SPLIT_ARGS
    }
}

/* The GRU (reset_after=False) step's two phases as register tiles of R rows x NP full panels
 * of 16 units (rows r..r+R-1, units j0..j0+16NP-1), each product with its pass of
 * cells_impl.h (sc_gru1_gates_block, sc_gru1_forward_block) on the sums in registers,
 * instead of the product into the AZR / AN workspaces and the pass over them. u: gate g of the
 * first panel at u + g * gs, consecutive k 16 values apart, the next panel 16H values on
 * (sc_pack_panels). Phase a (2 panels): z and r from Hp U_z, Hp U_r and AX (written back to AX
 * as the pass leaves them), RH = r * Hp. Phase b (4 panels), once every unit of RH is in: n
 * from RH U_n and AX's n block, then the new h of a valid row (y: h, or zero for a masked
 * row). As the products' own tiles, up to 6 rows x 4 vectors of sums (24 accumulators: a
 * single row still has 4 chains of multiply-adds); the sums run over k in the product's
 * order, from zero, then are added to AX. */
enum { SC_GRU1_A_PANELS = 2, SC_GRU1_B_PANELS = 4 };
static inline __attribute__((always_inline)) void sc_gru1_tile_a_v16(
        const int R, int r, int j0, int H, const float *Hp, const float *u, long gs, float *AX,
        float *RH) {
    enum { NP = SC_GRU1_A_PANELS };
    __m512 acc[6][NP][2];
    const float *a[6];
    for (int i = 0; i < R; i++) {
        a[i] = Hp + (long)(r + i) * H;
        for (int q = 0; q < NP; q++) acc[i][q][0] = acc[i][q][1] = _mm512_setzero_ps();
    }
    sc_panel_sums_v16(R, NP, 2, H, a, u, (long)H * 16, gs, &acc[0][0][0]);
    for (int i = 0; i < R; i++)
        for (int q = 0; q < NP; q++) {
            long b = r + i;
            float *xz = AX + b * 3 * H + j0 + 16 * q, *xr = xz + H;
            __m512 z = sc_sigmoid_v16(_mm512_add_ps(_mm512_loadu_ps(xz), acc[i][q][0])); /* Zt */
            __m512 rg = sc_sigmoid_v16(_mm512_add_ps(_mm512_loadu_ps(xr), acc[i][q][1]));/* Rt */
            _mm512_storeu_ps(xz, z);
            _mm512_storeu_ps(xr, rg);
            _mm512_storeu_ps(RH + b * H + j0 + 16 * q,
                             _mm512_mul_ps(rg, _mm512_loadu_ps(a[i] + j0 + 16 * q)));
        }
}

/* Sums of one gate over 4 panels (phase b of the reset-before GRU, and the simple RNN's step:
 * cells_impl.h sc_rnn_forward_block's pass on them) for R rows of `a` (ld H). MODE: 0, the
 * GRU's n and new h (sums from zero, then AX's n block added; Z: AX, ld 3H); 1 and 2, the
 * RNN's tanh and relu (sums from Z's values, the pre-activations, ld H, which then hold the
 * activations, as the unfused pass leaves them). */
enum { SC_TILE_GRU1_N = 0, SC_TILE_RNN_TANH = 1, SC_TILE_RNN_RELU = 2 };
static inline __attribute__((always_inline)) void sc_gate_tile_v16(
        const int R, const int MODE, int r, int j0, int H, const float *A, const float *u,
        float *Z, float *h, const unsigned char *valid, float *y) {
    enum { NP = SC_GRU1_B_PANELS };
    const long ldz = MODE == SC_TILE_GRU1_N ? 3L * H : H;
    __m512 acc[6][NP];
    const float *a[6];
    for (int i = 0; i < R; i++) {
        a[i] = A + (long)(r + i) * H;
        for (int q = 0; q < NP; q++)
            acc[i][q] = MODE == SC_TILE_GRU1_N
                ? _mm512_setzero_ps() : _mm512_loadu_ps(Z + (r + i) * ldz + j0 + 16 * q);
    }
    sc_panel_sums_v16(R, NP, 1, H, a, u, (long)H * 16, 0, &acc[0][0]);
    for (int i = 0; i < R; i++)
        for (int q = 0; q < NP; q++) {
            long b = r + i, o = b * H + j0 + 16 * q;
            if (!valid[b]) {
                if (y) _mm512_storeu_ps(y + o, _mm512_setzero_ps());
                continue;
            }
            float *z = Z + b * ldz + j0 + 16 * q;
            __m512 hv;
            if (MODE == SC_TILE_GRU1_N) {
                float *xn = z + 2 * H;
                __m512 n = sc_tanh_v16(_mm512_add_ps(_mm512_loadu_ps(xn), acc[i][q]));   /* Nt */
                __m512 zg = _mm512_loadu_ps(z);
                _mm512_storeu_ps(xn, n);
                hv = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), zg), n),
                                   _mm512_mul_ps(zg, _mm512_loadu_ps(h + o)));
            } else {
                hv = MODE == SC_TILE_RNN_RELU ? _mm512_max_ps(acc[i][q], _mm512_setzero_ps())
                                              : sc_tanh_v16(acc[i][q]);
                _mm512_storeu_ps(z, hv);
            }
            _mm512_storeu_ps(h + o, hv);
            if (y) _mm512_storeu_ps(y + o, hv);
        }
}

#define SC_GRU1_TILES_V16(R)                                                                  \
    static void sc_gru1_tile##R##a_v16(int r, int j0, int H, const float *Hp, const float *u, \
                                       long gs, float *AX, float *RH) {                       \
        sc_gru1_tile_a_v16(R, r, j0, H, Hp, u, gs, AX, RH);                                   \
    }                                                                                         \
    static void sc_gru1_tile##R##b_v16(int r, int j0, int H, const float *RH, const float *u, \
                                       float *AX, float *h, const unsigned char *valid,       \
                                       float *y) {                                            \
        sc_gate_tile_v16(R, SC_TILE_GRU1_N, r, j0, H, RH, u, AX, h, valid, y);                \
    }                                                                                         \
    static void sc_rnn_tile##R##t_v16(int r, int j0, int H, const float *Hp, const float *u,  \
                                      float *A, float *h, const unsigned char *valid,         \
                                      float *y) {                                             \
        sc_gate_tile_v16(R, SC_TILE_RNN_TANH, r, j0, H, Hp, u, A, h, valid, y);               \
    }                                                                                         \
    static void sc_rnn_tile##R##r_v16(int r, int j0, int H, const float *Hp, const float *u,  \
                                      float *A, float *h, const unsigned char *valid,         \
                                      float *y) {                                             \
        sc_gate_tile_v16(R, SC_TILE_RNN_RELU, r, j0, H, Hp, u, A, h, valid, y);               \
    }
SC_GRU1_TILES_V16(1)
SC_GRU1_TILES_V16(2)
SC_GRU1_TILES_V16(3)
SC_GRU1_TILES_V16(4)
SC_GRU1_TILES_V16(5)
SC_GRU1_TILES_V16(6)
#undef SC_GRU1_TILES_V16

/* Rows [0, active) in register tiles of up to 6 rows (SC_TILE_ROWS_FOR), each TILE1(R) where
 * cond holds, else TILE0(R), R a constant in each (the variable r: the tile's first row). */
#define SC_ROW_TILES_OF(active, cond, TILE1, TILE0)                                          \
    for (int r = 0, R; r < (active); r += R) {                                              \
        R = SC_TILE_ROWS_FOR((active) - r);                                                 \
        if (cond) SC_TILE_OF_ROWS(R, TILE1);                                                \
        else SC_TILE_OF_ROWS(R, TILE0);                                                     \
    }

/* Phase a (phase_b 0: its SC_GRU1_A_PANELS panels) or b (SC_GRU1_B_PANELS) of the full panels
 * from units j0 on, for rows [0, active), in register tiles of up to 6 rows (SC_TILE_ROWS_FOR).
 * u: the first panel's gate 0 (sc_pack_panels). */
static void sc_gru1_tiles_v16(int phase_b, int active, int j0, int H, const float *Hp,
                              const float *u, long gs, float *AX, float *RH, float *h,
                              const unsigned char *valid, float *y) {
#define SC_TILE_A(R) sc_gru1_tile##R##a_v16(r, j0, H, Hp, u, gs, AX, RH)
#define SC_TILE_B(R) sc_gru1_tile##R##b_v16(r, j0, H, RH, u + 2 * gs, AX, h, valid, y)
    SC_ROW_TILES_OF(active, phase_b, SC_TILE_B, SC_TILE_A)
#undef SC_TILE_A
#undef SC_TILE_B
}

/* The simple RNN's step (relu, else tanh) over SC_GRU1_B_PANELS full panels from units j0 on,
 * rows [0, active), in register tiles of up to 6 rows. u: the first panel (sc_pack_panels). */
static void sc_rnn_tiles_v16(int relu, int active, int j0, int H, const float *Hp,
                             const float *u, float *A, float *h, const unsigned char *valid,
                             float *y) {
#define SC_TILE_T(R) sc_rnn_tile##R##t_v16(r, j0, H, Hp, u, A, h, valid, y)
#define SC_TILE_R(R) sc_rnn_tile##R##r_v16(r, j0, H, Hp, u, A, h, valid, y)
    SC_ROW_TILES_OF(active, relu, SC_TILE_R, SC_TILE_T)
#undef SC_TILE_T
#undef SC_TILE_R
}
#undef SC_ROW_TILES_OF
#undef SC_TILE_OF_ROWS
#undef SC_LD16
#undef SC_ST16
#undef SC_V16_MAP
#undef SC_V16
#pragma GCC pop_options

/* AVX2 float32 register tile of a product: R rows x 16 units (two 8-float vectors),
 * out[i][0..15] = start[i][0..15] (zero where start[i] is NULL) + sum_k a[i][k] u[k ks + 0..15].
 * 2R accumulators, two loads of u and a broadcast per row and k: 15 of the 16 registers at
 * R = 6. Why not the generic vector code of cells_impl.h (4 rows x 16 units on AVX2): GCC 12
 * keeps two of its 8 accumulators on the stack, and every k then waits on a store and a load
 * (Zen 3, 1 thread: the input projection ran at 26 GFLOP/s, 36% of OpenBLAS's SGEMM). R is a
 * constant in each of the functions below. The k loop is unrolled by 4: 22 instructions per
 * 12 multiply-adds instead of 24 (fewer counter updates and branches). Alone that is within
 * 1-2%, but when the machine is busy (here: spells in which this tile ran 25%
 * slower while a register-only FMA loop kept its speed, as if the core's other hardware
 * thread were taken) a whole LSTM forward at B = 16, H = 256 ran 6-17% faster (paired call by
 * call, C harness); unrolled by 2 or 8 was 1-3% and 0.4% slower than by 4. */
#pragma GCC push_options
#pragma GCC target("avx2,fma")
static inline __attribute__((always_inline)) void sc_gemm_tile_v8(
        const int R, int K, const float *const *a, const float *u, long ks,
        const float *const *start, float *const *out) {
    __m256 acc[6][2];
    _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {
        acc[i][0] = start[i] ? _mm256_loadu_ps(start[i]) : _mm256_setzero_ps();
        acc[i][1] = start[i] ? _mm256_loadu_ps(start[i] + 8) : _mm256_setzero_ps();
    }
    _Pragma("GCC unroll 4") for (int k = 0; k < K; k++) {
        __m256 u0 = _mm256_loadu_ps(u + k * ks), u1 = _mm256_loadu_ps(u + k * ks + 8);
        _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {
            __m256 ak = _mm256_broadcast_ss(a[i] + k);
            acc[i][0] = _mm256_fmadd_ps(ak, u0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ak, u1, acc[i][1]);
        }
    }
    _Pragma("GCC unroll 6") for (int i = 0; i < R; i++) {
        _mm256_storeu_ps(out[i], acc[i][0]);
        _mm256_storeu_ps(out[i] + 8, acc[i][1]);
    }
}

#define SC_GEMM_TILE_V8(R)                                                                    \
    static void sc_gemm_tile##R##_v8(int K, const float *const *a, const float *u, long ks,   \
                                     const float *const *start, float *const *out) {          \
        sc_gemm_tile_v8(R, K, a, u, ks, start, out);                                          \
    }
SC_GEMM_TILE_V8(2)
SC_GEMM_TILE_V8(3)
SC_GEMM_TILE_V8(4)
SC_GEMM_TILE_V8(5)
SC_GEMM_TILE_V8(6)
#undef SC_GEMM_TILE_V8

/* The tile of R = 2 to 6 rows (the tiles of cells_impl.h's products) */
static void sc_gemm_tiles_v8(int R, int K, const float *const *a, const float *u, long ks,
                             const float *const *start, float *const *out) {
    switch (R) {
        case 6: sc_gemm_tile6_v8(K, a, u, ks, start, out); break;
        case 5: sc_gemm_tile5_v8(K, a, u, ks, start, out); break;
        case 4: sc_gemm_tile4_v8(K, a, u, ks, start, out); break;
        case 3: sc_gemm_tile3_v8(K, a, u, ks, start, out); break;
        default: sc_gemm_tile2_v8(K, a, u, ks, start, out); break;
    }
}

/* AVX2 float32 activations, 8 lanes at a time, for the AVX2 variant's arrays and its fused
 * LSTM update, with fewer instructions than the other variants' formulas: on Zen 1 a 256-bit
 * instruction issues as two halves, and the activations' cost there followed their count (a
 * loop of sigmoids: 35 cycles per 8 values at 26 instructions, 24.5 at 17; the exact division
 * costs no more than a reciprocal estimate and Newton steps, measured on Zen 1 and Zen 3).
 * Relative error against float64: sigmoid <= 1.7e-7 over every float in [-100, 100], tanh
 * <= 3.4e-7 over every float (the test sweeps both). 2^n is built in the exponent bits, as
 * SC_V8_EXP does. Zen 1, one core, a loop over 8-float vectors in L1, cycles per vector:
 * sigmoid 35 -> 24.5, tanh 36 -> 21. */
#define SC_C8(c) _mm256_set1_ps(c)

/* sigmoid(x) = 1 / (1 + exp(-x)) in one path: neither sign cancels (for x < 0 the relative
 * error is exp's), so no split on the sign as SC_V8_SIGMOID's. x is clamped to [-88, 87.34] so
 * that 2^n stays a normal float (n in [-126, 127]); past the clamps sigmoid is 1 to within
 * half an ulp, or below FLT_MIN (6e-39 comes out, which the kernels flush to zero).
 * exp(r) = 1 + r q(r), q of degree 5 (tools/fit_activations.py; 2e-9 relative in float64). */
static inline __m256 sc_sigmoid_v8(__m256 x) {
    x = _mm256_max_ps(SC_C8(-88.0f), _mm256_min_ps(SC_C8(87.3365447f), x));   /* NaN passes */
    __m256 k = _mm256_fmadd_ps(x, SC_C8(-1.44269504088896341f), SC_C8(12582912.0f));
    __m256 n = _mm256_sub_ps(k, SC_C8(12582912.0f));               /* round(-x / ln 2) */
    __m256 r = _mm256_fnmsub_ps(n, SC_C8(0.693359375f), x);        /* -x - n ln 2, ln 2 = */
    r = _mm256_fnmadd_ps(n, SC_C8(-2.12194440e-4f), r);            /* hi + lo */
    __m256 q = _mm256_fmadd_ps(r, SC_C8(0.00138436481f), SC_C8(0.00837416487f));
    q = _mm256_fmadd_ps(r, q, SC_C8(0.0416680025f));
    q = _mm256_fmadd_ps(r, q, SC_C8(0.166664311f));
    q = _mm256_fmadd_ps(r, q, SC_C8(0.499999942f));
    q = _mm256_fmadd_ps(r, q, SC_C8(1.00000003f));
    __m256 e = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_sub_epi32(_mm256_castps_si256(k), _mm256_set1_epi32(0x4B400000 - 127)), 23));
    __m256 p = _mm256_fmadd_ps(r, q, SC_C8(1.0f));                 /* exp(r) */
    return _mm256_div_ps(SC_C8(1.0f), _mm256_fmadd_ps(p, e, SC_C8(1.0f)));
}

/* tanh(x) = x P(x^2) / Q(x^2), x clamped to [-9.5, 9.5] and the result to [-1, 1]: a rational
 * fit of tanh(x) / x on [0, 9] (tools/fit_activations.py; P, Q of degree 4; largest relative error
 * 2.1e-8 in float64, 3.4e-7 evaluated in float32 over every float in [0, 9.5]). Past 9 the
 * fit rises above 1 (1 + 5e-7 at 9.5), so that the clamps give exactly +-1 from there on, as
 * float32's tanh does. Relative accuracy holds as x -> 0 (x times P / Q ~ 1): no second branch
 * near 0 and no sign to copy. NaN passes the clamps (vminps / vmaxps return their second
 * operand). 15 instructions against 24 for the expm1 form that the other variants take
 * (sc_tanh_v16: -m / (2 + m), m = expm1(-2|x|)); on Zen 1, whose 256-bit instructions issue
 * as two halves, ~21 against ~36 cycles per 8 values in a loop. */
static inline __m256 sc_tanh_v8(__m256 x) {
    x = _mm256_max_ps(SC_C8(-9.5f), _mm256_min_ps(SC_C8(9.5f), x));
    __m256 s = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(s, SC_C8(1.33544638e-08f), SC_C8(2.06089474e-05f));
    p = _mm256_fmadd_ps(s, p, SC_C8(0.00349558039f));
    p = _mm256_fmadd_ps(s, p, SC_C8(0.133810193f));
    p = _mm256_fmadd_ps(s, p, SC_C8(0.999999979f));
    __m256 q = _mm256_fmadd_ps(s, SC_C8(7.77647944e-07f), SC_C8(0.000328562181f));
    q = _mm256_fmadd_ps(s, q, SC_C8(0.0258769533f));
    q = _mm256_fmadd_ps(s, q, SC_C8(0.467143349f));
    q = _mm256_fmadd_ps(s, q, SC_C8(1.0f));
    __m256 t = _mm256_div_ps(_mm256_mul_ps(x, p), q);
    return _mm256_min_ps(SC_C8(1.0f), _mm256_max_ps(SC_C8(-1.0f), t));
}

/* out[j] = fn(x[j]), j < n; the tail through masked loads and stores */
#define SC_V8_MAP_AVX2(fn, x, out, n) do {                                                \
    int j_ = 0;                                                                           \
    for (; j_ + 8 <= (n); j_ += 8) _mm256_storeu_ps((out) + j_, fn(_mm256_loadu_ps((x) + j_))); \
    if (j_ < (n)) {                                                                       \
        __m256i m_ = _mm256_cmpgt_epi32(_mm256_set1_epi32((n) - j_),                      \
                                        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));       \
        _mm256_maskstore_ps((out) + j_, m_, fn(_mm256_maskload_ps((x) + j_, m_)));        \
    }                                                                                     \
} while (0)

static void sc_sigmoid8_array(const float *x, float *out, int n) {
    SC_V8_MAP_AVX2(sc_sigmoid_v8, x, out, n);
}

static void sc_tanh8_array(const float *x, float *out, int n) {
    SC_V8_MAP_AVX2(sc_tanh_v8, x, out, n);
}
#undef SC_V8_MAP_AVX2

/* The fused LSTM step's state update for rows r..r+R-1 of one full panel (units j0..j0+15)
 * on AVX2, from the gate sums the per-gate product tiles left in sig (R, 48: i, f, o of each
 * row) and gg (R, 16: g): activations, Ct, Ht and the outputs 8 units at a time in registers,
 * as sc_lstm_tile_v16 does on its accumulators, instead of passes over small arrays and
 * loops of runtime length. Arguments as cells_impl.h's sc_lstm_tile_update. */
static void sc_lstm_update_v8(int R, int r, int j0, int H, const float *sig, const float *gg,
                              float *Z, int keep_act, float *c, float *h,
                              const unsigned char *valid, float *y, float *c_store,
                              const float *rmask, float *Hp_next) {
    for (int i = 0; i < R; i++) {
        long b = r + i;
        for (int v = 0; v < 16; v += 8) {
            const float *zi = sig + i * 48 + v;
            __m256 ig = sc_sigmoid_v8(_mm256_loadu_ps(zi));
            __m256 fg = sc_sigmoid_v8(_mm256_loadu_ps(zi + 16));
            __m256 og = sc_sigmoid_v8(_mm256_loadu_ps(zi + 32));
            __m256 gv = sc_tanh_v8(_mm256_loadu_ps(gg + i * 16 + v));
            SC_LSTM_ROW_UPDATE(_mm256, __m256, sc_tanh_v8, _mm256_loadu_ps, _mm256_storeu_ps,
                               b, j0 + v, ig, fg, gv, og);
        }
    }
}
#undef SC_C8
#pragma GCC pop_options
#endif
#undef SC_LSTM_ROW_UPDATE

/* ---- workspaces: malloc's large blocks start 16 bytes past a page (glibc's mmap header), so
 * every 64-byte vector load from one straddles two cache lines. A kernel's own workspace that
 * its products stream (sc_gemm_tn's packed chunks) is 64-byte aligned instead: that product
 * ran at 137 GFLOP/s on malloc's blocks, 156 on aligned ones (Sapphire Rapids, one core, the
 * weight gradients at K = 6400, 2048 x 4096). Freed with free(); NULL when out of memory. ---- */
static inline void *sc_malloc64(size_t size) {
    void *p = NULL;
    return posix_memalign(&p, 64, size ? size : 64) == 0 ? p : NULL;
}

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

/* ---- threads: a step is split by blocks of hidden units (multiples of 16), which the threads
 * of an OpenMP team claim (below). The team lives for a whole scan (the Cython loops in
 * lstm.pyx, gru.pyx, rnn.pyx open one parallel region around the time loop, each thread
 * setting flush-to-zero for itself), so a step costs barriers, not a fork and join: the step
 * functions run on every thread of the team, or on the calling thread alone outside a
 * parallel region. ---- */
#include <omp.h>

/* Sharing a step's items (blocks of units) by claims rather than a fixed split. With a fixed
 * split every thread waits at the step's barrier for the slowest one, and on a shared machine
 * one core is often slowed (another process, the host's other guests): measured with a busy
 * process on one core, a 2-thread LSTM call at (100, 16, 256, 256) took 18.5 ms with the fixed
 * split and 13.2 ms by claims. Each thread first claims the items of its home range (those a
 * fixed split would give it, whose weights its cache holds), then those left in the other
 * ranges, so a slow thread's remaining items go to the others. A step makes one or more
 * rounds of claims, numbered consecutively and separated by barriers; one counter per range
 * and round parity: a round uses the counters of its parity and each thread resets its own
 * range's counter of the other parity for the next round, which no thread can be using then.
 * Which thread computes an item does not change its arithmetic: results stay bit for bit the
 * same.
 * A claim is a locked add, which waits for the thread's earlier stores to reach its cache (the
 * state rows an item writes, which the other cores read at the previous step: a transfer from
 * another core's cache each). With items of 16 units, each a few hundred nanoseconds at
 * batch 1, that cost showed: perf put 5% of a 2-thread LSTM call at (100, 1, 128, 256) on the
 * claims' `lock xadd`. So the first SC_OWN_QUARTERS quarters of each home range (rounded
 * down) are its thread's own, taken without a claim; only the rest is claimed (by its thread
 * first, then by any other), and a range seen exhausted is passed by without one. Paired in
 * one process, that call: 0.945x the time (a fixed split without claims: 0.939x);
 * (100, 16, 256, 256) unchanged. A slowed thread's last quarter still goes to the others (the
 * busy-process case above was not measured again: with a busy process on this 2-core machine
 * every setting's times varied 2x from run to run). */
#define SC_OWN_QUARTERS 3
#define SC_MAX_TEAM 64
typedef struct {
    struct { int next; char pad[60]; } range[2][SC_MAX_TEAM];   /* a cache line each */
    struct { int arrived; char pad[60]; } arrive;                /* sc_team_barrier's counters */
    struct { int generation, sleepers; char pad[56]; } release;
    struct { int steps; char pad[60]; } done[SC_MAX_TEAM];      /* sc_team_done's, per thread */
    int spins;          /* sc_wait_word: pauses before a waiter sleeps */
    int procs;          /* ... and the processors of the process (sc_procs) */
} sc_claims;

/* The processors this process may run on, asked once (libgomp's omp_get_num_procs makes a
 * system call, pthread_getaffinity_np, at every call), outside any team. */
static int sc_procs_seen;
static inline int sc_procs(void) {
    int n = __atomic_load_n(&sc_procs_seen, __ATOMIC_RELAXED);
    if (n == 0) {
        n = omp_get_num_procs();
        __atomic_store_n(&sc_procs_seen, n, __ATOMIC_RELAXED);
    }
    return n;
}

/* Before a scan's time loop (outside the team): every counter at zero; what every thread of
 * the team reads to choose the same barrier. SEQCORE_BARRIER_SPINS sets the spins of
 * sc_team_barrier's waiters (the tests: 0, every waiter sleeps at once). */
#define SC_BARRIER_SPINS (1 << 18)
static inline void sc_claims_reset(sc_claims *cl) {
    memset(cl, 0, sizeof *cl);
    cl->procs = sc_procs();
    const char *spins = getenv("SEQCORE_BARRIER_SPINS");
    cl->spins = spins && *spins ? atoi(spins) : SC_BARRIER_SPINS;
}

/* One thread's claiming during one round. */
typedef struct {
    sc_claims *cl;      /* NULL: no sharing, the thread takes its fixed share in order */
    int s;              /* the round */
    int range;          /* ranges tried so far, counting from the thread's own */
    int taken;          /* whether the thread's own share (all of its range unshared) was taken */
} sc_claimer;

/* The start of this thread's claims in round s: it resets its range's counter for round s + 1. */
static inline sc_claimer sc_claims_begin(sc_claims *cl, int s) {
    if (omp_get_num_threads() == 1 || omp_get_num_threads() > SC_MAX_TEAM) cl = NULL;
    if (cl) cl->range[(s + 1) & 1][omp_get_thread_num()].next = 0;
    return (sc_claimer){cl, s, 0, 0};
}

/* The next items [lo, *hi) of [0, n) for this thread: returns lo, or -1 when none is left this
 * round. Shared, its own share at once, then one claimed item at a time; unshared, the whole
 * fixed share at once (a single thread then makes one call over everything, as cheap as no
 * items at all). */
static inline int sc_claim(sc_claimer *c, int n, int *hi) {
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    if (!c->cl) {
        int lo = (int)((long)n * me / nt);
        *hi = (int)((long)n * (me + 1) / nt);
        return c->taken++ == 0 && lo < *hi ? lo : -1;
    }
    for (; c->range < nt; c->range++) {
        int r = (me + c->range) % nt;
        int lo = (int)((long)n * r / nt), end = (int)((long)n * (r + 1) / nt);
        int own = (end - lo) * SC_OWN_QUARTERS / 4;   /* items [lo, lo + own): r's alone */
        if (c->range == 0 && own > 0 && c->taken++ == 0) {
            *hi = lo + own;
            return lo;
        }
        int *next = &c->cl->range[c->s & 1][r].next;    /* claims counted from lo + own */
        lo += own;
        if (lo >= end || lo + __atomic_load_n(next, __ATOMIC_RELAXED) >= end)
            continue;
        int i = lo + __atomic_fetch_add(next, 1, __ATOMIC_RELAXED);
        if (i < end) {
            *hi = i + 1;
            return i;
        }
    }
    return -1;
}

/* Wait for every thread of the team (nothing in a team of one, or outside a parallel region):
 * the end of a step, and the points inside a step where one round of claims needs every result
 * of the round before. With the scan's claims (cl not NULL), a barrier of our own: the thread
 * that arrives last bumps a generation counter that the others wait on, spinning with pause.
 * Zen 3, 2 threads, paired in one process: a batch-1 inference call (100, 1, 128, 256) 0.94-0.98x
 * the time with libgomp's barrier (LSTM and GRU; a C harness of the LSTM step: 0.35-0.55 us
 * less per step). Release and acquire order every thread's writes of the step before the reads
 * after it. The counters live in the call's sc_claims, so concurrent calls from different
 * Python threads have barriers of their own.
 * A waiter that has spun cl->spins times (SC_BARRIER_SPINS, ~8 ms here, about as long as
 * libgomp spins by default) sleeps on the counter (a futex on Linux; elsewhere it yields the
 * core between looks), so that a thread held up for long does not keep its core busy. Waiting
 * less long before that was slower whenever a busy process shared the machine (2 threads,
 * (100, 16, 256, 256) inference, paired against libgomp's barrier: yielding after ~30 us
 * 1.06-1.24x the time, sleeping after ~0.5 ms 1.31-1.60x, after ~8 ms 0.99-1.01x).
 * Teams with more threads than the process has processors (spinning would hold the core a
 * team mate needs: spinning, then yielding, took 3.5-4.2x the time at 4 threads on 2 cores), and
 * cl NULL (a fixed split without claims, cells_entry.h's sc_gemm_tn): OpenMP's barrier.
 * Nothing in a team of one, where libgomp's barrier still makes a futex system call (3.7% of a
 * GRU call's samples at B = 1, H = 128 on one thread, at every step). */
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define SC_FUTEX_WAIT(word, value)                                                        \
    syscall(SYS_futex, (word), FUTEX_WAIT_PRIVATE, (value), NULL, NULL, 0)
#define SC_FUTEX_WAKE_ALL(word)                                                             \
    syscall(SYS_futex, (word), FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0)
#else
#define SC_FUTEX_WAIT(word, value) sched_yield()
#define SC_FUTEX_WAKE_ALL(word) ((void)0)
#endif

/* The waits of sc_team_barrier and sc_team_wait on a counter that another thread of the team
 * sets with sc_publish: until *word != value (at_least 0) or *word >= value (at_least 1).
 * Spin cl->spins times (with pause), then sleep on the word's futex, counted in
 * cl->release.sleepers; acquire: what the publishing thread wrote before is seen. */
static inline int sc_word_reached(int seen, int value, int at_least) {
    return at_least ? seen >= value : seen != value;
}

static inline void sc_wait_word(sc_claims *cl, int *word, int value, int at_least) {
    for (int spins = 0; spins < cl->spins; spins++) {          /* spin, */
        if (sc_word_reached(__atomic_load_n(word, __ATOMIC_ACQUIRE), value, at_least)) return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    __atomic_add_fetch(&cl->release.sleepers, 1, __ATOMIC_SEQ_CST);     /* then sleep */
    /* the futex sleeps only while the word still holds the value seen */
    for (int seen; !sc_word_reached(seen = __atomic_load_n(word, __ATOMIC_SEQ_CST), value,
                                    at_least);)
        SC_FUTEX_WAIT(word, seen);
    __atomic_sub_fetch(&cl->release.sleepers, 1, __ATOMIC_SEQ_CST);
}

/* *word = value for sc_wait_word's waiters, woken if any sleeps. Sequentially consistent with
 * the sleepers' count and check there: either a sleeper sees the new value, or this sees the
 * sleeper and wakes it. */
static inline void sc_publish(sc_claims *cl, int *word, int value) {
    __atomic_store_n(word, value, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&cl->release.sleepers, __ATOMIC_SEQ_CST) > 0)
        SC_FUTEX_WAKE_ALL(word);
}

static inline void sc_team_barrier(sc_claims *cl) {
    int nt = omp_get_num_threads();
    if (nt == 1) return;
    if (!cl || nt > cl->procs) {
        _Pragma("omp barrier")
        return;
    }
    int *generation = &cl->release.generation;
    int seen = __atomic_load_n(generation, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&cl->arrive.arrived, 1, __ATOMIC_ACQ_REL) == nt) {
        /* the reset is ordered before the release, so the next barrier counts from zero */
        __atomic_store_n(&cl->arrive.arrived, 0, __ATOMIC_RELAXED);
        sc_publish(cl, generation, seen + 1);
        return;
    }
    sc_wait_word(cl, generation, seen, 0);
}

/* The point-to-point wait of a step without a barrier (cells_entry.h's overlapped steps): each
 * thread counts the steps it has finished in its own cache line (sc_team_done, after its
 * writes of step s: release), and sc_team_wait(cl, s) returns once every other thread of the
 * team has finished step s - 1 (acquire: their writes of it are seen). Waiters spin, then
 * sleep, as sc_team_barrier's do (sc_wait_word, sc_publish). Nothing in a team of one. */
static inline void sc_team_wait(sc_claims *cl, int s) {
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    for (int o = 0; o < nt; o++)
        if (o != me) sc_wait_word(cl, &cl->done[o].steps, s, 1);
}

static inline void sc_team_done(sc_claims *cl, int s) {
    sc_publish(cl, &cl->done[omp_get_thread_num()].steps, s + 1);
}

/* Whether a scan's inference steps of `rows` rows run as cells_entry.h's overlapped steps
 * (the LSTM's, the reset_after GRU's) on this team (cl: the scan's counters): a team of two
 * on at least two processors, batches of up to SC_OVERLAP_ROWS rows. (A larger team would
 * need the rest of each thread's state in two pieces; it has not been measured, and the
 * 2-core machines this is developed on could not test it.) */
#define SC_OVERLAP_ROWS 1
static inline int sc_steps_overlap(int rows, const sc_claims *cl) {
    return cl && omp_get_num_threads() == 2 && cl->procs >= 2 && rows <= SC_OVERLAP_ROWS;
}

/* Rows up to the last valid one: the recurrent products of a step skip the masked rows at the
 * end of the batch. seqcore.ops orders a ragged batch by length, longest first, so that the
 * rows that have finished are exactly those (a ragged batch then costs its valid steps, not
 * T full steps). Masked rows before the last valid one go through the products as usual; the
 * fused passes still see every row (a masked row keeps its state and outputs zero). */
static inline int sc_active_rows(int rows, const unsigned char *valid) {
    while (rows > 0 && !valid[rows - 1]) rows--;
    return rows;
}

/* Copy / zero units [j0, j1) of a row; dst may be NULL (an optional output). Macros for the
 * same reason as the activations: they expand inside each instruction-set region. */
#define SC_COPY_UNITS(dst, src, j0, j1)                                                   \
    do { if ((dst) && (j1) > (j0))                                                        \
        memcpy((dst) + (j0), (src) + (j0), (size_t)((j1) - (j0)) * sizeof(*(dst))); } while (0)
#define SC_ZERO_UNITS(dst, j0, j1)                                                        \
    do { if ((dst) && (j1) > (j0))                                                        \
        memset((dst) + (j0), 0, (size_t)((j1) - (j0)) * sizeof(*(dst))); } while (0)

/* ---- the passes for each instruction set, then the dispatching entry points ---- */
#ifdef SC_MULTI_ISA
#pragma GCC push_options
#pragma GCC target("arch=skylake-avx512")
#define SC_ISA _avx512
#define SC_WIDE 1
#include "cells_isa.h"
#undef SC_WIDE
#undef SC_ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("arch=haswell")
#define SC_ISA _avx2
#define SC_WIDE 0
#define SC_AVX2_TILES 1     /* float32 products through sc_gemm_tile*_v8 */
#include "cells_isa.h"
#undef SC_AVX2_TILES
#undef SC_WIDE
#undef SC_ISA
#pragma GCC pop_options
#endif

#define SC_ISA _base
#define SC_WIDE 0
#include "cells_isa.h"
#undef SC_WIDE
#undef SC_ISA

/* 2: AVX-512 (Skylake-X and later), 1: AVX2 + FMA (Haswell and later), 0: baseline: the best
 * this CPU runs, lowered (never raised) by the environment variable SEQCORE_ISA = avx2 | base,
 * so that the tests can run every build on one machine. Computed once per module; a race here
 * writes the same value twice. */
static int sc_isa = -1;
static inline int sc_isa_level(void) {
    if (sc_isa < 0) {
        int level = 0;
#ifdef SC_MULTI_ISA
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") ? 2
              : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
#endif
        const char *want = getenv("SEQCORE_ISA");
        if (want && strcmp(want, "avx2") == 0 && level > 1) level = 1;
        if (want && strcmp(want, "base") == 0) level = 0;
        sc_isa = level;
    }
    return sc_isa;
}

#ifdef SC_MULTI_ISA
#define SC_BEST(name) (sc_isa_level() == 2 ? SC_CAT(name, SC_PREC, _avx512)                 \
                       : sc_isa_level() == 1 ? SC_CAT(name, SC_PREC, _avx2)                  \
                       : SC_CAT(name, SC_PREC, _base))
#else
#define SC_BEST(name) SC_CAT(name, SC_PREC, _base)
#endif
#define SC_ENTRY(name) SC_CAT(name, SC_PREC, )

#define SC_T float
#define SC_PREC _f32
#include "cells_entry.h"
/* the float32 activations on their own, for the accuracy tests (checks.pyx) */
__attribute__((unused)) static void sc_sigmoid_array_f32(const float *x, float *out, int n) {
    SC_BEST(sc_sigmoid_array)(x, out, n);
}
__attribute__((unused)) static void sc_tanh_array_f32(const float *x, float *out, int n) {
    SC_BEST(sc_tanh_array)(x, out, n);
}
#undef SC_T
#undef SC_PREC

#define SC_T double
#define SC_PREC _f64
#include "cells_entry.h"
/* the float64 activations on their own, for the accuracy tests (checks.pyx) */
__attribute__((unused)) static void sc_sigmoid_array_f64(const double *x, double *out, int n) {
    SC_BEST(sc_sigmoid_array)(x, out, n);
}
__attribute__((unused)) static void sc_tanh_array_f64(const double *x, double *out, int n) {
    SC_BEST(sc_tanh_array)(x, out, n);
}
#undef SC_T
#undef SC_PREC

#endif
