"""Rows moved between memory layouts (seqcore/_kernels/layout.pyx), and seqcore.ops's batch-first
and ragged paths, which copy through it when they run on more than one thread."""
import numpy as np
import pytest

import seqcore
from seqcore import ops
from seqcore._kernels import layout


def _layouts(rng, T, B, tail, dtype):
    """(T, B, *tail) arrays with these values in both memory layouts: C-contiguous, and
    batch-major (a transposed view of a (B, T, *tail) array)."""
    a = (rng.integers(0, 256, (T, B) + tail) if np.dtype(dtype).kind == "u"
         else rng.standard_normal((T, B) + tail) * 100).astype(dtype)
    return [a, np.ascontiguousarray(a.swapaxes(0, 1)).swapaxes(0, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("T, B, tail, threads", [
    (5, 3, (4,), 2),             # small: one thread copies whatever n_threads says
    (1, 1, (1,), 2),
    (7, 4, (), 2),               # 2-D: a row is one item
    (3, 2, (2, 3), 1),           # several trailing axes
    (40, 16, (128,), 2),         # from 256 KiB (float32, float64): the steps split over threads
    (33, 9, (257,), 2),
])
def test_rows_land_where_they_are_sent(dtype, T, B, tail, threads):
    rng = np.random.default_rng(T * B)
    order = rng.permutation(B)
    for src in _layouts(rng, T, B, tail, dtype):
        for dst in _layouts(rng, T, B, tail, dtype):
            dst[...] = 0
            assert layout.move_rows(src, dst, order.astype(np.int64), threads)
            want = np.zeros_like(dst)
            want[:, order] = src
            np.testing.assert_array_equal(dst, want)
            dst[...] = 0
            assert layout.move_rows(src, dst, None, threads)
            np.testing.assert_array_equal(dst, src)


def test_arguments_it_cannot_move_are_refused_untouched():
    """move_rows says False and writes nothing when the arrays are not a (T, B, ...) pair with
    C-contiguous rows, or `where` is not a permutation of the rows."""
    rng = np.random.default_rng(0)
    src = rng.standard_normal((4, 3, 8)).astype(np.float32)
    where = np.array([2, 0, 1], np.int64)
    refused = [
        (src, np.zeros((4, 3, 7), np.float32), where),                  # shape
        (src, np.zeros((4, 3, 8), np.float64), where),                  # itemsize
        (src[..., ::2], np.zeros((4, 3, 4), np.float32), where),        # rows not contiguous
        (src, np.zeros((4, 3, 16), np.float32)[..., ::2], where),
        (src[:, 0], np.zeros((4, 8), np.float32), where),               # B = 8 rows, where 3
        (src, np.zeros((4, 3, 8), np.float32), np.array([0, 0, 1], np.int64)),
        (src, np.zeros((4, 3, 8), np.float32), np.array([0, 1, 3], np.int64)),
        (src, np.zeros((4, 3, 8), np.float32), np.array([0, -1, 1], np.int64)),
        (src, np.zeros((4, 3, 8), np.float32), np.array([0, 1], np.int64)),
        (src[0, 0], np.zeros(8, np.float32), None),                     # 1-D
    ]
    for s, d, w in refused:
        assert layout.move_rows(s, d, w, 2) is False
        assert not d.any()
    read_only = np.zeros((4, 3, 8), np.float32)
    read_only.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        layout.move_rows(src, read_only, where, 2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_batch_first_and_ragged_calls_on_two_threads_match_one_thread(cell):
    """Shapes whose x and d_outputs pass the threaded copy's threshold: a batch-first caller's
    full and ragged batches give on two threads what they give on one, outputs and dx, and dx
    lies batch-major in memory as x did (the layer's transpose back is then a view) on two
    threads, and on one for the ragged batch."""
    rng = np.random.default_rng(5)
    T, B, I, H = 40, 16, 128, 64
    G = 4 if cell == "lstm" else 3
    W = (rng.standard_normal((I, G * H)) * 0.1).astype(np.float32)
    U = (rng.standard_normal((H, G * H)) * 0.1).astype(np.float32)
    b = np.zeros(G * H if cell == "lstm" else (2, G * H), np.float32)
    xb = rng.standard_normal((B, T, I)).astype(np.float32)
    dyb = rng.standard_normal((B, T, H)).astype(np.float32)
    lengths = rng.integers(0, T + 1, B)
    forward, backward = getattr(ops, f"{cell}_forward"), getattr(ops, f"{cell}_backward")
    finals = [None] * (2 if cell == "lstm" else 1)

    def run(mask):
        y, *_, cache = forward(xb.transpose(1, 0, 2), W, U, b, mask=mask)
        dx = backward(dyb.transpose(1, 0, 2), *finals, cache)[0]
        if mask is not None or seqcore.get_num_threads() > 1:
            assert dx.swapaxes(0, 1).flags.c_contiguous      # lies batch-major, as x did
        return np.array(y), np.array(dx)

    before = seqcore.get_num_threads()
    try:
        for mask in (None, ops.lengths_to_mask(lengths, T)):
            seqcore.set_num_threads(1)
            want = run(mask)
            seqcore.set_num_threads(2)
            got = run(mask)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-5 * np.abs(w).max())
    finally:
        seqcore.set_num_threads(before)


def test_a_batch_first_view_already_in_order_is_not_copied():
    """A batch of one row (or one step) lies the same either way: the kernels read the
    caller's memory on any number of threads, and dx needs no copy back (a T = 10,000
    sequence's inference stays within its input's memory)."""
    rng = np.random.default_rng(1)
    before = seqcore.get_num_threads()
    try:
        for threads in (1, 2):
            seqcore.set_num_threads(threads)
            for B, T in ((1, 500), (7, 1)):
                xb = rng.standard_normal((B, T, 64)).astype(np.float32)
                seq = ops._for_kernels(xb.transpose(1, 0, 2), None, np.float32)
                assert np.shares_memory(seq, xb) and seq.flags.c_contiguous
            xb = rng.standard_normal((16, 500, 64)).astype(np.float32)
            seq = ops._for_kernels(xb.transpose(1, 0, 2), None, np.float32)
            assert not np.shares_memory(seq, xb) and seq.flags.c_contiguous
            np.testing.assert_array_equal(seq, xb.transpose(1, 0, 2))
    finally:
        seqcore.set_num_threads(before)
