"""Validated entry points onto the Cython kernels.

Same signatures as `seqcore.reference` (so tests swap one for the other), plus two keyword
arguments for the fast paths:
    training=True          keep what backward needs and return it as `cache`; with False the
                           inference kernel runs, stores nothing and `cache` is None.
    return_sequences=True  with False (inference only) the per-step outputs are not kept and
                           `outputs` is None, so memory does not grow with T.
(and a private one, _prepacked: BoundLayer's way in, not for callers).

Arrays are time-major: x (T, B, I), states (B, H), mask (T, B) bool. The compute dtype is the
dtype of x (float32 or float64; other real inputs are converted to float32); weights, states and
masks are converted to it. Every argument is checked here and a bad one raises ValueError or
TypeError naming it; the kernels trust what they get. x and d_outputs may be views in any
memory layout (a batch-first caller passes x.transpose(1, 0, 2)); the kernels get one
C-contiguous copy. A ragged batch's outputs and dx (and, on more than one thread, any batch's
dx) come back lying in memory as x did, so that a batch-first caller's transpose back is free.
"""
import numpy as np

from . import runtime
from ._kernels import blas as _blas
from ._kernels import gru as _gru
from ._kernels import layout as _layout
from ._kernels import lstm as _lstm
from ._kernels import pool as _pool
from ._kernels import rnn as _rnn
from ._kernels import step as _step

__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward",
           "rnn_backward", "lengths_to_mask", "matmul", "BoundLayer", "Stepper",
           "release_memory"]

# Inference projects the inputs of a chunk of steps at a time (so that memory does not grow
# with T), at most this many pre-activations (4 MiB in float32); see _chunk_steps.
_CHUNK_ELEMENTS = 1 << 20


# ----------------------------------------------------------------------------- validation

def _compute_dtype(x):
    x = np.asarray(x)
    if x.dtype in (np.float32, np.float64):
        return x.dtype.type
    if x.dtype.kind in "biuf":
        return np.float32
    raise TypeError(f"x: expected a real floating array (float32 or float64), got dtype {x.dtype}")


def _contiguous(arr, dtype):
    """arr as a C-contiguous array of dtype the kernels can take. Read-only arrays (weights
    memory-mapped with np.load(mmap_mode='r'), ONNX initializers, np.frombuffer) are copied:
    the kernels' typed memoryviews need writable buffers. TODO: const memoryviews for the
    kernels' input arguments would spare the copy."""
    out = np.ascontiguousarray(arr, dtype=dtype)
    return out if out.flags.writeable else out.copy()


def _checked(name, value, shape):
    """value as a real numeric array of exactly `shape` (any dtype and layout), or a clear
    error."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    return arr


def _array(name, value, dtype, shape):
    """value as a C-contiguous array of dtype and exactly `shape`, or a clear error."""
    return _contiguous(_checked(name, value, shape), dtype)


def _optional(name, value, dtype, shape):
    return None if value is None else _array(name, value, dtype, shape)


def bool_mask(mask, shape, layout):
    """mask as a bool array of exactly `shape` (layout names its axes, e.g. "(T, B)"), or a
    clear error. Integers 0/1 are accepted too."""
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise ValueError(f"mask: expected shape {layout} = {tuple(shape)}, got {m.shape}")
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iu" or not np.isin(m, (0, 1)).all():
            raise TypeError(f"mask: expected a bool array (or integers 0/1), got dtype {m.dtype}")
    return m.astype(bool, copy=False)


# mask=None's all-valid (T, B) masks, read-only (the kernels only read masks), kept for the
# next call of the same shape: np.ones in a loop of batch-1 calls took 2% of each call's time
# (its fill, in an interpreter whose lines the kernel's weights had pushed out of cache)
_ALL_VALID = {}
_ALL_VALID_KEPT = 16


def _mask(mask, T, B):
    if mask is None:
        ones = _ALL_VALID.get((T, B))
        if ones is None:
            if len(_ALL_VALID) >= _ALL_VALID_KEPT:
                _ALL_VALID.clear()
            ones = np.ones((T, B), np.uint8)
            ones.flags.writeable = False
            _ALL_VALID[T, B] = ones
        return ones
    return np.ascontiguousarray(bool_mask(mask, (T, B), "(T, B)"), dtype=np.uint8)


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _check_forward(cell, gates, x, kernel, recurrent_kernel, bias, bias_shape, states, mask,
                   input_mask, recurrent_mask, reverse):
    """Validate and convert the common forward arguments. Returns a dict of arrays and sizes."""
    dtype = _compute_dtype(x)
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x: expected a time-major (T, B, I) array, got shape {x.shape}")
    T, B, I = x.shape
    if I == 0:
        raise ValueError("x: the feature axis (I) must not be empty")
    U = np.asarray(recurrent_kernel)
    if U.ndim != 2 or U.shape[0] == 0 or U.shape[1] != gates * U.shape[0]:
        raise ValueError(f"recurrent_kernel: expected shape (H, {gates}*H) for {cell}, "
                         f"got {U.shape}")
    H = U.shape[0]
    out = dict(
        dtype=dtype, T=T, B=B, I=I, H=H, batch_major=_batch_major(x),
        kernel=_array("kernel", kernel, dtype, (I, gates * H)),
        recurrent_kernel=_array("recurrent_kernel", U, dtype, (H, gates * H)),
        bias=_optional("bias", bias, dtype, bias_shape(H)),
        states=[_own_state(name, s, dtype, (B, H)) for name, s in states],
        mask=_mask(mask, T, B),
        input_mask=_optional("input_mask", input_mask, dtype, (B, I)),
        recurrent_mask=_optional("recurrent_mask", recurrent_mask, dtype, (B, H)),
        reverse=_flag("reverse", reverse),
    )
    sorting = _longest_first(out) if mask is not None else None
    out["order"], out["inverse"] = sorting if sorting is not None else (None, None)
    out["x"] = _for_kernels(x, out["inverse"], dtype)
    return out


def _own_state(name, value, dtype, shape):
    """A call's own copy of a state argument `name` (zeros for None), which the kernels
    overwrite: the pool's memory, which the kernels' threads write without sharing cache lines
    (_pool.empty)."""
    out = _pool.empty(shape, dtype)
    if value is None:
        out.fill(0)
    else:
        out[...] = _array(name, value, dtype, shape)
    return out


def _rows_taken(a, order):
    """a[order] (rows in that order) in the pool's memory, as _own_state."""
    out = _pool.empty(a.shape, a.dtype)
    np.take(a, order, axis=0, out=out)
    return out


def _for_kernels(seq, inverse, dtype):
    """seq (T, B, ...) in any layout (a batch-first caller's transposed view) as the kernels take
    it, C-contiguous in dtype, in one copy: with its rows in the sorted order of _longest_first
    (inverse, as it returns) or, when inverse is None, as they are."""
    if inverse is None and not (_batch_major(seq) and not seq.flags.c_contiguous
                                and seq.dtype == dtype and runtime.get_num_threads() > 1):
        return _contiguous(seq, dtype)
    return _rows_moved(seq, inverse, dtype, batch_major=False)


def _batch_major(x):
    """Whether the (T, B, ...) array x lies batch-major in memory (a transposed view of a
    (B, T, ...) array, as a batch-first layer passes it)."""
    return x.ndim >= 2 and abs(x.strides[1]) > abs(x.strides[0])


def _rows_moved(src, where, dtype, batch_major):
    """A copy of src (T, B, ...) in dtype with row b of every step moved to row where[b]
    (dst[:, where] = src; where None: as they are), made in one pass over src whatever its
    layout, lying C-contiguous or, when batch_major, batch-major in memory (a transposed view
    of a contiguous (B, T, ...) array). The ragged path's reorders (_longest_first: x and
    d_outputs) and dx's way back (_caller_order) go through here, each fused with the layout
    change a batch-first caller would otherwise make in a second copy (a forward call's outputs
    are handed on to the caller's order by the scans themselves: _outputs), and so, on more
    than one thread, do a batch-first caller's x, d_outputs and dx (_for_kernels,
    _caller_order). The copies are pooled memory: from np.empty, a ragged training step (LSTM
    layer, (T, B, I, H) = (100, 32, 128, 256)) faulted in ~1040 fresh pages at every call and
    took 1.04-1.16x the time (1 and 2 threads). With more than one thread, they share the copy
    (_layout.move_rows) when src is already in dtype."""
    if batch_major:
        dst = _pool.empty((src.shape[1], src.shape[0]) + src.shape[2:], dtype).swapaxes(0, 1)
    else:
        dst = _pool.empty(src.shape, dtype)
    threads = runtime.get_num_threads()
    if where is not None:
        where = np.asarray(where, np.int64)
    if not (threads > 1 and src.dtype == dst.dtype
            and _layout.move_rows(src, dst, where, threads)):
        dst[:, slice(None) if where is None else where] = src
    return dst


def _longest_first(a):
    """Put the rows of a ragged batch in order of their valid steps, most first (a stable
    sort). The kernels' recurrent products skip the masked rows at the end of the batch
    (cells.h, sc_active_rows), so sorted, a batch of sequences of different lengths costs its
    valid steps instead of T full steps. The masks and the states are permuted here (the
    caller moves x with _rows_moved); _caller_order puts results back. Returns (order,
    inverse): sorted row j is the caller's row order[j], the caller's row b is sorted row
    inverse[b]; or None when the rows are in that order already."""
    counts = a["mask"].sum(axis=0, dtype=np.int64)
    if a["T"] == 0 or a["B"] < 2 or np.all(counts[:-1] >= counts[1:]):
        return None
    order = np.argsort(-counts, kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    a["mask"] = np.ascontiguousarray(a["mask"][:, order])
    a["states"] = [_rows_taken(s, order) for s in a["states"]]
    for name in ("input_mask", "recurrent_mask"):
        if a[name] is not None:
            a[name] = a[name][order]
    return order, inverse


def _caller_order(a, sequences, states):
    """sequences (T, B, ...) or None and states (B, ...) back in the caller's row order.
    Sequences that are reordered, or, on more than one thread, whose call's x lay batch-major
    (a transposed view of batch-first data), lie in memory as x did, so that a batch-first
    caller's transpose back costs no copy: the one copy is this one, which _rows_moved then
    shares among the threads. On one thread the caller's NumPy copy is as fast, and made after
    the backward call it does not add to the call's peak memory (LSTM layer training at
    (100, 64, 512, 512): 182 MB; 194 MB with the copy made here)."""
    order = a["order"]
    if sequences is not None and (order is not None or (
            a["batch_major"] and runtime.get_num_threads() > 1
            and not sequences.swapaxes(0, 1).flags.c_contiguous)):
        sequences = _rows_moved(sequences, order, sequences.dtype, a["batch_major"])
    if order is None:
        return sequences, states
    return sequences, [s[a["inverse"]] for s in states]


def _check_backward(cache, d_outputs, d_finals, names):
    if not isinstance(cache, dict) or "kernel_module" not in cache:
        raise TypeError("cache: expected the cache returned by a seqcore.ops forward call "
                        "with training=True")
    T, B, H, dtype = cache["T"], cache["B"], cache["H"], cache["dtype"]
    finals = [_own_state(n, d, dtype, (B, H)) for n, d in zip(names, d_finals)]
    dY = (_pool.zeros((T, B, H), dtype) if d_outputs is None      # into the forward's row order
          else _for_kernels(_checked("d_outputs", d_outputs, (T, B, H)), cache["inverse"], dtype))
    if cache["order"] is not None:
        finals = [_rows_taken(d, cache["order"]) for d in finals]
    return dY, finals


# A time step is split over threads only when its recurrent product has at least this many
# multiply-adds (rows * G*H * H) and H > _STEP_PARALLEL_UNITS (every kind of step then has two
# blocks of units to share: SC_BLOCK_UNITS in cells_entry.h); below, a fork/join of the team
# costs more than it saves. bench/threshold.py, 2 threads, 2026-11-22, split / serial time:
# 0.54-0.88 for every B in 1..64 at H = 96..256 (LSTM B = 1, H = 96: 3.7e4, 0.80; GRU B = 1,
# H = 128: 4.9e4, 0.80; H = 256: 0.61, where the old bound of 2.6e5 kept it serial); GRU at
# H <= 64 0.99-1.17 (one block: one thread works, the other waits). Two of five runs that
# day had GRU steps split 1.4-2x slower at H = 96..192 whatever B, LSTM unaffected (a process
# shows it on every call or not at all; not understood yet, and not a matter of this bound).
# The team's start and end cost once per call: a call of few steps needs _CALL_PARALLEL_MIN
# multiply-adds in all (the bound that held for every step before; bench/kernels.py's training
# step with T = 1, B = 1, H = 128 at 2 threads took 0.25-0.35 ms split, 0.14-0.19 serial).
_STEP_PARALLEL_MIN = 1 << 15
_CALL_PARALLEL_MIN = 1 << 18
_STEP_PARALLEL_UNITS = 64
_STEP_SPLIT = None       # True / False: split every step or none (bench/threshold.py, tests)


def _run(kernel, call_shape, *args):
    """Call a kernel with the thread counts as its last two arguments (GEMM threads, step
    threads), our BLAS held single-threaded meanwhile (the kernels split their GEMMs over their
    own threads). call_shape: (steps T, rows B, gates G, hidden H)."""
    n_threads, step_threads = _thread_counts(call_shape)
    with runtime.blas_single_threaded(n_threads):
        kernel(*args, n_threads, step_threads)


def _thread_counts(call_shape):
    """(GEMM threads, step threads) of a kernel call of call_shape (T, B, G, H)."""
    T, B, G, H = call_shape
    n_threads = runtime.get_num_threads()
    work = B * G * H * H
    split = _STEP_SPLIT if _STEP_SPLIT is not None else (
        work >= _STEP_PARALLEL_MIN and T * work >= _CALL_PARALLEL_MIN
        and H > _STEP_PARALLEL_UNITS)
    step_threads = n_threads if split else 1
    return n_threads, max(1, min(step_threads, H // 16))   # threads own blocks of >= 16 units


def _written_gradients(T, B, I, H, gates, dtype):
    """dX (T, B, I), dW (I, gates*H) and dU (H, gates*H) of a backward call of T steps and B
    rows: zeros, or, when the scans will write them (a call over at least one step and row),
    uninitialized: the scans write every value of all three (scan.pxd weight_gradient: each
    row of the product from zero, zeros where no row counts, BLAS with beta 0; input_gradient:
    every row, a ragged batch's finished rows zero), so the zero fill that the empty call needs
    would be a wasted pass (LSTM training step (100, 1, 128, 256), paired, dW and dU: 0.96-0.97x
    the time without it at 1 thread, 0.97x at 2; (100, 16, 256, 256) 0.99x; the GRU's at
    (100, 1, 128, 256) 0.996x; dX's fill, 1.6 MB at (100, 32, 128, 256), within the noise).
    The biases' gradients stay zero-filled: sums are added into them."""
    make = _pool.empty if T > 0 and B > 0 else _pool.zeros
    return make((T, B, I), dtype), make((I, gates * H), dtype), make((H, gates * H), dtype)


def _packed_workspace(I, H, gates, dtype):
    """Workspace for the weights packed in panels of 16 units (cells_entry.h): forward, U then W;
    backward, U^T then W^T. The forward needs G*ceil(H/16)*16*(H + I) values, the backward
    G*H*16*(ceil(H/16) + ceil(I/16)); one size serves both."""
    forward = gates * -(-H // 16) * 16 * (H + I)
    backward = gates * H * 16 * (-(-H // 16) + -(-I // 16))
    return _pool.empty_aligned(max(forward, backward), dtype)


def aligned_copy(value, dtype):
    """A C-contiguous copy of `value` in `dtype` whose data starts on a 64-byte line: for a
    layer's weights, which the small calls' products read where they lie (the kernels'
    in_place), each of their 64-byte vector loads then touching one cache line, not two (the
    16-byte offsets np.empty gives cost an LSTM (4, 1, 128, 256) call 8-9%)."""
    value = np.asarray(value, dtype=dtype)
    out = _pool.empty_aligned(value.shape, value.dtype)
    out[...] = value
    return out


def _inference_weights(prepacked, I, H, gates, dtype):
    """The forward_inference kernels' (packed, prepacked) arguments: a BoundLayer's packed
    weights (the *_forward functions' private keyword _prepacked; the kernel then does not
    read kernel and recurrent_kernel), or a fresh workspace that the call packs them into."""
    if prepacked is None:
        return _packed_workspace(I, H, gates, dtype), False
    return prepacked, True


def lengths_to_mask(lengths, T):
    """(B,) integer lengths in [0, T] -> (T, B) bool mask of post-padded sequences."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected a 1-D integer array, got shape {lengths.shape} "
                        f"dtype {lengths.dtype}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"lengths: every length must be in [0, T={T}], got min "
                         f"{lengths.min()} max {lengths.max()}")
    return np.arange(T)[:, None] < lengths[None, :]


# Rows of a chunk's projection: on one thread while W fits in the core's L2 cache, as many as
# keep the chunk's pre-activations within a quarter of that cache (they are then still in
# cache when the steps read them, and the projection gets enough rows to run at speed); many
# otherwise (each chunk reads W again, from L3, and with threads each chunk costs two team
# starts). Measured (LSTM, float32, 1 thread, chunk steps -> time): on Zen 3 (512 KiB L2,
# a quarter: 32 rows at width 4H = 1024), (100, 16, 256, 256) W 1 MiB: 2 -> 19.3 ms, 16 -> 20.7;
# (100, 64, 256, 256): 1 -> 73.6, 4 -> 77.5; but with W 4 MiB, (50, 64, 512, 512): 2 -> 156,
# 8 -> 149; 2 threads, (100, 16, 256, 256): 2 -> 13.1, 16 -> 13.0, 32 -> 12.6. On Sapphire
# Rapids (2 MiB L2, a quarter: 128 rows at 1024), time against 2 steps, paired in one process:
# (100, 16, 256, 256) 8 steps 0.946, 16 0.922, 100 0.999; (100, 16, 128, 128) 16 steps (the
# quarter) 0.937; GRU (100, 16, 256, 256) 8 steps 0.971; (100, 64, 256, 256) 2 steps 0.974
# against 1, 32 steps 1.108.
# But where W and U together take from one to two times the L2 (both nearly fit), every small
# chunk's projection evicts part of U and the steps part of W, each read again from L3: chunks
# are then _CHUNK_ROWS rows. Sapphire Rapids, LSTM, 1 thread, paired against a quarter of L2:
# (100, 16, 256, 256) (2 MiB) 0.951 (0.929-0.974) inference, 0.971 training (one projection);
# (100, 32, 256, 256) 0.970; (100, 16, 192, 320) (2.5 MiB) 0.962-0.964; (100, 16, 128, 384)
# (3 MiB) 0.976; outside that range small chunks stay: (100, 32, 64, 512) (4.5 MiB: U alone
# fills L2) 512 rows 1.008, (100, 16, 256, 128) (0.75 MiB) 1.016, GRU (100, 16, 256, 256)
# (1.5 MiB) 1.014, and the Zen 3 above (2 MiB, four times its L2).
# Where W and U together pass _LARGE_WEIGHT_BYTES, every chunk's projection streams W between
# steps that stream U, and each evicts the other from the shared cache (at (50, 128, 1024,
# 1024) on Sapphire Rapids both the projection and the steps took more samples with chunks of
# 2 steps than of 25: 8% and 4%): chunks are then _LARGE_CHUNK_ROWS rows, whatever the
# pre-activations take (at most that many rows of 4H values: 32 MiB at H = 1024 in float32,
# the size of the weights themselves). Paired in one process, 2048 rows against 512 or the
# 4 MiB cap: LSTM (50, 128, 1024, 1024) 0.94-0.96x the time at 1 thread, 0.94-0.98x at 2; GRU
# 0.95 / 0.97x; LSTM (100, 32, 1024, 1024) 0.91x; (50, 64, 768, 768) (18 MiB) 0.95x; but
# (100, 64, 512, 512) (8 MiB; GRU 6 MiB) 1.03-1.05x, where 512 rows stay.
_CHUNK_ROWS = 512
_CACHED_WEIGHT_BYTES = 1 << 20
_CHUNK_L2_SHARE = 4
_L2_UNREPORTED_BYTES = 512 << 10       # where the system does not say (the Zen 3 above)
_LARGE_WEIGHT_BYTES = 16 << 20
_LARGE_CHUNK_ROWS = 2048


def _chunk_steps(B, width, T, I, H, itemsize, training=False):
    """Steps per chunk of a call: width pre-activations per row, W (I, width), U (H, width).
    Training keeps every step's pre-activations anyway and takes chunks only in the cached case
    (LSTM training, 1 thread, (100, 1, 128, 256): 5.67 -> 5.34 ms; (100, 16, 256, 256)
    unchanged against one projection when it was cached; with 2 threads chunks of 512 rows
    were 0.6-2.3% slower than one projection)."""
    l2 = runtime.l2_cache_bytes()
    weight_bytes = (I + H) * width * itemsize        # W and U together
    cached = (runtime.get_num_threads() == 1
              and I * width * itemsize <= _CACHED_WEIGHT_BYTES
              and not (l2 and l2 <= weight_bytes < 2 * l2))
    if training and not cached:
        return max(1, T)
    if cached:
        rows = (l2 or _L2_UNREPORTED_BYTES) // _CHUNK_L2_SHARE // (max(1, width) * itemsize)
    elif weight_bytes > _LARGE_WEIGHT_BYTES:
        return max(1, min(T, _LARGE_CHUNK_ROWS // max(1, B)))
    else:
        rows = _CHUNK_ROWS
    steps = min(rows // max(1, B), _CHUNK_ELEMENTS // max(1, B * width))
    return max(1, min(T, steps))


def _outputs(a, gates, return_sequences=True):
    """Where a forward call's outputs go: the kernels' arguments (Y, Yout, y_rows, y_step) and
    the outputs to return. Usually the scan writes them into Y (T, B, H) itself. A ragged
    batch's rows reach the scans sorted (_longest_first): there each step's rows go on, as the
    step ends, to an array in the caller's row order and in x's memory layout (batch-major for
    a batch-first caller's transposed view), Y being the scan's two-step buffer (scan.pxd
    handed_on): one write of the outputs instead of a second pass over them after the call.
    A batch-first caller's outputs in their own row order go on the same way when the steps
    are split over threads (each thread hands on its share of the rows), so that the caller's
    transpose back to (B, T, H) is a view instead of a copy on one thread: LSTM layer,
    batch-first, 2 threads, paired against the copy: (B, T, I, H) = (32, 100, 128, 256)
    inference 0.96-0.99x the time, training 0.93-0.96x; (64, 50, 512, 512) 0.99x; with one
    thread the copy after the call was the faster (1.02-1.03x for handing on).
    return_sequences=False: no outputs."""
    T, B, H, dtype, order = a["T"], a["B"], a["H"], a["dtype"], a["order"]
    if not return_sequences:
        return (None, None, None, 0), None
    if order is None and not (a["batch_major"] and T > 1 and B > 1
                              and _thread_counts((T, B, gates, H))[1] > 1):
        Y = _pool.empty((T, B, H), dtype)
        return (Y, None, None, 0), Y
    if order is None:
        order = np.arange(B)
    if a["batch_major"]:              # sorted row j is the caller's row order[j]
        out = _pool.empty((B, T, H), dtype)
        rows, step, outputs = order * (T * H), H, out.swapaxes(0, 1)
    else:
        out = _pool.empty((T, B, H), dtype)
        rows, step, outputs = order * H, B * H, out
    return ((_pool.empty((2, B, H), dtype), out.reshape(-1), rows.astype(np.int64, copy=False),
             step), outputs)


def _inference_workspace(a, width):
    """Chunked pre-activations, masked-input chunk (if input dropout) and the two Hp buffers."""
    chunk = _chunk_steps(a["B"], width, a["T"], a["I"], a["H"], np.dtype(a["dtype"]).itemsize)
    Z = _pool.empty((chunk, a["B"], width), a["dtype"])
    XD = None if a["input_mask"] is None else _pool.empty((chunk, a["B"], a["I"]), a["dtype"])
    return Z, XD, _pool.empty((2, a["B"], a["H"]), a["dtype"])


def _empty_forward(a, training, return_sequences):
    """T == 0 or B == 0: nothing to compute; outputs are empty and the state is unchanged."""
    outputs = _pool.zeros((a["T"], a["B"], a["H"]), a["dtype"])
    if not training and not return_sequences:
        outputs = None
    return outputs, a["states"]


def _check_mode(training, return_sequences):
    training = _flag("training", training)
    return_sequences = _flag("return_sequences", return_sequences)
    if training and not return_sequences:
        raise ValueError("return_sequences=False is only available with training=False "
                         "(backward needs every step)")
    return training, return_sequences


# ----------------------------------------------------------------------------------- LSTM

def lstm_forward(x, kernel, recurrent_kernel, bias, h0=None, c0=None, mask=None,
                 input_mask=None, recurrent_mask=None, reverse=False, *, training=True,
                 return_sequences=True, _prepacked=None):
    """LSTM layer over a time-major sequence (see seqcore.reference.lstm_forward).

    Returns (outputs (T, B, H) or None, h_n, c_n, cache or None).
    """
    training, return_sequences = _check_mode(training, return_sequences)
    a = _check_forward("LSTM", 4, x, kernel, recurrent_kernel, bias, lambda H: (4 * H,),
                       [("h0", h0), ("c0", c0)], mask, input_mask, recurrent_mask, reverse)
    return _lstm_run(a, training, return_sequences, _prepacked)


def _lstm_run(a, training, return_sequences, prepacked):
    """lstm_forward's work on its checked arguments (_check_forward's dict)."""
    T, B, I, H, dtype = a["T"], a["B"], a["I"], a["H"], a["dtype"]
    h, c = a["states"]
    if T == 0 or B == 0:
        outputs, (h, c) = _empty_forward(a, training, return_sequences)
        cache = dict(a, kernel_module=_lstm, c0=c.copy()) if training else None
        return outputs, h, c, cache
    args = (a["x"], a["kernel"], a["recurrent_kernel"], a["bias"], h, c, a["mask"],
            a["input_mask"], a["recurrent_mask"], a["reverse"])
    (Y, *handing_on), outputs = _outputs(a, 4, return_sequences)
    if not training:
        Z, XD, Hp = _inference_workspace(a, 4 * H)
        _run(_lstm.forward_inference, (T, B, 4, H), *args, Y, Z, XD, Hp,
             *_inference_weights(prepacked, I, H, 4, dtype), *handing_on)
        _, (h, c) = _caller_order(a, None, [h, c])
        return outputs, h, c, None
    c0 = c.copy()
    Z = _pool.empty((T, B, 4 * H), dtype)
    C = _pool.empty((T, B, H), dtype)
    HP = _pool.empty((T, B, H), dtype)
    XD = None if a["input_mask"] is None else _pool.empty((T, B, I), dtype)
    chunk = _chunk_steps(B, 4 * H, T, I, H, np.dtype(dtype).itemsize, training=True)
    _run(_lstm.forward_training, (T, B, 4, H), *args, Y, Z, C, HP, XD,
         _packed_workspace(I, H, 4, dtype), chunk, *handing_on)
    cache = dict(a, kernel_module=_lstm, c0=c0, Z=Z, C=C, HP=HP, XD=XD)
    _, (h, c) = _caller_order(a, None, [h, c])
    return outputs, h, c, cache


def lstm_backward(d_outputs, d_h_n, d_c_n, cache):
    """Gradients of an lstm_forward(training=True) call.

    Returns (dx, d_kernel, d_recurrent_kernel, d_bias or None, d_h0, d_c0).
    """
    dY, (dh, dc) = _check_backward(cache, d_outputs, [d_h_n, d_c_n], ["d_h_n", "d_c_n"])
    a = cache
    T, B, I, H, dtype = a["T"], a["B"], a["I"], a["H"], a["dtype"]
    dX, dW, dU = _written_gradients(T, B, I, H, 4, dtype)
    db = None if a["bias"] is None else _pool.zeros(4 * H, dtype)
    if T == 0 or B == 0:
        return dX, dW, dU, db, dh, dc
    _run(_lstm.backward, (T, B, 4, H), dY, dh, dc, a["x"], a["kernel"], a["recurrent_kernel"],
         a["c0"], a["mask"], a["input_mask"], a["recurrent_mask"], a["reverse"], a["Z"], a["C"],
         a["HP"], a["XD"], _pool.empty((T, B, 4 * H), dtype), _pool.empty((B, H), dtype), dX, dW,
         dU, db, _packed_workspace(I, H, 4, dtype))
    del dY          # first: its memory may serve the copy of dX back (_caller_order)
    dX, (dh, dc) = _caller_order(a, dX, [dh, dc])
    return dX, dW, dU, db, dh, dc


# ------------------------------------------------------------------------------------ GRU

def gru_forward(x, kernel, recurrent_kernel, bias, h0=None, mask=None, input_mask=None,
                recurrent_mask=None, reverse=False, reset_after=True, *, training=True,
                return_sequences=True, _prepacked=None):
    """GRU layer over a time-major sequence (see seqcore.reference.gru_forward).

    bias: (2, 3H) [input; recurrent] with reset_after=True, (3H,) with False, or None.
    Returns (outputs (T, B, H) or None, h_n, cache or None).
    """
    training, return_sequences = _check_mode(training, return_sequences)
    reset_after = _flag("reset_after", reset_after)
    a = _check_forward("GRU", 3, x, kernel, recurrent_kernel, bias,
                       lambda H: (2, 3 * H) if reset_after else (3 * H,), [("h0", h0)], mask,
                       input_mask, recurrent_mask, reverse)
    a["reset_after"] = reset_after
    return _gru_run(a, training, return_sequences, _prepacked)


def _gru_run(a, training, return_sequences, prepacked):
    """gru_forward's work on its checked arguments (_check_forward's dict and reset_after)."""
    T, B, I, H, dtype = a["T"], a["B"], a["I"], a["H"], a["dtype"]
    (h,) = a["states"]
    reset_after = a["reset_after"]
    if T == 0 or B == 0:
        outputs, (h,) = _empty_forward(a, training, return_sequences)
        return outputs, h, (dict(a, kernel_module=_gru) if training else None)
    b = a["bias"]
    bias_x, bias_h = (None, None) if b is None else ((b[0], b[1]) if reset_after else (b, None))
    args = (a["x"], a["kernel"], a["recurrent_kernel"], bias_x, bias_h, h, a["mask"],
            a["input_mask"], a["recurrent_mask"], a["reverse"], reset_after)
    work_a = _pool.empty((B, 3 * H), dtype)
    work_b = _pool.empty((B, H), dtype)
    (Y, *handing_on), outputs = _outputs(a, 3, return_sequences)
    if not training:
        AX, XD, Hp = _inference_workspace(a, 3 * H)
        _run(_gru.forward_inference, (T, B, 3, H), *args, Y, AX, XD, Hp, work_a, work_b,
             *_inference_weights(prepacked, I, H, 3, dtype), *handing_on)
        _, (h,) = _caller_order(a, None, [h])
        return outputs, h, None
    AX = _pool.empty((T, B, 3 * H), dtype)
    HIN = _pool.empty((T, B, H), dtype)
    HP = None if a["recurrent_mask"] is None else _pool.empty((T, B, H), dtype)
    STORE = _pool.empty((T, B, H), dtype)
    XD = None if a["input_mask"] is None else _pool.empty((T, B, I), dtype)
    _run(_gru.forward_training, (T, B, 3, H), *args, Y, AX, HIN, HP, STORE, XD, work_a, work_b,
         _packed_workspace(I, H, 3, dtype), *handing_on)
    cache = dict(a, kernel_module=_gru, AX=AX, HIN=HIN, HP=HP, STORE=STORE, XD=XD)
    _, (h,) = _caller_order(a, None, [h])
    return outputs, h, cache


def gru_backward(d_outputs, d_h_n, cache):
    """Gradients of a gru_forward(training=True) call.

    Returns (dx, d_kernel, d_recurrent_kernel, d_bias or None, d_h0).
    """
    dY, (dh,) = _check_backward(cache, d_outputs, [d_h_n], ["d_h_n"])
    a = cache
    T, B, I, H, dtype = a["T"], a["B"], a["I"], a["H"], a["dtype"]
    reset_after = a["reset_after"]
    dX, dW, dU = _written_gradients(T, B, I, H, 3, dtype)
    db = None
    if a["bias"] is not None:
        db = _pool.zeros((2, 3 * H) if reset_after else (3 * H,), dtype)
    if T == 0 or B == 0:
        return dX, dW, dU, db, dh
    db_x, db_h = (None, None) if db is None else ((db[0], db[1]) if reset_after else (db, None))
    dAH, dAHn = ((_pool.empty((B, 3 * H), dtype), _pool.empty((T, B, H), dtype))
                 if reset_after else (None, None))
    _run(_gru.backward, (T, B, 3, H), dY, dh, a["x"], a["kernel"], a["recurrent_kernel"],
         a["mask"], a["input_mask"], a["recurrent_mask"], a["reverse"], reset_after, a["AX"],
         a["HIN"], a["HP"], a["STORE"], a["XD"], _pool.empty((T, B, 3 * H), dtype), dAH, dAHn,
         _pool.empty((B, H), dtype), _pool.empty((B, H), dtype), dX, dW, dU, db_x, db_h,
         _packed_workspace(I, H, 3, dtype))
    del dY          # first: its memory may serve the copy of dX back (_caller_order)
    dX, (dh,) = _caller_order(a, dX, [dh])
    return dX, dW, dU, db, dh


# ------------------------------------------------------------------------------------ RNN

_ACTIVATIONS = ("tanh", "relu")


def rnn_forward(x, kernel, recurrent_kernel, bias, h0=None, mask=None, input_mask=None,
                recurrent_mask=None, reverse=False, activation="tanh", *, training=True,
                return_sequences=True, _prepacked=None):
    """Simple RNN layer over a time-major sequence (see seqcore.reference.rnn_forward).

    Returns (outputs (T, B, H) or None, h_n, cache or None).
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation: expected one of {_ACTIVATIONS}, got {activation!r}")
    training, return_sequences = _check_mode(training, return_sequences)
    a = _check_forward("SimpleRNN", 1, x, kernel, recurrent_kernel, bias, lambda H: (H,),
                       [("h0", h0)], mask, input_mask, recurrent_mask, reverse)
    a["relu"] = activation == "relu"
    return _rnn_run(a, training, return_sequences, _prepacked)


def _rnn_run(a, training, return_sequences, prepacked):
    """rnn_forward's work on its checked arguments (_check_forward's dict and relu)."""
    T, B, I, H, dtype = a["T"], a["B"], a["I"], a["H"], a["dtype"]
    (h,) = a["states"]
    if T == 0 or B == 0:
        outputs, (h,) = _empty_forward(a, training, return_sequences)
        return outputs, h, (dict(a, kernel_module=_rnn) if training else None)
    args = (a["x"], a["kernel"], a["recurrent_kernel"], a["bias"], h, a["mask"],
            a["input_mask"], a["recurrent_mask"], a["reverse"], a["relu"])
    (Y, *handing_on), outputs = _outputs(a, 1, return_sequences)
    if not training:
        A, XD, Hp = _inference_workspace(a, H)
        _run(_rnn.forward_inference, (T, B, 1, H), *args, Y, A, XD, Hp,
             *_inference_weights(prepacked, I, H, 1, dtype), *handing_on)
        _, (h,) = _caller_order(a, None, [h])
        return outputs, h, None
    A = _pool.empty((T, B, H), dtype)
    HP = _pool.empty((T, B, H), dtype)
    XD = None if a["input_mask"] is None else _pool.empty((T, B, I), dtype)
    _run(_rnn.forward_training, (T, B, 1, H), *args, Y, A, HP, XD,
         _packed_workspace(I, H, 1, dtype), *handing_on)
    cache = dict(a, kernel_module=_rnn, A=A, HP=HP, XD=XD)
    _, (h,) = _caller_order(a, None, [h])
    return outputs, h, cache


def rnn_backward(d_outputs, d_h_n, cache):
    """Gradients of an rnn_forward(training=True) call.

    Returns (dx, d_kernel, d_recurrent_kernel, d_bias or None, d_h0).
    """
    dY, (dh,) = _check_backward(cache, d_outputs, [d_h_n], ["d_h_n"])
    a = cache
    T, B, I, H, dtype = a["T"], a["B"], a["I"], a["H"], a["dtype"]
    dX, dW, dU = _written_gradients(T, B, I, H, 1, dtype)
    db = None if a["bias"] is None else _pool.zeros(H, dtype)
    if T == 0 or B == 0:
        return dX, dW, dU, db, dh
    _run(_rnn.backward, (T, B, 1, H), dY, dh, a["x"], a["kernel"], a["recurrent_kernel"],
         a["mask"], a["input_mask"], a["recurrent_mask"], a["reverse"], a["relu"], a["A"], a["HP"],
         a["XD"], _pool.empty((T, B, H), dtype), _pool.empty((B, H), dtype), dX, dW, dU, db,
         _packed_workspace(I, H, 1, dtype))
    del dY          # first: its memory may serve the copy of dX back (_caller_order)
    dX, (dh,) = _caller_order(a, dX, [dh])
    return dX, dW, dU, db, dh


# ------------------------------------------------------------------------ step by step

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _check_bound(cell, kernel, recurrent_kernel, bias, batch_size, states, reset_after,
                 activation):
    """The checks of Stepper and BoundLayer, which take weights once for many calls: the
    dtype is the kernel's (float32 or float64; other real dtypes become float32), the rest as
    _check_forward over a (1, batch_size, I) input. Returns (dtype, its dict)."""
    if cell not in _GATES:
        raise ValueError(f"cell: expected one of {sorted(_GATES)}, got {cell!r}")
    if cell == "rnn" and activation not in _ACTIVATIONS:
        raise ValueError(f"activation: expected one of {_ACTIVATIONS}, got {activation!r}")
    reset_after = _flag("reset_after", reset_after)
    G = _GATES[cell]
    kernel = np.asarray(kernel)
    dtype = kernel.dtype.type if kernel.dtype in (np.float32, np.float64) else np.float32
    x0 = np.zeros((1, batch_size, kernel.shape[0] if kernel.ndim == 2 else 1), dtype)
    names, states = _cell_states(cell, states)
    if cell == "gru":
        bias_shape = lambda H: (2, 3 * H) if reset_after else (3 * H,)  # noqa: E731
    else:
        bias_shape = lambda H: (G * H,)  # noqa: E731
    return dtype, _check_forward(cell.upper(), G, x0, kernel, recurrent_kernel, bias,
                                 bias_shape, list(zip(names, states)), None, None, None, False)


def _cell_states(cell, states):
    """The names of a cell's states (h0, and c0 for the LSTM) and `states` as a list of one
    array or None each (None for all: zeros), or a clear error."""
    names = ["h0", "c0"] if cell == "lstm" else ["h0"]
    states = [None] * len(names) if states is None else list(states)
    if len(states) != len(names):
        raise ValueError(f"states: expected {len(names)} arrays ({', '.join(names)}) for "
                         f"{cell}, got {len(states)}")
    return names, states


def _as_dtype(name, x, dtype):
    """x as a C-contiguous array of a bound layer's dtype (a real array of another dtype is
    converted)."""
    x = np.asarray(x)
    if x.dtype != dtype or not x.flags.c_contiguous:
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a real array, got dtype {x.dtype}")
        x = _contiguous(x, dtype)
    return x


class BoundLayer:
    """One layer, one direction, its weights bound once for inference over whole sequences.

    The weights are checked and packed into panels here, once, as an ONNX Runtime session or
    a torch module holds its own; a call then skips what ops.*_forward does at every call
    (converting and packing the weights: a read and a write of each, mostly from memory,
    10-15% of an LSTM call at batch 1, H = 256). Like a Stepper, a bound layer sees the
    weights as they were when it was made (later changes to those arrays do not reach it).

    cell: "lstm", "gru" or "rnn"; weights, reset_after and activation as for the *_forward
    functions.
    """

    def __init__(self, cell, kernel, recurrent_kernel, bias, reset_after=True,
                 activation="tanh"):
        self.dtype, a = _check_bound(cell, kernel, recurrent_kernel, bias, 1, None,
                                     reset_after, activation)
        self.cell = cell
        I, H = a["I"], a["H"]
        W, U = a["kernel"], a["recurrent_kernel"]
        # only their shapes count from now on: the kernels read the packed copy
        self._weights = (W, U, None if a["bias"] is None else a["bias"].copy())
        self._forward = {"lstm": lstm_forward, "gru": gru_forward, "rnn": rnn_forward}[cell]
        self._options = ({"reset_after": bool(reset_after)} if cell == "gru" else
                         {"activation": activation} if cell == "rnn" else {})
        self._packed = _packed(W, U, I, H, _GATES[cell], self.dtype)
        # The common call (no states, no mask) skips the *_forward functions' checks: the
        # weights were checked here, forward() checks x, and _checked is _check_bound's
        # checked arguments (over a (1, 1, I) input, no mask), of which each such call
        # replaces x, T, B, the states, the mask and reverse. In a loop of batch-1 calls,
        # (100, 1, 128, 256), the Python around the kernel took ~12% of each call (its lines
        # out of cache after the kernel's weights passed).
        self._run = {"lstm": _lstm_run, "gru": _gru_run, "rnn": _rnn_run}[cell]
        self._checked = dict(a, bias=self._weights[2], reset_after=bool(reset_after),
                             relu=activation == "relu")
        self._n_states = len(a["states"])

    def forward(self, x, states=None, mask=None, reverse=False, return_sequences=True):
        """x (T, B, I), converted to the layer's dtype; states: the initial (h0,) or, for the
        LSTM, (h0, c0), each (B, H) or None for zeros; mask (T, B) bool or None; reverse and
        return_sequences as for the *_forward functions. Returns (outputs or None, h_n), with
        c_n after h_n for the LSTM."""
        x = _as_dtype("x", x, self.dtype)
        I = self._weights[0].shape[0]
        if x.ndim != 3 or x.shape[2] != I:
            raise ValueError(f"x: expected a time-major (T, B, {I}) array for this layer, got "
                             f"shape {x.shape}")
        T, B = x.shape[:2]
        if states is None and mask is None and T > 0 and B > 0:
            shape = (B, self._checked["H"])   # x C-contiguous (_as_dtype): not batch-major
            a = dict(self._checked, T=T, B=B, x=x, mask=_mask(None, T, B),
                     reverse=_flag("reverse", reverse),
                     states=[_pool.zeros(shape, self.dtype) for _ in range(self._n_states)])
            *out, _ = self._run(a, False, _flag("return_sequences", return_sequences),
                                self._packed)
            return tuple(out)
        _, states = _cell_states(self.cell, states)
        *out, _ = self._forward(x, *self._weights, *states, mask,
                                None, None, reverse, **self._options, training=False,
                                return_sequences=return_sequences, _prepacked=self._packed)
        return tuple(out)


def _packed(W, U, I, H, gates, dtype):
    """W (I, G*H) and U (H, G*H), checked C-contiguous arrays of dtype, packed into a new
    workspace as the forward kernels read them (their _prepacked argument)."""
    packed = _packed_workspace(I, H, gates, dtype)
    _step.pack_forward(W, U, packed, runtime.get_num_threads())
    return packed


def packed_weights(cell, kernel, recurrent_kernel):
    """A layer's kernel (I, G*H) and recurrent_kernel (H, G*H), in the kernel's dtype, packed
    once for many inference calls with these weights (a copy: later changes to the arrays do
    not reach it), for the *_forward functions' private _prepacked keyword, which then read the
    packed copy instead of packing the weights at every call (what seqcore.Sequential.predict
    and evaluate do over their batches). Checked as BoundLayer checks them."""
    dtype, a = _check_bound(cell, kernel, recurrent_kernel, None, 1, None, True, "tanh")
    return _packed(a["kernel"], a["recurrent_kernel"], a["I"], a["H"], _GATES[cell], dtype)


# A Stepper's step is shared by the threads (seqcore.set_num_threads) when its weights, W and U,
# take this many bytes or more: each thread then projects and steps its own units and reads its
# part of the weights from its own core's cache, in one parallel region per step. Below, the
# team's start and end (~1 us) cost more than the halved reading saves. Zen 3, 2 threads, B = 1,
# one process, kernel step time 1 thread / 2 threads (three runs): LSTM 64 -> 128 (384 KiB)
# 1.39-1.41, GRU 64 -> 128 (288 KiB) 1.16-1.17 (one run 0.74: the process-wide slowdown of split
# GRU steps noted at _STEP_PARALLEL_MIN), RNN 256 -> 256 (512 KiB) 1.45; below: LSTM 32 -> 96
# (192 KiB) 1.08, GRU 64 -> 96 (180 KiB) 0.98, LSTM 64 -> 64 (128 KiB) 0.86, RNN 64 -> 128 (96
# KiB) 0.40-0.75; at B = 4 with 96-128 KiB of weights 0.47-0.60 (so the rule is by weights, not
# by rows); LSTM 64 -> 128 at B = 8 1.57. As for the calls' steps, a thread takes at least
# _STEP_PARALLEL_UNITS units (H = 128: 2 threads at most).
# What a split saves is the reading of weights from beyond a core's L2, so with a larger L2 the
# weights must be larger for it to pay: a third of the L2 where that is larger. Sapphire Rapids
# (2 MiB L2), B = 1, same measure: LSTM 64 -> 128 (384 KiB) 0.95, 128 -> 128 (512 KiB) 1.01,
# 64 -> 192 (768 KiB) 1.13, 128 -> 256 (1.5 MiB) 2.55; GRU 64 -> 128 (288 KiB) 0.84, 128 -> 192
# (720 KiB) 0.97, 192 -> 192 (864 KiB) 1.04, 64 -> 256 (960 KiB) 1.27; RNN 256 -> 256 (512 KiB)
# 0.91, 384 -> 384 (1.1 MiB) 1.27. On the Zen 3 (512 KiB L2) the bound stays 256 KiB.
_STEPPER_SHARE_BYTES = max(1 << 18, runtime.l2_cache_bytes() // 3)
_STEPPER_THREAD_UNITS = _STEP_PARALLEL_UNITS


class Stepper:
    """One layer, one direction, one time step per call, for streaming inference.

    Everything that does not change between steps is done once here: the arguments are
    checked, the weights packed into panels, the workspaces and the state arrays allocated
    (kept by a seqcore._kernels.step.StepKernel). A step then checks only x_t and makes one
    kernel call: on the calling thread, or shared by seqcore.set_num_threads threads when the
    weights are large enough to be worth it (_STEPPER_SHARE_BYTES). The stepper sees the
    weights as they were when it was created.

    cell: "lstm", "gru" or "rnn"; weights as for the *_forward functions; states: initial
    state arrays (B, H) or None for zeros. `states` holds the current state arrays.
    """

    def __init__(self, cell, kernel, recurrent_kernel, bias, batch_size, states=None,
                 reset_after=True, activation="tanh"):
        dtype, a = _check_bound(cell, kernel, recurrent_kernel, bias, batch_size, states,
                                reset_after, activation)
        G = _GATES[cell]
        B, I, H = a["B"], a["I"], a["H"]
        self.shape, self.dtype, self.states = (B, I), dtype, a["states"]
        self._Y = np.empty((B, H), dtype)
        W, U, b, mask = a["kernel"], a["recurrent_kernel"], a["bias"], a["mask"]
        bias, bias_h, kind = b, None, cell
        if cell == "gru":
            kind = "gru" if reset_after else "gru1"
            if b is not None and reset_after:
                bias, bias_h = b[0], b[1]
        elif cell == "rnn":
            kind = "rnn_" + activation
        c = self.states[1] if cell == "lstm" else None
        self._valid = mask[0].copy()     # the kernel reads it at every step; step() writes it
        self._all_valid = True
        # threads for a step: 1, or up to one per _STEPPER_THREAD_UNITS units
        self._max_threads = (max(1, H // _STEPPER_THREAD_UNITS)
                             if (I + H) * G * H * np.dtype(dtype).itemsize >= _STEPPER_SHARE_BYTES
                             else 1)
        self._kernel = _step.StepKernel(
            kind, W, U, bias, bias_h, self.states[0], c, self._valid, self._Y,
            _packed_workspace(I, H, G, dtype), np.empty((B, G * H), dtype),
            np.empty((B, H), dtype), np.empty((B, 3 * H), dtype), np.empty((B, H), dtype))
        self._kernel.max_threads = self._max_threads

    def step(self, x_t, valid=None):
        """x_t (B, I) -> the output (B, H) of this step; the state advances. valid (B,) bool:
        rows whose step counts (a masked row keeps its state and outputs zeros)."""
        if valid is not None or not self._all_valid:
            self._valid[:] = True if valid is None else bool_mask(valid, self.shape[:1], "(B,)")
            self._all_valid = valid is None
        n_threads = self._max_threads
        if n_threads > 1:       # (not min(): a builtin's call costs ~0.2 us here)
            available = runtime.get_num_threads()
            if available < n_threads:
                n_threads = available
        y = self._kernel.step_ready(x_t, n_threads)    # x_t ready as it is: the common case
        if y is None:           # nothing stepped yet (a bad x_t leaves the state as it was)
            x = np.asarray(x_t)
            if x.shape != self.shape:
                raise ValueError(f"x_t: expected shape (B, I) = {self.shape}, got {x.shape}")
            self._kernel.step(_as_dtype("x_t", x, self.dtype), n_threads)
            y = self._Y.copy()
        return y

    @property
    def threads_matter(self):
        """Whether a step may share threads (else it always runs on the calling thread)."""
        return self._max_threads > 1


def chained_kernels(steppers):
    """The kernels of `steppers` for step_chain when they chain as they are (one dtype and
    batch size, each one's input width the previous one's output width), else None."""
    first = steppers[0]
    for before, s in zip(steppers, steppers[1:]):
        if (s.dtype != first.dtype or s.shape[0] != first.shape[0]
                or s.shape[1] != before.states[0].shape[1]):
            return None
    return tuple(s._kernel for s in steppers)


# step_chain(kernels, x_t, n_threads): a step of every stepper of a chain in one call, each fed
# the one before's output (seqcore.model.Stream); None when x_t needs converting first
step_chain = _step.step_chain


# --------------------------------------------------------------------------------- memory

def release_memory():
    """Return to the system the large blocks kept for reuse. Calls keep the workspaces and
    caches they free (up to 1 GiB, blocks of 1 MiB and more) for the next call, which would
    otherwise fault in fresh zeroed pages: 15% of a large LSTM training step. Arrays still in
    use are not affected."""
    _pool.release()


# --------------------------------------------------------------------------------- matmul

def matmul(a, b, trans_a=False, trans_b=False):
    """op(a) @ op(b) for 2-D float arrays (op: transpose when trans_*), through the same BLAS
    and thread setting as the kernels, GIL released. Layers use it instead of NumPy's `@`:
    NumPy's own OpenBLAS keeps a second thread pool that would fight ours for the cores.
    The dtype is a's (float32 or float64; b is converted to it)."""
    dtype = _compute_dtype(a)
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul: expected 2-D arrays, got shapes {a.shape} and {b.shape}")
    m, k = a.shape[::-1] if trans_a else a.shape
    kb, n = b.shape[::-1] if trans_b else b.shape
    if k != kb:
        raise ValueError(f"matmul: inner dimensions differ: op(a) is {(m, k)}, op(b) is "
                         f"{(kb, n)}")
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n), dtype)
    c = np.empty((m, n), dtype)          # beta = 0: BLAS does not read it
    a = _contiguous(a, dtype)
    b = _contiguous(b, dtype)
    if m * n * k < _blas.GEMM_SPLIT_MIN:
        # the calling thread alone (as gemm_threads would run it): no team of ours, so no
        # hold on the BLAS either, which costs more than such a product (a Dense layer at a
        # streaming step: (1, 128) x (128, 10))
        _blas.matmul(a, b, c, bool(trans_a), bool(trans_b), 1.0, 0.0, 1)
        return c
    n_threads = runtime.get_num_threads()
    with runtime.blas_single_threaded(n_threads):
        _blas.matmul(a, b, c, bool(trans_a), bool(trans_b), 1.0, 0.0, n_threads)
    return c
