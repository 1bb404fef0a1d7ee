/* Activations over arrays and every pass, compiled for one instruction set: cells.h includes
 * this file once per ISA, inside a #pragma GCC target region, with SC_ISA set to the suffix
 * (_avx512, _avx2, _base) that all names defined here carry. No include guard on purpose. */

#if SC_WIDE
static void SC_CAT(sc_sigmoid_array, _f32, SC_ISA)(const float *x, float *out, int n) {
    sc_sigmoid16_array(x, out, n);
}

static void SC_CAT(sc_tanh_array, _f32, SC_ISA)(const float *x, float *out, int n) {
    sc_tanh16_array(x, out, n);
}
#elif defined(SC_AVX2_TILES)
static void SC_CAT(sc_sigmoid_array, _f32, SC_ISA)(const float *x, float *out, int n) {
    sc_sigmoid8_array(x, out, n);
}

static void SC_CAT(sc_tanh_array, _f32, SC_ISA)(const float *x, float *out, int n) {
    sc_tanh8_array(x, out, n);
}
#else
static void SC_CAT(sc_sigmoid_array, _f32, SC_ISA)(const float *x, float *out, int n) {
    SC_V8_MAP(SC_V8_SIGMOID, x, out, n);
}

static void SC_CAT(sc_tanh_array, _f32, SC_ISA)(const float *x, float *out, int n) {
    SC_V8_MAP(SC_V8_TANH, x, out, n);
}
#endif

/* float64: the 4-lane formulas of cells.h (a few ulp; libm's scalar calls before) */
static void SC_CAT(sc_sigmoid_array, _f64, SC_ISA)(const double *x, double *out, int n) {
    SC_D4_MAP(SC_D4_SIGMOID, x, out, n);
}

static void SC_CAT(sc_tanh_array, _f64, SC_ISA)(const double *x, double *out, int n) {
    SC_D4_MAP(SC_D4_TANH, x, out, n);
}

/* dst = src^T: src (rows, cols) with row stride lds, dst (cols, rows) with row stride ldd.
 * float32 in 8 x 8 blocks held in registers (three rounds of two-vector shuffles), the last
 * rows (fewer than 8) as a block padded with zeros, of which only those rows' values are
 * stored, the last columns one value at a time; float64 one value at a time. The copies the
 * weight gradients and the backward packing need: one value at a time they cost 3-9% of a
 * weight-gradient product. The weight gradients of a ragged batch transpose each step's
 * active rows on their own (sc_gemm_tn), a few rows past a multiple of 8 at every step, which
 * went one value at a time (each value to its own line of dst) before they went as a padded
 * block: bench/workloads.py's ragged training step (LSTM (100, 32, 128, 256), lengths 1 to
 * 100), paired in one process, 0.971x the time on 1 thread, 0.968x on 2 (Zen 5). */
#define SC_SHUF(a, b, ...) __builtin_shuffle((a), (b), (sc_v8i){__VA_ARGS__})
static void SC_CAT(sc_transpose, _f32, SC_ISA)(int rows, int cols, const float *src, long lds,
                                               float *dst, long ldd) {
    for (int r0 = 0; r0 < rows; r0 += 8) {
        const int nr = rows - r0 < 8 ? rows - r0 : 8;      /* rows of this block */
        int c0 = 0;
        for (; c0 + 8 <= cols; c0 += 8) {
            sc_v8f r[8], t[8], u[8];
            for (int i = 0; i < 8; i++) {
                if (i < nr) memcpy(&r[i], src + (r0 + i) * lds + c0, sizeof r[i]);
                else r[i] = (sc_v8f){0};
            }
            for (int i = 0; i < 8; i += 2) {        /* pairs of rows interleaved */
                t[i] = SC_SHUF(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
                t[i + 1] = SC_SHUF(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
            }
            for (int h = 0; h < 8; h += 4) {        /* u[h + c]: columns c, c + 4 of 4 rows */
                u[h] = SC_SHUF(t[h], t[h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
                u[h + 1] = SC_SHUF(t[h], t[h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
                u[h + 2] = SC_SHUF(t[h + 1], t[h + 3], 0, 1, 8, 9, 4, 5, 12, 13);
                u[h + 3] = SC_SHUF(t[h + 1], t[h + 3], 2, 3, 10, 11, 6, 7, 14, 15);
            }
            for (int c = 0; c < 4; c++) {           /* rows 0-3 and 4-7 of columns c, c + 4 */
                sc_v8f lo = SC_SHUF(u[c], u[c + 4], 0, 1, 2, 3, 8, 9, 10, 11);
                sc_v8f hi = SC_SHUF(u[c], u[c + 4], 4, 5, 6, 7, 12, 13, 14, 15);
                if (nr == 8) {
                    memcpy(dst + (c0 + c) * ldd + r0, &lo, sizeof lo);
                    memcpy(dst + (c0 + c + 4) * ldd + r0, &hi, sizeof hi);
                } else {
                    memcpy(dst + (c0 + c) * ldd + r0, &lo, (size_t)nr * sizeof(float));
                    memcpy(dst + (c0 + c + 4) * ldd + r0, &hi, (size_t)nr * sizeof(float));
                }
            }
        }
        for (; c0 < cols; c0++)
            for (int i = 0; i < nr; i++) dst[c0 * ldd + r0 + i] = src[(r0 + i) * lds + c0];
    }
}
#undef SC_SHUF

static void SC_CAT(sc_transpose, _f64, SC_ISA)(int rows, int cols, const double *src, long lds,
                                               double *dst, long ldd) {
    for (int r0 = 0; r0 < rows; r0 += 8)
        for (int c = 0; c < cols; c++)
            for (int r = r0; r < r0 + 8 && r < rows; r++) dst[c * ldd + r] = src[r * lds + c];
}

/* Vector width for the matrix products: 16 floats where AVX-512 has 32 registers for them
 * (tiles of up to 6 rows x 4 panels: 24 accumulators fed by 4 loads of U and 6 broadcasts per
 * k, rows split evenly (SC_TILE_ROWS_FOR); 4 rows x 4 panels measured 3-6% faster than 4 rows
 * x 1 panel at B = 64, H = 512, and 2-7% faster than 8 rows x 2 panels on the per-step and
 * projection shapes of bench/kernels.py (Zen 4); 6 rows x 4 panels then 6-15% faster than
 * 4 x 4 on the projection and per-step shapes (Sapphire Rapids, 1 thread, C harness: rows x K
 * x N = 512 x 256 x 1024 146 -> 157 GFLOP/s, 16 x 256 x 768 150 -> 159, 6400 x 1024 x 4096
 * 120 -> 138; 12 x 2, 8 x 3, 6 x 3 slower than 4 x 4), 8 elsewhere (4 rows x
 * 1 panel, within AVX2's 16 registers). SC_FUSED_ROWS: rows of the fused LSTM step's tiles
 * (4 gates x 16 units per row: 16 accumulators at 4 rows of 16-float vectors, 2 rows of 8-double
 * ones; one row within AVX2's registers). */
#define SC_T float
#if SC_WIDE
#define SC_VEC sc_v16f
#define SC_VL 16
#define SC_TILE_PANELS 4
#define SC_TILE_ROWS 6
#define SC_FUSED_ROWS 4
#define SC_LSTM_TILES_FULL sc_lstm_tiles_v16  /* cells.h: every panel's tiles in registers */
#define SC_GRU_TILES_FULL sc_gru_tiles_v16    /* cells.h: the same for the GRU */
#define SC_GRU1_TILES_FULL sc_gru1_tiles_v16  /* cells.h: and for the reset-before GRU */
#define SC_RNN_TILES_FULL sc_rnn_tiles_v16    /* cells.h: and for the simple RNN */
#else
#define SC_VEC sc_v8f
#define SC_VL 8
#define SC_TILE_PANELS 1
#define SC_FUSED_ROWS 1
#define SC_TILE_ROWS 4
#ifdef SC_AVX2_TILES
#define SC_GEMM_TILE_FULL sc_gemm_tiles_v8   /* cells.h: register tiles of 16 units */
#define SC_LSTM_UPDATE_FULL sc_lstm_update_v8 /* cells.h: a full panel's LSTM update */
#endif
#endif
#define SC_NAME(name) SC_CAT(name, _f32, SC_ISA)
#include "cells_impl.h"
#undef SC_T
#undef SC_VEC
#undef SC_VL
#undef SC_NAME
#undef SC_TILE_PANELS
#undef SC_TILE_ROWS
#undef SC_FUSED_ROWS
#undef SC_LSTM_TILES_FULL
#undef SC_GRU_TILES_FULL
#undef SC_GRU1_TILES_FULL
#undef SC_RNN_TILES_FULL
#undef SC_GEMM_TILE_FULL
#undef SC_LSTM_UPDATE_FULL

#define SC_T double
#define SC_TILE_PANELS 1
#define SC_TILE_ROWS 4
#if SC_WIDE
#define SC_VEC sc_v8d
#define SC_VL 8
#define SC_FUSED_ROWS 2
#else
#define SC_VEC sc_v4d
#define SC_VL 4
#define SC_FUSED_ROWS 1
#endif
#define SC_NAME(name) SC_CAT(name, _f64, SC_ISA)
#include "cells_impl.h"
#undef SC_T
#undef SC_VEC
#undef SC_VL
#undef SC_NAME
#undef SC_TILE_PANELS
#undef SC_TILE_ROWS
#undef SC_FUSED_ROWS
