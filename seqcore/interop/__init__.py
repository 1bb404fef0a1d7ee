"""Models trained elsewhere, in seqcore, and back (issue 5).

    from_torch(module_or_state_dict) -> RNNStack      to_torch(stack) -> torch.nn.LSTM/GRU/RNN
    from_keras(path) -> Sequential                    (.keras and legacy .h5, needs h5py only)
    to_onnx(model, path) / from_onnx(path)            (need the onnx package)

None of them imports a framework unless it is called, and torch / Keras / TensorFlow are
never needed to load a model.
"""
from .keras_io import KerasFormatError, from_keras
from .onnx_io import OnnxModel, from_onnx, to_onnx
from .stack import RNNStack
from .torch_io import from_torch, to_torch

__all__ = ["RNNStack", "from_torch", "to_torch", "from_keras", "KerasFormatError", "to_onnx",
           "from_onnx", "OnnxModel"]
