"""Pieces every reference cell shares: activations, the time scan order, and the
handling of masks and dropout masks.

Notation used by all reference modules (thinc style, "we are at step t"):
    Xt   input at step t after input dropout, (B, I)
    Hp   state entering step t, as used by the recurrent product (after
         recurrent dropout), (B, H)
    Ht   state leaving step t, (B, H)
    Mt   validity of step t per row, (B, 1) bool
"""
import numpy as np


def sigmoid(a):
    # Split by sign so that exp never overflows: for a < 0, 1/(1+e^-a) == e^a/(1+e^a).
    out = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    ea = np.exp(a[~pos])
    out[~pos] = ea / (1.0 + ea)
    return out


def time_steps(T, reverse):
    """The order in which steps are visited: 0..T-1, or T-1..0 for the reverse direction."""
    return range(T - 1, -1, -1) if reverse else range(T)


def prepare(x, H, initial_states, mask, input_mask, recurrent_mask):
    """Fill in defaults for the optional arguments of a forward call.

    Returns (states, mask, input_mask, recurrent_mask), where states is a list of
    (B, H) arrays (zeros when not given), mask is a (T, B, 1) bool array and the
    dropout masks are (B, I) / (B, H) arrays of ones when not given.
    """
    T, B, I = x.shape
    dtype = x.dtype
    states = [np.zeros((B, H), dtype) if s is None else np.array(s, dtype=dtype)
              for s in initial_states]
    mask = np.ones((T, B), bool) if mask is None else np.asarray(mask, bool)
    input_mask = np.ones((B, I), dtype) if input_mask is None else np.asarray(input_mask, dtype)
    recurrent_mask = (np.ones((B, H), dtype) if recurrent_mask is None
                      else np.asarray(recurrent_mask, dtype))
    return states, mask[:, :, None], input_mask, recurrent_mask


def keep_where(Mt, new, old):
    """A masked row keeps its old state; a valid row takes the new one."""
    return np.where(Mt, new, old)


def bias_sum(dZ):
    """Bias gradient of a pre-activation gradient dZ (..., B, G*H): sum over all rows."""
    return dZ.reshape(-1, dZ.shape[-1]).sum(axis=0)


def output_gradients(d_outputs, shape, dtype):
    """d_outputs as an array of `shape`; None (no loss on the outputs) means zeros."""
    return np.zeros(shape, dtype) if d_outputs is None else np.asarray(d_outputs, dtype)
