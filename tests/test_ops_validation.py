"""Bad arguments to seqcore.ops raise ValueError/TypeError naming the argument; never a crash."""
import numpy as np
import pytest

from seqcore import ops

T, B, I, H = 4, 3, 5, 6


def lstm_args(**changes):
    rng = np.random.default_rng(0)
    args = dict(x=rng.standard_normal((T, B, I)), kernel=rng.standard_normal((I, 4 * H)),
                recurrent_kernel=rng.standard_normal((H, 4 * H)), bias=np.zeros(4 * H))
    args.update(changes)
    return args


@pytest.mark.parametrize("changes,exc,match", [
    (dict(x=np.zeros((T, B))), ValueError, "x: expected a time-major"),
    (dict(x=np.zeros((T, B, I), complex)), TypeError, "x: expected a real"),
    (dict(x=np.array([["a"]])), TypeError, "x"),
    (dict(x=np.zeros((T, B, 0))), ValueError, "x: the feature axis"),
    (dict(kernel=np.zeros((I + 1, 4 * H))), ValueError, r"kernel: expected shape \(5, 24\)"),
    (dict(recurrent_kernel=np.zeros((H, 3 * H))), ValueError, "recurrent_kernel: expected shape"),
    (dict(bias=np.zeros(3 * H)), ValueError, r"bias: expected shape \(24,\)"),
    (dict(h0=np.zeros((B + 1, H))), ValueError, r"h0: expected shape \(3, 6\)"),
    (dict(c0=np.zeros((B, H, 1))), ValueError, "c0: expected shape"),
    (dict(mask=np.ones((B, T), bool)), ValueError, r"mask: expected shape \(T, B\)"),
    (dict(mask=np.full((T, B), 2)), TypeError, "mask: expected a bool"),
    (dict(mask=np.full((T, B), 0.5)), TypeError, "mask: expected a bool"),
    (dict(input_mask=np.ones((B, H))), ValueError, "input_mask: expected shape"),
    (dict(recurrent_mask=np.ones((B, I))), ValueError, "recurrent_mask: expected shape"),
    (dict(reverse="yes"), TypeError, "reverse: expected a bool"),
    (dict(training=False, return_sequences=1), TypeError, "return_sequences"),
    (dict(return_sequences=False), ValueError, "return_sequences=False is only available"),
])
def test_lstm_forward_rejects_bad_arguments(changes, exc, match):
    with pytest.raises(exc, match=match):
        ops.lstm_forward(**lstm_args(**changes))


def test_gru_bias_shape_follows_reset_after():
    rng = np.random.default_rng(0)
    x, W, U = rng.standard_normal((T, B, I)), np.zeros((I, 3 * H)), np.zeros((H, 3 * H))
    with pytest.raises(ValueError, match=r"bias: expected shape \(2, 18\)"):
        ops.gru_forward(x, W, U, np.zeros(3 * H))
    with pytest.raises(ValueError, match=r"bias: expected shape \(18,\)"):
        ops.gru_forward(x, W, U, np.zeros((2, 3 * H)), reset_after=False)


def test_rnn_activation_is_checked():
    with pytest.raises(ValueError, match="activation"):
        ops.rnn_forward(np.zeros((T, B, I)), np.zeros((I, H)), np.zeros((H, H)), None,
                        activation="sigmoid")


def test_backward_checks_cache_and_gradient_shapes():
    out, h, c, cache = ops.lstm_forward(**lstm_args())
    with pytest.raises(TypeError, match="cache"):
        ops.lstm_backward(np.ones_like(out), None, None, {"x": 1})
    with pytest.raises(ValueError, match=r"d_outputs: expected shape \(4, 3, 6\)"):
        ops.lstm_backward(np.ones((T, B, H + 1)), None, None, cache)
    with pytest.raises(ValueError, match="d_c_n: expected shape"):
        ops.lstm_backward(None, None, np.ones((B, H + 1)), cache)


def test_non_contiguous_and_integer_inputs_are_accepted():
    args = lstm_args()
    x = np.asfortranarray(args["x"])[:, ::-1]           # strided view
    out1 = ops.lstm_forward(x, args["kernel"], args["recurrent_kernel"], args["bias"])[0]
    out2 = ops.lstm_forward(np.ascontiguousarray(x), args["kernel"], args["recurrent_kernel"],
                            args["bias"])[0]
    np.testing.assert_array_equal(out1, out2)
    out3 = ops.lstm_forward(np.ones((T, B, I), np.int64), args["kernel"],
                            args["recurrent_kernel"], args["bias"])[0]
    assert out3.dtype == np.float32


def test_lengths_to_mask_validates():
    np.testing.assert_array_equal(ops.lengths_to_mask([2, 0], 3), [[1, 0], [1, 0], [0, 0]])
    with pytest.raises(ValueError, match="lengths"):
        ops.lengths_to_mask([4], 3)
    with pytest.raises(ValueError, match="lengths"):
        ops.lengths_to_mask([-1], 3)
    with pytest.raises(TypeError, match="lengths"):
        ops.lengths_to_mask([1.5], 3)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_read_only_inputs_are_accepted(cell):
    """Memory-mapped weights (np.load(mmap_mode='r')) and ONNX initializers are read-only."""
    rng = np.random.default_rng(3)
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    x, W, U = (rng.standard_normal(s) for s in ((4, 2, 3), (3, 5 * G), (5, 5 * G)))
    b = rng.standard_normal((2, 15) if cell == "gru" else (5 * G,))
    forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    expected = forward(x.copy(), W.copy(), U.copy(), b.copy())
    for a in (x, W, U, b):
        a.flags.writeable = False
    got = forward(x, W, U, b)
    np.testing.assert_array_equal(got[0], expected[0])
    dy = rng.standard_normal(got[0].shape)
    dy.flags.writeable = False
    no_state_grads = [None] * (2 if cell == "lstm" else 1)
    np.testing.assert_array_equal(backward(dy, *no_state_grads, got[-1])[0],
                                  backward(dy.copy(), *no_state_grads, expected[-1])[0])
    step = ops.Stepper(cell, W, U, b, 2)
    np.testing.assert_array_equal(step.step(x[0]), expected[0][0])
    np.testing.assert_array_equal(ops.matmul(W, U, trans_b=True), W @ U.T)
