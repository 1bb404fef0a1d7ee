"""seqcore.interop.to_onnx / from_onnx: exported graphs run in onnxruntime, and torch.onnx
exports of nn.LSTM / nn.GRU models run by seqcore."""
import warnings

import numpy as np
import pytest

import seqcore as sc
from seqcore.interop import from_onnx, from_torch, to_onnx

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install "
                                                "onnxruntime)")

VOCAB = 11


def _run_ort(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _ids(rng, B=5, T=7):
    lengths = np.array([7, 1, 4, 6, 3])[:B]
    x = rng.integers(1, VOCAB, (B, T))
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return x


def _close(got, want, tol=1e-5):
    scale = max(1.0, float(np.abs(want).max()))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=tol * scale, rtol=0)


MODELS = {
    "embedding_bilstm_gru_birnn_ave": lambda: [
        sc.Embedding(VOCAB, 4, mask_zero=True, seed=1),
        sc.Bidirectional(sc.LSTM(3, return_sequences=True, seed=2)),
        sc.Dropout(0.3),
        sc.GRU(5, return_sequences=True, seed=3),
        sc.Bidirectional(sc.SimpleRNN(2, activation="relu", seed=4), merge_mode="ave"),
        sc.Dense(3, activation="softmax", seed=5)],
    "sum_mul_sequences_time_distributed": lambda: [
        sc.Embedding(VOCAB, 4, mask_zero=True, seed=1),
        sc.Bidirectional(sc.GRU(3, return_sequences=True, seed=2), merge_mode="sum"),
        sc.Bidirectional(sc.LSTM(3, return_sequences=True, seed=3), merge_mode="mul"),
        sc.TimeDistributed(sc.Dense(2, activation="tanh", seed=4))],
    "gru_v1_no_bias_go_backwards": lambda: [
        sc.Embedding(VOCAB, 4, seed=1),
        sc.GRU(4, reset_after=False, return_sequences=True, seed=2),
        sc.LSTM(3, use_bias=False, return_sequences=True, seed=3),
        sc.SimpleRNN(3, go_backwards=True, return_sequences=True, seed=4),
        sc.Dense(2, activation="sigmoid", seed=5)],
    "float_input_concat_last_state": lambda: [
        sc.Bidirectional(sc.LSTM(4, return_sequences=True, seed=1)),
        sc.GRU(3, go_backwards=True, seed=2),
        sc.Dense(2, activation="relu", seed=3)],
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("lengths", [False, True])
def test_exported_model_runs_in_onnxruntime(name, lengths, tmp_path):
    model = sc.Sequential(MODELS[name]())
    rng = np.random.default_rng(0)
    embedded = isinstance(model.layers[0], sc.Embedding)
    x = _ids(rng) if embedded else rng.standard_normal((5, 7, 3)).astype(np.float32)
    model.build(x.shape)
    path = to_onnx(model, tmp_path / "model.onnx", lengths=lengths)
    feeds = {"ids" if embedded else "x": x}
    row_lengths = None
    if lengths:
        row_lengths = np.array([7, 2, 5, 0, 3], np.int32)
        feeds["lengths"] = row_lengths
    expected = model.predict(x, lengths=row_lengths)
    (got,) = _run_ort(path, feeds)
    _close(got, expected)
    _close(from_onnx(path)(**feeds), expected)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_rnn_stack_exports_with_states(mode, batch_first, tmp_path):
    stack = sc.interop.RNNStack(mode, 3, 4, num_layers=2, bidirectional=True,
                                batch_first=batch_first)
    rng = np.random.default_rng(1)
    for w in (w for layer in stack.layers for w in layer.weights):
        w[...] = rng.uniform(-0.5, 0.5, w.shape)
    x = rng.standard_normal((2, 6, 3) if batch_first else (6, 2, 3)).astype(np.float32)
    lengths = np.array([6, 3], np.int32)
    path = to_onnx(stack, tmp_path / "stack.onnx", lengths=True)
    output, finals = stack(x, lengths=lengths)
    expected = [output] + (list(finals) if mode == "lstm" else [finals])
    for got in (_run_ort(path, {"x": x, "lengths": lengths}), from_onnx(path)(x, lengths)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _close(g, e)


def _torch_export(module, args, path, names):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install "
                                                "torch==2.13.0)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript exporter, which writes the ONNX LSTM/GRU operators
        # (the dynamo exporter needs the onnxscript package)
        torch.onnx.export(module, args, str(path), dynamo=False, input_names=names,
                          dynamic_axes={n: {0: "d0", 1: "d1"} for n in names[:1]})
    return torch


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_onnx_export_runs_in_seqcore(cell, bidirectional, tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")

    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, cell)(5, 6, num_layers=2, batch_first=True,
                                               bidirectional=bidirectional)
            self.head = torch.nn.Linear(6 * (2 if bidirectional else 1), 3)

        def forward(self, x):
            y, _ = self.rnn(x)
            return torch.softmax(self.head(y), dim=-1)

    torch.manual_seed(0)
    module = Tagger().eval()
    x = torch.randn(4, 9, 5)
    _torch_export(module, (x,), tmp_path / "tagger.onnx", ["x"])
    imported = from_onnx(tmp_path / "tagger.onnx")
    with torch.no_grad():
        for B, T in ((4, 9), (1, 3)):          # other shapes than the traced one
            xi = torch.randn(B, T, 5)
            _close(imported(xi.numpy()), module(xi).numpy())


def test_torch_onnx_export_with_initial_state(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(3, 4, num_layers=2).eval()
    x, h0, c0 = torch.randn(6, 2, 3), torch.randn(2, 2, 4), torch.randn(2, 2, 4)
    _torch_export(lstm, (x, (h0, c0)), tmp_path / "lstm.onnx", ["x", "h0", "c0"])
    with torch.no_grad():
        y, (h, c) = lstm(x, (h0, c0))
    got = from_onnx(tmp_path / "lstm.onnx")(x.numpy(), h0.numpy(), c0.numpy())
    for g, e in zip(got, (y, h, c)):
        _close(g, e.numpy())
    # and what from_torch builds agrees with both
    ours, (h2, c2) = from_torch(lstm)(x.numpy(), initial_state=(h0.numpy(), c0.numpy()))
    _close(ours, y.numpy())


def test_unsupported_operator_is_named(tmp_path):
    h = onnx.helper
    node = h.make_node("Conv", ["x", "w"], ["y"])
    graph = h.make_graph([node], "g", [h.make_tensor_value_info("x", 1, [1, 1, 3])],
                         [h.make_tensor_value_info("y", 1, None)],
                         [onnx.numpy_helper.from_array(np.ones((1, 1, 1), np.float32), "w")])
    onnx.save(h.make_model(graph), tmp_path / "conv.onnx")
    with pytest.raises(ValueError, match=r"operators \['Conv'\] are not supported"):
        from_onnx(tmp_path / "conv.onnx")


def test_export_refuses_what_onnx_cannot_express(tmp_path):
    path = tmp_path / "m.onnx"
    stateful = sc.Sequential([sc.LSTM(2, stateful=True)])
    stateful.build((1, 3, 2))
    with pytest.raises(ValueError, match="stateful"):
        to_onnx(stateful, path)
    carried = sc.Sequential([sc.Embedding(5, 2, mask_zero=True),
                             sc.LSTM(2, return_sequences=True, zero_output_for_mask=False)])
    carried.build((None, None))
    with pytest.raises(ValueError, match="zero_output_for_mask"):
        to_onnx(carried, path)
    backwards = sc.Sequential([sc.Embedding(5, 2, mask_zero=True),
                               sc.LSTM(2, return_sequences=True, go_backwards=True),
                               sc.GRU(2)])
    backwards.build((None, None))
    with pytest.raises(ValueError, match="sequence_lens cannot express"):
        to_onnx(backwards, path)
    with pytest.raises(ValueError, match="build or call"):
        to_onnx(sc.Sequential([sc.LSTM(2)]), path)
    with pytest.raises(TypeError, match="Sequential or an RNNStack"):
        to_onnx(sc.LSTM(2), path)


def test_numpy_operators_agree_with_onnxruntime(tmp_path):
    """The non-recurrent operators from_onnx runs in NumPy, each against onnxruntime."""
    h, F, I64 = onnx.helper, onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    c = lambda name, a: onnx.numpy_helper.from_array(np.asarray(a), name)   # noqa: E731
    inits = [c("two", np.float32(2.0)), c("W", np.arange(12, dtype=np.float32).reshape(3, 4)),
             c("bias3", np.float32([1, -1, 0.5])), c("flat", np.int64([6, 4])),
             c("shape", np.int64([2, 3, 4])),
             c("three", np.int64(3)), c("k", np.int64([-7, 7])), c("one4", np.int64([1, 4]))]
    nodes = [
        h.make_node("Sub", ["a", "b"], ["sub"]),
        h.make_node("Div", ["a", "two"], ["div"]),
        h.make_node("Reshape", ["a", "flat"], ["a2"]),
        h.make_node("Gemm", ["a2", "W", "bias3"], ["gemm"], transB=1, alpha=0.5, beta=2.0),
        h.make_node("Expand", ["b", "shape"], ["expand"]),
        h.make_node("ReduceMean", ["a"], ["mean"], axes=[1], keepdims=1),
        h.make_node("Softmax", ["a"], ["softmax"], axis=1),
        h.make_node("Div", ["k", "n"], ["idiv"]),
        h.make_node("Equal", ["n", "three"], ["eq"]),
        h.make_node("Where", ["eq", "k", "n"], ["where"]),
        h.make_node("Constant", [], ["cf"], value_float=1.5),
        h.make_node("Mul", ["b", "cf"], ["scaled"]),
        h.make_node("Reshape", ["b", "one4"], ["b14"]),
        h.make_node("Squeeze", ["b14"], ["squeezed"]),
        h.make_node("Dropout", ["a"], ["dropped"]),
        h.make_node("Sigmoid", ["a"], ["sig"]),
    ]
    outputs = ["sub", "div", "gemm", "expand", "mean", "softmax", "idiv", "where", "scaled",
               "squeezed", "dropped", "sig"]
    graph = h.make_graph(
        nodes, "ops", [h.make_tensor_value_info("a", F, [2, 3, 4]),
                       h.make_tensor_value_info("b", F, [4]),
                       h.make_tensor_value_info("n", I64, [2])],
        [h.make_tensor_value_info(o, I64 if o in ("idiv", "where") else F, None)
         for o in outputs], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "ops.onnx"
    onnx.save(model, path)
    rng = np.random.default_rng(5)
    feeds = {"a": rng.standard_normal((2, 3, 4)).astype(np.float32) * 30,
             "b": rng.standard_normal(4).astype(np.float32), "n": np.int64([2, 3])}
    expected = _run_ort(path, feeds)
    got = from_onnx(path)(**feeds)
    for name, g, e in zip(outputs, got, expected):
        assert g.dtype == e.dtype, name
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6, err_msg=name)
