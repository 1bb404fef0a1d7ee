# cython: language_level=3
"""Large arrays whose memory is kept for the next call instead of going back to the OS.

A training step of a big layer allocates a few hundred MB (pre-activations, cell states, their
gradients). glibc serves blocks that size with mmap and returns them with munmap, so every call
faults in fresh pages that the kernel first zeroes: measured 15% of an LSTM training step at
(T, B, I, H) = (50, 128, 1024, 1024) on one core (perf: clear_page). Here such blocks come from
a small free list instead, and a new block's pages are faulted in when it is made (_populate).

Safety: each array handed out is a NumPy view of a `Lease` object (not of the block), and
NumPy's views of views keep that Lease as their base. The block returns to the free list only
when the Lease is freed, i.e. when no array anywhere still refers to its memory, so recycled
memory can never alias an array someone holds.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cython.parallel cimport parallel
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free
from openmp cimport omp_get_num_threads, omp_get_thread_num

import numpy as np

from .blas cimport blas_threads

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef extern from *:
    """
    #include <sys/mman.h>
    #if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
    #define MADV_POPULATE_WRITE 23   /* Linux 5.14; older kernels refuse it (EINVAL) */
    #endif
    /* Fault in the pages [p, p + n) for writing in one system call (0: done). */
    static int sc_populate(void *p, size_t n) {
    #ifdef MADV_POPULATE_WRITE
        return madvise(p, n, MADV_POPULATE_WRITE);
    #else
        (void)p; (void)n;
        return -1;
    #endif
    }
    """
    int sc_populate(void *p, size_t n) nogil

# Blocks below this size come from malloc's own reuse (its heap serves them without faults).
MIN_BYTES = 1 << 20
DEF MAX_IDLE = 16                  # blocks kept on the free list at most

cdef size_t _idle_limit = 1 << 30  # bytes kept idle at most (set_idle_limit)
cdef void *_idle_ptr[MAX_IDLE]
cdef size_t _idle_size[MAX_IDLE]
cdef int _n_idle = 0
cdef size_t _idle_bytes = 0


cdef void _give_back(void *ptr, size_t size):
    """Keep the block for reuse, or free it when the free list is full."""
    global _n_idle, _idle_bytes
    if _n_idle < MAX_IDLE and _idle_bytes + size <= _idle_limit:
        _idle_ptr[_n_idle] = ptr
        _idle_size[_n_idle] = size
        _n_idle += 1
        _idle_bytes += size
    else:
        free(ptr)


cdef void *_take(size_t size, size_t *got, bint *fresh):
    """The smallest idle block of at least `size` bytes and at most 1.5x that (so a small
    request does not pin a huge block), else a new 64-byte aligned one; NULL if out of
    memory."""
    global _n_idle, _idle_bytes
    cdef int best = -1, i
    cdef void *ptr = NULL
    for i in range(_n_idle):
        if _idle_size[i] >= size and _idle_size[i] <= size + size // 2:
            if best < 0 or _idle_size[i] < _idle_size[best]:
                best = i
    if best >= 0:
        ptr = _idle_ptr[best]
        got[0] = _idle_size[best]
        _idle_bytes -= _idle_size[best]
        _n_idle -= 1
        _idle_ptr[best] = _idle_ptr[_n_idle]
        _idle_size[best] = _idle_size[_n_idle]
        fresh[0] = False
        return ptr
    if posix_memalign(&ptr, 64, size) != 0:
        return NULL
    got[0] = size
    fresh[0] = True
    return ptr


cdef void _populate(void *ptr, size_t size) noexcept nogil:
    """Fault in a new block's pages now, split over the kernels' threads (each its share of
    the pages, one system call each), instead of one page fault at a time where the kernels
    first write them. Every pooled array is written whole by the call that asked for it, so
    no page is faulted in for nothing. Where the kernels' threads would fault the same pages
    at once (each writes its units of every row), those faults also wait on each other: Zen 3,
    LSTM layer training step (100, 64, 512, 512), the first call in a fresh process, median of
    8 alternating processes, 2 threads: 923 -> 788 ms, page faults 53.9k -> 37.9k; one
    thread: unchanged (1370 / 1388 ms), later calls too. Where the system cannot (Linux before
    5.14, other systems), the pages fault in as they are first written."""
    cdef uintptr_t first = (<uintptr_t>ptr + 4095) & ~(<uintptr_t>4095)
    cdef uintptr_t end = (<uintptr_t>ptr + size) & ~(<uintptr_t>4095)
    cdef size_t pages, lo, hi
    cdef int n_threads = blas_threads(), me, nt
    if end <= first:
        return
    pages = (end - first) // 4096
    if n_threads <= 1:
        sc_populate(<void*>first, end - first)
        return
    with parallel(num_threads=n_threads):
        me = omp_get_thread_num()
        nt = omp_get_num_threads()
        lo = pages * me // nt
        hi = pages * (me + 1) // nt
        if hi > lo:
            sc_populate(<void*>(first + lo * 4096), (hi - lo) * 4096)


cdef class Lease:
    """Owns one block while any array views it; exposes it as a writable byte buffer."""
    cdef void *ptr
    cdef size_t size
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer *buf, int flags):
        self.shape[0] = <Py_ssize_t>self.size
        self.strides[0] = 1
        buf.buf = self.ptr
        buf.obj = self
        buf.len = <Py_ssize_t>self.size
        buf.readonly = 0
        buf.itemsize = 1
        buf.format = "B"
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass

    def __dealloc__(self):
        if self.ptr != NULL:
            _give_back(self.ptr, self.size)
            self.ptr = NULL


cdef tuple _as_shape(shape):
    """A shape argument (an int, a tuple, or any integer or sequence of them) as a tuple; an
    int without np.ndim, which alone costs ~0.7 us."""
    if isinstance(shape, tuple):
        return shape
    if isinstance(shape, int):
        return (shape,)
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)


cdef size_t _nbytes(tuple shape, dtype):
    """Bytes of an array of `shape` (a tuple) and `dtype` (a np.dtype)."""
    cdef size_t n = dtype.itemsize
    for s in shape:
        n *= <size_t>s
    return n


# Small arrays of at least this size are 64-byte aligned when the kernels run on more than one
# thread (empty).
SHARED_MIN_BYTES = 256


def empty(shape, dtype):
    """An uninitialized C-contiguous array; pooled memory when it is large. A small one is
    64-byte aligned (as pooled blocks always are) when the kernels run on more than one thread
    and it spans a few cache lines: the threads of a step write the states and workspaces in
    blocks of 16 units (64 bytes in float32), and at np.empty's 16-byte offsets each block's
    edge shares a cache line with the next block, which the other thread may be writing.
    Paired in one process, 2 threads, aligned / as before: LSTM inference (100, 4, 128, 256)
    0.98x the time, (100, 1, 128, 256) 0.99x, GRU (100, 16, 128, 256) 0.97x, its training
    0.99x. On one thread np.empty's (0.4 us against 1.0 for the aligned one)."""
    dtype = np.dtype(dtype)
    shape = _as_shape(shape)
    cdef size_t n = _nbytes(shape, dtype)
    if n < MIN_BYTES:       # the common small case first: a few microseconds count at T = 1
        if n >= SHARED_MIN_BYTES and blas_threads() > 1:
            return _aligned_small(shape, dtype, n)
        return np.empty(shape, dtype)
    cdef Lease lease = Lease.__new__(Lease)
    cdef size_t got = 0
    cdef bint fresh = False
    lease.ptr = _take(n, &got, &fresh)
    if lease.ptr == NULL:
        raise MemoryError(f"cannot allocate {n} bytes for an array of shape {shape}")
    lease.size = got
    if fresh:
        with nogil:
            _populate(lease.ptr, got)
    return np.frombuffer(lease, dtype=dtype, count=int(n // dtype.itemsize)).reshape(shape)


def empty_aligned(shape, dtype):
    """empty(), its data 64-byte aligned also when it is small (pooled blocks always are): for
    arrays the kernels stream with 64-byte vector loads, the packed weights, where a load that
    straddles two cache lines costs two. Sapphire Rapids, a GRU streaming step (64 -> 128, one
    thread), 16 steppers in one process: 3.8-3.9 us a step with the packed weights on a line
    boundary, 5.5-5.9 us on the other three 16-byte offsets that np.empty gives."""
    dtype = np.dtype(dtype)
    shape = _as_shape(shape)
    cdef size_t n = _nbytes(shape, dtype)
    if n >= MIN_BYTES:
        return empty(shape, dtype)
    return _aligned_small(shape, dtype, n)


cdef object _aligned_small(tuple shape, object dtype, size_t n):
    """A 64-byte aligned array of n bytes from np.empty (for n < MIN_BYTES)."""
    raw = np.empty(n + 64, np.uint8)
    cdef Py_buffer view
    PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE)    # its address, without a memoryview
    cdef size_t skip = (64 - (<uintptr_t>view.buf & 63)) & 63
    PyBuffer_Release(&view)
    return raw[skip:skip + n].view(dtype).reshape(shape)


def zeros(shape, dtype):
    """empty() filled with zeros."""
    a = empty(shape, dtype)
    a.fill(0)
    return a


def idle_bytes():
    """Bytes held on the free list."""
    return _idle_bytes


def release():
    """Free every idle block (arrays in use keep theirs until they are freed)."""
    global _n_idle, _idle_bytes
    while _n_idle > 0:
        _n_idle -= 1
        free(_idle_ptr[_n_idle])
    _idle_bytes = 0


def set_idle_limit(size_t limit):
    """Keep at most `limit` bytes on the free list (0: never keep any)."""
    global _idle_limit
    _idle_limit = limit
    if _idle_bytes > limit:
        release()
