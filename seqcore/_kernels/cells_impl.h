/* The fused pointwise passes of one time step, written once and included by cells_isa.h for each
 * precision and instruction set (SC_T and SC_NAME defined by cells_isa.h). No include guard.
 *
 * Every *_block function works on rows [0, rows) and hidden units [j0, j1) of one step, so
 * threads can split a step by units. Gate blocks follow the Keras layout: a row of
 * pre-activations holds G blocks of H units. `valid[b]` is the step's mask for row b: a masked
 * row keeps its state, outputs zero, and gets zero pre-activation gradients. Optional outputs
 * may be NULL; they are filled after the arithmetic loop, which keeps that loop free of
 * branches so that it vectorizes. Activations run first over whole unit ranges (SIGMOID, TANH:
 * the SIMD array functions of cells.h), the state arithmetic after them in plain loops.
 * Notation as in seqcore/reference (thinc style).
 */
#define SIGMOID(x, out) SC_NAME(sc_sigmoid_array)((x) + j0, (out) + j0, j1 - j0)
#define TANH(x, out) SC_NAME(sc_tanh_array)((x) + j0, (out) + j0, j1 - j0)

/* ===================================== LSTM ===================================== */
/* (the forward step is fused with its recurrent product: sc_lstm_forward_item, at the end) */

/* A: activations i, f, g, o of the step (ld 4H). C: cell state after the step, Cp: before it
 * (ld H). dy: gradient of the step's output (ld H). dh, dc: gradients w.r.t. the state after
 * the step, on return w.r.t. the state before it (dh: only its direct part, which is zero for
 * the LSTM; the recurrent part dZ U^T is added by sc_add_recurrent_grad). dZ: pre-activation
 * gradients (ld 4H). */
static void SC_NAME(sc_lstm_backward_block)(
        int rows, int j0, int j1, int H, const SC_T *A, const SC_T *C, const SC_T *Cp,
        const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dc, SC_T *dZ) {
    for (int b = 0; b < rows; b++) {
        const SC_T *SC_R Ib = A + (long)b * 4 * H, *SC_R Fb = Ib + H, *SC_R Gb = Ib + 2 * H,
                   *SC_R Ob = Ib + 3 * H;
        const SC_T *SC_R Cb = C + (long)b * H, *SC_R Cpb = Cp + (long)b * H;
        const SC_T *SC_R dyb = dy + (long)b * H;
        SC_T *SC_R dhb = dh + (long)b * H, *SC_R dcb = dc + (long)b * H;
        SC_T *SC_R dI = dZ + (long)b * 4 * H, *SC_R dF = dI + H, *SC_R dG = dI + 2 * H,
             *SC_R dO = dI + 3 * H;
        if (!valid[b]) {
            SC_ZERO_UNITS(dI, j0, j1); SC_ZERO_UNITS(dF, j0, j1);
            SC_ZERO_UNITS(dG, j0, j1); SC_ZERO_UNITS(dO, j0, j1);
            continue;
        }
        TANH(Cb, dI);                  /* dI holds tanh(Ct) until the loop overwrites it */
        SC_IVDEP for (int j = j0; j < j1; j++) {
            SC_T It = Ib[j], Ft = Fb[j], Gt = Gb[j], Ot = Ob[j];
            SC_T dHt = dhb[j] + dyb[j];
            SC_T tanhCt = dI[j];
            /* Ht = Ot * tanh(Ct) */
            SC_T dOt = dHt * tanhCt;
            SC_T dCt = dcb[j] + dHt * Ot * (1 - tanhCt * tanhCt);
            /* Ct = Ft * Cp + It * Gt, through the activations */
            dI[j] = dCt * Gt * It * (1 - It);
            dF[j] = dCt * Cpb[j] * Ft * (1 - Ft);
            dG[j] = dCt * It * (1 - Gt * Gt);
            dO[j] = dOt * Ot * (1 - Ot);
            dcb[j] = dCt * Ft;
            dhb[j] = 0;
        }
    }
}

/* ============================ GRU, reset_after=True ============================ */

/* AX: Xt W + bx (ld 3H), replaced by the activations z, r, n. AH: Hp U + bh (ld 3H).
 * h: state (ld H), updated for valid rows. An_store: training keeps AH's n block here (ld H). */
static void SC_NAME(sc_gru_forward_block)(
        int rows, int j0, int j1, int H, SC_T *AX, const SC_T *AH, SC_T *h,
        const unsigned char *valid, SC_T *y, SC_T *An_store) {
    for (int b = 0; b < rows; b++) {
        SC_T *SC_R xz = AX + (long)b * 3 * H, *SC_R xr = xz + H, *SC_R xn = xz + 2 * H;
        const SC_T *SC_R hz = AH + (long)b * 3 * H, *SC_R hr = hz + H, *SC_R hn = hz + 2 * H;
        SC_T *SC_R hb = h + (long)b * H;
        SC_T *yb = y ? y + (long)b * H : NULL;
        SC_COPY_UNITS(An_store ? An_store + (long)b * H : NULL, hn, j0, j1);
        if (!valid[b]) {
            SC_ZERO_UNITS(yb, j0, j1);
            continue;
        }
        for (int j = j0; j < j1; j++) {
            xz[j] += hz[j];
            xr[j] += hr[j];
        }
        SIGMOID(xz, xz); SIGMOID(xr, xr);                                     /* Zt, Rt */
        for (int j = j0; j < j1; j++) xn[j] += xr[j] * hn[j];
        TANH(xn, xn);                                                          /* Nt */
        for (int j = j0; j < j1; j++) hb[j] = (1 - xz[j]) * xn[j] + xz[j] * hb[j];
        SC_COPY_UNITS(yb, hb, j0, j1);
    }
}

/* A: activations z, r, n (ld 3H); An: recurrent n pre-activation (ld H); Hin: state before
 * the step (ld H). Writes dAX (input pre-activation gradients) and dAH (gradients of Hp U + bh),
 * both ld 3H, and dAH's n block again in dAHn (ld H: what the weight gradient needs of dAH
 * beyond dAX's z and r blocks, which dAH repeats); dh becomes its direct part dHt * z for
 * valid rows. */
static void SC_NAME(sc_gru_backward_block)(
        int rows, int j0, int j1, int H, const SC_T *A, const SC_T *An, const SC_T *Hin,
        const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dAX, SC_T *dAH,
        SC_T *dAHn) {
    for (int b = 0; b < rows; b++) {
        const SC_T *SC_R Zb = A + (long)b * 3 * H, *SC_R Rb = Zb + H, *SC_R Nb = Zb + 2 * H;
        const SC_T *SC_R Anb = An + (long)b * H, *SC_R hb = Hin + (long)b * H;
        const SC_T *SC_R dyb = dy + (long)b * H;
        SC_T *SC_R dhb = dh + (long)b * H;
        SC_T *SC_R dxz = dAX + (long)b * 3 * H, *SC_R dxr = dxz + H, *SC_R dxn = dxz + 2 * H;
        SC_T *SC_R dhz = dAH + (long)b * 3 * H, *SC_R dhr = dhz + H, *SC_R dhn = dhz + 2 * H;
        SC_T *SC_R dnb = dAHn + (long)b * H;
        if (!valid[b]) {
            SC_ZERO_UNITS(dxz, j0, j1); SC_ZERO_UNITS(dxr, j0, j1);
            SC_ZERO_UNITS(dxn, j0, j1); SC_ZERO_UNITS(dhz, j0, j1);
            SC_ZERO_UNITS(dhr, j0, j1); SC_ZERO_UNITS(dhn, j0, j1);
            SC_ZERO_UNITS(dnb, j0, j1);
            continue;
        }
        SC_IVDEP for (int j = j0; j < j1; j++) {
            SC_T Zt = Zb[j], Rt = Rb[j], Nt = Nb[j];
            SC_T dHt = dhb[j] + dyb[j];
            /* Ht = (1 - Zt) * Nt + Zt * h */
            SC_T dAz = dHt * (hb[j] - Nt) * Zt * (1 - Zt);
            SC_T dAn = dHt * (1 - Zt) * (1 - Nt * Nt);
            /* Nt = tanh(Ax_n + Rt * An) */
            SC_T dAr = dAn * Anb[j] * Rt * (1 - Rt);
            dxz[j] = dAz; dhz[j] = dAz;
            dxr[j] = dAr; dhr[j] = dAr;
            dxn[j] = dAn;
            dhn[j] = dAn * Rt;
            dnb[j] = dAn * Rt;
            dhb[j] = dHt * Zt;
        }
    }
}

/* ============================ GRU, reset_after=False ============================ */

/* Phase 1 of a step. AX: Xt W + b (ld 3H), its z, r blocks replaced by the activations.
 * AZR: Hp U_zr (ld 2H). Hp: state as the recurrent product sees it (ld H). Writes
 * RH = Rt * Hp (ld H), the input of the n block's recurrent product. */
static void SC_NAME(sc_gru1_gates_block)(
        int rows, int j0, int j1, int H, SC_T *AX, const SC_T *AZR, const SC_T *Hp, SC_T *RH) {
    for (int b = 0; b < rows; b++) {
        SC_T *SC_R xz = AX + (long)b * 3 * H, *SC_R xr = xz + H;
        const SC_T *SC_R hz = AZR + (long)b * 2 * H, *SC_R hr = hz + H;
        const SC_T *SC_R hpb = Hp + (long)b * H;
        SC_T *SC_R rhb = RH + (long)b * H;
        for (int j = j0; j < j1; j++) {
            xz[j] += hz[j];
            xr[j] += hr[j];
        }
        SIGMOID(xz, xz); SIGMOID(xr, xr);                                     /* Zt, Rt */
        for (int j = j0; j < j1; j++) rhb[j] = xr[j] * hpb[j];
    }
}

/* Phase 2. AN: RH U_n (ld H). Writes n into AX's n block and updates h for valid rows. */
static void SC_NAME(sc_gru1_forward_block)(
        int rows, int j0, int j1, int H, SC_T *AX, const SC_T *AN, SC_T *h,
        const unsigned char *valid, SC_T *y) {
    for (int b = 0; b < rows; b++) {
        SC_T *SC_R xz = AX + (long)b * 3 * H, *SC_R xn = xz + 2 * H;
        const SC_T *SC_R anb = AN + (long)b * H;
        SC_T *SC_R hb = h + (long)b * H, *yb = y ? y + (long)b * H : NULL;
        if (!valid[b]) {
            SC_ZERO_UNITS(yb, j0, j1);
            continue;
        }
        for (int j = j0; j < j1; j++) xn[j] += anb[j];
        TANH(xn, xn);                                                          /* Nt */
        for (int j = j0; j < j1; j++) hb[j] = (1 - xz[j]) * xn[j] + xz[j] * hb[j];
        SC_COPY_UNITS(yb, hb, j0, j1);
    }
}

/* Backward phase A: the z and n pre-activation gradients into dAX (ld 3H; r block zeroed,
 * filled by phase B), dh's direct part dHt * z. */
static void SC_NAME(sc_gru1_backward_a_block)(
        int rows, int j0, int j1, int H, const SC_T *A, const SC_T *Hin,
        const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dAX) {
    for (int b = 0; b < rows; b++) {
        const SC_T *SC_R Zb = A + (long)b * 3 * H, *SC_R Nb = Zb + 2 * H;
        const SC_T *SC_R hb = Hin + (long)b * H, *SC_R dyb = dy + (long)b * H;
        SC_T *SC_R dhb = dh + (long)b * H;
        SC_T *SC_R dxz = dAX + (long)b * 3 * H, *SC_R dxr = dxz + H, *SC_R dxn = dxz + 2 * H;
        SC_ZERO_UNITS(dxr, j0, j1);
        if (!valid[b]) {
            SC_ZERO_UNITS(dxz, j0, j1);
            SC_ZERO_UNITS(dxn, j0, j1);
            continue;
        }
        SC_IVDEP for (int j = j0; j < j1; j++) {
            SC_T Zt = Zb[j], Nt = Nb[j];
            SC_T dHt = dhb[j] + dyb[j];
            dxz[j] = dHt * (hb[j] - Nt) * Zt * (1 - Zt);
            dxn[j] = dHt * (1 - Zt) * (1 - Nt * Nt);
            dhb[j] = dHt * Zt;
        }
    }
}

/* Backward phase B. dRH: gradient of RH = Rt * Hp (dAX_n U_n^T, ld H). Fills dAX's r block
 * and writes dHp = dRH * Rt, the part of Hp's gradient that goes through RH (ld H).
 * Masked rows have dAX_n = 0, hence dRH = 0, and need no special case. */
static void SC_NAME(sc_gru1_backward_b_block)(
        int rows, int j0, int j1, int H, const SC_T *A, const SC_T *Hp, const SC_T *dRH,
        SC_T *dAX, SC_T *dHp) {
    for (int b = 0; b < rows; b++) {
        const SC_T *SC_R Rb = A + (long)b * 3 * H + H, *SC_R hpb = Hp + (long)b * H;
        const SC_T *SC_R drb = dRH + (long)b * H;
        SC_T *SC_R dxr = dAX + (long)b * 3 * H + H, *SC_R dhpb = dHp + (long)b * H;
        for (int j = j0; j < j1; j++) {
            SC_T Rt = Rb[j];
            dxr[j] = drb[j] * hpb[j] * Rt * (1 - Rt);
            dhpb[j] = drb[j] * Rt;
        }
    }
}

/* ================================ simple RNN ================================ */

/* A: Xt W + Hp U + b (ld H), replaced by Ht = act(A); relu if `relu`, else tanh. */
static void SC_NAME(sc_rnn_forward_block)(
        int rows, int j0, int j1, int H, SC_T *A, SC_T *h, const unsigned char *valid,
        SC_T *y, int relu) {
    for (int b = 0; b < rows; b++) {
        SC_T *SC_R ab = A + (long)b * H, *SC_R hb = h + (long)b * H;
        SC_T *yb = y ? y + (long)b * H : NULL;
        if (!valid[b]) {
            SC_ZERO_UNITS(yb, j0, j1);
            continue;
        }
        if (relu) {
            for (int j = j0; j < j1; j++) ab[j] = ab[j] > 0 ? ab[j] : 0;
        } else {
            TANH(ab, ab);
        }
        SC_COPY_UNITS(hb, ab, j0, j1);
        SC_COPY_UNITS(yb, ab, j0, j1);
    }
}

/* Hact: the step's activations (ld H). Writes dA; dh's direct part is zero. */
static void SC_NAME(sc_rnn_backward_block)(
        int rows, int j0, int j1, int H, const SC_T *Hact, const unsigned char *valid,
        const SC_T *dy, SC_T *dh, SC_T *dA, int relu) {
    for (int b = 0; b < rows; b++) {
        const SC_T *SC_R hb = Hact + (long)b * H, *SC_R dyb = dy + (long)b * H;
        SC_T *SC_R dhb = dh + (long)b * H, *SC_R dab = dA + (long)b * H;
        if (!valid[b]) {
            SC_ZERO_UNITS(dab, j0, j1);
            continue;
        }
        for (int j = j0; j < j1; j++) {
            SC_T Ht = hb[j];
            SC_T slope = relu ? (SC_T)(Ht > 0) : 1 - Ht * Ht;
            dab[j] = (dhb[j] + dyb[j]) * slope;
            dhb[j] = 0;
        }
    }
}

/* ================================ shared ================================ */

/* dh += dHp * rmask for valid rows: the recurrent part of the state gradient (dHp = dZ U^T,
 * ld H; rmask: the recurrent dropout mask of row b, or NULL). Masked rows pass dh through. */
static void SC_NAME(sc_add_recurrent_grad_block)(
        int rows, int j0, int j1, int H, const SC_T *dHp, const SC_T *rmask,
        const unsigned char *valid, SC_T *dh) {
    for (int b = 0; b < rows; b++) {
        if (!valid[b]) continue;
        const SC_T *SC_R gb = dHp + (long)b * H;
        SC_T *SC_R dhb = dh + (long)b * H;
        if (rmask) {
            const SC_T *SC_R mb = rmask + (long)b * H;
            for (int j = j0; j < j1; j++) dhb[j] += gb[j] * mb[j];
        } else {
            for (int j = j0; j < j1; j++) dhb[j] += gb[j];
        }
    }
}

/* Hp = h * rmask (or a copy of h when rmask is NULL), ld H. */
static void SC_NAME(sc_masked_state_block)(
        int rows, int j0, int j1, int H, const SC_T *h, const SC_T *rmask, SC_T *Hp) {
    for (int b = 0; b < rows; b++) {
        const SC_T *SC_R hb = h + (long)b * H;
        SC_T *SC_R pb = Hp + (long)b * H;
        if (rmask) {
            const SC_T *SC_R mb = rmask + (long)b * H;
            for (int j = j0; j < j1; j++) pb[j] = hb[j] * mb[j];
        } else {
            SC_COPY_UNITS(pb, hb, j0, j1);
        }
    }
}

/* Units [j0, j1) of the masked rows past the last valid one (rows [active, rows)), which a
 * fused step's tiles leave out: they keep their state; y (may be NULL) zero, Hp_next (may be
 * NULL) their state times rmask (may be NULL). */
static void SC_NAME(sc_masked_rows_units)(int rows, int active, int j0, int j1, int H,
                                          const SC_T *h, SC_T *y, const SC_T *rmask,
                                          SC_T *Hp_next) {
    if (active >= rows || j0 >= j1) return;
    long o = (long)active * H;
    for (long b = active; y && b < rows; b++) SC_ZERO_UNITS(y + b * H, j0, j1);
    if (Hp_next)
        SC_NAME(sc_masked_state_block)(rows - active, j0, j1, H, h + o, rmask ? rmask + o : NULL,
                                       Hp_next + o);
}

#undef SIGMOID
#undef TANH

/* ====================== the recurrent products of one step ====================== */
/* Small-batch matrix products written here rather than called from BLAS: inside the time loop
 * each thread multiplies only its own block of units (columns of U for every gate, or rows of
 * U going back), so BLAS would need one call per gate and thread, re-packing U every step, and
 * its own thread pool would fight the OpenMP one. SC_VEC is an SC_VL-lane vector of SC_T. */

#define SC_LOADV(p) ({ SC_VEC v_; memcpy(&v_, (p), sizeof v_); v_; })
#define SC_STOREV(p, v) do { SC_VEC s_ = (v); memcpy((p), &s_, sizeof s_); } while (0)

/* dst[0..16) = the n <= 16 values at src, then zeros (all zeros when src is NULL): an edge
 * panel's sums go through such a buffer, so that nothing past the last unit is read. */
static inline void SC_NAME(sc_pad16)(SC_T *dst, const SC_T *src, int n) {
    if (src && n == 16) {             /* every panel but an edge one: a constant-size copy */
        memcpy(dst, src, 16 * sizeof(SC_T));
        return;
    }
    memset(dst, 0, 16 * sizeof(SC_T));
    if (src) memcpy(dst, src, (size_t)n * sizeof(SC_T));
}

/* Z[r, zc + j] (+)= sum_k A[r, k] * M[k, j] for rows r < rows, k < K and units j in panels
 * [p0, p1), M coming packed (sc_pack_panels and sc_pack_panels_t in cells_entry.h):
 * panel p holds units [16p, 16p + 16) for every k, contiguous, zero past H: panels ps values
 * apart (Kp * 16 for Kp >= K values of k: a product may use the first K of them), consecutive k
 * ks = 16 values apart (SC_PACKED(Kp)). M may also be read where it lies, unpacked:
 * ps = 16, ks = its row stride (SC_UNPACKED(ld)), if H is a multiple of 16 (the 16 lanes of a
 * panel are always read). Z ld ldz; zc is the first column in Z; units at or past H are
 * neither read nor written.
 * Tiles of up to SC_TILE_ROWS rows x SC_TILE_PANELS panels stay in registers across the k
 * loop (where SC_TILE_ROWS is 6, and on AVX2, tiles of 2 to 6 rows sized at run time as
 * SC_TILE_ROWS_FOR; otherwise 4, then 3, 2). Each loaded piece of U
 * serves every row of the tile (a batch of 2 or 3 rows reads U once, not once per row: 21 -> 12
 * us and 31 -> 17 us for K 256 x 1024 units); single rows take 4 panels at a time so that 8
 * independent multiply-add chains hide the latency.
 * from_init: the sums start from init[zc + j] (a bias row; 0 when init is NULL) instead of
 * Z's current values, so a product with a bias needs no pass that writes the bias first.
 * arows, zrows: NULL, or the product's row r is row arows[r] of A, row zrows[r] of Z (the
 * valid rows of several steps of a ragged batch in one product, whose register tiles then run
 * across the steps; scan.pxd project_valid). */
static void SC_NAME(sc_gemm_acc_block)(int rows, int K, const SC_T *A, int lda,
                                       const SC_T *Upk, long ps, int ks, int p0, int p1, SC_T *Z,
                                       int ldz, int zc, int H, const SC_T *init, int from_init,
                                       const int *arows, const int *zrows) {
    const int W = 16, NV = 16 / SC_VL;    /* panel width in units and in vectors */
    enum { PT = SC_TILE_PANELS };
#define SC_AROW(r) (A + (long)(arows ? arows[r] : (r)) * lda)
#define SC_ZROW(r, p) (Z + (long)(zrows ? zrows[r] : (r)) * ldz + zc + (p) * W)
#define SC_PANEL(p) (Upk + (long)(p) * ps)
#define SC_UNITS(p) (H - (p) * W < W ? H - (p) * W : W)     /* units of panel p that exist */
    /* where the sums of row r, panel p start: Z itself, the init row, or NULL for zero */
#define SC_START(r, p) (from_init ? (init ? init + zc + (p) * W : NULL) : SC_ZROW(r, p))
    int r = 0;
#ifdef SC_GEMM_TILE_FULL
    /* float32 on AVX2: tiles of 2 to 6 rows, sized at run time (SC_TILE_ROWS_FOR), through
     * SC_GEMM_TILE_FULL, an edge panel through zbuf; only a call of a single row is left to
     * the generic code below */
    for (int R; (R = SC_TILE_ROWS_FOR(rows - r)) >= 2; r += R)
        for (int p = p0; p < p1; p++) {
            const SC_T *a_[6], *start_[6];
            SC_T *out_[6], zbuf[6][16];
            const int nu = SC_UNITS(p);
            for (int i = 0; i < R; i++) {
                a_[i] = SC_AROW(r + i);
                start_[i] = SC_START(r + i, p);
                out_[i] = SC_ZROW(r + i, p);
                if (nu < W) {
                    SC_NAME(sc_pad16)(zbuf[i], start_[i], nu);
                    start_[i] = out_[i] = zbuf[i];
                }
            }
            SC_GEMM_TILE_FULL(R, K, a_, SC_PANEL(p), ks, start_, out_);
            if (nu < W)
                for (int i = 0; i < R; i++)
                    memcpy(SC_ZROW(r + i, p), zbuf[i], (size_t)nu * sizeof(SC_T));
        }
#endif
    /* In tiles of 2 and 3 rows, each piece of U is loaded once for all the rows
     * (cells.h SC_IN_REGISTER; GCC 12 keeps it in a register by itself at 4 rows and more),
     * in the AVX-512 variants, whose tiles have the registers for it */
#if SC_WIDE
#define SC_TILE_SHARED(v) SC_IN_REGISTER(v)
#else
#define SC_TILE_SHARED(v) ((void)0)
#endif
    /* R rows x PTN panels per register tile, over panels [pa, pb): a whole tile of existing
     * units is read and written in place; an edge tile goes through zbuf so that nothing past
     * the last unit is touched. Tiles of PT panels take the panels in whole groups of PT,
     * one-panel tiles the rest (pw below): a PT-panel tile over fewer panels would multiply
     * repeats of its first panel and throw them away (4x the work for the one-panel items of
     * a backward step's recurrent gradient at H = 1024, sc_recurrent_grad's tall case). */
#define SC_ROW_TILE(R, PTN, pa, pb)                                                          \
        for (int p = (pa); p < (pb); p += (PTN)) {                                           \
            enum { TVN = (PTN) * 16 / SC_VL };                                               \
            SC_T zbuf[R][(PTN) * 16];                                                        \
            SC_VEC acc[R][TVN];                                                              \
            const SC_T *u[PTN], *a[R];                                                       \
            for (int q = 0; q < (PTN); q++) u[q] = SC_PANEL(p + q < (pb) ? p + q : p);       \
            int whole = p + (PTN) <= (pb) && (p + (PTN)) * W <= H;                           \
            for (int i = 0; i < (R); i++) {                                                  \
                const SC_T *src = SC_START(r + i, p);                                        \
                a[i] = SC_AROW(r + i);                                                       \
                if (!whole && src) {                                                         \
                    memset(zbuf[i], 0, sizeof zbuf[i]);                                      \
                    for (int q = 0; q < (PTN) && p + q < (pb); q++)                          \
                        memcpy(zbuf[i] + q * W, SC_START(r + i, p + q),                      \
                               (size_t)SC_UNITS(p + q) * sizeof(SC_T));                      \
                    src = zbuf[i];                                                           \
                }                                                                            \
                for (int v = 0; v < TVN; v++)                                                \
                    acc[i][v] = src ? SC_LOADV(src + v * SC_VL) : (SC_VEC){0};               \
            }                                                                                \
            for (int k = 0; k < K; k++)                                                      \
                for (int q = 0; q < (PTN); q++)                                              \
                    for (int v = 0; v < NV; v++) {                                           \
                        SC_VEC uv = SC_LOADV(u[q] + (long)k * ks + v * SC_VL);               \
                        if ((R) == 2 || (R) == 3) SC_TILE_SHARED(uv);                        \
                        for (int i = 0; i < (R); i++) acc[i][q * NV + v] += a[i][k] * uv;    \
                    }                                                                        \
            for (int i = 0; i < (R); i++) {                                                  \
                SC_T *dst = whole ? SC_ZROW(r + i, p) : zbuf[i];                             \
                for (int v = 0; v < TVN; v++) SC_STOREV(dst + v * SC_VL, acc[i][v]);         \
                if (!whole)                                                                  \
                    for (int q = 0; q < (PTN) && p + q < (pb); q++)                          \
                        memcpy(SC_ZROW(r + i, p + q), zbuf[i] + q * W,                       \
                               (size_t)SC_UNITS(p + q) * sizeof(SC_T));                      \
            }                                                                                \
        }
#if SC_TILE_PANELS > 1
    const int pw = p0 + (p1 - p0) / PT * PT;         /* panels [p0, pw) in groups of PT */
#define SC_ROW_TILES(R) SC_ROW_TILE(R, PT, p0, pw) SC_ROW_TILE(R, 1, pw, p1)
#else
#define SC_ROW_TILES(R) SC_ROW_TILE(R, PT, p0, p1)
#endif
#if SC_TILE_ROWS > 4
    /* up to 6 rows a tile, the rows split as evenly as SC_TILE_ROWS_FOR splits them (8: 4 + 4,
     * 16: 6 + 5 + 5): a tile of 2 rows left over from 6 + 2 ran at 8 rows 10% slower than 4 + 4 */
    for (int R; rows - r >= 2; r += R)
        switch (R = SC_TILE_ROWS_FOR(rows - r)) {
            case 6: SC_ROW_TILES(6) break;
            case 5: SC_ROW_TILES(5) break;
            case 4: SC_ROW_TILES(4) break;
            case 3: SC_ROW_TILES(3) break;
            default: SC_ROW_TILES(2) break;
        }
#else
    for (; r + 4 <= rows; r += 4) SC_ROW_TILES(4)
    for (; r + 3 <= rows; r += 3) SC_ROW_TILES(3)
    for (; r + 2 <= rows; r += 2) SC_ROW_TILES(2)
#endif
#undef SC_ROW_TILES
#undef SC_ROW_TILE
#undef SC_TILE_SHARED
    for (; r < rows; r++) {
        const SC_T *a = SC_AROW(r);
        for (int p = p0; p < p1; p += 4) {
            int np = p1 - p < 4 ? p1 - p : 4;
            SC_T buf[4][16];
            SC_VEC acc[4][16 / SC_VL];
            const SC_T *u[4];
            /* a whole panel's sums are loaded and stored where they lie; only an edge panel's
             * go through buf (the per-panel memset + memcpy calls were 2-3% of a streaming
             * step, whose products are all of this single row) */
            for (int q = 0; q < 4; q++) {
                int pq = q < np ? p + q : p;           /* past the end: repeat, not stored */
                const SC_T *src = SC_START(r, pq);
                if (src && SC_UNITS(pq) < W) {
                    memset(buf[q], 0, sizeof buf[q]);
                    memcpy(buf[q], src, (size_t)SC_UNITS(pq) * sizeof(SC_T));
                    src = buf[q];
                }
                for (int v = 0; v < NV; v++)
                    acc[q][v] = src ? SC_LOADV(src + v * SC_VL) : (SC_VEC){0};
                u[q] = SC_PANEL(pq);
            }
            for (int k = 0; k < K; k++) {
                SC_T ak = a[k];
                for (int q = 0; q < 4; q++)
                    for (int v = 0; v < NV; v++)
                        acc[q][v] += ak * SC_LOADV(u[q] + (long)k * ks + v * SC_VL);
            }
            for (int q = 0; q < np; q++) {
                int whole = SC_UNITS(p + q) == W;
                SC_T *dst = whole ? SC_ZROW(r, p + q) : buf[q];
                for (int v = 0; v < NV; v++) SC_STOREV(dst + v * SC_VL, acc[q][v]);
                if (!whole)
                    memcpy(SC_ZROW(r, p + q), buf[q], (size_t)SC_UNITS(p + q) * sizeof(SC_T));
            }
        }
    }
#undef SC_AROW
#undef SC_ZROW
#undef SC_PANEL
#undef SC_UNITS
#undef SC_START
}

/* The same product over blocks of SC_ROW_BLOCK rows x SC_PANEL_BLOCK panels x SC_K_BLOCK
 * values of k: a block's piece of packed U (up to 1024 x 128 units, 512 KiB in float32) is
 * reused by every row tile of the block while it is still in cache, and the block's rows of A
 * stay in cache across its panel blocks, instead of every tile streaming all of U and every
 * panel streaming all of A. Measured alone (bench of this function, 1 thread, GFLOP/s): the
 * backward step's dZ U^T (rows 128, K 4096, H 1024) 82 -> 106; an input projection (rows 1600,
 * K 256, H 1024) 99 -> 106.5; per-step products at B = 16..64 unchanged at 110-112 (Zen 4,
 * 1 MiB L2, where blocking k as well measured no better). On Sapphire Rapids (2 MiB L2) the
 * K = 4096 product ran at 73 GFLOP/s unblocked (its 4 MiB of U per panel block from L3), 152
 * with k in blocks of 1024, 143 of 512, 109 of 2048; products of K <= 1024 are one block.
 * Panel blocks of 8 rather than 16 (Zen 5, 1 MiB L2, where a block of 16 panels, 1 MiB of U,
 * left no room for the rows of A): a C harness, best of 2-5, (rows, K, N) (6400, 2048, 512)
 * 222-229 -> 228-234 GFLOP/s, (1024, 6400, 2048) 212-222 -> 226-233, (6400, 4096, 1024)
 * 211-225 -> 227-232, smaller shapes unchanged; the training step, paired in one process
 * (6-30 pairs), LSTM (100, 64, 512, 512) 0.988x / 0.985x the time at 1 / 2 threads,
 * (50, 128, 1024, 1024) 0.971x / 0.980x, (100, 16, 256, 256) 0.992x, GRU (100, 64, 512, 512)
 * 0.987x / 1.000x, (50, 128, 1024, 1024) 0.976x; inference (50, 128, 1024, 1024) 0.978x on 2
 * threads, (100, 64, 512, 512) and (100, 16, 256, 256) 1.003x. */
#define SC_ROW_BLOCK 256
#define SC_PANEL_BLOCK 8
#ifndef SC_K_BLOCK
#define SC_K_BLOCK 1024
#endif
static void SC_NAME(sc_gemm_acc_packed)(int rows, int K, const SC_T *A, int lda,
                                        const SC_T *Upk, long ps, int ks, int p0, int p1, SC_T *Z,
                                        int ldz, int zc, int H, const SC_T *init, int from_init,
                                        const int *arows, const int *zrows) {
    for (int r0 = 0; r0 < rows; r0 += SC_ROW_BLOCK) {
        int rn = rows - r0 < SC_ROW_BLOCK ? rows - r0 : SC_ROW_BLOCK;
        long a0 = arows ? 0 : r0, z0 = zrows ? 0 : r0;      /* where rows are not mapped */
        for (int pb = p0; pb < p1; pb += SC_PANEL_BLOCK)
            for (int k0 = 0; k0 < K; k0 += SC_K_BLOCK)    /* later blocks add to the sums */
                SC_NAME(sc_gemm_acc_block)(rn, K - k0 < SC_K_BLOCK ? K - k0 : SC_K_BLOCK,
                                           A + a0 * lda + k0, lda, Upk + (long)k0 * ks,
                                           ps, ks, pb,
                                           pb + SC_PANEL_BLOCK < p1 ? pb + SC_PANEL_BLOCK : p1,
                                           Z + z0 * ldz, ldz, zc, H, init, k0 == 0 && from_init,
                                           arows ? arows + r0 : NULL,
                                           zrows ? zrows + r0 : NULL);
    }
}

/* ========================== LSTM forward step, fused ========================== */
#ifdef SC_GEMM_TILE_FULL
#define SC_LSTM_GATE_BLOCKS 1
#else
#define SC_LSTM_GATE_BLOCKS 0
#endif

/* Ask for the lines holding the n <= 16 values at p (two lines when they straddle a 64-byte
 * boundary); rw and locality as __builtin_prefetch. */
#define SC_PREFETCH_UNITS(p, n, rw, locality) do {                                           \
    __builtin_prefetch((p), (rw), (locality));                                                \
    __builtin_prefetch((p) + (n) - 1, (rw), (locality));                                      \
} while (0)

/* The layout of packed U (H, 4H) this variant's sc_lstm_forward_item reads: 1, each panel's
 * gates one after the other (G x K x 16: four streams of 64 bytes a k); 0, interleaved per k
 * (K x G x 16: one stream of 256 bytes a k; sc_pack_panels). Where the item multiplies a
 * gate at a time (SC_LSTM_GATE_BLOCKS), always 1; otherwise 1 once U passes
 * SC_LSTM_BLOCKS_BYTES, where its panels no longer stay in a core's L2 from step to step and
 * every step streams them from L3: four streams then keep more lines in flight than one. The
 * fused step alone (a C harness, Sapphire Rapids, 2 MiB L2, 1 thread), blocked / interleaved
 * time: H = 512, B = 4 0.76x, B = 8 0.74-0.99x, B = 16 0.94-0.96x, B = 64 0.92-0.95x;
 * H = 1024, B = 4 0.74-0.82x, B = 16 0.83x, B = 64 0.94-0.99x, B = 128 0.96x; H = 384
 * (2.25 MiB), B = 4 0.80-0.81x, B = 16 0.88x; H = 320 (1.56 MiB), B = 1 0.93-0.96x, B = 4
 * 0.88-0.89x, B = 16 0.96-0.98x; B = 1 and 2 at H >= 512 the same (memory-bound either way).
 * Within L2 the one stream is as fast or faster: H = 256 (1 MiB), B = 1 1.09x blocked, B = 2
 * to 64 0.94-1.04x by round (one round at B = 4 0.88x, the next 1.00x); H = 128 the same. */
#define SC_LSTM_BLOCKS_BYTES (1L << 20)
static int SC_NAME(sc_lstm_gate_blocks)(int H) {
    return SC_LSTM_GATE_BLOCKS || 4L * H * H * (long)sizeof(SC_T) > SC_LSTM_BLOCKS_BYTES;
}
/* A step's recurrent product and its pointwise pass as one piece of work per 16 units: the
 * four gates' panels of those units make one register tile (4 rows x 4 gates on AVX-512), and
 * the activations and state update run on the tile while it is still in L1, instead of the
 * product writing Z for all units and the pass reading it back. A step is then a set of
 * independent items (one per 16 units) that threads can share in any order. */

/* Copy / zero n <= 16 values; 16 (every panel but an edge one) with a constant size, which
 * the compiler turns into a few vector moves instead of a libc call. */
static inline void SC_NAME(sc_copy16)(SC_T *dst, const SC_T *src, int n) {
    if (n == 16) memcpy(dst, src, 16 * sizeof(SC_T));
    else memcpy(dst, src, (size_t)n * sizeof(SC_T));
}
static inline void SC_NAME(sc_zero16)(SC_T *dst, int n) {
    if (n == 16) memset(dst, 0, 16 * sizeof(SC_T));
    else memset(dst, 0, (size_t)n * sizeof(SC_T));
}

/* The outputs of row b for units [j0, j0 + n) once its c and h are final: y (ld H, NULL: none)
 * h, or zero for a masked row; c_store (NULL: none) c; Hp_next (NULL: none) h * rmask (or h),
 * the state the next step's product sees. */
static inline void SC_NAME(sc_lstm_row_outputs)(
        int is_valid, int j0, int n, int H, long b, const SC_T *c, const SC_T *h, SC_T *y,
        SC_T *c_store, const SC_T *rmask, SC_T *Hp_next) {
    long o = b * H + j0;
    if (y) {
        if (is_valid) SC_NAME(sc_copy16)(y + o, h + o, n);
        else SC_NAME(sc_zero16)(y + o, n);
    }
    if (c_store) SC_NAME(sc_copy16)(c_store + o, c + o, n);
    if (Hp_next && rmask)
        for (int j = 0; j < n; j++) Hp_next[o + j] = h[o + j] * rmask[o + j];
    else if (Hp_next)
        SC_NAME(sc_copy16)(Hp_next + o, h + o, n);
}

/* The state update of rows [r, r + R) for units [j0, j0 + n) (n <= 16), from the tile's
 * activations: sig (R, 48) holds i, f, o of each row (16 values each), gg (R, 16) g; cc
 * (R, 16) is a workspace for tanh of the new cell state. A valid row takes
 * Ct = f * c + i * g and Ht = o * tanh(Ct); a masked row keeps c and h. With keep_act the
 * activations go back into Z (ld 4H) for backward. */
static void SC_NAME(sc_lstm_tile_update)(
        int R, int r, int j0, int n, int H, const SC_T *sig, const SC_T *gg, SC_T *cc,
        SC_T *Z, int keep_act, SC_T *c, SC_T *h, const unsigned char *valid, SC_T *y,
        SC_T *c_store, const SC_T *rmask, SC_T *Hp_next) {
    for (int i = 0; i < R; i++) {
        const SC_T *SC_R ig = sig + i * 48, *SC_R fg = ig + 16, *SC_R gv = gg + i * 16;
        SC_T *SC_R cb = c + (long)(r + i) * H + j0, *SC_R ct = cc + i * 16;
        if (valid[r + i])
            for (int j = 0; j < n; j++) cb[j] = fg[j] * cb[j] + ig[j] * gv[j];     /* Ct */
        for (int j = 0; j < 16; j++) ct[j] = j < n ? cb[j] : 0;
    }
    SC_NAME(sc_tanh_array)(cc, cc, R * 16);
    for (int i = 0; i < R; i++) {
        long b = r + i;
        const SC_T *SC_R og = sig + i * 48 + 32, *SC_R ct = cc + i * 16;
        SC_T *SC_R hb = h + b * H + j0;
        if (valid[b])
            for (int j = 0; j < n; j++) hb[j] = og[j] * ct[j];                     /* Ht */
        SC_NAME(sc_lstm_row_outputs)(valid[b], j0, n, H, b, c, h, y, c_store, rmask, Hp_next);
        if (keep_act) {
            SC_T *zb = Z + b * 4 * H + j0;
            const SC_T *ib = sig + i * 48;
            SC_NAME(sc_copy16)(zb, ib, n);                                         /* i */
            SC_NAME(sc_copy16)(zb + H, ib + 16, n);                                /* f */
            SC_NAME(sc_copy16)(zb + 2 * H, gg + i * 16, n);                        /* g */
            SC_NAME(sc_copy16)(zb + 3 * H, ib + 32, n);                            /* o */
        }
    }
}

/* Where panel p's weights for k = k0 lie in U (packed, or in place with ldu > 0): gate g of
 * its units at the result + g * *gs, consecutive k *ks values apart. Packed, one block of
 * H x 4 gates x 16 values (4 x H x 16 where the gates' panels are blocks:
 * sc_lstm_gate_blocks); unpacked, U itself. */
static inline const SC_T *SC_NAME(sc_lstm_item_weights)(int p, int H, int k0, const SC_T *Upk,
                                                        int ldu, long *gs, long *ks) {
    const int blocked = SC_NAME(sc_lstm_gate_blocks)(H);
    *gs = ldu ? H : blocked ? (long)H * 16 : 16;
    *ks = ldu ? ldu : blocked ? 16 : 64;
    return (ldu ? Upk + p * 16 : Upk + (long)p * H * 64) + (long)k0 * *ks;
}

/* Units [16p, 16p + 16) (those below H) of one LSTM step for the rows below `active`: Z += Hp U
 * for the four gates of those units (U packed by sc_pack_panels, interleaved, or, when
 * ldu > 0, U (H, 4H) itself with row stride ldu, H a multiple of 16; Z (rows, 4H) holds
 * Xt W + b on entry), then the state update (the masked rows from `active` on: the entry's
 * sc_lstm_forward_step). Arguments as sc_lstm_tile_update;
 * keep_act: training (backward reads the activations from Z). Register tiles of
 * SC_FUSED_ROWS rows, then fewer; where SC_LSTM_TILES_FULL is defined (float32 on AVX-512),
 * every panel goes through it instead (cells.h sc_lstm_tiles_v16), an edge one too; where
 * SC_GEMM_TILE_FULL is (float32 on AVX2), tiles of 3 to 6 rows one gate at a time, a full
 * panel's update then in registers (SC_LSTM_UPDATE_FULL, below).
 * The product runs over the state's units [k0, k1) only (0, H: all of it); Z then holds the
 * sums over the others (sc_lstm_partial_item: the overlapped step of cells_entry.h). */
static void SC_NAME(sc_lstm_forward_item)(
        int active, int p, int H, int k0, int k1, const SC_T *Hp, const SC_T *Upk, int ldu,
        SC_T *Z, int keep_act, SC_T *c, SC_T *h, const unsigned char *valid, SC_T *y,
        SC_T *c_store, const SC_T *rmask, SC_T *Hp_next) {
    enum { NV = 16 / SC_VL };
    const int j0 = p * 16, n = H - j0 < 16 ? H - j0 : 16;
    /* u and Hp from here on start at k0, and the products run over K values of k */
    long gs, ks;
    const SC_T *u = SC_NAME(sc_lstm_item_weights)(p, H, k0, Upk, ldu, &gs, &ks);
    const int K = k1 - k0;
    Hp += k0;
    int r = 0;
#define SC_LSTM_TILES(R)                                                                     \
    for (; r + (R) <= active; r += (R)) {                                                   \
        SC_VEC acc[R][4][NV];                                                               \
        SC_T sig[(R) * 48], gg[(R) * 16], cc[(R) * 16];                                     \
        const SC_T *a[R];                                                                   \
        for (int i = 0; i < (R); i++) {                                                     \
            a[i] = Hp + (long)(r + i) * H;                                                  \
            for (int g = 0; g < 4; g++) {                                                   \
                SC_T zbuf[16];                /* an edge panel: nothing past H is read */  \
                SC_NAME(sc_pad16)(zbuf, Z + (long)(r + i) * 4 * H + g * H + j0, n);         \
                for (int v = 0; v < NV; v++) acc[i][g][v] = SC_LOADV(zbuf + v * SC_VL);     \
            }                                                                               \
        }                                                                                   \
        for (int k = 0; k < K; k++)                                                         \
            for (int g = 0; g < 4; g++)                                                     \
                for (int v = 0; v < NV; v++) {                                              \
                    SC_VEC uv = SC_LOADV(u + k * ks + g * gs + v * SC_VL);                  \
                    for (int i = 0; i < (R); i++) acc[i][g][v] += a[i][k] * uv;             \
                }                                                                           \
        for (int i = 0; i < (R); i++)           /* sig: i, f, o; gg: g */                   \
            for (int v = 0; v < NV; v++) {                                                  \
                SC_STOREV(sig + i * 48 + v * SC_VL, acc[i][0][v]);                          \
                SC_STOREV(sig + i * 48 + 16 + v * SC_VL, acc[i][1][v]);                     \
                SC_STOREV(gg + i * 16 + v * SC_VL, acc[i][2][v]);                           \
                SC_STOREV(sig + i * 48 + 32 + v * SC_VL, acc[i][3][v]);                     \
            }                                                                               \
        if (SC_UPDATE_FULL_TILE((R), r, n)) continue;                                       \
        SC_NAME(sc_sigmoid_array)(sig, sig, (R) * 48);                                      \
        SC_NAME(sc_tanh_array)(gg, gg, (R) * 16);                                           \
        SC_NAME(sc_lstm_tile_update)((R), r, j0, n, H, sig, gg, cc, Z, keep_act, c, h, valid, \
                                     y, c_store, rmask, Hp_next);                           \
    }
    /* SC_UPDATE_FULL_TILE: where the variant has an update of a full panel in registers
     * (float32 on AVX2), the tiles above hand their gate sums to it (and go on to the next
     * tile) instead of the passes over small arrays: the one- and two-row tiles of a batch of
     * 1 or 2 rows. Zen 3, one thread, paired in one process: a streaming step (B = 1,
     * 64 -> 128) 4% faster, (100, 2, 128, 256) 3%. */
#ifdef SC_LSTM_UPDATE_FULL
#define SC_UPDATE_FULL_TILE(R, r, n) ((n) == 16 && (SC_LSTM_UPDATE_FULL((R), (r), j0, H, sig, gg, Z, \
    keep_act, c, h, valid, y, c_store, rmask, Hp_next), 1))
#else
#define SC_UPDATE_FULL_TILE(R, r, n) 0
#endif
#ifdef SC_LSTM_TILES_FULL
    SC_LSTM_TILES_FULL(active, j0, n, H, K, Hp, u, gs, ks, Z, keep_act, c, h, valid, y,
                       c_store, rmask, Hp_next);
    r = active;
#endif
#ifdef SC_GEMM_TILE_FULL
    /* float32 on AVX2: tiles of 3 to 6 rows take one product tile per gate (12 accumulators
     * for 6 rows leave no room for 4 gates in 16 registers), each written to sig or gg, and
     * read U once per tile and gate rather than once per row; sizes as SC_TILE_ROWS_FOR
     * (16 rows: 6 + 5 + 5, not 6 + 6 + 4, whose 4-row tile runs 8 chains instead of 10-12).
     * Batches of 1 or 2 rows go to the generic one-row tile below (4 gates x 16 units: 8
     * independent chains; one gate's tile would be 2). */
    for (int R; (R = SC_TILE_ROWS_FOR(active - r)) >= 3; r += R) {
        SC_T sig[6 * 48], gg[6 * 16], cc[6 * 16];
        const SC_T *a[6];
        for (int i = 0; i < R; i++) a[i] = Hp + (long)(r + i) * H;
        /* Prefetches (measured at (50, 128, 1024, 1024), 1 thread: inference 3% faster, the
         * state update's share of the samples 5.3% -> 2.5%): rows of Z, c, h, y lie H or 4H
         * values apart, and a tile touches one line or two of each row, which the hardware
         * prefetchers do not foresee. The next tile's gate sums (read when its product starts)
         * are asked for into L2 now, a tile's worth of products ahead; this tile's state rows
         * (read and written by its update) before its last gate's product. */
        for (int i = r + R; i < r + R + 6 && i < active; i++)
            for (int g = 0; g < 4; g++)
                SC_PREFETCH_UNITS(Z + (long)i * 4 * H + g * H + j0, n, 0, 2);
        for (int g = 0; g < 4; g++) {
            if (g == 3)
                for (int i = r; i < r + R; i++) {
                    long o = (long)i * H + j0;
                    SC_PREFETCH_UNITS(c + o, n, 1, 3);
                    SC_PREFETCH_UNITS(h + o, n, 1, 3);
                    if (y) SC_PREFETCH_UNITS(y + o, n, 1, 3);
                    if (Hp_next) SC_PREFETCH_UNITS(Hp_next + o, n, 1, 3);
                }
            const SC_T *start[6];
            SC_T *out[6], zbuf[6][16];
            for (int i = 0; i < R; i++) {
                start[i] = Z + (long)(r + i) * 4 * H + g * H + j0;
                if (n < 16) {                 /* an edge panel: nothing past H is read */
                    SC_NAME(sc_pad16)(zbuf[i], start[i], n);
                    start[i] = zbuf[i];
                }
                out[i] = g == 2 ? gg + i * 16 : sig + i * 48 + (g == 3 ? 32 : g * 16);
            }
            SC_GEMM_TILE_FULL(R, K, a, u + g * gs, ks, start, out);
        }
        if (n == 16) {          /* activations and update in registers (cells.h) */
            SC_LSTM_UPDATE_FULL(R, r, j0, H, sig, gg, Z, keep_act, c, h, valid, y, c_store,
                                rmask, Hp_next);
            continue;
        }
        SC_NAME(sc_sigmoid_array)(sig, sig, R * 48);
        SC_NAME(sc_tanh_array)(gg, gg, R * 16);
        SC_NAME(sc_lstm_tile_update)(R, r, j0, n, H, sig, gg, cc, Z, keep_act, c, h, valid, y,
                                     c_store, rmask, Hp_next);
    }
#endif
    /* Two rows where 2 rows x 4 gates would not fit the registers (16 accumulators of 8
     * floats, and U's loads besides, in AVX2's 16): 2 rows x 2 gates, then the other 2 gates
     * (8 chains, U read once for both rows, in two halves), instead of a one-row tile per row
     * reading all of U twice. Zen 3, one thread, median of 10 alternating processes, new / old:
     * BoundLayer LSTM (100, 2, 128, 256) 0.77 (0.61-0.84; U, 1 MiB, comes from L3); a Stepper
     * kernel step at B = 2, 64 -> 128, 0.94 (U in L2). On AVX2 the 3- to 6-row tiles above
     * take every count but 1 and 2 (SC_TILE_ROWS_FOR). */
#define SC_LSTM_PAIR_TILES                                                                   \
    for (; r + 2 <= active; r += 2) {                                                       \
        SC_T sig[2 * 48], gg[2 * 16], cc[2 * 16];                                           \
        const SC_T *a0 = Hp + (long)r * H, *a1 = a0 + H;                                    \
        for (int gp = 0; gp < 4; gp += 2) {                                                 \
            SC_VEC acc[2][2][NV];                                                           \
            for (int i = 0; i < 2; i++)                                                     \
                for (int g = 0; g < 2; g++) {                                               \
                    SC_T zbuf[16];            /* an edge panel: nothing past H is read */  \
                    SC_NAME(sc_pad16)(zbuf, Z + (long)(r + i) * 4 * H + (gp + g) * H + j0, n); \
                    for (int v = 0; v < NV; v++) acc[i][g][v] = SC_LOADV(zbuf + v * SC_VL); \
                }                                                                           \
            for (int k = 0; k < K; k++) {                                                   \
                SC_T h0 = a0[k], h1 = a1[k];                                                \
                for (int g = 0; g < 2; g++)                                                 \
                    for (int v = 0; v < NV; v++) {                                          \
                        SC_VEC uv = SC_LOADV(u + k * ks + (gp + g) * gs + v * SC_VL);       \
                        acc[0][g][v] += h0 * uv;                                            \
                        acc[1][g][v] += h1 * uv;                                            \
                    }                                                                       \
            }                                                                               \
            for (int i = 0; i < 2; i++)               /* sig: i, f, o; gg: g */             \
                for (int g = 0; g < 2; g++) {                                               \
                    int gate = gp + g;                                                      \
                    SC_T *dst = gate == 2 ? gg + i * 16                                     \
                                          : sig + i * 48 + (gate == 3 ? 32 : gate * 16);   \
                    for (int v = 0; v < NV; v++) SC_STOREV(dst + v * SC_VL, acc[i][g][v]);  \
                }                                                                           \
        }                                                                                   \
        if (SC_UPDATE_FULL_TILE(2, r, n)) continue;                                         \
        SC_NAME(sc_sigmoid_array)(sig, sig, 2 * 48);                                        \
        SC_NAME(sc_tanh_array)(gg, gg, 2 * 16);                                             \
        SC_NAME(sc_lstm_tile_update)(2, r, j0, n, H, sig, gg, cc, Z, keep_act, c, h, valid,   \
                                     y, c_store, rmask, Hp_next);                           \
    }
    if (SC_FUSED_ROWS >= 4) SC_LSTM_TILES(4)
    if (SC_FUSED_ROWS >= 2) SC_LSTM_TILES(2)
    if (SC_FUSED_ROWS < 2 && NV == 2) SC_LSTM_PAIR_TILES
    SC_LSTM_TILES(1)
#undef SC_LSTM_TILES
#undef SC_LSTM_PAIR_TILES
#undef SC_UPDATE_FULL_TILE
#undef SC_LSTM_GATE_BLOCKS
#undef SC_PREFETCH_UNITS
}

/* Z[r, g H + j] += sum_k Hp[r, k] U_g[k, j] over the state's units k in [k0, k1), for the rows
 * below `active` and the units j of panel p (those below H), the four gates: the part of an
 * item's product that the overlapped step (cells_entry.h) runs before the rest of the state is
 * there; sc_lstm_forward_item then adds the rest and updates. Row by row (that step is for
 * a single row), 4 gates x 16 units of sums in registers. Arguments as the item's. */
static void SC_NAME(sc_lstm_partial_item)(int active, int p, int H, int k0, int k1,
                                          const SC_T *Hp, const SC_T *Upk, int ldu, SC_T *Z) {
    enum { NV = 16 / SC_VL };
    const int j0 = p * 16, n = H - j0 < 16 ? H - j0 : 16;
    long gs, ks;
    const SC_T *u = SC_NAME(sc_lstm_item_weights)(p, H, k0, Upk, ldu, &gs, &ks);
#ifdef SC_LSTM_TILES_FULL                /* float32 on AVX-512: in registers (cells.h) */
    sc_lstm_partial_tiles_v16(active, j0, n, H, k1 - k0, Hp + k0, u, gs, ks, Z);
#else
    for (int r = 0; r < active; r++) {
        const SC_T *a = Hp + (long)r * H + k0;
        SC_T *z = Z + (long)r * 4 * H + j0, zbuf[4][16];
        SC_VEC acc[4][NV];
        for (int g = 0; g < 4; g++) {
            SC_NAME(sc_pad16)(zbuf[g], z + g * H, n);   /* an edge panel: nothing past H */
            for (int v = 0; v < NV; v++) acc[g][v] = SC_LOADV(zbuf[g] + v * SC_VL);
        }
        for (int k = 0; k < k1 - k0; k++)
            for (int g = 0; g < 4; g++)
                for (int v = 0; v < NV; v++)
                    acc[g][v] += a[k] * SC_LOADV(u + k * ks + g * gs + v * SC_VL);
        for (int g = 0; g < 4; g++) {
            for (int v = 0; v < NV; v++) SC_STOREV(zbuf[g] + v * SC_VL, acc[g][v]);
            SC_NAME(sc_copy16)(z + g * H, zbuf[g], n);
        }
    }
#endif
}

/* One part of the overlapped GRU step (cells_entry.h) for the units [j0, j1) (j0 a multiple
 * of 16) of a single row: rest 0, the sums over the state's units [k0, k1) from bh into AH;
 * rest 1, those sums plus the ones over [k0, k1) now, then the pass, in register tiles where
 * this variant has them (cells.h sc_gru_split_tiles_v16: returns 1); else nothing is done and
 * 0 returned. A masked row (active 0) keeps its state: y zero, Hp_next its state. */
static int SC_NAME(sc_gru_split_fused)(
        int rest, int rows, int active, int j0, int j1, int H, int k0, int k1, const SC_T *Hp,
        const SC_T *Upk, const SC_T *bh, SC_T *AH, SC_T *AX, SC_T *h,
        const unsigned char *valid, SC_T *y, const SC_T *rmask, SC_T *Hp_next) {
#ifdef SC_GRU_TILES_FULL
    const long gs = (long)((H + 15) / 16) * H * 16;      /* from one gate's panels to the next */
    if (active)
        sc_gru_split_tiles_v16(rest, j0, j1, H, k0, k1 - k0, AH, Hp, Upk, gs, bh, AX, h, valid,
                               y, rmask, Hp_next);
    if (rest) SC_NAME(sc_masked_rows_units)(rows, active, j0, j1, H, h, y, rmask, Hp_next);
    return 1;
#else
    (void)rest; (void)rows; (void)active; (void)j0; (void)j1; (void)H; (void)k0; (void)k1;
    (void)Hp; (void)Upk; (void)bh; (void)AH; (void)AX; (void)h; (void)valid; (void)y;
    (void)rmask; (void)Hp_next;
    return 0;
#endif
}

/* ==================== GRU (reset_after=False) forward step, fused ==================== */

/* The full panels of units [j0, j1) (j0 a multiple of 16) of one phase of a reset-before GRU
 * step (phase_b 0: z, r and RH; 1: n and the new h) for the rows below `active`, as far as this
 * variant fuses them: where SC_GRU1_TILES_FULL is defined (float32 on AVX-512), each panel's
 * product and pass in register tiles (cells.h sc_gru1_tiles_v16). Returns the first unit not
 * done (j0 where the variant fuses nothing); the caller takes the rest, and the rows from
 * `active` on, through the workspaces and sc_gru1_gates_block / sc_gru1_forward_block.
 * Arguments as those and the entry's sc_gru1_forward_step. */
static int SC_NAME(sc_gru1_fused)(int phase_b, int active, int j0, int j1, int H,
                                  const SC_T *Hp, const SC_T *Upk, SC_T *AX, SC_T *RH, SC_T *h,
                                  const unsigned char *valid, SC_T *y) {
#ifdef SC_GRU1_TILES_FULL
    const long gs = (long)((H + 15) / 16) * H * 16;      /* from one gate's panels to the next */
    const int w = 16 * (phase_b ? SC_GRU1_B_PANELS : SC_GRU1_A_PANELS);   /* units a tile */
    for (; j0 + w <= j1 && j0 + w <= H; j0 += w)
        SC_GRU1_TILES_FULL(phase_b, active, j0, H, Hp, Upk + (long)j0 * H, gs, AX, RH, h,
                           valid, y);
#else
    (void)phase_b; (void)active; (void)j1; (void)H; (void)Hp; (void)Upk; (void)AX; (void)RH;
    (void)h; (void)valid; (void)y;
#endif
    return j0;
}

/* The full panels of units [j0, j1) (j0 a multiple of 16) of a simple RNN step for the rows
 * below `active`, as far as this variant fuses them: where SC_RNN_TILES_FULL is defined
 * (float32 on AVX-512), groups of SC_GRU1_B_PANELS panels in register tiles (cells.h
 * sc_rnn_tiles_v16). Returns the first unit not done, as sc_gru1_fused. Arguments as
 * sc_rnn_forward_block and the entry's sc_rnn_forward_step. */
static int SC_NAME(sc_rnn_fused)(int relu, int active, int j0, int j1, int H, const SC_T *Hp,
                                 const SC_T *Upk, SC_T *A, SC_T *h, const unsigned char *valid,
                                 SC_T *y) {
#ifdef SC_RNN_TILES_FULL
    for (const int w = 16 * SC_GRU1_B_PANELS; j0 + w <= j1 && j0 + w <= H; j0 += w)
        SC_RNN_TILES_FULL(relu, active, j0, H, Hp, Upk + (long)j0 * H, A, h, valid, y);
#else
    (void)relu; (void)active; (void)j1; (void)H; (void)Hp; (void)Upk; (void)A; (void)h;
    (void)valid; (void)y;
#endif
    return j0;
}

/* ====================== GRU (reset_after) forward step, fused ====================== */

/* Units [j0, j1) of one GRU step (reset_after; j0 a multiple of 16) for every row, as far as
 * this variant fuses them: where SC_GRU_TILES_FULL is defined (float32 on AVX-512), each
 * panel of 16 units (an edge panel's units below H too) gets its recurrent product (packed U,
 * gate by gate: sc_pack_panels) and its pointwise pass in register tiles (cells.h
 * sc_gru_tiles_v16) for the rows below `active`, and the rows from `active` on (masked) only
 * their outputs. Returns the first unit not done (j0 where the variant fuses nothing, else
 * j1), which the caller then takes through AH and sc_gru_forward_block. Arguments as
 * sc_gru_forward_block and the entry's sc_gru_forward_step. */
static int SC_NAME(sc_gru_forward_fused)(
        int rows, int active, int j0, int j1, int H, const SC_T *Hp, const SC_T *Upk,
        const SC_T *bh, SC_T *AX, SC_T *h, const unsigned char *valid, SC_T *y,
        SC_T *An_store, const SC_T *rmask, SC_T *Hp_next, SC_T *H_next) {
#ifdef SC_GRU_TILES_FULL
    const long gs = (long)((H + 15) / 16) * H * 16;      /* from one gate's panels to the next */
    const int first = j0;
    for (int panels; j0 < j1; j0 += 16 * panels) {
        const int n = j1 - j0 < 16 ? j1 - j0 : 16;      /* an edge panel: fewer */
        panels = active == 1 && j0 + 32 <= j1 ? 2 : 1;    /* a single row: two at a time */
        SC_GRU_TILES_FULL(active, panels, j0, n, H, Hp, Upk + (long)j0 * H, gs, bh, AX, h,
                          valid, y, An_store, rmask, Hp_next, H_next);
    }
    j0 = j1;
    /* the masked rows past the last valid one, units [first, j0): what the unfused path
     * leaves there (An: the recurrent bias's n block; y zero; the states passed on) */
    long o = (long)active * H;
    for (int b = active; b < rows; b++) {
        SC_T *an = An_store ? An_store + (long)b * H : NULL;
        if (bh) SC_COPY_UNITS(an, bh + 2 * H, first, j0);
        else SC_ZERO_UNITS(an, first, j0);
    }
    SC_NAME(sc_masked_rows_units)(rows, active, first, j0, H, h, y, rmask, Hp_next);
    if (H_next)
        SC_NAME(sc_masked_state_block)(rows - active, first, j0, H, h + o, NULL, H_next + o);
#else
    (void)rows; (void)active; (void)j1; (void)H; (void)Hp; (void)Upk; (void)bh; (void)AX;
    (void)h; (void)valid; (void)y; (void)An_store; (void)rmask; (void)Hp_next; (void)H_next;
#endif
    return j0;
}
