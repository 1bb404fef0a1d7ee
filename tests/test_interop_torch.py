"""seqcore.interop.from_torch / to_torch against torch.nn.LSTM, GRU and RNN themselves."""
import numpy as np
import pytest

from seqcore.interop import RNNStack, from_torch, to_torch

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install "
                                            "torch==2.13.0)")

CELLS = {
    "lstm": lambda **kw: torch.nn.LSTM(**kw),
    "gru": lambda **kw: torch.nn.GRU(**kw),
    "rnn_tanh": lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw),
}


def _torch_run(module, x, lengths, state):
    """What the module returns for x (its own layout), lengths through packed sequences."""
    batch_first = module.batch_first
    T = x.shape[1] if batch_first else x.shape[0]
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if lengths is not None:
            xt = torch.nn.utils.rnn.pack_padded_sequence(
                xt, torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False)
        y, finals = module(xt, state)
        if lengths is not None:
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=batch_first,
                                                          total_length=T)
    finals = finals if isinstance(finals, tuple) else (finals,)
    return y.numpy(), [f.numpy() for f in finals]


def _compare(module, stack, x, lengths=None, state=None, tol=1e-5):
    y_t, fin_t = _torch_run(module, x, lengths, state)
    np_state = None
    if state is not None:
        np_state = tuple(s.numpy() for s in state) if isinstance(state, tuple) else state.numpy()
    y_s, fin_s = stack(x, lengths=lengths, initial_state=np_state)
    fin_s = fin_s if isinstance(fin_s, tuple) else (fin_s,)
    scale = max(1.0, float(np.abs(y_t).max()))
    assert y_s.shape == y_t.shape and y_s.dtype == y_t.dtype
    np.testing.assert_allclose(y_s, y_t, atol=tol * scale, rtol=0)
    for a, b in zip(fin_s, fin_t):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=tol * scale, rtol=0)


@pytest.mark.parametrize("mode", sorted(CELLS))
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
def test_from_torch_matches_module(mode, num_layers, bidirectional, batch_first, ragged):
    torch.manual_seed(num_layers)
    module = CELLS[mode](input_size=5, hidden_size=7, num_layers=num_layers,
                         bidirectional=bidirectional, batch_first=batch_first).eval()
    rng = np.random.default_rng(0)
    B, T = 4, 9
    x = rng.standard_normal((B, T, 5) if batch_first else (T, B, 5)).astype(np.float32)
    lengths = np.array([9, 3, 1, 6]) if ragged else None
    stack = from_torch(module)
    _compare(module, stack, x, lengths)
    # initial states, (num_layers * directions, B, H)
    D = 2 if bidirectional else 1
    h0 = torch.randn(num_layers * D, B, 7)
    state = (h0, torch.randn(num_layers * D, B, 7)) if mode == "lstm" else h0
    _compare(module, stack, x, lengths, state)


@pytest.mark.parametrize("mode", sorted(CELLS))
def test_round_trip_is_exact(mode):
    torch.manual_seed(1)
    module = CELLS[mode](input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    back = to_torch(from_torch(module))
    assert type(back) is type(module) and back.mode == module.mode
    assert back.batch_first == module.batch_first
    original, returned = module.state_dict(), back.state_dict()
    assert list(original) == list(returned)
    for name in original:
        assert torch.equal(original[name], returned[name]), name
    # and an RNNStack made here goes to torch and back unchanged
    stack = RNNStack(mode, 3, 4, num_layers=2, batch_first=True)
    again = from_torch(to_torch(stack))
    for name, value in stack.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], value)


def test_state_dict_without_torch_module_and_float64():
    torch.manual_seed(2)
    module = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    # what a service without torch would load: plain arrays under torch's names
    arrays = {k: v.numpy().copy() for k, v in module.state_dict().items()}
    stack = from_torch(arrays, batch_first=True)
    assert stack.mode == "gru" and stack.num_layers == 2 and stack.bidirectional
    assert stack.dtype == np.float64
    x = np.random.default_rng(1).standard_normal((2, 6, 3))
    _compare(module.eval(), stack, x, np.array([6, 2]), tol=1e-12)


def test_relu_rnn_from_state_dict_needs_nonlinearity():
    torch.manual_seed(3)
    module = torch.nn.RNN(3, 4, nonlinearity="relu").eval()
    x = np.random.default_rng(2).standard_normal((5, 2, 3)).astype(np.float32)
    _compare(module, from_torch(module.state_dict(), nonlinearity="relu"), x)
    assert from_torch(module.state_dict()).mode == "rnn_tanh"     # torch's default


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
def test_no_bias(mode):
    torch.manual_seed(4)
    module = CELLS[mode](input_size=3, hidden_size=4, bias=False).eval()
    stack = from_torch(module)
    assert not stack.bias
    _compare(module, stack, np.random.default_rng(3).standard_normal((4, 2, 3)).astype(np.float32))
    assert list(to_torch(stack).state_dict()) == list(module.state_dict())


def test_changed_weights_go_back_to_torch():
    torch.manual_seed(5)
    module = torch.nn.LSTM(3, 4).eval()
    stack = from_torch(module)
    stack.layers[0].weights[2][...] += 0.5          # the summed bias changed
    x = np.random.default_rng(4).standard_normal((5, 2, 3)).astype(np.float32)
    _compare(to_torch(stack), stack, x)


def test_refusals():
    with pytest.raises(NotImplementedError, match="proj_size"):
        from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(TypeError, match="torch.nn.LSTM, GRU or RNN"):
        from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="not a parameter"):
        from_torch({"weight": np.zeros((4, 3), np.float32)})
    module = torch.nn.LSTM(3, 4)
    with pytest.raises(ValueError, match="batch_first"):
        from_torch(module, batch_first=True)
    stack = from_torch(module)
    with pytest.raises(ValueError, match=r"x: expected shape \(T, B, input_size\)"):
        stack(np.zeros((5, 2, 4), np.float32))
    with pytest.raises(ValueError, match="initial_state h_0"):
        stack(np.zeros((5, 2, 3), np.float32), initial_state=(np.zeros((1, 3, 4)),
                                                                np.zeros((1, 2, 4))))
    with pytest.raises(ValueError, match=r"lengths: every length must be in \[0, T=5\]"):
        stack(np.zeros((5, 2, 3), np.float32), lengths=np.array([6, 1]))
    sd = {k: v.numpy() for k, v in module.state_dict().items()}
    sd["weight_hh_l0"] = sd["weight_hh_l0"][:, :3]
    with pytest.raises(ValueError):
        stack.load_state_dict(sd)
