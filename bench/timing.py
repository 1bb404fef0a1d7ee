"""The block of timed calls that every library of bench/ is measured by (kernels.time_group
in this process, tf_peer's worker in its own), and the wait for a quiet machine between
blocks."""
import os
import time


def timed_block(fn, seconds, max_calls=40):
    """One untimed call of fn (it brings fn's own weights and buffers back into cache after
    other libraries ran), then timed calls for `seconds` (at least one, at most max_calls).
    Returns their times in seconds."""
    fn()
    times = []
    end = time.perf_counter() + seconds
    for _ in range(max_calls):
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 >= end:
            break
    return times


def cpu_seconds(pid=None):
    """CPU time (user + system, every thread) used so far by process pid (None: this one), or
    None when /proc cannot tell (not Linux, process gone)."""
    try:
        with open(f"/proc/{pid or 'self'}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(pid=None, window=0.05, limit=2.0):
    """Return once process pid (None: this one, whose calling thread sleeps meanwhile) uses
    less than a fifth of a core over `window` seconds, or after `limit` seconds. Thread pools
    keep working after a call returns (spinning idle threads; TensorFlow's worker process
    freeing its buffers): measured, seqcore's (100, 64, 512, 512) training rows, whose blocks
    always started right after TensorFlow's while its worker was still busy, read 13-17% lower
    against PyTorch than in a run without TensorFlow."""
    end = time.perf_counter() + limit
    before = cpu_seconds(pid)
    while before is not None and time.perf_counter() < end:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now is None or now - before <= window / 5:
            return
        before = now
