"""Dense, Embedding and Dropout: the non-recurrent layers a sequence model needs around its
recurrent ones. Dense applies to the last axis, so on a (B, T, F) sequence it acts at every
step (what Keras's TimeDistributed(Dense) does)."""
import numpy as np

from .. import activations, initializers
from ..ops import matmul
from .base import Layer, dropout_mask, whole_number

__all__ = ["Dense", "Embedding", "Dropout"]


class Dense(Layer):
    """y = activation(x @ kernel + bias) over the last axis. kernel (F, units), bias (units,)."""

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", seed=None,
                 dtype="float32", name=None):
        super().__init__(name=name, dtype=dtype)
        self.units = whole_number("units", units)
        self.activation = "linear" if activation is None else activation
        self._act, self._act_grad = activations.get(self.activation)
        self.use_bias = bool(use_bias)
        self.initializers = {"kernel": kernel_initializer, "bias": bias_initializer}
        for which in self.initializers.values():
            initializers.get(which)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._cache = None

    def build(self, input_shape):
        if len(input_shape) < 1 or not input_shape[-1]:
            raise ValueError(f"{self.name}: expected inputs with a non-empty last axis, got "
                             f"{tuple(input_shape)}")
        F = input_shape[-1]
        self.add_weight("kernel", initializers.get(self.initializers["kernel"])(
            (F, self.units), self._rng, self.dtype))
        if self.use_bias:
            self.add_weight("bias", initializers.get(self.initializers["bias"])(
                (self.units,), self._rng, self.dtype))
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def call(self, x, mask=None, training=False):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{self.name}: expected real-valued inputs, got dtype {x.dtype}")
        W = self._weights[0]
        if x.ndim < 1 or x.shape[-1] != W.shape[0]:
            raise ValueError(f"{self.name}: expected inputs with last axis {W.shape[0]}, got "
                             f"shape {x.shape}")
        x = np.asarray(x, dtype=self.dtype)
        a = matmul(x.reshape(-1, W.shape[0]), W).reshape(x.shape[:-1] + (self.units,))
        if self.use_bias:
            a += self._weights[1]
        y = self._act(a)
        self._cache = (x, y) if training else None
        return y

    def backward(self, d_out):
        x, y = self._need_cache(self._cache)
        d_out = np.asarray(d_out, dtype=self.dtype)
        if d_out.shape != y.shape:
            raise ValueError(f"{self.name}: d_out: expected shape {y.shape}, got {d_out.shape}")
        da = self._act_grad(d_out, y)
        W = self._weights[0]
        da2 = da.reshape(-1, self.units)
        self.gradients = [matmul(x.reshape(-1, W.shape[0]), da2, trans_a=True)]
        if self.use_bias:
            self.gradients.append(da2.sum(axis=0))
        return matmul(da2, W, trans_b=True).reshape(x.shape)

    def get_config(self):
        return dict(super().get_config(), units=self.units, activation=self.activation,
                    use_bias=self.use_bias, kernel_initializer=self.initializers["kernel"],
                    bias_initializer=self.initializers["bias"], seed=self.seed)


class Embedding(Layer):
    """Integer ids (B, T) -> vectors (B, T, output_dim). With mask_zero=True id 0 is padding:
    the layer emits the mask (ids != 0) that the following layers receive."""

    def __init__(self, input_dim, output_dim, mask_zero=False, embeddings_initializer="uniform",
                 seed=None, dtype="float32", name=None):
        super().__init__(name=name, dtype=dtype)
        self.input_dim = whole_number("input_dim", input_dim)
        self.output_dim = whole_number("output_dim", output_dim)
        self.mask_zero = bool(mask_zero)
        self.embeddings_initializer = embeddings_initializer
        initializers.get(embeddings_initializer)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._cache = None

    def build(self, input_shape):
        self.add_weight("embeddings", initializers.get(self.embeddings_initializer)(
            (self.input_dim, self.output_dim), self._rng, self.dtype))
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, x, mask):
        if not self.mask_zero:
            return mask
        padding = np.asarray(x) != 0
        return padding if mask is None else padding & mask     # with lengths too: both hold

    def _ids(self, x):
        x = np.asarray(x)
        if x.dtype.kind == "f" and x.size and np.all(np.mod(x, 1) == 0):
            x = x.astype(np.int64)            # integer-valued floats, as Keras accepts
        if x.dtype.kind not in "iu":
            raise TypeError(f"{self.name}: expected integer ids, got dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= self.input_dim):
            raise ValueError(f"{self.name}: ids must be in [0, input_dim={self.input_dim}), got "
                             f"min {x.min()} max {x.max()}")
        return x

    def call(self, x, mask=None, training=False):
        x = self._ids(x)
        self._cache = x if training else None
        return self._weights[0][x]

    def backward(self, d_out):
        """Fills the embeddings' gradient; ids have no gradient, so this returns None."""
        x = self._need_cache(self._cache)
        d_out = np.asarray(d_out, dtype=self.dtype)
        if d_out.shape != x.shape + (self.output_dim,):
            raise ValueError(f"{self.name}: d_out: expected shape {x.shape + (self.output_dim,)}"
                             f", got {d_out.shape}")
        dE = np.zeros_like(self._weights[0])
        np.add.at(dE, x.reshape(-1), d_out.reshape(-1, self.output_dim))
        self.gradients = [dE]
        return None

    def get_config(self):
        return dict(super().get_config(), input_dim=self.input_dim, output_dim=self.output_dim,
                    mask_zero=self.mask_zero, embeddings_initializer=self.embeddings_initializer,
                    seed=self.seed)


class Dropout(Layer):
    """Inverted dropout: in training, each element is zeroed with probability `rate` and the
    rest scaled by 1/(1 - rate); at inference the identity."""

    def __init__(self, rate, seed=None, dtype="float32", name=None):
        super().__init__(name=name, dtype=dtype)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"rate: expected a rate in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._cache = None

    def call(self, x, mask=None, training=False):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{self.name}: expected real-valued inputs, got dtype {x.dtype}")
        if not training or self.rate == 0.0:
            self._cache = 1.0 if training else None
            return x
        keep = dropout_mask(self._rng, self.rate, x.shape, self.dtype)
        self._cache = keep
        return x * keep

    def backward(self, d_out):
        keep = self._need_cache(self._cache)
        return np.asarray(d_out) * keep

    def get_config(self):
        return dict(super().get_config(), rate=self.rate, seed=self.seed)
