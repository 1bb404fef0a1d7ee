# Cython view of cells.h: one call per time step and cell (the recurrent products and the fused
# passes; inside a parallel region every thread of the team makes the call and takes its block
# of hidden units), with the precision picked by the fused type (float -> *_f32, double ->
# *_f64). Arguments and layouts: cells_entry.h, cells_impl.h.
from cython cimport floating

ctypedef unsigned char u8

cdef extern from "cells.h" nogil:
    ctypedef struct sc_claims:         # counters sharing a step's items (cells.h)
        pass
    void sc_claims_reset(sc_claims* cl)
    unsigned int sc_ftz_enter()
    void sc_ftz_exit(unsigned int old)
    void sc_team_barrier(sc_claims* cl)
    int sc_active_rows(int rows, const u8* valid)
    unsigned int sc_get_fpu_mode()
    int sc_isa_level()
    void sc_sigmoid_array_f32(const float* x, float* out, int n)
    void sc_tanh_array_f32(const float* x, float* out, int n)
    void sc_sigmoid_array_f64(const double* x, double* out, int n)
    void sc_tanh_array_f64(const double* x, double* out, int n)

    void sc_pack_panels_f32(int, int, int, int, const float*, int, float*, int)
    void sc_pack_panels_f64(int, int, int, int, const double*, int, double*, int)
    void sc_pack_panels_t_f32(int, int, int, const float*, int, float*)
    void sc_pack_panels_t_f64(int, int, int, const double*, int, double*)
    int sc_gemm_tn_f32(int, int, const float*, int, float*, int, int, const float*, int,
                       float*, int, int, long, const float*, int, float*, const u8*, int)
    int sc_gemm_tn_f64(int, int, const double*, int, double*, int, int, const double*, int,
                       double*, int, int, long, const double*, int, double*, const u8*, int)
    void sc_fill_columns_f32(int, float*, int, const float*, int, int)
    void sc_fill_columns_f64(int, double*, int, const double*, int, int)
    void sc_project_packed_f32(int, int, int, const float*, int, const float*, int, int, int,
                               const float*, int, float*, int, const int*, const int*)
    void sc_project_packed_f64(int, int, int, const double*, int, const double*, int, int, int,
                               const double*, int, double*, int, const int*, const int*)
    void sc_project_own_units_f32(int, int, const float*, int, const float*, int, int, int, int,
                                  const float*, float*, int)
    void sc_project_own_units_f64(int, int, const double*, int, const double*, int, int, int,
                                  int, const double*, double*, int)
    int SC_PANEL_UNITS, SC_BLOCK_UNITS   # the blocks of units a step's threads take (fixed split)
    void sc_lstm_forward_step_f32(int, int, const float*, const float*, int, float*, float*,
                                  float*, const u8*, float*, float*, const float*, float*,
                                  sc_claims*, int)
    void sc_lstm_forward_step_f64(int, int, const double*, const double*, int, double*, double*,
                                  double*, const u8*, double*, double*, const double*, double*,
                                  sc_claims*, int)
    int sc_steps_overlap(int rows, const sc_claims* cl)
    void sc_lstm_forward_step_overlapped_f32(int, int, const float*, const float*, int, float*,
                                             float*, float*, const u8*, float*, const float*,
                                             float*, sc_claims*, int)
    void sc_lstm_forward_step_overlapped_f64(int, int, const double*, const double*, int,
                                             double*, double*, double*, const u8*, double*,
                                             const double*, double*, sc_claims*, int)
    void sc_lstm_backward_step_f32(int, int, const float*, const float*, const float*,
                                   const u8*, const float*, float*, float*, float*, const float*,
                                   const float*, float*, sc_claims*, int)
    void sc_lstm_backward_step_f64(int, int, const double*, const double*, const double*,
                                   const u8*, const double*, double*, double*, double*,
                                   const double*, const double*, double*, sc_claims*, int)
    void sc_gru_forward_step_f32(int, int, const float*, const float*, const float*, float*,
                                 float*, float*, const u8*, float*, float*, const float*, float*, float*,
                                 sc_claims*, int)
    void sc_gru_forward_step_f64(int, int, const double*, const double*, const double*, double*,
                                 double*, double*, const u8*, double*, double*, const double*, double*, double*,
                                 sc_claims*, int)
    void sc_gru_forward_step_overlapped_f32(int, int, const float*, const float*, const float*,
                                            float*, float*, float*, const u8*, float*,
                                            const float*, float*, sc_claims*, int)
    void sc_gru_forward_step_overlapped_f64(int, int, const double*, const double*,
                                            const double*, double*, double*, double*, const u8*,
                                            double*, const double*, double*, sc_claims*, int)
    void sc_gru_backward_step_f32(int, int, const float*, const float*, const float*,
                                  const u8*, const float*, float*, float*, float*, float*,
                                  const float*, const float*, float*, sc_claims*, int)
    void sc_gru_backward_step_f64(int, int, const double*, const double*, const double*,
                                  const u8*, const double*, double*, double*, double*, double*,
                                  const double*, const double*, double*, sc_claims*, int)
    void sc_gru1_forward_step_f32(int, int, const float*, const float*, float*, float*,
                                  float*, float*, float*, const u8*, float*, const float*, float*, float*,
                                  sc_claims*, int)
    void sc_gru1_forward_step_f64(int, int, const double*, const double*, double*, double*,
                                  double*, double*, double*, const u8*, double*, const double*, double*, double*,
                                  sc_claims*, int)
    void sc_gru1_backward_step_f32(int, int, const float*, const float*, const float*,
                                   const u8*, const float*, float*, float*, const float*,
                                   const float*, float*, float*, sc_claims*, int)
    void sc_gru1_backward_step_f64(int, int, const double*, const double*, const double*,
                                   const u8*, const double*, double*, double*, const double*,
                                   const double*, double*, double*, sc_claims*, int)
    void sc_rnn_forward_step_f32(int, int, const float*, const float*, float*, float*,
                                 const u8*, float*, int, const float*, float*, sc_claims*, int)
    void sc_rnn_forward_step_f64(int, int, const double*, const double*, double*, double*,
                                 const u8*, double*, int, const double*, double*, sc_claims*, int)
    void sc_rnn_backward_step_f32(int, int, const float*, const u8*, const float*, float*,
                                  float*, int, const float*, const float*, float*, sc_claims*, int)
    void sc_rnn_backward_step_f64(int, int, const double*, const u8*, const double*, double*,
                                  double*, int, const double*, const double*, double*, sc_claims*, int)
    void sc_masked_state_f32(int, int, const float*, const float*, float*)
    void sc_masked_state_f64(int, int, const double*, const double*, double*)


cdef inline void pack_panels(int n_threads, int K, int H, int G, const floating* M, int ldm,
                             floating* Mpk, bint interleave=False) noexcept nogil:
    if floating is float:
        sc_pack_panels_f32(n_threads, K, H, G, M, ldm, Mpk, interleave)
    else:
        sc_pack_panels_f64(n_threads, K, H, G, M, ldm, Mpk, interleave)


cdef inline void pack_panels_t(int n_threads, int J, int K, const floating* M, int ldm,
                               floating* MpkT) noexcept nogil:
    if floating is float:
        sc_pack_panels_t_f32(n_threads, J, K, M, ldm, MpkT)
    else:
        sc_pack_panels_t_f64(n_threads, J, K, M, ldm, MpkT)


cdef inline int gemm_tn(int n_threads, int M1, const floating* A1, int lda1, floating* C1,
                        int ldc1, int M2, const floating* A2, int lda2, floating* C2, int ldc2,
                        int N, long K, const floating* B, int ldb, floating* colsum,
                        const u8* mask, int rows_per_step) noexcept nogil:
    if floating is float:
        return sc_gemm_tn_f32(n_threads, M1, A1, lda1, C1, ldc1, M2, A2, lda2, C2, ldc2, N, K,
                              B, ldb, colsum, mask, rows_per_step)
    else:
        return sc_gemm_tn_f64(n_threads, M1, A1, lda1, C1, ldc1, M2, A2, lda2, C2, ldc2, N, K,
                              B, ldb, colsum, mask, rows_per_step)


cdef inline void fill_columns(int rows, floating* X, int ld, const floating* bias, int c0,
                              int c1) noexcept nogil:
    if floating is float:
        sc_fill_columns_f32(rows, X, ld, bias, c0, c1)
    else:
        sc_fill_columns_f64(rows, X, ld, bias, c0, c1)


cdef inline void project_packed(int n_threads, int rows, int K, const floating* X, int ldx,
                                const floating* Mpk, int ldm, int G, int H, const floating* bias, int init,
                                floating* Z, int ldz, const int* xrows=NULL,
                                const int* zrows=NULL) noexcept nogil:
    if floating is float:
        sc_project_packed_f32(n_threads, rows, K, X, ldx, Mpk, ldm, G, H, bias, init, Z, ldz,
                              xrows, zrows)
    else:
        sc_project_packed_f64(n_threads, rows, K, X, ldx, Mpk, ldm, G, H, bias, init, Z, ldz,
                              xrows, zrows)


cdef inline void project_own_units(int rows, int K, const floating* X, int ldx,
                                   const floating* Mpk, int ldm, int G, int H, int width,
                                   const floating* bias, floating* Z, int ldz) noexcept nogil:
    if floating is float:
        sc_project_own_units_f32(rows, K, X, ldx, Mpk, ldm, G, H, width, bias, Z, ldz)
    else:
        sc_project_own_units_f64(rows, K, X, ldx, Mpk, ldm, G, H, width, bias, Z, ldz)


cdef inline void lstm_forward_step(int rows, int H, const floating* Hp,
                                   const floating* Upk, int ldu, floating* Z, floating* c, floating* h,
                                   const u8* valid, floating* y, floating* c_store,
                                   const floating* rmask, floating* Hp_next, sc_claims* claims,
                                   int s) noexcept nogil:
    if floating is float:
        sc_lstm_forward_step_f32(rows, H, Hp, Upk, ldu, Z, c, h, valid, y, c_store, rmask, Hp_next,
                                 claims, s)
    else:
        sc_lstm_forward_step_f64(rows, H, Hp, Upk, ldu, Z, c, h, valid, y, c_store, rmask, Hp_next,
                                 claims, s)


cdef inline void lstm_forward_step_overlapped(int rows, int H, const floating* Hp,
                                              const floating* Upk, int ldu, floating* Z,
                                              floating* c, floating* h, const u8* valid,
                                              floating* y, const floating* rmask,
                                              floating* Hp_next, sc_claims* claims,
                                              int s) noexcept nogil:
    if floating is float:
        sc_lstm_forward_step_overlapped_f32(rows, H, Hp, Upk, ldu, Z, c, h, valid, y, rmask,
                                            Hp_next, claims, s)
    else:
        sc_lstm_forward_step_overlapped_f64(rows, H, Hp, Upk, ldu, Z, c, h, valid, y, rmask,
                                            Hp_next, claims, s)


cdef inline void lstm_backward_step(int rows, int H, const floating* A,
                                    const floating* C, const floating* Cp, const u8* valid,
                                    const floating* dy, floating* dh, floating* dc, floating* dZ,
                                    const floating* UpkT, const floating* rmask,
                                    floating* dHp, sc_claims* claims, int s) noexcept nogil:
    if floating is float:
        sc_lstm_backward_step_f32(rows, H, A, C, Cp, valid, dy, dh, dc, dZ, UpkT, rmask,
                                  dHp, claims, s)
    else:
        sc_lstm_backward_step_f64(rows, H, A, C, Cp, valid, dy, dh, dc, dZ, UpkT, rmask,
                                  dHp, claims, s)


cdef inline void gru_forward_step(int rows, int H, const floating* Hp,
                                  const floating* Upk, const floating* bh, floating* AX,
                                  floating* AH, floating* h, const u8* valid, floating* y,
                                  floating* An_store, const floating* rmask, floating* Hp_next,
                                  floating* H_next, sc_claims* claims, int s) noexcept nogil:
    if floating is float:
        sc_gru_forward_step_f32(rows, H, Hp, Upk, bh, AX, AH, h, valid, y, An_store, rmask,
                                Hp_next, H_next, claims, s)
    else:
        sc_gru_forward_step_f64(rows, H, Hp, Upk, bh, AX, AH, h, valid, y, An_store, rmask,
                                Hp_next, H_next, claims, s)


cdef inline void gru_forward_step_overlapped(int rows, int H, const floating* Hp,
                                             const floating* Upk, const floating* bh,
                                             floating* AX, floating* AH, floating* h,
                                             const u8* valid, floating* y,
                                             const floating* rmask, floating* Hp_next,
                                             sc_claims* claims, int s) noexcept nogil:
    if floating is float:
        sc_gru_forward_step_overlapped_f32(rows, H, Hp, Upk, bh, AX, AH, h, valid, y, rmask,
                                           Hp_next, claims, s)
    else:
        sc_gru_forward_step_overlapped_f64(rows, H, Hp, Upk, bh, AX, AH, h, valid, y, rmask,
                                           Hp_next, claims, s)


cdef inline void gru_backward_step(int rows, int H, const floating* A,
                                   const floating* An, const floating* Hin, const u8* valid,
                                   const floating* dy, floating* dh, floating* dAX, floating* dAH,
                                   floating* dAHn, const floating* UpkT, const floating* rmask,
                                   floating* dHp, sc_claims* claims, int s) noexcept nogil:
    if floating is float:
        sc_gru_backward_step_f32(rows, H, A, An, Hin, valid, dy, dh, dAX, dAH, dAHn, UpkT,
                                 rmask, dHp, claims, s)
    else:
        sc_gru_backward_step_f64(rows, H, A, An, Hin, valid, dy, dh, dAX, dAH, dAHn, UpkT,
                                 rmask, dHp, claims, s)


cdef inline void gru1_forward_step(int rows, int H, const floating* Hp,
                                   const floating* Upk, floating* AX, floating* AZR, floating* RH,
                                   floating* AN, floating* h, const u8* valid,
                                   floating* y, const floating* rmask, floating* Hp_next,
                                   floating* H_next, sc_claims* claims, int s) noexcept nogil:
    if floating is float:
        sc_gru1_forward_step_f32(rows, H, Hp, Upk, AX, AZR, RH, AN, h, valid, y, rmask,
                                 Hp_next, H_next, claims, s)
    else:
        sc_gru1_forward_step_f64(rows, H, Hp, Upk, AX, AZR, RH, AN, h, valid, y, rmask,
                                 Hp_next, H_next, claims, s)


cdef inline void gru1_backward_step(int rows, int H, const floating* A,
                                    const floating* Hin, const floating* Hp, const u8* valid,
                                    const floating* dy, floating* dh, floating* dAX,
                                    const floating* UpkT, const floating* rmask, floating* dRH,
                                    floating* dHp, sc_claims* claims, int s) noexcept nogil:
    if floating is float:
        sc_gru1_backward_step_f32(rows, H, A, Hin, Hp, valid, dy, dh, dAX, UpkT, rmask,
                                  dRH, dHp, claims, s)
    else:
        sc_gru1_backward_step_f64(rows, H, A, Hin, Hp, valid, dy, dh, dAX, UpkT, rmask,
                                  dRH, dHp, claims, s)


cdef inline void rnn_forward_step(int rows, int H, const floating* Hp,
                                  const floating* Upk, floating* A, floating* h, const u8* valid,
                                  floating* y, int relu, const floating* rmask,
                                  floating* Hp_next, sc_claims* claims, int s) noexcept nogil:
    if floating is float:
        sc_rnn_forward_step_f32(rows, H, Hp, Upk, A, h, valid, y, relu, rmask, Hp_next, claims,
                                s)
    else:
        sc_rnn_forward_step_f64(rows, H, Hp, Upk, A, h, valid, y, relu, rmask, Hp_next, claims,
                                s)


cdef inline void rnn_backward_step(int rows, int H, const floating* Hact,
                                   const u8* valid, const floating* dy, floating* dh, floating* dA,
                                   int relu, const floating* UpkT, const floating* rmask,
                                   floating* dHp, sc_claims* claims, int s) noexcept nogil:
    if floating is float:
        sc_rnn_backward_step_f32(rows, H, Hact, valid, dy, dh, dA, relu, UpkT, rmask,
                                 dHp, claims, s)
    else:
        sc_rnn_backward_step_f64(rows, H, Hact, valid, dy, dh, dA, relu, UpkT, rmask,
                                 dHp, claims, s)


cdef inline void masked_state(int rows, int H, const floating* h, const floating* rmask,
                              floating* Hp) noexcept nogil:
    if floating is float:
        sc_masked_state_f32(rows, H, h, rmask, Hp)
    else:
        sc_masked_state_f64(rows, H, h, rmask, Hp)
