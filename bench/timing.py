"""The block of timed calls that every library of bench/ is measured by (kernels.time_group
in this process, tf_peer's worker in its own)."""
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
