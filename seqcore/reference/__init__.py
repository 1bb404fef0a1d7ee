"""Plain NumPy reference implementations: the executable specification of every cell.

Time-major (T, B, F) arrays, weights in the Keras layout (DESIGN.md section 2), float32 or
float64 (computed in the dtype of x). `seqcore.ops` exposes kernels with the same
signatures, so a test can swap one module for the other.
"""
from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_backward, rnn_forward

__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
           "rnn_forward", "rnn_backward"]
