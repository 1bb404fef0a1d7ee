"""Losses: each returns (value, d value / d y_pred) for a batch.

Reduction as Keras's default: the per-entry losses (one per sample, or per sample and time step
for sequence outputs; the last axis holds the features) are averaged, over the valid entries
only when `weights` (a 0/1 mask, e.g. of padded steps) is given. Cross-entropies take
probabilities (clipped to [1e-7, 1 - 1e-7] as Keras does) or, with from_logits=True, logits
through numerically stable log-sum-exp forms.
"""
import numpy as np

from .activations import sigmoid

__all__ = ["Loss", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy",
           "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "get"]

EPSILON = 1e-7


def _log_softmax(a):
    shifted = a - a.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class Loss:
    name = "loss"

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred, weights=None):
        y_pred = np.asarray(y_pred)
        y_true = self._check_target(np.asarray(y_true), y_pred)
        per_entry, grad = self._entries(y_true, y_pred)   # (entries...), d / d y_pred
        if weights is None:
            w = np.ones(per_entry.shape, y_pred.dtype)
        else:
            w = np.broadcast_to(np.asarray(weights, y_pred.dtype), per_entry.shape)
        total = w.sum()
        if total == 0:
            return 0.0, np.zeros_like(y_pred)
        value = float((per_entry * w).sum() / total)
        grad = grad * (w / total)[..., None]
        return value, grad.astype(y_pred.dtype, copy=False)

    def _check_target(self, y_true, y_pred):
        if y_true.shape != y_pred.shape:
            if y_true.shape == y_pred.shape[:-1] and y_pred.shape[-1:] == (1,):
                return y_true[..., None]
            raise ValueError(f"{self.name}: y_true: expected shape {y_pred.shape} (as the "
                             f"model's output), got {y_true.shape}")
        return y_true

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def _entries(self, y, p):
        diff = p - y
        return (diff ** 2).mean(axis=-1), 2 * diff / p.shape[-1]


class MeanAbsoluteError(Loss):
    name = "mean_absolute_error"

    def _entries(self, y, p):
        diff = p - y
        return np.abs(diff).mean(axis=-1), np.sign(diff) / p.shape[-1]


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"

    def _entries(self, y, p):
        F = p.shape[-1]
        if self.from_logits:
            # max(a, 0) - a y + log(1 + exp(-|a|)): no overflow for any a
            per = np.maximum(p, 0) - p * y + np.log1p(np.exp(-np.abs(p)))
            return per.mean(axis=-1), (sigmoid(p) - y) / F
        q = np.clip(p, EPSILON, 1 - EPSILON)
        per = -(y * np.log(q) + (1 - y) * np.log(1 - q))
        inside = (p > EPSILON) & (p < 1 - EPSILON)
        return per.mean(axis=-1), inside * (q - y) / (q * (1 - q)) / F


class SparseCategoricalCrossentropy(Loss):
    """y_true: integer classes, shape y_pred.shape[:-1]."""
    name = "sparse_categorical_crossentropy"

    def _check_target(self, y_true, y_pred):
        if y_true.shape == y_pred.shape[:-1] + (1,):
            y_true = y_true[..., 0]
        if y_true.shape != y_pred.shape[:-1]:
            raise ValueError(f"{self.name}: y_true: expected integer classes of shape "
                             f"{y_pred.shape[:-1]}, got {y_true.shape}")
        if y_true.dtype.kind == "f" and np.all(np.mod(y_true, 1) == 0):
            y_true = y_true.astype(np.int64)
        if y_true.dtype.kind not in "iu":
            raise TypeError(f"{self.name}: y_true: expected integer classes, got {y_true.dtype}")
        if y_true.size and (y_true.min() < 0 or y_true.max() >= y_pred.shape[-1]):
            raise ValueError(f"{self.name}: y_true: classes must be in [0, "
                             f"{y_pred.shape[-1]}), got {y_true.min()}..{y_true.max()}")
        return y_true

    def _entries(self, y, p):
        onehot = np.zeros_like(p)
        np.put_along_axis(onehot, y[..., None], 1, axis=-1)
        return CategoricalCrossentropy._cross_entropy(self, onehot, p)


class CategoricalCrossentropy(Loss):
    """y_true: one-hot (or soft) targets, the shape of y_pred."""
    name = "categorical_crossentropy"

    def _entries(self, y, p):
        return self._cross_entropy(y, p)

    def _cross_entropy(self, y, p):
        if self.from_logits:
            logp = _log_softmax(p)
            return -(y * logp).sum(axis=-1), np.exp(logp) * y.sum(axis=-1, keepdims=True) - y
        s = p.sum(axis=-1, keepdims=True)
        q = np.clip(p / s, EPSILON, 1 - EPSILON)
        per = -(y * np.log(q)).sum(axis=-1)
        # d/dp_j of -sum_k y_k log(p_k / s) = -y_j / p_j + sum(y) / s
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = np.where(y != 0, -y / np.maximum(p, EPSILON * s), 0) + y.sum(
                axis=-1, keepdims=True) / s
        return per, grad


_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
}


def get(loss):
    """A Loss from a Loss object or one of the names in _BY_NAME."""
    if isinstance(loss, Loss):
        return loss
    if loss not in _BY_NAME:
        raise ValueError(f"loss: expected a seqcore.losses.Loss or one of {sorted(_BY_NAME)}, "
                         f"got {loss!r}")
    return _BY_NAME[loss]()
