# What the one-direction scans of every cell share: the time order, optional arguments, and the
# GEMMs hoisted out of the time loop (input projection before it; weight, bias and input
# gradients after it). DESIGN.md section 3.
from cython cimport floating
from libc.string cimport memcpy, memset

from .blas cimport gemm_threads


cdef inline floating* opt(floating[:, ::1] a) noexcept nogil:
    """Pointer to an optional (None-able) 2-D argument, NULL for None."""
    return &a[0, 0] if a is not None else NULL


cdef inline floating* opt_vec(floating[::1] a) noexcept nogil:
    """Pointer to an optional (None-able) 1-D argument, NULL for None."""
    return &a[0] if a is not None else NULL


cdef inline int time_index(int s, int T, bint reverse) noexcept nogil:
    """Time of the s-th step visited: s, or T-1-s for the reverse direction."""
    return T - 1 - s if reverse else s


cdef inline void project_inputs(int n_threads, int rows, int I, int N, const floating* X,
                                const floating* W, const floating* bias,
                                floating* out) noexcept nogil:
    """out(rows, N) = X(rows, I) @ W(I, N) + bias(N) (bias may be NULL)."""
    cdef long r
    if bias != NULL:
        for r in range(rows):
            memcpy(out + r * N, bias, N * sizeof(floating))
        gemm_threads(n_threads, False, False, rows, N, I, <floating>1, X, I, W, N, <floating>1,
                     out, N)
    else:
        gemm_threads(n_threads, False, False, rows, N, I, <floating>1, X, I, W, N, <floating>0,
                     out, N)


cdef inline floating* opt3(floating[:, :, ::1] a) noexcept nogil:
    """Pointer to an optional (None-able) 3-D argument, NULL for None."""
    return &a[0, 0, 0] if a is not None else NULL


cdef inline void project_steps(int n_threads, int steps, int B, int I, int N, const floating* x,
                               const floating* dmask, floating* XD, const floating* W,
                               const floating* bias, floating* out) noexcept nogil:
    """Input projection of `steps` consecutive steps: out = (x * dmask) @ W + bias, with input
    dropout applied into XD first when dmask is not NULL (XD is what backward's dW needs)."""
    if dmask != NULL:
        mask_inputs(steps, B, I, x, dmask, XD)
        x = XD
    project_inputs(n_threads, steps * B, I, N, x, W, bias, out)


cdef inline void mask_inputs(int T, int B, int I, const floating* x, const floating* dmask,
                             floating* XD) noexcept nogil:
    """XD[t, b] = x[t, b] * dmask[b]: input dropout, the same mask at every step."""
    cdef long t, b, i
    cdef const floating* xr
    cdef floating* out
    for t in range(T):
        for b in range(B):
            xr = x + (t * B + b) * I
            out = XD + (t * B + b) * I
            for i in range(I):
                out[i] = xr[i] * dmask[b * I + i]


cdef inline void add_col_sums(long rows, int N, const floating* A, int lda,
                              floating* out) noexcept nogil:
    """out(N) += sum over rows of A(rows, N) (row stride lda): a bias gradient."""
    cdef long r
    cdef int j
    cdef const floating* row
    for r in range(rows):
        row = A + r * lda
        for j in range(N):
            out[j] += row[j]


cdef inline void input_gradient(int n_threads, int T, int B, int I, int N, const floating* dZ,
                                const floating* W, const floating* dmask,
                                floating* dX) noexcept nogil:
    """dX(T*B, I) = dZ(T*B, N) @ W(I, N)^T, times the input dropout mask (may be NULL)."""
    cdef long r
    cdef int i
    gemm_threads(n_threads, False, True, T * B, I, N, <floating>1, dZ, N, W, N, <floating>0, dX, I)
    if dmask != NULL:
        for r in range(<long>T * B):
            for i in range(I):
                dX[r * I + i] *= dmask[(r % B) * I + i]
