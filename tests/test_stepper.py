"""ops.Stepper (streaming inference through seqcore._kernels.step): T single steps give what one
call over the whole sequence gives, for every cell, both dtypes, masked steps and states."""
import numpy as np
import pytest

from seqcore import ops

VARIANTS = {   # name: (cell, gates, Stepper options, forward options)
    "lstm": ("lstm", 4, {}, {}),
    "gru": ("gru", 3, {}, {}),
    "gru_reset_before": ("gru", 3, {"reset_after": False}, {"reset_after": False}),
    "rnn_tanh": ("rnn", 1, {}, {}),
    "rnn_relu": ("rnn", 1, {"activation": "relu"}, {"activation": "relu"}),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("B, I, H", [(1, 1, 1), (3, 5, 20), (2, 7, 33)])
def test_steps_equal_the_whole_sequence(variant, dtype, B, I, H):
    cell, G, step_options, options = VARIANTS[variant]
    rng = np.random.default_rng(B * 100 + H)
    T = 6
    x = rng.standard_normal((T, B, I)).astype(dtype)
    W = (rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(dtype)
    U = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(dtype)
    reset_after = step_options.get("reset_after", True)
    b = rng.standard_normal((2, 3 * H) if cell == "gru" and reset_after else (G * H,))
    b = b.astype(dtype)
    states = [rng.standard_normal((B, H)).astype(dtype)
              for _ in range(2 if cell == "lstm" else 1)]
    mask = rng.random((T, B)) < 0.7
    mask[:, 0] = True

    forward = getattr(ops, f"{cell}_forward")
    named = dict(zip(["h0", "c0"], states))
    out, *finals, _ = forward(x, W, U, b, **named, mask=mask, **options)

    stepper = ops.Stepper(cell, W, U, b, B, states=[s.copy() for s in states], **step_options)
    steps = np.stack([stepper.step(x[t], valid=None if mask[t].all() else mask[t])
                      for t in range(T)])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(steps, out, rtol=0, atol=tol)
    for got, want in zip(stepper.states, finals):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    assert steps.dtype == dtype


@pytest.mark.parametrize("H", [2, 16])
@pytest.mark.parametrize("in_place", ["0", "1"])
def test_stepper_keeps_the_weights_it_was_created_with(H, in_place, monkeypatch):
    """Also when SEQCORE_INPLACE=1 would let a call read the weights where they lie (H = 16):
    a stepper keeps its own packed copy."""
    monkeypatch.setenv("SEQCORE_INPLACE", in_place)
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 4 * H)).astype(np.float32)
    U = rng.standard_normal((H, 4 * H)).astype(np.float32)
    b = np.zeros(4 * H, np.float32)
    x = rng.standard_normal((1, 3)).astype(np.float32)
    expected = ops.Stepper("lstm", W, U, b, 1).step(x)
    stepper = ops.Stepper("lstm", W, U, b, 1)
    W[:] = 0
    U[:] = 0
    np.testing.assert_array_equal(stepper.step(x), expected)


def test_stepper_takes_read_only_and_strided_input():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((4, 12)).astype(np.float32)
    U = rng.standard_normal((4, 12)).astype(np.float32)
    b = np.zeros((2, 12), np.float32)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    expected = ops.Stepper("gru", W, U, b, 2).step(np.ascontiguousarray(x[:, ::2]))
    frozen = np.ascontiguousarray(x[:, ::2])
    frozen.flags.writeable = False
    np.testing.assert_array_equal(ops.Stepper("gru", W, U, b, 2).step(frozen), expected)
    np.testing.assert_array_equal(ops.Stepper("gru", W, U, b, 2).step(x[:, ::2]), expected)
    with pytest.raises(ValueError, match="x_t"):
        ops.Stepper("gru", W, U, b, 2).step(x)

