"""How close a batch-1 step is to the memory bound: the rate at which one core streams a
recurrent kernel through multiply-adds, against seqcore's step at batch 1, in one run.

    python bench/bandwidth.py [--sizes 128 256 384] [--out bench/results/bandwidth]

At batch 1 every weight of U is used once per step, so a step cannot beat the rate at which
the core reads U from its caches. A small C loop (compiled here with gcc, AVX-512 if the CPU
has it, else AVX2) does just that: z[0:64] += h[k] * U[k, 0:64] for every k and every block of
64 columns, U packed as seqcore packs it (contiguous per block), over and over. seqcore's step
is timed on T = 1000, B = 1, I = 8 through ops.BoundLayer (input projection negligible), one
thread. Both are reported in GB/s of U read per step, each the best of its repetitions (30 of
the loop, 30 calls of seqcore; seqcore's median call is shown too): their ratio, best against
best, is the share of the memory bound that the step reaches (the rest: activations, state
update, loop overheads). (Before 2026-12-02 the ratio set seqcore's median against the loop's
best, which on a noisy machine read it 10-30% lower.)
Writes the table as OUT.md and its rows as OUT.json (bench/targets.py reads the loop's rates).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import seqcore
from seqcore import ops

LOOP = r"""
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__AVX512F__)
typedef __m512 V; enum { L = 16 };
#define LOAD _mm512_loadu_ps
#define FMA _mm512_fmadd_ps
#define SET1 _mm512_set1_ps
#define STORE _mm512_storeu_ps
#else
typedef __m256 V; enum { L = 8 };
#define LOAD _mm256_loadu_ps
#define FMA _mm256_fmadd_ps
#define SET1 _mm256_set1_ps
#define STORE _mm256_storeu_ps
#endif
enum { NV = 64 / L };
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                          return t.tv_sec + t.tv_nsec * 1e-9; }
/* z[0:64] += sum_k h[k] * u[k*64 : k*64 + 64] */
__attribute__((noinline)) static void block(int K, const float *h, const float *u, float *z) {
    V acc[NV];
    for (int v = 0; v < NV; v++) acc[v] = LOAD(z + v * L);
    for (int k = 0; k < K; k++) {
        V a = SET1(h[k]);
        for (int v = 0; v < NV; v++) acc[v] = FMA(a, LOAD(u + (long)k * 64 + v * L), acc[v]);
    }
    for (int v = 0; v < NV; v++) STORE(z + v * L, acc[v]);
}
int main(int argc, char **argv) {
    int H = atoi(argv[1]), G = atoi(argv[2]), blocks = G * H / 64;
    long n = (long)H * G * H;
    float *u = aligned_alloc(64, n * 4), *h = aligned_alloc(64, H * 4), *z = aligned_alloc(64, G * H * 4);
    for (long i = 0; i < n; i++) u[i] = 1e-3f * (i % 7);
    for (int i = 0; i < H; i++) h[i] = 0.5f;
    for (int i = 0; i < G * H; i++) z[i] = 0;
    double best = 1e9;
    for (int rep = 0; rep < 30; rep++) {
        double t0 = now();
        for (int it = 0; it < 200; it++)
            for (int j = 0; j < blocks; j++) block(H, h, u + (long)j * H * 64, z + j * 64);
        double t = (now() - t0) / 200;
        if (t < best) best = t;
    }
    printf("%.9f\n", best);
    return z[0] == 12345.f;
}
"""


def build_loop(workdir):
    src = os.path.join(workdir, "loop.c")
    exe = os.path.join(workdir, "loop")
    with open(src, "w") as f:
        f.write(LOOP)
    isa = ["-mavx512f"] if seqcore.config()["simd"].startswith("avx512") else ["-mavx2", "-mfma"]
    subprocess.run(["gcc", "-O3", *isa, "-o", exe, src], check=True)
    return exe


def seqcore_step(cell, H, T=1000, I=8):
    """(best, median) seconds per step of seqcore's batch-1 step."""
    G = 4 if cell == "lstm" else 3
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, 1, I)).astype(np.float32)
    W = (rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(np.float32)
    U = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(np.float32)
    b = np.zeros((2, G * H) if cell == "gru" else G * H, np.float32)
    layer = ops.BoundLayer(cell, W, U, b)
    layer.forward(x)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        layer.forward(x)
        times.append(time.perf_counter() - t0)
    return min(times) / T, statistics.median(times) / T


HEADER = ("| cell | H | U KB | loop us/step | loop GB/s | seqcore us/step (median) "
          "| seqcore GB/s | seqcore / loop rate |\n|" + "---|" * 8)


def format_row(r):
    nbytes, loop, step = r["u_bytes"], r["loop_s"], r["step_s"]
    median = f" ({r['step_median_s'] * 1e6:.2f})" if "step_median_s" in r else ""
    return (f"| {r['cell']} | {r['H']} | {nbytes // 1024} | {loop * 1e6:.2f} "
            f"| {nbytes / loop / 1e9:.1f} | {step * 1e6:.2f}{median} "
            f"| {nbytes / step / 1e9:.1f} | {loop / step:.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 384],
                        help="hidden sizes H (multiples of 16)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "bandwidth"))
    args = parser.parse_args(argv)
    seqcore.set_num_threads(1)
    title = f"# seqcore {seqcore.__version__}, SIMD {seqcore.config()['simd']}, 1 thread"
    print(title + "\n" + HEADER)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        exe = build_loop(workdir)
        for cell, G in (("lstm", 4), ("gru", 3)):
            for H in args.sizes:
                loop = float(subprocess.run([exe, str(H), str(G)], capture_output=True,
                                            text=True).stdout)
                best, median = seqcore_step(cell, H)
                rows.append(dict(cell=cell, H=H, u_bytes=H * G * H * 4, loop_s=loop,
                                 step_s=best, step_median_s=median))
                print(format_row(rows[-1]), flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"simd": seqcore.config()["simd"], "rows": rows}, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(title + "\n" + HEADER + "\n" + "\n".join(map(format_row, rows)) + "\n")


if __name__ == "__main__":
    sys.exit(main())
