/* Entry points, once per precision (SC_T, SC_PREC set by cells.h). One call of a step function
 * by every thread of a team runs a whole time step after the input projection: the recurrent
 * product(s) and the fused pass(es), split into blocks of hidden units that the threads claim
 * (cells.h sc_claims): a block of units brings the columns of U that feed them (every gate)
 * going forward, the rows of U that carry their gradient going back. Phases that need every
 * unit's result from the phase before are separated by a barrier (each phase a round of
 * claims); the caller ends each step with sc_team_barrier. Each block runs the variant
 * compiled for this CPU (SC_BEST). Arguments as in cells_impl.h, plus:
 *   Hp   state entering the step as the recurrent product sees it (B, H)
 *   Upk  recurrent kernel U (H, G*H) packed by sc_pack_panels (forward)
 *   UpkT its transpose packed by sc_pack_panels_t (backward)
 *   rmask recurrent dropout mask (B, H) or NULL; dHp, dRH: (B, H) workspaces
 *   cl, s the scan's claim counters (NULL: each thread a fixed share) and the step */

/* Units per panel of a packed recurrent kernel; blocks of units are multiples of it. */
#define SC_PANEL_UNITS 16

/* How sc_gemm_acc_packed finds the panels of its matrix: packed with Kp values of k per
 * panel, or read in place from rows ld values apart (cells_impl.h). */
#define SC_PACKED(Kp) (long)(Kp) * SC_PANEL_UNITS, SC_PANEL_UNITS
#define SC_UNPACKED(ld) (long)SC_PANEL_UNITS, (ld)

/* zero (or set to the bias) columns [c0, c1) of every row of an (rows, ld) array */
static void SC_ENTRY(sc_fill_columns)(int rows, SC_T *X, int ld, const SC_T *bias, int c0, int c1) {
    for (int r = 0; r < rows; r++) {
        if (bias) memcpy(X + (long)r * ld + c0, bias + c0, (size_t)(c1 - c0) * sizeof(SC_T));
        else memset(X + (long)r * ld + c0, 0, (size_t)(c1 - c0) * sizeof(SC_T));
    }
}

/* Packing is split over threads (by panels) only when there are enough values to pay for
 * waking them: at 2 threads a 1 MB pack then takes half the time (it is serial work at the
 * start of every call otherwise, ~1.5% of a batch-16 LSTM forward). */
#define SC_PACK_PARALLEL(n_threads, rows, cols) ((n_threads) > 1 && (long)(rows) * (cols) >= 65536)

/* Pack M (K, G*H), ld ldm, for sc_gemm_acc_packed: gate by gate, panels of 16 units, each
 * panel holding its units' columns for every k < K contiguously (k-major), zero past H. Mpk
 * has room for G * ceil(H/16) * K * 16 values. Used for U (K = H) and W (K = I), once per call,
 * so that every product streams its matrix in order. interleave: instead, panel by panel, each
 * holding for every k the 16 values of every gate one after the other (K x G x 16): the layout
 * of the fused LSTM step, whose items read the four gates of 16 units together, so that an
 * item streams one contiguous block (the gate-by-gate layout puts the four streams
 * G*ceil(H/16)*K*16 values apart, on the same cache sets: the fused step at H = 1024 was 7%
 * slower than the plain product with it). Where the item multiplies one gate at a time, or U
 * does not stay in L2 (sc_lstm_gate_blocks of this CPU's variant), a panel's gates follow each
 * other instead (G x K x 16): each gate's stream is then contiguous too. sc_pack_panel writes
 * one (gate, panel) with ldd values between consecutive k. */
static void SC_ENTRY(sc_pack_panel)(int K, int H, int g, int p, const SC_T *M, int ldm,
                                    SC_T *dst, int ldd) {
    int j = p * SC_PANEL_UNITS, n = H - j < SC_PANEL_UNITS ? H - j : SC_PANEL_UNITS;
    if (n == SC_PANEL_UNITS)   /* a constant size: inlined moves, not a libc call per
                                * 64 bytes (4% of a batch-16 LSTM forward) */
        for (int k = 0; k < K; k++)
            memcpy(dst + (long)k * ldd, M + (long)k * ldm + g * H + j,
                   SC_PANEL_UNITS * sizeof(SC_T));
    else
        for (int k = 0; k < K; k++) {
            memcpy(dst + (long)k * ldd, M + (long)k * ldm + g * H + j, (size_t)n * sizeof(SC_T));
            memset(dst + (long)k * ldd + n, 0, (size_t)(SC_PANEL_UNITS - n) * sizeof(SC_T));
        }
}

/* Rows of M packed into every panel before the next rows: reading one panel's 64-byte strip
 * down all K rows touches a new page per row once a row is 4 KB or more, a TLB miss each at
 * H = 1024 (3 GB/s: 10 ms, 1% of a large forward; 200 us, 8% of a batch-1 one at H = 256). */
#define SC_PACK_ROWS 32

static void SC_ENTRY(sc_pack_panels)(int n_threads, int K, int H, int G, const SC_T *M, int ldm,
                                     SC_T *Mpk, int interleave) {
    int P = (H + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS;
    int blocked = SC_BEST(sc_lstm_gate_blocks)(H);
    _Pragma("omp parallel num_threads(n_threads) if (SC_PACK_PARALLEL(n_threads, K, G * H))")
    {
        int nt = omp_get_num_threads(), me = omp_get_thread_num();
        int gp0 = (int)((long)G * P * me / nt), gp1 = (int)((long)G * P * (me + 1) / nt);
        for (int k0 = 0; k0 < K; k0 += SC_PACK_ROWS) {
            int kn = K - k0 < SC_PACK_ROWS ? K - k0 : SC_PACK_ROWS;
            for (int gp = gp0; gp < gp1; gp++) {
                int g = gp / P, p = gp % P;
                long start = !interleave ? (long)gp * K * SC_PANEL_UNITS
                           : blocked ? ((long)p * G + g) * K * SC_PANEL_UNITS
                                     : ((long)p * K * G + g) * SC_PANEL_UNITS;
                int ldd = interleave && !blocked ? G * SC_PANEL_UNITS : SC_PANEL_UNITS;
                SC_ENTRY(sc_pack_panel)(kn, H, g, p, M + (long)k0 * ldm, ldm,
                                        Mpk + start + (long)k0 * ldd, ldd);
            }
        }
    }
}

/* Pack the transpose of M (J, K), ld ldm, for products with M^T: panels over M's rows (the J
 * outputs), each holding M[j, k] for its 16 rows j and every k < K contiguously (k-major),
 * zero past J. MpkT has room for ceil(J/16) * K * 16 values. Used for U^T and W^T. */
static void SC_ENTRY(sc_pack_panels_t)(int n_threads, int J, int K, const SC_T *M, int ldm,
                                       SC_T *MpkT) {
    int P = (J + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS;
    _Pragma("omp parallel for num_threads(n_threads) if (SC_PACK_PARALLEL(n_threads, J, K))")
    for (int p = 0; p < P; p++) {
        SC_T *dst = MpkT + (long)p * K * SC_PANEL_UNITS;
        int j0 = p * SC_PANEL_UNITS, n = J - j0 < SC_PANEL_UNITS ? J - j0 : SC_PANEL_UNITS;
        SC_BEST(sc_transpose)(n, K, M + (long)j0 * ldm, ldm, dst, SC_PANEL_UNITS);
        for (int k = 0; k < K && n < SC_PANEL_UNITS; k++)      /* zero past J */
            memset(dst + (long)k * SC_PANEL_UNITS + n, 0,
                   (size_t)(SC_PANEL_UNITS - n) * sizeof(SC_T));
    }
}

/* Below this many rows per thread a product is split over threads by panels of M rather than
 * by rows: split by rows, every thread streams all of M for a few rows (at B = 128, H = 1024 an
 * inference chunk of one step, 2 x 16 MB of W from L3 per step, made one 2-thread LSTM row 4%
 * slower than PyTorch; such chunks are 2048 rows now, ops._chunk_steps). Split by panels, every
 * thread streams all the rows against its panels, the slower of the two from 128 rows a
 * thread on: LSTM inference, 2 threads, chunks of 480-504 rows, paired against a threshold of
 * 512 rows in all: (100, 24, 128, 256) 0.956x the time, (100, 48, 256, 512) 0.959x, the ragged
 * batch (100, 32, 128, 256) with lengths 1..100 (its chunks stop short of 512 rows) 0.946x;
 * W of 4 MiB, (100, 40, 512, 512) and (100, 20, 1024, 256), 0.995x and 1.005x. From 32 rows
 * a thread (64 in all) it gained nothing at (100, 2, 128, 256) and (100, 4, 512, 512) (0.985x)
 * and lost 1% at (100, 1, 1024, 1024). */
#define SC_SPLIT_ROWS_PER_THREAD 128

/* Gate g's panels of M as sc_gemm_acc_packed takes them (M packed, or in place when ldm > 0;
 * P panels per gate, K values of k) */
#define SC_GATE_PANELS(g) Mpk + (g) * (ldm ? (long)H : (long)P * K * SC_PANEL_UNITS),            \
                          ldm ? (long)SC_PANEL_UNITS : (long)K * SC_PANEL_UNITS,                \
                          ldm ? ldm : SC_PANEL_UNITS

/* Z (rows, G*H), ld ldz, = (bias or 0, when init) + X (rows, K) M for M packed by
 * sc_pack_panels (G gates of H units), or, when ldm > 0, M (K, G*H) itself with row stride ldm
 * (H a multiple of 16); rows split over n_threads threads, in blocks of 4 so that the register
 * tiles stay whole (or, for few rows, panels: SC_SPLIT_ROWS_PER_THREAD). The input projection
 * (M = W) and, with G = 1 and M = W^T packed by sc_pack_panels_t, the input gradient. xrows,
 * zrows: NULL, or row r of the product is row xrows[r] of X, zrows[r] of Z (sc_gemm_acc_block). */
static void SC_ENTRY(sc_project_packed)(int n_threads, int rows, int K, const SC_T *X, int ldx,
                                        const SC_T *Mpk, int ldm, int G, int H,
                                        const SC_T *bias, int init, SC_T *Z, int ldz,
                                        const int *xrows, const int *zrows) {
    int P = (H + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS;
    if (n_threads <= 1) {    /* no team to set up (~0.6 us, a tenth of a streaming step); callers
                              * have set flush-to-zero on this thread */
        for (int g = 0; g < G; g++)
            SC_BEST(sc_gemm_acc_packed)(rows, K, X, ldx, SC_GATE_PANELS(g), 0, P, Z, ldz, g * H,
                                        H, bias, init, xrows, zrows);
        return;
    }
    _Pragma("omp parallel num_threads(n_threads)")
    {
        unsigned int mode = sc_ftz_enter();
        int nt = omp_get_num_threads(), k = omp_get_thread_num();
        int r0 = 0, r1 = rows, q0 = 0, q1 = P;
        if (rows >= SC_SPLIT_ROWS_PER_THREAD * nt) {    /* each thread its rows, all of M */
            int per = ((rows + nt - 1) / nt + 3) / 4 * 4;
            r0 = k * per < rows ? k * per : rows;
            r1 = r0 + per < rows ? r0 + per : rows;
        } else {                                /* each thread its panels of M, all rows */
            int per = (P + nt - 1) / nt;
            q0 = k * per < P ? k * per : P;
            q1 = q0 + per < P ? q0 + per : P;
        }
        long x0 = xrows ? 0 : r0, z0 = zrows ? 0 : r0;    /* where rows are not mapped */
        for (int g = 0; g < G && r1 > r0 && q1 > q0; g++)
            SC_BEST(sc_gemm_acc_packed)(r1 - r0, K, X + x0 * ldx, ldx, SC_GATE_PANELS(g), q0, q1,
                                        Z + z0 * ldz, ldz, g * H, H, bias, init,
                                        xrows ? xrows + r0 : NULL, zrows ? zrows + r0 : NULL);
        sc_ftz_exit(mode);
    }
}

/* The calling thread's part of sc_project_packed(init = 1) for a step shared by a team without
 * claims: Z's columns of the units in its fixed share of blocks of `width` units (sc_claim
 * unshared), all gates: the units whose step it will compute (SC_CLAIMED_UNITS_BEGIN with
 * cl NULL), so that no thread waits for another's projection. */
static void SC_ENTRY(sc_project_own_units)(int rows, int K, const SC_T *X, int ldx,
                                           const SC_T *Mpk, int ldm, int G, int H, int width,
                                           const SC_T *bias, SC_T *Z, int ldz) {
    int P = (H + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS;
    sc_claimer me = sc_claims_begin(NULL, 0);
    int lo, hi;
    if ((lo = sc_claim(&me, (H + width - 1) / width, &hi)) < 0)
        return;
    int q0 = lo * width / SC_PANEL_UNITS, q1 = (hi * width + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS;
    if (q1 > P) q1 = P;
    for (int g = 0; g < G; g++)
        SC_BEST(sc_gemm_acc_packed)(rows, K, X, ldx, SC_GATE_PANELS(g), q0, q1, Z, ldz, g * H, H,
                                    bias, 1, NULL, NULL);
}
#undef SC_GATE_PANELS

/* C1 (M1, N), ld ldc1, = A1^T B and C2 (M2, N), ld ldc2, = A2^T B for row-major A1 (K, M1),
 * A2 (K, M2) (ld lda1, lda2; M2 may be 0, A2 and C2 NULL) and B (K, N), ld ldb: the weight
 * gradients (dW = X^T dZ, dU = Hp^T dZ) in one pass over dZ, through the packed product rather
 * than BLAS, which runs this shape (transposed A, K = T*B) at ~83 GFLOP/s against ~110 for the
 * packed kernel on one AVX-512 core (on AVX2 the large ones go to BLAS: scan.pxd
 * blas_product). colsum (N) or NULL: += the column sums of B (the bias gradient),
 * gathered while B is packed, in row order. K goes in chunks of up to SC_TN_CHUNK rows: each
 * thread transposes its rows of [A1 A2] for the chunk and packs its panels of the chunk of B
 * into shared workspaces, then multiplies its rows of C. Taking both weights in one pass packs
 * each chunk of dZ once instead of twice and spares the separate pass of the bias sums
 * (all three read dZ, T*B x 4H values, from memory at large shapes).
 * mask (K / B, B) or NULL: the K rows are steps of B rows, and the rows past a step's last
 * valid one (whose B rows are zero: a finished row of a ragged batch) are left out. Returns -1
 * (and computes nothing) when the workspaces cannot be allocated. */
#define SC_TN_CHUNK 512
/* The row stride of the transposed chunk: SC_TN_CHUNK values and one line more. At a stride of
 * 2 KiB the transposes' column stores (a 32-byte piece to each of hundreds of rows) all fell in
 * two sets of a 48 KiB, 12-way L1. C harness, Zen 5, 1 thread: a transpose of 512 x 256
 * values 0.58 -> 0.08 ns a value; this function at K = 1600, M = 256 + 256, N = 1024 (an LSTM
 * layer's weight gradients at (100, 16, 256, 256)) 8.17 -> 7.97 ms. */
#define SC_TN_LDA (SC_TN_CHUNK + 16)
static int SC_ENTRY(sc_gemm_tn)(int n_threads, int M1, const SC_T *A1, int lda1, SC_T *C1,
                                int ldc1, int M2, const SC_T *A2, int lda2, SC_T *C2, int ldc2,
                                int N, long K, const SC_T *B, int ldb, SC_T *colsum,
                                const unsigned char *mask, int rows_per_step) {
    int P = (N + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS, M = M1 + M2;
    long steps = mask ? K / rows_per_step : 1;
    SC_T *At = sc_malloc64((size_t)M * SC_TN_LDA * sizeof(SC_T));
    SC_T *Bpk = sc_malloc64((size_t)P * SC_PANEL_UNITS * SC_TN_CHUNK * sizeof(SC_T));
    if (!At || !Bpk) {
        free(At);
        free(Bpk);
        return -1;
    }
    _Pragma("omp parallel num_threads(n_threads) if (n_threads > 1)")
    {
        unsigned int mode = sc_ftz_enter();
        int nt = omp_get_num_threads(), me = omp_get_thread_num();
        int per = ((M + nt - 1) / nt + 3) / 4 * 4;          /* rows of [C1; C2], blocks of 4 */
        int r0 = me * per < M ? me * per : M, r1 = r0 + per < M ? r0 + per : M;
        /* this thread's rows of C1: [r0, m1); of C2: [m2, r1) (m1 <= m2 when it has both) */
        int m1 = r1 < M1 ? r1 : M1, m2 = r0 > M1 ? r0 : M1;
        int pp = (P + nt - 1) / nt;                          /* panels of B to pack */
        int q0 = me * pp < P ? me * pp : P, q1 = q0 + pp < P ? q0 + pp : P;
        /* every thread walks the same segments (runs of included rows): step t's rows
         * [t*B, t*B + active), or all K rows in one step without a mask */
        long t = 0, next = 0;                /* the next row to take, inside step t */
        int started = 0;                     /* this thread's rows of C hold sums */
        while (t < steps) {
            int kn = 0;
            while (kn < SC_TN_CHUNK && t < steps) {
                long end = mask ? t * rows_per_step
                                  + sc_active_rows(rows_per_step, mask + t * rows_per_step)
                                : K;
                if (next < (mask ? t * rows_per_step : 0)) next = t * rows_per_step;
                if (next >= end) {
                    t++;
                    continue;
                }
                int n = end - next < SC_TN_CHUNK - kn ? (int)(end - next) : SC_TN_CHUNK - kn;
                /* At (M, kn), ld SC_TN_LDA: the chunk's rows of A1 then A2, this thread's
                 * columns */
                if (m1 > r0)
                    SC_BEST(sc_transpose)(n, m1 - r0, A1 + next * lda1 + r0, lda1,
                                          At + (long)r0 * SC_TN_LDA + kn, SC_TN_LDA);
                if (r1 > m2)
                    SC_BEST(sc_transpose)(n, r1 - m2, A2 + next * lda2 + (m2 - M1), lda2,
                                          At + (long)m2 * SC_TN_LDA + kn, SC_TN_LDA);
                for (int p = q0; p < q1; p++) {
                    SC_T *dst = Bpk + ((long)p * SC_TN_CHUNK + kn) * SC_PANEL_UNITS;
                    SC_ENTRY(sc_pack_panel)(n, N, 0, p, B + next * ldb, ldb, dst,
                                            SC_PANEL_UNITS);
                    if (colsum) {       /* this thread's columns only: no two threads meet */
                        int j0 = p * SC_PANEL_UNITS;
                        int w = N - j0 < SC_PANEL_UNITS ? N - j0 : SC_PANEL_UNITS;
                        SC_T sum[SC_PANEL_UNITS] = {0};  /* a whole panel: a loop of constant
                                                      * length, which the compiler vectorizes */
                        memcpy(sum, colsum + j0, (size_t)w * sizeof(SC_T));
                        for (int k = 0; k < n; k++)
                            for (int j = 0; j < SC_PANEL_UNITS; j++)
                                sum[j] += dst[(long)k * SC_PANEL_UNITS + j];
                        memcpy(colsum + j0, sum, (size_t)w * sizeof(SC_T));
                    }
                }
                kn += n;
                next += n;
            }
            sc_team_barrier(NULL);
            if (kn > 0) {
                if (m1 > r0)
                    SC_BEST(sc_gemm_acc_packed)(m1 - r0, kn, At + (long)r0 * SC_TN_LDA,
                                                SC_TN_LDA, Bpk, SC_PACKED(SC_TN_CHUNK), 0, P,
                                                C1 + (long)r0 * ldc1, ldc1, 0, N, NULL,
                                                !started, NULL, NULL);
                if (r1 > m2)
                    SC_BEST(sc_gemm_acc_packed)(r1 - m2, kn, At + (long)m2 * SC_TN_LDA,
                                                SC_TN_LDA, Bpk, SC_PACKED(SC_TN_CHUNK), 0, P,
                                                C2 + (long)(m2 - M1) * ldc2, ldc2, 0, N, NULL,
                                                !started, NULL, NULL);
                started = 1;
            }
            sc_team_barrier(NULL);
        }
        if (!started) {                      /* no row at all: zero gradients */
            if (m1 > r0) SC_ENTRY(sc_fill_columns)(m1 - r0, C1 + (long)r0 * ldc1, ldc1, NULL, 0, N);
            if (r1 > m2)
                SC_ENTRY(sc_fill_columns)(r1 - m2, C2 + (long)(m2 - M1) * ldc2, ldc2, NULL, 0, N);
        }
        sc_ftz_exit(mode);
    }
    free(At);
    free(Bpk);
    return 0;
}

/* The panels of the block of units [j0, j1) in hand. */
#define SC_OWN_PANELS j0 / SC_PANEL_UNITS, (j1 + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS

/* Z[:, zc + j] += Hp U_g[:, j] for the units [j0, j1) in hand of gate g (packed U); set:
 * Z[:, zc + j] = init[zc + j] + Hp U_g[:, j] instead (init: a bias row, or NULL for zero), the
 * sums starting in registers rather than from a pass that first writes init into Z (that pass,
 * a memcpy per row and gate, was 8% of a 2-thread GRU forward at B = 16, H = 128). */
#define SC_RECURRENT_ACC(rows, H, Hp, Upk, g, Z, ldz, zc)                                   \
    SC_RECURRENT_PRODUCT(rows, H, Hp, Upk, g, Z, ldz, zc, NULL, 0)
#define SC_RECURRENT_SET(rows, H, Hp, Upk, g, Z, ldz, zc, init)                             \
    SC_RECURRENT_PRODUCT(rows, H, Hp, Upk, g, Z, ldz, zc, init, 1)
#define SC_RECURRENT_PRODUCT(rows, H, Hp, Upk, g, Z, ldz, zc, init, set)                    \
    SC_RECURRENT_RANGE(rows, H, 0, H, Hp, Upk, g, Z, ldz, zc, init, set)
/* the same over the state's units [k0, k1) only: Hp[:, k0:k1] U_g[k0:k1, j] */
#define SC_RECURRENT_RANGE(rows, H, k0, k1, Hp, Upk, g, Z, ldz, zc, init, set)               \
    SC_BEST(sc_gemm_acc_packed)((rows), (k1) - (k0), (Hp) + (k0), (H),                   \
        (Upk) + (long)(g) * (((H) + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS) * (H) * SC_PANEL_UNITS \
              + (long)(k0) * SC_PANEL_UNITS,                                               \
        SC_PACKED(H), SC_OWN_PANELS, (Z), (ldz), (zc), (H), (init), (set), NULL, NULL)

/* Rows [active, rows) of Z's columns [zc + j0, zc + j1) = init (NULL: zero): the rows past the
 * last valid one, which a step's product leaves out, still get defined values. */
#define SC_FILL_TAIL(active, rows, Z, ldz, init, zc)                                        \
    SC_ENTRY(sc_fill_columns)((rows) - (active), (Z) + (long)(active) * (ldz), (ldz), (init), \
                              (zc) + j0, (zc) + j1)

/* dHp[:, j] += sum_k dA[:, k0 + k] U[j, k0 + k], k < K, for the units j in hand (packed
 * U^T with Kp = G*H values of k per panel); set: = instead of +=. */
#define SC_RECURRENT_GRAD(rows, H, K, dA, lda, UpkT, Kp, k0, dHp, set)                      \
    SC_BEST(sc_gemm_acc_packed)((rows), (K), (dA), (lda), (UpkT) + (long)(k0) * SC_PANEL_UNITS, \
                                SC_PACKED(Kp), SC_OWN_PANELS, (dHp), (H), 0, (H), NULL, (set), \
                                NULL, NULL)

/* A round of claims (cells.h sc_claims) over blocks of `width` units (a multiple of 16): the
 * body sees each claimed run of blocks as units [j0, j1). cl NULL: each thread its fixed share
 * in one run. The LSTM's forward steps claim 16 units at a time (a fused item); the other
 * steps and the backward's recurrent products SC_BLOCK_UNITS (4 panels: the register tiles stay
 * whole; H = 256 makes 4 blocks a step); the backward's pointwise passes blocks of rows
 * (SC_CLAIMED_ROWS_BEGIN). */
#define SC_BLOCK_UNITS 64
#define SC_CLAIMED_UNITS_BEGIN(cl, round, H, width)                                          \
    {                                                                                       \
        sc_claimer me_ = sc_claims_begin((cl), (round));                                    \
        int nb_ = ((H) + (width) - 1) / (width);                                            \
        for (int b_, e_; (b_ = sc_claim(&me_, nb_, &e_)) >= 0;) {                           \
            int j0 = b_ * (width), j1 = e_ * (width) < (H) ? e_ * (width) : (H);
#define SC_CLAIMED_UNITS_END                                                                \
        }                                                                                   \
    }

/* A round of claims for a pointwise pass, whose items can be any blocks of rows x units: with
 * SC_ROW_ITEMS_MIN rows or more, blocks of SC_ROW_ITEM whole rows, so that each thread reads
 * and writes every block (a row's 4H pre-activations, its H states) from start to end, runs
 * that the hardware prefetchers follow; fewer rows, blocks of SC_BLOCK_UNITS units of every
 * row (a batch of 1 still shares the pass). The body sees rows [r0, r1) and units [j0, j1). */
#define SC_ROW_ITEM 4
#define SC_ROW_ITEMS_MIN 16
#define SC_CLAIMED_ROWS_BEGIN(cl, round, rows, H)                                            \
    {                                                                                       \
        sc_claimer me_ = sc_claims_begin((cl), (round));                                    \
        int by_rows_ = (rows) >= SC_ROW_ITEMS_MIN;                                          \
        int width_ = by_rows_ ? SC_ROW_ITEM : SC_BLOCK_UNITS, n_ = by_rows_ ? (rows) : (H); \
        for (int b_, e_; (b_ = sc_claim(&me_, (n_ + width_ - 1) / width_, &e_)) >= 0;) {  \
            int lo_ = b_ * width_, hi_ = e_ * width_ < n_ ? e_ * width_ : n_;               \
            int r0 = by_rows_ ? lo_ : 0, r1 = by_rows_ ? hi_ : (rows);                      \
            int j0 = by_rows_ ? 0 : lo_, j1 = by_rows_ ? (H) : hi_;
#define SC_CLAIMED_ROWS_END                                                                 \
        }                                                                                   \
    }

/* LSTM: the fused items of cells_impl.h (product and pointwise pass per 16 units), shared by
 * claims (cl: the scan's counters, NULL for a fixed split; s: the step). U packed
 * (sc_pack_panels, interleaved; ldu = 0) or in place (ldu > 0: its row stride). Writes
 * Hp_next = h * rmask (rmask may be NULL) for the next step (NULL: nothing). Training
 * (c_store given) also leaves the activations in Z for backward. The masked rows past the
 * last valid one keep their state: y zero, c_store c, Hp_next h * rmask, written as whole
 * rows, each thread a fixed share (the items wrote them 16 units at a time, pieces of rows
 * H values apart: LSTM (100, 32, 128, 256) inference, one row of 100 steps and 31 of 10,
 * 1 thread: 2.6% of the samples in the items, now 1.8% in memcpy). */
static void SC_ENTRY(sc_lstm_forward_step)(
        int rows, int H, const SC_T *Hp, const SC_T *Upk, int ldu, SC_T *Z, SC_T *c,
        SC_T *h, const unsigned char *valid, SC_T *y, SC_T *c_store, const SC_T *rmask,
        SC_T *Hp_next, sc_claims *cl, int s) {
    int active = sc_active_rows(rows, valid);
    SC_CLAIMED_UNITS_BEGIN(cl, s, H, SC_PANEL_UNITS)
        for (int p = j0 / SC_PANEL_UNITS; p * SC_PANEL_UNITS < j1; p++)
            SC_BEST(sc_lstm_forward_item)(active, p, H, 0, H, Hp, Upk, ldu, Z, c_store != NULL,
                                          c, h, valid, y, c_store, rmask, Hp_next);
    SC_CLAIMED_UNITS_END
    int masked = rows - active;
    if (masked == 0) return;
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    long r0 = active + (long)masked * me / nt, r1 = active + (long)masked * (me + 1) / nt;
    long o = r0 * H, n = (r1 - r0) * H;
    if (n == 0) return;
    if (y) memset(y + o, 0, (size_t)n * sizeof(SC_T));
    if (c_store) memcpy(c_store + o, c + o, (size_t)n * sizeof(SC_T));
    if (Hp_next)
        SC_BEST(sc_masked_state_block)((int)(r1 - r0), 0, H, H, h + o, rmask ? rmask + o : NULL,
                                       Hp_next + o);
}

/* The inference step of a single row on a team of two, without the step's barrier: each
 * thread takes a fixed half of the panels (its units [lo, hi)) and first runs their products
 * over the state's units [lo, hi), which it wrote itself at the step before; then it waits
 * until the other thread has finished the step before (sc_team_wait), adds the products over
 * the rest of the state and updates its units, and says it is done (sc_team_done). A thread waits
 * after the first half of its step, where the barrier made it wait idle for the slowest
 * thread and the handover. A thread cannot run ahead by more than that first part: its update
 * of step s, which writes the state buffer the others read at step s - 1, waits for them to
 * finish s - 1. Measured on a 2-core Sapphire Rapids (2 MiB L2), LSTM inference
 * (100, 1, 128, 256), 2 threads, against the claims and barrier in separate processes,
 * alternated: this 0.975x the time (20 rounds; a control copy 1.001x), (100, 1, 64, 128)
 * 0.981x, (100, 1, 512, 512) 1.01x (noise); with a busy process on the machine 0.984x
 * (control 1.017x). For scale: the loop with a fixed split and no barrier at all (wrong
 * results) took 0.92x, with a fixed split and the barrier 0.98x. perf: the partial products
 * and the items take ~4% more samples than the items did alone; the waits, ~8% of each
 * thread's samples at the barrier, are 1.5-4%. At 2 rows the partial products (row by row,
 * where the items' 2-row tile reads U once for both) made it 1.12x slower: hence one row
 * (sc_steps_overlap), also because the fixed split gives up the claims' rebalancing when a
 * core is slowed (cells.h sc_claims), which pays at larger batches. Arguments as
 * sc_lstm_forward_step (no training stores); cl: the scan's counters; s: the step, counted
 * from 0 in the call. The masked rows past the last valid one keep their state, each
 * thread's units. */
static void SC_ENTRY(sc_lstm_forward_step_overlapped)(
        int rows, int H, const SC_T *Hp, const SC_T *Upk, int ldu, SC_T *Z, SC_T *c,
        SC_T *h, const unsigned char *valid, SC_T *y, const SC_T *rmask, SC_T *Hp_next,
        sc_claims *cl, int s) {
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    int panels = (H + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS;
    int p0 = (int)((long)panels * me / nt), p1 = (int)((long)panels * (me + 1) / nt);
    int lo = p0 * SC_PANEL_UNITS, hi = p1 * SC_PANEL_UNITS < H ? p1 * SC_PANEL_UNITS : H;
    int active = sc_active_rows(rows, valid);
    for (int p = p0; p < p1; p++)
        SC_BEST(sc_lstm_partial_item)(active, p, H, lo, hi, Hp, Upk, ldu, Z);
    sc_team_wait(cl, s);
    /* the rest of the state, the other thread's units, with the update */
    int k0 = me == 0 ? hi : 0, k1 = me == 0 ? H : lo;
    for (int p = p0; p < p1; p++)
        SC_BEST(sc_lstm_forward_item)(active, p, H, k0, k1, Hp, Upk, ldu, Z, 0, c, h, valid, y,
                                      NULL, rmask, Hp_next);
    SC_BEST(sc_masked_rows_units)(rows, active, lo, hi, H, h, y, rmask, Hp_next);
    sc_team_done(cl, s);
}

/* The recurrent part of the state gradient for rows [r0, r1) and units [j0, j1):
 * dh += (dA U^T) * rmask, dA (rows, K) with ld lda being the pre-activation gradients of the
 * step (U^T packed with Kp = K values of k per panel). dHp: workspace (rows, H). */
static void SC_ENTRY(sc_recurrent_grad_part)(int r0, int r1, int j0, int j1, int H, int K,
                                             const SC_T *dA, int lda, const SC_T *UpkT,
                                             const SC_T *rmask, const unsigned char *valid,
                                             SC_T *dHp, SC_T *dh) {
    SC_RECURRENT_GRAD(r1 - r0, H, K, dA + (long)r0 * lda, lda, UpkT, K, 0, dHp + (long)r0 * H,
                      1);
    SC_BEST(sc_add_recurrent_grad_block)(r1 - r0, j0, j1, H, dHp + (long)r0 * H,
                                         rmask ? rmask + (long)r0 * H : NULL, valid + r0,
                                         dh + (long)r0 * H);
}

/* Items of a backward step's recurrent gradient: blocks of up to SC_GRAD_ROWS rows (the fewest
 * such blocks, as even as can be: 16 rows 8 + 8, 64 rows six blocks of 11 or 9) x
 * SC_BLOCK_UNITS units, numbered unit block by unit block so that a thread's home range keeps
 * to its own columns of U^T. A block's register tiles (SC_TILE_ROWS_FOR) each stream its
 * columns of U^T from L2: blocks of 8 rows made two 4-row tiles, blocks of 11 a 6-row and a
 * 5-row one, which share each load of U^T among more rows (training step, paired: GRU
 * (100, 64, 512, 512) 0.983x the time at 1 thread, 0.975x at 2; the LSTM's 0.983x at 2, the
 * ragged LSTM training (100, 32, 128, 256) 0.980x at 2; batch 16 unchanged, 8 + 8 either way;
 * fixed blocks of 12, 64 rows 5 x 12 + 4, measured 0.970 / 0.971x for the GRU). Where such
 * an item's columns of U^T (K x SC_BLOCK_UNITS values) pass SC_GRAD_TALL_BYTES, every block of
 * rows would stream them again from L3: items are then one panel of units for all rows
 * (6-row register tiles over its K x 16 values of U^T, 256 KiB at H = 1024, held in L2).
 * Measured at (12, 128, 1024, 1024), 2 threads, paired, three runs:
 * LSTM training step 0-2.3% faster (perf: the products' share of the samples 29.0% ->
 * 27.4%; the 8-row items ran 4-row tiles streaming U^T from L3), GRU 1.5%; at
 * (100, 64, 512, 512), where the columns are 512 KiB, 0.994, no gain: hence the threshold. */
#define SC_GRAD_ROWS 12
#define SC_GRAD_TALL_BYTES (512 * 1024)
/* A tall case's one-panel items each read every row of dA (rows x K) again, from L3 once dA
 * passes the L2 (2 MiB at B = 128, K = 4096): with SC_GRAD_SPLIT_ROWS or more rows per thread,
 * the items are instead one block of rows per thread over every unit, so that each thread
 * reads its rows of dA once (they stay in its L2) and streams U^T once. Traffic per step:
 * panel items H / 16 x rows x K values, row blocks threads x K x H, the less from 16 rows a
 * thread. Training step, 2 threads, paired: LSTM (50, 128, 1024, 1024) 0.935x the time, GRU
 * 0.933x; LSTM (100, 32, 1024, 1024) 0.983x. */
#define SC_GRAD_SPLIT_ROWS 16

/* dh += (dA U^T) * rmask for rows below `active` (sc_recurrent_grad_part), items claimed at
 * round s; a claim of every item is one call over every row and unit. */
static void SC_ENTRY(sc_recurrent_grad)(sc_claims *cl, int s, int active, int H, int K,
                                        const SC_T *dA, int lda, const SC_T *UpkT,
                                        const SC_T *rmask, const unsigned char *valid,
                                        SC_T *dHp, SC_T *dh) {
    int tall = active > 0 && (long)K * SC_BLOCK_UNITS * sizeof(SC_T) > SC_GRAD_TALL_BYTES;
    int nt = omp_get_num_threads();
    int by_rows = tall && nt > 1 && active >= SC_GRAD_SPLIT_ROWS * nt;
    int rows_per = by_rows ? (active + nt - 1) / nt : tall ? active
                 : SC_TILE_ROWS_UPTO(active > 0 ? active : 1, SC_GRAD_ROWS);
    int width = by_rows ? H : tall ? SC_PANEL_UNITS : SC_BLOCK_UNITS;
    int row_blocks = (active + rows_per - 1) / rows_per;
    int n = row_blocks * ((H + width - 1) / width);
    sc_claimer me = sc_claims_begin(cl, s);
    for (int i, end; (i = sc_claim(&me, n, &end)) >= 0;) {
        if (i == 0 && end == n) {
            SC_ENTRY(sc_recurrent_grad_part)(0, active, 0, H, H, K, dA, lda, UpkT, rmask,
                                             valid, dHp, dh);
            continue;
        }
        for (; i < end; i++) {
            int r0 = i % row_blocks * rows_per, j0 = i / row_blocks * width;
            int r1 = r0 + rows_per < active ? r0 + rows_per : active;
            int j1 = j0 + width < H ? j0 + width : H;
            SC_ENTRY(sc_recurrent_grad_part)(r0, r1, j0, j1, H, K, dA, lda, UpkT, rmask, valid,
                                             dHp, dh);
        }
    }
}

/* Two rounds of claims (2s, 2s + 1; cl NULL: a fixed split): the pointwise gradient by panels
 * of 16 units, then, once every unit's dZ is there, dh's recurrent part by blocks. */
static void SC_ENTRY(sc_lstm_backward_step)(
        int rows, int H, const SC_T *A, const SC_T *C, const SC_T *Cp,
        const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dc, SC_T *dZ,
        const SC_T *UpkT, const SC_T *rmask, SC_T *dHp, sc_claims *cl, int s) {
    int active = sc_active_rows(rows, valid);
    SC_CLAIMED_ROWS_BEGIN(cl, 2 * s, rows, H)
        SC_BEST(sc_lstm_backward_block)(r1 - r0, j0, j1, H, A + (long)r0 * 4 * H,
                                        C + (long)r0 * H, Cp + (long)r0 * H, valid + r0,
                                        dy + (long)r0 * H, dh + (long)r0 * H,
                                        dc + (long)r0 * H, dZ + (long)r0 * 4 * H);
    SC_CLAIMED_ROWS_END
    sc_team_barrier(cl);
    /* Zt = Xt W + Hp U + b  =>  dHp = dZt U^T */
    SC_ENTRY(sc_recurrent_grad)(cl, 2 * s + 1, active, H, 4 * H, dZ, 4 * H, UpkT, rmask, valid,
                                dHp, dh);
}

/* The next step's Hp = h * rmask for units [j0, j1), by the thread that computed them (NULL:
 * nothing). */
#define SC_NEXT_STATE(rows, H, h, rmask, Hp_next)                                            \
    if (Hp_next) SC_BEST(sc_masked_state_block)((rows), j0, j1, (H), (h), (rmask), (Hp_next))

/* GRU, reset_after=True. AH: (B, 3H) workspace for Hp U + bh (bh may be NULL). rmask,
 * Hp_next, cl, s: as sc_lstm_forward_step; H_next: where a copy of the new h goes (training
 * keeps the state entering each step with and without the recurrent mask), or NULL. */
static void SC_ENTRY(sc_gru_forward_step)(
        int rows, int H, const SC_T *Hp, const SC_T *Upk, const SC_T *bh,
        SC_T *AX, SC_T *AH, SC_T *h, const unsigned char *valid, SC_T *y, SC_T *An_store,
        const SC_T *rmask, SC_T *Hp_next, SC_T *H_next, sc_claims *cl, int s) {
    int active = sc_active_rows(rows, valid);
    SC_CLAIMED_UNITS_BEGIN(cl, s, H, SC_BLOCK_UNITS)
        /* the fused panels first (where this CPU's variant has them), the rest below */
        int jf = SC_BEST(sc_gru_forward_fused)(rows, active, j0, j1, H, Hp, Upk, bh, AX, h,
                                               valid, y, An_store, rmask, Hp_next, H_next);
        if (jf < j1) {
            int j0 = jf;                     /* the units left, for the macros' j0 */
            for (int g = 0; g < 3; g++) {
                SC_FILL_TAIL(active, rows, AH, 3 * H, bh, g * H);
                SC_RECURRENT_SET(active, H, Hp, Upk, g, AH, 3 * H, g * H, bh);
            }
            SC_BEST(sc_gru_forward_block)(rows, j0, j1, H, AX, AH, h, valid, y, An_store);
            SC_NEXT_STATE(rows, H, h, rmask, Hp_next);
            SC_NEXT_STATE(rows, H, h, NULL, H_next);
        }
    SC_CLAIMED_UNITS_END
}

/* The GRU's (reset_after) inference step of a single row on a team of two without the
 * step's barrier, as sc_lstm_forward_step_overlapped: each thread takes a fixed half of the
 * panels (its units [j0, j1)), runs their products over the state's units it wrote itself at
 * the step before (into AH, from bh), waits until the other thread has finished the step
 * before, adds the products over the rest of the state and runs the pass on its units. Where
 * this CPU's variant has the GRU's register tiles (sc_gru_split_fused), both parts run there
 * and the pass on the sums in registers; elsewhere through AH and sc_gru_forward_block.
 * Against the claims and the barrier (Zen 4, 2 threads, paired call by call in one process,
 * medians of 200 pairs): GRU inference (100, 1, 128, 256) 0.98-1.0x the time (three runs),
 * (1000, 1, 8, 256) 0.967x, (100, 1, 64, 128) 0.936x, (100, 1, 128, 512) 0.98x. perf: the
 * wait still takes ~10% of the samples (the barrier and claims took ~18%): the handover of
 * the other thread's state, and whichever core is slower at the moment. Arguments as
 * sc_gru_forward_step (no training stores); cl, s as the LSTM's. */
static void SC_ENTRY(sc_gru_forward_step_overlapped)(
        int rows, int H, const SC_T *Hp, const SC_T *Upk, const SC_T *bh, SC_T *AX,
        SC_T *AH, SC_T *h, const unsigned char *valid, SC_T *y, const SC_T *rmask,
        SC_T *Hp_next, sc_claims *cl, int s) {
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    int panels = (H + SC_PANEL_UNITS - 1) / SC_PANEL_UNITS;
    int p0 = (int)((long)panels * me / nt), p1 = (int)((long)panels * (me + 1) / nt);
    int j0 = p0 * SC_PANEL_UNITS, j1 = p1 * SC_PANEL_UNITS < H ? p1 * SC_PANEL_UNITS : H;
    int active = sc_active_rows(rows, valid);
    if (j0 < j1 && !SC_BEST(sc_gru_split_fused)(0, rows, active, j0, j1, H, j0, j1, Hp, Upk, bh,
                                                AH, AX, h, valid, y, rmask, Hp_next))
        for (int g = 0; g < 3; g++) {
            SC_FILL_TAIL(active, rows, AH, 3 * H, bh, g * H);
            SC_RECURRENT_RANGE(active, H, j0, j1, Hp, Upk, g, AH, 3 * H, g * H, bh, 1);
        }
    sc_team_wait(cl, s);
    /* the rest of the state, the other thread's units, with the pass */
    int k0 = me == 0 ? j1 : 0, k1 = me == 0 ? H : j0;
    if (j0 < j1 && !SC_BEST(sc_gru_split_fused)(1, rows, active, j0, j1, H, k0, k1, Hp, Upk, bh,
                                                AH, AX, h, valid, y, rmask, Hp_next)) {
        for (int g = 0; g < 3; g++)
            SC_RECURRENT_RANGE(active, H, k0, k1, Hp, Upk, g, AH, 3 * H, g * H, NULL, 0);
        SC_BEST(sc_gru_forward_block)(rows, j0, j1, H, AX, AH, h, valid, y, NULL);
        SC_NEXT_STATE(rows, H, h, rmask, Hp_next);
    }
    sc_team_done(cl, s);
}

/* Rounds 2s (pointwise) and 2s + 1 (dh's recurrent part), as sc_lstm_backward_step. dAH
 * (B, 3H): the step's gradients of Hp U + bh, read by the recurrent part within the step (a
 * workspace the steps share); dAHn (B, H): their n block, kept (sc_gru_backward_block). */
static void SC_ENTRY(sc_gru_backward_step)(
        int rows, int H, const SC_T *A, const SC_T *An, const SC_T *Hin,
        const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dAX, SC_T *dAH,
        SC_T *dAHn, const SC_T *UpkT, const SC_T *rmask, SC_T *dHp, sc_claims *cl, int s) {
    int active = sc_active_rows(rows, valid);
    SC_CLAIMED_ROWS_BEGIN(cl, 2 * s, rows, H)
        SC_BEST(sc_gru_backward_block)(r1 - r0, j0, j1, H, A + (long)r0 * 3 * H,
                                       An + (long)r0 * H, Hin + (long)r0 * H, valid + r0,
                                       dy + (long)r0 * H, dh + (long)r0 * H,
                                       dAX + (long)r0 * 3 * H, dAH + (long)r0 * 3 * H,
                                       dAHn + (long)r0 * H);
    SC_CLAIMED_ROWS_END
    sc_team_barrier(cl);
    /* AH = Hp U + bh  =>  dHp = dAH U^T */
    SC_ENTRY(sc_recurrent_grad)(cl, 2 * s + 1, active, H, 3 * H, dAH, 3 * H, UpkT, rmask, valid,
                                dHp, dh);
}

/* GRU, reset_after=False. AZR (B, 2H), AN (B, H): workspaces; RH (B, H): r * Hp, kept by
 * training for the weight gradient. Rounds 2s and 2s + 1. Where the variant fuses them
 * (cells_impl.h sc_gru1_fused: float32 on AVX-512), each round's products and pass run in
 * register tiles, the workspaces only for what is left (units past the tiles' whole groups of
 * panels, the masked rows past the last valid one). Paired call by call against the unfused
 * rounds (Sapphire Rapids, inference): (100, 16, 128, 256) 0.96x the time on 1 thread, 0.89x
 * on 2; batch 1 0.95x / 0.92x; (100, 64, 256, 512) 0.96x / 0.92x; (100, 16, 64, 100) 0.85x
 * on 2; training (100, 16, 128, 256) 0.99x / 0.96x. */
static void SC_ENTRY(sc_gru1_forward_step)(
        int rows, int H, const SC_T *Hp, const SC_T *Upk, SC_T *AX, SC_T *AZR,
        SC_T *RH, SC_T *AN, SC_T *h, const unsigned char *valid, SC_T *y, const SC_T *rmask,
        SC_T *Hp_next, SC_T *H_next, sc_claims *cl, int s) {
    int active = sc_active_rows(rows, valid);
    long o = (long)active * H;               /* where the masked rows past the last valid start */
    SC_CLAIMED_UNITS_BEGIN(cl, 2 * s, H, SC_BLOCK_UNITS)
        /* the fused panels first (where this CPU's variant has them), the rest below; the
         * masked rows' sums are zero, their z, r and RH what the pass makes of them */
        int jf = SC_BEST(sc_gru1_fused)(0, active, j0, j1, H, Hp, Upk, AX, RH, h, valid, y);
        for (int g = 0; g < 2; g++) SC_FILL_TAIL(active, rows, AZR, 2 * H, NULL, g * H);
        SC_BEST(sc_gru1_gates_block)(rows - active, j0, jf, H, AX + 3 * o, AZR + 2 * o, Hp + o,
                                     RH + o);
        if (jf < j1) {
            int j0 = jf;                     /* the units left, for the macros' j0 */
            for (int g = 0; g < 2; g++)
                SC_RECURRENT_SET(active, H, Hp, Upk, g, AZR, 2 * H, g * H, NULL);
            SC_BEST(sc_gru1_gates_block)(rows, j0, j1, H, AX, AZR, Hp, RH);
        }
    SC_CLAIMED_UNITS_END
    sc_team_barrier(cl);
    /* AN = RH U_n needs every unit of RH */
    SC_CLAIMED_UNITS_BEGIN(cl, 2 * s + 1, H, SC_BLOCK_UNITS)
        int jf = SC_BEST(sc_gru1_fused)(1, active, j0, j1, H, Hp, Upk, AX, RH, h, valid, y);
        SC_BEST(sc_gru1_forward_block)(rows - active, j0, jf, H, AX + 3 * o, AN + o, h + o,
                                       valid + active, y ? y + o : NULL);
        if (jf < j1) {
            int j0 = jf;
            SC_FILL_TAIL(active, rows, AN, H, NULL, 0);
            SC_RECURRENT_SET(active, H, RH, Upk, 2, AN, H, 0, NULL);
            SC_BEST(sc_gru1_forward_block)(rows, j0, j1, H, AX, AN, h, valid, y);
        }
        SC_NEXT_STATE(rows, H, h, rmask, Hp_next);
        SC_NEXT_STATE(rows, H, h, NULL, H_next);
    SC_CLAIMED_UNITS_END
}

/* Rounds 3s, 3s + 1, 3s + 2. */
static void SC_ENTRY(sc_gru1_backward_step)(
        int rows, int H, const SC_T *A, const SC_T *Hin, const SC_T *Hp,
        const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dAX, const SC_T *UpkT,
        const SC_T *rmask, SC_T *dRH, SC_T *dHp, sc_claims *cl, int s) {
    int active = sc_active_rows(rows, valid);
    SC_CLAIMED_ROWS_BEGIN(cl, 3 * s, rows, H)
        SC_BEST(sc_gru1_backward_a_block)(r1 - r0, j0, j1, H, A + (long)r0 * 3 * H,
                                          Hin + (long)r0 * H, valid + r0, dy + (long)r0 * H,
                                          dh + (long)r0 * H, dAX + (long)r0 * 3 * H);
    SC_CLAIMED_ROWS_END
    sc_team_barrier(cl);
    /* AN = RH U_n  =>  dRH = dAN U_n^T */
    SC_CLAIMED_UNITS_BEGIN(cl, 3 * s + 1, H, SC_BLOCK_UNITS)
        SC_FILL_TAIL(active, rows, dRH, H, NULL, 0);
        SC_RECURRENT_GRAD(active, H, H, dAX + 2 * H, 3 * H, UpkT, 3 * H, 2 * H, dRH, 1);
        SC_BEST(sc_gru1_backward_b_block)(rows, j0, j1, H, A, Hp, dRH, dAX, dHp);
    SC_CLAIMED_UNITS_END
    sc_team_barrier(cl);
    /* AZR = Hp U_zr  =>  dHp += dAZR U_zr^T */
    SC_CLAIMED_UNITS_BEGIN(cl, 3 * s + 2, H, SC_BLOCK_UNITS)
        SC_RECURRENT_GRAD(active, H, 2 * H, dAX, 3 * H, UpkT, 3 * H, 0, dHp, 0);
        SC_BEST(sc_add_recurrent_grad_block)(rows, j0, j1, H, dHp, rmask, valid, dh);
    SC_CLAIMED_UNITS_END
}

/* simple RNN: A holds Xt W + b on entry. Where the variant fuses them (float32 on AVX-512),
 * the product and the activation of groups of 4 panels run in register tiles (cells_impl.h
 * sc_rnn_fused; A then holds the activations, as the unfused pass leaves them). Paired call
 * by call against the product into A and the pass over it (Sapphire Rapids): inference
 * (100, 16, 128, 256) 0.94x the time on 1 and 2 threads, batch 1 0.93x, (100, 64, 256, 512)
 * 0.95x on 2; training (100, 16, 128, 256) 0.97x on 1 and 2. */
static void SC_ENTRY(sc_rnn_forward_step)(
        int rows, int H, const SC_T *Hp, const SC_T *Upk, SC_T *A, SC_T *h,
        const unsigned char *valid, SC_T *y, int relu, const SC_T *rmask, SC_T *Hp_next,
        sc_claims *cl, int s) {
    int active = sc_active_rows(rows, valid);
    long o = (long)active * H;               /* where the masked rows past the last valid start */
    SC_CLAIMED_UNITS_BEGIN(cl, s, H, SC_BLOCK_UNITS)
        /* the fused panels first (cells_impl.h sc_rnn_fused), the rest below */
        int jf = SC_BEST(sc_rnn_fused)(relu, active, j0, j1, H, Hp, Upk, A, h, valid, y);
        SC_BEST(sc_rnn_forward_block)(rows - active, j0, jf, H, A + o, h + o, valid + active,
                                      y ? y + o : NULL, relu);
        if (jf < j1) {
            int j0 = jf;                     /* the units left, for the macros' j0 */
            SC_RECURRENT_ACC(active, H, Hp, Upk, 0, A, H, 0);
            SC_BEST(sc_rnn_forward_block)(rows, j0, j1, H, A, h, valid, y, relu);
        }
        SC_NEXT_STATE(rows, H, h, rmask, Hp_next);
    SC_CLAIMED_UNITS_END
}

static void SC_ENTRY(sc_rnn_backward_step)(
        int rows, int H, const SC_T *Hact, const unsigned char *valid,
        const SC_T *dy, SC_T *dh, SC_T *dA, int relu, const SC_T *UpkT, const SC_T *rmask,
        SC_T *dHp, sc_claims *cl, int s) {
    int active = sc_active_rows(rows, valid);
    SC_CLAIMED_ROWS_BEGIN(cl, 2 * s, rows, H)
        SC_BEST(sc_rnn_backward_block)(r1 - r0, j0, j1, H, Hact + (long)r0 * H, valid + r0,
                                       dy + (long)r0 * H, dh + (long)r0 * H,
                                       dA + (long)r0 * H, relu);
    SC_CLAIMED_ROWS_END
    sc_team_barrier(cl);
    /* At = Xt W + Hp U + b  =>  dHp = dAt U^T */
    SC_ENTRY(sc_recurrent_grad)(cl, 2 * s + 1, active, H, H, dA, H, UpkT, rmask, valid, dHp,
                                dh);
}

/* Hp = h * rmask (or a copy of h): the state the first step's product sees, by the calling
 * thread outside any team (inside a step the threads write it block by block: SC_NEXT_STATE,
 * sc_lstm_row_outputs). */
static void SC_ENTRY(sc_masked_state)(int rows, int H, const SC_T *h, const SC_T *rmask,
                                      SC_T *Hp) {
    SC_BEST(sc_masked_state_block)(rows, 0, H, H, h, rmask, Hp);
}
