"""Layers through the public API against seqcore.reference (time-major, explicit masks), and
finite differences through whole models."""
import numpy as np
import pytest

import seqcore as sc
from seqcore import reference

RECURRENT = {
    "lstm": (sc.LSTM, dict(), 2),
    "gru": (sc.GRU, dict(), 1),
    "gru_v1": (sc.GRU, dict(reset_after=False), 1),
    "rnn": (sc.SimpleRNN, dict(), 1),
    "rnn_relu": (sc.SimpleRNN, dict(activation="relu"), 1),
}


def _reference(kind, layer, x_tm, mask_tm, states, input_mask, recurrent_mask, reverse):
    W, U, *b = layer.get_weights()
    b = b[0] if b else None
    if isinstance(layer, sc.LSTM):
        return reference.lstm_forward(x_tm, W, U, b, *states, mask_tm, input_mask,
                                      recurrent_mask, reverse)
    if isinstance(layer, sc.GRU):
        return reference.gru_forward(x_tm, W, U, b, states[0], mask_tm, input_mask,
                                     recurrent_mask, reverse, layer.reset_after)
    return reference.rnn_forward(x_tm, W, U, b, states[0], mask_tm, input_mask, recurrent_mask,
                                 reverse, layer.activation)


def _reference_backward(layer, d_outputs, d_finals, cache):
    if isinstance(layer, sc.LSTM):
        return reference.lstm_backward(d_outputs, *d_finals, cache)
    if isinstance(layer, sc.GRU):
        return reference.gru_backward(d_outputs, d_finals[0], cache)
    return reference.rnn_backward(d_outputs, d_finals[0], cache)


def _record_dropout(layer):
    """Keep the dropout masks the layer draws, to hand them to the reference."""
    drawn = []
    original = layer._dropout_mask

    def record(rate, shape):
        m = original(rate, shape)
        drawn.append(m)
        return m
    layer._dropout_mask = record
    return drawn


@pytest.mark.parametrize("kind", sorted(RECURRENT))
@pytest.mark.parametrize("options", [
    dict(return_sequences=True),
    dict(return_sequences=False, return_state=True),
    dict(return_sequences=True, go_backwards=True),
    dict(return_sequences=True, dropout=0.3, recurrent_dropout=0.4),
    dict(return_sequences=False, use_bias=False),
])
@pytest.mark.parametrize("use_lengths", [False, True])
def test_recurrent_layer_matches_reference(kind, options, use_lengths):
    cls, extra, n_states = RECURRENT[kind]
    rng = np.random.default_rng(1)
    B, T, I, H = 4, 6, 3, 5
    layer = cls(H, seed=3, dtype="float64", **extra, **options)
    x = rng.standard_normal((B, T, I))
    lengths = np.array([6, 3, 0, 1]) if use_lengths else None
    initial = [rng.standard_normal((B, H)) for _ in range(n_states)]
    drawn = _record_dropout(layer)
    out = layer(x, lengths=lengths, initial_state=initial, training=True)
    mask_tm = None if lengths is None else (np.arange(T)[:, None] < lengths[None, :])
    im = drawn[0] if drawn else None
    rm = drawn[1] if drawn else None
    y, *finals, cache = _reference(kind, layer, x.transpose(1, 0, 2), mask_tm, initial, im, rm,
                                   layer.go_backwards)
    outs = out if isinstance(out, list) else [out]
    main = outs[0]
    if layer.return_sequences:
        expected = y[::-1] if layer.go_backwards else y
        np.testing.assert_allclose(main, expected.transpose(1, 0, 2), atol=1e-12)
    else:
        np.testing.assert_allclose(main, finals[0], atol=1e-12)
    for got, want in zip(outs[1:], finals):
        np.testing.assert_allclose(got, want, atol=1e-12)

    # backward: random output (and state) gradients against the reference's
    d_main = rng.standard_normal(main.shape)
    d_states = [rng.standard_normal((B, H)) for _ in finals]
    d_out = [d_main] + d_states if layer.return_state else d_main
    dx, d_init = layer.backward(d_out)
    if layer.return_sequences:
        d = d_main.transpose(1, 0, 2)
        d_outputs, d_finals = (d[::-1] if layer.go_backwards else d), [None] * n_states
    else:
        d_outputs, d_finals = None, [d_main] + [None] * (n_states - 1)
    if layer.return_state:
        d_finals = [s if f is None else f + s for f, s in zip(d_finals, d_states)]
    ref = _reference_backward(layer, d_outputs, d_finals, cache)
    np.testing.assert_allclose(dx, ref[0].transpose(1, 0, 2), atol=1e-11)
    for got, want in zip(layer.gradients, [g for g in ref[1:4] if g is not None]):
        np.testing.assert_allclose(got, want, atol=1e-11)
    for got, want in zip(d_init, ref[4:]):
        np.testing.assert_allclose(got, want, atol=1e-11)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_with_lengths_matches_reference(merge_mode, return_sequences):
    rng = np.random.default_rng(2)
    B, T, I, H = 3, 7, 4, 5
    layer = sc.Bidirectional(sc.LSTM(H, return_sequences=return_sequences, seed=1,
                                     dtype="float64"), merge_mode=merge_mode)
    x = rng.standard_normal((B, T, I))
    lengths = np.array([7, 2, 4])
    out = layer(x, lengths=lengths, training=True)
    mask_tm = np.arange(T)[:, None] < lengths[None, :]
    x_tm = x.transpose(1, 0, 2)
    fw, bw = layer.forward_layer, layer.backward_layer
    yf, hf, cf, cache_f = reference.lstm_forward(x_tm, *fw.get_weights(), mask=mask_tm)
    yb, hb, cb, cache_b = reference.lstm_forward(x_tm, *bw.get_weights(), mask=mask_tm,
                                                 reverse=True)
    a, b = ((yf.transpose(1, 0, 2), yb.transpose(1, 0, 2)) if return_sequences else (hf, hb))
    expected = {"concat": lambda: np.concatenate([a, b], -1), "sum": lambda: a + b,
                "mul": lambda: a * b, "ave": lambda: (a + b) / 2, None: lambda: [a, b]}
    want = expected[merge_mode]()
    for got, w in zip(out if merge_mode is None else [out], want if merge_mode is None else [want]):
        np.testing.assert_allclose(got, w, atol=1e-12)
    # the reverse direction starts at each row's last valid step: its output at t=0 of the
    # row of length 2 depends on x[1, 1] and not on x[1, 2:]
    assert bw.weights[0].shape == (I, 4 * H)

    d = ([rng.standard_normal(a.shape), rng.standard_normal(b.shape)] if merge_mode is None
         else rng.standard_normal(np.shape(want)))
    dx = layer.backward(d)
    da, db = {"concat": lambda: (d[..., :H], d[..., H:]), "sum": lambda: (d, d),
              "mul": lambda: (d * b, d * a), "ave": lambda: (d / 2, d / 2),
              None: lambda: tuple(d)}[merge_mode]()
    if return_sequences:
        rf = reference.lstm_backward(da.transpose(1, 0, 2), None, None, cache_f)
        rb = reference.lstm_backward(db.transpose(1, 0, 2), None, None, cache_b)
    else:
        rf = reference.lstm_backward(None, da, None, cache_f)
        rb = reference.lstm_backward(None, db, None, cache_b)
    np.testing.assert_allclose(dx, (rf[0] + rb[0]).transpose(1, 0, 2), atol=1e-11)
    for got, want in zip(layer.gradients, list(rf[1:4]) + list(rb[1:4])):
        np.testing.assert_allclose(got, want, atol=1e-11)


def _central_difference(f, array, i, eps=1e-6):
    """d f() / d array[i] by central differences (array changed in place and restored)."""
    old = array[i]
    array[i] = old + eps
    up = f()
    array[i] = old - eps
    down = f()
    array[i] = old
    return (up - down) / (2 * eps)


def _fd_check(model, x, y, loss, lengths=None, n_checks=6, eps=1e-6):
    """Compare the model's analytic gradients (weights and input) with central differences."""
    rng = np.random.default_rng(0)
    model.compile(loss, "sgd")
    value = lambda: model._need_compiled()["loss"](   # noqa: E731
        y, *model._forward(x, None, lengths, False)[:1],
        model._loss_weights(*model._forward(x, None, lengths, False)))[0]
    y_pred, mask = model._forward(x, None, lengths, True)
    _, d = model._need_compiled()["loss"](y, y_pred, model._loss_weights(y_pred, mask))
    dx = model.backward(d)
    checks = list(zip(model.weights, model.gradients))
    if dx is not None:
        checks.append((x, dx))
    for array, grad in checks:
        for _ in range(n_checks):
            i = tuple(rng.integers(0, s) for s in array.shape)
            fd = _central_difference(value, array, i, eps)
            assert abs(fd - grad[i]) <= 1e-6 * max(1.0, abs(fd)), (array.shape, i, fd, grad[i])


def test_stacked_model_gradients_by_finite_differences():
    rng = np.random.default_rng(3)
    f64 = dict(dtype="float64")
    model = sc.Sequential([
        sc.LSTM(4, return_sequences=True, seed=1, **f64),
        sc.Bidirectional(sc.GRU(3, return_sequences=True, seed=2, **f64), merge_mode="mul"),
        sc.TimeDistributed(sc.Dense(5, activation="tanh", seed=3, **f64)),
        sc.SimpleRNN(3, go_backwards=True, seed=4, **f64),
        sc.Dense(2, activation="softmax", seed=5, **f64),
    ])
    x = rng.standard_normal((3, 5, 2))
    y = np.array([0, 1, 1])
    _fd_check(model, x, y, "sparse_categorical_crossentropy", lengths=np.array([5, 2, 3]))


def test_sequence_output_loss_ignores_masked_steps_and_embedding_gradient():
    rng = np.random.default_rng(4)
    model = sc.Sequential([sc.Embedding(7, 3, mask_zero=True, seed=0, dtype="float64"),
                           sc.LSTM(4, return_sequences=True, seed=1, dtype="float64"),
                           sc.Dense(2, seed=2, dtype="float64")])
    x = np.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0], [6, 1, 2, 3, 4]])
    y = rng.standard_normal((3, 5, 2))
    _fd_check(model, x, y, "mse")
    # what padded steps hold does not change the loss
    model.compile("mse", "sgd")
    y2 = y.copy()
    y2[0, 3:] = 100.0
    assert model.evaluate(x, y) == pytest.approx(model.evaluate(x, y2), abs=1e-12)


@pytest.mark.parametrize("layer,expected", [
    (lambda: sc.LSTM(3), 60), (lambda: sc.GRU(3), 54), (lambda: sc.GRU(3, reset_after=False), 45),
    (lambda: sc.SimpleRNN(3), 15), (lambda: sc.Bidirectional(sc.LSTM(3)), 120),
    (lambda: sc.Dense(3), 6)])
def test_count_params_matches_keras(layer, expected):
    l = layer()
    l.build((None, 7, 1))
    assert l.count_params() == expected


def test_stateful_layer_carries_state_across_calls():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 3)).astype(np.float32)
    full = sc.LSTM(4, return_sequences=True, seed=0)(x)
    layer = sc.LSTM(4, return_sequences=True, stateful=True, seed=0)
    parts = np.concatenate([layer(x[:, :3]), layer(x[:, 3:])], axis=1)
    np.testing.assert_array_equal(parts, full)
    layer.reset_states()
    np.testing.assert_array_equal(layer(x[:, :3]), full[:, :3])
    with pytest.raises(ValueError, match="batch"):
        layer(x[:1])


def test_dropout_layer_and_masks_are_seeded_and_scaled():
    x = np.ones((200, 50), np.float32)
    a = sc.Dropout(0.25, seed=7)(x, training=True)
    b = sc.Dropout(0.25, seed=7)(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(sc.Dropout(0.25)(x, training=False), x)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_zero_output_for_mask_false_repeats_last_valid_output(kind, go_backwards):
    """Keras's default: a masked step repeats the previous output in processing order (the
    initial h before any valid step); gradients flow back to the repeated step / initial h."""
    cls, extra, n_states = RECURRENT[kind]
    rng = np.random.default_rng(5)
    B, T, I, H = 3, 6, 2, 3
    x = rng.standard_normal((B, T, I))
    mask = np.array([[1, 0, 1, 1, 0, 0], [0, 0, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0]], bool)
    h0 = [rng.standard_normal((B, H)) for _ in range(n_states)]
    kw = dict(return_sequences=True, go_backwards=go_backwards, seed=1, dtype="float64", **extra)
    carry = cls(H, zero_output_for_mask=False, **kw)
    zero = cls(H, **kw)
    y = carry(x, mask=mask, initial_state=h0, training=True)
    zero.build(x.shape)
    zero.set_weights(carry.get_weights())
    y0 = zero(x, mask=mask, initial_state=h0)
    order = mask[:, ::-1] if go_backwards else mask     # outputs come in processing order
    for b in range(B):
        last = h0[0][b]
        for t in range(T):
            if order[b, t]:
                last = y0[b, t]
            np.testing.assert_allclose(y[b, t], last, atol=1e-14)
    # gradients: loss = sum(w * y), by central differences on x and h0
    w = rng.standard_normal(y.shape)
    dx, d_init = carry.backward(w)

    def loss():
        return float((w * carry(x, mask=mask, initial_state=h0)).sum())
    for array, grad in [(x, dx), (h0[0], d_init[0])]:
        for i in np.ndindex(*array.shape):
            assert abs(_central_difference(loss, array, i) - grad[i]) < 1e-7, (i, grad[i])


def test_go_backwards_mask_passed_on():
    """Reversed outputs carry the reversed mask by default; reverse_output_mask=False passes
    the input mask on unchanged, as Keras does."""
    mask = np.array([[True, True, False]])
    x = np.zeros((1, 3, 2))
    ours = sc.LSTM(2, return_sequences=True, go_backwards=True)
    keras_like = sc.LSTM(2, return_sequences=True, go_backwards=True, reverse_output_mask=False)
    np.testing.assert_array_equal(ours.compute_mask(x, mask), mask[:, ::-1])
    np.testing.assert_array_equal(keras_like.compute_mask(x, mask), mask)
    assert sc.LSTM.from_config(keras_like.get_config()).reverse_output_mask is False


def test_embedding_mask_zero_and_lengths_both_hold():
    emb = sc.Embedding(5, 2, mask_zero=True)
    ids = np.array([[1, 2, 0, 3], [4, 4, 4, 4]])
    lengths_mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    np.testing.assert_array_equal(emb.compute_mask(ids, lengths_mask),
                                  [[1, 1, 0, 1], [1, 1, 0, 0]])
    np.testing.assert_array_equal(emb.compute_mask(ids, None), ids != 0)


@pytest.mark.parametrize("wrap", [False, True])
def test_backward_runs_once_per_training_call_and_frees_the_cache(wrap):
    """A recurrent layer (or Bidirectional) lets its forward's cache go as its backward ends,
    as PyTorch frees a graph's buffers: a stack's backward then does not hold every layer's
    caches at once. A second backward of the same call is a clear error; the next training
    call works as before, with the same gradients for the same data."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 3))
    inner = sc.LSTM(4, return_sequences=True, seed=0, dtype="float64")
    layer = sc.Bidirectional(inner) if wrap else inner
    d = rng.standard_normal(layer(x, training=True).shape)
    dx = layer.backward(d)
    assert layer._cache is None and inner._cache is None
    with pytest.raises(RuntimeError, match="runs once"):
        layer.backward(d)
    layer(x, training=True)
    np.testing.assert_array_equal(layer.backward(d), dx)


def test_a_failed_backward_keeps_the_cache_for_a_corrected_call():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 3))
    layer = sc.Bidirectional(sc.GRU(4, return_sequences=True, seed=0, dtype="float64"))
    y = layer(x, training=True)
    with pytest.raises(ValueError, match="d_out"):
        layer.backward(np.ones((2, 5, 3)))                 # wrong width: 2H = 8 expected
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and layer._cache is None
