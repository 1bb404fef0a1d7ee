"""ops.Stepper (streaming inference through seqcore._kernels.step): T single steps give what the
NumPy reference (seqcore.reference) gives over the whole sequence, for every cell, both dtypes,
masked steps and states, on one thread or shared by two."""
import numpy as np
import pytest

from seqcore import ops, reference, runtime
from test_kernels import num_threads

VARIANTS = {   # name: (cell, gates, Stepper options, forward options)
    "lstm": ("lstm", 4, {}, {}),
    "gru": ("gru", 3, {}, {}),
    "gru_reset_before": ("gru", 3, {"reset_after": False}, {"reset_after": False}),
    "rnn_tanh": ("rnn", 1, {}, {}),
    "rnn_relu": ("rnn", 1, {"activation": "relu"}, {"activation": "relu"}),
}


@pytest.mark.parametrize("shared", [False, True], ids=["1-thread", "shared"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("B, I, H", [(1, 1, 1), (3, 5, 20), (2, 7, 33), (1, 4, 130)])
def test_steps_equal_the_whole_sequence(variant, dtype, B, I, H, shared, monkeypatch):
    """shared: every step split over 2 threads, whatever the size (_STEPPER_SHARE_BYTES) and
    however few the units (_STEPPER_THREAD_UNITS; the GRU and RNN steps at H = 20, 33 are one
    block of units: the second thread has nothing to do)."""
    monkeypatch.setattr(ops, "_STEPPER_SHARE_BYTES", 0 if shared else 1 << 62)
    monkeypatch.setattr(ops, "_STEPPER_THREAD_UNITS", 1)
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

    forward = getattr(reference, f"{cell}_forward")
    named = dict(zip(["h0", "c0"], states))
    out, *finals, _ = forward(x, W, U, b, **named, mask=mask, **options)

    stepper = ops.Stepper(cell, W, U, b, B, states=[s.copy() for s in states], **step_options)
    with num_threads(2 if shared else 1):
        steps = np.stack([stepper.step(x[t], valid=None if mask[t].all() else mask[t])
                          for t in range(T)])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(steps, out, rtol=0, atol=tol)
    for got, want in zip(stepper.states, finals):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    assert steps.dtype == dtype


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B, I, H", [(1, 64, 128), (3, 5, 17), (2, 9, 65), (4, 3, 200)])
def test_a_step_shared_by_threads_gives_the_same_bits(variant, dtype, B, I, H):
    """Each unit is computed by one thread in the same order as on one thread, so the shared
    step (StepKernel.step with n_threads = 2, also 3: more threads than some cells' blocks of
    units) equals the single-threaded one bit for bit, masked rows included."""
    cell, G, step_options, _ = VARIANTS[variant]
    rng = np.random.default_rng(H)
    W = (rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(dtype)
    U = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(dtype)
    b = rng.standard_normal((2, 3 * H) if variant == "gru" else (G * H,)).astype(dtype)
    steppers = [ops.Stepper(cell, W, U, b, B, **step_options) for _ in range(3)]
    for t in range(5):
        x = rng.standard_normal((B, I)).astype(dtype)
        valid = rng.random(B) < 0.7 if t % 2 else np.ones(B, bool)
        outputs = []
        for n_threads, stepper in zip((1, 2, 3), steppers):
            stepper._valid[:] = valid
            stepper._kernel.step(x, n_threads)
            outputs.append([stepper._Y.copy(), *(s.copy() for s in stepper.states)])
        for shared in outputs[1:]:
            for got, want in zip(shared, outputs[0]):
                np.testing.assert_array_equal(got, want)


def test_steppers_share_their_steps_from_a_size_on():
    """Large weights: the step is shared by the threads of seqcore.set_num_threads (with the
    same results); small ones stay on the calling thread (the team would cost more than it
    saves). The bound is 256 KiB, or a third of the core's L2 where that is more."""
    assert ops._STEPPER_SHARE_BYTES == max(1 << 18, runtime.l2_cache_bytes() // 3)
    rng = np.random.default_rng(0)
    H = 128
    while (64 + H) * 4 * H * 4 < ops._STEPPER_SHARE_BYTES:     # the LSTM's W and U in bytes
        H += 64
    W = rng.standard_normal((64, 4 * H)).astype(np.float32)
    U = rng.standard_normal((H, 4 * H)).astype(np.float32)
    big = ops.Stepper("lstm", W, U, None, 1)
    small = ops.Stepper("rnn", W[:, :128], U[:128, :128], None, 1)     # 96 KiB
    assert big._max_threads >= 2 and small._max_threads == 1
    xs = rng.standard_normal((4, 1, 64)).astype(np.float32)
    with num_threads(2):
        shared = [big.step(x) for x in xs]
    alone = ops.Stepper("lstm", W, U, None, 1)
    with num_threads(1):
        np.testing.assert_array_equal(shared, [alone.step(x) for x in xs])


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


def test_stepper_takes_any_input_it_can_convert():
    """A ready x_t (C-contiguous, the stepper's dtype) takes the kernel's fast path
    (StepKernel.step_ready); anything else is converted first, with the same result, or
    rejected without a step."""
    rng = np.random.default_rng(1)
    W = rng.standard_normal((4, 12)).astype(np.float32)
    U = rng.standard_normal((4, 12)).astype(np.float32)
    b = np.zeros((2, 12), np.float32)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    ready = np.ascontiguousarray(x[:, ::2])
    expected = ops.Stepper("gru", W, U, b, 2).step(ready)
    frozen = ready.copy()
    frozen.flags.writeable = False
    for given in (frozen, x[:, ::2], ready.astype(np.float64), ready.astype(">f4"),
                  ready.tolist(), memoryview(ready)):
        np.testing.assert_array_equal(ops.Stepper("gru", W, U, b, 2).step(given), expected)
    stepper = ops.Stepper("gru", W, U, b, 2)
    for bad in (x, ready[0], ready.reshape(1, 2, 4), "x"):
        with pytest.raises((ValueError, TypeError), match="x_t"):
            stepper.step(bad)
    first = stepper.step(ready)                 # the failed calls did not step
    np.testing.assert_array_equal(first, expected)
    first[:] = 0                                # an output is the caller's own copy
    np.testing.assert_array_equal(stepper.step(ready),
                                  ops.Stepper("gru", W, U, b, 2, states=[expected]).step(ready))

