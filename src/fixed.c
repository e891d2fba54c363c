/* fixed.c: exact order-independent sums through int64 fixed point (see nndl/fixed.h). */
#include "nndl/fixed.h"
#include "hot.h"

#include <math.h>
#include <string.h>

int nndl_fixed_exponent(float max_abs, long n_terms)
{
    if (!(max_abs > 0.0f)) return 0; /* all terms are zero: any exponent is exact */
    int e, c = 0;
    frexp((double)max_abs, &e); /* max_abs = f · 2^e, 0.5 <= f < 1: max_abs < 2^e */
    while (c < 62 && (1L << c) < n_terms) c++;
    return (62 - c < 50 ? 62 - c : 50) - e;
}

/* the hot loops also get AVX2 and AVX-512 builds (hot.h); integer and exact double operations give
 * the same bits on every path */
#define HOT NNDL_HOT

HOT void nndl_fixed_add(int64_t *acc, const float *x, size_t n, int k)
{
    /* |x·2^k| < 2^50: adding 1.5·2^52 leaves the integer part, rounded to nearest-even, in the low
     * mantissa bits (the classic magic-number conversion), with no int conversion instruction, so
     * the loop vectorises on any x86-64 */
    /* k in about [-190, 200]: s is a normal double */
    const double s = ldexp(1.0, k), magic = 0x1.8p52;
    int64_t mbits;
    memcpy(&mbits, &magic, sizeof mbits);
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i] * s + magic;
        int64_t b;
        memcpy(&b, &v, sizeof b);
        acc[i] += b - mbits;
    }
}

HOT void nndl_fixed_read(float *out, const int64_t *acc, size_t n, int k)
{
    double s = ldexp(1.0, -k);
    for (size_t i = 0; i < n; i++) out[i] = (float)((double)acc[i] * s);
}

HOT float nndl_max_abs(const float *x, size_t n)
{
    /* finite non-negative floats order like their bit patterns: an integer max that vectorises */
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t b;
        memcpy(&b, x + i, sizeof b);
        b &= 0x7fffffff;
        m = b > m ? b : m;
    }
    float f;
    memcpy(&f, &m, sizeof f);
    return f;
}
