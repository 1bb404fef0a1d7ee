"""GRU, one layer, one direction, both variants: forward (training and inference) and backward.

Numerics only: seqcore.ops validates every argument and allocates every buffer. Arrays are
C-contiguous, time-major, in the Keras layout (kernel (I, 3H), recurrent_kernel (H, 3H), gates
z, r, n). Biases come split: bias_x (3H,) is added to the input projection, bias_h (3H,) to the
recurrent one (reset_after=True only; None otherwise). Notation follows seqcore/reference/gru.py.

Per step, reset_after=True:  AH = Hp U + bh (one GEMM), then one fused pass.
            reset_after=False: AZR = Hp U_zr (GEMM), gates pass (z, r, RH = r * Hp),
                               AN = RH U_n (GEMM), state pass.
"""
from cython cimport floating

from .blas cimport gemm
from .cells cimport (add_recurrent_grad_pass, gru1_backward_a_pass, gru1_backward_b_pass,
                     gru1_forward_pass, gru1_gates_pass, gru_backward_pass, gru_forward_pass,
                     masked_state_pass, sc_ftz_enter, sc_ftz_exit, u8)
from .scan cimport (add_col_sums, input_gradient, opt, opt3, opt_vec,
                    pointwise_threads, project_inputs, project_steps, time_index)


cdef void recurrent_step(bint reset_after, int nt, int B, int H, const floating* U,
                         const floating* bh, const floating* Hp, floating* AXt, floating* h,
                         const u8* valid, floating* y, floating* store, floating* work_a,
                         floating* work_b) noexcept nogil:
    """One step after the input projection: the recurrent GEMM(s) and the fused pass(es).

    Hp: state as the recurrent product sees it. store: training keeps AH's n block
    (reset_after) or RH (reset_after=False) for this step there, or NULL in inference.
    work_a: (B, 3H) for AH, or (B, 2H) for AZR; work_b: (B, H) for RH / AN when not stored.
    """
    cdef floating* RH
    if reset_after:
        project_inputs(B, H, 3 * H, Hp, U, bh, work_a)
        gru_forward_pass(nt, B, H, AXt, work_a, h, valid, y, store)
        return
    RH = store if store != NULL else work_b
    gemm(False, False, B, 2 * H, H, <floating>1, Hp, H, U, 3 * H, <floating>0, work_a, 2 * H)
    gru1_gates_pass(nt, B, H, AXt, work_a, Hp, RH)
    # AN = RH @ U_n reuses work_a: AZR is consumed by the gates pass
    gemm(False, False, B, H, H, <floating>1, RH, H, U + 2 * H, 3 * H, <floating>0, work_a, H)
    gru1_forward_pass(nt, B, H, AXt, work_a, h, valid, y)


def forward_training(floating[:, :, ::1] x, floating[:, ::1] W, floating[:, ::1] U,
                     floating[::1] bias_x, floating[::1] bias_h, floating[:, ::1] h,
                     const u8[:, ::1] mask, floating[:, ::1] input_mask,
                     floating[:, ::1] recurrent_mask, bint reverse, bint reset_after,
                     floating[:, :, ::1] Y, floating[:, :, ::1] AX, floating[:, :, ::1] HIN,
                     floating[:, :, ::1] HP, floating[:, :, ::1] STORE,
                     floating[:, :, ::1] XD, floating[:, ::1] work_a, floating[:, ::1] work_b,
                     int n_threads):
    """Forward pass that keeps what backward needs.

    In: x (T, B, I); W, U; bias_x, bias_h (3H,) or None; h (B, H) initial state, overwritten
    with the final one; mask (T, B) uint8; input_mask (B, I) / recurrent_mask (B, H) or None.
    Out: Y (T, B, H); AX (T, B, 3H) gate activations z, r, n; HIN (T, B, H) state entering each
    step; HP (T, B, H) that state times the recurrent mask (None when there is none: HIN serves);
    STORE (T, B, H) AH's n block (reset_after) or RH; XD (T, B, I) x with input dropout (or None).
    Workspaces: work_a (B, 3H), work_b (B, H).
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0], s, t
    cdef const floating* X = &x[0, 0, 0]
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef floating* bx = opt_vec(bias_x)
    cdef floating* bh = opt_vec(bias_h)
    cdef floating* Hp
    cdef int nt = pointwise_threads(B, 3 * H, n_threads)
    cdef unsigned int mode
    with nogil:
        mode = sc_ftz_enter()
        project_steps(T, B, I, 3 * H, X, dmask, opt3(XD), &W[0, 0], bx, &AX[0, 0, 0])
        for s in range(T):
            t = time_index(s, T, reverse)
            masked_state_pass(1, B, H, &h[0, 0], NULL, &HIN[t, 0, 0])
            Hp = &HIN[t, 0, 0]
            if rmask != NULL:
                Hp = &HP[t, 0, 0]
                masked_state_pass(1, B, H, &h[0, 0], rmask, Hp)
            recurrent_step(reset_after, nt, B, H, &U[0, 0], bh, Hp, &AX[t, 0, 0], &h[0, 0],
                           &mask[t, 0], &Y[t, 0, 0], &STORE[t, 0, 0], &work_a[0, 0],
                           &work_b[0, 0])
        sc_ftz_exit(mode)


def forward_inference(floating[:, :, ::1] x, floating[:, ::1] W, floating[:, ::1] U,
                      floating[::1] bias_x, floating[::1] bias_h, floating[:, ::1] h,
                      const u8[:, ::1] mask, floating[:, ::1] input_mask,
                      floating[:, ::1] recurrent_mask, bint reverse, bint reset_after,
                      floating[:, :, ::1] Y, floating[:, :, ::1] AX, floating[:, :, ::1] XD,
                      floating[:, ::1] Hp, floating[:, ::1] work_a, floating[:, ::1] work_b,
                      int n_threads):
    """Forward pass that keeps nothing for backward; the input projection runs in chunks of
    AX.shape[0] steps. Y is None for return_sequences=False. XD (chunk, B, I) or None, Hp (B, H),
    work_a (B, 3H), work_b (B, H): workspaces."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0]
    cdef int chunk = AX.shape[0], s0 = 0, n, t0, s, t
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef floating* bx = opt_vec(bias_x)
    cdef floating* bh = opt_vec(bias_h)
    cdef floating* y
    cdef int nt = pointwise_threads(B, 3 * H, n_threads)
    cdef unsigned int mode
    with nogil:
        mode = sc_ftz_enter()
        while s0 < T:
            n = min(chunk, T - s0)
            t0 = T - s0 - n if reverse else s0
            project_steps(n, B, I, 3 * H, &x[t0, 0, 0], dmask, opt3(XD), &W[0, 0], bx,
                          &AX[0, 0, 0])
            for s in range(s0, s0 + n):
                t = time_index(s, T, reverse)
                masked_state_pass(1, B, H, &h[0, 0], rmask, &Hp[0, 0])
                y = &Y[t, 0, 0] if Y is not None else NULL
                recurrent_step(reset_after, nt, B, H, &U[0, 0], bh, &Hp[0, 0],
                               &AX[t - t0, 0, 0], &h[0, 0], &mask[t, 0], y, NULL,
                               &work_a[0, 0], &work_b[0, 0])
            s0 += n
        sc_ftz_exit(mode)


def backward(floating[:, :, ::1] dY, floating[:, ::1] dh, floating[:, :, ::1] x,
             floating[:, ::1] W, floating[:, ::1] U, const u8[:, ::1] mask,
             floating[:, ::1] input_mask, floating[:, ::1] recurrent_mask, bint reverse,
             bint reset_after, floating[:, :, ::1] AX, floating[:, :, ::1] HIN,
             floating[:, :, ::1] HP, floating[:, :, ::1] STORE, floating[:, :, ::1] XD,
             floating[:, :, ::1] dAX, floating[:, :, ::1] dAH, floating[:, ::1] dHp,
             floating[:, ::1] dRH, floating[:, :, ::1] dX, floating[:, ::1] dW,
             floating[:, ::1] dU, floating[::1] db_x, floating[::1] db_h, int n_threads):
    """Backpropagation through time for one forward_training call.

    In: dY (T, B, H) or None; dh (B, H): gradient w.r.t. the final state, overwritten with the
    one w.r.t. the initial state; the forward's arguments and stores. Workspaces: dAX (T, B, 3H);
    dAH (T, B, 3H) (reset_after, else None); dHp, dRH (B, H). Out: dX (T, B, I), dW (I, 3H),
    dU (H, 3H), db_x (3H,) and db_h (3H,) (reset_after), each None when there is no bias.
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0], s, t
    cdef const floating* X = &XD[0, 0, 0] if XD is not None else &x[0, 0, 0]
    cdef const floating* HPall = &HP[0, 0, 0] if HP is not None else &HIN[0, 0, 0]
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef const floating* dy
    cdef const floating* U0 = &U[0, 0]
    cdef int nt = pointwise_threads(B, 3 * H, n_threads)
    cdef long TB = <long>T * B
    cdef unsigned int mode
    with nogil:
        mode = sc_ftz_enter()
        for s in range(T - 1, -1, -1):
            t = time_index(s, T, reverse)
            dy = &dY[t, 0, 0] if dY is not None else NULL
            if reset_after:
                gru_backward_pass(nt, B, H, &AX[t, 0, 0], &STORE[t, 0, 0], &HIN[t, 0, 0],
                                  &mask[t, 0], dy, &dh[0, 0], &dAX[t, 0, 0], &dAH[t, 0, 0])
                # AH = Hp U + bh  =>  dHp = dAH U^T
                gemm(False, True, B, H, 3 * H, <floating>1, &dAH[t, 0, 0], 3 * H, U0, 3 * H,
                     <floating>0, &dHp[0, 0], H)
            else:
                gru1_backward_a_pass(nt, B, H, &AX[t, 0, 0], &HIN[t, 0, 0], &mask[t, 0], dy,
                                     &dh[0, 0], &dAX[t, 0, 0])
                # AN = RH U_n  =>  dRH = dAN U_n^T
                gemm(False, True, B, H, H, <floating>1, &dAX[t, 0, 2 * H], 3 * H, U0 + 2 * H,
                     3 * H, <floating>0, &dRH[0, 0], H)
                gru1_backward_b_pass(nt, B, H, &AX[t, 0, 0], HPall + <long>t * B * H, &dRH[0, 0],
                                     &dAX[t, 0, 0], &dHp[0, 0])
                # AZR = Hp U_zr  =>  dHp += dAZR U_zr^T
                gemm(False, True, B, H, 2 * H, <floating>1, &dAX[t, 0, 0], 3 * H, U0, 3 * H,
                     <floating>1, &dHp[0, 0], H)
            add_recurrent_grad_pass(1, B, H, &dHp[0, 0], rmask, &mask[t, 0], &dh[0, 0])

        gemm(True, False, I, 3 * H, T * B, <floating>1, X, I, &dAX[0, 0, 0], 3 * H,
             <floating>0, &dW[0, 0], 3 * H)
        if reset_after:
            gemm(True, False, H, 3 * H, T * B, <floating>1, HPall, H, &dAH[0, 0, 0], 3 * H,
                 <floating>0, &dU[0, 0], 3 * H)
            if db_h is not None:
                add_col_sums(TB, 3 * H, &dAH[0, 0, 0], 3 * H, &db_h[0])
        else:
            gemm(True, False, H, 2 * H, T * B, <floating>1, HPall, H, &dAX[0, 0, 0], 3 * H,
                 <floating>0, &dU[0, 0], 3 * H)
            gemm(True, False, H, H, T * B, <floating>1, &STORE[0, 0, 0], H, &dAX[0, 0, 2 * H],
                 3 * H, <floating>0, &dU[0, 2 * H], 3 * H)
        if db_x is not None:
            add_col_sums(TB, 3 * H, &dAX[0, 0, 0], 3 * H, &db_x[0])
        input_gradient(T, B, I, 3 * H, &dAX[0, 0, 0], &W[0, 0], dmask, &dX[0, 0, 0])
        sc_ftz_exit(mode)
