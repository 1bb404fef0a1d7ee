"""The layer protocol every layer follows (DESIGN.md section 2).

    out = layer(x, mask=None, lengths=None, initial_state=None, training=False)
    dx = layer.backward(d_out)       # after a call with training=True; fills layer.gradients
    layer.get_weights() / layer.set_weights(ws) / layer.count_params() / layer.get_config()

Layers hold policy (shapes, masks, dropout, directions) and no numerics of their own beyond a
matrix product: the recurrences run in seqcore.ops.
"""
import numpy as np

from ..ops import aligned_copy, bool_mask, lengths_to_mask

__all__ = ["Layer", "sequence_mask", "whole_number"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


def as_dtype(dtype):
    """'float32' / 'float64' (or the NumPy types) -> the NumPy type; anything else refused."""
    name = np.dtype(dtype).name if dtype is not None else "float32"
    if name not in _DTYPES:
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    return _DTYPES[name]


def whole_number(name, value, minimum=1):
    """value as an int if it is an integer (not a bool) >= minimum; else a ValueError naming
    the argument (sizes of layers, batch sizes, epochs)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return int(value)


def sequence_mask(mask, lengths, B, T):
    """The (B, T) bool mask of valid steps from `mask` (B, T) or `lengths` (B,), or None when
    both are None (every step valid). Giving both is an error."""
    if mask is not None and lengths is not None:
        raise ValueError("mask and lengths: give one of them, not both")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,):
            raise ValueError(f"lengths: expected shape (B,) = ({B},), got {lengths.shape}")
        return lengths_to_mask(lengths, T).T
    return None if mask is None else bool_mask(mask, (B, T), "(B, T)")


def dropout_mask(rng, rate, shape, dtype):
    """Inverted dropout: 0 with probability `rate`, else 1/(1 - rate); None when rate is 0."""
    if rate == 0.0:
        return None
    keep = (rng.random(shape) >= rate).astype(dtype)
    keep /= dtype(1.0 - rate)
    return keep


class Layer:
    """Base class: weights by name, lazy build on the first call, Keras-style config."""

    def __init__(self, name=None, dtype="float32"):
        self.dtype = as_dtype(dtype)
        self.name = name or type(self).__name__.lower()
        self.built = False
        self._weights = []            # arrays, updated in place by optimizers and set_weights
        self._weight_names = []
        self.gradients = None         # aligned with get_weights() after backward()
        self.input_shape = None

    # ---- building
    def add_weight(self, name, value):
        self._weights.append(aligned_copy(value, self.dtype))
        self._weight_names.append(name)

    def build(self, input_shape):
        """Create the weights for inputs of `input_shape` (the batch axis may be None)."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def _ensure_built(self, input_shape):
        if not self.built:
            self.build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        """The (B, T) mask the next layer receives, given this layer's input and its mask."""
        return mask

    # ---- calling
    def __call__(self, x, mask=None, lengths=None, initial_state=None, training=False):
        if initial_state is not None:
            raise TypeError(f"{self.name}: initial_state is only for recurrent layers")
        x = np.asarray(x)
        if lengths is not None:
            if x.ndim < 2:
                raise ValueError(f"{self.name}: lengths need inputs of shape (B, T, ...), "
                                 f"got {x.shape}")
            mask = sequence_mask(None, lengths, x.shape[0], x.shape[1])
        self._ensure_built(x.shape)
        return self.call(x, mask=mask, training=training)

    def call(self, x, mask=None, training=False):
        raise NotImplementedError

    def backward(self, d_out):
        raise NotImplementedError

    def _need_cache(self, cache):
        if cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a preceding call with "
                               "training=True (and runs once per such call)")
        return cache

    # ---- weights
    @property
    def weights(self):
        """The weight arrays themselves (not copies): what an optimizer updates."""
        return self._weights

    @property
    def weight_names(self):
        return list(self._weight_names)

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        if not self.built:
            raise RuntimeError(f"{self.name}: set_weights needs a built layer (call it once or "
                               "call build(input_shape))")
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"{self.name}: expected {len(self.weights)} arrays "
                             f"({', '.join(self.weight_names)}), got {len(weights)}")
        new = []
        for name, old, w in zip(self.weight_names, self.weights, weights):
            w = np.asarray(w)
            if w.shape != old.shape:
                raise ValueError(f"{self.name}.{name}: expected shape {old.shape}, "
                                 f"got {w.shape}")
            if w.dtype.kind not in "biuf":
                raise TypeError(f"{self.name}.{name}: expected a real array, got {w.dtype}")
            new.append(w)
        for old, w in zip(self.weights, new):
            old[...] = w

    def count_params(self):
        if not self.built:
            raise RuntimeError(f"{self.name}: count_params needs a built layer")
        return int(sum(w.size for w in self.weights))

    # ---- configuration (what model files store; JSON values only)
    def get_config(self):
        return {"name": self.name, "dtype": np.dtype(self.dtype).name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
