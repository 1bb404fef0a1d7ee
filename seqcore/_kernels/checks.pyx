"""Hooks that let the tests reach internals of the kernels (not part of the API)."""
from cython cimport floating

import numpy as np

from .cells cimport (sc_get_fpu_mode, sc_sigmoid_array_f32, sc_sigmoid_array_f64,
                     sc_tanh_array_f32, sc_tanh_array_f64)


def activation(name, floating[::1] x, floating[::1] out):
    """out = sigmoid(x) or tanh(x) with the approximations the kernels use for x's dtype
    (float32 or float64)."""
    cdef bint sig = name == "sigmoid"
    cdef int n = x.shape[0]
    if n == 0:
        return np.asarray(out)
    with nogil:
        if floating is float:
            if sig:
                sc_sigmoid_array_f32(&x[0], &out[0], n)
            else:
                sc_tanh_array_f32(&x[0], &out[0], n)
        else:
            if sig:
                sc_sigmoid_array_f64(&x[0], &out[0], n)
            else:
                sc_tanh_array_f64(&x[0], &out[0], n)
    return np.asarray(out)


def fpu_mode():
    """The calling thread's floating-point control word (MXCSR on x86), 0 elsewhere."""
    return sc_get_fpu_mode()
