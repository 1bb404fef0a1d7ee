"""The block of timed calls that every library of bench/ is measured by (kernels.time_group
in this process, tf_peer's worker in its own), the wait for a quiet machine between blocks,
and the thread counts a run can compare."""
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


def timer(fn):
    """fn as a timer for alternating_rounds: a call runs fn and returns the seconds it took."""
    def run():
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    return run


def alternating_rounds(timers, seconds, min_rounds):
    """Rounds in which each timer (a callable returning the seconds it measured: `timer`) runs
    once, the first of a round turning with the round, after one untimed call of each; for
    `seconds` and at least min_rounds rounds. Returns each timer's seconds, round by round.
    For the ratio of two calls of one library: its rounds' ratios, calls a few milliseconds
    apart, see the same spell of the machine. Measured here, ragged / full batch at 1 thread:
    the medians of such rounds over 3 s read 1.09-1.12 in four runs (quartiles within 0.03
    of the median); the ratios of block medians seconds apart (kernels.paired_ratio) ranged
    0.8-1.3 within a run."""
    for t in timers:
        t()
    wait_until_quiet()                  # no pool of a library timed before still spinning
    out = [[] for _ in timers]
    end = time.perf_counter() + seconds
    r = 0
    while r < min_rounds or time.perf_counter() < end:
        for j in range(len(timers)):
            i = (r + j) % len(timers)
            out[i].append(timers[i]())
        r += 1
    return out


def warm_timer(fn):
    """fn as a timer (as `timer`) whose timed call comes right after an untimed call of fn, so
    that each timed call finds its buffers as a call of its own left them, whatever ran
    before it: for the ratio of two calls that touch different memory. workloads.py's ragged
    rows alternate three such calls (ragged, full batch, the batch-size curve's 27 calls);
    timed by `timer`, the full batch ran right after the curve's last call, of its own shape
    (its buffers warm), the ragged call after that curve in two rounds of three (its buffers
    evicted): LSTM (100, 32, 128, 256) inference, 1 thread, ragged after the curve 14.6 ms,
    after a ragged call 12.6; the full batch 24.1 and 24.6. Ragged / (full batch x valid
    fraction), medians of rounds: 1.18-1.30 by single calls, 1.09-1.13 this way. With the
    caches flushed before every call (a 64 MB read), both colder: 1.15-1.47 (two runs)."""
    run = timer(fn)

    def warm():
        fn()
        return run()
    return warm


def usable_thread_counts(counts):
    """The thread counts of `counts` that this process can run: seqcore cuts a count past the
    processors it may run on (runtime.usable_cpus) and the peers would not, so such a row
    would compare unlike runs. The others are left out, with a note."""
    from seqcore import runtime
    cpus = runtime.usable_cpus()
    dropped = [n for n in counts if n > cpus]
    if dropped:
        print(f"# --threads {' '.join(map(str, dropped))} left out: this process may run on "
              f"{cpus} processor(s)", flush=True)
    return [n for n in counts if n <= cpus]
