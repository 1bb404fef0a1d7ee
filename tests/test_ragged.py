"""Ragged batches (rows of different lengths): seqcore.ops orders them longest first for the
kernels, which then leave the finished rows out of the products (cells.h sc_active_rows,
scan.pxd project_steps). The results must be those of the reference, in the caller's order."""
import numpy as np
import pytest

from seqcore import ops, reference
from rnn_cases import poison_pool

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def cell_of(variant):
    """(cell, reset_after) of a test variant: "lstm", "gru", "gru_reset_before" or "rnn"."""
    return ("gru" if variant.startswith("gru") else variant), variant != "gru_reset_before"


def weights(rng, cell, I, H, reset_after=True):
    """W, U, b of a cell (b (2, 3H) for the GRU with reset_after) at a moderate scale."""
    G = GATES[cell]
    W = rng.standard_normal((I, G * H)) * 0.3
    U = rng.standard_normal((H, G * H)) * 0.3
    b = rng.standard_normal((2, 3 * H) if cell == "gru" and reset_after else (G * H,))
    return W, U, b


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_ragged_batch_gives_the_same_rows_in_any_order(cell):
    """seqcore.ops sorts a ragged batch longest first for the kernels and puts the results
    back: a row's output, final state and input gradient do not depend on where it sits."""
    rng = np.random.default_rng(7)
    T, B, I, H = 9, 6, 4, 20
    x = rng.standard_normal((T, B, I))
    W, U, b = weights(rng, cell, I, H)
    lengths = np.array([3, 9, 0, 5, 9, 1])
    mask = np.arange(T)[:, None] < lengths[None, :]
    perm = rng.permutation(B)
    forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    n_states = 2 if cell == "lstm" else 1
    dy = rng.standard_normal((T, B, H))
    results = []
    for p in (np.arange(B), perm):
        out, *finals, cache = forward(x[:, p], W, U, b, mask=mask[:, p])
        grads = backward(dy[:, p], *[None] * n_states, cache)
        inverse = np.argsort(p)
        results.append((out[:, inverse], [f[inverse] for f in finals], grads[0][:, inverse],
                        grads[1]))
    (o1, f1, dx1, dW1), (o2, f2, dx2, dW2) = results
    np.testing.assert_allclose(o2, o1, rtol=0, atol=1e-12)
    for a, c in zip(f1, f2):
        np.testing.assert_allclose(c, a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx2, dx1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dW2, dW1, rtol=1e-12, atol=1e-12)



@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before", "rnn"])
def test_ragged_batch_with_dropout_masks_matches_the_reference(variant, reverse):
    cell, reset_after = cell_of(variant)
    rng = np.random.default_rng(11)
    T, B, I, H = 12, 7, 5, 18
    x = rng.standard_normal((T, B, I))
    W, U, b = weights(rng, cell, I, H, reset_after)
    lengths = np.array([2, 12, 0, 7, 1, 12, 4])          # most rows finish early
    mask = np.arange(T)[:, None] < lengths[None, :]
    input_mask = (rng.random((B, I)) < 0.8) / 0.8
    recurrent_mask = (rng.random((B, H)) < 0.8) / 0.8
    options = dict(mask=mask, input_mask=input_mask, recurrent_mask=recurrent_mask,
                   reverse=reverse)
    if cell == "gru":
        options["reset_after"] = reset_after
    n_states = 2 if cell == "lstm" else 1
    dy = rng.standard_normal((T, B, H))
    d_finals = [rng.standard_normal((B, H)) for _ in range(n_states)]
    results = []
    for lib in (ops, reference):
        out, *finals, cache = getattr(lib, f"{cell}_forward")(x, W, U, b, **options)
        grads = getattr(lib, f"{cell}_backward")(dy, *d_finals, cache)
        results.append([out, *finals, *[g for g in grads if g is not None]])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1.0, np.abs(want).max()))
    infer = getattr(ops, f"{cell}_forward")(x, W, U, b, training=False, **options)
    np.testing.assert_allclose(infer[0], results[1][0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("layout", ["batch_major", "strided", "reversed_time"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_ragged_inputs_in_any_layout_match_the_reference(cell, layout):
    """x and d_outputs may be views in any layout (a batch-first layer passes transposed
    views): seqcore.ops reorders the rows of a ragged batch in the one copy it makes, and hands
    reordered sequences back lying as x did, batch-major for a transposed view."""
    rng = np.random.default_rng(5)
    T, B, I, H = 8, 6, 5, 17
    W, U, b = weights(rng, cell, I, H)
    lengths = np.array([3, 8, 0, 5, 8, 1])
    mask = np.arange(T)[:, None] < lengths[None, :]

    def view(a):        # a (T, B, n) in the layout under test, the same values
        if layout == "batch_major":
            return np.ascontiguousarray(a.transpose(1, 0, 2)).transpose(1, 0, 2)
        if layout == "strided":
            wide = np.zeros(a.shape[:2] + (2 * a.shape[2],))
            wide[:, :, ::2] = a
            return wide[:, :, ::2]
        return np.ascontiguousarray(a[::-1])[::-1]

    x, dy = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))
    n_states = 2 if cell == "lstm" else 1
    results = []
    for lib, xs, dys in ((ops, view(x), view(dy)), (reference, x, dy)):
        out, *finals, cache = getattr(lib, f"{cell}_forward")(xs, W, U, b, mask=mask)
        grads = getattr(lib, f"{cell}_backward")(dys, *[None] * n_states, cache)
        results.append([out, *finals, *[g for g in grads if g is not None]])
        if lib is ops and layout == "batch_major":     # no copy left for a batch-first caller
            assert out.swapaxes(0, 1).flags.c_contiguous
            assert grads[0].swapaxes(0, 1).flags.c_contiguous
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before", "rnn"])
def test_inference_never_reads_the_inputs_of_finished_rows(variant):
    """The inference scans leave a finished row's pre-activations unprojected and, where the
    step never reads them, unwritten (scan.pxd project_steps, zero_skipped). Their workspace
    here is a pooled block filled with NaN beforehand: any read of those rows would show."""
    from seqcore._kernels import pool

    cell, reset_after = cell_of(variant)
    G = GATES[cell]
    rng = np.random.default_rng(8)
    # I * G*H values of W pass ops._CACHED_WEIGHT_BYTES, so chunks are long and the
    # pre-activations (chunk, B, G*H) large enough to come from the pool; Y (T, B, H) is not
    T, B, I, H = 20, 16, 520, 512 if cell == "rnn" else 256
    x = rng.standard_normal((T, B, I))
    W = rng.standard_normal((I, G * H)) * 0.05
    U = rng.standard_normal((H, G * H)) * 0.05
    b = rng.standard_normal((2, 3 * H) if cell == "gru" and reset_after else (G * H,))
    lengths = np.array([20, 1, 3, 20, 0, 7, 2, 1, 1, 5, 1, 2, 20, 1, 1, 4])
    mask = np.arange(T)[:, None] < lengths[None, :]
    options = dict(mask=mask, reset_after=reset_after) if cell == "gru" else dict(mask=mask)
    chunk = ops._chunk_steps(B, G * H, T, I, H, x.itemsize)
    assert chunk * B * G * H * x.itemsize >= pool.MIN_BYTES
    poison_pool((chunk, B, G * H), x.dtype)     # the block the pre-activations will take
    forward = getattr(ops, f"{cell}_forward")
    out, *finals, _ = forward(x, W, U, b, training=False, **options)
    want, *want_finals, _ = getattr(reference, f"{cell}_forward")(x, W, U, b, **options)
    for got, ref in zip([out, *finals], [want, *want_finals]):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("dropout", [False, True])
def test_lstm_training_never_reads_the_pre_activations_of_finished_rows(dropout):
    """The LSTM's training scan leaves a finished row's pre-activations unwritten (lstm.pyx
    forward_training: project_steps with zero_skipped False), and its backward scan their
    gradients (scan.pxd backward_rows): nothing reads either. Z and dZ here are pooled blocks
    filled with NaN beforehand: the outputs and every gradient still match the reference,
    without and with input dropout (whose masked x the scan still zeroes for those rows: a
    weight gradient by BLAS would read them)."""
    from seqcore._kernels import pool

    rng = np.random.default_rng(9)
    T, B, I, H = 20, 16, 8, 256
    x = rng.standard_normal((T, B, I))
    W, U, b = weights(rng, "lstm", I, H)
    W, U = W * 0.2, U * 0.2
    lengths = np.array([20, 1, 3, 20, 0, 7, 2, 1, 1, 5, 1, 2, 20, 1, 1, 4])
    mask = np.arange(T)[:, None] < lengths[None, :]
    options = dict(mask=mask)
    if dropout:
        options["input_mask"] = (rng.random((B, I)) < 0.8) / 0.8
    assert T * B * 4 * H * x.itemsize >= pool.MIN_BYTES
    poison_pool((T, B, 4 * H), x.dtype)         # the block Z will take
    dy = rng.standard_normal((T, B, H))
    results = []
    for lib in (ops, reference):
        out, h, c, cache = lib.lstm_forward(x, W, U, b, **options)
        if lib is ops:
            poison_pool((T, B, 4 * H), x.dtype)  # the block dZ will take
        grads = lib.lstm_backward(dy, None, None, cache)
        results.append([out, h, c, *grads])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("variant", ["gru", "gru_reset_before", "rnn"])
def test_backward_never_reads_the_gradients_of_finished_rows(variant, dropout):
    """The GRU's and the RNN's backward scans, as the LSTM's, leave a finished row's
    pre-activation gradients unwritten (scan.pxd backward_rows), and nothing after them reads
    those rows (weight_gradient, input_gradient). The backward's workspaces of (T, B, G*H)
    here are pooled blocks filled with NaN beforehand: every gradient still matches the
    reference, with and without input and recurrent dropout."""
    from seqcore._kernels import pool

    cell, reset_after = cell_of(variant)
    rng = np.random.default_rng(13)
    T, B, I, H = 20, 16, 8, 512
    x = rng.standard_normal((T, B, I))
    W, U, b = weights(rng, cell, I, H, reset_after)
    W, U = W * 0.1, U * 0.1
    lengths = np.array([20, 1, 3, 20, 0, 7, 2, 1, 1, 5, 1, 2, 20, 1, 1, 4])
    mask = np.arange(T)[:, None] < lengths[None, :]
    options = dict(mask=mask)
    if cell == "gru":
        options["reset_after"] = reset_after
    if dropout:
        options["input_mask"] = (rng.random((B, I)) < 0.8) / 0.8
        options["recurrent_mask"] = (rng.random((B, H)) < 0.8) / 0.8
    shape = (T, B, GATES[cell] * H)
    assert np.prod(shape) * x.itemsize >= pool.MIN_BYTES
    dy, dh = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
    results = []
    for lib in (ops, reference):
        out, h, cache = getattr(lib, f"{cell}_forward")(x, W, U, b, **options)
        if lib is ops:
            poison_pool(shape, x.dtype, 2)      # the blocks the gradients will take
        grads = getattr(lib, f"{cell}_backward")(dy, dh, cache)
        results.append([g for g in grads if g is not None])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_ragged_outputs_handed_on_by_every_thread(cell, reverse, monkeypatch):
    """The scans hand a ragged batch's outputs on to the caller's row order and layout as each
    step ends (scan.pxd handed_on), every thread of a split step its share of the rows: with
    two threads forced to split every step, batch-major and time-major x, training and
    inference give the reference's outputs, in float32 and float64."""
    import seqcore

    monkeypatch.setattr(ops, "_STEP_SPLIT", True)
    rng = np.random.default_rng(12)
    T, B, I, H = 7, 9, 6, 48
    W, U, b = weights(rng, cell, I, H)
    lengths = np.array([2, 7, 0, 5, 7, 1, 3, 6, 4])
    mask = np.arange(T)[:, None] < lengths[None, :]
    x = rng.standard_normal((T, B, I))
    want = getattr(reference, f"{cell}_forward")(x, W, U, b, mask=mask, reverse=reverse)[0]
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(2)
    try:
        for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-5)):
            for xs in (x, np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2)):
                xs = xs.astype(dtype)
                for training in (True, False):
                    out = getattr(ops, f"{cell}_forward")(xs, W.astype(dtype), U.astype(dtype),
                                                          b.astype(dtype), mask=mask,
                                                          reverse=reverse, training=training)[0]
                    assert out.dtype == dtype
                    assert (out.swapaxes(0, 1) if ops._batch_major(xs) else out).flags.c_contiguous
                    np.testing.assert_allclose(out, want, rtol=0, atol=tol * np.abs(want).max())
    finally:
        seqcore.set_num_threads(before)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("split", [True, False])
def test_batch_first_outputs_handed_on_when_steps_are_split(cell, split, monkeypatch):
    """A batch-first caller's rows in their own order (no mask, or a mask needing no reorder)
    are handed on into batch-major memory when the steps are split over threads (ops._outputs),
    and written time-major when they are not: the reference's outputs either way, training and
    inference, forward and reverse, float32 and float64."""
    import seqcore

    monkeypatch.setattr(ops, "_STEP_SPLIT", split)
    rng = np.random.default_rng(13)
    T, B, I, H = 6, 5, 4, 48
    W, U, b = weights(rng, cell, I, H)
    lengths = np.array([6, 6, 4, 2, 0])         # longest first: no reorder
    xb = rng.standard_normal((B, T, I))
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(2)
    try:
        for mask in (None, np.arange(T)[:, None] < lengths[None, :]):
            for reverse in (False, True):
                want = getattr(reference, f"{cell}_forward")(xb.transpose(1, 0, 2), W, U, b,
                                                             mask=mask, reverse=reverse)[0]
                for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-5)):
                    xs = xb.astype(dtype).transpose(1, 0, 2)          # batch-major (T, B, I)
                    for training in (True, False):
                        out = getattr(ops, f"{cell}_forward")(
                            xs, W.astype(dtype), U.astype(dtype), b.astype(dtype), mask=mask,
                            reverse=reverse, training=training)[0]
                        assert out.dtype == dtype
                        assert (out.swapaxes(0, 1) if split else out).flags.c_contiguous
                        np.testing.assert_allclose(out, want, rtol=0,
                                                   atol=tol * np.abs(want).max())
    finally:
        seqcore.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before", "rnn"])
def test_chunks_of_a_ragged_batch_by_rows_match_the_reference(variant, reverse, threads,
                                                              monkeypatch):
    """A ragged batch whose rows mostly finish early: the scans take chunks by valid rows
    (scan.pxd chunk_steps), the inference scans of the cells that never read a finished row's
    pre-activations lay them out compact (project_steps), and the valid rows of many steps go
    into one product through a row map (project_valid), in groups of VALID_ROWS_GROUP (2048)
    when there are more. With chunks of 2 full steps (a chunk of the tail then spans up to 32
    steps of one row) and with one chunk for all the steps (2694 valid rows), inference with
    and without input dropout (whose masked inputs then lie compact too) and a training step
    give the reference's outputs, final states and gradients."""
    import seqcore

    cell, reset_after = cell_of(variant)
    rng = np.random.default_rng(14)
    T, B, I, H = 400, 16, 3, 5
    W, U, b = weights(rng, cell, I, H, reset_after)
    lengths = np.array([400, 395, 1, 2, 350, 0, 3, 400, 7, 360, 1, 380, 390, 4, 399, 2])
    mask = np.arange(T)[:, None] < lengths[None, :]
    x = rng.standard_normal((T, B, I))
    dy = rng.standard_normal((T, B, H))
    input_mask = (rng.random((B, I)) < 0.8) / 0.8
    options = dict(mask=mask, reverse=reverse)
    if cell == "gru":
        options["reset_after"] = reset_after
    n_states = 2 if cell == "lstm" else 1
    forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    ref_forward = getattr(reference, f"{cell}_forward")
    ref_backward = getattr(reference, f"{cell}_backward")
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(threads)
    try:
        for steps in (2, T):
            monkeypatch.setattr(ops, "_chunk_steps", lambda *args, **kwargs: steps)
            for dropout in (None, input_mask):
                want = ref_forward(x, W, U, b, input_mask=dropout, **options)
                got = forward(x, W, U, b, input_mask=dropout, training=False, **options)
                for g, w in zip(got[:-1], want[:-1]):
                    np.testing.assert_allclose(g, w, rtol=0,
                                               atol=1e-10 * max(1.0, np.abs(w).max()))
            out, *finals, cache = forward(x, W, U, b, input_mask=input_mask, **options)
            grads = backward(dy, *[None] * n_states, cache)
            want_out, *want_finals, want_cache = ref_forward(x, W, U, b, input_mask=input_mask,
                                                             **options)
            want_grads = ref_backward(dy, *[None] * n_states, want_cache)
            for g, w in zip([out, *finals, *grads], [want_out, *want_finals, *want_grads]):
                if w is not None:
                    np.testing.assert_allclose(g, w, rtol=0,
                                               atol=1e-10 * max(1.0, np.abs(w).max()))
    finally:
        seqcore.set_num_threads(before)
