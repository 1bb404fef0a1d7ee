"""Thread settings and the facts `seqcore info` prints.

One number governs both thread pools we use: the thread count of our BLAS. The kernels read
it at each call and pass it to their OpenMP loops, so `set_num_threads(n)` and threadpoolctl
limits on our BLAS (e.g. `threadpool_limits(1)`) steer OpenMP and BLAS together. Never more
threads than the processors this process may run on (its CPU affinity, which a container or
taskset narrows): a team larger than that only waits for its own threads to be scheduled
(LSTM (100, 16, 128, 256) on 2 cores: 8 threads 2.5x the time of 2 for inference, 64 threads
6.6x), so such a count is cut to the processors, with a warning when set_num_threads is
asked for it.
"""
import functools
import operator
import platform
import threading
import warnings
from pathlib import Path

import numpy as np

from ._kernels import blas, cpu

_fallback_threads = cpu.openmp_max_threads()   # used only if the BLAS has no thread control
_blas_thread_control = blas.has_thread_control()   # fixed once the BLAS is loaded
# The processors this process may run on (OpenMP asks the CPU affinity), the most threads the
# kernels use: asked at import and again at every set_num_threads, not at every call (a
# system call; a streaming step asks for its thread count at every step).
_usable_cpus = max(1, cpu.openmp_num_procs())


def usable_cpus():
    """The processors this process may run on, as last seen (at import or set_num_threads)."""
    return _usable_cpus


def set_num_threads(n):
    """Use n threads (OpenMP loops and BLAS alike) in all later kernel calls; at most the
    processors this process may run on (usable_cpus): a larger n is cut to them, with a
    RuntimeWarning."""
    global _fallback_threads, _saved_blas_threads, _usable_cpus
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _usable_cpus = max(1, cpu.openmp_num_procs())
    if n > _usable_cpus:
        warnings.warn(f"set_num_threads({n}): this process may run on {_usable_cpus} "
                      f"processor(s); using {_usable_cpus} threads (more would only wait for "
                      f"each other)", RuntimeWarning, stacklevel=2)
        n = _usable_cpus
    with _single_lock:
        if _single_users:                 # a kernel call holds BLAS at 1: restore n after it
            _saved_blas_threads = n
            return
    if not blas.set_num_threads(n):
        _fallback_threads = n


def get_num_threads():
    """Threads the kernels will use: our BLAS's current thread count (while a kernel call
    holds BLAS single-threaded, the count it had before), at most usable_cpus() (a count set
    past them through threadpoolctl or OPENBLAS_NUM_THREADS is cut here)."""
    if not _blas_thread_control:
        n = _fallback_threads
    elif not _single_users:
        # the common case, without the lock (a streaming step asks at every step): a hold
        # that starts meanwhile can only make the answer 1, which is safe
        n = blas.get_num_threads()
    else:
        with _single_lock:
            n = _saved_blas_threads if _single_users else blas.get_num_threads()
    return n if n <= _usable_cpus else _usable_cpus


# While a kernel call with several threads runs, our BLAS is held at one thread: the kernels
# split every GEMM over their own OpenMP threads (one thread pool at a time; two busy pools on
# the same cores slow each other down many times). Concurrent calls share the hold; the last
# one out restores the count. Other users of scipy's BLAS see one thread meanwhile.
_single_lock = threading.Lock()
_single_users = 0
_saved_blas_threads = 1


class blas_single_threaded:
    """Hold our BLAS at one thread for the duration of a `with` block (nothing when
    n_threads == 1). A class rather than a generator-based context manager: entering and
    leaving one of those cost ~2 us here, and a kernel call takes one each time."""
    __slots__ = ("_holds",)

    def __init__(self, n_threads):
        self._holds = n_threads > 1 and _blas_thread_control

    def __enter__(self):
        global _single_users, _saved_blas_threads
        if self._holds:
            with _single_lock:
                if _single_users == 0:
                    _saved_blas_threads = blas.get_num_threads()
                    blas.set_num_threads(1)
                _single_users += 1
        return self

    def __exit__(self, *exc_info):
        global _single_users
        if self._holds:
            with _single_lock:
                _single_users -= 1
                if _single_users == 0:
                    blas.set_num_threads(_saved_blas_threads)
        return False


_CACHE_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")


@functools.lru_cache(maxsize=None)
def l2_cache_bytes():
    """Size of one core's L2 cache in bytes, as Linux reports it (sysfs), or 0 where the
    system does not say. The kernels' inference chunks are sized from it (ops._chunk_steps)."""
    try:
        for index in sorted(_CACHE_SYSFS.glob("index*")):
            if ((index / "level").read_text().strip() == "2"
                    and (index / "type").read_text().strip() in ("Unified", "Data")):
                size = (index / "size").read_text().strip()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return 0


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
        "l2_cache_bytes": l2_cache_bytes(),
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
        f"L2 cache:  {c['l2_cache_bytes'] >> 10} KiB per core" if c["l2_cache_bytes"]
        else "L2 cache:  not reported by the system",
    ]
    print("\n".join(lines), file=file)
