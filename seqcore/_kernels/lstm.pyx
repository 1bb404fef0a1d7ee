"""LSTM, one layer, one direction: forward (training and inference) and backward.

Numerics only: seqcore.ops validates every argument and allocates every buffer; these functions
trust their inputs and release the GIL for the whole time loop. Arrays are C-contiguous,
time-major, in the Keras layout (kernel (I, 4H), recurrent_kernel (H, 4H), gates i, f, c, o).
Notation and cache contents follow seqcore/reference/lstm.py.

Threads: every function ends with n_threads (the OpenMP threads that split the GEMMs around
the time loop; BLAS must be single-threaded meanwhile, see seqcore.runtime) and step_threads
(the team that shares each time step, one parallel region around the whole time loop; 1 when
a step is too small to be worth splitting).
"""
from cython cimport floating
from cython.parallel cimport parallel
from libc.stdint cimport int64_t

from .cells cimport (lstm_backward_step, lstm_forward_step, lstm_forward_step_overlapped,
                     masked_state, sc_claims, sc_claims_reset, sc_ftz_enter, sc_ftz_exit,
                     sc_steps_overlap, sc_team_barrier, u8)
from .scan cimport (PACK_AUTO, PACK_READY, backward_rows, chunk_steps, entering_state,
                    handed_on, input_gradient, next_state, opt, opt3, opt_vec, pack_weights,
                    pack_weights_t, project_steps, rows_left_out, skip_finished_rows,
                    step_outputs, step_rows, time_index, weight_gradient)


def forward_training(floating[:, :, ::1] x, floating[:, ::1] W, floating[:, ::1] U,
                     floating[::1] bias, floating[:, ::1] h, floating[:, ::1] c,
                     const u8[:, ::1] mask, floating[:, ::1] input_mask,
                     floating[:, ::1] recurrent_mask, bint reverse, floating[:, :, ::1] Y,
                     floating[:, :, ::1] Z, floating[:, :, ::1] C, floating[:, :, ::1] HP,
                     floating[:, :, ::1] XD, floating[::1] packed, int chunk, floating[::1] Yout,
                     const int64_t[::1] y_rows, long y_step, int n_threads, int step_threads):
    """Forward pass that keeps what backward needs.

    In: x (T, B, I); W, U, bias (4H,) or None; h, c (B, H) initial state, overwritten with the
    final state; mask (T, B) uint8; input_mask (B, I) / recurrent_mask (B, H) or None.
    Out: Y (T, B, H) outputs; Z (T, B, 4H) gate activations; C (T, B, H) cell state carried
    after each step; HP (T, B, H) state entering each step as the recurrent product saw it;
    XD (T, B, I) x with input dropout applied (None when input_mask is None).
    packed: workspace for U and W packed in 16-unit panels (seqcore.ops._packed_workspace).
    chunk: steps whose input projection runs just before them (as in forward_inference: the
    pre-activations are then still in cache when the steps read them).
    Yout, y_rows, y_step: None, None, 0; or the outputs go on as each step ends, row j of time t
    to Yout[t * y_step + y_rows[j]:][:H] (scan.pxd handed_on), and Y is a workspace (2, B, H).
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0], s, t
    cdef int s0, n, t0
    cdef bint by_rows
    cdef floating* b = opt_vec(bias)
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef floating* XDall = opt3(XD)
    cdef int nt = step_threads
    cdef floating* Upk
    cdef floating* Wpk
    cdef int ldu, ldw
    cdef unsigned int mode, thread_mode
    cdef sc_claims claims
    with nogil:
        mode = sc_ftz_enter()
        sc_claims_reset(&claims)
        Wpk = pack_weights(n_threads, T, B, I, H, 4, &U[0, 0], &W[0, 0], &packed[0], &Upk,
                           &ldu, &ldw, PACK_AUTO)
        entering_state(0, T, reverse, B, H, &h[0, 0], rmask, HP)
        s0 = 0
        by_rows = skip_finished_rows(T, B, &mask[0, 0])
        while s0 < T:
            n = chunk_steps(s0, T, chunk, B, &mask[0, 0], by_rows, reverse)
            t0 = T - s0 - n if reverse else s0        # first time (in memory order) of the chunk
            # the masked rows' pre-activations are never read (the steps and backward's
            # pointwise pass skip the rows past a step's last valid one): not zeroed
            project_steps(n_threads, n, B, I, 4, H, &x[t0, 0, 0], dmask,
                          XDall + <long>t0 * B * I if XDall != NULL else NULL, Wpk, ldw, b,
                          &Z[t0, 0, 0], &mask[t0, 0], &W[0, 0], False)
            with parallel(num_threads=nt):
                thread_mode = sc_ftz_enter()
                for s in range(s0, s0 + n):
                    t = time_index(s, T, reverse)
                    # each unit's h * rmask goes straight into the next step's HP
                    lstm_forward_step(B, H, &HP[t, 0, 0], Upk, ldu, &Z[t, 0, 0], &c[0, 0],
                                      &h[0, 0], &mask[t, 0], step_outputs(Y, Yout, s, t),
                                      &C[t, 0, 0], rmask, next_state(s, T, reverse, HP),
                                      &claims, s)
                    sc_team_barrier(&claims)
                    handed_on(Y, Yout, y_rows, y_step, s, t)
                sc_ftz_exit(thread_mode)
            s0 += n
        sc_ftz_exit(mode)


def forward_inference(floating[:, :, ::1] x, floating[:, ::1] W, floating[:, ::1] U,
                      floating[::1] bias, floating[:, ::1] h, floating[:, ::1] c,
                      const u8[:, ::1] mask, floating[:, ::1] input_mask,
                      floating[:, ::1] recurrent_mask, bint reverse, floating[:, :, ::1] Y,
                      floating[:, :, ::1] Z, floating[:, :, ::1] XD, floating[:, :, ::1] Hp,
                      floating[::1] packed, bint prepacked, floating[::1] Yout,
                      const int64_t[::1] y_rows, long y_step, int n_threads, int step_threads):
    """Forward pass that keeps nothing for backward.

    The input projection runs in chunks of Z.shape[0] steps, so memory does not grow with T
    when Y is None (return_sequences=False). Z (chunk, B, 4H), XD (chunk, B, I) or None,
    Hp (2, B, H) (the state the product sees, one buffer read while the other is written),
    packed: workspaces; prepacked: `packed` already holds W and U (step.pack_forward), which
    are then not read. Other arguments as forward_training (Yout: Y is then (2, B, H)).
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0]
    cdef int chunk = Z.shape[0], s0, n, t0, s, t
    cdef bint compact, overlapped
    cdef long zrow
    cdef floating* z
    cdef floating* b = opt_vec(bias)
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef int nt = step_threads
    cdef floating* Upk
    cdef floating* Wpk
    cdef int ldu, ldw
    cdef unsigned int mode, thread_mode
    cdef sc_claims claims
    with nogil:
        mode = sc_ftz_enter()
        sc_claims_reset(&claims)
        Wpk = pack_weights(n_threads, T, B, I, H, 4, &U[0, 0], &W[0, 0], &packed[0], &Upk,
                           &ldu, &ldw,
                           PACK_READY if prepacked else PACK_AUTO)
        masked_state(B, H, &h[0, 0], rmask, &Hp[0, 0, 0])
        s0 = 0
        compact = skip_finished_rows(T, B, &mask[0, 0])  # masked rows' Z is never read
        while s0 < T:
            n = chunk_steps(s0, T, chunk, B, &mask[0, 0], compact, reverse)
            t0 = T - s0 - n if reverse else s0        # first time (in memory order) of the chunk
            project_steps(n_threads, n, B, I, 4, H, &x[t0, 0, 0], dmask, opt3(XD), Wpk, ldw, b,
                          &Z[0, 0, 0], &mask[t0, 0], <floating*>NULL, False, compact, reverse)
            with parallel(num_threads=nt):
                thread_mode = sc_ftz_enter()
                zrow = 0
                # a single row's steps without a barrier between them (cells_entry.h), where
                # no thread hands outputs on after a step
                overlapped = Yout is None and sc_steps_overlap(B, &claims)
                for s in range(s0, s0 + n):
                    t = time_index(s, T, reverse)
                    z = &Z[0, 0, 0] + step_rows(compact, t, t0, B, &mask[0, 0], &zrow) * 4 * H
                    if overlapped:
                        lstm_forward_step_overlapped(B, H, &Hp[s % 2, 0, 0], Upk, ldu, z,
                                                     &c[0, 0], &h[0, 0], &mask[t, 0],
                                                     step_outputs(Y, Yout, s, t), rmask,
                                                     &Hp[(s + 1) % 2, 0, 0], &claims, s)
                        continue
                    lstm_forward_step(B, H, &Hp[s % 2, 0, 0], Upk, ldu, z,
                                      &c[0, 0], &h[0, 0], &mask[t, 0],
                                      step_outputs(Y, Yout, s, t), NULL, rmask,
                                      &Hp[(s + 1) % 2, 0, 0], &claims, s)
                    sc_team_barrier(&claims)
                    handed_on(Y, Yout, y_rows, y_step, s, t)
                sc_ftz_exit(thread_mode)
            s0 += n
        sc_ftz_exit(mode)


def backward(floating[:, :, ::1] dY, floating[:, ::1] dh, floating[:, ::1] dc,
             floating[:, :, ::1] x, floating[:, ::1] W, floating[:, ::1] U,
             floating[:, ::1] c0, const u8[:, ::1] mask, floating[:, ::1] input_mask,
             floating[:, ::1] recurrent_mask, bint reverse, floating[:, :, ::1] Z,
             floating[:, :, ::1] C, floating[:, :, ::1] HP, floating[:, :, ::1] XD,
             floating[:, :, ::1] dZ, floating[:, ::1] dHp, floating[:, :, ::1] dX,
             floating[:, ::1] dW, floating[:, ::1] dU, floating[::1] db, floating[::1] packed,
             int n_threads, int step_threads):
    """Backpropagation through time for one forward_training call.

    In: dY (T, B, H); dh, dc (B, H): gradients w.r.t. the final state, overwritten with
    those w.r.t. the initial state; x, W, U, c0 (initial cell state), masks, reverse and the
        forward's Z, C, HP, XD. Workspaces: dZ (T, B, 4H), dHp (B, H), packed (U^T and W^T in
    panels). Out: dX (T, B, I),
    dW (I, 4H), dU (H, 4H), db (4H,) or None.
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0], s, t
    cdef const floating* X = &XD[0, 0, 0] if XD is not None else &x[0, 0, 0]
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef const floating* dy
    cdef const floating* Cp
    cdef int nt = step_threads
    cdef floating* UpkT = &packed[0]
    cdef floating* WpkT
    cdef const u8* skipped
    cdef unsigned int mode, thread_mode
    cdef sc_claims claims
    with nogil:
        mode = sc_ftz_enter()
        sc_claims_reset(&claims)
        WpkT = pack_weights_t(n_threads, I, H, 4, &U[0, 0], &W[0, 0], UpkT)
        skipped = rows_left_out(T, B, &mask[0, 0])
        with parallel(num_threads=nt):
            thread_mode = sc_ftz_enter()
            for s in range(T - 1, -1, -1):
                t = time_index(s, T, reverse)
                Cp = &C[time_index(s - 1, T, reverse), 0, 0] if s > 0 else &c0[0, 0]
                dy = &dY[t, 0, 0]
                lstm_backward_step(backward_rows(skipped, B, &mask[t, 0]), H, &Z[t, 0, 0],
                                   &C[t, 0, 0], Cp, &mask[t, 0], dy,
                                   &dh[0, 0], &dc[0, 0], &dZ[t, 0, 0], UpkT, rmask, &dHp[0, 0],
                                   &claims, s)
                sc_team_barrier(&claims)
            sc_ftz_exit(thread_mode)
        # the weight and bias gradients over all steps at once, one pass over dZ
        weight_gradient(n_threads, I, X, I, &dW[0, 0], 4 * H, H, &HP[0, 0, 0], H, &dU[0, 0],
                        4 * H, 4 * H, T * B, &dZ[0, 0, 0], 4 * H, opt_vec(db), skipped, B)
        input_gradient(n_threads, T, B, I, 4 * H, &dZ[0, 0, 0], WpkT, dmask, &dX[0, 0, 0],
                       skipped, &W[0, 0])
        sc_ftz_exit(mode)
