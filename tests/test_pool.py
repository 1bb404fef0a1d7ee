"""The pool of large blocks behind seqcore.ops (seqcore/_kernels/pool.pyx)."""
import gc

import numpy as np
import pytest

from seqcore import ops
from seqcore._kernels import pool
from rnn_cases import poison_pool

BIG = (512, 1024)          # 2 MiB of float32: pooled


def test_memory_returns_only_when_no_array_refers_to_it():
    ops.release_memory()
    a = pool.empty(BIG, np.float32)
    a[...] = 7
    view = a[3:5, 10:]                 # NumPy views keep the block, not just the first array
    del a
    gc.collect()
    assert pool.idle_bytes() == 0
    b = pool.empty(BIG, np.float32)   # must not be the block `view` still uses
    b[...] = -1
    assert np.all(view == 7)
    del view
    gc.collect()
    assert pool.idle_bytes() >= np.prod(BIG) * 4
    c = pool.zeros(BIG, np.float32)   # reuses it, zeroed
    assert pool.idle_bytes() == 0 and not c.any()
    del b, c
    ops.release_memory()
    assert pool.idle_bytes() == 0


def test_pooled_arrays_are_ordinary_arrays():
    a = pool.empty(BIG, np.float64)
    assert a.shape == BIG and a.dtype == np.float64
    assert a.flags.c_contiguous and a.flags.writeable and a.ctypes.data % 64 == 0
    small = pool.empty((3, 4), np.float32)
    assert small.shape == (3, 4) and type(small.base) is not type(a.base)
    assert pool.empty(300_000, np.float32).shape == (300_000,)



def test_aligned_arrays_start_on_a_cache_line_whatever_their_size():
    """pool.empty_aligned: the packed weights' workspace, streamed with 64-byte loads."""
    held = []                          # kept alive, so that each array gets fresh memory
    for n in [1, 3, 16, 17, 1000, 4097, 73_728, 300_000]:
        for dtype in (np.float32, np.float64):
            a = pool.empty_aligned(n, dtype)
            assert a.shape == (n,) and a.dtype == dtype
            assert a.flags.c_contiguous and a.flags.writeable and a.ctypes.data % 64 == 0
            a[...] = n
            held.append(a)
    assert all(np.all(a == a.size) for a in held)      # no two of them overlap
    big = pool.empty_aligned(BIG, np.float32)              # pooled: aligned as well
    assert big.shape == BIG and big.ctypes.data % 64 == 0
    assert pool.empty_aligned((3, np.int64(5)), np.float32).shape == (3, 5)
    assert pool.empty_aligned(np.int64(7), np.float64).shape == (7,)
    for I, H, G in [(64, 128, 3), (5, 7, 4), (1, 1, 1)]:
        assert ops._packed_workspace(I, H, G, np.float32).ctypes.data % 64 == 0

def test_training_results_survive_later_calls():
    """A cache (and outputs) kept by the caller are not overwritten by the next calls."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 64, 32)).astype(np.float32)
    W, U = rng.standard_normal((32, 1024)).astype(np.float32), rng.standard_normal(
        (256, 1024)).astype(np.float32) * 0.05
    y1, h1, c1, cache1 = ops.lstm_forward(x, W, U, None)
    grads1 = ops.lstm_backward(np.ones_like(y1), None, None, cache1)
    y_copy, g_copy = y1.copy(), [g.copy() for g in grads1 if g is not None]
    for _ in range(3):               # other calls recycle whatever was freed
        y2, _, _, cache2 = ops.lstm_forward(x * 2, W, U, None)
        ops.lstm_backward(np.ones_like(y2), None, None, cache2)
        del y2, cache2
    np.testing.assert_array_equal(y1, y_copy)
    again = ops.lstm_backward(np.ones_like(y1), None, None, cache1)
    for want, got in zip(g_copy, [a for a in again if a is not None]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("blas", ["0", "1"])
def test_backward_writes_every_weight_gradient_into_reused_memory(blas, monkeypatch):
    """The weight gradients come from the pool uninitialized (ops._weight_gradients): a backward
    call must write all of them. The blocks they will reuse are filled with NaN first; the
    gradients must still be the reference's, for every cell (the GRU's reset-before dU is
    written in two column blocks), whole and ragged batches, through the packed products and
    through BLAS (SEQCORE_BLAS_PRODUCTS=1: beta 0, C not read)."""
    from seqcore import reference

    monkeypatch.setenv("SEQCORE_BLAS_PRODUCTS", blas)

    rng = np.random.default_rng(4)
    T, B = 3, 2
    cases = [("lstm", 4, {}), ("gru", 3, {"reset_after": True}),
             ("gru", 3, {"reset_after": False}), ("rnn", 1, {})]
    for cell, G, extra in cases:
        I = H = 256 if G > 1 else 512    # dW, dU: 1.5-2 MiB each in float64, pooled
        x = rng.standard_normal((T, B, I))
        dy = rng.standard_normal((T, B, H))
        W = rng.standard_normal((I, G * H)) * 0.05
        U = rng.standard_normal((H, G * H)) * 0.05
        b = rng.standard_normal((2, G * H) if extra.get("reset_after") else G * H) * 0.1
        for mask in (None, np.array([[1, 1], [1, 0], [0, 0]], bool)):
            out = getattr(ops, f"{cell}_forward")(x, W, U, b, mask=mask, training=True, **extra)
            ref = getattr(reference, f"{cell}_forward")(x, W, U, b, mask=mask, **extra)
            poison_pool((I, G * H), np.float64, 2)     # the blocks dW and dU will take
            finals = [None] * (2 if cell == "lstm" else 1)
            got = getattr(ops, f"{cell}_backward")(dy, *finals, out[-1])
            want = getattr(reference, f"{cell}_backward")(dy, *finals, ref[-1])
            for g, w in zip(got[1:3], want[1:3]):
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-10 * np.abs(w).max())


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_reset_before", "rnn"])
def test_backward_writes_every_row_of_dx_into_reused_memory(cell):
    """dX also comes from the pool uninitialized (ops._written_gradients): the input gradient
    writes every row, a ragged batch's finished rows zero (scan.pxd input_gradient). The
    blocks it will reuse are filled with NaN first; dX must still be the reference's, for a
    whole batch and a ragged one (lengths spread from 0 to T, so that the finished rows are
    left out of the product), without and with input dropout."""
    from seqcore import reference

    name = "gru" if cell.startswith("gru") else cell
    extra = {"reset_after": cell == "gru"} if name == "gru" else {}
    G = {"lstm": 4, "gru": 3, "rnn": 1}[name]
    rng = np.random.default_rng(6)
    T, B, I, H = 64, 16, 130, 24          # dX (T, B, I): 1 MiB and more in float64, pooled
    assert T * B * I * 8 >= pool.MIN_BYTES
    x = rng.standard_normal((T, B, I))
    dy = rng.standard_normal((T, B, H))
    W = rng.standard_normal((I, G * H)) * 0.1
    U = rng.standard_normal((H, G * H)) * 0.3
    b = rng.standard_normal((2, G * H) if extra.get("reset_after") else G * H) * 0.1
    lengths = np.linspace(0, T, B).round().astype(int)[::-1]
    for mask in (None, np.arange(T)[:, None] < lengths[None, :]):
        for input_mask in (None, (rng.random((B, I)) < 0.8) / 0.8):
            options = dict(mask=mask, input_mask=input_mask, **extra)
            out = getattr(ops, f"{name}_forward")(x, W, U, b, **options)
            ref = getattr(reference, f"{name}_forward")(x, W, U, b, **options)
            poison_pool((T, B, I), np.float64, 2)       # the blocks dX will take
            got = getattr(ops, f"{name}_backward")(dy, *[None] * (len(out) - 2), out[-1])[0]
            want = getattr(reference, f"{name}_backward")(dy, *[None] * (len(ref) - 2),
                                                          ref[-1])[0]
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * np.abs(want).max())
