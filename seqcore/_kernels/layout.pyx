# cython: language_level=3
"""The rows of a sequence batch moved between memory layouts, the steps split over threads.

A batch-first caller's sequences reach seqcore.ops as transposed views, (T, B, ...) lying
batch-major in memory, and a ragged batch's rows go to the kernels sorted by length: the
kernels take one C-contiguous, time-major copy, and dx goes back the other way. NumPy makes
those copies (a transposing copy, fancy indexing) on one thread; here every (t, b) row of the
trailing axes is one memcpy, and the steps are split over the threads that the call's kernels
use. Data movement only: no arithmetic, any dtype.
"""
from cpython.buffer cimport (PyBUF_RECORDS_RO, PyBUF_STRIDES, PyBUF_WRITABLE,
                             PyBuffer_Release, PyObject_GetBuffer)
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memcpy

# Below this many bytes one thread copies: a parallel region's start and end cost more than
# the copy they would split (a few microseconds).
cdef Py_ssize_t PARALLEL_BYTES = 1 << 18


cdef bint same_shape(Py_buffer* a, Py_buffer* b):
    cdef int i
    if a.ndim != b.ndim or a.itemsize != b.itemsize:
        return False
    for i in range(a.ndim):
        if a.shape[i] != b.shape[i]:
            return False
    return True


cdef bint a_permutation(const int64_t* where, Py_ssize_t n):
    """Whether where[0:n] are distinct rows below n (the destination rows of move_rows)."""
    cdef Py_ssize_t i
    cdef bytearray seen = bytearray(n)
    for i in range(n):
        if where[i] < 0 or where[i] >= n or seen[where[i]]:
            return False
        seen[where[i]] = 1
    return True


cdef bint rows_contiguous(Py_buffer* view, Py_ssize_t* row_bytes):
    """Whether the axes after the first two lie C-contiguous (each (t, b) row one block);
    *row_bytes: the block's size."""
    cdef Py_ssize_t size = view.itemsize
    cdef int d
    for d in range(view.ndim - 1, 1, -1):
        if view.strides[d] != size:
            return False
        size *= view.shape[d]
    row_bytes[0] = size
    return True


def move_rows(src, dst, const int64_t[::1] where, int n_threads):
    """dst[t, where[b]] = src[t, b] for every t < T and b < B (where None: dst[t, b]), src and
    dst (T, B, ...) arrays of one itemsize and shape whose first two axes may have any strides
    (a transposed view) and whose other axes lie C-contiguous, where a permutation of range(B).
    Returns False, copying nothing, when the arguments are not such (the caller copies another
    way); the caller sees to the dtypes being the same."""
    cdef Py_buffer s, d
    cdef Py_ssize_t row_bytes, dst_row_bytes, T, B, s0, s1, d0, d1
    cdef long t, b
    cdef char* sp
    cdef char* dp
    cdef const int64_t* w = &where[0] if where is not None else NULL
    cdef int threads
    PyObject_GetBuffer(src, &s, PyBUF_RECORDS_RO)
    try:
        PyObject_GetBuffer(dst, &d, PyBUF_STRIDES | PyBUF_WRITABLE)
    except BaseException:
        PyBuffer_Release(&s)
        raise
    try:
        if (s.ndim < 2 or not same_shape(&s, &d) or not rows_contiguous(&s, &row_bytes)
                or not rows_contiguous(&d, &dst_row_bytes)
                or (w != NULL and (where.shape[0] != s.shape[1]
                                   or not a_permutation(w, s.shape[1])))):
            return False
        T, B = s.shape[0], s.shape[1]
        s0, s1, d0, d1 = s.strides[0], s.strides[1], d.strides[0], d.strides[1]
        sp, dp = <char*>s.buf, <char*>d.buf
        threads = n_threads if T * B * row_bytes >= PARALLEL_BYTES else 1
        with nogil:
            for t in prange(T, num_threads=max(1, threads), schedule="static"):
                for b in range(B):
                    memcpy(dp + t * d0 + (w[b] if w != NULL else b) * d1,
                           sp + t * s0 + b * s1, row_bytes)
        return True
    finally:
        PyBuffer_Release(&d)
        PyBuffer_Release(&s)
