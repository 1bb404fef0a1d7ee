"""RNNStack: stacked, optionally bidirectional recurrent layers called the way torch.nn.LSTM,
torch.nn.GRU and torch.nn.RNN are called, with their parameters held under PyTorch's names.

It is what `from_torch` returns, and it needs no torch: the layers are seqcore's own
(LSTM / GRU(reset_after=True) / SimpleRNN, wrapped in Bidirectional(merge_mode='concat')).

    stack = RNNStack("lstm", input_size=8, hidden_size=16, num_layers=2, bidirectional=True)
    output, (h_n, c_n) = stack(x, lengths=lengths)    # LSTM
    output, h_n = stack(x)                              # GRU, RNN

Shapes follow PyTorch: x (T, B, input_size), or (B, T, input_size) with batch_first; output
(T, B, D*hidden_size) (batch first likewise); h_n, c_n (num_layers*D, B, hidden_size) with
D = 2 for bidirectional. `lengths` means what pack_padded_sequence means (row b holds
lengths[b] valid steps at its start; the reverse direction starts at its last valid step);
outputs past a row's length are zero, as pad_packed_sequence(..., total_length=T) gives.
"""
import numpy as np

from ..layers import GRU, LSTM, Bidirectional, SimpleRNN
from ..layers.base import as_dtype, sequence_mask, whole_number

__all__ = ["RNNStack", "MODES"]

MODES = ("lstm", "gru", "rnn_tanh", "rnn_relu")
_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}

# PyTorch orders the GRU gates r, z, n; Keras and seqcore z, r, h.
_GRU_PERMUTATION = (1, 0, 2)


def _gate_blocks(a, gates, order, axis):
    """`a` with its `gates` blocks along `axis` taken in `order` (a permutation is its own
    inverse for the GRU swap of the first two gates)."""
    blocks = np.split(a, gates, axis=axis)
    return np.concatenate([blocks[i] for i in order], axis=axis)


class RNNStack:
    """See the module docstring. Inference only: it runs the layers' inference kernels."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, bidirectional=False, dtype="float32"):
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        self.mode = mode
        self.input_size = whole_number("input_size", input_size)
        self.hidden_size = whole_number("hidden_size", hidden_size)
        self.num_layers = whole_number("num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = as_dtype(dtype)
        self.directions = 2 if self.bidirectional else 1
        self.layers = []
        for k in range(self.num_layers):
            options = dict(return_sequences=True, return_state=True, time_major=True,
                           use_bias=self.bias, dtype=self.dtype, name=f"{mode}_l{k}")
            if mode == "lstm":
                cell = LSTM(self.hidden_size, **options)
            elif mode == "gru":
                cell = GRU(self.hidden_size, reset_after=True, **options)
            else:
                cell = SimpleRNN(self.hidden_size, activation=mode[4:], **options)
            layer = Bidirectional(cell, name=f"bidirectional_l{k}") if bidirectional else cell
            width = self.input_size if k == 0 else self.directions * self.hidden_size
            layer.build((None, None, width))
            self.layers.append(layer)
        # PyTorch's LSTM and RNN add two biases (input and recurrent) where seqcore has one,
        # their sum. The split they came with is remembered so that state_dict() gives the
        # original pair back bit for bit while the summed bias is unchanged.
        self._bias_split = {}

    # ---- parameters under PyTorch's names
    def _directions(self, k):
        layer = self.layers[k]
        if self.bidirectional:
            return [("", layer.forward_layer), ("_reverse", layer.backward_layer)]
        return [("", layer)]

    def _names(self):
        for k in range(self.num_layers):
            for suffix, cell in self._directions(k):
                yield f"l{k}{suffix}", cell

    def parameter_names(self):
        """The state_dict keys, in PyTorch's order."""
        names = []
        for key, _ in self._names():
            names += [f"weight_ih_{key}", f"weight_hh_{key}"]
            if self.bias:
                names += [f"bias_ih_{key}", f"bias_hh_{key}"]
        return names

    def state_dict(self):
        """{PyTorch parameter name: NumPy array} (copies)."""
        gates, H = _GATES[self.mode], self.hidden_size
        order = _GRU_PERMUTATION if self.mode == "gru" else range(gates)
        out = {}
        for key, cell in self._names():
            W, U, *b = cell.get_weights()
            out[f"weight_ih_{key}"] = np.ascontiguousarray(_gate_blocks(W, gates, order, 1).T)
            out[f"weight_hh_{key}"] = np.ascontiguousarray(_gate_blocks(U, gates, order, 1).T)
            if not self.bias:
                continue
            if self.mode == "gru":
                b_ih, b_hh = (_gate_blocks(row, gates, order, 0) for row in b[0])
            else:
                split = self._bias_split.get(key)
                if split is not None and np.array_equal(split[2], b[0]):
                    b_ih, b_hh = split[0].copy(), split[1].copy()
                else:
                    b_ih, b_hh = b[0], np.zeros(gates * H, self.dtype)
            out[f"bias_ih_{key}"] = np.ascontiguousarray(b_ih)
            out[f"bias_hh_{key}"] = np.ascontiguousarray(b_hh)
        return out

    def load_state_dict(self, state_dict):
        """Set every parameter from {PyTorch name: array}; names and shapes must match."""
        expected = self.parameter_names()
        missing = [n for n in expected if n not in state_dict]
        unexpected = [n for n in state_dict if n not in expected]
        if missing or unexpected:
            raise ValueError(f"state_dict: missing {missing}, unexpected {unexpected}")
        gates, H = _GATES[self.mode], self.hidden_size
        order = _GRU_PERMUTATION if self.mode == "gru" else range(gates)
        updates, splits = [], {}
        for key, cell in self._names():
            I = cell.weights[0].shape[0]
            arrays = {}
            for name, shape in ((f"weight_ih_{key}", (gates * H, I)),
                                (f"weight_hh_{key}", (gates * H, H)),
                                (f"bias_ih_{key}", (gates * H,)),
                                (f"bias_hh_{key}", (gates * H,))):
                if name not in expected:
                    continue
                a = np.asarray(state_dict[name])
                if a.shape != shape:
                    raise ValueError(f"state_dict[{name!r}]: expected shape {shape}, got "
                                     f"{a.shape}")
                if a.dtype.kind != "f":
                    raise TypeError(f"state_dict[{name!r}]: expected a floating array, got "
                                    f"{a.dtype}")
                arrays[name] = a.astype(self.dtype)
            new = [_gate_blocks(arrays[f"weight_ih_{key}"].T, gates, order, 1),
                   _gate_blocks(arrays[f"weight_hh_{key}"].T, gates, order, 1)]
            if self.bias:
                b_ih, b_hh = arrays[f"bias_ih_{key}"], arrays[f"bias_hh_{key}"]
                if self.mode == "gru":
                    new.append(np.stack([_gate_blocks(b, gates, order, 0) for b in (b_ih, b_hh)]))
                else:
                    summed = b_ih + b_hh
                    new.append(summed)
                    splits[key] = (b_ih, b_hh, summed)
            updates.append((cell, new))
        for cell, new in updates:        # all checked first: no half-loaded stack
            cell.set_weights(new)
        self._bias_split = splits

    # ---- calling
    def _check_states(self, initial_state, B):
        n = 2 if self.mode == "lstm" else 1
        if initial_state is None:
            return None
        states = list(initial_state) if self.mode == "lstm" else [initial_state]
        if self.mode == "lstm" and (not isinstance(initial_state, (tuple, list))
                                    or len(initial_state) != 2):
            raise ValueError("initial_state: expected (h_0, c_0) for an LSTM")
        expected = (self.num_layers * self.directions, B, self.hidden_size)
        out = []
        for name, s in zip(("h_0", "c_0")[:n], states):
            s = np.asarray(s)
            if s.shape != expected:
                raise ValueError(f"initial_state {name}: expected shape (num_layers * "
                                 f"directions, B, hidden_size) = {expected}, got {s.shape}")
            out.append(s.astype(self.dtype))
        return out

    def __call__(self, x, lengths=None, initial_state=None):
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
            raise ValueError(f"x: expected shape {layout} with input_size={self.input_size}, "
                             f"got {x.shape}")
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x: expected real-valued inputs, got dtype {x.dtype}")
        # a view: the layers' seqcore.ops calls make the copy (reordering a ragged batch in it)
        y = (x.transpose(1, 0, 2) if self.batch_first else x).astype(self.dtype, copy=False)
        T, B = y.shape[:2]
        mask = sequence_mask(None, lengths, B, T)     # once, not again in every layer
        states = self._check_states(initial_state, B)
        D, n = self.directions, (2 if self.mode == "lstm" else 1)
        finals = [[] for _ in range(n)]
        for k, layer in enumerate(self.layers):
            given = None
            if states is not None:
                # [h_fw, (c_fw), h_bw, (c_bw)]: our layers' order of initial states
                given = [s[k * D + d] for d in range(D) for s in states]
            out, *fin = layer(y, mask=mask, initial_state=given)
            for d in range(D):
                for i in range(n):
                    finals[i].append(fin[d * n + i])
            y = out
        output = np.ascontiguousarray(y.transpose(1, 0, 2)) if self.batch_first else y
        finals = [np.stack(f) for f in finals]
        return (output, tuple(finals)) if self.mode == "lstm" else (output, finals[0])

    def hyperparameters(self):
        return dict(mode=self.mode, input_size=self.input_size, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                    bidirectional=self.bidirectional, dtype=np.dtype(self.dtype).name)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"RNNStack({args})"
