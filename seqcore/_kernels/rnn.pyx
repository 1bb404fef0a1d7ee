"""Simple RNN (tanh or relu), one layer, one direction: forward (training and inference) and
backward.

Numerics only: seqcore.ops validates every argument and allocates every buffer. Arrays are
C-contiguous, time-major, in the Keras layout (kernel (I, H), recurrent_kernel (H, H)).
Notation follows seqcore/reference/rnn.py.

Threads: every function ends with n_threads (the OpenMP threads that split the GEMMs around
the time loop; BLAS must be single-threaded meanwhile, see seqcore.runtime) and step_threads
(the team that shares each time step, one parallel region around the whole time loop; 1 when
a step is too small to be worth splitting).
"""
from cython cimport floating
from cython.parallel cimport parallel
from libc.stdint cimport int64_t

from .cells cimport (masked_state, rnn_backward_step, rnn_forward_step, sc_claims,
                     sc_claims_reset, sc_ftz_enter, sc_ftz_exit, sc_team_barrier, u8)
from .scan cimport (PACK_AUTO, PACK_READY, backward_rows, chunk_steps, entering_state,
                    handed_on, input_gradient, next_state, opt, opt3, opt_vec, pack_weights,
                    pack_weights_t, project_steps, rows_left_out, skip_finished_rows,
                    step_outputs, step_rows, time_index, weight_gradient)


def forward_training(floating[:, :, ::1] x, floating[:, ::1] W, floating[:, ::1] U,
                     floating[::1] bias, floating[:, ::1] h, const u8[:, ::1] mask,
                     floating[:, ::1] input_mask, floating[:, ::1] recurrent_mask,
                     bint reverse, bint relu, floating[:, :, ::1] Y, floating[:, :, ::1] A,
                     floating[:, :, ::1] HP, floating[:, :, ::1] XD, floating[::1] packed,
                     floating[::1] Yout, const int64_t[::1] y_rows, long y_step, int n_threads,
                     int step_threads):
    """Forward pass that keeps what backward needs.

    In: x (T, B, I); W, U, bias (H,) or None; h (B, H) initial state, overwritten with the final
    one; mask (T, B) uint8; dropout masks or None; relu (else tanh). Out: Y (T, B, H);
    A (T, B, H) activations; HP (T, B, H) state entering each step times the recurrent mask;
    XD (T, B, I) x with input dropout (or None). packed: workspace for U and W packed in
    16-unit panels (seqcore.ops._packed_workspace).
    Yout, y_rows, y_step: None, None, 0; or the outputs go on as each step ends, row j of time t
    to Yout[t * y_step + y_rows[j]:][:H] (scan.pxd handed_on), and Y is a workspace (2, B, H).
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0], s, t
    cdef const floating* X = &x[0, 0, 0]
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
        Wpk = pack_weights(n_threads, T, B, I, H, 1, &U[0, 0], &W[0, 0], &packed[0],
                           &Upk, &ldu, &ldw, PACK_AUTO)
        project_steps(n_threads, T, B, I, 1, H, X, dmask, opt3(XD), Wpk, ldw, opt_vec(bias),
                      &A[0, 0, 0], &mask[0, 0], &W[0, 0])
        entering_state(0, T, reverse, B, H, &h[0, 0], rmask, HP)
        with parallel(num_threads=nt):
            thread_mode = sc_ftz_enter()
            for s in range(T):
                t = time_index(s, T, reverse)
                rnn_forward_step(B, H, &HP[t, 0, 0], Upk, &A[t, 0, 0], &h[0, 0], &mask[t, 0],
                                 step_outputs(Y, Yout, s, t), relu, rmask,
                                 next_state(s, T, reverse, HP), &claims, s)
                sc_team_barrier(&claims)
                handed_on(Y, Yout, y_rows, y_step, s, t)
            sc_ftz_exit(thread_mode)
        sc_ftz_exit(mode)


def forward_inference(floating[:, :, ::1] x, floating[:, ::1] W, floating[:, ::1] U,
                      floating[::1] bias, floating[:, ::1] h, const u8[:, ::1] mask,
                      floating[:, ::1] input_mask, floating[:, ::1] recurrent_mask,
                      bint reverse, bint relu, floating[:, :, ::1] Y, floating[:, :, ::1] A,
                      floating[:, :, ::1] XD, floating[:, :, ::1] Hp, floating[::1] packed,
                      bint prepacked, floating[::1] Yout, const int64_t[::1] y_rows, long y_step,
                      int n_threads, int step_threads):
    """Forward pass that keeps nothing for backward; the input projection runs in chunks of
    A.shape[0] steps. Y is None for return_sequences=False. XD (chunk, B, I) or None, Hp
    (2, B, H) (the state the product sees, one buffer read while the other is written) and
    packed: workspaces; prepacked: `packed` already holds W and U (step.pack_forward), which
    are then not read. Yout, y_rows, y_step as forward_training."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0]
    cdef int chunk = A.shape[0], s0 = 0, n, t0, s, t
    cdef bint compact
    cdef long zrow
    cdef floating* a
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
        Wpk = pack_weights(n_threads, T, B, I, H, 1, &U[0, 0], &W[0, 0], &packed[0],
                           &Upk, &ldu, &ldw,
                           PACK_READY if prepacked else PACK_AUTO)
        masked_state(B, H, &h[0, 0], rmask, &Hp[0, 0, 0])
        compact = skip_finished_rows(T, B, &mask[0, 0])
        while s0 < T:
            n = chunk_steps(s0, T, chunk, B, &mask[0, 0], compact, reverse)
            t0 = T - s0 - n if reverse else s0
            project_steps(n_threads, n, B, I, 1, H, &x[t0, 0, 0], dmask, opt3(XD), Wpk, ldw,
                          opt_vec(bias), &A[0, 0, 0], &mask[t0, 0], <floating*>NULL, False,
                          compact, reverse)
            with parallel(num_threads=nt):
                thread_mode = sc_ftz_enter()
                zrow = 0
                for s in range(s0, s0 + n):
                    t = time_index(s, T, reverse)
                    a = &A[0, 0, 0] + step_rows(compact, t, t0, B, &mask[0, 0], &zrow) * H
                    rnn_forward_step(B, H, &Hp[s % 2, 0, 0], Upk, a, &h[0, 0],
                                     &mask[t, 0], step_outputs(Y, Yout, s, t), relu, rmask,
                                     &Hp[(s + 1) % 2, 0, 0], &claims, s)
                    sc_team_barrier(&claims)
                    handed_on(Y, Yout, y_rows, y_step, s, t)
                sc_ftz_exit(thread_mode)
            s0 += n
        sc_ftz_exit(mode)


def backward(floating[:, :, ::1] dY, floating[:, ::1] dh, floating[:, :, ::1] x,
             floating[:, ::1] W, floating[:, ::1] U, const u8[:, ::1] mask,
             floating[:, ::1] input_mask, floating[:, ::1] recurrent_mask, bint reverse,
             bint relu, floating[:, :, ::1] A, floating[:, :, ::1] HP, floating[:, :, ::1] XD,
             floating[:, :, ::1] dA, floating[:, ::1] dHp, floating[:, :, ::1] dX,
             floating[:, ::1] dW, floating[:, ::1] dU, floating[::1] db, floating[::1] packed,
             int n_threads, int step_threads):
    """Backpropagation through time for one forward_training call.

    In: dY (T, B, H); dh (B, H): gradient w.r.t. the final state, overwritten with the
    one w.r.t. the initial state; the forward's arguments and stores. Workspaces: dA (T, B, H),
        dHp (B, H), packed (U^T and W^T in panels). Out: dX (T, B, I), dW (I, H), dU (H, H), db
    (H,) or None.
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = U.shape[0], s, t
    cdef const floating* X = &XD[0, 0, 0] if XD is not None else &x[0, 0, 0]
    cdef floating* dmask = opt(input_mask)
    cdef floating* rmask = opt(recurrent_mask)
    cdef const floating* dy
    cdef int nt = step_threads
    cdef floating* UpkT = &packed[0]
    cdef floating* WpkT
    cdef const u8* skipped
    cdef unsigned int mode, thread_mode
    cdef sc_claims claims
    with nogil:
        mode = sc_ftz_enter()
        sc_claims_reset(&claims)
        WpkT = pack_weights_t(n_threads, I, H, 1, &U[0, 0], &W[0, 0], UpkT)
        skipped = rows_left_out(T, B, &mask[0, 0])
        with parallel(num_threads=nt):
            thread_mode = sc_ftz_enter()
            for s in range(T - 1, -1, -1):
                t = time_index(s, T, reverse)
                dy = &dY[t, 0, 0]
                rnn_backward_step(backward_rows(skipped, B, &mask[t, 0]), H, &A[t, 0, 0],
                                  &mask[t, 0], dy, &dh[0, 0], &dA[t, 0, 0], relu, UpkT, rmask,
                                  &dHp[0, 0], &claims, s)
                sc_team_barrier(&claims)
            sc_ftz_exit(thread_mode)
        weight_gradient(n_threads, I, X, I, &dW[0, 0], H, H, &HP[0, 0, 0], H, &dU[0, 0], H, H,
                        T * B, &dA[0, 0, 0], H, opt_vec(db), skipped, B)
        input_gradient(n_threads, T, B, I, H, &dA[0, 0, 0], WpkT, dmask, &dX[0, 0, 0],
                       skipped, &W[0, 0])
        sc_ftz_exit(mode)
