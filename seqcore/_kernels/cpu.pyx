"""Facts about the CPU and the OpenMP runtime, for `seqcore info` and the benchmarks."""
cimport openmp


cdef extern from "cpu.h":
    const char *seqcore_simd_level() nogil


def simd_level():
    """The instruction set our pointwise loops dispatch to on this CPU."""
    return seqcore_simd_level().decode()


def openmp_max_threads():
    return openmp.omp_get_max_threads()


def openmp_num_procs():
    return openmp.omp_get_num_procs()
