"""Simple (Elman) RNN, one layer, one direction, in plain NumPy: the specification the
kernels are tested against.

Keras layout: kernel (I, H), recurrent_kernel (H, H), bias (H,) or None.
Step t:  Ht = act(Xt @ W + Hp @ U + b),  act in {tanh, relu}.
A masked step keeps the state and outputs zero.
"""
import numpy as np

from ._common import bias_sum, keep_where, output_gradients, prepare, time_steps

ACTIVATIONS = ("tanh", "relu")


def _activate(A, activation):
    return np.tanh(A) if activation == "tanh" else np.maximum(A, 0)


def _activation_grad(Ht, activation):
    """d act / d A, written in terms of the output Ht = act(A)."""
    return 1 - Ht ** 2 if activation == "tanh" else (Ht > 0).astype(Ht.dtype)


def rnn_forward(x, kernel, recurrent_kernel, bias, h0=None, mask=None, input_mask=None,
                recurrent_mask=None, reverse=False, activation="tanh"):
    """Run a simple RNN layer over a time-major sequence.

    x: (T, B, I); h0: (B, H) or None; mask: (T, B) bool or None; input_mask (B, I) and
    recurrent_mask (B, H): already scaled dropout masks, or None.
    Returns (outputs (T, B, H), h_n, cache).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    x = np.asarray(x)
    T, B, I = x.shape
    H = recurrent_kernel.shape[0]
    (h,), mask, input_mask, recurrent_mask = prepare(
        x, H, (h0,), mask, input_mask, recurrent_mask)
    b = np.zeros(H, x.dtype) if bias is None else bias

    outputs = np.zeros((T, B, H), x.dtype)
    cache = dict(kernel=kernel, recurrent_kernel=recurrent_kernel, has_bias=bias is not None,
                 activation=activation, mask=mask, input_mask=input_mask,
                 recurrent_mask=recurrent_mask, reverse=reverse,
                 X=np.zeros((T, B, I), x.dtype), Hp=np.zeros((T, B, H), x.dtype),
                 H=np.zeros((T, B, H), x.dtype))
    for t in time_steps(T, reverse):
        Mt = mask[t]
        Xt = x[t] * input_mask
        Hp = h * recurrent_mask
        Ht = _activate(Xt @ kernel + Hp @ recurrent_kernel + b, activation)
        cache["X"][t], cache["Hp"][t], cache["H"][t] = Xt, Hp, Ht
        outputs[t] = np.where(Mt, Ht, 0)
        h = keep_where(Mt, Ht, h)
    return outputs, h, cache


def rnn_backward(d_outputs, d_h_n, cache):
    """Gradients of an rnn_forward call.

    d_outputs: (T, B, H) or None; d_h_n: (B, H) or None.
    Returns (dx, d_kernel, d_recurrent_kernel, d_bias or None, d_h0).
    """
    W, U = cache["kernel"], cache["recurrent_kernel"]
    mask, X = cache["mask"], cache["X"]
    T, B, I = X.shape
    H = U.shape[0]
    dh = np.zeros((B, H), X.dtype) if d_h_n is None else np.array(d_h_n, X.dtype)
    dx = np.zeros((T, B, I), X.dtype)
    dW, dU = np.zeros_like(W), np.zeros_like(U)
    dA = np.zeros((T, B, H), X.dtype)
    d_outputs = output_gradients(d_outputs, (T, B, H), X.dtype)
    for t in time_steps(T, not cache["reverse"]):
        Mt = mask[t]
        dHt = np.where(Mt, dh + d_outputs[t], 0)
        # Ht = act(At), At = Xt @ W + Hp @ U + b
        dAt = dHt * _activation_grad(cache["H"][t], cache["activation"])
        dA[t] = dAt
        dW += X[t].T @ dAt
        dU += cache["Hp"][t].T @ dAt
        dx[t] = (dAt @ W.T) * cache["input_mask"]
        dh = np.where(Mt, (dAt @ U.T) * cache["recurrent_mask"], dh)
    db = bias_sum(dA) if cache["has_bias"] else None
    return dx, dW, dU, db, dh
