"""Metrics reported by fit/evaluate: weighted means over the same entries as the loss."""
import numpy as np

from . import losses

__all__ = ["get"]


def _mean(values, weights):
    if weights is None:
        return float(values.mean()) if values.size else 0.0
    w = np.broadcast_to(weights, values.shape)
    total = w.sum()
    return float((values * w).sum() / total) if total else 0.0


def _accuracy_for(loss):
    """Keras's 'accuracy': the kind that fits the loss."""
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return lambda y, p, w: _mean(p.argmax(axis=-1) == np.asarray(y).reshape(
            p.shape[:-1]), w)
    if isinstance(loss, losses.CategoricalCrossentropy):
        return lambda y, p, w: _mean(p.argmax(axis=-1) == np.asarray(y).argmax(axis=-1), w)
    threshold = 0.0 if getattr(loss, "from_logits", False) else 0.5
    return lambda y, p, w: _mean(((p > threshold) == (np.asarray(y).reshape(p.shape) > 0.5))
                                 .mean(axis=-1), w)


def get(name, loss):
    """(display name, fn(y_true, y_pred, weights) -> float) for 'accuracy', 'mse' or 'mae'."""
    if name in ("accuracy", "acc"):
        return "accuracy", _accuracy_for(loss)
    if name in ("mse", "mae", "mean_squared_error", "mean_absolute_error"):
        fn = losses.get(name)
        return fn.name if name.startswith("mean") else name, lambda y, p, w: fn(y, p, w)[0]
    raise ValueError(f"metrics: expected 'accuracy', 'mse' or 'mae', got {name!r}")
