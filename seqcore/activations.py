"""Activations of Dense layers: forward, and the gradient written in terms of the output y
(each is cheaper that way and backward then needs only what forward returned)."""
import numpy as np

__all__ = ["get", "sigmoid", "NAMES"]


def sigmoid(a):
    # exp of a non-positive argument only, so no overflow warnings for large |a|
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_FORWARD = {
    "linear": lambda a: a,
    "relu": lambda a: np.maximum(a, 0),
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "softmax": _softmax,
}

# d loss / d a from dy = d loss / d y and the output y
_BACKWARD = {
    "linear": lambda dy, y: dy,
    "relu": lambda dy, y: dy * (y > 0),
    "tanh": lambda dy, y: dy * (1 - y * y),
    "sigmoid": lambda dy, y: dy * y * (1 - y),
    "softmax": lambda dy, y: y * (dy - (dy * y).sum(axis=-1, keepdims=True)),
}

NAMES = tuple(_FORWARD)


def get(name):
    """(forward, backward) of the activation called `name`; None means linear."""
    name = "linear" if name is None else name
    if name not in _FORWARD:
        raise ValueError(f"activation: expected one of {NAMES} or None, got {name!r}")
    return _FORWARD[name], _BACKWARD[name]
