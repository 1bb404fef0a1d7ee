"""Keras model files -> seqcore Sequential, read with h5py and json only (no Keras, no
TensorFlow, nothing executed from the file).

Two containers:
- Keras 3 `.keras`: a zip of config.json (the architecture) and model.weights.h5, where each
  layer's arrays sit under layers/<snake_case class name, numbered in layer order>/...;
- legacy `.h5` (Keras 2 / tf.keras and Keras 3's legacy writer): attribute model_config (JSON)
  and group model_weights/<layer name>, whose attribute weight_names lists its arrays in order.

The model must be a chain: a Sequential, or a functional model in which every layer takes the
previous layer's single output. Supported layers are those of seqcore.layers: Embedding,
LSTM, GRU, SimpleRNN, Bidirectional, TimeDistributed, Dense, Dropout (and InputLayer).
"""
import io
import json
import os
import re
import zipfile

import numpy as np

from ..layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, SimpleRNN
from ..layers import TimeDistributed
from ..layers.recurrent import _Recurrent
from ..model import Sequential

__all__ = ["from_keras", "KerasFormatError"]

SUPPORTED = ("InputLayer", "Embedding", "LSTM", "GRU", "SimpleRNN", "Bidirectional",
             "TimeDistributed", "Dense", "Dropout")
_RECURRENT = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}


class KerasFormatError(ValueError):
    """The file is not a Keras model seqcore can read, or uses something seqcore lacks."""


# ---------------------------------------------------------------------------- architecture

def _dtype(config):
    """float64 when the layer's dtype policy says so, else float32 (mixed policies compute
    in float32 here)."""
    policy = config.get("dtype")
    if isinstance(policy, dict):
        policy = policy.get("config", {}).get("name")
    return "float64" if policy == "float64" else "float32"


def _activation(config, key, allowed, layer):
    value = config.get(key, allowed[0])
    if isinstance(value, dict):          # a serialized function object
        value = value.get("config", value.get("class_name"))
    if value not in allowed:
        raise KerasFormatError(f"layer {layer!r}: {key}={value!r} is not supported (seqcore "
                               f"has {', '.join(map(repr, allowed))})")
    return value


def _recurrent(class_name, config, name):
    if config.get("time_major"):
        raise KerasFormatError(f"layer {name!r}: time_major=True is not supported")
    common = dict(
        units=config["units"], return_sequences=bool(config.get("return_sequences", False)),
        return_state=bool(config.get("return_state", False)),
        go_backwards=bool(config.get("go_backwards", False)),
        stateful=bool(config.get("stateful", False)),
        dropout=float(config.get("dropout", 0.0)),
        recurrent_dropout=float(config.get("recurrent_dropout", 0.0)),
        use_bias=bool(config.get("use_bias", True)),
        zero_output_for_mask=bool(config.get("zero_output_for_mask", False)),
        reverse_output_mask=False,
        dtype=_dtype(config), name=name)
    if class_name == "SimpleRNN":
        return SimpleRNN(activation=_activation(config, "activation", ("tanh", "relu"), name),
                         **common)
    _activation(config, "activation", ("tanh",), name)
    _activation(config, "recurrent_activation", ("sigmoid",), name)
    if class_name == "LSTM":
        return LSTM(**common)
    return GRU(reset_after=bool(config.get("reset_after", True)), **common)


def _layer(spec):
    """The seqcore layer for one Keras layer spec {'class_name', 'config'}."""
    class_name, config = spec.get("class_name"), spec.get("config", {})
    name = _spec_name(spec) or class_name
    if class_name not in SUPPORTED:
        raise KerasFormatError(f"layer {name!r} of class {class_name!r} is not supported; "
                               f"seqcore reads {', '.join(SUPPORTED)}")
    if class_name in _RECURRENT:
        return _recurrent(class_name, config, name)
    if class_name == "Bidirectional":
        inner = config["layer"]
        forward = _layer(inner)
        if not isinstance(forward, _Recurrent):
            raise KerasFormatError(f"layer {name!r}: Bidirectional wraps {inner['class_name']}")
        backward = config.get("backward_layer")
        if backward is not None:
            b = backward.get("config", {})
            same = (backward.get("class_name") == inner.get("class_name")
                    and all(b.get(k) == inner["config"].get(k) for k in
                            ("units", "activation", "use_bias", "reset_after")))
            if not same:
                raise KerasFormatError(f"layer {name!r}: a backward layer that differs from "
                                       "the forward one is not supported")
        return Bidirectional(forward, merge_mode=config.get("merge_mode", "concat"),
                             name=name)
    if class_name == "TimeDistributed":
        return TimeDistributed(_layer(config["layer"]), name=name)
    if class_name == "Dense":
        return Dense(config["units"],
                     activation=_activation(config, "activation",
                                            ("linear", "relu", "tanh", "sigmoid", "softmax"),
                                            name),
                     use_bias=bool(config.get("use_bias", True)), dtype=_dtype(config),
                     name=name)
    if class_name == "Embedding":
        return Embedding(config["input_dim"], config["output_dim"],
                         mask_zero=bool(config.get("mask_zero", False)), dtype=_dtype(config),
                         name=name)
    return Dropout(float(config["rate"]), dtype=_dtype(config), name=name)


def _tensor_sources(value, names):
    """Append to `names` the layers whose outputs (Keras 3 `__keras_tensor__` entries) appear
    anywhere in `value`."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            names.append(value["config"]["keras_history"][0])
        else:
            for v in value.values():
                _tensor_sources(v, names)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _tensor_sources(v, names)


def _inbound_names(layer_spec):
    """Names of the layers feeding a functional layer through its positional arguments
    (Keras 3 and Keras 2 node formats)."""
    names = []
    for node in layer_spec.get("inbound_nodes", []):
        if isinstance(node, dict):                                   # Keras 3
            _tensor_sources(node.get("args", []), names)
        else:                                                        # Keras 2
            names += [entry[0] for entry in node]
    return names


def _spec_name(spec):
    return spec.get("name") or spec.get("config", {}).get("name")


def _is_padding_mask(spec, input_name):
    """A Keras 3 NotEqual op comparing the model input with 0."""
    if spec.get("class_name") != "NotEqual" or _inbound_names(spec) != [input_name]:
        return False
    nodes = spec.get("inbound_nodes", [])
    args = nodes[0].get("args", []) if len(nodes) == 1 and isinstance(nodes[0], dict) else []
    return len(args) == 2 and args[1] == 0


def _chain(model_config):
    """The model's layer specs in order (InputLayer included), from a Sequential or a
    single-path functional config."""
    class_name = model_config.get("class_name")
    config = model_config.get("config")
    if class_name == "Sequential":
        layers = config["layers"] if isinstance(config, dict) else config
        return list(layers), config if isinstance(config, dict) else {}
    if class_name not in ("Functional", "Model"):
        raise KerasFormatError(f"model class {class_name!r}: seqcore reads Sequential and "
                               "functional models")
    by_name = {_spec_name(spec): spec for spec in config["layers"]}
    inputs, outputs = config["input_layers"], config["output_layers"]
    single = lambda ends: ends if isinstance(ends[0], str) else (   # noqa: E731
        ends[0] if len(ends) == 1 else None)
    first, last = single(inputs), single(outputs)
    if first is None or last is None:
        raise KerasFormatError("functional model with several inputs or outputs: seqcore reads "
                               "single chains of layers")
    order, current = [], last[0]
    while True:
        spec = by_name[current]
        order.append(spec)
        feeding = _inbound_names(spec)
        if not feeding:
            break
        if len(set(feeding)) != 1 or len(spec.get("inbound_nodes", [])) != 1:
            raise KerasFormatError(f"layer {current!r} takes {sorted(set(feeding))} (or is "
                                   "called more than once): seqcore reads single chains")
        current = feeding[0]
    if current != first[0]:
        raise KerasFormatError(f"the chain from the output does not reach input {first[0]!r}")
    order.reverse()
    unused = set(by_name) - {_spec_name(s) for s in order}
    # Keras 3 writes the mask of Embedding(mask_zero=True) in a functional model as a
    # separate `ids != 0` op fed to the later layers' `mask` argument: what seqcore's mask
    # propagation computes anyway.
    masks_ids = any(s["class_name"] == "Embedding" and s["config"].get("mask_zero")
                    and _inbound_names(s) == [first[0]] for s in order)
    unused = {n for n in unused if not (masks_ids and _is_padding_mask(by_name[n], first[0]))}
    if unused:
        raise KerasFormatError(f"layers {sorted(unused)} are off the input-output chain: "
                               "seqcore reads single chains of layers")
    return order, config


def _input_shape(specs, model_config):
    """(batch, time, ...) the model was built for, as far as the config says; None if it
    does not."""
    for spec in specs:
        c = spec.get("config", {})
        for key in ("batch_shape", "batch_input_shape"):
            if c.get(key) is not None:
                return tuple(c[key])
        build = spec.get("build_config", {}).get("input_shape")
        if build is not None:
            return tuple(build)
    build = model_config.get("build_input_shape")
    return tuple(build) if build is not None else None


# ---------------------------------------------------------------------------------- weights

def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _vars(group, path):
    if path not in group:
        return []
    vs = group[path]
    return [np.asarray(vs[k][()]) for k in sorted(vs, key=int)]


def _keras3_arrays(group, class_name):
    """A layer's arrays in seqcore's order from its group in a Keras 3 weights file."""
    if class_name in _RECURRENT:
        return _vars(group, "cell/vars")
    if class_name == "Bidirectional":
        return _vars(group, "forward_layer/cell/vars") + _vars(group, "backward_layer/cell/vars")
    if class_name == "TimeDistributed":
        return _vars(group, "layer/vars")
    return _vars(group, "vars")


def _read_keras3(path):
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            raise KerasFormatError(f"{path}: a .keras file holds config.json and "
                                   f"model.weights.h5; found {sorted(names)}")
        model_config = json.loads(archive.read("config.json"))
        weights = io.BytesIO(archive.read("model.weights.h5"))
    import h5py
    specs, config = _chain(model_config)
    arrays, used = [], {}
    with h5py.File(weights, "r") as f:
        root = f["layers"] if "layers" in f else {}
        for spec in specs:
            class_name = spec["class_name"]
            if model_config.get("class_name") == "Sequential" and class_name == "InputLayer":
                arrays.append([])          # Sequential does not list its input layer
                continue
            key = _snake_case(class_name)
            used[key] = used.get(key, -1) + 1
            key = key if used[key] == 0 else f"{key}_{used[key]}"
            arrays.append(_keras3_arrays(root[key], class_name) if key in root else [])
    return specs, config, arrays


def _read_legacy(path):
    import h5py
    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise KerasFormatError(f"{path}: no model_config attribute: a weights-only file "
                                   "or not a Keras model file")
        raw = f.attrs["model_config"]
        model_config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        specs, config = _chain(model_config)
        group = f["model_weights"] if "model_weights" in f else f
        arrays = []
        for spec in specs:
            name = _spec_name(spec)
            if name not in group:
                arrays.append([])
                continue
            g = group[name]
            weight_names = [n.decode() if isinstance(n, bytes) else n
                            for n in g.attrs.get("weight_names", [])]
            arrays.append([np.asarray(g[n][()]) for n in weight_names])
    return specs, config, arrays


def from_keras(path):
    """A seqcore Sequential computing what the Keras model saved at `path` computes
    (`.keras` zip of Keras 3, or a legacy `.h5` model file). Keras's defaults are kept:
    recurrent layers read from Keras repeat their last output at masked steps
    (zero_output_for_mask=False) unless the file says otherwise. Raises KerasFormatError
    naming the layer or option seqcore lacks."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        specs, config, arrays = _read_keras3(path)
    else:
        try:
            import h5py
        except ImportError as e:                                     # pragma: no cover
            raise ImportError("from_keras needs h5py (pip install h5py)") from e
        if not h5py.is_hdf5(path):
            raise KerasFormatError(f"{path}: neither a .keras zip nor an HDF5 .h5 model file")
        specs, config, arrays = _read_legacy(path)
    model = Sequential(name=config.get("name", "sequential"))
    layers = []
    for spec, weights in zip(specs, arrays):
        if spec.get("class_name") == "InputLayer":
            continue
        layer = _layer(spec)
        try:
            model.add(layer)
        except ValueError as e:       # return_state, merge_mode=None: not one output array
            raise KerasFormatError(str(e)) from None
        layers.append((layer, weights))
    if not layers:
        raise KerasFormatError(f"{path}: the model has no layers")
    shape = _input_shape(specs, config)
    if shape is None:
        first, weights = layers[0]
        shape = (None, None) if isinstance(first, Embedding) else (None, None,
                                                                   weights[0].shape[0])
    model.build(shape)
    for layer, weights in layers:
        try:
            layer.set_weights([w.astype(layer.dtype) for w in weights])
        except (ValueError, TypeError) as e:
            raise KerasFormatError(f"layer {layer.name!r}: the file's weights do not fit: "
                                   f"{e}") from None
    return model
