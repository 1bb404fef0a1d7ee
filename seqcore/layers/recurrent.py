"""Recurrent layers: LSTM, GRU, SimpleRNN (Keras 3 semantics and weight layout, DESIGN.md 2).

A layer turns batch-first user arrays into the time-major arrays of seqcore.ops, draws the
dropout masks (one per call, held across all steps), carries state when stateful, and picks the
inference or training kernel. The two halves every direction needs, `_forward_tm` and
`_backward_tm`, work on time-major arrays with outputs aligned to input time; Bidirectional
uses them directly.
"""
import numpy as np

from .. import initializers, ops
from .base import Layer, dropout_mask, sequence_mask, whole_number

__all__ = ["LSTM", "GRU", "SimpleRNN"]


def _carry_sources(mask_tm, reverse):
    """For zero_output_for_mask=False: the (t, b) positions of masked steps and, for each, the
    step whose output it repeats (the last valid step before it in processing order; -1: none,
    so the initial h)."""
    T = mask_tm.shape[0]
    steps = np.arange(T)[:, None]
    if reverse:
        src = np.minimum.accumulate(np.where(mask_tm, steps, T)[::-1], axis=0)[::-1]
        src = np.where(src == T, -1, src)
    else:
        src = np.maximum.accumulate(np.where(mask_tm, steps, -1), axis=0)
    tt, bb = np.nonzero(~mask_tm)
    return tt, bb, src[tt, bb]


def _sum(*arrays):
    """Sum of the arrays that are not None (None if all are)."""
    present = [a for a in arrays if a is not None]
    return None if not present else sum(present[1:], present[0].copy())


class _Recurrent(Layer):
    """What LSTM, GRU and SimpleRNN share. Subclasses set GATES and STATES and implement
    _kernel_forward / _kernel_backward over seqcore.ops."""

    GATES = 1
    STATES = ("h",)

    def __init__(self, units, *, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, time_major=False, dropout=0.0,
                 recurrent_dropout=0.0, use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", seed=None,
                 zero_output_for_mask=True, reverse_output_mask=True, dtype="float32",
                 name=None):
        super().__init__(name=name, dtype=dtype)
        self.units = whole_number("units", units)
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(rate) < 1.0:
                raise ValueError(f"{arg}: expected a rate in [0, 1), got {rate!r}")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.time_major = bool(time_major)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.use_bias = bool(use_bias)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        # go_backwards with return_sequences hands out reversed outputs; by default the mask
        # it passes on is reversed with them. Keras passes the input mask unchanged, so models
        # read from Keras files set this False to compute what they computed there.
        self.reverse_output_mask = bool(reverse_output_mask)
        self._prepacked = None    # W and U packed for the inference calls to come (_pack_weights)
        self.initializers = {"kernel": kernel_initializer, "recurrent": recurrent_initializer,
                             "bias": bias_initializer}
        for which in self.initializers.values():
            initializers.get(which)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.states = None            # carried state (stateful layers), list of (B, H) arrays
        self._cache = None

    # ---- building
    def _bias_shape(self):
        return (self.GATES * self.units,)

    def _init_bias(self, bias):
        return bias

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expected inputs of shape (B, T, features), got "
                             f"{tuple(input_shape)}")
        features = input_shape[-1]
        if not features:
            raise ValueError(f"{self.name}: the feature axis must not be empty")
        H, G = self.units, self.GATES
        init = {k: initializers.get(v) for k, v in self.initializers.items()}
        self.add_weight("kernel", init["kernel"]((features, G * H), self._rng, self.dtype))
        self.add_weight("recurrent_kernel",
                        init["recurrent"]((H, G * H), self._rng, self.dtype))
        if self.use_bias:
            self.add_weight("bias", self._init_bias(
                init["bias"](self._bias_shape(), self._rng, self.dtype)))
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        B, T = (input_shape[1], input_shape[0]) if self.time_major else input_shape[:2]
        if self.return_sequences:
            main = (T, B, self.units) if self.time_major else (B, T, self.units)
        else:
            main = (B, self.units)
        if self.return_state:
            return [main] + [(B, self.units)] * len(self.STATES)
        return main

    def compute_mask(self, x, mask):
        if not self.return_sequences or mask is None:
            return None
        return mask[:, ::-1] if self.go_backwards and self.reverse_output_mask else mask

    def _params(self):
        """kernel, recurrent_kernel, bias (or None)."""
        w = self._weights
        return w[0], w[1], (w[2] if self.use_bias else None)

    # ---- the time-major halves (outputs aligned with input time)
    def _dropout_mask(self, rate, shape):
        return dropout_mask(self._rng, rate, shape, self.dtype)

    def _forward_tm(self, x, mask, states, training, reverse, keep_sequence=True):
        """x (T, B, I), mask (T, B) bool or None, states: list of (B, H) or None.
        Returns (outputs (T, B, H) or None, final states); keeps what backward needs when
        training."""
        B, I = x.shape[1], x.shape[2]
        input_mask = recurrent_mask = None
        if training:
            input_mask = self._dropout_mask(self.dropout, (B, I))
            recurrent_mask = self._dropout_mask(self.recurrent_dropout, (B, self.units))
        W, U, b = self._params()
        outputs, finals, cache = self._kernel_forward(
            x, W, U, b, states, mask, input_mask, recurrent_mask, reverse, training,
            keep_sequence or training)
        self._cache = cache
        return outputs, finals

    def _pack_weights(self):
        """Pack W and U once for the inference calls that follow (Sequential.predict and
        evaluate over their batches), instead of at every call; _unpack_weights() ends it.
        Until then those calls use the weights as they were here, which is why this is
        private: only a call during which the weights cannot change may leave them packed."""
        if self.built:
            W, U, _ = self._params()
            self._prepacked = ops.packed_weights(self.CELL, W, U)

    def _unpack_weights(self):
        """Back to packing the weights at every call (_pack_weights)."""
        self._prepacked = None

    def stepper(self, batch_size):
        """A seqcore.ops.Stepper running this layer one step at a time from a zero state (with
        the weights as they are now): what Sequential.stream uses."""
        if not self.built:
            raise RuntimeError(f"{self.name}: build the layer first")
        W, U, b = self._params()
        return ops.Stepper(self.CELL, W, U, b, batch_size, **self._cell_options())

    def _cell_options(self):
        return {}

    def _backward_tm(self, d_outputs, d_finals):
        """d_outputs (T, B, H) or None, d_finals: list of (B, H) or None per state.
        Returns (dx (T, B, I), gradients w.r.t. the initial states); sets self.gradients."""
        cache = self._need_cache(self._cache)
        dx, dW, dU, db, d_initial = self._kernel_backward(d_outputs, d_finals, cache)
        self.gradients = [dW, dU] + ([db] if self.use_bias else [])
        # the forward's cache goes as its backward ends (as PyTorch frees a graph's buffers;
        # after an error it stays, for a corrected call), so that a stack's backward does not
        # hold every layer's caches at once: a 2-layer bidirectional LSTM's training step
        # (100, 16, 128, 256) had peaked at 98 MB, 83 MB since
        self._cache = None
        return dx, d_initial

    # ---- the public call
    def _check_input(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{self.name}: expected real-valued inputs, got dtype {x.dtype}")
        if x.ndim != 3:
            layout = "(T, B, features)" if self.time_major else "(B, T, features)"
            raise ValueError(f"{self.name}: expected inputs of shape {layout}, got {x.shape}")
        return x

    def _check_states(self, initial_state, B):
        if initial_state is None:
            if self.stateful and self.states is not None:
                if self.states[0].shape[0] != B:
                    raise ValueError(f"{self.name}: stateful layer carries state for batch "
                                     f"{self.states[0].shape[0]}, got batch {B}; call "
                                     "reset_states() to start over")
                return self.states
            return [None] * len(self.STATES)
        if not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        if len(initial_state) != len(self.STATES):
            raise ValueError(f"{self.name}: initial_state: expected {len(self.STATES)} arrays "
                             f"({', '.join(self.STATES)}), got {len(initial_state)}")
        out = []
        for name, s in zip(self.STATES, initial_state):
            s = np.asarray(s)
            if s.shape != (B, self.units):
                raise ValueError(f"{self.name}: initial_state {name}: expected shape "
                                 f"(B, units) = {(B, self.units)}, got {s.shape}")
            out.append(s)
        return out

    def __call__(self, x, mask=None, lengths=None, initial_state=None, training=False):
        x = self._check_input(x)
        if self.time_major:
            T, B = x.shape[:2]
        else:
            B, T = x.shape[:2]
        self._ensure_built((B, T, x.shape[2]) if not self.time_major else (T, B, x.shape[2]))
        if x.shape[2] != self._weights[0].shape[0]:
            raise ValueError(f"{self.name}: expected {self._weights[0].shape[0]} input "
                             f"features (built for them), got {x.shape[2]}")
        mask = sequence_mask(mask, lengths, B, T)
        states = self._check_states(initial_state, B)
        # a view: seqcore.ops makes the one copy, reordering a ragged batch's rows in it
        x_tm = (x if self.time_major else x.transpose(1, 0, 2)).astype(self.dtype, copy=False)
        training = bool(training)
        outputs, finals = self._forward_tm(
            x_tm, None if mask is None else mask.T, states, training, self.go_backwards,
            keep_sequence=self.return_sequences)
        if self.stateful:
            self.states = [f.copy() for f in finals]
        carry = None
        if self.return_sequences and mask is not None and not self.zero_output_for_mask:
            carry = _carry_sources(mask.T, self.go_backwards)
            tt, bb, src = carry
            h0 = states[0] if states[0] is not None else np.zeros((B, self.units), self.dtype)
            outputs[tt, bb] = np.where((src >= 0)[:, None], outputs[np.maximum(src, 0), bb],
                                       h0[bb])
        self._call_info = dict(B=B, T=T, given_state=initial_state is not None, carry=carry)
        if self.return_sequences:
            if self.go_backwards:
                outputs = outputs[::-1]
            main = np.ascontiguousarray(outputs if self.time_major else outputs.transpose(1, 0, 2))
        else:
            main = finals[0].copy()
        return [main] + list(finals) if self.return_state else main

    def backward(self, d_out):
        """Gradients of the last training call. d_out matches what the call returned (a list
        [d_output, d_h, (d_c)] with return_state; entries may be None). Returns dx, or
        (dx, [d_h0, (d_c0)]) when the call was given initial_state."""
        self._need_cache(self._cache)
        info = self._call_info
        B, T = info["B"], info["T"]
        n = len(self.STATES)
        if self.return_state:
            if not isinstance(d_out, (list, tuple)) or len(d_out) != 1 + n:
                raise ValueError(f"{self.name}: d_out: expected a list of {1 + n} arrays "
                                 "(output and states), as the call returned")
            d_main, d_states = d_out[0], list(d_out[1:])
        else:
            d_main, d_states = d_out, [None] * n
        d_outputs, d_finals = self._direction_gradients(
            d_main, d_states, B, T, self.return_sequences, self.time_major, self.go_backwards)
        to_initial = None
        if info["carry"] is not None and d_outputs is not None:
            # a repeated output passes its gradient to the step (or initial h) it repeats
            tt, bb, src = info["carry"]
            d_outputs = d_outputs.copy()          # may be the caller's array
            d_rep = d_outputs[tt, bb]
            d_outputs[tt, bb] = 0
            np.add.at(d_outputs, (src[src >= 0], bb[src >= 0]), d_rep[src >= 0])
            to_initial = (bb[src < 0], d_rep[src < 0])
        dx, d_initial = self._backward_tm(d_outputs, d_finals)
        if to_initial is not None and d_initial[0] is not None:
            np.add.at(d_initial[0], to_initial[0], to_initial[1])
        dx = dx if self.time_major else np.ascontiguousarray(dx.transpose(1, 0, 2))
        return (dx, d_initial) if info["given_state"] else dx

    def _direction_gradients(self, d_main, d_states, B, T, sequences, time_major, flip):
        """Time-major (d_outputs or None, d_finals) for _backward_tm from the gradient of the
        layer's main output (the sequence, or the final h) and of its returned states. flip:
        the sequence was handed out in reversed time order."""
        H = self.units
        d_finals = [self._grad_array(f"d_{s}", d, (B, H)) for s, d in zip(self.STATES, d_states)]
        d_outputs = None
        if sequences:
            d = self._grad_array("d_out", d_main, (T, B, H) if time_major else (B, T, H))
            if d is not None:
                d = d if time_major else d.transpose(1, 0, 2)
                d_outputs = d[::-1] if flip else d      # a view, as x in __call__
        else:
            d_finals[0] = _sum(d_finals[0], self._grad_array("d_out", d_main, (B, H)))
        return d_outputs, d_finals

    def _grad_array(self, name, d, shape):
        if d is None:
            return None
        d = np.asarray(d)
        if d.shape != shape:
            raise ValueError(f"{self.name}: {name}: expected shape {shape}, got {d.shape}")
        return d.astype(self.dtype, copy=False)    # seqcore.ops makes it contiguous

    def reset_states(self, states=None):
        """Forget the carried state (stateful layers), or set it to `states`."""
        self.states = None if states is None else [np.array(s, dtype=self.dtype)
                                                   for s in states]

    def get_config(self):
        return dict(super().get_config(), units=self.units,
                    return_sequences=self.return_sequences, return_state=self.return_state,
                    go_backwards=self.go_backwards, stateful=self.stateful,
                    time_major=self.time_major, dropout=self.dropout,
                    recurrent_dropout=self.recurrent_dropout, use_bias=self.use_bias,
                    kernel_initializer=self.initializers["kernel"],
                    recurrent_initializer=self.initializers["recurrent"],
                    bias_initializer=self.initializers["bias"], seed=self.seed,
                    zero_output_for_mask=self.zero_output_for_mask,
                    reverse_output_mask=self.reverse_output_mask)


class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), gates i, f, c, o.
    Weights: kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)."""

    GATES = 4
    STATES = ("h", "c")
    CELL = "lstm"

    def __init__(self, units, *, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _init_bias(self, bias):
        if self.unit_forget_bias:
            bias[self.units:2 * self.units] = 1.0
        return bias

    def _kernel_forward(self, x, W, U, b, states, mask, im, rm, reverse, training, keep):
        y, h, c, cache = ops.lstm_forward(x, W, U, b, states[0], states[1], mask, im, rm,
                                          reverse, training=training, return_sequences=keep,
                                          _prepacked=None if training else self._prepacked)
        return y, [h, c], cache

    def _kernel_backward(self, d_outputs, d_finals, cache):
        dx, dW, dU, db, dh0, dc0 = ops.lstm_backward(d_outputs, d_finals[0], d_finals[1], cache)
        return dx, dW, dU, db, [dh0, dc0]

    def get_config(self):
        return dict(super().get_config(), unit_forget_bias=self.unit_forget_bias)


class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al. 2014), gates z, r, h. reset_after=True (default, as
    Keras, PyTorch and cuDNN) applies the reset gate after the recurrent product and has bias
    (2, 3H) [input; recurrent]; False is the original formulation with bias (3H,)."""

    GATES = 3
    CELL = "gru"

    def __init__(self, units, *, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _cell_options(self):
        return {"reset_after": self.reset_after}

    def _kernel_forward(self, x, W, U, b, states, mask, im, rm, reverse, training, keep):
        y, h, cache = ops.gru_forward(x, W, U, b, states[0], mask, im, rm, reverse,
                                      self.reset_after, training=training, return_sequences=keep,
                                      _prepacked=None if training else self._prepacked)
        return y, [h], cache

    def _kernel_backward(self, d_outputs, d_finals, cache):
        dx, dW, dU, db, dh0 = ops.gru_backward(d_outputs, d_finals[0], cache)
        return dx, dW, dU, db, [dh0]

    def get_config(self):
        return dict(super().get_config(), reset_after=self.reset_after)


class SimpleRNN(_Recurrent):
    """Elman network: h' = activation(x W + h U + b), activation 'tanh' (default) or 'relu'."""

    CELL = "rnn"

    def __init__(self, units, *, activation="tanh", **kwargs):
        super().__init__(units, **kwargs)
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation: expected 'tanh' or 'relu', got {activation!r}")
        self.activation = activation

    def _cell_options(self):
        return {"activation": self.activation}

    def _kernel_forward(self, x, W, U, b, states, mask, im, rm, reverse, training, keep):
        y, h, cache = ops.rnn_forward(x, W, U, b, states[0], mask, im, rm, reverse,
                                      self.activation, training=training, return_sequences=keep,
                                      _prepacked=None if training else self._prepacked)
        return y, [h], cache

    def _kernel_backward(self, d_outputs, d_finals, cache):
        dx, dW, dU, db, dh0 = ops.rnn_backward(d_outputs, d_finals[0], cache)
        return dx, dW, dU, db, [dh0]

    def get_config(self):
        return dict(super().get_config(), activation=self.activation)
