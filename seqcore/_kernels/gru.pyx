"""GRU, one layer, one direction, both variants: forward (training and inference) and backward.

Numerics only: seqcore.ops validates every argument and allocates every buffer. Arrays are
C-contiguous, time-major, in the Keras layout (kernel (I, 3H), recurrent_kernel (H, 3H), gates
z, r, n). Biases come split: bias_x (3H,) is added to the input projection, bias_h (3H,) to the
recurrent one (reset_after=True only; None otherwise). Notation follows seqcore/reference/gru.py.

Per step, reset_after=True:  AH = Hp U + bh (one GEMM), then one fused pass.
            reset_after=False: AZR = Hp U_zr (GEMM), gates pass (z, r, RH = r * Hp),
                               AN = RH U_n (GEMM), state pass.

Threads: every function ends with n_threads (the OpenMP threads that split the GEMMs around
the time loop; BLAS must be single-threaded meanwhile, see seqcore.runtime) and step_threads
(the team that shares each time step, one parallel region around the whole time loop; 1 when
a step is too small to be worth splitting).
"""
from cython cimport floating
from cython.parallel cimport parallel
from libc.stdint cimport int64_t

from .cells cimport (gru1_backward_step, gru1_forward_step, gru_backward_step,
                     gru_forward_step, gru_forward_step_overlapped, masked_state, sc_claims,
                     sc_claims_reset, sc_ftz_enter, sc_ftz_exit, sc_steps_overlap,
                     sc_team_barrier, u8)
from .scan cimport (PACK_AUTO, PACK_READY, backward_rows, chunk_steps, entering_state,
                    handed_on, input_gradient, next_state, opt, opt3, opt_vec, pack_weights,
                    pack_weights_t, project_steps, rows_left_out, skip_finished_rows,
                    step_outputs, step_rows, time_index, weight_gradient)


cdef inline void recurrent_step(bint reset_after, int B, int H, const floating* Upk,
                                const floating* bh, const floating* Hp, floating* AXt,
                                floating* h, const u8* valid, floating* y, floating* store,
                                floating* work_a, floating* work_b, const floating* rmask,
                                floating* Hp_next, floating* H_next, sc_claims* claims,
                                int s) noexcept nogil:
    """One step after the input projection: the recurrent product(s) and the fused pass(es).

    Hp: state as the recurrent product sees it; Upk: the packed recurrent kernel.
    store: training keeps AH's n block
    (reset_after) or RH (reset_after=False) for this step there, or NULL in inference.
    work_a (B, 3H): AH, or AZR (B, 2H) followed by AN (B, H); work_b (B, H): RH when not stored.
    Hp_next: the next step's h * rmask, H_next: a copy of h (NULL: not wanted). claims, s: the
    scan's claim counters and the step (cells.h).
    """
    if reset_after:
        gru_forward_step(B, H, Hp, Upk, bh, AXt, work_a, h, valid, y, store, rmask, Hp_next,
                         H_next, claims, s)
    else:
        gru1_forward_step(B, H, Hp, Upk, AXt, work_a, store if store != NULL else work_b,
                          work_a + 2 * B * H, h, valid, y, rmask, Hp_next, H_next, claims, s)


def forward_training(floating[:, :, ::1] x, floating[:, ::1] W, floating[:, ::1] U,
                     floating[::1] bias_x, floating[::1] bias_h, floating[:, ::1] h,
                     const u8[:, ::1] mask, floating[:, ::1] input_mask,
                     floating[:, ::1] recurrent_mask, bint reverse, bint reset_after,
                     floating[:, :, ::1] Y, floating[:, :, ::1] AX, floating[:, :, ::1] HIN,
                     floating[:, :, ::1] HP, floating[:, :, ::1] STORE,
                     floating[:, :, ::1] XD, floating[:, ::1] work_a, floating[:, ::1] work_b,
                     floating[::1] packed, floating[::1] Yout, const int64_t[::1] y_rows,
                     long y_step, int n_threads, int step_threads):
    """Forward pass that keeps what backward needs.

    In: x (T, B, I); W, U; bias_x, bias_h (3H,) or None; h (B, H) initial state, overwritten
    with the final one; mask (T, B) uint8; input_mask (B, I) / recurrent_mask (B, H) or None.
    Out: Y (T, B, H); AX (T, B, 3H) gate activations z, r, n; HIN (T, B, H) state entering each
    step; HP (T, B, H) that state times the recurrent mask (None when there is none: HIN serves);
    STORE (T, B, H) AH's n block (reset_after) or RH; XD (T, B, I) x with input dropout (or None).
    Workspaces: work_a (B, 3H), work_b (B, H), packed (U and W in panels).
    Yout, y_rows, y_step: None, None, 0; or the outputs go on as each step ends, row j of time t
    to Yout[t * y_step + y_rows[j]:][:H] (scan.pxd handed_on), and Y is a workspace (2, B, H).
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0], s, t
    cdef const floating* X = &x[0, 0, 0]
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef floating* bx = opt_vec(bias_x)
    cdef floating* bh = opt_vec(bias_h)
    cdef floating* Hp
    cdef int nt = step_threads
    cdef floating* Upk
    cdef floating* Wpk
    cdef int ldu, ldw
    cdef unsigned int mode, thread_mode
    cdef sc_claims claims
    with nogil:
        mode = sc_ftz_enter()
        sc_claims_reset(&claims)
        Wpk = pack_weights(n_threads, T, B, I, H, 3, &U[0, 0], &W[0, 0], &packed[0],
                           &Upk, &ldu, &ldw, PACK_AUTO)
        project_steps(n_threads, T, B, I, 3, H, X, dmask, opt3(XD), Wpk, ldw, bx, &AX[0, 0, 0],
                      &mask[0, 0], &W[0, 0])
        entering_state(0, T, reverse, B, H, &h[0, 0], <floating*>NULL, HIN)
        if rmask != NULL:      # the product sees h * rmask; the gates' gradients need h too
            entering_state(0, T, reverse, B, H, &h[0, 0], rmask, HP)
        with parallel(num_threads=nt):
            thread_mode = sc_ftz_enter()
            for s in range(T):
                t = time_index(s, T, reverse)
                Hp = &HP[t, 0, 0] if rmask != NULL else &HIN[t, 0, 0]
                # the next step's states (h, and h * rmask) go straight into HIN and HP
                recurrent_step(reset_after, B, H, Upk, bh, Hp, &AX[t, 0, 0], &h[0, 0],
                               &mask[t, 0], step_outputs(Y, Yout, s, t), &STORE[t, 0, 0],
                               &work_a[0, 0], &work_b[0, 0], rmask,
                               next_state(s, T, reverse, HP) if rmask != NULL else NULL,
                               next_state(s, T, reverse, HIN), &claims, s)
                sc_team_barrier(&claims)
                handed_on(Y, Yout, y_rows, y_step, s, t)
            sc_ftz_exit(thread_mode)
        sc_ftz_exit(mode)


def forward_inference(floating[:, :, ::1] x, floating[:, ::1] W, floating[:, ::1] U,
                      floating[::1] bias_x, floating[::1] bias_h, floating[:, ::1] h,
                      const u8[:, ::1] mask, floating[:, ::1] input_mask,
                      floating[:, ::1] recurrent_mask, bint reverse, bint reset_after,
                      floating[:, :, ::1] Y, floating[:, :, ::1] AX, floating[:, :, ::1] XD,
                      floating[:, :, ::1] Hp, floating[:, ::1] work_a, floating[:, ::1] work_b,
                      floating[::1] packed, bint prepacked, floating[::1] Yout,
                      const int64_t[::1] y_rows, long y_step, int n_threads, int step_threads):
    """Forward pass that keeps nothing for backward; the input projection runs in chunks of
    AX.shape[0] steps. Y is None for return_sequences=False. XD (chunk, B, I) or None, Hp (2, B, H)
    (the state the product sees, one buffer read while the other is written),
    work_a (B, 3H), work_b (B, H), packed: workspaces; prepacked: `packed` already holds W and
    U (step.pack_forward), which are then not read. Yout, y_rows, y_step as forward_training."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0]
    cdef int chunk = AX.shape[0], s0 = 0, n, t0, s, t
    cdef bint compact, overlapped
    cdef long zrow
    cdef floating* ax
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef floating* bx = opt_vec(bias_x)
    cdef floating* bh = opt_vec(bias_h)
    cdef int nt = step_threads
    cdef floating* Upk
    cdef floating* Wpk
    cdef int ldu, ldw
    cdef unsigned int mode, thread_mode
    cdef sc_claims claims
    with nogil:
        mode = sc_ftz_enter()
        sc_claims_reset(&claims)
        Wpk = pack_weights(n_threads, T, B, I, H, 3, &U[0, 0], &W[0, 0], &packed[0],
                           &Upk, &ldu, &ldw,
                           PACK_READY if prepacked else PACK_AUTO)
        masked_state(B, H, &h[0, 0], rmask, &Hp[0, 0, 0])
        compact = reset_after and skip_finished_rows(T, B, &mask[0, 0])  # reset-before reads every row
        while s0 < T:
            n = chunk_steps(s0, T, chunk, B, &mask[0, 0], compact, reverse)
            t0 = T - s0 - n if reverse else s0
            project_steps(n_threads, n, B, I, 3, H, &x[t0, 0, 0], dmask, opt3(XD), Wpk, ldw, bx,
                          &AX[0, 0, 0], &mask[t0, 0], <floating*>NULL, not reset_after, compact,
                          reverse)
            with parallel(num_threads=nt):
                thread_mode = sc_ftz_enter()
                zrow = 0
                # a single row's steps without a barrier between them (cells_entry.h), where
                # no thread hands outputs on after a step
                overlapped = reset_after and Yout is None and sc_steps_overlap(B, &claims)
                for s in range(s0, s0 + n):
                    t = time_index(s, T, reverse)
                    ax = &AX[0, 0, 0] + step_rows(compact, t, t0, B, &mask[0, 0], &zrow) * 3 * H
                    if overlapped:
                        gru_forward_step_overlapped(B, H, &Hp[s % 2, 0, 0], Upk, bh, ax,
                                                    &work_a[0, 0], &h[0, 0], &mask[t, 0],
                                                    step_outputs(Y, Yout, s, t), rmask,
                                                    &Hp[(s + 1) % 2, 0, 0], &claims, s)
                        continue
                    recurrent_step(reset_after, B, H, Upk, bh, &Hp[s % 2, 0, 0],
                                   ax, &h[0, 0], &mask[t, 0],
                                   step_outputs(Y, Yout, s, t), NULL, &work_a[0, 0],
                                   &work_b[0, 0], rmask, &Hp[(s + 1) % 2, 0, 0], NULL, &claims,
                                   s)
                    sc_team_barrier(&claims)
                    handed_on(Y, Yout, y_rows, y_step, s, t)
                sc_ftz_exit(thread_mode)
            s0 += n
        sc_ftz_exit(mode)


def backward(floating[:, :, ::1] dY, floating[:, ::1] dh, floating[:, :, ::1] x,
             floating[:, ::1] W, floating[:, ::1] U, const u8[:, ::1] mask,
             floating[:, ::1] input_mask, floating[:, ::1] recurrent_mask, bint reverse,
             bint reset_after, floating[:, :, ::1] AX, floating[:, :, ::1] HIN,
             floating[:, :, ::1] HP, floating[:, :, ::1] STORE, floating[:, :, ::1] XD,
             floating[:, :, ::1] dAX, floating[:, ::1] dAH, floating[:, :, ::1] dAHn,
             floating[:, ::1] dHp, floating[:, ::1] dRH, floating[:, :, ::1] dX,
             floating[:, ::1] dW, floating[:, ::1] dU, floating[::1] db_x, floating[::1] db_h,
             floating[::1] packed, int n_threads, int step_threads):
    """Backpropagation through time for one forward_training call.

    In: dY (T, B, H); dh (B, H): gradient w.r.t. the final state, overwritten with the
    one w.r.t. the initial state; the forward's arguments and stores. Workspaces: dAX (T, B, 3H);
    reset_after (else None): dAH (B, 3H), a step's gradients of Hp U + bh, and dAHn (T, B, H),
    their n block at every step (their z and r blocks are dAX's: the weight gradient reads
    those there, so only H of the 3H values a row are kept); dHp, dRH (B, H); packed (U^T and
    W^T in panels).
    Out: dX (T, B, I), dW (I, 3H),
    dU (H, 3H), db_x (3H,) and db_h (3H,) (reset_after), each None when there is no bias.
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0], s, t
    cdef const floating* X = &XD[0, 0, 0] if XD is not None else &x[0, 0, 0]
    cdef const floating* HPall = &HP[0, 0, 0] if HP is not None else &HIN[0, 0, 0]
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef const floating* dy
    cdef int nt = step_threads
    cdef floating* UpkT = &packed[0]
    cdef floating* WpkT
    cdef const u8* skipped
    cdef floating* db
    cdef const floating* An      # the n block's weight gradient: its rows of A, of B, B's ld
    cdef const floating* dAn
    cdef int ld_n
    cdef int rows
    cdef unsigned int mode, thread_mode
    cdef sc_claims claims
    with nogil:
        mode = sc_ftz_enter()
        sc_claims_reset(&claims)
        WpkT = pack_weights_t(n_threads, I, H, 3, &U[0, 0], &W[0, 0], UpkT)
        skipped = rows_left_out(T, B, &mask[0, 0])
        with parallel(num_threads=nt):
            thread_mode = sc_ftz_enter()
            for s in range(T - 1, -1, -1):
                t = time_index(s, T, reverse)
                dy = &dY[t, 0, 0]
                rows = backward_rows(skipped, B, &mask[t, 0])
                if reset_after:
                    gru_backward_step(rows, H, &AX[t, 0, 0], &STORE[t, 0, 0], &HIN[t, 0, 0],
                                      &mask[t, 0], dy, &dh[0, 0], &dAX[t, 0, 0], &dAH[0, 0],
                                      &dAHn[t, 0, 0], UpkT, rmask, &dHp[0, 0], &claims, s)
                else:
                    gru1_backward_step(rows, H, &AX[t, 0, 0], &HIN[t, 0, 0],
                                       HPall + <long>t * B * H, &mask[t, 0], dy, &dh[0, 0],
                                       &dAX[t, 0, 0], UpkT, rmask, &dRH[0, 0], &dHp[0, 0],
                                       &claims, s)
                sc_team_barrier(&claims)
            sc_ftz_exit(thread_mode)

        # dW and the input bias from dAX; dU's z and r blocks from dAX's (with the recurrent
        # bias's: reset_after only, db_h is None otherwise), its n block from dAHn against Hp
        # (reset_after) or from dAX's n block against RH (STORE)
        weight_gradient(n_threads, I, X, I, &dW[0, 0], 3 * H, 0, <floating*>NULL, 0,
                        <floating*>NULL, 0, 3 * H, T * B, &dAX[0, 0, 0], 3 * H, opt_vec(db_x),
                        skipped, B)
        db = opt_vec(db_h)
        weight_gradient(n_threads, H, HPall, H, &dU[0, 0], 3 * H, 0, <floating*>NULL, 0,
                        <floating*>NULL, 0, 2 * H, T * B, &dAX[0, 0, 0], 3 * H, db, skipped, B)
        if reset_after:
            An, dAn, ld_n = HPall, &dAHn[0, 0, 0], H
        else:
            An, dAn, ld_n = &STORE[0, 0, 0], &dAX[0, 0, 2 * H], 3 * H
        weight_gradient(n_threads, H, An, H, &dU[0, 2 * H], 3 * H, 0, <floating*>NULL, 0,
                        <floating*>NULL, 0, H, T * B, dAn, ld_n,
                        db + 2 * H if db != NULL else NULL, skipped, B)
        input_gradient(n_threads, T, B, I, 3 * H, &dAX[0, 0, 0], WpkT, dmask, &dX[0, 0, 0],
                       skipped, &W[0, 0])
        sc_ftz_exit(mode)
