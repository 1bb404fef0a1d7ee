"""Single time steps of one layer, one direction: the engine of seqcore.ops.Stepper (streaming
inference); and the weights packed once for many calls (pack_forward, seqcore.ops.BoundLayer).

A step of a streaming model is a few microseconds of arithmetic, so what surrounds it matters:
a call of lstm.forward_inference converts some twenty arguments to memoryviews (~6 us) before
it starts. A StepKernel takes the weights, state and workspaces once, packs the weights once,
keeps raw pointers to them, and then a step is one call with one array. Numerics as
forward_inference with T = 1 (the same C step functions), on the calling thread or shared by
n_threads threads (the same results either way: each unit is computed by one thread, in the same
order).
seqcore.ops.Stepper validates everything; nothing here checks user input.
"""
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBuffer_Release,
                             PyObject_GetBuffer)
from cython cimport floating

from cython.parallel cimport parallel

from .cells cimport (SC_BLOCK_UNITS, SC_PANEL_UNITS, gru1_forward_step, gru_forward_step,
                     lstm_forward_step, masked_state, project_own_units, rnn_forward_step,
                     sc_ftz_enter, sc_ftz_exit, u8)
from .scan cimport PACK_COPY, pack_weights, project_steps

cdef enum:
    LSTM, GRU, GRU1, RNN_TANH, RNN_RELU

CELLS = {"lstm": LSTM, "gru": GRU, "gru1": GRU1, "rnn_tanh": RNN_TANH, "rnn_relu": RNN_RELU}


cdef inline void cell_step(int cell, int B, int H, const floating* Hp, const floating* Upk,
                           int ldu, const floating* bias_h, floating* Z, floating* work_a,
                           floating* work_b, floating* h, floating* c, const u8* valid,
                           floating* y) noexcept nogil:
    """The cell's step from Hp (the state) and Z (x W + bias) to h (and c) and y, on the calling
    thread or, inside a parallel region, on its fixed share of the units (no claims)."""
    if cell == LSTM:
        lstm_forward_step(B, H, Hp, Upk, ldu, Z, c, h, valid, y, NULL, <floating*>NULL,
                          <floating*>NULL, NULL, 0)
    elif cell == GRU:
        gru_forward_step(B, H, Hp, Upk, bias_h, Z, work_a, h, valid, y, NULL, <floating*>NULL,
                         <floating*>NULL, <floating*>NULL, NULL, 0)
    elif cell == GRU1:       # work_a: AZR (B, 2H) then AN (B, H); work_b: RH (B, H)
        gru1_forward_step(B, H, Hp, Upk, Z, work_a, work_b, work_a + 2 * B * H, h, valid, y,
                          <floating*>NULL, <floating*>NULL, <floating*>NULL, NULL, 0)
    else:
        rnn_forward_step(B, H, Hp, Upk, Z, h, valid, y, cell == RNN_RELU, <floating*>NULL,
                         <floating*>NULL, NULL, 0)


cdef void one_step(int cell, int n_threads, int B, int I, int H, int G, const floating* x,
                   const floating* Wpk, int ldw, const floating* Upk, int ldu,
                   const floating* bias,
                   const floating* bias_h, floating* Z, floating* Hp, floating* work_a,
                   floating* work_b, floating* h, floating* c, const u8* valid,
                   floating* y) noexcept nogil:
    """Z = x W + bias, then the cell's step from state h (and c) to y; as forward_inference.
    With n_threads > 1, one parallel region in which each thread projects and steps its own
    units (the same fixed split for both, so no barrier between; the GRU with
    reset_after=False has one inside its step)."""
    cdef unsigned int mode
    cdef int width = SC_PANEL_UNITS if cell == LSTM else SC_BLOCK_UNITS
    masked_state(B, H, h, <floating*>NULL, Hp)     # all of it before any thread writes h
    if n_threads <= 1:
        mode = sc_ftz_enter()
        project_steps(1, 1, B, I, G, H, x, <floating*>NULL, <floating*>NULL, Wpk, ldw, bias, Z,
                      NULL)
        cell_step(cell, B, H, Hp, Upk, ldu, bias_h, Z, work_a, work_b, h, c, valid, y)
        sc_ftz_exit(mode)
        return
    with parallel(num_threads=n_threads):
        mode = sc_ftz_enter()
        project_own_units(B, I, x, I, Wpk, ldw, G, H, width, bias, Z, G * H)
        cell_step(cell, B, H, Hp, Upk, ldu, bias_h, Z, work_a, work_b, h, c, valid, y)
        sc_ftz_exit(mode)


cdef char* address(a) except? NULL:
    """Where the data of a C-contiguous array (or None) starts; the caller keeps the array."""
    if a is None:
        return NULL
    cdef Py_buffer view
    PyObject_GetBuffer(a, &view, PyBUF_C_CONTIGUOUS)
    cdef char* start = <char*>view.buf
    PyBuffer_Release(&view)
    return start


def pack_forward(floating[:, ::1] W, floating[:, ::1] U, floating[::1] packed, int n_threads):
    """Pack W (I, G*H) and U (H, G*H) into `packed` (seqcore.ops._packed_workspace) as every
    forward kernel reads them, once for many calls: the forward_inference functions take it
    with prepacked=True (seqcore.ops.BoundLayer)."""
    cdef int I = W.shape[0], H = U.shape[0], ldu, ldw
    cdef floating* Upk
    with nogil:
        pack_weights(n_threads, 1, 1, I, H, U.shape[1] // H, &U[0, 0], &W[0, 0], &packed[0],
                     &Upk, &ldu, &ldw, PACK_COPY)


cdef class StepKernel:
    """kind: a key of CELLS. W (I, G*H), U (H, G*H), bias (G*H,) or None, bias_h (3H,) or None
    (GRU reset_after only), h and c (B, H) state arrays, updated in place by every step (c None
    but for the LSTM), valid (B,) uint8 read at every step, y (B, H) where each step's output
    goes; workspaces: packed (seqcore.ops._packed_workspace), Z (B, G*H), Hp (B, H),
    work_a (B, 3H), work_b (B, H). All C-contiguous, one dtype (float32 or float64)."""
    cdef int cell, B, I, H, G
    cdef bint f64
    cdef public int max_threads        # threads a step may share (the caller's policy)
    cdef list keep                     # the arrays the pointers below point into
    cdef object copy_y                 # y.copy, bound once: step_ready returns its result
    cdef char *Wpk
    cdef char *Upk
    cdef int ldu, ldw                  # 0: packed (scan.pxd pack_weights)
    cdef char *bias
    cdef char *bias_h
    cdef char *Z
    cdef char *Hp
    cdef char *work_a
    cdef char *work_b
    cdef char *h
    cdef char *c
    cdef char *valid
    cdef char *y

    def __init__(self, kind, W, U, bias, bias_h, h, c, valid, y, packed, Z, Hp, work_a,
                 work_b):
        self.cell = CELLS[kind]
        self.I, self.H = W.shape[0], U.shape[0]
        self.G = U.shape[1] // self.H
        self.B = h.shape[0]
        self.f64 = W.dtype.itemsize == 8
        self.max_threads = 1
        self.keep = [W, U, bias, bias_h, h, c, valid, y, packed, Z, Hp, work_a, work_b]
        self.copy_y = y.copy
        self.bias, self.bias_h = address(bias), address(bias_h)
        self.Z, self.Hp = address(Z), address(Hp)
        self.work_a, self.work_b = address(work_a), address(work_b)
        self.h, self.c, self.valid, self.y = address(h), address(c), address(valid), address(y)
        # packed once for every step to come (and a copy: later changes to W, U do not count)
        if self.f64:
            self.Wpk = <char*>pack_weights(1, 1, self.B, self.I, self.H, self.G,
                                           <double*>address(U), <double*>address(W),
                                           <double*>address(packed), <double**>&self.Upk,
                                           &self.ldu, &self.ldw, PACK_COPY)
        else:
            self.Wpk = <char*>pack_weights(1, 1, self.B, self.I, self.H, self.G,
                                           <float*>address(U), <float*>address(W),
                                           <float*>address(packed), <float**>&self.Upk,
                                           &self.ldu, &self.ldw, PACK_COPY)

    def step_ready(self, x, int n_threads=1):
        """step(x, n_threads) when x is ready as it is, a C-contiguous buffer (B, I) of the
        kernel's dtype (what a stream's caller usually passes), and a copy of y; else None,
        without stepping: the caller then converts x or rejects it (seqcore.ops.Stepper). Checked
        here rather than in Python, a step costs 0.5-1.0 us less (Zen 3, in one process,
        median of 21 rounds: LSTM 64 -> 128 0.52 us at one thread, 1.02 at two; GRU 0.66),
        of a 9-12 us step."""
        if not self._step_ready(x, n_threads):
            return None
        return self.copy_y()

    cdef bint _step_ready(self, x, int n_threads) except -1:
        """step(x, n_threads) and True when x is ready as it is (step_ready); else False."""
        cdef Py_buffer view
        cdef char code = 100 if self.f64 else 102          # 'd', 'f': float64, float32
        try:
            PyObject_GetBuffer(x, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        except (TypeError, BufferError, ValueError):
            return False
        try:
            if (view.ndim != 2 or view.shape[0] != self.B or view.shape[1] != self.I
                    or view.format == NULL or view.format[1] != 0
                    or view.format[0] != code):
                return False
            self._step(<char*>view.buf, n_threads)
        finally:
            PyBuffer_Release(&view)
        return True

    def step(self, x, int n_threads=1):
        """One step from x (B, I), C-contiguous, of the kernel's dtype; the output lands in y.
        n_threads > 1: the step shared by that many threads (one parallel region)."""
        self._step(address(x), n_threads)     # x stays alive: the caller holds it

    cdef void _step(self, char* xp, int n_threads):
        with nogil:
            if self.f64:
                one_step(self.cell, n_threads, self.B, self.I, self.H, self.G, <double*>xp,
                         <double*>self.Wpk, self.ldw, <double*>self.Upk, self.ldu,
                         <double*>self.bias,
                         <double*>self.bias_h, <double*>self.Z, <double*>self.Hp,
                         <double*>self.work_a, <double*>self.work_b, <double*>self.h,
                         <double*>self.c, <u8*>self.valid, <double*>self.y)
            else:
                one_step(self.cell, n_threads, self.B, self.I, self.H, self.G, <float*>xp,
                         <float*>self.Wpk, self.ldw, <float*>self.Upk, self.ldu,
                         <float*>self.bias,
                         <float*>self.bias_h, <float*>self.Z, <float*>self.Hp,
                         <float*>self.work_a, <float*>self.work_b, <float*>self.h,
                         <float*>self.c, <u8*>self.valid, <float*>self.y)


def step_chain(tuple kernels, x, int n_threads):
    """One step of a chain of StepKernels, each fed the previous one's output (the recurrent
    layers of a streaming model, seqcore.model.Stream): from x as the first one's step_ready
    takes it, each kernel on min(its max_threads, n_threads) threads. Returns a copy of the
    last kernel's y, or None when x is not ready as it is (nothing stepped: the caller
    converts x or rejects it). The caller has checked that the kernels chain (one B and dtype,
    each one's I the previous one's H). One call for the whole chain instead of a Python call
    per layer, and no copy between layers."""
    cdef StepKernel k = kernels[0], before
    cdef Py_ssize_t i
    if not k._step_ready(x, min(k.max_threads, n_threads)):
        return None
    for i in range(1, len(kernels)):
        before, k = k, kernels[i]
        k._step(before.y, min(k.max_threads, n_threads))
    return k.copy_y()
