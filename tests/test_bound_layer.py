"""ops.BoundLayer (weights checked and packed once for many inference calls): the same outputs
as the *_forward functions with training=False, bit for bit, for every cell, both dtypes,
masks, states, reverse and return_sequences=False; a copy of the weights; clear errors."""
import numpy as np
import pytest

from seqcore import ops

VARIANTS = {   # name: (cell, gates, options)
    "lstm": ("lstm", 4, {}),
    "gru": ("gru", 3, {}),
    "gru_reset_before": ("gru", 3, {"reset_after": False}),
    "rnn_tanh": ("rnn", 1, {}),
    "rnn_relu": ("rnn", 1, {"activation": "relu"}),
}


def make(variant, dtype, T, B, I, H, seed=0):
    cell, G, options = VARIANTS[variant]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    W = (rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(dtype)
    U = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(dtype)
    reset_after = options.get("reset_after", True)
    b = rng.standard_normal((2, 3 * H) if cell == "gru" and reset_after else (G * H,))
    states = [rng.standard_normal((B, H)).astype(dtype)
              for _ in range(2 if cell == "lstm" else 1)]
    return cell, options, x, W, U, b.astype(dtype), states


def whole(cell, options, x, W, U, b, states, **kwargs):
    forward = getattr(ops, f"{cell}_forward")
    named = dict(zip(["h0", "c0"], states))
    *out, cache = forward(x, W, U, b, **named, **options, training=False, **kwargs)
    assert cache is None
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("T, B, I, H", [(1, 1, 1, 1), (6, 3, 5, 20), (40, 2, 7, 33),
                                        (12, 9, 16, 64)])
def test_bound_layer_equals_the_forward_call(variant, dtype, T, B, I, H):
    cell, options, x, W, U, b, states = make(variant, dtype, T, B, I, H, seed=T * B + H)
    mask = np.random.default_rng(1).random((T, B)) < 0.7
    mask[:, 0] = True
    mask[:, -1] = B == 1             # a row with no valid step at all (when B > 1)
    layer = ops.BoundLayer(cell, W, U, b, **options)
    for reverse in (False, True):
        for kwargs in ({}, {"mask": mask}, {"return_sequences": False}):
            want = whole(cell, options, x, W, U, b, states, reverse=reverse, **kwargs)
            got = layer.forward(x, states=states, reverse=reverse, **kwargs)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                if w is None:
                    assert g is None
                else:
                    assert g.dtype == dtype
                    np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("T, B, I, H", [(9, 3, 5, 20), (1, 1, 1, 1), (3, 17, 2, 33)])
def test_the_call_without_states_or_mask_equals_the_forward_call(variant, dtype, T, B, I, H):
    """forward(x) alone takes a shorter way than calls with states or a mask (BoundLayer
    fills in the checked arguments itself): the same outputs, bit for bit, in every option."""
    cell, options, x, W, U, b, states = make(variant, dtype, T, B, I, H, seed=4)
    zeros = [np.zeros_like(s) for s in states]
    layer = ops.BoundLayer(cell, W, U, b, **options)
    for reverse in (False, True):
        for return_sequences in (True, False):
            want = whole(cell, options, x, W, U, b, zeros, reverse=reverse,
                         return_sequences=return_sequences)
            got = layer.forward(x, reverse=reverse, return_sequences=return_sequences)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                if w is None:
                    assert g is None
                else:
                    assert g.dtype == dtype and g.flags.writeable
                    np.testing.assert_array_equal(g, w)
    with pytest.raises(TypeError, match="reverse"):
        layer.forward(x, reverse="yes")
    with pytest.raises(TypeError, match="return_sequences"):
        layer.forward(x, return_sequences=None)


def test_zero_states_by_default_and_empty_calls():
    cell, options, x, W, U, b, states = make("lstm", np.float32, 5, 2, 3, 8)
    layer = ops.BoundLayer(cell, W, U, b)
    zeros = [np.zeros_like(s) for s in states]
    for g, w in zip(layer.forward(x), whole(cell, options, x, W, U, b, zeros)):
        np.testing.assert_array_equal(g, w)
    y, h, c = layer.forward(x[:0], states=states)          # T = 0: the state passes through
    assert y.shape == (0, 2, 8)
    np.testing.assert_array_equal(h, states[0])
    np.testing.assert_array_equal(c, states[1])
    y, h, c = layer.forward(x[:, :0])                       # B = 0
    assert y.shape == (5, 0, 8) and h.shape == (0, 8)


@pytest.mark.parametrize("variant", ["lstm", "gru", "rnn_tanh"])
def test_bound_layer_keeps_the_weights_it_was_made_with(variant):
    cell, options, x, W, U, b, states = make(variant, np.float32, 8, 3, 4, 16)
    want = whole(cell, options, x, W, U, b, states)
    layer = ops.BoundLayer(cell, W, U, b, **options)
    W[:] = 0
    U[:] = 1
    b[...] = 5
    for g, w in zip(layer.forward(x, states=states), want):
        np.testing.assert_array_equal(g, w)


def test_input_of_another_dtype_is_converted():
    cell, options, x, W, U, b, states = make("gru", np.float32, 4, 2, 3, 5)
    layer = ops.BoundLayer(cell, W, U, b)
    y, h = layer.forward(x.astype(np.float64))
    assert y.dtype == np.float32 and h.dtype == np.float32
    np.testing.assert_array_equal(y, layer.forward(x)[0])


def test_bad_arguments_raise_clear_errors():
    cell, options, x, W, U, b, states = make("lstm", np.float32, 4, 2, 3, 5)
    with pytest.raises(ValueError, match="cell"):
        ops.BoundLayer("transformer", W, U, b)
    with pytest.raises(ValueError, match="recurrent_kernel"):
        ops.BoundLayer("lstm", W, U[:, :-1], b)
    with pytest.raises(ValueError, match="bias"):
        ops.BoundLayer("lstm", W, U, b[:-1])
    with pytest.raises(ValueError, match="activation"):
        ops.BoundLayer("rnn", W[:, :5], U[:, :5], b[:5], activation="sigmoid")
    with pytest.raises(TypeError, match="reset_after"):
        ops.BoundLayer("gru", W[:, :15], U[:, :15], None, reset_after="yes")
    layer = ops.BoundLayer("lstm", W, U, b)
    with pytest.raises(ValueError, match=r"x: expected a time-major \(T, B, 3\)"):
        layer.forward(x[..., :2])                           # I = 2, bound for 3
    with pytest.raises(ValueError, match=r"x: expected a time-major \(T, B, 3\)"):
        layer.forward(x[0])                                 # not (T, B, I)
    with pytest.raises(TypeError, match="x: expected a real array"):
        layer.forward(x.astype(complex))
    with pytest.raises(ValueError, match="states: expected 2 arrays"):
        layer.forward(x, states=states[:1])
    with pytest.raises(ValueError, match=r"h0: expected shape \(2, 5\)"):
        layer.forward(x, states=[states[0][:1], states[1]])
    with pytest.raises(ValueError, match="mask"):
        layer.forward(x, mask=np.ones((3, 2), bool))
