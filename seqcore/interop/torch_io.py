"""PyTorch <-> seqcore for torch.nn.LSTM, torch.nn.GRU and torch.nn.RNN.

from_torch takes the module itself or only its state_dict (then torch need not be installed:
the hyper-parameters are read off the parameter names and shapes). to_torch imports torch.
"""
import re

import numpy as np

from .stack import RNNStack

__all__ = ["from_torch", "to_torch"]

_TORCH_MODES = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}
_PARAMETER = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


def _to_numpy(value, name):
    if hasattr(value, "detach"):                 # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise TypeError(f"state_dict[{name!r}]: expected a floating tensor, got {a.dtype}")
    return a


def _from_state_dict(state_dict, batch_first, nonlinearity):
    arrays = {}
    for name, value in state_dict.items():
        m = _PARAMETER.match(name)
        if m is None:
            raise ValueError(f"state_dict: {name!r} is not a parameter of torch.nn.LSTM, GRU "
                             "or RNN (expected names like 'weight_ih_l0', 'bias_hh_l1_reverse')")
        if m.group(2) == "hr":
            raise NotImplementedError("LSTM with proj_size > 0 (weight_hr_*): projected LSTMs "
                                      "are not supported by seqcore")
        arrays[name] = _to_numpy(value, name)
    if "weight_ih_l0" not in arrays or "weight_hh_l0" not in arrays:
        raise ValueError("state_dict: expected at least 'weight_ih_l0' and 'weight_hh_l0'")
    H = arrays["weight_hh_l0"].shape[1]
    gates = arrays["weight_ih_l0"].shape[0] // H
    mode = {4: "lstm", 3: "gru", 1: None}.get(gates)
    if arrays["weight_ih_l0"].shape[0] != gates * H or (gates not in (4, 3, 1)):
        raise ValueError(f"state_dict: weight_ih_l0 has {arrays['weight_ih_l0'].shape[0]} rows "
                         f"for hidden size {H}: not 4H (LSTM), 3H (GRU) or H (RNN)")
    if mode is None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        mode = f"rnn_{nonlinearity}"
    num_layers = 1 + max(int(_PARAMETER.match(n).group(3)) for n in arrays)
    stack = RNNStack(mode, input_size=arrays["weight_ih_l0"].shape[1], hidden_size=H,
                     num_layers=num_layers, bias="bias_ih_l0" in arrays,
                     batch_first=batch_first,
                     bidirectional=any(n.endswith("_reverse") for n in arrays),
                     dtype=(np.float64 if np.result_type(*arrays.values()) == np.float64
                            else np.float32))     # half precision computes in float32
    stack.load_state_dict(arrays)
    return stack


def from_torch(module, batch_first=None, nonlinearity="tanh"):
    """An RNNStack computing what `module` computes.

    module: a torch.nn.LSTM / GRU / RNN, or the state_dict of one (a mapping of its parameter
    names to tensors or arrays). With a state_dict, the kind of cell, sizes, layers, bias and
    bidirectionality come from the names and shapes; give `batch_first` (default False) and,
    for an RNN, `nonlinearity` ('tanh' or 'relu') as the module had them.
    proj_size > 0 is refused (NotImplementedError). The module's dropout between layers only
    acts in training, so it does not change what the stack computes.
    """
    if isinstance(module, dict) or (hasattr(module, "keys") and hasattr(module, "items")
                                    and not hasattr(module, "state_dict")):
        return _from_state_dict(dict(module), bool(batch_first), nonlinearity)
    mode = getattr(module, "mode", None)
    if type(module).__name__ not in ("LSTM", "GRU", "RNN") or mode not in _TORCH_MODES:
        raise TypeError(f"module: expected a torch.nn.LSTM, GRU or RNN (or its state_dict), "
                        f"got {type(module).__name__}")
    if getattr(module, "proj_size", 0):
        raise NotImplementedError(f"LSTM with proj_size={module.proj_size}: projected LSTMs "
                                  "are not supported by seqcore")
    if batch_first is not None and bool(batch_first) != module.batch_first:
        raise ValueError(f"batch_first={batch_first!r} contradicts the module's "
                         f"batch_first={module.batch_first}")
    stack = _from_state_dict(module.state_dict(), module.batch_first,
                             "relu" if mode == "RNN_RELU" else "tanh")
    expected = (_TORCH_MODES[mode], module.input_size, module.hidden_size, module.num_layers)
    got = (stack.mode, stack.input_size, stack.hidden_size, stack.num_layers)
    if got != expected:     # names and shapes disagree with the module's own attributes
        raise ValueError(f"module: its parameters describe {got}, its attributes {expected}")
    return stack


def to_torch(stack):
    """A torch.nn.LSTM / GRU / RNN (eval mode) with the stack's hyper-parameters and weights."""
    import torch

    if not isinstance(stack, RNNStack):
        raise TypeError(f"stack: expected an RNNStack (what from_torch returns), got "
                        f"{type(stack).__name__}")
    options = dict(input_size=stack.input_size, hidden_size=stack.hidden_size,
                   num_layers=stack.num_layers, bias=stack.bias, batch_first=stack.batch_first,
                   bidirectional=stack.bidirectional)
    if stack.mode == "lstm":
        module = torch.nn.LSTM(**options)
    elif stack.mode == "gru":
        module = torch.nn.GRU(**options)
    else:
        module = torch.nn.RNN(nonlinearity=stack.mode[4:], **options)
    dtype = torch.float64 if stack.dtype == np.float64 else torch.float32
    module = module.to(dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in stack.state_dict().items()})
    return module.eval()
