"""The Cython kernels (through seqcore.ops) against the NumPy reference, by finite differences,
and for the properties the reference cannot show: threads, concurrency, denormals, memory."""
import itertools
import subprocess
import sys
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest

import seqcore
from seqcore import ops, reference
from seqcore._kernels import checks
from rnn_cases import (TOLERANCE, VARIANTS, backward, finite_difference_check, forward,
                       lengths_to_mask, loss_weights, make_problem)

# (T, B, I, H): single step, single row, hidden 1, sizes off the SIMD width, blocks that split;
# the row tiles of the products and the LSTM step, of up to 6 rows sized at run time (B = 7:
# 4 + 3, 9: 5 + 4, 14: 5 + 5 + 4, 15: 5 + 5 + 5, 18: 6 + 6 + 6), the GRU step's of up to 8
# on AVX-512 (7, 9: 5 + 4, 10: 5 + 5, 14: 7 + 7, 15: 8 + 7, 18: 6 + 6 + 6), 2-row and
# single-row tiles (B = 2, 1)
SHAPES = [(1, 1, 1, 1), (1, 3, 5, 7), (5, 1, 4, 17), (9, 4, 3, 33), (6, 7, 13, 16),
          (4, 2, 5, 65), (3, 9, 2, 130), (2, 15, 6, 40), (2, 10, 3, 273),
          (30, 9, 4, 20), (40, 14, 3, 9), (3, 18, 5, 48)]
OPTION_SETS = [dict(), dict(mask=True), dict(reverse=True, mask=True),
               dict(dropout=True, initial=True), dict(bias=False, mask=True, dropout=True),
               dict(mask=True, reverse=True, dropout=True, initial=True)]


def max_rel_error(got, expected):
    scale = max(np.max(np.abs(expected)), 1.0) if expected.size else 1.0
    return np.max(np.abs(got - expected)) / scale if expected.size else 0.0


@contextmanager
def num_threads(n):
    """seqcore.set_num_threads(n) for the block, the previous count afterwards."""
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(n)
    try:
        yield
    finally:
        seqcore.set_num_threads(before)


def compare_with_reference(p):
    tol = TOLERANCE[p.x.dtype.type]
    ref_out, ref_finals, ref_cache = forward(reference, p)
    out, finals, cache = forward(ops, p)
    assert out.dtype == p.x.dtype
    assert max_rel_error(out, ref_out) <= tol
    for f, g in zip(finals, ref_finals):
        assert max_rel_error(f, g) <= tol
    R_out, R_finals = loss_weights(p)
    ref_grads, _ = backward(reference, p, R_out, R_finals, ref_cache)
    grads, _ = backward(ops, p, R_out, R_finals, cache)
    for name_arr, g, r in zip(p.arrays(), grads, ref_grads):
        assert g.shape == r.shape and g.dtype == p.x.dtype, name_arr[0]
        # gradients sum over T*B rows: allow the float32 rounding of that many terms
        assert max_rel_error(g, r) <= tol * (10 if p.x.dtype == np.float32 else 1), name_arr[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_kernel_matches_reference(variant, options, shape, dtype):
    compare_with_reference(make_problem(variant, *shape, dtype=dtype, seed=sum(shape), **options))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("B,H", [(16, 520), (70, 40), (40, 700)])
def test_kernel_matches_reference_when_threads_split_the_step(variant, threads, B, H,
                                                              monkeypatch):
    """Every step split over the threads (forced: H = 40 alone would run serial) and the GEMMs
    around the loop by rows or columns; H = 40 leaves the second thread a block narrower than a
    panel. H = 520 (LSTM) and 700 (GRU too) make the backward's recurrent gradient "tall"
    (cells_entry.h sc_recurrent_grad): one-panel items at B = 16, one block of rows per thread
    at B = 40 (masked rows: the active rows change from step to step)."""
    monkeypatch.setattr(ops, "_STEP_SPLIT", True)
    with num_threads(threads):
        for dtype in (np.float32, np.float64):
            compare_with_reference(make_problem(variant, 4, B, 8, H, dtype=dtype, mask=True,
                                                dropout=True, initial=True, scale=0.1))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("threads", [1, 2])
def test_every_register_tile_height_matches_reference(variant, threads, monkeypatch):
    """The fused steps' register tiles (cells.h: the LSTM's, the GRU's, both rounds of the
    reset-before GRU's, the simple RNN's) are compiled for each number of rows up to 6 or 8
    and take the batch in the fewest such tiles: every batch of 1 to 8 rows, and 13 (5 + 4 +
    4), through each of them, at H = 131 (whole groups of 2 and 4 panels, then a remainder
    and an edge unit that the unfused path takes), masked rows and holes included."""
    monkeypatch.setattr(ops, "_STEP_SPLIT", True)
    with num_threads(threads):
        for B in [1, 2, 3, 4, 5, 6, 7, 8, 13]:
            compare_with_reference(make_problem(variant, 5, B, 6, 131, dtype=np.float32,
                                                seed=B, mask=True, scale=0.2))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_team_barrier_whose_waiters_sleep_at_once(variant, monkeypatch):
    """The steps' barrier (cells.h sc_team_barrier) spins, then sleeps on a futex; with
    SEQCORE_BARRIER_SPINS=0 every waiter sleeps at every barrier, so the sleep and the wake
    (which must not be lost: a lost wake hangs the call) run at every step of the forward and
    backward scans, and the results stay the reference's."""
    monkeypatch.setattr(ops, "_STEP_SPLIT", True)
    monkeypatch.setenv("SEQCORE_BARRIER_SPINS", "0")
    with num_threads(2):
        for B, H in [(1, 48), (9, 80)]:
            compare_with_reference(make_problem(variant, 6, B, 5, H, dtype=np.float64,
                                                mask=True, scale=0.1))


@pytest.mark.parametrize("variant", ["lstm", "gru"])
@pytest.mark.parametrize("in_place", ["1", "0"])
@pytest.mark.parametrize("spins", ["0", None])
@pytest.mark.parametrize("H", [16, 40, 48, 100, 256])
def test_batch_of_one_steps_without_a_barrier(variant, H, spins, in_place, monkeypatch):
    """LSTM and GRU (reset_after) inference of one row on a team of two (cells_entry.h's
    overlapped steps: each thread multiplies its own part of the state first, then waits for
    the other's step before, with no barrier; the second thread's products sum in another
    order): against the reference with holes in the mask (a masked step keeps the state), a
    row of no valid step, initial states, recurrent dropout, reverse, chunks of a few steps
    (the wait counts steps across them), both layouts of the LSTM's U (H = 40 and 100 have an
    edge panel and are packed either way; H = 16 leaves one thread no units), waiters that
    spin or sleep at once; and the same bits from call to call."""
    monkeypatch.setattr(ops, "_STEP_SPLIT", True)
    monkeypatch.setattr(ops, "_CHUNK_ELEMENTS", 5 * 4 * H)
    monkeypatch.setenv("SEQCORE_INPLACE", in_place)
    if spins is not None:
        monkeypatch.setenv("SEQCORE_BARRIER_SPINS", spins)
    holes = np.array([1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1], bool)[:, None]
    with num_threads(2):
        for dtype in (np.float32, np.float64):
            for options, mask in [(dict(initial=True, dropout=True), holes),
                                  (dict(reverse=True, initial=True), holes),
                                  (dict(), None), (dict(initial=True), np.zeros_like(holes))]:
                p = make_problem(variant, 11, 1, 5, H, dtype=dtype, scale=0.2, **options)
                p.mask = mask
                want, want_finals, _ = forward(reference, p)
                got, finals, cache = forward(ops, p, training=False)
                assert cache is None
                tol = TOLERANCE[dtype]
                assert max_rel_error(got, want) <= tol
                for f, w in zip(finals, want_finals):
                    assert max_rel_error(f, w) <= tol
                again, again_finals, _ = forward(ops, p, training=False)
                np.testing.assert_array_equal(again, got)
                for f, g in zip(again_finals, finals):
                    np.testing.assert_array_equal(f, g)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("in_place", ["1", "0"])
@pytest.mark.parametrize("threads,shape", [(1, (1, 1, 5, 16)), (1, (3, 2, 7, 32)),
                                           (1, (2, 4, 3, 64)), (2, (2, 4, 9, 256))])
def test_weights_read_in_place_or_packed(variant, in_place, threads, shape, monkeypatch):
    """Small calls (few rows, H a multiple of 16) read W and U where they lie instead of packing
    them (scan.pxd in_place); SEQCORE_INPLACE forces either way, so both paths are checked on
    the same shapes, at one thread and with the step split over two."""
    monkeypatch.setenv("SEQCORE_INPLACE", in_place)
    with num_threads(threads):
        for dtype in (np.float32, np.float64):
            compare_with_reference(make_problem(variant, *shape, dtype=dtype, mask=True,
                                                dropout=True, initial=True, reverse=True,
                                                scale=0.1))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("blas", ["1", "0"])
@pytest.mark.parametrize("threads,shape,options", [
    (1, (5, 7, 13, 33), dict(mask=True, dropout=True, initial=True)),
    (1, (3, 9, 6, 20), dict(bias=False, reverse=True, dropout=True)),
    (2, (4, 70, 9, 40), dict(mask=True, reverse=True, dropout=True, initial=True))])
def test_training_products_by_blas_or_packed(variant, blas, threads, shape, options,
                                             monkeypatch):
    """A training call's large products around the time loop (input projection, weight and
    input gradients) go to BLAS, the others through the packed kernels (scan.pxd
    blas_product); SEQCORE_BLAS_PRODUCTS forces either way, so both paths are checked on the
    same shapes: with and without bias, masks and input dropout, split over two threads."""
    monkeypatch.setenv("SEQCORE_BLAS_PRODUCTS", blas)
    with num_threads(threads):
        for dtype in (np.float32, np.float64):
            compare_with_reference(make_problem(variant, *shape, dtype=dtype, seed=3,
                                                scale=0.1, **options))



@pytest.mark.parametrize("variant", ["lstm", "gru"])
def test_wide_layers_products_in_blocks_of_k_and_single_panels(variant):
    """H = 600 at two threads: the backward step's recurrent gradient takes items of one panel
    of 16 units (their columns of U^T pass SC_GRAD_TALL_BYTES), and its products, like the
    input gradient, run over K = G*H > SC_K_BLOCK in blocks of k (cells_impl.h); the 38
    panels of a product leave 2 past the last whole group of 4."""
    with num_threads(2):
        compare_with_reference(make_problem(variant, 2, 3, 5, 600, dtype=np.float32, mask=True,
                                            dropout=True, scale=0.05))

@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("mask,reverse,dropout,initial,bias",
                         list(itertools.product([False, True], repeat=5)))
def test_kernel_backward_matches_finite_differences(variant, mask, reverse, dropout, initial,
                                                     bias):
    p = make_problem(variant, T=4, B=4, I=3, H=2, mask=mask, reverse=reverse,
                     dropout=dropout, initial=initial, bias=bias, seed=7)
    worst = finite_difference_check(ops, p)
    assert max(worst.values()) <= 1e-6, worst


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype,shape", [(np.float64, (23, 3, 4, 5)),
                                         (np.float32, (7, 9, 4, 32))])
def test_inference_equals_training_and_chunks_do_not_matter(variant, dtype, shape, monkeypatch):
    """(7, 9, 4, 32) float32: the LSTM's 4-row tiles of full panels (cells.h
    sc_lstm_tile4_v16 on AVX-512) in both modes."""
    p = make_problem(variant, *shape, dtype=dtype, mask=True, reverse=True, dropout=True,
                     initial=True)
    out, finals, _ = forward(ops, p)
    monkeypatch.setattr(ops, "_CHUNK_ELEMENTS", 7)     # several steps per chunk, ragged end
    out_inf, finals_inf, cache = forward(ops, p, training=False)
    assert cache is None
    np.testing.assert_array_equal(out_inf, out)
    for a, b in zip(finals_inf, finals):
        np.testing.assert_array_equal(a, b)
    none, finals_last, _ = forward(ops, p, training=False, return_sequences=False)
    assert none is None
    for a, b in zip(finals_last, finals):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_length_zero_rows_and_empty_inputs(variant):
    p = make_problem(variant, 5, 3, 2, 4, initial=True)
    p.mask = lengths_to_mask([0, 5, 0], 5)
    out, finals, cache = forward(ops, p)
    for f, s in zip(finals, p.states):
        np.testing.assert_array_equal(f[[0, 2]], s[[0, 2]])
    assert not out[:, [0, 2]].any()
    R_out, R_finals = loss_weights(p)
    grads, d_states = backward(ops, p, R_out, R_finals, cache)
    assert not grads[0][:, [0, 2]].any()                 # no gradient into unused inputs
    for d, r in zip(d_states, R_finals):                # the state passes straight through
        np.testing.assert_array_equal(d[[0, 2]], r[[0, 2]])
    for T, B in [(0, 3), (5, 0)]:
        q = make_problem(variant, T, B, 2, 4, initial=True)
        out, finals, cache = forward(ops, q)
        assert out.shape == (T, B, 4)
        for f, s in zip(finals, q.states):
            np.testing.assert_array_equal(f, s)
        grads, d_states = backward(ops, q, np.ones((T, B, 4)), [np.ones((B, 4))] * len(finals),
                                   cache)
        assert all(not g.any() for g in grads[:3])
        assert all((d == 1).all() for d in d_states)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_same_result_bit_for_bit_at_each_thread_count(variant):
    p = make_problem(variant, 6, 16, 32, 520, dtype=np.float32, mask=True, dropout=True,
                     scale=0.1)
    R_out, R_finals = loss_weights(p)
    results = {}
    for threads in (1, 2):
        with num_threads(threads):
            runs = []
            for _ in range(3):
                out, finals, cache = forward(ops, p)
                grads, _ = backward(ops, p, R_out, R_finals, cache)
                runs.append([out] + finals + grads)
            for run in runs[1:]:
                for a, b in zip(run, runs[0]):
                    np.testing.assert_array_equal(a, b)
            results[threads] = runs[0]
    for a, b in zip(results[1], results[2]):   # BLAS may sum in another order: close, not equal
        assert max_rel_error(a, b) <= 1e-5


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_same_result_bit_for_bit_when_a_core_is_busy(variant):
    """The team's threads claim a step's items (cells.h sc_claims): which thread computes which
    block depends on timing, the arithmetic must not. A busy process on the machine makes the
    claims differ from a quiet run's."""
    p = make_problem(variant, 6, 16, 32, 264, dtype=np.float32, mask=True, dropout=True,
                     scale=0.1)
    R_out, R_finals = loss_weights(p)

    def run():
        out, finals, cache = forward(ops, p)
        grads, _ = backward(ops, p, R_out, R_finals, cache)
        return [out] + finals + grads

    before = seqcore.get_num_threads()
    seqcore.set_num_threads(2)
    spinner = None
    try:
        quiet = run()
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(5):
            for a, b in zip(run(), quiet):
                np.testing.assert_array_equal(a, b)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
        seqcore.set_num_threads(before)


def test_concurrent_calls_from_python_threads_match_serial_calls():
    problems = [make_problem(v, 8, 5, 6, 40, dtype=np.float32, seed=i, mask=True, dropout=True)
                for i, v in enumerate(list(VARIANTS) * 2)]

    def run(p):
        out, finals, cache = forward(ops, p)
        R_out, R_finals = loss_weights(p)
        grads, _ = backward(ops, p, R_out, R_finals, cache)
        return [out] + finals + grads

    serial = [run(p) for p in problems]
    start = threading.Barrier(4)

    def run_together(k):
        if k < 4:
            start.wait()     # the first four start at the same moment
        return run(problems[k])

    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(run_together, range(len(problems))))
    for a_run, b_run in zip(concurrent, serial):
        for a, b in zip(a_run, b_run):
            np.testing.assert_array_equal(a, b)


def test_lstm_batch_of_one_without_a_barrier_from_concurrent_python_threads(monkeypatch):
    """Each call's step counters (cells.h sc_team_wait) are its own: single-row LSTM inference
    on teams of two from four Python threads at once (teams that outnumber the cores, whose
    waiters soon sleep) gives the serial calls' bits, and no call waits for ever."""
    monkeypatch.setattr(ops, "_STEP_SPLIT", True)
    monkeypatch.setenv("SEQCORE_BARRIER_SPINS", "100")
    problems = [make_problem("lstm", 12, 1, 5, 64, dtype=np.float32, seed=i, initial=True,
                             scale=0.2) for i in range(8)]
    start = threading.Barrier(4)

    def run(k):
        if k < 4:
            start.wait()     # the first four start at the same moment
        out, finals, _ = forward(ops, problems[k], training=False)
        return [out] + finals

    with num_threads(2):
        serial = [[out] + finals for out, finals, _ in
                  (forward(ops, p, training=False) for p in problems)]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(run, range(len(problems))))
    for a_run, b_run in zip(together, serial):
        for a, b in zip(a_run, b_run):
            np.testing.assert_array_equal(a, b)


def test_float32_activations_are_accurate():
    tiny = np.finfo(np.float32).tiny
    x = np.concatenate([np.linspace(-100, 100, 400_001), np.logspace(-30, 2, 20_001)])
    x = np.concatenate([x, -x]).astype(np.float32)
    xd = x.astype(np.float64)
    out = np.empty_like(x)
    sig = checks.activation("sigmoid", x, out).astype(np.float64)
    ref = 1 / (1 + np.exp(-xd))
    normal = ref >= tiny
    assert (np.abs(sig - ref)[normal] / ref[normal]).max() <= 1e-6
    assert np.abs(sig - ref)[~normal].max() <= tiny
    th = checks.activation("tanh", x, out).astype(np.float64)
    ref = np.tanh(xd)
    normal = np.abs(ref) >= tiny
    assert (np.abs(th - ref)[normal] / np.abs(ref[normal])).max() <= 1e-6
    # within their ranges (a fitted formula may overshoot where the true value rounds to 1)
    assert 0 <= sig.min() and sig.max() <= 1 and np.abs(th).max() <= 1
    special = np.array([np.nan, np.inf, -np.inf, 0.0], np.float32)
    np.testing.assert_array_equal(checks.activation("tanh", special, np.empty(4, np.float32)),
                                  [np.nan, 1, -1, 0])
    s = checks.activation("sigmoid", special, np.empty(4, np.float32))
    assert np.isnan(s[0]) and s[1] == 1 and s[2] <= tiny and s[3] == 0.5


def test_float64_activations_are_accurate():
    tiny = np.finfo(np.float64).tiny
    x = np.concatenate([np.linspace(-800, 800, 400_001), np.logspace(-300, 3, 20_001)])
    x = np.concatenate([x, -x])
    out = np.empty_like(x)
    sig = checks.activation("sigmoid", x, out).copy()
    with np.errstate(over="ignore"):
        ref = 1 / (1 + np.exp(-x))
    normal = ref >= tiny
    assert (np.abs(sig - ref)[normal] / ref[normal]).max() <= 1e-14
    # below the normal range: exp's argument is clamped at ln(DBL_MIN), about DBL_MIN out
    assert np.abs(sig - ref)[~normal].max() <= 2 * tiny
    th = checks.activation("tanh", x, out).copy()
    ref = np.tanh(x)
    normal = np.abs(ref) >= tiny
    assert (np.abs(th - ref)[normal] / np.abs(ref[normal])).max() <= 1e-14
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324])
    t = checks.activation("tanh", special, np.empty(6))
    np.testing.assert_array_equal(t[:5], [np.nan, 1, -1, 0, 0])
    assert np.signbit(t[4]) and not np.signbit(t[3]) and abs(t[5]) <= tiny
    s = checks.activation("sigmoid", special, np.empty(6))
    assert np.isnan(s[0]) and s[1] == 1 and s[2] <= 2 * tiny and s[3] == s[4] == 0.5


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_denormal_inputs_give_reference_results_and_leave_the_fpu_alone(variant):
    """Inputs and states in the float32 denormal range (the kernels flush them to zero; the
    answers differ from the reference by less than the smallest normal float)."""
    p = make_problem(variant, 6, 4, 3, 20, dtype=np.float32, initial=True, scale=1e-39 / 0.5)
    p.kernel *= 1e38
    before = checks.fpu_mode()
    out, finals, cache = forward(ops, p)
    R_out, R_finals = loss_weights(p)
    backward(ops, p, R_out, R_finals, cache)
    assert checks.fpu_mode() == before
    ref_out, ref_finals, _ = forward(reference, p)
    assert np.abs(out - ref_out).max() <= 1e-5 * max(1.0, np.abs(ref_out).max())
    for f, g in zip(finals, ref_finals):
        assert np.abs(f - g).max() <= 1e-5 * max(1.0, np.abs(g).max())


def test_long_sequence_inference_memory_does_not_grow_with_T():
    T, B, I, H = 100_000, 1, 8, 64
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    W = (rng.standard_normal((I, 4 * H)) * 0.1).astype(np.float32)
    U = (rng.standard_normal((H, 4 * H)) * 0.1).astype(np.float32)
    b = np.zeros(4 * H, np.float32)
    tracemalloc.start()
    out, h, c, cache = ops.lstm_forward(x, W, U, b, training=False, return_sequences=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out is None and cache is None and np.isfinite(h).all()
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB beyond the {x.nbytes / 2**20:.1f} MiB input"
