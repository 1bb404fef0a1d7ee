"""The BLAS door (row-major GEMM in both precisions) and the thread settings."""
import json
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import seqcore
from seqcore._kernels import blas


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 7), (17, 1, 33), (64, 48, 1)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_gemm_row_major(dtype, tol, trans_a, trans_b, m, n, k, n_threads):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    expected = 0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + 2.0 * c
    got = blas.matmul(a, b, c.copy(), trans_a, trans_b, alpha=0.5, beta=2.0, n_threads=n_threads)
    np.testing.assert_allclose(got, expected, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
# (1, 10, 128): a Dense head at a streaming step, on the calling thread; (300, 40, 50): 600k
# multiply-adds, split over the threads with the BLAS held at one; then empty products
@pytest.mark.parametrize("m,n,k", [(1, 10, 128), (300, 40, 50), (0, 3, 4), (3, 4, 0)])
def test_ops_matmul_small_and_split_products(dtype, tol, trans_a, trans_b, m, n, k):
    from seqcore import ops, runtime
    rng = np.random.default_rng(1)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
    before = seqcore.get_num_threads()
    try:
        seqcore.set_num_threads(2)
        threads = seqcore.get_num_threads()      # 2, or what a one-core machine's BLAS allows
        got = ops.matmul(a, b, trans_a, trans_b)
        assert got.dtype == dtype and got.shape == (m, n)
        scale = max(1.0, np.abs(expected).max(initial=0))
        np.testing.assert_allclose(got, expected, atol=tol * scale)
        # the hold on the BLAS (split product) is over: the thread count is back
        assert seqcore.get_num_threads() == threads and runtime._single_users == 0
    finally:
        seqcore.set_num_threads(before)


def test_set_num_threads_controls_blas_and_threadpoolctl_sees_it():
    before = seqcore.get_num_threads()
    try:
        seqcore.set_num_threads(1)
        assert seqcore.get_num_threads() == 1
        assert seqcore.config()["blas"]["num_threads"] == 1
    finally:
        seqcore.set_num_threads(before)
    assert seqcore.get_num_threads() == before
    # threadpoolctl limits our BLAS, and through it our OpenMP loops
    with threadpool_limits(limits=1, user_api="blas"):
        assert seqcore.get_num_threads() == 1
    assert seqcore.get_num_threads() == before


def test_orthogonal_initializer_runs_numpys_qr_on_one_thread(monkeypatch):
    """NumPy's BLAS threads spin for ~0.1 s after a call; an initializer's QR on several would
    leave them spinning into the first kernel call after a layer is built."""
    from threadpoolctl import threadpool_info

    from seqcore import initializers
    counts_before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    seen = []
    qr = np.linalg.qr

    def recording_qr(a):
        seen.append([lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"])
        return qr(a)

    monkeypatch.setattr(np.linalg, "qr", recording_qr)
    q = initializers.orthogonal((8, 32), np.random.default_rng(0), np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(8), atol=1e-12)
    assert seen and all(n == 1 for n in seen[0]), seen
    assert [lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas"] == counts_before


def test_threads_never_exceed_the_usable_processors():
    """More threads than processors only wait for each other (several times slower): a larger
    count, asked of set_num_threads or set on our BLAS by threadpoolctl, is cut to them."""
    from seqcore import runtime
    cpus = runtime.usable_cpus()
    before = seqcore.get_num_threads()
    try:
        with pytest.warns(RuntimeWarning, match=rf"set_num_threads\({cpus + 3}\).* {cpus} "):
            seqcore.set_num_threads(cpus + 3)
        assert seqcore.get_num_threads() == cpus
        assert seqcore.config()["blas"]["num_threads"] == cpus
    finally:
        seqcore.set_num_threads(before)
    with threadpool_limits(limits=cpus + 5, user_api="blas"):
        assert seqcore.get_num_threads() == cpus


def test_threads_follow_a_narrowed_cpu_affinity():
    """A process confined to one processor (a container's or taskset's CPU set) runs every
    kernel on one thread whatever it asks for, and gets the right results."""
    import os
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    code = """
import os, warnings
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
import numpy as np
import seqcore
from seqcore import ops, reference
assert seqcore.get_num_threads() == 1, seqcore.get_num_threads()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    seqcore.set_num_threads(2)
assert [w.category for w in caught] == [RuntimeWarning], caught
assert seqcore.get_num_threads() == 1
seen = []
ops._run(lambda n, steps: seen.append((n, steps)), (100, 1, 4, 256))
assert seen == [(1, 1)], seen
rng = np.random.default_rng(0)
x = rng.standard_normal((20, 3, 16))
W, U = rng.standard_normal((16, 4 * 32)) * 0.3, rng.standard_normal((32, 4 * 32)) * 0.3
got = ops.lstm_forward(x, W, U, None, training=False)[0]
want = reference.lstm_forward(x, W, U, None)[0]
assert np.abs(got - want).max() < 1e-10, np.abs(got - want).max()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_set_num_threads_rejects_bad_values(bad, exc):
    with pytest.raises(exc, match="set_num_threads"):
        seqcore.set_num_threads(bad)


def test_blas_is_found_and_reported():
    info = seqcore.config()["blas"]
    assert info["thread_control"], info
    assert info["library"] == "openblas"


def test_cli_info_prints_blas_and_threads():
    out = subprocess.run([sys.executable, "-m", "seqcore", "info"], capture_output=True,
                         text=True, check=True).stdout
    assert "BLAS:" in out and "threads:" in out and "SIMD path:" in out


def test_cli_bench_runs_the_benchmark_script(tmp_path):
    """`seqcore bench` is the front door to bench/kernels.py: here one quick row, written
    where we say."""
    pytest.importorskip("torch", reason="the benchmark compares with PyTorch")
    out = tmp_path / "k"
    run = subprocess.run([sys.executable, "-m", "seqcore", "bench", "--cells", "gru", "--modes",
                          "infer", "--threads", "1", "--budget", "0", "--quick", "--no-tf",
                          "--rounds", "2", "--min-rounds", "3", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "NumPy SGEMM ceiling" in run.stdout and "| gru | infer | 1, 1, 64, 128 | 1 |" in run.stdout
    assert "geometric mean speed-up vs torch" in (tmp_path / "k.md").read_text()
    # the ratio is the median of the rounds' paired ratios, shown with their lowest and highest
    row = json.loads((tmp_path / "k.json").read_text())["rows"][-1]
    lo, hi = row["speedup_range"]
    assert 0 < lo <= row["speedup"] <= hi
    # with no time budget every block holds one call: the rows get --min-rounds rounds
    assert row["rounds"] == 3
    assert f"{row['speedup']:.2f} ({lo:.2f}-{hi:.2f})" in run.stdout


def test_cli_bench_workloads_runs_the_workload_script(tmp_path):
    """`seqcore bench workloads` runs bench/workloads.py: here the recurrent-dropout row."""
    pytest.importorskip("torch", reason="the benchmark compares with PyTorch")
    out = tmp_path / "w"
    run = subprocess.run([sys.executable, "-m", "seqcore", "bench", "workloads", "--workloads",
                          "dropout", "--threads", "1", "--budget", "0", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "| dropout | lstm | train | 100, 16, 256, 256 | 1 |" in (tmp_path / "w.md").read_text()


def test_kernel_calls_restore_the_blas_thread_count():
    """A multi-threaded kernel call holds our BLAS at one thread (its own threads split the
    GEMMs); afterwards, and after calls from several Python threads at once, the count is back."""
    from concurrent.futures import ThreadPoolExecutor
    from seqcore import ops
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 16, 32)).astype(np.float32)
    W = rng.standard_normal((32, 4 * 64)).astype(np.float32) * 0.1
    U = rng.standard_normal((64, 4 * 64)).astype(np.float32) * 0.1
    before = seqcore.get_num_threads()
    try:
        seqcore.set_num_threads(2)
        seqcore.ops.lstm_forward(x, W, U, None)
        assert blas.get_num_threads() == 2 and seqcore.get_num_threads() == 2
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: ops.lstm_forward(x, W, U, None), range(8)))
        assert blas.get_num_threads() == 2
    finally:
        seqcore.set_num_threads(before)


@pytest.mark.parametrize("call_shape,split", [
    ((100, 1, 3, 256), True),     # GRU at batch 1: split (ran serial under the old bound)
    ((100, 1, 4, 128), True),     # LSTM, 6.5e4 multiply-adds a step
    ((100, 16, 3, 64), False),    # H <= 64: a single block of units to share
    ((100, 1, 3, 96), False),     # 2.8e4 a step: below _STEP_PARALLEL_MIN
    ((1, 1, 3, 128), False),      # one step: the team's start and end would not pay
    ((1, 1, 4, 256), True),       # one step with 2.6e5 multiply-adds
])
def test_steps_are_split_over_the_threads_by_size(call_shape, split):
    """ops._run's policy: how many threads share each time step, for given (T, B, G, H)."""
    from seqcore import ops
    seen = []
    before = seqcore.get_num_threads()
    try:
        seqcore.set_num_threads(2)
        ops._run(lambda n_threads, step_threads: seen.append((n_threads, step_threads)),
                 call_shape)
    finally:
        seqcore.set_num_threads(before)
    assert seen == [(2, 2 if split else 1)]



def _fake_cache(root, *levels):
    """A sysfs cache directory with one index per (level, type, size)."""
    for i, (level, kind, size) in enumerate(levels):
        d = root / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    return root


@pytest.mark.parametrize("levels, expected", [
    ([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
      (3, "Unified", "105M")], 2 << 20),
    ([(1, "Data", "32K"), (2, "Unified", "512K")], 512 << 10),
    ([(2, "Unified", "1M")], 1 << 20),
    ([(1, "Data", "32K")], 0),                          # no L2 reported
    ([(2, "Unified", "lots")], 0),                      # unreadable size
    ([], 0),
])
def test_l2_cache_size_is_read_from_sysfs(tmp_path, monkeypatch, levels, expected):
    from seqcore import runtime
    monkeypatch.setattr(runtime, "_CACHE_SYSFS", _fake_cache(tmp_path, *levels))
    runtime.l2_cache_bytes.cache_clear()
    try:
        assert runtime.l2_cache_bytes() == expected
    finally:
        monkeypatch.undo()                  # the real sysfs again, before anything caches
        runtime.l2_cache_bytes.cache_clear()
    assert isinstance(runtime.l2_cache_bytes(), int) and runtime.l2_cache_bytes() >= 0


@pytest.mark.parametrize("l2, threads, shape, steps", [
    # shape: B, width (G*H), T, I, H, itemsize
    (512 << 10, 1, (16, 1024, 100, 256, 256, 4), 2),   # a quarter of 512 KiB: 32 rows of 4 KiB
    (2 << 20, 1, (16, 1024, 100, 128, 256, 4), 8),     # of 2 MiB: 128 rows
    (2 << 20, 1, (16, 512, 100, 128, 128, 4), 16),
    (2 << 20, 1, (16, 512, 100, 128, 128, 8), 8),      # float64 rows take twice the room
    (2 << 20, 1, (16, 1024, 100, 256, 256, 4), 32),    # W and U 2 MiB, from one to two L2s:
    (2 << 20, 1, (16, 1280, 100, 192, 320, 4), 32),    # 512 rows (2.5 MiB)
    (2 << 20, 1, (16, 2048, 100, 64, 512, 4), 4),      # 4.5 MiB, past two L2s: 64 rows
    (2 << 20, 1, (1, 1024, 100, 128, 256, 4), 100),    # never past T
    (2 << 20, 1, (300, 1024, 100, 256, 256, 4), 1),    # at least one step
    (0, 1, (16, 1024, 100, 256, 256, 4), 2),           # L2 not reported: as 512 KiB
    (2 << 20, 2, (16, 1024, 100, 256, 256, 4), 32),    # two threads: 512 rows, whatever the L2
    (2 << 20, 1, (16, 3072, 100, 128, 1024, 4), 21),   # W and U 13 MiB: 512 rows, capped by
                                                       # 2^20 values
    (2 << 20, 1, (16, 4096, 100, 512, 1024, 4), 100),  # 24 MiB: 2048 rows, never past T
    (2 << 20, 1, (64, 2048, 100, 512, 512, 8), 8),     # W and U 16 MiB: not past the bound
    (2 << 20, 1, (128, 4096, 50, 1024, 1024, 4), 16),  # W and U 32 MiB: 2048 rows, no cap
    (2 << 20, 2, (64, 3072, 50, 768, 768, 4), 32),     # 18 MiB, two threads
    (2 << 20, 1, (1, 4096, 10000, 1024, 1024, 4), 2048),
    (2 << 20, 1, (4096, 4096, 50, 1024, 1024, 4), 1),  # at least one step
])
def test_inference_chunks_are_sized_by_the_l2_cache(monkeypatch, l2, threads, shape, steps):
    """ops._chunk_steps: on one thread, with W within _CACHED_WEIGHT_BYTES and W and U not
    between one and two times the L2, a chunk's pre-activations fill a quarter of the core's
    L2; otherwise 512 rows, or 2048 when W and U pass _LARGE_WEIGHT_BYTES."""
    assert _chunk_steps_with(monkeypatch, l2, threads, shape) == steps


def _chunk_steps_with(monkeypatch, l2, threads, shape, training=False):
    """ops._chunk_steps(*shape) with the L2 reported as l2 bytes and `threads` threads."""
    from seqcore import ops, runtime
    monkeypatch.setattr(runtime, "l2_cache_bytes", lambda: l2)
    before = seqcore.get_num_threads()
    try:
        seqcore.set_num_threads(threads)
        return ops._chunk_steps(*shape, training=training)
    finally:
        seqcore.set_num_threads(before)


@pytest.mark.parametrize("shape, steps", [
    ((16, 1024, 100, 128, 256, 4), 8),      # W and U 1.5 MiB: chunks of a quarter of the L2
    ((16, 1024, 100, 256, 256, 4), 100),    # 2 MiB, one to two L2s: one projection
    ((16, 4096, 100, 512, 1024, 4), 100),   # W past _CACHED_WEIGHT_BYTES: one projection
])
def test_training_chunks_only_where_inference_takes_a_quarter_of_l2(monkeypatch, shape, steps):
    """ops._chunk_steps(training=True): chunks of a quarter of the L2 on one thread where
    inference takes them; otherwise the whole sequence's projection at once."""
    assert _chunk_steps_with(monkeypatch, 2 << 20, 1, shape, training=True) == steps


def _kernel_row(shape, mode, seqcore_ms, ort_ms, torch_ms, share):
    ort = None if ort_ms is None else ort_ms / seqcore_ms
    return dict(cell="lstm", mode=mode, shape=list(shape), threads=1, seqcore_ms=seqcore_ms,
                torch_ms=torch_ms, ort_ms=ort_ms, tf_ms=None, sgemm_gflops=70.0,
                ceiling_fraction=share, speedup=torch_ms / seqcore_ms, speedup_ort=ort,
                speedup_tf=None, speedup_range=None, speedup_ort_range=None,
                speedup_tf_range=None)


def test_cli_bench_targets_checks_the_results(tmp_path):
    """`seqcore bench targets` runs bench/targets.py over results files: each target met or
    not, and a row that misses one is "bound" only when a measured bound rules it out."""
    machine = dict(seqcore="0", cores=2, simd="avx2+fma")
    kernels = [
        # B = 16 at 0.9 of SGEMM, its peer at 0.9 too: 1.5x is out of reach (bound)
        _kernel_row((100, 16, 256, 256), "infer", 10.0, 10.0, 12.0, 0.9),
        # batch 1: 1.2x, the peer at 0.3 of SGEMM and slow to stream U: open
        _kernel_row((100, 1, 128, 256), "infer", 2.5, 3.3, 4.0, 0.4),
        _kernel_row((100, 16, 256, 256), "train", 30.0, None, 60.0, 0.8),
    ]
    workloads = [
        dict(workload="stream", cell="lstm", shape=[1, 1, 64, 128], threads=1,
             seqcore_ms=0.012, torch_ms=0.2, ort_ms=0.05),
        dict(workload="ragged", cell="lstm", mode="infer", shape=[100, 32, 128, 256],
             threads=1, seqcore_ms=12.0, torch_ms=40.0, full_scaled_ms=10.0,
             valid_fraction=0.5),
        # with the batch-size curve (workloads.py): the verdict splits the gap
        dict(workload="ragged", cell="lstm", mode="train", shape=[100, 32, 128, 256],
             threads=2, seqcore_ms=12.0, torch_ms=40.0, full_scaled_ms=10.0,
             valid_fraction=0.5, scaled_ratio=1.2, curve_scaled=1.12, curve_ratio=1.07),
        dict(workload="dropout", cell="lstm", mode="train", shape=[100, 16, 256, 256],
             threads=1, seqcore_ms=50.0, dropout_ms=51.0),
    ]
    bandwidth = dict(simd="avx2+fma", rows=[dict(cell="lstm", H=128, u_bytes=262144,
                                                 loop_s=3.5e-6, step_s=5e-6),
                                            dict(cell="lstm", H=256, u_bytes=1048576,
                                                 loop_s=17e-6, step_s=18e-6)])
    for name, rows in (("kernels", kernels), ("workloads", workloads)):
        (tmp_path / f"{name}.json").write_text(json.dumps(dict(machine=machine, rows=rows)))
    (tmp_path / "bandwidth.json").write_text(json.dumps(bandwidth))
    out = tmp_path / "targets.md"
    run = subprocess.run([sys.executable, "-m", "seqcore", "bench", "targets", "--results",
                          str(tmp_path), "--out", str(out)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()
             if line.startswith("| lstm")}
    assert "bound: ONNX Runtime at 90% of SGEMM, seqcore at best 90%, at most 1.00x < 1.5x" \
        in lines["lstm infer (100, 16, 256, 256) 1t"]
    # 17 us a step for U (bandwidth.json, H = 256) + 26 MFLOP of projection at 70 GFLOP/s:
    # 2.07 ms at best, ORT 3.3 ms -> 1.59x; the compute bound allows 2.97x: open
    assert ("open: ONNX Runtime at 30% of SGEMM, seqcore at best 90%, at most 2.97x; open: "
            "weights read at 62 GB/s in all (least time 2.074 ms), at most 1.59x") \
        in lines["lstm infer (100, 1, 128, 256) 1t"]
    summary = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    assert "| 2.00x over the kernel training rows | met |" in summary[
        "training: geometric mean >= 1.5x torch"]
    assert ("**not met** | infer lstm 1t: open: no bound known; train lstm 2t: open: "
            "batch-size curve 1.120x the full batch x fraction, the ragged call 1.070x the "
            "curve |") in summary["ragged within 10% of the full batch x valid fraction"]
    assert "+2.0% | met" in summary["recurrent dropout <= +5%"]
    # 384 KiB of W and U at 75 GB/s (the fastest rate measured) take more than the 5 us
    assert "infer lstm 1t: bound: W and U alone take at least 5.25 us" in summary[
        "streaming step <= 5 us"]
