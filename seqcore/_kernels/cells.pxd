# Cython view of cells.h: the fused pointwise passes of each cell, one name per pass with the
# precision picked by the fused type (float -> *_f32, double -> *_f64). Arguments and layouts
# are documented in cells_impl.h. Each pass covers all rows of one step and is split over
# n_threads threads by hidden units.
from cython cimport floating

ctypedef unsigned char u8

cdef extern from "cells.h" nogil:
    unsigned int sc_ftz_enter()
    void sc_ftz_exit(unsigned int old)
    unsigned int sc_get_fpu_mode()
    float sc_sigmoidf(float x)
    float sc_tanhf(float x)

    void sc_lstm_forward_f32(int, int, int, float*, float*, float*, const u8*, float*, float*)
    void sc_lstm_forward_f64(int, int, int, double*, double*, double*, const u8*, double*, double*)
    void sc_lstm_backward_f32(int, int, int, const float*, const float*, const float*, const u8*, const float*, float*, float*, float*)
    void sc_lstm_backward_f64(int, int, int, const double*, const double*, const double*, const u8*, const double*, double*, double*, double*)
    void sc_gru_forward_f32(int, int, int, float*, const float*, float*, const u8*, float*, float*)
    void sc_gru_forward_f64(int, int, int, double*, const double*, double*, const u8*, double*, double*)
    void sc_gru_backward_f32(int, int, int, const float*, const float*, const float*, const u8*, const float*, float*, float*, float*)
    void sc_gru_backward_f64(int, int, int, const double*, const double*, const double*, const u8*, const double*, double*, double*, double*)
    void sc_gru1_gates_f32(int, int, int, float*, const float*, const float*, float*)
    void sc_gru1_gates_f64(int, int, int, double*, const double*, const double*, double*)
    void sc_gru1_forward_f32(int, int, int, float*, const float*, float*, const u8*, float*)
    void sc_gru1_forward_f64(int, int, int, double*, const double*, double*, const u8*, double*)
    void sc_gru1_backward_a_f32(int, int, int, const float*, const float*, const u8*, const float*, float*, float*)
    void sc_gru1_backward_a_f64(int, int, int, const double*, const double*, const u8*, const double*, double*, double*)
    void sc_gru1_backward_b_f32(int, int, int, const float*, const float*, const float*, float*, float*)
    void sc_gru1_backward_b_f64(int, int, int, const double*, const double*, const double*, double*, double*)
    void sc_rnn_forward_f32(int, int, int, float*, float*, const u8*, float*, int)
    void sc_rnn_forward_f64(int, int, int, double*, double*, const u8*, double*, int)
    void sc_rnn_backward_f32(int, int, int, const float*, const u8*, const float*, float*, float*, int)
    void sc_rnn_backward_f64(int, int, int, const double*, const u8*, const double*, double*, double*, int)
    void sc_add_recurrent_grad_f32(int, int, int, const float*, const float*, const u8*, float*)
    void sc_add_recurrent_grad_f64(int, int, int, const double*, const double*, const u8*, double*)
    void sc_masked_state_f32(int, int, int, const float*, const float*, float*)
    void sc_masked_state_f64(int, int, int, const double*, const double*, double*)


cdef inline void lstm_forward_pass(int n_threads, int rows, int H, floating* Z, floating* c, floating* h, const u8* valid, floating* y, floating* c_store) noexcept nogil:
    if floating is float:
        sc_lstm_forward_f32(n_threads, rows, H, Z, c, h, valid, y, c_store)
    else:
        sc_lstm_forward_f64(n_threads, rows, H, Z, c, h, valid, y, c_store)


cdef inline void lstm_backward_pass(int n_threads, int rows, int H, const floating* A, const floating* C, const floating* Cp, const u8* valid, const floating* dy, floating* dh, floating* dc, floating* dZ) noexcept nogil:
    if floating is float:
        sc_lstm_backward_f32(n_threads, rows, H, A, C, Cp, valid, dy, dh, dc, dZ)
    else:
        sc_lstm_backward_f64(n_threads, rows, H, A, C, Cp, valid, dy, dh, dc, dZ)


cdef inline void gru_forward_pass(int n_threads, int rows, int H, floating* AX, const floating* AH, floating* h, const u8* valid, floating* y, floating* An_store) noexcept nogil:
    if floating is float:
        sc_gru_forward_f32(n_threads, rows, H, AX, AH, h, valid, y, An_store)
    else:
        sc_gru_forward_f64(n_threads, rows, H, AX, AH, h, valid, y, An_store)


cdef inline void gru_backward_pass(int n_threads, int rows, int H, const floating* A, const floating* An, const floating* Hin, const u8* valid, const floating* dy, floating* dh, floating* dAX, floating* dAH) noexcept nogil:
    if floating is float:
        sc_gru_backward_f32(n_threads, rows, H, A, An, Hin, valid, dy, dh, dAX, dAH)
    else:
        sc_gru_backward_f64(n_threads, rows, H, A, An, Hin, valid, dy, dh, dAX, dAH)


cdef inline void gru1_gates_pass(int n_threads, int rows, int H, floating* AX, const floating* AZR, const floating* Hp, floating* RH) noexcept nogil:
    if floating is float:
        sc_gru1_gates_f32(n_threads, rows, H, AX, AZR, Hp, RH)
    else:
        sc_gru1_gates_f64(n_threads, rows, H, AX, AZR, Hp, RH)


cdef inline void gru1_forward_pass(int n_threads, int rows, int H, floating* AX, const floating* AN, floating* h, const u8* valid, floating* y) noexcept nogil:
    if floating is float:
        sc_gru1_forward_f32(n_threads, rows, H, AX, AN, h, valid, y)
    else:
        sc_gru1_forward_f64(n_threads, rows, H, AX, AN, h, valid, y)


cdef inline void gru1_backward_a_pass(int n_threads, int rows, int H, const floating* A, const floating* Hin, const u8* valid, const floating* dy, floating* dh, floating* dAX) noexcept nogil:
    if floating is float:
        sc_gru1_backward_a_f32(n_threads, rows, H, A, Hin, valid, dy, dh, dAX)
    else:
        sc_gru1_backward_a_f64(n_threads, rows, H, A, Hin, valid, dy, dh, dAX)


cdef inline void gru1_backward_b_pass(int n_threads, int rows, int H, const floating* A, const floating* Hp, const floating* dRH, floating* dAX, floating* dHp) noexcept nogil:
    if floating is float:
        sc_gru1_backward_b_f32(n_threads, rows, H, A, Hp, dRH, dAX, dHp)
    else:
        sc_gru1_backward_b_f64(n_threads, rows, H, A, Hp, dRH, dAX, dHp)


cdef inline void rnn_forward_pass(int n_threads, int rows, int H, floating* A, floating* h, const u8* valid, floating* y, int relu) noexcept nogil:
    if floating is float:
        sc_rnn_forward_f32(n_threads, rows, H, A, h, valid, y, relu)
    else:
        sc_rnn_forward_f64(n_threads, rows, H, A, h, valid, y, relu)


cdef inline void rnn_backward_pass(int n_threads, int rows, int H, const floating* Hact, const u8* valid, const floating* dy, floating* dh, floating* dA, int relu) noexcept nogil:
    if floating is float:
        sc_rnn_backward_f32(n_threads, rows, H, Hact, valid, dy, dh, dA, relu)
    else:
        sc_rnn_backward_f64(n_threads, rows, H, Hact, valid, dy, dh, dA, relu)


cdef inline void add_recurrent_grad_pass(int n_threads, int rows, int H, const floating* dHp, const floating* rmask, const u8* valid, floating* dh) noexcept nogil:
    if floating is float:
        sc_add_recurrent_grad_f32(n_threads, rows, H, dHp, rmask, valid, dh)
    else:
        sc_add_recurrent_grad_f64(n_threads, rows, H, dHp, rmask, valid, dh)


cdef inline void masked_state_pass(int n_threads, int rows, int H, const floating* h, const floating* rmask, floating* Hp) noexcept nogil:
    if floating is float:
        sc_masked_state_f32(n_threads, rows, H, h, rmask, Hp)
    else:
        sc_masked_state_f64(n_threads, rows, H, h, rmask, Hp)
