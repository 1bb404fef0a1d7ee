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
#else
static void SC_CAT(sc_sigmoid_array, _f32, SC_ISA)(const float *x, float *out, int n) {
    SC_V8_MAP(SC_V8_SIGMOID, x, out, n);
}

static void SC_CAT(sc_tanh_array, _f32, SC_ISA)(const float *x, float *out, int n) {
    SC_V8_MAP(SC_V8_TANH, x, out, n);
}
#endif

/* float64: libm, exact to the last bit or so; the double path is for validation and users who
 * need it, float32 is the fast path. */
static void SC_CAT(sc_sigmoid_array, _f64, SC_ISA)(const double *x, double *out, int n) {
    for (int j = 0; j < n; j++) {
        double e = exp(-fabs(x[j]));
        double s = 1.0 / (1.0 + e);
        out[j] = x[j] >= 0.0 ? s : e * s;
    }
}

static void SC_CAT(sc_tanh_array, _f64, SC_ISA)(const double *x, double *out, int n) {
    for (int j = 0; j < n; j++) out[j] = tanh(x[j]);
}

/* Vector width for the matrix products: 16 floats where AVX-512 has 32 registers for them
 * (tiles of 4 rows x 4 panels: 16 accumulators fed by 4 loads of U and 4 broadcasts per k;
 * measured 3-6% faster than 4 rows x 1 panel at B = 64, H = 512, and 2-7% faster than 8 rows x
 * 2 panels on the per-step and projection shapes of bench/kernels.py), 8 elsewhere (4 rows x
 * 1 panel, within AVX2's 16 registers). */
#define SC_T float
#if SC_WIDE
#define SC_VEC sc_v16f
#define SC_VL 16
#define SC_TILE_PANELS 4
#define SC_TILE_ROWS 4
#else
#define SC_VEC sc_v8f
#define SC_VL 8
#define SC_TILE_PANELS 1
#define SC_TILE_ROWS 4
#endif
#define SC_NAME(name) SC_CAT(name, _f32, SC_ISA)
#include "cells_impl.h"
#undef SC_T
#undef SC_VEC
#undef SC_VL
#undef SC_NAME
#undef SC_TILE_PANELS
#undef SC_TILE_ROWS

#define SC_T double
#define SC_TILE_PANELS 1
#define SC_TILE_ROWS 4
#if SC_WIDE
#define SC_VEC sc_v8d
#define SC_VL 8
#else
#define SC_VEC sc_v4d
#define SC_VL 4
#endif
#define SC_NAME(name) SC_CAT(name, _f64, SC_ISA)
#include "cells_impl.h"
#undef SC_T
#undef SC_VEC
#undef SC_VL
#undef SC_NAME
#undef SC_TILE_PANELS
#undef SC_TILE_ROWS
