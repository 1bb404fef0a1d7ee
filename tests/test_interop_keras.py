"""seqcore.interop.from_keras against real Keras 3 models (torch backend: no TensorFlow),
trained briefly and saved as .keras and legacy .h5."""
import json
import os
import zipfile

import numpy as np
import pytest

from seqcore.interop import KerasFormatError, from_keras

pytest.importorskip("h5py", reason="h5py is not installed (pip install h5py)")
pytest.importorskip("torch", reason="Keras runs on its torch backend here: pip install "
                                    "torch==2.13.0")
os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install keras)")
if keras.backend.backend() != "torch":
    pytest.skip(f"Keras was imported earlier with the {keras.backend.backend()} backend",
                allow_module_level=True)
L = keras.layers

VOCAB = 12


def _ids(rng, B=6, T=7):
    """Post-padded id rows of varied lengths (one full, one of length 1)."""
    lengths = np.array([7, 1, 4, 6, 2, 5])[:B]
    x = rng.integers(1, VOCAB, (B, T))
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return x


MODELS = {
    "embedding_bilstm_concat_dense": lambda: [
        keras.Input((None,), dtype="int32"), L.Embedding(VOCAB, 5, mask_zero=True),
        L.Bidirectional(L.LSTM(4, return_sequences=True)), L.Dropout(0.2),
        L.LSTM(3), L.Dense(2, activation="softmax")],
    "bigru_sum_and_gru_v1": lambda: [
        keras.Input((None,), dtype="int32"), L.Embedding(VOCAB, 4, mask_zero=True),
        L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum"),
        L.GRU(4, reset_after=False, return_sequences=True),
        L.TimeDistributed(L.Dense(3, activation="tanh"))],
    "birnn_mul_ave": lambda: [
        keras.Input((None,), dtype="int32"), L.Embedding(VOCAB, 4, mask_zero=True),
        L.Bidirectional(L.SimpleRNN(3, return_sequences=True, activation="relu"),
                        merge_mode="mul"),
        L.Bidirectional(L.GRU(3), merge_mode="ave"), L.Dense(1, activation="sigmoid")],
    "sequences_with_carried_masked_outputs": lambda: [
        keras.Input((None,), dtype="int32"), L.Embedding(VOCAB, 4, mask_zero=True),
        L.LSTM(3, return_sequences=True), L.Dense(2)],
    "go_backwards_and_dropout": lambda: [
        keras.Input((None,), dtype="int32"), L.Embedding(VOCAB, 4, mask_zero=True),
        L.SimpleRNN(3, return_sequences=True, go_backwards=True, dropout=0.1),
        L.LSTM(3, go_backwards=True, recurrent_dropout=0.2), L.Dense(2, activation="relu")],
    "float_inputs_no_mask": lambda: [
        keras.Input((None, 3)), L.GRU(5, return_sequences=True, use_bias=False),
        L.Bidirectional(L.LSTM(2, return_sequences=True)), L.Dense(1)],
}


def _train_and_save(name, tmp_path, functional):
    keras.utils.set_random_seed(0)
    parts = MODELS[name]()
    if functional:
        inp = parts[0]
        y = inp
        for layer in parts[1:]:
            y = layer(y)
        model = keras.Model(inp, y)
    else:
        model = keras.Sequential(parts)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 7, 3)).astype(np.float32) if name.startswith("float")
         else _ids(rng))
    target = model.predict(x, verbose=0)
    model.compile("adam", "mse")
    model.fit(x, rng.standard_normal(target.shape), epochs=2, verbose=0)
    paths = [tmp_path / f"{name}.keras", tmp_path / f"{name}.h5"]
    for p in paths:
        model.save(p)
    return model, x, paths


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_from_keras_predicts_what_keras_predicts(name, functional, tmp_path):
    model, x, paths = _train_and_save(name, tmp_path, functional)
    expected = model.predict(x, verbose=0)
    for path in paths:
        ours = from_keras(path)
        got = ours.predict(x)
        assert got.shape == expected.shape, path
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got, expected, atol=1e-5 * scale, rtol=0, err_msg=str(path))
        # the weights themselves came over unchanged
        for a, b in zip(ours.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_unsupported_layer_is_named(tmp_path):
    model = keras.Sequential([keras.Input((None, 3)), L.Conv1D(2, 2), L.LSTM(2)])
    model.save(tmp_path / "conv.keras")
    with pytest.raises(KerasFormatError, match="'conv1d' of class 'Conv1D' is not supported"):
        from_keras(tmp_path / "conv.keras")


def test_unsupported_activation_is_named(tmp_path):
    model = keras.Sequential([keras.Input((None, 3)), L.LSTM(2, activation="relu")])
    model.save(tmp_path / "relu_lstm.keras")
    with pytest.raises(KerasFormatError, match="activation='relu' is not supported"):
        from_keras(tmp_path / "relu_lstm.keras")


def test_branching_functional_model_is_refused(tmp_path):
    inp = keras.Input((None, 3))
    a = L.LSTM(2)(inp)
    b = L.GRU(2)(inp)
    model = keras.Model(inp, L.Add()([a, b]))
    model.save(tmp_path / "branch.keras")
    with pytest.raises(KerasFormatError, match="not supported|single chains"):
        from_keras(tmp_path / "branch.keras")


def test_not_a_model_file(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not a model")
    with pytest.raises(KerasFormatError, match="neither a .keras zip nor an HDF5"):
        from_keras(junk)
    empty = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("config.json", json.dumps({"class_name": "Sequential"}))
    with pytest.raises(KerasFormatError, match="model.weights.h5"):
        from_keras(empty)
    with pytest.raises(FileNotFoundError):
        from_keras(tmp_path / "missing.keras")


def _keras2_file(path, functional):
    """A model file as tf.keras 2 wrote them (Keras 2 config and node formats, ':0' weight
    names), with random weights: Keras 3 itself reads these, so it is the reference."""
    import h5py
    rng = np.random.default_rng(7)
    rnn = dict(trainable=True, dtype="float32", return_sequences=True, return_state=False,
               go_backwards=False, stateful=False, unroll=False,
               activation="tanh", recurrent_activation="sigmoid", use_bias=True,
               dropout=0.0, recurrent_dropout=0.0, implementation=2)
    layers = [
        ("InputLayer", dict(batch_input_shape=[None, None], dtype="int32", sparse=False,
                            ragged=False, name="input_1"), []),
        ("Embedding", dict(name="embedding", trainable=True, dtype="float32", input_dim=VOCAB,
                           output_dim=4, mask_zero=True, input_length=None),
         [("embeddings", (VOCAB, 4))]),
        ("LSTM", dict(rnn, name="lstm", units=3, unit_forget_bias=True),
         [("lstm_cell/kernel", (4, 12)), ("lstm_cell/recurrent_kernel", (3, 12)),
          ("lstm_cell/bias", (12,))]),
        ("Bidirectional", dict(name="bidirectional", trainable=True, dtype="float32",
                               merge_mode="concat",
                               layer={"module": "keras.layers", "class_name": "GRU",
                                      "registered_name": None, "config": dict(
                                   rnn, name="gru", units=2, return_sequences=False,
                                   reset_after=True)}),
         [("forward_gru/gru_cell/kernel", (3, 6)),
          ("forward_gru/gru_cell/recurrent_kernel", (2, 6)),
          ("forward_gru/gru_cell/bias", (2, 6)),
          ("backward_gru/gru_cell/kernel", (3, 6)),
          ("backward_gru/gru_cell/recurrent_kernel", (2, 6)),
          ("backward_gru/gru_cell/bias", (2, 6))]),
        ("Dense", dict(name="dense", trainable=True, dtype="float32", units=3,
                       activation="softmax", use_bias=True),
         [("kernel", (4, 3)), ("bias", (3,))]),
    ]
    specs, previous = [], None
    for class_name, config, _ in layers:
        spec = {"class_name": class_name, "config": config}
        if functional:
            spec["name"] = config["name"]
            spec["inbound_nodes"] = [] if previous is None else [[[previous, 0, 0, {}]]]
            previous = config["name"]
        specs.append(spec)
    if functional:
        model_config = {"class_name": "Functional", "config": {
            "name": "model", "layers": specs, "input_layers": [["input_1", 0, 0]],
            "output_layers": [["dense", 0, 0]]}}
    else:
        model_config = {"class_name": "Sequential",
                        "config": {"name": "sequential", "layers": specs}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(model_config)
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [c["name"].encode() for _, c, _ in layers]
        for _, config, weights in layers:
            lg = g.create_group(config["name"])
            names = [f"{config['name']}/{w}:0" for w, _ in weights]
            lg.attrs["weight_names"] = [n.encode() for n in names]
            for n, (_, shape) in zip(names, weights):
                lg.create_dataset(n, data=rng.standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("functional", [False, True])
def test_tf_keras_2_h5_file(functional, tmp_path):
    path = tmp_path / "keras2.h5"
    _keras2_file(path, functional)
    reference = keras.saving.load_model(path, compile=False)
    x = _ids(np.random.default_rng(1))
    expected = reference.predict(x, verbose=0)
    np.testing.assert_allclose(from_keras(path).predict(x), expected, atol=1e-5, rtol=0)


def test_layer_with_several_outputs_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((None, 3)),
                              L.Bidirectional(L.LSTM(2), merge_mode=None, name="pair")])
    model.save(tmp_path / "pair.keras")
    with pytest.raises(KerasFormatError, match="pair: a layer in a Sequential must return one array"):
        from_keras(tmp_path / "pair.keras")
