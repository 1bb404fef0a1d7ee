"""Facts about the CPU and the OpenMP runtime, for `seqcore info` and the benchmarks."""
cimport openmp

from .cells cimport sc_isa_level

# the instruction sets cells.h compiles the kernels for, by the level its dispatcher picks
_ISA_NAMES = {2: "avx512 (AVX-512F/VL/BW/DQ)", 1: "avx2+fma",
              0: "baseline (one build: x86-64 default, or -march=native with SEQCORE_NATIVE=1)"}


def simd_level():
    """The instruction set the kernels' loops run with on this CPU (the dispatcher's choice)."""
    return _ISA_NAMES[sc_isa_level()]


def openmp_max_threads():
    return openmp.omp_get_max_threads()


def openmp_num_procs():
    return openmp.omp_get_num_procs()
