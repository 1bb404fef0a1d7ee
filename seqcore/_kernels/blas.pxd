# The one door to BLAS (DESIGN.md section 3). Row-major wrappers over scipy's cython_blas,
# one fused source for float32/float64, and thread control for the library behind it.
from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* a, int lda, const floating* b, int ldb, floating beta,
               floating* c, int ldc) noexcept nogil

cdef void gemm_threads(int n_threads, bint trans_a, bint trans_b, int m, int n, int k,
                       floating alpha, const floating* a, int lda, const floating* b, int ldb,
                       floating beta, floating* c, int ldc) noexcept nogil

cdef int blas_threads() noexcept nogil
