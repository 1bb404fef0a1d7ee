"""Thread settings and the facts `seqcore info` prints.

One number governs both thread pools we use: the thread count of our BLAS. The kernels read
it at each call and pass it to their OpenMP loops, so `set_num_threads(n)` and threadpoolctl
limits on our BLAS (e.g. `threadpool_limits(1)`) steer OpenMP and BLAS together.
"""
import operator
import platform

import numpy as np

from ._kernels import blas, cpu

_fallback_threads = cpu.openmp_max_threads()   # used only if the BLAS has no thread control


def set_num_threads(n):
    """Use n threads (OpenMP loops and BLAS alike) in all later kernel calls."""
    global _fallback_threads
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    if not blas.set_num_threads(n):
        _fallback_threads = n


def get_num_threads():
    """Threads the kernels will use: our BLAS's current thread count."""
    return blas.get_num_threads() if blas.has_thread_control() else _fallback_threads


def config():
    """A dict of version, BLAS, thread and SIMD facts."""
    from . import __version__
    return {
        "seqcore": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": cpu.openmp_num_procs(),
        "blas": blas.info(),
        "num_threads": get_num_threads(),
        "openmp_max_threads": cpu.openmp_max_threads(),
        "simd": cpu.simd_level(),
    }


def show_config(file=None):
    """Print config() in a readable form."""
    c = config()
    b = c["blas"]
    lines = [
        f"seqcore {c['seqcore']}  (python {c['python']}, numpy {c['numpy']}, {c['machine']}, {c['cpus']} CPUs)",
        f"BLAS:      {b.get('library')} {b.get('version', '')} ({b.get('architecture', '?')} kernel, "
        f"{b.get('threading_layer', '?')}), {b['num_threads']} threads",
        f"           {b.get('filepath', '')}",
        f"threads:   {c['num_threads']} (seqcore.set_num_threads governs OpenMP and BLAS together; "
        f"OpenMP runtime default {c['openmp_max_threads']})",
        f"SIMD path: {c['simd']}",
    ]
    print("\n".join(lines), file=file)
