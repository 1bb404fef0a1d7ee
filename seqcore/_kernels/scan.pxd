# What the one-direction scans of every cell share: the time order, optional arguments, and the
# products hoisted out of the time loop (input projection before it; bias and input gradients
# after it; the weight gradients are BLAS GEMMs in each scan). DESIGN.md section 3.
from cython cimport floating
from cython.parallel cimport prange

from libc.stdint cimport int64_t
from libc.stdlib cimport getenv
from libc.string cimport memcpy, memset
from openmp cimport omp_get_num_threads, omp_get_thread_num

from .blas cimport gemm_threads
from .cells cimport (fill_columns, gemm_tn, masked_state, pack_panels, pack_panels_t,
                     project_packed, sc_active_rows, sc_isa_level, u8)


cdef inline floating* opt(floating[:, ::1] a) noexcept nogil:
    """Pointer to an optional (None-able) 2-D argument, NULL for None."""
    return &a[0, 0] if a is not None else NULL


cdef inline floating* opt_vec(floating[::1] a) noexcept nogil:
    """Pointer to an optional (None-able) 1-D argument, NULL for None."""
    return &a[0] if a is not None else NULL


cdef inline int time_index(int s, int T, bint reverse) noexcept nogil:
    """Time of the s-th step visited: s, or T-1-s for the reverse direction."""
    return T - 1 - s if reverse else s


cdef inline void entering_state(int s, int T, bint reverse, int B, int H, const floating* h,
                                const floating* rmask, floating[:, :, ::1] HP) noexcept nogil:
    """The state the s-th step visited sees, h * rmask (a copy of h when rmask is NULL), into HP
    at that step's time; nothing when s is past the last step. The training scans store it for
    every step (the weight gradient needs it): this for the first step, before the time loop;
    the step functions write the next step's as they go (next_state)."""
    if s < T:
        masked_state(B, H, h, rmask, &HP[time_index(s, T, reverse), 0, 0])


cdef inline floating* next_state(int s, int T, bint reverse,
                                 floating[:, :, ::1] HP) noexcept nogil:
    """Where the training scans keep the state the step after the s-th one sees (HP at that
    step's time; a step function writes it as it computes each unit), or NULL after the last
    step."""
    return &HP[time_index(s + 1, T, reverse), 0, 0] if s + 1 < T else NULL


cdef inline floating* opt3(floating[:, :, ::1] a) noexcept nogil:
    """Pointer to an optional (None-able) 3-D argument, NULL for None."""
    return &a[0, 0, 0] if a is not None else NULL


cdef inline floating* step_outputs(floating[:, :, ::1] Y, floating[::1] Yout, int s,
                                   int t) noexcept nogil:
    """Where the s-th step visited (time t) writes its outputs (B, H): Y[t]; or, when the scan
    hands them on (Yout given: handed_on), Y's two (B, H) buffers in turn; NULL without Y."""
    if Y is None:
        return NULL
    return &Y[s % 2, 0, 0] if Yout is not None else &Y[t, 0, 0]


cdef inline void handed_on(floating[:, :, ::1] Y, floating[::1] Yout,
                           const int64_t[::1] y_rows, long y_step, int s,
                           int t) noexcept nogil:
    """After the s-th step (time t) and its barrier, inside the step's parallel region: its
    outputs' row j to Yout[t * y_step + y_rows[j]:][:H], each thread of the team every
    nt-th row; nothing when Yout is None. So the outputs of a ragged batch, whose rows the
    scans see sorted by length (seqcore.ops), land in the caller's row order and layout while
    they are still in cache, instead of in a copy of them all after the call (3.3 MB at
    (T, B, H) = (100, 32, 256), read back from memory). Before step s + 2 reuses the buffer,
    every thread has passed step s + 1's barrier, i.e. finished this."""
    if Yout is None or Y is None:
        return
    cdef int j = omp_get_thread_num(), nt = omp_get_num_threads()
    cdef int B = Y.shape[1], H = Y.shape[2]
    cdef long base = t * y_step
    while j < B:
        memcpy(&Yout[base + y_rows[j]], &Y[s % 2, j, 0], H * sizeof(floating))
        j += nt


cdef inline bint blas_product(long rows, long K, long N) noexcept nogil:
    """Whether a training scan's product hoisted out of the time loop, (rows, K) times (K, N)
    (the input projection, the input gradient; for the weight gradients rows = T*B, K = the
    gradients' rows), goes to BLAS instead of the packed kernels (cells_impl.h
    sc_gemm_acc_packed): when the matrix that the packed kernels would stream for every tile
    of rows, K x N, holds 2^20 values or more (4 MiB in float32, past a core's L2 cache) and
    there are 256 rows or more. OpenBLAS blocks such products for the caches better than the
    packed kernels' full-K panels: on Zen 3 (AVX2, 512 KiB L2 per core), one core, GFLOP/s
    packed / BLAS: (6400 x 1024) x (1024 x 4096) 62 / 71, (6400 x 4096) x W^T 64 / 72,
    (256 x 1024) x (1024 x 4096) 54 / 65, the weight gradients at K = 6400, 2048 x 4096
    62 / 68; below the threshold the packed kernels are as fast or faster ((1600 x 1024) x
    W^T (1024 x 256) 82 / 72; (1600 x 256) x (256 x 1024) 78 / 74). A whole LSTM training step,
    BLAS / packed time by run (the machine's noise is of the same size): (T, B, I, H) =
    (50, 128, 1024, 1024) 0.86-0.99 on one thread, 0.92-1.02 on two; (100, 64, 512, 512)
    0.96 on one, 0.95-1.01 on two; float64 at (50, 64, 512, 512) 0.80. Not with AVX-512,
    where the packed kernels beat BLAS on these shapes (measured on an earlier machine: 110
    against 83 GFLOP/s for the weight gradients).
    The inference scans keep the packed kernels: their projection runs in chunks of a few
    steps just before those steps read it, and BLAS measured no faster there (0.99-1.01).
    SEQCORE_BLAS_PRODUCTS=1 / 0 forces either way (for the tests)."""
    cdef char* force = getenv("SEQCORE_BLAS_PRODUCTS")
    if force != NULL and force[0] != 0:
        return force[0] == b'1'
    return sc_isa_level() < 2 and rows >= 256 and K * N >= (1 << 20)


cdef inline bint skip_finished_rows(int steps, int B, const u8* mask) noexcept nogil:
    """Whether the rows past each step's last valid one (mask (steps, B); NULL: no mask) are an
    eighth of the rows or more, so that products of the rows before them (project_valid) beat
    one product over every row."""
    cdef long total = 0
    cdef int s
    if mask == NULL:
        return False
    for s in range(steps):
        total += sc_active_rows(B, mask + <long>s * B)
    return total * 8 < <long>steps * B * 7


cdef inline void project_rows(int n_threads, int steps, int B, int I, int G, int H,
                              const floating* x, const floating* dmask, floating* XD,
                              const floating* Wpk, int ldw, const floating* bias,
                              floating* out, const floating* W) noexcept nogil:
    """out (steps*B, G*H) = (x * dmask) @ W + bias, every row (see project_steps): by BLAS from
    W itself when W is not NULL and blas_product says so, else by the packed kernels."""
    if dmask != NULL:
        mask_inputs(steps, B, I, x, dmask, XD)
        x = XD
    if W != NULL and blas_product(<long>steps * B, I, <long>G * H):
        if bias != NULL:        # the bias first, then BLAS adds the product to it
            fill_columns(steps * B, out, G * H, bias, 0, G * H)
        gemm_threads(n_threads, False, False, steps * B, G * H, I, <floating>1, x, I, W, G * H,
                     <floating>(1 if bias != NULL else 0), out, G * H)
        return
    project_packed(n_threads, steps * B, I, x, I, Wpk, ldw, G, H, bias, 1, out, G * H)


cdef inline void project_steps(int n_threads, int steps, int B, int I, int G, int H,
                               const floating* x, const floating* dmask, floating* XD,
                               const floating* Wpk, int ldw, const floating* bias,
                               floating* out, const u8* mask,
                               const floating* W=NULL, bint zero_skipped=True,
                               bint compact=False, bint reverse=False) noexcept nogil:
    """Input projection of `steps` consecutive steps: out (steps*B, G*H) = (x * dmask) @ W + bias
    with W packed by pack_panels (Wpk, ldw = 0) or in place (ldw: its row stride), input dropout
    applied into XD first when dmask is not NULL (XD is what backward's dW needs). Bias may be
    NULL. W: W (I, G*H) itself for a training scan, whose large projections go to BLAS
    (blas_product); NULL (the inference scans): always the packed kernels. mask (steps, B) or
    NULL: the rows past a step's last valid one are not projected when that leaves out an
    eighth of the rows or more (a ragged batch ordered longest first by seqcore.ops); else one
    product over every row. Rows left out are zeroed in XD (a weight gradient by BLAS reads
    every row of it) and in out, so that nothing downstream meets uninitialized values (the
    reset-before GRU's gates read every row), unless zero_skipped is False: for a scan that
    never reads a masked row's pre-activations (the inference scans of the LSTM, the
    reset-after GRU and the simple RNN; the LSTM's training scan, whose steps and backward
    leave those rows alone), where zeroing half the pre-activations of a ragged batch cost
    1.4% of the samples at (100, 32, 128, 256).
    compact (an inference scan of such a cell, on a batch that skip_finished_rows skips): only
    the projected rows are written, one after another in out (and XD), step by step in the
    order the scan visits the steps (reverse: the last step first); chunk_steps and
    step_rows say where each step's rows lie."""
    cdef int s
    if compact:
        project_valid(n_threads, steps, B, mask, I, x, dmask, XD, Wpk, ldw, G, H, bias, out,
                      True, reverse)
        return
    if not skip_finished_rows(steps, B, mask):
        project_rows(n_threads, steps, B, I, G, H, x, dmask, XD, Wpk, ldw, bias, out, W)
        return
    if W != NULL and blas_product(B, I, <long>G * H):
        # steps large enough for BLAS (blas_product: not on AVX-512), step by step, each
        # step's product on one thread, the threads taking steps in turn (one team for all)
        if n_threads > 1:
            for s in prange(steps, num_threads=n_threads, schedule="dynamic"):
                project_valid_rows(s, B, I, G, H, x, dmask, XD, Wpk, ldw, bias, out, mask, W,
                                   zero_skipped)
        else:
            for s in range(steps):
                project_valid_rows(s, B, I, G, H, x, dmask, XD, Wpk, ldw, bias, out, mask, W,
                                   zero_skipped)
        return
    if zero_skipped:
        zero_finished_rows(steps, B, mask, out, G * H)
    if XD != NULL:
        zero_finished_rows(steps, B, mask, XD, I)
    project_valid(n_threads, steps, B, mask, I, x, dmask, XD, Wpk, ldw, G, H, bias, out, False,
                  False)


cdef inline void zero_finished_rows(int steps, int B, const u8* mask, floating* a,
                                    int width) noexcept nogil:
    """Rows of a (steps*B, width) past each step's last valid one (mask (steps, B)) = 0."""
    cdef int s, n
    for s in range(steps):
        n = sc_active_rows(B, mask + <long>s * B)
        if n < B:
            memset(a + (<long>s * B + n) * width, 0, <size_t>(B - n) * width * sizeof(floating))


cdef enum:
    VALID_ROWS_GROUP = 2048     # rows of a ragged batch's steps per product of project_valid


cdef inline void project_valid(int n_threads, int steps, int B, const u8* mask, int K,
                               const floating* X, const floating* dmask, floating* XD,
                               const floating* Mpk, int ldm, int G, int H,
                               const floating* bias, floating* Z, bint compact,
                               bint reverse) noexcept nogil:
    """Z[r] = bias (or 0: NULL) + (X[r] * dmask) M for the rows r of each step up to its last
    valid one (mask (steps, B)), X (steps*B, K), M packed (Mpk, ldm as project_packed), the
    rows times the input dropout mask dmask (B, K) into XD first when dmask is not NULL. Z and
    XD: (steps*B, G*H) and (steps*B, K), those rows alone written; or compact, only the
    projected rows, one after another, step by step (reverse: from the last step). The rows of
    consecutive steps go into products of up to VALID_ROWS_GROUP rows together (project_packed
    through a row map), so that the register tiles run across steps and M is streamed once a
    group: one product a step, of a few rows in a batch's tail, ran 4- and 3-row tiles for 7
    rows and streamed M (512 KiB at I = 128, 4H = 1024) again for each. LSTM layer
    (100, 32, 128, 256), lengths 1..100, paired in one process: inference 1 thread 0.974x the
    time, 2 threads and training unchanged (0.98-1.03)."""
    cdef int at[VALID_ROWS_GROUP]
    cdef int v, s, i, a, n = 0
    cdef long first = 0           # compact: the row of Z and XD where the group's rows go
    cdef long dst
    for v in range(steps):
        s = steps - 1 - v if reverse and compact else v
        a = sc_active_rows(B, mask + <long>s * B)
        for i in range(a):
            at[n] = s * B + i
            if dmask != NULL:
                dst = first + n if compact else at[n]
                mask_inputs(1, 1, K, X + <long>at[n] * K, dmask + <long>i * K, XD + dst * K)
            n += 1
            if n == VALID_ROWS_GROUP:
                project_group(n_threads, n, K, X, dmask, XD, Mpk, ldm, G, H, bias, Z, at,
                              compact, first)
                first += n
                n = 0
    if n > 0:
        project_group(n_threads, n, K, X, dmask, XD, Mpk, ldm, G, H, bias, Z, at, compact,
                      first)


cdef inline void project_group(int n_threads, int n, int K, const floating* X,
                               const floating* dmask, const floating* XD, const floating* Mpk,
                               int ldm, int G, int H, const floating* bias, floating* Z,
                               const int* at, bint compact, long first) noexcept nogil:
    """project_valid's product of n rows, X's rows at[0:n] (or XD's, with input dropout): into
    Z's rows first.. (compact) or at[0:n]."""
    cdef const floating* src = XD if dmask != NULL else X
    if not compact:
        project_packed(n_threads, n, K, src, K, Mpk, ldm, G, H, bias, 1, Z, G * H, at, at)
    elif dmask != NULL:                   # XD's rows lie as Z's: no map
        project_packed(n_threads, n, K, src + first * K, K, Mpk, ldm, G, H, bias, 1,
                       Z + first * G * H, G * H)
    else:
        project_packed(n_threads, n, K, src, K, Mpk, ldm, G, H, bias, 1, Z + first * G * H,
                       G * H, at)


cdef inline int chunk_steps(int s0, int T, int chunk, int B, const u8* mask, bint by_rows,
                            bint reverse) noexcept nogil:
    """Steps in the chunk of a scan that starts at its s0-th step: `chunk` steps (or the T - s0
    left); by_rows (a ragged batch whose projection skips finished rows, in a scan whose
    pre-activations for it lie compact or in a (T, B, .) array), as many steps as keep their
    rows up to each one's last valid row within chunk * B (at least one): chunks of a batch's
    tail then take as many rows as at its head. Chunks of a fixed number of steps gave the
    steps of 1 row (of B = 32) a product of 4 rows every 4 steps, each streaming W again and
    pushing the recurrent weights out of the L2 cache, and in the (T, B) layout those rows lay
    128 KiB apart (one L2 way): LSTM layer (100, 32, 128, 256) inference, 1 thread, one row of
    100 steps and 31 of 10: 1.39x the time of full batches of the same sizes (the batch-size
    curve, bench/workloads.py) -> 1.15-1.19x (with sc_lstm_forward_step's masked rows as whole
    rows); lengths 1..100: the ragged call / (the full batch x the valid fraction) 1.22 ->
    1.165 (1 thread), 1.25 -> 1.24 (2); training 1.19 -> 1.16, 1.30 -> 1.27."""
    cdef int n = 0
    cdef long rows = 0, a
    if not by_rows:
        return min(chunk, T - s0)
    while s0 + n < T:
        a = sc_active_rows(B, mask + <long>time_index(s0 + n, T, reverse) * B)
        if n > 0 and rows + a > <long>chunk * B:
            break
        rows += a
        n += 1
    return n


cdef inline long step_rows(bint compact, int t, int t0, int B, const u8* mask,
                           long* next_row) noexcept nogil:
    """Where the pre-activations of the step at time t of a chunk (first time t0) start, in rows:
    (t - t0) * B; compact (project_steps), next_row, which then moves past the step's rows."""
    cdef long r = next_row[0]
    if not compact:
        return <long>(t - t0) * B
    next_row[0] = r + sc_active_rows(B, mask + <long>t * B)
    return r


cdef inline void project_valid_rows(int s, int B, int I, int G, int H, const floating* x,
                                    const floating* dmask, floating* XD, const floating* Wpk,
                                    int ldw, const floating* bias, floating* out,
                                    const u8* mask, const floating* W,
                                    bint zero_skipped) noexcept nogil:
    """project_steps' step s of a ragged batch, on the calling thread: its rows up to the last
    valid one projected, the others zeroed in XD, and in out when zero_skipped."""
    cdef long r = <long>s * B
    cdef int a = sc_active_rows(B, mask + r)
    if a > 0:
        project_rows(1, 1, a, I, G, H, x + r * I, dmask,
                     XD + r * I if XD != NULL else NULL, Wpk, ldw, bias, out + r * G * H, W)
    if zero_skipped:
        zero_finished_rows(1, B, mask + r, out + r * G * H, G * H)
    if XD != NULL:
        zero_finished_rows(1, B, mask + r, XD + r * I, I)


cdef inline void add_col_sums(long rows, int N, const floating* A, int lda,
                              floating* out) noexcept nogil:
    """out(N) += sum over rows of A(rows, N) (row stride lda): a bias gradient."""
    cdef long r
    cdef int j
    cdef const floating* row
    for r in range(rows):
        row = A + r * lda
        for j in range(N):
            out[j] += row[j]


cdef inline const u8* rows_left_out(int T, int B, const u8* mask) noexcept nogil:
    """What a backward scan passes as `skipped` to backward_rows, weight_gradient and
    input_gradient: mask (T, B) when the rows past each step's last valid one are worth
    leaving out (skip_finished_rows), else NULL. One decision for the three, since the steps
    leave those rows' gradients unwritten and the products then must not read them."""
    return mask if skip_finished_rows(T, B, mask) else NULL


cdef inline int backward_rows(const u8* skipped, int B, const u8* step_mask) noexcept nogil:
    """The rows a backward step works on: all B; or, when skipped is not NULL (rows_left_out:
    the weight and input gradients leave the rows past each step's last valid one out), those
    up to the last valid one, the others' pre-activation gradients left unwritten (the LSTM's
    zero fill of them, 4H values a row, was 3% of the samples of a ragged training step at
    (100, 32, 128, 256), lengths 1..100; with dX no longer zero-filled first, the step against
    the full batch x the valid fraction, fresh processes, medians of 3: 1.18 -> 1.15 at
    1 thread, 1.27 -> 1.23 at 2). The GRU's (both variants) and the RNN's backward steps
    likewise: a masked row's step leaves its dh alone and only zeroes its gradients, so
    leaving the rows out changes nothing else."""
    return sc_active_rows(B, step_mask) if skipped != NULL else B


cdef inline void weight_gradient(int n_threads, int M1, const floating* A1, int lda1,
                                 floating* C1, int ldc1, int M2, const floating* A2, int lda2,
                                 floating* C2, int ldc2, int N, int K, const floating* B,
                                 int ldb, floating* colsum, const u8* skipped,
                                 int rows_per_step) noexcept nogil:
    """C1 (M1, N) = A1^T B and C2 (M2, N) = A2^T B (ld ldc1, ldc2) for A1 (K, M1), A2 (K, M2)
    and B (K, N): the weight gradients (K = T*B rows; M2 = 0 with A2 and C2 NULL for one), and
    colsum (N) += B's column sums (the bias gradient; NULL: none). skipped: NULL, or the mask
    (K / rows_per_step, rows_per_step) of a backward scan that left the rows past each step's
    last valid one out (rows_left_out; their rows of B unwritten), which are then left out
    here too. Large products (blas_product) by BLAS over every row, unless rows are left out;
    the others in one pass over B through the packed product (gemm_tn in cells_entry.h, which
    leaves those rows out), or by BLAS if gemm_tn's workspace cannot be allocated (B's rows
    left out are then zeroed first). Without rows left out, gemm_tn gets no mask: it then
    takes K's rows in runs of SC_TN_CHUNK rather than step by step, which at B = 1 transposed
    A one row at a time (one value per cache line of the transposed chunk: 3.4% of the samples
    of an LSTM training step at (100, 1, 128, 256), 1 thread)."""
    if ((not blas_product(K, M1 + M2, N) or skipped != NULL)
            and gemm_tn(n_threads, M1, A1, lda1, C1, ldc1, M2, A2, lda2, C2, ldc2, N, K, B, ldb,
                        colsum, skipped, rows_per_step) == 0):
        return
    if skipped != NULL:
        zero_finished_rows(K // rows_per_step, rows_per_step, skipped, <floating*>B, ldb)
    gemm_threads(n_threads, True, False, M1, N, K, <floating>1, A1, lda1, B, ldb, <floating>0,
                 C1, ldc1)
    if M2 > 0:
        gemm_threads(n_threads, True, False, M2, N, K, <floating>1, A2, lda2, B, ldb,
                     <floating>0, C2, ldc2)
    if colsum != NULL:
        add_col_sums(K, N, B, ldb, colsum)


cdef inline int panels(int n) noexcept nogil:
    """Panels of 16 units that hold n units."""
    return (n + 15) // 16


cdef inline bint in_place(int T, int B, int H) noexcept nogil:
    """Whether a forward call's products read U and W where they lie rather than packed. Packing
    reads and writes every weight once per call, from memory (they are rarely still in cache
    from the call before); read in place, rows 4 KB and more apart, a pass over U costs about
    twice a pass over packed panels. Measured (LSTM, 1 thread, us per call, packed / in place):
    (T, B, I, H) = (1, 1, 64, 128) 44 / 30; (1, 1, 256, 256) 179 / 91; (4, 1, 128, 256)
    208 / 163; (1, 32, 128, 256) 382 / 313; but (10, 1, 128, 256) 310 / 360, (4, 64, 512, 512)
    12.6 / 23.1 ms, (1, 128, 1024, 1024) 28 / 87 ms. Hence in place for at most 8 passes of
    4-row tiles over U (T * ceil(B / 4)), when H is a multiple of 16 (a panel's 16 lanes are
    always read). SEQCORE_INPLACE=1 / 0 forces either way (for the tests)."""
    cdef char* force
    if H % 16 != 0:
        return False
    force = getenv("SEQCORE_INPLACE")
    if force != NULL and force[0] != 0:
        return force[0] == b'1'
    return <long>T * ((B + 3) // 4) <= 8


cdef enum:
    PACK_AUTO     # pack into `packed`, or read U and W in place when in_place() says so
    PACK_COPY     # always pack (a copy: later changes to U and W do not count)
    PACK_READY    # `packed` already holds U and W packed by PACK_COPY: nothing to do


cdef inline floating* pack_weights(int n_threads, int T, int B, int I, int H, int G,
                                   const floating* U, const floating* W, floating* packed,
                                   floating** Upk, int* ldu, int* ldw,
                                   int how) noexcept nogil:
    """Where the forward products find U and W: packed into the `packed` workspace (sized by
    seqcore.ops._packed_workspace; U (H, G*H) in panels at its start, gates interleaved for the
    LSTM's fused step, G = 4; then W (I, G*H)), with *ldu = *ldw = 0; or, when in_place(T, B, H),
    U and W themselves (*ldu, *ldw: their row stride G*H; only the LSTM's step reads U in
    place). Sets *Upk, returns where W is found. how: PACK_AUTO, PACK_COPY (a stepper or a
    bound layer keeps the weights as they were when it was made) or PACK_READY (theirs)."""
    cdef floating* Wpk = packed + <long>G * panels(H) * H * 16
    Upk[0], ldu[0], ldw[0] = packed, 0, 0
    if how == PACK_READY:
        return Wpk
    if how == PACK_AUTO and in_place(T, B, H):
        Wpk, ldw[0] = <floating*>W, G * H
        if G == 4:
            Upk[0], ldu[0] = <floating*>U, G * H
    if ldu[0] == 0:
        pack_panels(n_threads, H, H, G, U, G * H, packed, G == 4)
    if ldw[0] == 0:
        pack_panels(n_threads, I, H, G, W, G * H, Wpk)
    return Wpk


cdef inline floating* pack_weights_t(int n_threads, int I, int H, int G, const floating* U,
                                     const floating* W, floating* packed) noexcept nogil:
    """The backward layout of `packed`: U^T in panels at its start, then W^T. Returns where
    W^T's panels start."""
    cdef floating* WpkT = packed + <long>panels(H) * G * H * 16
    pack_panels_t(n_threads, H, G * H, U, G * H, packed)
    pack_panels_t(n_threads, I, G * H, W, G * H, WpkT)
    return WpkT


cdef inline void mask_inputs(int T, int B, int I, const floating* x, const floating* dmask,
                             floating* XD) noexcept nogil:
    """XD[t, b] = x[t, b] * dmask[b]: input dropout, the same mask at every step."""
    cdef long t, b, i
    cdef const floating* xr
    cdef floating* out
    for t in range(T):
        for b in range(B):
            xr = x + (t * B + b) * I
            out = XD + (t * B + b) * I
            for i in range(I):
                out[i] = xr[i] * dmask[b * I + i]


cdef inline void input_gradient(int n_threads, int T, int B, int I, int N, const floating* dZ,
                                const floating* WpkT, const floating* dmask, floating* dX,
                                const u8* skipped, const floating* W=NULL) noexcept nogil:
    """dX(T*B, I) = dZ(T*B, N) @ W(I, N)^T, by BLAS from W itself when W is not NULL and
    blas_product says so, else by the packed kernels from W^T packed by pack_panels_t (WpkT);
    times the input dropout mask (may be NULL). skipped: NULL, or the mask (T, B) of a backward
    scan that left the rows past each step's last valid one out (rows_left_out; their dZ
    unwritten): those rows are left out here too (project_valid), their dX zeroed. Every row
    of dX is written."""
    cdef long r
    cdef int i
    cdef bint skip = skipped != NULL
    if not skip and W != NULL and blas_product(<long>T * B, N, I):
        gemm_threads(n_threads, False, True, T * B, I, N, <floating>1, dZ, N, W, N, <floating>0,
                     dX, I)
    elif not skip:
        project_packed(n_threads, T * B, N, dZ, N, WpkT, 0, 1, I, <floating*>NULL, 1, dX, I)
    else:
        zero_finished_rows(T, B, skipped, dX, I)
        project_valid(n_threads, T, B, skipped, N, dZ, NULL, NULL, WpkT, 0, 1, I, NULL, dX,
                      False, False)
    if dmask != NULL:
        for r in range(<long>T * B):
            for i in range(I):
                dX[r * I + i] *= dmask[(r % B) * I + i]
