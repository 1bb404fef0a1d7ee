"""GRU, one layer, one direction, in plain NumPy: the specification the kernels are tested against.

Keras layout and gate order (DESIGN.md section 2): kernel (I, 3H), recurrent_kernel (H, 3H),
gates z, r, n(=h). Bias: (2, 3H) [input bias; recurrent bias] with reset_after=True,
(3H,) with reset_after=False, or None.

Step t (h: state entering the step, Hp = h * recurrent_mask):
  reset_after=True (PyTorch, cuDNN, Keras default):
    Ax = Xt @ W + bx;  Ah = Hp @ U + bh
    Zt, Rt = sigmoid(Ax_z + Ah_z), sigmoid(Ax_r + Ah_r)
    Nt = tanh(Ax_n + Rt * Ah_n)
  reset_after=False (Cho et al. 2014):
    Ax = Xt @ W + b
    Zt, Rt = sigmoid(Ax_z + Hp @ U_z), sigmoid(Ax_r + Hp @ U_r)
    Nt = tanh(Ax_n + (Rt * Hp) @ U_n)
  Ht = (1 - Zt) * Nt + Zt * h
A masked step keeps h and outputs zero.
"""
import numpy as np

from ._common import (bias_sum, keep_where, output_gradients, prepare, sigmoid,
                      time_steps)


def _split_bias(bias, H, reset_after, dtype):
    """(input bias (3H,), recurrent bias (3H,)); the recurrent one is zero without reset_after."""
    zeros = np.zeros(3 * H, dtype)
    if bias is None:
        return zeros, zeros
    if reset_after:
        return bias[0], bias[1]
    return bias, zeros


def gru_forward(x, kernel, recurrent_kernel, bias, h0=None, mask=None, input_mask=None,
                recurrent_mask=None, reverse=False, reset_after=True):
    """Run a GRU layer over a time-major sequence.

    x: (T, B, I); h0: (B, H) or None; mask: (T, B) bool or None; input_mask (B, I) and
    recurrent_mask (B, H): already scaled dropout masks, or None.
    Returns (outputs (T, B, H), h_n, cache).
    """
    x = np.asarray(x)
    T, B, I = x.shape
    H = recurrent_kernel.shape[0]
    (h,), mask, input_mask, recurrent_mask = prepare(
        x, H, (h0,), mask, input_mask, recurrent_mask)
    bx, bh = _split_bias(bias, H, reset_after, x.dtype)
    U_zr, U_n = recurrent_kernel[:, :2 * H], recurrent_kernel[:, 2 * H:]

    outputs = np.zeros((T, B, H), x.dtype)
    cache = dict(kernel=kernel, recurrent_kernel=recurrent_kernel, has_bias=bias is not None,
                 reset_after=reset_after, mask=mask, input_mask=input_mask,
                 recurrent_mask=recurrent_mask, reverse=reverse,
                 X=np.zeros((T, B, I), x.dtype), Hprev=np.zeros((T, B, H), x.dtype),
                 Hp=np.zeros((T, B, H), x.dtype), gates=np.zeros((T, B, 3 * H), x.dtype),
                 An=np.zeros((T, B, H), x.dtype))
    for t in time_steps(T, reverse):
        Mt = mask[t]
        Xt = x[t] * input_mask
        Hp = h * recurrent_mask
        Ax = Xt @ kernel + bx
        if reset_after:
            Ah = Hp @ recurrent_kernel + bh
            Zt = sigmoid(Ax[:, :H] + Ah[:, :H])
            Rt = sigmoid(Ax[:, H:2 * H] + Ah[:, H:2 * H])
            An = Ah[:, 2 * H:]           # the recurrent part of n, before the reset gate
            Nt = np.tanh(Ax[:, 2 * H:] + Rt * An)
        else:
            Azr = Hp @ U_zr
            Zt = sigmoid(Ax[:, :H] + Azr[:, :H])
            Rt = sigmoid(Ax[:, H:2 * H] + Azr[:, H:])
            An = Rt * Hp                 # the reset state that multiplies U_n
            Nt = np.tanh(Ax[:, 2 * H:] + An @ U_n)
        Ht = (1 - Zt) * Nt + Zt * h

        cache["X"][t], cache["Hprev"][t], cache["Hp"][t], cache["An"][t] = Xt, h, Hp, An
        cache["gates"][t] = np.concatenate([Zt, Rt, Nt], axis=1)
        outputs[t] = np.where(Mt, Ht, 0)
        h = keep_where(Mt, Ht, h)
    return outputs, h, cache


def gru_backward(d_outputs, d_h_n, cache):
    """Gradients of a gru_forward call.

    d_outputs: (T, B, H) or None; d_h_n: (B, H) or None.
    Returns (dx, d_kernel, d_recurrent_kernel, d_bias or None, d_h0).
    """
    W, U = cache["kernel"], cache["recurrent_kernel"]
    mask, X, reset_after = cache["mask"], cache["X"], cache["reset_after"]
    T, B, I = X.shape
    H = U.shape[0]
    dtype = X.dtype
    U_zr, U_n = U[:, :2 * H], U[:, 2 * H:]
    dh = np.zeros((B, H), dtype) if d_h_n is None else np.array(d_h_n, dtype)
    dx = np.zeros((T, B, I), dtype)
    dW, dU = np.zeros_like(W), np.zeros_like(U)
    dAx_all = np.zeros((T, B, 3 * H), dtype)   # gradient of the input pre-activations
    dAh_all = np.zeros((T, B, 3 * H), dtype)   # gradient of Hp @ U + bh (reset_after only)

    d_outputs = output_gradients(d_outputs, (T, B, H), dtype)
    for t in time_steps(T, not cache["reverse"]):
        Mt = mask[t]
        Zt, Rt, Nt = np.split(cache["gates"][t], 3, axis=1)
        h, Hp, An = cache["Hprev"][t], cache["Hp"][t], cache["An"][t]
        # Ht = (1 - Zt) * Nt + Zt * h
        dHt = np.where(Mt, dh + d_outputs[t], 0)
        dZt = dHt * (h - Nt)
        dNt = dHt * (1 - Zt)
        dh_direct = dHt * Zt
        # Nt = tanh(Ax_n + ...): gradient of its pre-activation
        dAn_pre = dNt * (1 - Nt ** 2)
        dAz = dZt * Zt * (1 - Zt)
        if reset_after:
            # pre-activation n = Ax_n + Rt * An, An = (Hp @ U + bh)_n
            dAr = dAn_pre * An * Rt * (1 - Rt)
            dAh = np.concatenate([dAz, dAr, dAn_pre * Rt], axis=1)
            dAh_all[t] = dAh
            dU += Hp.T @ dAh
            dHp = dAh @ U.T
        else:
            # pre-activation n = Ax_n + An @ U_n, An = Rt * Hp
            dAn = dAn_pre @ U_n.T
            dAr = dAn * Hp * Rt * (1 - Rt)
            dAzr = np.concatenate([dAz, dAr], axis=1)
            dU[:, :2 * H] += Hp.T @ dAzr
            dU[:, 2 * H:] += An.T @ dAn_pre
            dHp = dAzr @ U_zr.T + dAn * Rt
        dAx = np.concatenate([dAz, dAr, dAn_pre], axis=1)
        dAx_all[t] = dAx
        dW += X[t].T @ dAx
        dx[t] = (dAx @ W.T) * cache["input_mask"]
        dh_prev = dh_direct + dHp * cache["recurrent_mask"]
        dh = np.where(Mt, dh_prev, dh)

    db = None
    if cache["has_bias"]:
        db = np.stack([bias_sum(dAx_all), bias_sum(dAh_all)]) if reset_after else bias_sum(dAx_all)
    return dx, dW, dU, db, dh
