"""Wrappers around other layers: Bidirectional (a recurrent layer run both ways) and
TimeDistributed (a layer applied at every time step)."""
import numpy as np

from .base import Layer, sequence_mask
from .recurrent import _Recurrent

__all__ = ["Bidirectional", "TimeDistributed"]

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class _Wrapper(Layer):
    """A layer whose weights are those of the layers it wraps."""

    def _inner(self):
        raise NotImplementedError

    @property
    def weights(self):
        return [w for layer in self._inner() for w in layer.weights]

    @property
    def weight_names(self):
        return [f"{layer.name}.{n}" for layer in self._inner() for n in layer.weight_names]

    @property
    def gradients(self):
        grads = [layer.gradients for layer in self._inner()]
        return None if any(g is None for g in grads) else [g for gs in grads for g in gs]

    @gradients.setter
    def gradients(self, value):
        if value is not None:
            raise AttributeError("gradients of a wrapper come from the layers it wraps")


class Bidirectional(_Wrapper):
    """Runs a recurrent layer forward and a copy of it backward over the same inputs and merges
    the two: merge_mode 'concat' (default), 'sum', 'mul', 'ave', or None (a list of both).
    With a mask or lengths, the backward direction starts at each row's last valid step.
    Weights: the forward layer's, then the backward layer's (Keras's order)."""

    def __init__(self, layer, merge_mode="concat", name=None):
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"layer: expected an LSTM, GRU or SimpleRNN layer, got "
                            f"{type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode: expected one of {MERGE_MODES}, got {merge_mode!r}")
        if layer.stateful or layer.go_backwards:
            raise ValueError("layer: Bidirectional wraps a forward, non-stateful layer "
                             "(stateful=False, go_backwards=False)")
        if layer.built:
            raise ValueError("layer: Bidirectional needs an unbuilt layer (it builds a "
                             "backward copy with its own weights)")
        super().__init__(name=name or f"bidirectional_{layer.name}", dtype=layer.dtype)
        self.forward_layer = layer
        config = layer.get_config()
        config["name"] = f"backward_{layer.name}"
        if config["seed"] is not None:        # its own initial weights and dropout masks
            config["seed"] = int(config["seed"]) + 1
        self.backward_layer = type(layer).from_config(config)
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.time_major = layer.time_major
        self._cache = None

    def _inner(self):
        return (self.forward_layer, self.backward_layer)

    def build(self, input_shape):
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        main, states = (shape[0], shape[1:]) if self.return_state else (shape, [])
        if self.merge_mode == "concat":
            main = main[:-1] + (2 * main[-1],)
        out = [main, main] if self.merge_mode is None else main
        if self.return_state:
            return ([out] if self.merge_mode is not None else out) + states + states
        return out

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def __call__(self, x, mask=None, lengths=None, initial_state=None, training=False):
        fw, bw = self.forward_layer, self.backward_layer
        x = fw._check_input(x)
        T, B = x.shape[:2] if self.time_major else x.shape[1::-1]
        self._ensure_built(x.shape)
        mask = sequence_mask(mask, lengths, B, T)
        n = len(fw.STATES)
        if initial_state is None:
            states_f = states_b = [None] * n
        else:
            if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2 * n:
                raise ValueError(f"{self.name}: initial_state: expected {2 * n} arrays (forward "
                                 "states, then backward states)")
            states_f = fw._check_states(list(initial_state[:n]), B)
            states_b = bw._check_states(list(initial_state[n:]), B)
        x_tm = (x if self.time_major else x.transpose(1, 0, 2)).astype(self.dtype, copy=False)
        if mask is None:    # one copy for both directions; with a mask, each direction's
            x_tm = np.ascontiguousarray(x_tm)   # call reorders x's rows in its own copy
        mask_tm = None if mask is None else mask.T
        training = bool(training)
        # The two directions one after the other, each with all the threads. Side by side (one
        # Python thread each, half the threads each, the kernels release the GIL) measured no
        # better on 2 cores (2026-11-29, Zen 3, in one process, two stacked layers, side /
        # sequential): (100, 16, 128, 256) inference 0.93-1.04, training 0.94-0.96; B = 1
        # 1.07 / 0.97; (50, 64, 512, 512) inference 1.26: each direction then streams its own
        # weights through the shared L3 instead of the two cores sharing one direction's.
        y_f, fin_f = fw._forward_tm(x_tm, mask_tm, states_f, training, False,
                                    self.return_sequences)
        y_b, fin_b = bw._forward_tm(x_tm, mask_tm, states_b, training, True,
                                    self.return_sequences)
        if self.return_sequences:
            y_f, y_b = (np.ascontiguousarray(y if self.time_major else y.transpose(1, 0, 2))
                        for y in (y_f, y_b))
        else:
            y_f, y_b = fin_f[0].copy(), fin_b[0].copy()
        # the outputs themselves only where backward needs them (merge_mode "mul")
        mul = self.merge_mode == "mul"
        self._cache = dict(y_f=y_f if mul else None, y_b=y_b if mul else None,
                           y_shape=y_f.shape, B=B, T=T,
                           given_state=initial_state is not None)
        out = self._merge(y_f, y_b)
        if self.return_state:
            return ([out] if self.merge_mode is not None else list(out)) + fin_f + fin_b
        return out

    def _merge(self, y_f, y_b):
        mode = self.merge_mode
        if mode == "concat":
            return np.concatenate([y_f, y_b], axis=-1)
        if mode == "sum":
            return y_f + y_b
        if mode == "mul":
            return y_f * y_b
        if mode == "ave":
            return (y_f + y_b) / 2
        return [y_f, y_b]

    def _split(self, d, c):
        """d loss / d merged -> (d loss / d y_f, d loss / d y_b)."""
        mode, H = self.merge_mode, self.forward_layer.units
        if mode is None:
            if not isinstance(d, (list, tuple)) or len(d) != 2:
                raise ValueError(f"{self.name}: d_out: expected [d_forward, d_backward] "
                                 "(merge_mode=None)")
            return d[0], d[1]
        d = np.asarray(d, dtype=self.dtype)
        expected = c["y_shape"][:-1] + ((2 * H,) if mode == "concat" else (H,))
        if d.shape != expected:
            raise ValueError(f"{self.name}: d_out: expected shape {expected}, got {d.shape}")
        if mode == "concat":
            return d[..., :H], d[..., H:]
        if mode == "sum":
            return d, d
        if mode == "mul":
            return d * c["y_b"], d * c["y_f"]
        return d / 2, d / 2

    def backward(self, d_out):
        """As the wrapped layer's backward; with return_state d_out is [d_output, forward state
        gradients..., backward state gradients...] (d_output itself a pair for merge_mode None).
        Returns dx, or (dx, initial-state gradients) when the call was given initial_state."""
        c = self._need_cache(self._cache)
        fw, bw = self.forward_layer, self.backward_layer
        n = len(fw.STATES)
        if self.return_state:
            parts = list(d_out) if isinstance(d_out, (list, tuple)) else []
            main_len = 1 if self.merge_mode is not None else 2
            if len(parts) != main_len + 2 * n:
                raise ValueError(f"{self.name}: d_out: expected {main_len + 2 * n} arrays, as "
                                 "the call returned")
            d_main = parts[0] if main_len == 1 else parts[:2]
            d_sf, d_sb = parts[main_len:main_len + n], parts[main_len + n:]
        else:
            d_main, d_sf, d_sb = d_out, [None] * n, [None] * n
        d_f, d_b = self._split(d_main, c)
        dx = None
        d_initial = []
        for layer, d, d_states in ((fw, d_f, d_sf), (bw, d_b, d_sb)):
            # both directions' outputs are aligned with input time: nothing to flip
            d_outputs, d_finals = layer._direction_gradients(
                d, d_states, c["B"], c["T"], self.return_sequences, self.time_major, False)
            dx_dir, d_init = layer._backward_tm(d_outputs, d_finals)
            if dx is None:
                dx = dx_dir
            else:                     # in place: a third (T, B, I) array is not needed
                dx += dx_dir
            del dx_dir
            d_initial += d_init
        self._cache = None            # one backward per call, as the wrapped layers'
        dx = dx if self.time_major else np.ascontiguousarray(dx.transpose(1, 0, 2))
        return (dx, d_initial) if c["given_state"] else dx

    def get_config(self):
        from . import serialize
        return {"name": self.name, "layer": serialize(self.forward_layer),
                "merge_mode": self.merge_mode}

    @classmethod
    def from_config(cls, config):
        from . import deserialize
        config = dict(config)
        return cls(deserialize(config.pop("layer")), **config)


class TimeDistributed(_Wrapper):
    """Applies `layer` to every time step of (B, T, ...) inputs: the layer sees (B*T, ...)."""

    def __init__(self, layer, name=None):
        if not isinstance(layer, Layer) or isinstance(layer, _Recurrent):
            raise TypeError(f"layer: expected a non-recurrent seqcore layer, got "
                            f"{type(layer).__name__}")
        super().__init__(name=name or f"time_distributed_{layer.name}", dtype=layer.dtype)
        self.layer = layer
        self._shape = None

    def _inner(self):
        return (self.layer,)

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"{self.name}: expected inputs (B, T, ...), got {input_shape}")
        self.layer._ensure_built((None,) + tuple(input_shape[2:]))
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    def call(self, x, mask=None, training=False):
        if x.ndim < 3:
            raise ValueError(f"{self.name}: expected inputs (B, T, ...), got {x.shape}")
        B, T = x.shape[:2]
        y = self.layer.call(x.reshape((B * T,) + x.shape[2:]), training=training)
        self._shape = (B, T)
        return y.reshape((B, T) + y.shape[1:])

    def backward(self, d_out):
        B, T = self._need_cache(self._shape)
        d_out = np.asarray(d_out)
        dx = self.layer.backward(d_out.reshape((B * T,) + d_out.shape[2:]))
        return None if dx is None else dx.reshape((B, T) + dx.shape[1:])

    def get_config(self):
        from . import serialize
        return {"name": self.name, "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config):
        from . import deserialize
        config = dict(config)
        return cls(deserialize(config.pop("layer")), **config)
