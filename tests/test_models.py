"""Sequential end to end: learning, saving and loading, streaming, losses, optimizers,
callbacks, the demo, and clear errors for bad input."""
import io
import json
import zipfile

import numpy as np
import pytest

import seqcore as sc
from seqcore import losses, optimizers


def _order_task(n, T, seed):
    """Token sequences of varying length (0-padded); label: is the first token larger than the
    last valid one? Needs order and the true end of each row."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, T + 1, n)
    x = rng.integers(1, 6, (n, T))
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0
    y = (x[:, 0] > x[np.arange(n), lengths - 1]).astype(np.int64)
    return x, y


def test_masked_bidirectional_classifier_learns_an_order_task():
    x, y = _order_task(2000, 12, seed=0)
    model = sc.Sequential([sc.Embedding(6, 8, mask_zero=True, seed=0),
                           sc.Bidirectional(sc.GRU(16, seed=1)),
                           sc.Dense(2, seed=2)])
    model.compile(losses.SparseCategoricalCrossentropy(from_logits=True), "adam",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=12, batch_size=64, validation_split=0.2, verbose=0, seed=0)
    assert history.history["val_accuracy"][-1] > 0.95
    assert history.history["loss"][-1] < history.history["loss"][0] / 3


def test_forecaster_fits_a_noisy_sine():
    rng = np.random.default_rng(1)
    t = np.arange(3000) * 0.1
    series = np.sin(t) + 0.05 * rng.standard_normal(t.size)
    T = 20
    windows = np.lib.stride_tricks.sliding_window_view(series, T + 1)[::3]
    x, y = windows[:, :T, None].astype(np.float32), windows[:, T:].astype(np.float32)
    model = sc.Sequential([sc.LSTM(16, seed=0), sc.Dense(1, seed=1)])
    model.compile("mse", sc.optimizers.Adam(0.01), metrics=["mae"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0, seed=0)
    mse = model.evaluate(x, y)[0]
    assert mse < 0.01           # the noise alone is 0.0025; predicting 0 would give 0.5


def _small_model():
    model = sc.Sequential([sc.Embedding(9, 4, mask_zero=True, seed=0),
                           sc.LSTM(6, return_sequences=True, seed=1),
                           sc.GRU(5, return_sequences=True, seed=2),
                           sc.TimeDistributed(sc.Dense(3, activation="tanh", seed=3)),
                           sc.SimpleRNN(4, seed=4), sc.Dense(2, activation="softmax", seed=5)])
    model.build((None, 7))
    return model


def test_save_and_load_round_trip_bit_identically(tmp_path):
    model = _small_model()
    x = np.random.default_rng(2).integers(0, 9, (5, 7))
    path = tmp_path / "m.seqcore"
    model.save(path)
    loaded = sc.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert not list(tmp_path.glob(".seqcore-*"))          # the temporary file is gone


def test_weights_start_on_64_byte_lines_after_build_training_and_loading(tmp_path):
    # the small calls' products read a layer's weights where they lie, with 64-byte vector
    # loads (ops.aligned_copy); small arrays and pooled large ones (LSTM(256)'s U, 1 MiB) alike
    model = sc.Sequential([sc.Embedding(9, 4, mask_zero=True, seed=0),
                           sc.Bidirectional(sc.LSTM(256, return_sequences=True, seed=1)),
                           sc.GRU(5, seed=2), sc.Dense(2, seed=3)])
    model.build((None, 7))

    def offsets(m):
        return {w.ctypes.data % 64 for w in m.weights}

    assert offsets(model) == {0}
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 9, (16, 7)), rng.integers(0, 2, 16)
    model.compile(losses.SparseCategoricalCrossentropy(from_logits=True), "adam")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    assert offsets(model) == {0}
    model.save(tmp_path / "a.seqcore")
    loaded = sc.load_model(tmp_path / "a.seqcore")
    assert offsets(loaded) == {0}
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_bidirectional_model_round_trips(tmp_path):
    model = sc.Sequential([sc.Bidirectional(sc.LSTM(3, return_sequences=True, seed=0), "ave"),
                           sc.Bidirectional(sc.GRU(2, reset_after=False, seed=1)),
                           sc.Dense(1)])
    x = np.random.default_rng(3).standard_normal((4, 6, 2)).astype(np.float32)
    lengths = np.array([6, 1, 0, 3])
    with pytest.raises(RuntimeError, match="build"):
        model.save(tmp_path / "b.seqcore")                 # nothing to save yet
    expected = model.predict(x, lengths=lengths)            # builds it
    model.save(tmp_path / "b.seqcore")
    loaded = sc.load_model(tmp_path / "b.seqcore")
    np.testing.assert_array_equal(loaded.predict(x, lengths=lengths), expected)


def test_truncated_tampered_and_foreign_files_raise_clear_errors(tmp_path):
    model = _small_model()
    good = tmp_path / "m.seqcore"
    model.save(good)
    data = good.read_bytes()
    (tmp_path / "cut").write_bytes(data[:len(data) // 2])
    with pytest.raises(sc.ModelFileError, match="cut"):
        sc.load_model(tmp_path / "cut")
    # a weight replaced by another array of the same shape: the digest catches it
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(entries["model.json"])
    first = manifest["weights"][0]["file"]
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(manifest["weights"][0]["shape"], np.float32))
    entries[first] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "tampered", "w") as z:
        for n, d in entries.items():
            z.writestr(n, d)
    with pytest.raises(sc.ModelFileError, match="altered"):
        sc.load_model(tmp_path / "tampered")
    # an unknown layer class is refused, not imported
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(entries["model.json"])
    manifest["model"]["layers"][0]["class_name"] = "os.system"
    entries["model.json"] = json.dumps(manifest)
    with zipfile.ZipFile(tmp_path / "foreign", "w") as z:
        for n, d in entries.items():
            z.writestr(n, d)
    with pytest.raises(sc.ModelFileError, match="unknown layer class"):
        sc.load_model(tmp_path / "foreign")
    (tmp_path / "text").write_text("hello")
    with pytest.raises(sc.ModelFileError):
        sc.load_model(tmp_path / "text")


def test_pickled_arrays_are_refused(tmp_path):
    model = _small_model()
    good = tmp_path / "m.seqcore"
    model.save(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(entries["model.json"])
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    entries[manifest["weights"][0]["file"]] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "pickled", "w") as z:
        for n, d in entries.items():
            z.writestr(n, d)
    with pytest.raises(sc.ModelFileError, match="plain .npy"):
        sc.load_model(tmp_path / "pickled")


def test_streaming_equals_the_full_sequence():
    model = sc.Sequential([sc.Embedding(9, 4, seed=0),
                           sc.LSTM(6, return_sequences=True, seed=1),
                           sc.GRU(5, return_sequences=True, seed=2),
                           sc.Dense(3, seed=3)])
    x = np.random.default_rng(4).integers(0, 9, (2, 10))
    full = model.predict(x)
    stream = model.stream(batch_size=2)
    steps = np.stack([stream.step(x[:, t]) for t in range(10)], axis=1)
    np.testing.assert_allclose(steps, full, rtol=0, atol=1e-6)
    stream.reset()
    np.testing.assert_allclose(stream.step(x[:, 0]), full[:, 0], atol=1e-6)
    # a model ending in return_sequences=False: each step is the output "if it ended here"
    last = sc.Sequential([sc.LSTM(4, seed=0), sc.Dense(2, seed=1)])
    xs = np.random.default_rng(5).standard_normal((1, 6, 3)).astype(np.float32)
    last.build((None, 6, 3))
    s = last.stream()
    for t in range(6):
        np.testing.assert_allclose(s.step(xs[:, t]), last.predict(xs[:, :t + 1]), atol=1e-6)
    # recurrent layers only, all returning sequences: the stream's chain of steppers
    chain = sc.Sequential([sc.GRU(5, return_sequences=True, seed=0),
                           sc.LSTM(4, return_sequences=True, seed=1)])
    chain.build((None, 6, 3))
    full = chain.predict(xs)
    s = chain.stream()
    for t in range(6):
        np.testing.assert_allclose(s.step(xs[:, t].astype(np.float64)), full[:, t], atol=1e-6)
    for bad in (xs[0, 0], np.ones((2, 3), np.float32), np.ones((1, 4), np.float32)):
        with pytest.raises(ValueError, match="x_t"):
            s.step(bad)
    bidirectional = sc.Sequential([sc.Bidirectional(sc.LSTM(2))])
    bidirectional.build((None, 3, 1))
    with pytest.raises(ValueError, match="cannot stream"):
        bidirectional.stream()


@pytest.mark.parametrize("threads", [1, 2])
def test_a_stream_of_recurrent_layers_steps_them_in_one_call(threads):
    """A stream of recurrent layers that chain as they are (one dtype, each one's input the
    previous one's output) steps all of them in one kernel call (ops.step_chain): the same
    outputs as the whole sequence, at one thread and at two with layers large enough to share
    their steps; input that needs converting goes the per-layer way, with the same results."""
    from seqcore import ops
    layers = [sc.LSTM(256, return_sequences=True, seed=0),
              sc.GRU(7, return_sequences=True, reset_after=False, seed=1),
              sc.SimpleRNN(300, return_sequences=True, seed=2)]
    model = sc.Sequential(layers)
    model.build((None, 5, 3))
    xs = np.random.default_rng(6).standard_normal((2, 5, 3)).astype(np.float32)
    full = model.predict(xs)
    before = sc.get_num_threads()
    try:
        sc.set_num_threads(threads)
        stream = model.stream(batch_size=2)
        assert stream._kernels is not None and stream._threads_matter
        for t in range(5):
            # ready as it is (C-contiguous float32), or not: a list, a strided view
            x_t = [xs[:, t].copy(), xs[:, t].tolist(), xs[:, t]][t % 3]
            np.testing.assert_allclose(stream.step(x_t), full[:, t], rtol=0, atol=1e-5)
        with pytest.raises(ValueError, match="x_t"):
            stream.step(np.ones((2, 4), np.float32))
    finally:
        sc.set_num_threads(before)
    # layers of two dtypes do not chain as they are: each stepper converts its input
    mixed = sc.Sequential([sc.LSTM(4, return_sequences=True, seed=0),
                           sc.GRU(3, return_sequences=True, dtype="float64", seed=1)])
    mixed.build((None, 5, 3))
    stream = mixed.stream(batch_size=2)
    assert stream._kernels is None and ops.chained_kernels(stream._chain) is None
    full = mixed.predict(xs)
    for t in range(5):
        np.testing.assert_allclose(stream.step(xs[:, t]), full[:, t], rtol=0, atol=1e-6)


def test_predict_and_evaluate_pack_each_recurrent_layer_once(monkeypatch):
    """predict and evaluate pack every recurrent direction's W and U once for all their
    batches (model._WeightsPacked), with the results of packing at every call, and leave no
    layer holding packed weights afterwards, even when a batch fails: a later call sees new
    weights."""
    from seqcore import ops
    from seqcore import model as model_module
    model = sc.Sequential([sc.LSTM(6, return_sequences=True, seed=0),
                           sc.Bidirectional(sc.GRU(5, return_sequences=True, seed=1)),
                           sc.SimpleRNN(4, seed=2), sc.Dense(3, seed=3)])
    model.compile("mse", "sgd")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((7, 9, 2)).astype(np.float32)
    y = rng.standard_normal((7, 3)).astype(np.float32)
    lengths = np.array([9, 1, 4, 9, 0, 6, 2])
    model.build(x.shape)
    want = model(x, lengths=lengths)                       # one call, packing as it goes
    packs = []
    real = ops.packed_weights
    monkeypatch.setattr(ops, "packed_weights", lambda *a: packs.append(a[0]) or real(*a))
    got = model.predict(x, batch_size=2, lengths=lengths)  # 4 batches
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert sorted(packs) == ["gru", "gru", "lstm", "rnn"]  # once per direction, not per batch
    loss = model.evaluate(x, y, batch_size=3, lengths=lengths)
    assert loss == pytest.approx(float(np.mean((want - y) ** 2)), rel=1e-5)
    assert len(packs) == 8
    layers = model_module._WeightsPacked(model.layers).layers
    assert len(layers) == 4 and all(layer._prepacked is None for layer in layers)
    # a batch that fails leaves nothing packed either
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("batch failed")
        return real_forward(*args, **kwargs)
    real_forward = model._forward
    monkeypatch.setattr(model, "_forward", failing)
    with pytest.raises(RuntimeError, match="batch failed"):
        model.predict(x, batch_size=2)
    assert all(layer._prepacked is None for layer in layers)
    monkeypatch.undo()
    # new weights are seen by the next predict
    first = model.layers[0]
    first.set_weights([w * 0.5 for w in first.get_weights()])
    np.testing.assert_allclose(model.predict(x, batch_size=2, lengths=lengths),
                               model(x, lengths=lengths), rtol=0, atol=1e-6)
    assert not np.allclose(model(x, lengths=lengths), want, atol=1e-3)


def _fd_loss(loss, y, p, eps=1e-6):
    value, grad = loss(y, p)
    rng = np.random.default_rng(0)
    for _ in range(8):
        i = tuple(rng.integers(0, s) for s in p.shape)
        q = p.copy()
        q[i] += eps
        up = loss(y, q)[0]
        q[i] -= 2 * eps
        down = loss(y, q)[0]
        assert abs((up - down) / (2 * eps) - grad[i]) < 1e-6, (type(loss).__name__, i)
    return value


@pytest.mark.parametrize("from_logits", [False, True])
def test_loss_gradients_by_finite_differences(from_logits):
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((4, 3, 5))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    p = logits if from_logits else probs
    classes = rng.integers(0, 5, (4, 3))
    onehot = np.eye(5)[classes]
    v1 = _fd_loss(losses.SparseCategoricalCrossentropy(from_logits), classes, p)
    v2 = _fd_loss(losses.CategoricalCrossentropy(from_logits), onehot, p)
    assert v1 == pytest.approx(v2)
    assert v1 == pytest.approx(-np.log(probs[np.arange(4)[:, None], np.arange(3), classes]).mean())
    binary = rng.integers(0, 2, (4, 3, 5)).astype(float)
    bp = logits if from_logits else 1 / (1 + np.exp(-logits))
    _fd_loss(losses.BinaryCrossentropy(from_logits), binary, bp)
    if not from_logits:
        _fd_loss(losses.MeanSquaredError(), rng.standard_normal(p.shape), p)
        _fd_loss(losses.MeanAbsoluteError(), rng.standard_normal(p.shape), p)


def test_cross_entropy_from_logits_is_stable_for_huge_logits():
    p = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    value, grad = losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([0, 0]), p)
    assert np.isfinite(value) and value == pytest.approx(1000.0)
    assert np.isfinite(grad).all()
    value, grad = losses.BinaryCrossentropy(from_logits=True)(np.ones((2, 2)), p)
    assert np.isfinite(value) and np.isfinite(grad).all()


def test_optimizer_updates_follow_their_formulas():
    g = np.array([0.5, -2.0])
    p = np.array([1.0, 1.0])
    optimizers.SGD(0.1).apply([p], [g])
    np.testing.assert_allclose(p, [0.95, 1.2])
    p = np.array([1.0, 1.0])
    opt = optimizers.SGD(0.1, momentum=0.9)
    opt.apply([p], [g])
    opt.apply([p], [g])                      # v1 = -0.1 g, v2 = 0.9 v1 - 0.1 g
    np.testing.assert_allclose(p, 1.0 - 0.1 * g - (0.09 + 0.1) * g)
    p = np.array([1.0, 1.0])
    optimizers.Adam(0.01).apply([p], [g])    # the first Adam step moves by lr * sign(g)
    np.testing.assert_allclose(p, 1.0 - 0.01 * np.sign(g), rtol=1e-5)
    p = np.array([1.0, 1.0])
    optimizers.AdamW(0.01, weight_decay=0.5).apply([p], [g])
    np.testing.assert_allclose(p, 1.0 * (1 - 0.005) - 0.01 * np.sign(g), rtol=1e-5)
    p = np.array([1.0, 1.0])
    optimizers.RMSprop(0.01).apply([p], [g])
    np.testing.assert_allclose(p, 1.0 - 0.01 * g / np.sqrt(0.1 * g * g + 1e-7))


def test_global_norm_clipping():
    grads = [np.array([3.0, 0.0]), np.array([[4.0]])]
    clipped = optimizers.clip_gradients(grads, clipnorm=1.0)
    assert np.sqrt(sum((g ** 2).sum() for g in clipped)) == pytest.approx(1.0)
    np.testing.assert_allclose(clipped[0], [0.6, 0.0])
    np.testing.assert_allclose(optimizers.clip_gradients(grads, clipvalue=2.0)[1], [[2.0]])


def test_callbacks_early_stopping_checkpoint_and_custom(tmp_path):
    x, y = _order_task(200, 6, seed=1)
    model = sc.Sequential([sc.Embedding(6, 4, mask_zero=True, seed=0), sc.LSTM(4, seed=1),
                           sc.Dense(2, activation="softmax", seed=2)])
    model.compile("sparse_categorical_crossentropy", sc.optimizers.SGD(1e-9))

    class Count(sc.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            Count.epochs += 1
            assert "loss" in logs and "val_loss" in logs

    stop = sc.callbacks.EarlyStopping(patience=1, min_delta=0.1)
    ckpt = sc.callbacks.ModelCheckpoint(tmp_path / "e{epoch}.seqcore", save_best_only=False)
    history = model.fit(x, y, epochs=20, verbose=0, validation_split=0.25,
                        callbacks=[stop, ckpt, Count()])
    assert len(history.history["loss"]) == Count.epochs == 3     # no progress: stops early
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1.seqcore", "e2.seqcore",
                                                           "e3.seqcore"]


def test_progress_bar_only_when_verbose(capsys):
    x, y = _order_task(64, 5, seed=2)
    model = sc.Sequential([sc.Embedding(6, 3, seed=0), sc.GRU(3, seed=1), sc.Dense(2, seed=2)])
    model.compile(losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().err == ""
    model.fit(x, y, epochs=2, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 2/2" in err and "samples/s" in err and "accuracy" in err


def test_summary_lists_layers_shapes_and_params():
    lines = []
    model = _small_model()
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "lstm (LSTM)" in text and "(None, 7, 6)" in text
    assert f"Total params: {model.count_params():,}" in text


@pytest.mark.parametrize("call,exc,match", [
    (lambda m, x: m.predict(x[:, :, None]), ValueError, "shape"),
    (lambda m, x: m.predict(x, lengths=np.array([8, 1, 1])), ValueError, "lengths"),
    (lambda m, x: m.predict(x, lengths=np.array([-1, 1, 1])), ValueError, "lengths"),
    (lambda m, x: m.predict(x, lengths=np.array([1, 1])), ValueError, "lengths"),
    (lambda m, x: m.predict(x, mask=np.ones((3, 6), bool)), ValueError, "mask"),
    (lambda m, x: m.predict(x + 0.5), TypeError, "integer ids"),
    (lambda m, x: m.predict(x + 20), ValueError, "input_dim"),
    (lambda m, x: m.layers[1].set_weights([np.zeros((3, 3))] * 3), ValueError, "kernel"),
    (lambda m, x: m.layers[1].set_weights([np.zeros((4, 24))]), ValueError, "expected 3 arrays"),
    (lambda m, x: m.layers[1].backward(np.zeros((3, 7, 6))), RuntimeError, "training=True"),
    (lambda m, x: m.fit(x, np.zeros(3)), RuntimeError, "compile"),
])
def test_bad_input_gets_a_clear_error(call, exc, match):
    model = _small_model()
    x = np.random.default_rng(7).integers(0, 9, (3, 7))
    with pytest.raises(exc, match=match):
        call(model, x)


@pytest.mark.parametrize("call,match", [
    (lambda m, x, y: m.predict(x, batch_size=0), r"batch_size: expected a positive integer, got 0"),
    (lambda m, x, y: m.predict(x, batch_size=2.5), r"batch_size: .* got 2.5"),
    (lambda m, x, y: m.evaluate(x, y, batch_size=-1), r"batch_size: .* got -1"),
    (lambda m, x, y: m.fit(x, y, batch_size=-1, verbose=0), r"batch_size: .* got -1"),
    (lambda m, x, y: m.fit(x, y, batch_size=True, verbose=0), r"batch_size: .* got True"),
    (lambda m, x, y: m.fit(x, y, epochs=-1, verbose=0), r"epochs: expected an integer >= 0"),
    (lambda m, x, y: m.fit(x, y, epochs=1.5, verbose=0), r"epochs: .* got 1.5"),
    (lambda m, x, y: m.stream(batch_size=0), r"batch_size: .* got 0"),
])
def test_batch_size_and_epochs_are_checked(call, match):
    """A batch size that is not a positive integer (or epochs not a count) is named in the
    error, before any work: batch_size=-1 once surfaced as an UnboundLocalError from fit's
    loop, batch_size=0 as range()'s complaint."""
    model = _small_model()
    model.compile("sparse_categorical_crossentropy", "sgd")
    x = np.random.default_rng(7).integers(0, 9, (3, 7))
    y = np.zeros(3, np.int64)
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=match):
        call(model, x, y)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    model.fit(x, y, epochs=0, verbose=0)           # zero epochs: nothing to do, no error
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="units"):
        sc.LSTM(0)
    with pytest.raises(ValueError, match="dropout"):
        sc.GRU(3, dropout=1.0)
    with pytest.raises(ValueError, match="merge_mode"):
        sc.Bidirectional(sc.LSTM(3), merge_mode="max")
    with pytest.raises(TypeError, match="dtype"):
        sc.LSTM(3, dtype="int32")
    with pytest.raises(ValueError, match="initial_state"):
        sc.LSTM(3)(np.zeros((2, 4, 1)), initial_state=[np.zeros((2, 3))])
    with pytest.raises(ValueError, match="one array"):
        sc.Sequential([sc.LSTM(3, return_state=True)])
    with pytest.raises(ValueError, match="loss"):
        sc.Sequential([sc.Dense(1)]).compile("hinge")
    with pytest.raises(ValueError, match="optimizer"):
        sc.Sequential([sc.Dense(1)]).compile("mse", "adagrad")


def test_demo_trains_and_writes(tmp_path):
    from seqcore import demo
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        demo.run(text_path=str(text), epochs=2, hidden=16, seq_len=16, batch_size=16, verbose=0,
                 out=f)
    printed = out.read_text()
    assert "characters/s" in printed and "temperature 0.5" in printed
    assert "temperature 1.0" in printed


def test_demo_help_names_its_options():
    import subprocess
    import sys
    help_text = subprocess.run([sys.executable, "-m", "seqcore", "demo", "--help"],
                               capture_output=True, text=True, check=True).stdout
    for option in ("--epochs", "--text", "--hidden", "--seed"):
        assert option in help_text


@pytest.mark.parametrize("recurrent", [
    lambda: sc.LSTM(5, return_sequences=True, seed=1),
    lambda: sc.GRU(5, return_sequences=True, reset_after=False, seed=1),
    lambda: sc.SimpleRNN(5, return_sequences=True, activation="relu", seed=1)])
def test_streaming_honours_masked_steps(recurrent):
    """Ids 0 under Embedding(mask_zero=True) are masked steps: the state is kept, whether the
    whole sequence runs at once or one step at a time."""
    model = sc.Sequential([sc.Embedding(6, 3, mask_zero=True, seed=0), recurrent(),
                           sc.GRU(4, seed=2), sc.Dense(2, seed=3)])
    x = np.array([[1, 0, 2, 3, 0, 0], [4, 5, 0, 1, 2, 3]])
    model.build((None, 6))
    stream = model.stream(batch_size=2)
    for t in range(6):
        np.testing.assert_allclose(stream.step(x[:, t]), model.predict(x[:, :t + 1]),
                                   atol=1e-6)
    with pytest.raises(ValueError, match="x_t"):
        stream.step(x[:1, 0])
