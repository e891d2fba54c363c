/* hot.h: NNDL_HOT marks the core's elementwise loops (gathers, activations, the update, checks) for
 * AVX-512 and AVX2 builds besides the baseline x86-64 one, picked at load time by GCC's ifunc
 * (function multiversioning). The build stays portable; one machine always runs the same version,
 * so results are repeatable on it (AVX2 and AVX-512 versions may contract a*b+c into an FMA). */
#ifndef NNDL_HOT_H
#define NNDL_HOT_H
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define NNDL_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NNDL_HOT
#endif
#endif
