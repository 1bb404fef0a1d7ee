"""LSTM, one layer, one direction, in plain NumPy: the specification the kernels are tested against.

Keras layout and gate order (DESIGN.md section 2):
    kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,) or None; gates i, f, c(=g), o.

Step t (Hp, Cp: state entering the step):
    Zt = Xt @ W + Hp @ U + b
    It, Ft, Ot = sigmoid(Zt_i, Zt_f, Zt_o);  Gt = tanh(Zt_g)
    Ct = Ft * Cp + It * Gt
    Ht = Ot * tanh(Ct)
A masked step keeps (Hp, Cp) and outputs zero.
"""
import numpy as np

from ._common import (bias_sum, keep_where, output_gradients, prepare, sigmoid,
                      time_steps)


def lstm_forward(x, kernel, recurrent_kernel, bias, h0=None, c0=None, mask=None,
                 input_mask=None, recurrent_mask=None, reverse=False):
    """Run an LSTM layer over a time-major sequence.

    x: (T, B, I); h0, c0: (B, H) or None for zeros; mask: (T, B) bool or None;
    input_mask: (B, I) and recurrent_mask: (B, H), already scaled dropout masks
    applied at every step, or None. Returns (outputs (T, B, H), h_n, c_n, cache).
    """
    x = np.asarray(x)
    T, B, I = x.shape
    H = recurrent_kernel.shape[0]
    (h, c), mask, input_mask, recurrent_mask = prepare(
        x, H, (h0, c0), mask, input_mask, recurrent_mask)
    b = np.zeros(4 * H, x.dtype) if bias is None else bias

    outputs = np.zeros((T, B, H), x.dtype)
    cache = dict(kernel=kernel, recurrent_kernel=recurrent_kernel, has_bias=bias is not None,
                 mask=mask, input_mask=input_mask, recurrent_mask=recurrent_mask,
                 reverse=reverse, X=np.zeros((T, B, I), x.dtype),
                 Hp=np.zeros((T, B, H), x.dtype), Cp=np.zeros((T, B, H), x.dtype),
                 gates=np.zeros((T, B, 4 * H), x.dtype), C=np.zeros((T, B, H), x.dtype))
    for t in time_steps(T, reverse):
        Mt = mask[t]
        Xt = x[t] * input_mask
        Hp = h * recurrent_mask
        Zt = Xt @ kernel + Hp @ recurrent_kernel + b
        It = sigmoid(Zt[:, 0 * H:1 * H])
        Ft = sigmoid(Zt[:, 1 * H:2 * H])
        Gt = np.tanh(Zt[:, 2 * H:3 * H])
        Ot = sigmoid(Zt[:, 3 * H:4 * H])
        Ct = Ft * c + It * Gt
        Ht = Ot * np.tanh(Ct)

        cache["X"][t], cache["Hp"][t], cache["Cp"][t], cache["C"][t] = Xt, Hp, c, Ct
        cache["gates"][t] = np.concatenate([It, Ft, Gt, Ot], axis=1)
        outputs[t] = np.where(Mt, Ht, 0)
        h = keep_where(Mt, Ht, h)
        c = keep_where(Mt, Ct, c)
    return outputs, h, c, cache


def lstm_backward(d_outputs, d_h_n, d_c_n, cache):
    """Gradients of an lstm_forward call.

    d_outputs: (T, B, H) or None; d_h_n, d_c_n: (B, H) or None for zeros.
    Returns (dx, d_kernel, d_recurrent_kernel, d_bias or None, d_h0, d_c0).
    """
    W, U = cache["kernel"], cache["recurrent_kernel"]
    mask, X = cache["mask"], cache["X"]
    T, B, I = X.shape
    H = U.shape[0]
    dtype = X.dtype
    dh = np.zeros((B, H), dtype) if d_h_n is None else np.array(d_h_n, dtype)
    dc = np.zeros((B, H), dtype) if d_c_n is None else np.array(d_c_n, dtype)
    dx = np.zeros((T, B, I), dtype)
    dW, dU = np.zeros_like(W), np.zeros_like(U)
    dZ = np.zeros((T, B, 4 * H), dtype)

    d_outputs = output_gradients(d_outputs, (T, B, H), dtype)
    for t in time_steps(T, not cache["reverse"]):
        Mt = mask[t]
        It, Ft, Gt, Ot = np.split(cache["gates"][t], 4, axis=1)
        Ct, Cp = cache["C"][t], cache["Cp"][t]
        # Ht = Ot * tanh(Ct) feeds both the output and the carried state.
        dHt = np.where(Mt, dh + d_outputs[t], 0)
        dCt = np.where(Mt, dc, 0)
        tanhCt = np.tanh(Ct)
        dOt = dHt * tanhCt
        dCt = dCt + dHt * Ot * (1 - tanhCt ** 2)
        # Ct = Ft * Cp + It * Gt
        dFt, dIt, dGt, dCp = dCt * Cp, dCt * Gt, dCt * It, dCt * Ft
        # through the activations to the pre-activations Zt
        dZt = np.concatenate([dIt * It * (1 - It), dFt * Ft * (1 - Ft),
                              dGt * (1 - Gt ** 2), dOt * Ot * (1 - Ot)], axis=1)
        dZ[t] = dZt
        # Zt = Xt @ W + Hp @ U + b, with Xt = x_t * input_mask and Hp = h * recurrent_mask
        dW += cache["X"][t].T @ dZt
        dU += cache["Hp"][t].T @ dZt
        dx[t] = (dZt @ W.T) * cache["input_mask"]
        dHp = (dZt @ U.T) * cache["recurrent_mask"]
        # a masked step passed its incoming state through unchanged
        dh = np.where(Mt, dHp, dh)
        dc = np.where(Mt, dCp, dc)
    db = bias_sum(dZ) if cache["has_bias"] else None
    return dx, dW, dU, db, dh, dc
