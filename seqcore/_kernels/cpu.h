/* What the CPU offers, asked the same way GCC's target_clones dispatcher asks, so that
 * `seqcore info` reports the path our pointwise loops actually take. */
#ifndef SEQCORE_CPU_H
#define SEQCORE_CPU_H

static const char *seqcore_simd_level(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512f";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2+fma";
    return "sse2";
#else
    return "baseline";
#endif
}

#endif
