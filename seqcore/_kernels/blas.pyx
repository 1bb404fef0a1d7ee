"""The only module that calls BLAS.

GEMM goes through scipy.linalg.cython_blas (as scikit-learn does): no link flags, and the
library is scipy's bundled OpenBLAS, which threadpoolctl sees and can limit. Thread control
is looked up once, at import, in that same library.
"""
import ctypes
import os

import scipy
from cython.parallel cimport prange
from scipy.linalg.cython_blas cimport dgemm, sgemm
from threadpoolctl import ThreadpoolController

ctypedef int (*get_threads_t)() noexcept nogil
ctypedef void (*set_threads_t)(int) noexcept nogil

cdef get_threads_t _get_threads = NULL
cdef set_threads_t _set_threads = NULL


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* a, int lda, const floating* b, int ldb, floating beta,
               floating* c, int ldc) noexcept nogil:
    """Row-major C(m, n) = alpha * op(A)(m, k) @ op(B)(k, n) + beta * C.

    A row-major matrix is its column-major transpose, so this is the column-major call
    C^T = op(B)^T @ op(A)^T: operands swapped, dimensions m and n swapped.
    """
    cdef char ta = b"T" if trans_a else b"N"
    cdef char tb = b"T" if trans_b else b"N"
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


# Below this many multiply-adds a GEMM runs on the calling thread alone.
cdef enum:
    SPLIT_MIN = 1 << 18
GEMM_SPLIT_MIN = SPLIT_MIN          # for seqcore.ops.matmul


cdef void gemm_threads(int n_threads, bint trans_a, bint trans_b, int m, int n, int k,
                       floating alpha, const floating* a, int lda, const floating* b, int ldb,
                       floating beta, floating* c, int ldc) noexcept nogil:
    """gemm (row-major, as above) split over n_threads OpenMP threads, each computing a slab of
    C's rows (or columns, when C is wider than tall) with one BLAS call.

    The caller guarantees that BLAS itself is single-threaded meanwhile (seqcore.runtime's
    blas_single_threaded): the kernels' time loop runs on OpenMP threads, and if the GEMMs
    around it used BLAS's own pool, the two pools would spin against each other on the same
    cores (measured: 2 threads up to 30x slower than 1). One pool, ours, does all the work.
    """
    cdef int parts, p, lo, hi, per
    cdef bint by_rows = m >= n
    if n_threads <= 1 or m == 0 or n == 0 or <long>m * n * k < SPLIT_MIN:
        gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    parts = n_threads
    per = ((m if by_rows else n) + parts - 1) // parts
    for p in prange(parts, num_threads=parts, schedule="static"):
        lo = p * per
        hi = min(lo + per, m if by_rows else n)
        if lo < hi:
            if by_rows:
                gemm(trans_a, trans_b, hi - lo, n, k, alpha,
                     a + (lo if trans_a else <long>lo * lda), lda, b, ldb, beta,
                     c + <long>lo * ldc, ldc)
            else:
                gemm(trans_a, trans_b, m, hi - lo, k, alpha, a, lda,
                     b + (<long>lo * ldb if trans_b else lo), ldb, beta, c + lo, ldc)


cdef int blas_threads() noexcept nogil:
    """Threads the BLAS will use now (1 if we could not find its thread control)."""
    return _get_threads() if _get_threads != NULL else 1


def _find_library():
    """The threadpoolctl controller of the OpenBLAS that scipy's cython_blas calls.

    scipy wheels bundle it next to the package (scipy.libs); builds against a system BLAS
    load it from elsewhere, in which case we take the one BLAS that is not numpy's.
    """
    blas = ThreadpoolController().select(user_api="blas").lib_controllers
    site = os.path.dirname(os.path.dirname(os.path.realpath(scipy.__file__)))
    ours = [lib for lib in blas
            if os.path.realpath(lib.filepath).startswith(os.path.join(site, "scipy"))]
    if not ours:
        import numpy
        numpy_dir = os.path.join(site, "numpy")
        ours = [lib for lib in blas if not os.path.realpath(lib.filepath).startswith(numpy_dir)]
    return ours[0] if ours else None


def _symbol(lib, names):
    for name in names:
        try:
            return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        except AttributeError:
            pass
    return None


_controller = _find_library()
if _controller is not None and _controller.internal_api == "openblas":
    _lib = ctypes.CDLL(_controller.filepath)
    _p = _symbol(_lib, ["scipy_openblas_get_num_threads", "openblas_get_num_threads",
                        "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_"])
    if _p:
        _get_threads = <get_threads_t><size_t>_p
    _p = _symbol(_lib, ["scipy_openblas_set_num_threads", "openblas_set_num_threads",
                        "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_"])
    if _p:
        _set_threads = <set_threads_t><size_t>_p


def has_thread_control():
    """True if we found the BLAS's thread control (then it is the source of truth)."""
    return _get_threads != NULL and _set_threads != NULL


def get_num_threads():
    """Threads our BLAS uses (what threadpoolctl reports and limits for it)."""
    return blas_threads()


def set_num_threads(int n):
    """Set our BLAS's thread count for the whole process. Returns False if it has no control."""
    if _set_threads == NULL:
        return False
    _set_threads(n)
    return True


def info():
    """What BLAS the kernels call: a dict for `seqcore info` and bench headers."""
    if _controller is None:
        return {"library": "unknown (scipy.linalg.cython_blas)", "num_threads": blas_threads(),
                "thread_control": False}
    d = _controller.info()
    return {"library": d.get("internal_api"), "version": d.get("version"),
            "architecture": d.get("architecture"), "threading_layer": d.get("threading_layer"),
            "filepath": d.get("filepath"), "num_threads": blas_threads(),
            "thread_control": _set_threads != NULL}


def matmul(a, b, c, bint trans_a=False, bint trans_b=False, double alpha=1.0,
           double beta=0.0, int n_threads=1):
    """c = alpha op(a) op(b) + beta c in place, on C-contiguous float32/float64 2-D arrays of one
    dtype (seqcore.ops.matmul checks them), GIL released. With n_threads > 1 the product is
    split over our OpenMP threads and the BLAS must be single-threaded meanwhile.
    The precision is picked here, not by a fused function's dispatch, which took ~2 us of a
    small product's call (a Dense layer at a streaming step)."""
    if c.dtype.itemsize == 4:
        _matmul_typed[float](a, b, c, trans_a, trans_b, <float>alpha, <float>beta, n_threads)
    else:
        _matmul_typed[double](a, b, c, trans_a, trans_b, alpha, beta, n_threads)
    return c


cdef void _matmul_typed(floating[:, ::1] a, floating[:, ::1] b, floating[:, ::1] c,
                        bint trans_a, bint trans_b, floating alpha, floating beta,
                        int n_threads):
    cdef int m = c.shape[0], n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    with nogil:
        gemm_threads(n_threads, trans_a, trans_b, m, n, k, alpha, &a[0, 0], a.shape[1],
                     &b[0, 0], b.shape[1], beta, &c[0, 0], n)
