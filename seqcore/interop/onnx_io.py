"""ONNX <-> seqcore.

to_onnx writes a Sequential (or an RNNStack) as an ONNX graph: recurrent layers as the LSTM /
GRU / RNN operators (gate orders converted, Bidirectional as direction="bidirectional",
lengths as sequence_lens), Dense as MatMul + Add (+ activation), Embedding as Gather.

from_onnx reads a graph made of those operators and the shape plumbing exporters put around
them (what torch.onnx.export writes for an nn.LSTM / nn.GRU model, say) and runs it: the
recurrent operators on seqcore's kernels, every other node as a small NumPy function. The file
is parsed as protobuf; nothing in it is executed as code. Both need the `onnx` package.
"""
import numpy as np

from .. import activations, ops
from ..layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, SimpleRNN
from ..layers import TimeDistributed
from ..layers.recurrent import _Recurrent
from ..model import Sequential
from .stack import RNNStack, _gate_blocks

__all__ = ["to_onnx", "from_onnx", "OnnxModel", "OPSET"]

OPSET = 17

# seqcore / Keras gate order -> ONNX gate order (ONNX LSTM is i, o, f, c; GRU z, r, h as ours):
# ONNX's block j is our block _TO_ONNX_ORDER[j]; going back takes the inverse permutation.
_TO_ONNX_ORDER = {"lstm": (0, 3, 1, 2), "gru": (0, 1, 2), "rnn": (0,)}
_FROM_ONNX_ORDER = {k: tuple(int(i) for i in np.argsort(v)) for k, v in _TO_ONNX_ORDER.items()}
_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError("to_onnx / from_onnx need the onnx package (pip install onnx)") from e
    return onnx


# ================================================================================== export

class _Graph:
    """Collects nodes and initializers with unique names."""

    def __init__(self, onnx, dtype):
        self.onnx, self.h = onnx, onnx.helper
        self.nodes, self.initializers = [], []
        self.elem = onnx.TensorProto.DOUBLE if dtype == np.float64 else onnx.TensorProto.FLOAT
        self.dtype = dtype
        self._count = 0

    def name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint, array):
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, n_outputs=1, hint=None, **attrs):
        outputs = [self.name(hint or op.lower()) for _ in range(n_outputs)]
        self.nodes.append(self.h.make_node(op, inputs, outputs, **attrs))
        return outputs if n_outputs > 1 else outputs[0]

    def transpose(self, x, perm):
        return self.node("Transpose", [x], perm=list(perm))

    def merge(self, y, axis, mode):
        """Two directions stacked on `axis` -> one tensor, by merge mode (concat excluded)."""
        halves = self.node("Split", [y], n_outputs=2, axis=axis)
        a, b = (self.node("Squeeze", [t, self.const("axes", np.array([axis]))]) for t in halves)
        if mode == "sum":
            return self.node("Add", [a, b])
        if mode == "mul":
            return self.node("Mul", [a, b])
        return self.node("Mul", [self.node("Add", [a, b]),
                                 self.const("half", np.array(0.5, self.dtype))])


def _cell_kind(cell):
    return {LSTM: "lstm", GRU: "gru", SimpleRNN: "rnn"}[type(cell)]


def _onnx_weights(cells, kind):
    """W [D, G*H, I], R [D, G*H, H], B [D, 2*G*H] (or None) for one layer's directions."""
    order = _TO_ONNX_ORDER[kind]
    G = len(order)
    Ws, Rs, Bs = [], [], []
    for cell in cells:
        W, U, *b = cell.get_weights()
        Ws.append(_gate_blocks(W, G, order, 1).T)
        Rs.append(_gate_blocks(U, G, order, 1).T)
        if b:
            b = b[0]
            if isinstance(cell, GRU) and cell.reset_after:
                wb, rb = b[0], b[1]
            else:     # one bias: all of it on the input side (ONNX adds Wb + Rb)
                wb, rb = b, np.zeros_like(b)
            Bs.append(np.concatenate([_gate_blocks(wb, G, order, 0),
                                      _gate_blocks(rb, G, order, 0)]))
    stack = lambda arrays: np.ascontiguousarray(np.stack(arrays))     # noqa: E731
    return stack(Ws), stack(Rs), (stack(Bs) if Bs else None)


def _recurrent_node(g, x_tm, cells, direction, lengths, initial=None):
    """The ONNX LSTM/GRU/RNN node over time-major x; returns (Y, Y_h[, Y_c]) names."""
    cell = cells[0]
    kind = _cell_kind(cell)
    W, R, B = _onnx_weights(cells, kind)
    inputs = [x_tm, g.const("W", W), g.const("R", R), g.const("B", B) if B is not None else "",
              lengths or ""]
    if initial:
        inputs += initial
    while inputs and inputs[-1] == "":
        inputs.pop()
    attrs = dict(hidden_size=cell.units, direction=direction)
    if kind == "gru":
        attrs["linear_before_reset"] = int(cell.reset_after)
    if kind == "rnn":
        attrs["activations"] = ["Relu" if cell.activation == "relu" else "Tanh"] * (
            2 if direction == "bidirectional" else 1)
    n_out = 3 if kind == "lstm" else 2
    return g.node(_OP[kind], inputs, n_outputs=n_out, hint=kind, **attrs)


def _export_recurrent(g, layer, x, lengths):
    """Batch-first x (B, T, F) -> what the layer hands on (batch-first)."""
    bidirectional = isinstance(layer, Bidirectional)
    cells = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
    cell = cells[0]
    direction = ("bidirectional" if bidirectional else
                 "reverse" if cell.go_backwards else "forward")
    Y, Y_h = _recurrent_node(g, g.transpose(x, (1, 0, 2)), cells, direction, lengths)[:2]
    mode = layer.merge_mode if bidirectional else None
    if layer.return_sequences:
        if not bidirectional:                                     # [T, 1, B, H] -> [B, T, H]
            y = g.transpose(g.node("Squeeze", [Y, g.const("axes", np.array([1]))]), (1, 0, 2))
            if cell.go_backwards:                                 # handed out in reverse
                y = g.node("Slice", [y, g.const("starts", np.array([-1])),
                                     g.const("ends", np.array([np.iinfo(np.int64).min])),
                                     g.const("axes", np.array([1])),
                                     g.const("steps", np.array([-1]))])
            return y
        if mode == "concat":                                      # [T, 2, B, H] -> [B, T, 2H]
            y = g.transpose(Y, (2, 0, 1, 3))
            return g.node("Reshape", [y, g.const("shape", np.array([0, 0, -1]))])
        return g.transpose(g.merge(Y, 1, mode), (1, 0, 2))
    if not bidirectional:                                         # [1, B, H] -> [B, H]
        return g.node("Squeeze", [Y_h, g.const("axes", np.array([0]))])
    if mode == "concat":                                          # [2, B, H] -> [B, 2H]
        return g.node("Reshape", [g.transpose(Y_h, (1, 0, 2)),
                                  g.const("shape", np.array([0, -1]))])
    return g.merge(Y_h, 0, mode)


def _export_dense(g, layer, x):
    W, *b = layer.get_weights()
    y = g.node("MatMul", [x, g.const("kernel", W)])
    if b:
        y = g.node("Add", [y, g.const("bias", b[0])])
    act = layer.activation
    if act == "softmax":
        return g.node("Softmax", [y], axis=-1)
    if act != "linear":
        return g.node({"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[act], [y])
    return y


def _check_exportable(model, masked):
    """Refuse what ONNX's sequence_lens cannot express, instead of writing a graph that
    computes something else."""
    recurrent = [(i, l) for i, l in enumerate(model.layers)
                 if isinstance(l, (_Recurrent, Bidirectional))]
    for layer in model.layers:
        inner = layer.layer if isinstance(layer, TimeDistributed) else layer
        if not isinstance(inner, (_Recurrent, Bidirectional, Dense, Dropout, Embedding)):
            raise ValueError(f"to_onnx: layer {layer.name!r} ({type(layer).__name__}) has no "
                             "ONNX export")
        if isinstance(layer, Embedding) and model.layers.index(layer) != 0:
            raise ValueError(f"to_onnx: Embedding {layer.name!r} must be the first layer")
        if getattr(layer, "stateful", False):
            raise ValueError(f"to_onnx: stateful layer {layer.name!r}: the graph would start "
                             "from zero state at every run; export a non-stateful copy")
    if not masked:
        return
    for k, (i, layer) in enumerate(recurrent):
        cell = layer.forward_layer if isinstance(layer, Bidirectional) else layer
        later = k + 1 < len(recurrent)
        if cell.go_backwards and layer.return_sequences and later:
            raise ValueError(f"to_onnx: {layer.name!r} (go_backwards, return_sequences) feeds "
                             "a recurrent layer a mask at the end of each row, which ONNX "
                             "sequence_lens cannot express")
        if (not cell.zero_output_for_mask and layer.return_sequences and not later
                and not isinstance(layer, Bidirectional)):
            raise ValueError(f"to_onnx: {layer.name!r} repeats its last output at masked steps "
                             "(zero_output_for_mask=False); ONNX writes zeros there. Set "
                             "zero_output_for_mask=True to export (it changes only the "
                             "outputs at masked steps)")


def _sequential_graph(g, model, with_lengths):
    first = model.layers[0]
    masked = with_lengths or (isinstance(first, Embedding) and first.mask_zero)
    _check_exportable(model, masked)
    inputs = []
    if isinstance(first, Embedding):
        x = "ids"
        inputs.append(g.h.make_tensor_value_info(x, g.onnx.TensorProto.INT64, ["B", "T"]))
    else:
        x = "x"
        inputs.append(g.h.make_tensor_value_info(x, g.elem, ["B", "T", model.input_shape[-1]]))
    lengths = None
    if with_lengths:
        lengths = "lengths"
        inputs.append(g.h.make_tensor_value_info(lengths, g.onnx.TensorProto.INT32, ["B"]))
    if isinstance(first, Embedding) and first.mask_zero:
        # mask_zero as lengths: the number of nonzero ids, i.e. zeros are trailing padding
        nonzero = g.node("Cast", [g.node("Not", [g.node("Equal", [
            x, g.const("zero", np.array(0, np.int64))])])], to=g.onnx.TensorProto.INT32)
        counted = g.node("ReduceSum", [nonzero, g.const("axes", np.array([1]))], keepdims=0)
        lengths = counted if lengths is None else g.node("Min", [lengths, counted])
    y = x
    for layer in model.layers:
        inner = layer.layer if isinstance(layer, TimeDistributed) else layer
        if isinstance(inner, Embedding):
            y = g.node("Gather", [g.const("embeddings", inner.get_weights()[0]), y], axis=0)
        elif isinstance(inner, (_Recurrent, Bidirectional)):
            y = _export_recurrent(g, inner, y, lengths)
        elif isinstance(inner, Dense):
            y = _export_dense(g, inner, y)
        # Dropout: the identity in inference
    y = g.node("Identity", [y], hint="y")
    shape = model._output_shapes()[-1]
    outputs = [g.h.make_tensor_value_info(y, g.elem, ["B"] + ["T"] * (len(shape) == 3)
                                          + [shape[-1]])]
    return inputs, outputs


def _stack_graph(g, stack, with_lengths):
    elem = g.elem
    layout = ["B", "T"] if stack.batch_first else ["T", "B"]
    inputs = [g.h.make_tensor_value_info("x", elem, layout + [stack.input_size])]
    lengths = None
    if with_lengths:
        lengths = "lengths"
        inputs.append(g.h.make_tensor_value_info(lengths, g.onnx.TensorProto.INT32, ["B"]))
    y = g.transpose("x", (1, 0, 2)) if stack.batch_first else "x"
    finals = [[], []]
    D = stack.directions
    for layer in stack.layers:
        cells = ([layer.forward_layer, layer.backward_layer] if stack.bidirectional
                 else [layer])
        out = _recurrent_node(g, y, cells, "bidirectional" if D == 2 else "forward", lengths)
        for i, state in enumerate(out[1:]):
            finals[i].append(state)
        # Y [T, D, B, H] -> [T, B, D*H]
        y = g.node("Reshape", [g.transpose(out[0], (0, 2, 1, 3)),
                               g.const("shape", np.array([0, 0, -1]))])
    output = g.transpose(y, (1, 0, 2)) if stack.batch_first else y
    outputs = [g.node("Identity", [output], hint="output")]
    names = ["h_n", "c_n"][:2 if stack.mode == "lstm" else 1]
    for name, parts in zip(names, finals):
        outputs.append(g.node("Identity", [g.node("Concat", parts, axis=0)
                                           if len(parts) > 1 else parts[0]], hint=name))
    shapes = [layout + [D * stack.hidden_size]] + [[stack.num_layers * D, "B",
                                                    stack.hidden_size]] * len(names)
    return inputs, [g.h.make_tensor_value_info(n, elem, s) for n, s in zip(outputs, shapes)]


def to_onnx(model, path, lengths=False):
    """Write `model` (a built Sequential, or an RNNStack) to `path` as an ONNX graph (opset
    17) and return the path.

    Inputs: `ids` (B, T) int64 when the model starts with an Embedding, else `x` (B, T, F)
    (an RNNStack: its own layout); with lengths=True also `lengths` (B,) int32, the valid
    steps of each post-padded row (ONNX sequence_lens). Embedding(mask_zero=True) becomes the
    count of nonzero ids per row: the graph treats zeros as trailing padding, so a row with a
    zero in the middle would be cut there (with lengths=True as well, the smaller of the
    two counts). Outputs: `y` (an RNNStack: output, h_n[, c_n]).
    Dropout is left out (inference). What ONNX cannot express is refused with ValueError.
    """
    onnx = _onnx()
    if isinstance(model, RNNStack):
        g = _Graph(onnx, model.dtype)
        inputs, outputs = _stack_graph(g, model, lengths)
    elif isinstance(model, Sequential):
        if not model.built:
            raise ValueError("model: build or call the model before exporting it")
        g = _Graph(onnx, model.layers[0].dtype)
        inputs, outputs = _sequential_graph(g, model, lengths)
    else:
        raise TypeError(f"model: expected a Sequential or an RNNStack, got "
                        f"{type(model).__name__}")
    graph = g.h.make_graph(g.nodes, getattr(model, "name", "rnn_stack"), inputs, outputs,
                           g.initializers)
    proto = g.h.make_model(graph, producer_name="seqcore",
                           opset_imports=[g.h.make_opsetid("", OPSET)])
    proto.ir_version = min(proto.ir_version, 8)     # readable by older runtimes too
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


# ================================================================================== import

def _attrs(node, onnx):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _as_str(v):
    return v.decode() if isinstance(v, bytes) else v


def _recurrent(kind):
    """Run an ONNX LSTM / GRU / RNN node with seqcore's kernels."""
    def run(inputs, attrs):
        X, W, R = inputs[:3]
        B_ = inputs[3] if len(inputs) > 3 else None
        seq_lens = inputs[4] if len(inputs) > 4 else None
        h0 = inputs[5] if len(inputs) > 5 else None
        c0 = inputs[6] if kind == "lstm" and len(inputs) > 6 else None
        if kind == "lstm" and len(inputs) > 7 and inputs[7] is not None and np.any(inputs[7]):
            raise NotImplementedError("LSTM with peepholes (input P): not supported")
        if attrs.get("clip") is not None:
            raise NotImplementedError(f"{_OP[kind]} with clip: not supported")
        if attrs.get("input_forget", 0):
            raise NotImplementedError("LSTM with input_forget=1: not supported")
        direction = _as_str(attrs.get("direction", "forward"))
        D = 2 if direction == "bidirectional" else 1
        activations = [_as_str(a) for a in attrs.get("activations", [])]
        default = {"lstm": ["Sigmoid", "Tanh", "Tanh"], "gru": ["Sigmoid", "Tanh"],
                   "rnn": ["Tanh"]}[kind]
        activation = "tanh"
        if kind == "rnn" and activations:
            if len(set(activations)) != 1 or activations[0] not in ("Tanh", "Relu"):
                raise NotImplementedError(f"RNN activations {activations}: seqcore has Tanh "
                                          "or Relu, the same for both directions")
            activation = activations[0].lower()
        elif activations and activations != default * D:
            raise NotImplementedError(f"{_OP[kind]} activations {activations}: seqcore has "
                                      f"the defaults {default}")
        layout = attrs.get("layout", 0)
        if layout == 1:                              # batch-first: (B, T, I)
            X = X.transpose(1, 0, 2)
            h0 = None if h0 is None else h0.transpose(1, 0, 2)
            c0 = None if c0 is None else c0.transpose(1, 0, 2)
        X = np.ascontiguousarray(X)
        T, Bn = X.shape[:2]
        H = attrs["hidden_size"]
        order = _FROM_ONNX_ORDER[kind]
        G = len(order)
        mask = None
        if seq_lens is not None:
            mask = ops.lengths_to_mask(np.asarray(seq_lens).astype(np.int64), T)
        ys, hs, cs = [], [], []
        for d in range(D):
            reverse = direction == "reverse" or d == 1
            kernel = np.ascontiguousarray(_gate_blocks(W[d].T, G, order, 1))
            recurrent = np.ascontiguousarray(_gate_blocks(R[d].T, G, order, 1))
            bias = None
            if B_ is not None:
                wb = _gate_blocks(B_[d][:G * H], G, order, 0)
                rb = _gate_blocks(B_[d][G * H:], G, order, 0)
            hd = None if h0 is None else h0[d]
            if kind == "lstm":
                bias = None if B_ is None else wb + rb
                y, h, c, _ = ops.lstm_forward(X, kernel, recurrent, bias, hd,
                                              None if c0 is None else c0[d], mask,
                                              reverse=reverse, training=False)
                cs.append(c)
            elif kind == "gru":
                reset_after = bool(attrs.get("linear_before_reset", 0))
                if B_ is not None:
                    bias = np.stack([wb, rb]) if reset_after else wb + rb
                elif reset_after:
                    bias = None
                y, h, _ = ops.gru_forward(X, kernel, recurrent, bias, hd, mask,
                                          reverse=reverse, reset_after=reset_after,
                                          training=False)
            else:
                bias = None if B_ is None else wb + rb
                y, h, _ = ops.rnn_forward(X, kernel, recurrent, bias, hd, mask,
                                          reverse=reverse, activation=activation,
                                          training=False)
            ys.append(y)
            hs.append(h)
        Y, Y_h = np.stack(ys, axis=1), np.stack(hs)
        outs = [Y, Y_h] + ([np.stack(cs)] if kind == "lstm" else [])
        if layout == 1:
            outs = [Y.transpose(2, 0, 1, 3)] + [o.transpose(1, 0, 2) for o in outs[1:]]
        return outs
    return run


def _axes(inputs, attrs, i=1):
    """Axes from the attribute (older opsets) or the i-th input (opset 13+)."""
    if len(inputs) > i and inputs[i] is not None:
        return tuple(int(a) for a in np.asarray(inputs[i]).ravel())
    a = attrs.get("axes")
    return None if a is None else tuple(int(v) for v in a)


def _slice(inputs, attrs):
    x = inputs[0]
    starts, ends = np.asarray(inputs[1]), np.asarray(inputs[2])
    axes = (np.asarray(inputs[3]) if len(inputs) > 3 and inputs[3] is not None
            else np.arange(len(starts)))
    steps = (np.asarray(inputs[4]) if len(inputs) > 4 and inputs[4] is not None
             else np.ones(len(starts), np.int64))
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = x.shape[int(a)]
        s, e, st = int(s), int(e), int(st)
        # ONNX clamps out-of-range ends; an end below -n means "through index 0" going back
        if st < 0 and e < -n:
            e = None
        else:
            e = max(min(e, n), -n - 1) if st > 0 else e
        index[int(a)] = slice(max(min(s, n), -n) if st > 0 else s, e, st)
    return [x[tuple(index)]]


def _reshape(inputs, attrs):
    x, shape = inputs[0], [int(v) for v in inputs[1]]
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return [x.reshape(shape)]


def _matmul(inputs, attrs):
    a, b = inputs
    if a.ndim >= 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f":
        lead = a.shape[:-1]
        out = ops.matmul(np.ascontiguousarray(a.reshape(-1, a.shape[-1])),
                         np.ascontiguousarray(b))
        return [out.reshape(lead + (b.shape[1],))]
    return [np.matmul(a, b)]


def _gemm(inputs, attrs):
    a, b = inputs[0], inputs[1]
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    y = attrs.get("alpha", 1.0) * _matmul([a, b], {})[0]
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + attrs.get("beta", 1.0) * inputs[2]
    return [y.astype(a.dtype, copy=False)]


def _softmax(inputs, attrs):
    """opset >= 13 Softmax: along one axis (the layers' softmax, moved to the last axis)."""
    x = inputs[0]
    axis = attrs.get("axis", -1) % max(1, x.ndim)
    moved = np.moveaxis(x, axis, -1)
    return [np.moveaxis(activations.get("softmax")[0](moved), -1, axis)]


def _int_divide(a, b):
    """ONNX integer Div truncates toward zero (NumPy's // floors)."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q).astype(np.result_type(a, b))


def _split(inputs, attrs, n_outputs):
    x, axis = inputs[0], attrs.get("axis", 0)
    split = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("split")
    if split is None:
        return np.split(x, n_outputs, axis=axis)
    return np.split(x, np.cumsum([int(s) for s in split])[:-1], axis=axis)


def _reduce(fn):
    def run(inputs, attrs):
        axes = _axes(inputs, attrs)
        keep = bool(attrs.get("keepdims", 1))
        if axes is None and attrs.get("noop_with_empty_axes", 0):
            return [inputs[0]]
        return [fn(inputs[0], axis=axes, keepdims=keep).astype(inputs[0].dtype, copy=False)]
    return run


def _cast(inputs, attrs, onnx):
    return [inputs[0].astype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))]


def _constant(inputs, attrs, onnx):
    if "value" in attrs:
        return [onnx.numpy_helper.to_array(attrs["value"])]
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64),
                       ("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return [np.asarray(attrs[key], dtype)]
    raise NotImplementedError(f"Constant with {sorted(attrs)}")


def _constant_of_shape(inputs, attrs, onnx):
    value = attrs.get("value")
    fill = onnx.numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    return [np.full([int(v) for v in inputs[0]], fill.ravel()[0], fill.dtype)]


_NUMPY = {
    "Identity": lambda i, a: [i[0]],
    "Shape": lambda i, a: [np.array(i[0].shape[a.get("start", 0):a.get("end")], np.int64)],
    "Gather": lambda i, a: [np.take(i[0], i[1].astype(np.int64), axis=a.get("axis", 0))],
    "Unsqueeze": lambda i, a: [np.expand_dims(i[0], tuple(
        ax % (i[0].ndim + len(_axes(i, a))) for ax in _axes(i, a)))],
    "Squeeze": lambda i, a: [np.squeeze(i[0], axis=_axes(i, a))],
    "Concat": lambda i, a: [np.concatenate(i, axis=a["axis"])],
    "Slice": _slice,
    "Reshape": _reshape,
    "Transpose": lambda i, a: [np.transpose(i[0], a.get("perm"))],
    "Expand": lambda i, a: [np.broadcast_to(i[0], np.broadcast_shapes(
        i[0].shape, tuple(int(v) for v in i[1]))).copy()],
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Add": lambda i, a: [i[0] + i[1]],
    "Sub": lambda i, a: [i[0] - i[1]],
    "Mul": lambda i, a: [i[0] * i[1]],
    "Div": lambda i, a: [i[0] / i[1] if i[0].dtype.kind == "f" else _int_divide(i[0], i[1])],
    "Relu": lambda i, a: [activations.get("relu")[0](i[0])],
    "Tanh": lambda i, a: [activations.get("tanh")[0](i[0])],
    "Sigmoid": lambda i, a: [activations.sigmoid(i[0])],
    "Softmax": _softmax,
    "Equal": lambda i, a: [np.equal(i[0], i[1])],
    "Not": lambda i, a: [np.logical_not(i[0])],
    "Where": lambda i, a: [np.where(i[0], i[1], i[2])],
    "Min": lambda i, a: [np.minimum.reduce(i)],
    "ReduceSum": _reduce(np.sum),
    "ReduceMean": _reduce(np.mean),
    "LSTM": _recurrent("lstm"),
    "GRU": _recurrent("gru"),
    "RNN": _recurrent("rnn"),
}
_WITH_ONNX = {"Cast": _cast, "Constant": _constant, "ConstantOfShape": _constant_of_shape}
SUPPORTED_OPS = tuple(sorted(set(_NUMPY) | set(_WITH_ONNX) | {"Split", "Dropout"}))


class OnnxModel:
    """An ONNX graph run by seqcore: call with the graph inputs (positionally or by name);
    returns the graph outputs (one array, or a list when there are several)."""

    def __init__(self, proto):
        onnx = _onnx()
        self._onnx = onnx
        graph = proto.graph
        for opset in proto.opset_import:
            if opset.domain not in ("", "ai.onnx"):
                raise ValueError(f"from_onnx: operators of domain {opset.domain!r} are not "
                                 "supported")
        unknown = sorted({n.op_type for n in graph.node} - set(SUPPORTED_OPS))
        if unknown:
            raise ValueError(f"from_onnx: operators {unknown} are not supported; seqcore runs "
                             f"{', '.join(SUPPORTED_OPS)}")
        self.constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in self.constants]
        self.output_names = [o.name for o in graph.output]
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n, onnx))
                      for n in graph.node]

    def __call__(self, *args, **kwargs):
        if len(args) > len(self.input_names):
            raise TypeError(f"expected at most {len(self.input_names)} inputs "
                            f"({', '.join(self.input_names)}), got {len(args)}")
        values = dict(self.constants)
        given = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k not in self.input_names:
                raise TypeError(f"unknown input {k!r}; the graph takes {self.input_names}")
            given[k] = v
        missing = [n for n in self.input_names if n not in given]
        if missing:
            raise TypeError(f"missing inputs {missing}")
        values.update({k: np.asarray(v) for k, v in given.items()})
        values[""] = None
        for op, inputs, outputs, attrs in self.nodes:
            args_ = [values[name] for name in inputs]
            if op in _WITH_ONNX:
                result = _WITH_ONNX[op](args_, attrs, self._onnx)
            elif op == "Split":
                result = _split(args_, attrs, len(outputs))
            elif op == "Dropout":
                result = [args_[0], np.ones(args_[0].shape, bool)]
            else:
                result = _NUMPY[op](args_, attrs)
            for name, value in zip(outputs, result):
                values[name] = np.asarray(value)
        out = [values[n] for n in self.output_names]
        return out[0] if len(out) == 1 else out


def from_onnx(path):
    """An OnnxModel running the graph in `path` (see the module docstring for what it
    reads; unsupported operators are named in a ValueError)."""
    onnx = _onnx()
    return OnnxModel(onnx.load(str(path)))
