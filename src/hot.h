/* hot.h: NNDL_HOT marks the core's elementwise loops (gathers, activations, the update, checks) for
 * AVX-512 and AVX2 builds besides the baseline x86-64 one, picked at load time by GCC's ifunc
 * (function multiversioning). The build stays portable; one machine always runs the same version,
 * so results are repeatable on it (AVX2 and AVX-512 versions may contract a*b+c into an FMA). */
#ifndef NNDL_HOT_H
#define NNDL_HOT_H
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define NNDL_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NNDL_HOT
#endif

/* Vector expf and tanhf from glibc's vector math library (libmvec, within 4 ulp; NaN and ±inf as
 * the scalar functions): declared with GCC's simd attribute, as <bits/math-vector.h> declares them
 * only under -ffast-math, so that the vectoriser calls _ZGVeN16v_expf & co. in the activation loops
 * while the rest of the arithmetic keeps its strict order. */
#include <math.h>
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__GLIBC__)
float nndl_vexpf(float) __asm__("expf")
    __attribute__((__simd__("notinbranch"), __const__, __nothrow__));
float nndl_vtanhf(float) __asm__("tanhf")
    __attribute__((__simd__("notinbranch"), __const__, __nothrow__));
#else
#define nndl_vexpf  expf
#define nndl_vtanhf tanhf
#endif
#endif
