"""The reference agrees with PyTorch's nn.LSTM / nn.GRU / nn.RNN (forward and gradients),
including bidirectional layers over packed variable-length batches."""
import numpy as np
import pytest

from seqcore import reference
from rnn_cases import forward, backward, lengths_to_mask, loss_weights, make_problem

torch = pytest.importorskip("torch")

# variant -> (torch module class name, torch keyword arguments)
TORCH_VARIANTS = {
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),                     # torch's GRU is reset_after=True
    "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
    "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
}


def keras_to_torch(variant, kernel, recurrent_kernel, bias):
    """Keras layout (I, G*H) with Keras gate order -> torch (weight_ih, weight_hh, bias_ih,
    bias_hh). LSTM gate order i,f,c,o is torch's i,f,g,o; GRU z,r,n becomes torch r,z,n."""
    H = recurrent_kernel.shape[0]
    G = recurrent_kernel.shape[1] // H
    order = np.arange(G * H)
    if variant == "gru":
        order = np.concatenate([np.arange(H, 2 * H), np.arange(H), np.arange(2 * H, 3 * H)])
    if variant == "gru":
        bias_ih, bias_hh = bias[0][order], bias[1][order]
    else:
        bias_ih, bias_hh = bias[order], np.zeros(G * H)
    return kernel[:, order].T, recurrent_kernel[:, order].T, bias_ih, bias_hh


def build_torch(variant, directions):
    """A torch module with each direction's weights taken from a reference Problem."""
    name, kwargs = TORCH_VARIANTS[variant]
    p0 = directions[0]
    I, H = p0.x.shape[2], p0.recurrent_kernel.shape[0]
    module = getattr(torch.nn, name)(I, H, bidirectional=len(directions) == 2, **kwargs).double()
    with torch.no_grad():
        for suffix, p in zip(["", "_reverse"], directions):
            for param, value in zip(["weight_ih", "weight_hh", "bias_ih", "bias_hh"],
                                    keras_to_torch(variant, p.kernel, p.recurrent_kernel, p.bias)):
                getattr(module, f"{param}_l0{suffix}").copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module


def torch_state(finals_per_direction, k):
    return torch.from_numpy(np.stack([f[k] for f in finals_per_direction]))


@pytest.mark.parametrize("variant", list(TORCH_VARIANTS))
@pytest.mark.parametrize("packed", [False, True])
def test_bidirectional_matches_torch(variant, packed):
    T, B, I, H = 6, 4, 3, 5
    lengths = [6, 2, 4, 1] if packed else [T] * B
    fwd = make_problem(variant, T, B, I, H, initial=True, seed=21)
    bwd = make_problem(variant, T, B, I, H, initial=True, seed=22, reverse=True)
    bwd.x = fwd.x
    for p in (fwd, bwd):
        p.mask = lengths_to_mask(lengths, T)
    module = build_torch(variant, [fwd, bwd])

    # torch
    x = torch.from_numpy(fwd.x.copy()).requires_grad_()
    n_states = len(fwd.states)
    init = [torch_state([fwd.states, bwd.states], k).requires_grad_() for k in range(n_states)]
    inp = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
    out, finals = module(inp, tuple(init) if n_states == 2 else init[0])
    if packed:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    finals = finals if n_states == 2 else (finals,)

    # reference, one call per direction
    ref = [forward(reference, p) for p in (fwd, bwd)]
    np.testing.assert_allclose(out.detach().numpy(), np.concatenate([ref[0][0], ref[1][0]], 2),
                               atol=1e-12)
    for k in range(n_states):
        np.testing.assert_allclose(finals[k].detach().numpy(),
                                   np.stack([ref[0][1][k], ref[1][1][k]]), atol=1e-12)

    # gradients of one scalar loss through both
    R_out, R_finals = loss_weights(fwd, seed=5)
    R_out2, R_finals2 = loss_weights(fwd, seed=6)
    total = (out * torch.from_numpy(np.concatenate([R_out, R_out2], 2))).sum()
    for k in range(n_states):
        total = total + (finals[k] * torch.from_numpy(np.stack([R_finals[k], R_finals2[k]]))).sum()
    total.backward()
    g_f, ds_f = backward(reference, fwd, R_out, R_finals, ref[0][2])
    g_b, ds_b = backward(reference, bwd, R_out2, R_finals2, ref[1][2])
    np.testing.assert_allclose(x.grad.numpy(), g_f[0] + g_b[0], atol=1e-12)
    for k in range(n_states):
        np.testing.assert_allclose(init[k].grad.numpy(), np.stack([ds_f[k], ds_b[k]]), atol=1e-12)
    for suffix, grads, p in [("", g_f, fwd), ("_reverse", g_b, bwd)]:
        expected = keras_to_torch(variant, grads[1], grads[2], grads[3])
        # bias_hh is a second copy of the bias for LSTM/RNN; only GRU's is its own weight
        params = ["weight_ih", "weight_hh", "bias_ih"] + (["bias_hh"] if variant == "gru" else [])
        for param, value in zip(params, expected):
            np.testing.assert_allclose(getattr(module, f"{param}_l0{suffix}").grad.numpy(), value,
                                       atol=1e-12, err_msg=param + suffix)
