"""Layers (DESIGN.md section 2) and their (de)serialization as plain JSON values."""
from .base import Layer
from .core import Dense, Dropout, Embedding
from .recurrent import GRU, LSTM, SimpleRNN
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "TimeDistributed", "Dense",
           "Embedding", "Dropout", "serialize", "deserialize", "LAYERS"]

# the only classes a model file can name: loading never imports or runs anything else
LAYERS = {cls.__name__: cls for cls in (LSTM, GRU, SimpleRNN, Bidirectional, TimeDistributed,
                                        Dense, Embedding, Dropout)}


def serialize(layer):
    """{'class_name': ..., 'config': {...}}: JSON values that rebuild the layer (no weights)."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(spec):
    """The layer described by serialize()'s output; unknown classes are refused."""
    if not isinstance(spec, dict) or "class_name" not in spec or "config" not in spec:
        raise ValueError(f"layer spec: expected {{'class_name': ..., 'config': ...}}, got "
                         f"{spec!r:.200}")
    cls = LAYERS.get(spec["class_name"])
    if cls is None:
        raise ValueError(f"layer spec: unknown layer class {spec['class_name']!r}; known: "
                         f"{sorted(LAYERS)}")
    if not isinstance(spec["config"], dict):
        raise ValueError(f"layer spec: config of {spec['class_name']} must be a dict")
    try:
        return cls.from_config(spec["config"])
    except TypeError as e:
        raise ValueError(f"layer spec: bad config for {spec['class_name']}: {e}") from None
