/* The fused pointwise passes of one time step, written once and included by cells.h for each
 * precision (SC_T, SC_NAME, SC_SIGMOID, SC_TANH defined there). No include guard on purpose.
 *
 * Every function works on rows [0, rows) and hidden units [j0, j1) of one step, so threads can
 * split a step by units. Gate blocks follow the Keras layout: a row of pre-activations holds
 * G blocks of H units. `valid[b]` is the step's mask for row b: a masked row keeps its state,
 * outputs zero, and gets zero pre-activation gradients. Optional outputs may be NULL.
 * Notation as in seqcore/reference (thinc style).
 */

/* ===================================== LSTM ===================================== */

/* Z holds Xt W + Hp U + b (ld 4H): replaced by the activations i, f, g, o. c, h (ld H): state,
 * updated for valid rows. y: the step's output row block (ld H) or NULL. c_store: where training
 * keeps the carried cell state after this step (ld H) or NULL. */
SC_DISPATCH static void SC_NAME(sc_lstm_forward_block)(
        int rows, int j0, int j1, int H, SC_T *Z, SC_T *c, SC_T *h,
        const unsigned char *valid, SC_T *y, SC_T *c_store) {
    for (int b = 0; b < rows; b++) {
        SC_T *zi = Z + (long)b * 4 * H, *zf = zi + H, *zg = zi + 2 * H, *zo = zi + 3 * H;
        SC_T *cb = c + (long)b * H, *hb = h + (long)b * H;
        SC_T *yb = y ? y + (long)b * H : NULL, *sb = c_store ? c_store + (long)b * H : NULL;
        if (!valid[b]) {
            for (int j = j0; j < j1; j++) {
                if (yb) yb[j] = 0;
                if (sb) sb[j] = cb[j];
            }
            continue;
        }
        for (int j = j0; j < j1; j++) {
            SC_T It = SC_SIGMOID(zi[j]), Ft = SC_SIGMOID(zf[j]);
            SC_T Gt = SC_TANH(zg[j]), Ot = SC_SIGMOID(zo[j]);
            SC_T Ct = Ft * cb[j] + It * Gt;
            SC_T Ht = Ot * SC_TANH(Ct);
            zi[j] = It; zf[j] = Ft; zg[j] = Gt; zo[j] = Ot;
            cb[j] = Ct;
            hb[j] = Ht;
            if (yb) yb[j] = Ht;
            if (sb) sb[j] = Ct;
        }
    }
}

/* A: activations i, f, g, o of the step (ld 4H). C: cell state after the step, Cp: before it
 * (ld H). dy: gradient of the step's output or NULL. dh, dc: gradients w.r.t. the state after
 * the step, on return w.r.t. the state before it (dh: only its direct part, which is zero for
 * the LSTM; the recurrent part dZ U^T is added by sc_add_recurrent_grad). dZ: pre-activation
 * gradients (ld 4H). */
SC_DISPATCH static void SC_NAME(sc_lstm_backward_block)(
        int rows, int j0, int j1, int H, const SC_T *A, const SC_T *C, const SC_T *Cp,
        const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dc, SC_T *dZ) {
    for (int b = 0; b < rows; b++) {
        const SC_T *Ib = A + (long)b * 4 * H, *Fb = Ib + H, *Gb = Ib + 2 * H, *Ob = Ib + 3 * H;
        const SC_T *Cb = C + (long)b * H, *Cpb = Cp + (long)b * H;
        const SC_T *dyb = dy ? dy + (long)b * H : NULL;
        SC_T *dhb = dh + (long)b * H, *dcb = dc + (long)b * H;
        SC_T *dI = dZ + (long)b * 4 * H, *dF = dI + H, *dG = dI + 2 * H, *dO = dI + 3 * H;
        if (!valid[b]) {
            for (int j = j0; j < j1; j++) dI[j] = dF[j] = dG[j] = dO[j] = 0;
            continue;
        }
        for (int j = j0; j < j1; j++) {
            SC_T It = Ib[j], Ft = Fb[j], Gt = Gb[j], Ot = Ob[j];
            SC_T dHt = dhb[j] + (dyb ? dyb[j] : 0);
            SC_T tanhCt = SC_TANH(Cb[j]);
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
SC_DISPATCH static void SC_NAME(sc_gru_forward_block)(
        int rows, int j0, int j1, int H, SC_T *AX, const SC_T *AH, SC_T *h,
        const unsigned char *valid, SC_T *y, SC_T *An_store) {
    for (int b = 0; b < rows; b++) {
        SC_T *xz = AX + (long)b * 3 * H, *xr = xz + H, *xn = xz + 2 * H;
        const SC_T *hz = AH + (long)b * 3 * H, *hr = hz + H, *hn = hz + 2 * H;
        SC_T *hb = h + (long)b * H;
        SC_T *yb = y ? y + (long)b * H : NULL, *ab = An_store ? An_store + (long)b * H : NULL;
        if (!valid[b]) {
            if (yb) for (int j = j0; j < j1; j++) yb[j] = 0;
            continue;
        }
        for (int j = j0; j < j1; j++) {
            SC_T Zt = SC_SIGMOID(xz[j] + hz[j]);
            SC_T Rt = SC_SIGMOID(xr[j] + hr[j]);
            SC_T Nt = SC_TANH(xn[j] + Rt * hn[j]);
            SC_T Ht = (1 - Zt) * Nt + Zt * hb[j];
            xz[j] = Zt; xr[j] = Rt; xn[j] = Nt;
            hb[j] = Ht;
            if (yb) yb[j] = Ht;
            if (ab) ab[j] = hn[j];
        }
    }
}

/* A: activations z, r, n (ld 3H); An: recurrent n pre-activation (ld H); Hin: state before
 * the step (ld H). Writes dAX (input pre-activation gradients) and dAH (gradients of Hp U + bh),
 * both ld 3H; dh becomes its direct part dHt * z for valid rows. */
SC_DISPATCH static void SC_NAME(sc_gru_backward_block)(
        int rows, int j0, int j1, int H, const SC_T *A, const SC_T *An, const SC_T *Hin,
        const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dAX, SC_T *dAH) {
    for (int b = 0; b < rows; b++) {
        const SC_T *Zb = A + (long)b * 3 * H, *Rb = Zb + H, *Nb = Zb + 2 * H;
        const SC_T *Anb = An + (long)b * H, *hb = Hin + (long)b * H;
        const SC_T *dyb = dy ? dy + (long)b * H : NULL;
        SC_T *dhb = dh + (long)b * H;
        SC_T *dxz = dAX + (long)b * 3 * H, *dxr = dxz + H, *dxn = dxz + 2 * H;
        SC_T *dhz = dAH + (long)b * 3 * H, *dhr = dhz + H, *dhn = dhz + 2 * H;
        if (!valid[b]) {
            for (int j = j0; j < j1; j++) dxz[j] = dxr[j] = dxn[j] = dhz[j] = dhr[j] = dhn[j] = 0;
            continue;
        }
        for (int j = j0; j < j1; j++) {
            SC_T Zt = Zb[j], Rt = Rb[j], Nt = Nb[j];
            SC_T dHt = dhb[j] + (dyb ? dyb[j] : 0);
            /* Ht = (1 - Zt) * Nt + Zt * h */
            SC_T dAz = dHt * (hb[j] - Nt) * Zt * (1 - Zt);
            SC_T dAn = dHt * (1 - Zt) * (1 - Nt * Nt);
            /* Nt = tanh(Ax_n + Rt * An) */
            SC_T dAr = dAn * Anb[j] * Rt * (1 - Rt);
            dxz[j] = dhz[j] = dAz;
            dxr[j] = dhr[j] = dAr;
            dxn[j] = dAn;
            dhn[j] = dAn * Rt;
            dhb[j] = dHt * Zt;
        }
    }
}

/* ============================ GRU, reset_after=False ============================ */

/* Phase 1 of a step. AX: Xt W + b (ld 3H), its z, r blocks replaced by the activations.
 * AZR: Hp U_zr (ld 2H). Hp: state as the recurrent product sees it (ld H). Writes
 * RH = Rt * Hp (ld H), the input of the n block's recurrent product. */
SC_DISPATCH static void SC_NAME(sc_gru1_gates_block)(
        int rows, int j0, int j1, int H, SC_T *AX, const SC_T *AZR, const SC_T *Hp, SC_T *RH) {
    for (int b = 0; b < rows; b++) {
        SC_T *xz = AX + (long)b * 3 * H, *xr = xz + H;
        const SC_T *hz = AZR + (long)b * 2 * H, *hr = hz + H, *hpb = Hp + (long)b * H;
        SC_T *rhb = RH + (long)b * H;
        for (int j = j0; j < j1; j++) {
            SC_T Zt = SC_SIGMOID(xz[j] + hz[j]);
            SC_T Rt = SC_SIGMOID(xr[j] + hr[j]);
            xz[j] = Zt; xr[j] = Rt;
            rhb[j] = Rt * hpb[j];
        }
    }
}

/* Phase 2. AN: RH U_n (ld H). Writes n into AX's n block and updates h for valid rows. */
SC_DISPATCH static void SC_NAME(sc_gru1_forward_block)(
        int rows, int j0, int j1, int H, SC_T *AX, const SC_T *AN, SC_T *h,
        const unsigned char *valid, SC_T *y) {
    for (int b = 0; b < rows; b++) {
        SC_T *xz = AX + (long)b * 3 * H, *xn = xz + 2 * H;
        const SC_T *anb = AN + (long)b * H;
        SC_T *hb = h + (long)b * H, *yb = y ? y + (long)b * H : NULL;
        if (!valid[b]) {
            if (yb) for (int j = j0; j < j1; j++) yb[j] = 0;
            continue;
        }
        for (int j = j0; j < j1; j++) {
            SC_T Zt = xz[j];
            SC_T Nt = SC_TANH(xn[j] + anb[j]);
            SC_T Ht = (1 - Zt) * Nt + Zt * hb[j];
            xn[j] = Nt;
            hb[j] = Ht;
            if (yb) yb[j] = Ht;
        }
    }
}

/* Backward phase A: the z and n pre-activation gradients into dAX (ld 3H; r block zeroed,
 * filled by phase B), dh's direct part dHt * z. */
SC_DISPATCH static void SC_NAME(sc_gru1_backward_a_block)(
        int rows, int j0, int j1, int H, const SC_T *A, const SC_T *Hin,
        const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dAX) {
    for (int b = 0; b < rows; b++) {
        const SC_T *Zb = A + (long)b * 3 * H, *Nb = Zb + 2 * H, *hb = Hin + (long)b * H;
        const SC_T *dyb = dy ? dy + (long)b * H : NULL;
        SC_T *dhb = dh + (long)b * H;
        SC_T *dxz = dAX + (long)b * 3 * H, *dxr = dxz + H, *dxn = dxz + 2 * H;
        if (!valid[b]) {
            for (int j = j0; j < j1; j++) dxz[j] = dxr[j] = dxn[j] = 0;
            continue;
        }
        for (int j = j0; j < j1; j++) {
            SC_T Zt = Zb[j], Nt = Nb[j];
            SC_T dHt = dhb[j] + (dyb ? dyb[j] : 0);
            dxz[j] = dHt * (hb[j] - Nt) * Zt * (1 - Zt);
            dxn[j] = dHt * (1 - Zt) * (1 - Nt * Nt);
            dxr[j] = 0;
            dhb[j] = dHt * Zt;
        }
    }
}

/* Backward phase B. dRH: gradient of RH = Rt * Hp (dAX_n U_n^T, ld H). Fills dAX's r block
 * and writes dHp = dRH * Rt, the part of Hp's gradient that goes through RH (ld H).
 * Masked rows have dAX_n = 0, hence dRH = 0, and need no special case. */
SC_DISPATCH static void SC_NAME(sc_gru1_backward_b_block)(
        int rows, int j0, int j1, int H, const SC_T *A, const SC_T *Hp, const SC_T *dRH,
        SC_T *dAX, SC_T *dHp) {
    for (int b = 0; b < rows; b++) {
        const SC_T *Rb = A + (long)b * 3 * H + H, *hpb = Hp + (long)b * H;
        const SC_T *drb = dRH + (long)b * H;
        SC_T *dxr = dAX + (long)b * 3 * H + H, *dhpb = dHp + (long)b * H;
        for (int j = j0; j < j1; j++) {
            SC_T Rt = Rb[j];
            dxr[j] = drb[j] * hpb[j] * Rt * (1 - Rt);
            dhpb[j] = drb[j] * Rt;
        }
    }
}

/* ================================ simple RNN ================================ */

/* A: Xt W + Hp U + b (ld H), replaced by Ht = act(A); relu if `relu`, else tanh. */
SC_DISPATCH static void SC_NAME(sc_rnn_forward_block)(
        int rows, int j0, int j1, int H, SC_T *A, SC_T *h, const unsigned char *valid,
        SC_T *y, int relu) {
    for (int b = 0; b < rows; b++) {
        SC_T *ab = A + (long)b * H, *hb = h + (long)b * H, *yb = y ? y + (long)b * H : NULL;
        if (!valid[b]) {
            if (yb) for (int j = j0; j < j1; j++) yb[j] = 0;
            continue;
        }
        for (int j = j0; j < j1; j++) {
            SC_T Ht = relu ? (ab[j] > 0 ? ab[j] : 0) : SC_TANH(ab[j]);
            ab[j] = Ht;
            hb[j] = Ht;
            if (yb) yb[j] = Ht;
        }
    }
}

/* Hact: the step's activations (ld H). Writes dA; dh's direct part is zero. */
SC_DISPATCH static void SC_NAME(sc_rnn_backward_block)(
        int rows, int j0, int j1, int H, const SC_T *Hact, const unsigned char *valid,
        const SC_T *dy, SC_T *dh, SC_T *dA, int relu) {
    for (int b = 0; b < rows; b++) {
        const SC_T *hb = Hact + (long)b * H, *dyb = dy ? dy + (long)b * H : NULL;
        SC_T *dhb = dh + (long)b * H, *dab = dA + (long)b * H;
        if (!valid[b]) {
            for (int j = j0; j < j1; j++) dab[j] = 0;
            continue;
        }
        for (int j = j0; j < j1; j++) {
            SC_T dHt = dhb[j] + (dyb ? dyb[j] : 0);
            SC_T Ht = hb[j];
            dab[j] = dHt * (relu ? (SC_T)(Ht > 0) : 1 - Ht * Ht);
            dhb[j] = 0;
        }
    }
}

/* ================================ shared ================================ */

/* dh += dHp * rmask for valid rows: the recurrent part of the state gradient (dHp = dZ U^T,
 * ld H; rmask: the recurrent dropout mask of row b, or NULL). Masked rows pass dh through. */
SC_DISPATCH static void SC_NAME(sc_add_recurrent_grad_block)(
        int rows, int j0, int j1, int H, const SC_T *dHp, const SC_T *rmask,
        const unsigned char *valid, SC_T *dh) {
    for (int b = 0; b < rows; b++) {
        if (!valid[b]) continue;
        const SC_T *gb = dHp + (long)b * H, *mb = rmask ? rmask + (long)b * H : NULL;
        SC_T *dhb = dh + (long)b * H;
        for (int j = j0; j < j1; j++) dhb[j] += mb ? gb[j] * mb[j] : gb[j];
    }
}

/* Hp = h * rmask (or a copy of h when rmask is NULL), ld H. */
SC_DISPATCH static void SC_NAME(sc_masked_state_block)(
        int rows, int j0, int j1, int H, const SC_T *h, const SC_T *rmask, SC_T *Hp) {
    for (int b = 0; b < rows; b++) {
        const SC_T *hb = h + (long)b * H, *mb = rmask ? rmask + (long)b * H : NULL;
        SC_T *pb = Hp + (long)b * H;
        for (int j = j0; j < j1; j++) pb[j] = mb ? hb[j] * mb[j] : hb[j];
    }
}

/* ============== entry points: the pass split over threads by hidden units ============== */

static void SC_NAME(sc_lstm_forward)(int n_threads, int rows, int H, SC_T *Z, SC_T *c, SC_T *h, const unsigned char *valid, SC_T *y, SC_T *c_store) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_lstm_forward_block)(rows, j0, j1, H, Z, c, h, valid, y, c_store));
}

static void SC_NAME(sc_lstm_backward)(int n_threads, int rows, int H, const SC_T *A, const SC_T *C, const SC_T *Cp, const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dc, SC_T *dZ) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_lstm_backward_block)(rows, j0, j1, H, A, C, Cp, valid, dy, dh, dc, dZ));
}

static void SC_NAME(sc_gru_forward)(int n_threads, int rows, int H, SC_T *AX, const SC_T *AH, SC_T *h, const unsigned char *valid, SC_T *y, SC_T *An_store) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_gru_forward_block)(rows, j0, j1, H, AX, AH, h, valid, y, An_store));
}

static void SC_NAME(sc_gru_backward)(int n_threads, int rows, int H, const SC_T *A, const SC_T *An, const SC_T *Hin, const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dAX, SC_T *dAH) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_gru_backward_block)(rows, j0, j1, H, A, An, Hin, valid, dy, dh, dAX, dAH));
}

static void SC_NAME(sc_gru1_gates)(int n_threads, int rows, int H, SC_T *AX, const SC_T *AZR, const SC_T *Hp, SC_T *RH) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_gru1_gates_block)(rows, j0, j1, H, AX, AZR, Hp, RH));
}

static void SC_NAME(sc_gru1_forward)(int n_threads, int rows, int H, SC_T *AX, const SC_T *AN, SC_T *h, const unsigned char *valid, SC_T *y) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_gru1_forward_block)(rows, j0, j1, H, AX, AN, h, valid, y));
}

static void SC_NAME(sc_gru1_backward_a)(int n_threads, int rows, int H, const SC_T *A, const SC_T *Hin, const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dAX) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_gru1_backward_a_block)(rows, j0, j1, H, A, Hin, valid, dy, dh, dAX));
}

static void SC_NAME(sc_gru1_backward_b)(int n_threads, int rows, int H, const SC_T *A, const SC_T *Hp, const SC_T *dRH, SC_T *dAX, SC_T *dHp) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_gru1_backward_b_block)(rows, j0, j1, H, A, Hp, dRH, dAX, dHp));
}

static void SC_NAME(sc_rnn_forward)(int n_threads, int rows, int H, SC_T *A, SC_T *h, const unsigned char *valid, SC_T *y, int relu) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_rnn_forward_block)(rows, j0, j1, H, A, h, valid, y, relu));
}

static void SC_NAME(sc_rnn_backward)(int n_threads, int rows, int H, const SC_T *Hact, const unsigned char *valid, const SC_T *dy, SC_T *dh, SC_T *dA, int relu) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_rnn_backward_block)(rows, j0, j1, H, Hact, valid, dy, dh, dA, relu));
}

static void SC_NAME(sc_add_recurrent_grad)(int n_threads, int rows, int H, const SC_T *dHp, const SC_T *rmask, const unsigned char *valid, SC_T *dh) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_add_recurrent_grad_block)(rows, j0, j1, H, dHp, rmask, valid, dh));
}

static void SC_NAME(sc_masked_state)(int n_threads, int rows, int H, const SC_T *h, const SC_T *rmask, SC_T *Hp) {
    SC_FOR_UNIT_BLOCKS(n_threads, H, j0, j1, SC_NAME(sc_masked_state_block)(rows, j0, j1, H, h, rmask, Hp));
}
