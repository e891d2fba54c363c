/* Fixed-point sums: independent of grouping and order, never overflowing, and close to the exact
 * sum. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nndl/fixed.h"
#include "nndl/rng.h"

#define T 8   /* terms (chunks) */
#define N 257 /* elements per term */

static void terms(float x[T][N], uint64_t seed, float scale)
{
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) { /* magnitudes over ~12 decades, both signs */
            uint32_t w[4];
            nndl_rng_block(seed, 9, (uint32_t)t, (uint32_t)i, w);
            double u = (w[0] + 0.5) / 4294967296.0, e = -12.0 * (w[1] / 4294967296.0);
            x[t][i] = (float)((w[2] & 1 ? -1 : 1) * scale * u * pow(10.0, e));
        }
}

static int exponent_for(float x[T][N])
{
    float m = 0;
    for (int t = 0; t < T; t++) m = fmaxf(m, nndl_max_abs(x[t], N));
    return nndl_fixed_exponent(m, T);
}

Test(fixed, any_grouping_any_order_same_bits)
{
    static float x[T][N];
    terms(x, 1, 3.0f);
    int k = exponent_for(x);
    float ref[N];
    /* T terms over P "ranks": contiguous groups, ranks' sums in reverse */
    for (int P = 1; P <= T; P++) {
        int64_t total[N] = {0};
        for (int r = P - 1; r >= 0; r--) {
            int64_t part[N] = {0};
            for (int t = r * T / P; t < (r + 1) * T / P; t++) nndl_fixed_add(part, x[t], N, k);
            for (int i = 0; i < N; i++) total[i] += part[i];
        }
        float out[N];
        nndl_fixed_read(out, total, N, k);
        if (P == 1) memcpy(ref, out, sizeof ref);
        cr_assert(eq(int, memcmp(out, ref, sizeof ref), 0), "P = %d gives other bits", P);
    }
    /* while float sums in two orders do differ on these terms (so the test means something) */
    int differ = 0;
    for (int i = 0; i < N; i++) {
        float a = 0, b = 0;
        for (int t = 0; t < T; t++) a += x[t][i];
        for (int t = T - 1; t >= 0; t--) b += x[t][i];
        differ += a != b;
    }
    cr_expect(differ > 0, "float sums in two orders agreed everywhere");
}

Test(fixed, close_to_the_exact_sum)
{
    static float x[T][N];
    terms(x, 2, 1e3f);
    int k = exponent_for(x);
    int64_t acc[N] = {0};
    for (int t = 0; t < T; t++) nndl_fixed_add(acc, x[t], N, k);
    float out[N];
    nndl_fixed_read(out, acc, N, k);
    float m = 0;
    for (int t = 0; t < T; t++) m = fmaxf(m, nndl_max_abs(x[t], N));
    for (int i = 0; i < N; i++) {
        long double exact = 0;
        for (int t = 0; t < T; t++) exact += x[t][i];
        /* one float rounding of the exact sum, plus the fixed-point rounding (<= T * 2^-(k+1)) */
        double tol = fabs((double)exact) * 0x1p-23 + T * ldexp(1.0, -k - 1) * 2;
        cr_assert(fabs((double)(out[i] - exact)) <= tol, "element %d: %.9g vs exact %.9Lg (max %g)",
                  i, out[i], exact, m);
    }
}

Test(fixed, extremes_do_not_overflow)
{
    static float x[T][N];
    for (int t = 0; t < T; t++) /* the largest floats, all alike */
        for (int i = 0; i < N; i++) x[t][i] = i % 2 ? 3.4e38f : -3.4e38f;
    int k = exponent_for(x);
    int64_t acc[N] = {0};
    for (int t = 0; t < T; t++) nndl_fixed_add(acc, x[t], N, k);
    float out[N];
    nndl_fixed_read(out, acc, N, k);
    /* float, not int64 */
    cr_expect(isinf(out[1]) && out[1] > 0, "8 x 3.4e38 = 2.7e39: beyond float, +inf: %g", out[1]);
    cr_expect(acc[1] > 0 && acc[0] < 0, "the integers kept their signs");
    /* tiny terms and zero */
    cr_expect(eq(int, nndl_fixed_exponent(0.0f, T), 0));
    float tiny[1] = {1e-40f};
    int64_t a1[1] = {0};
    int kt = nndl_fixed_exponent(1e-40f, 1);
    nndl_fixed_add(a1, tiny, 1, kt);
    nndl_fixed_read(tiny, a1, 1, kt);
    cr_expect(eq(flt, tiny[0], 1e-40f), "a subnormal term comes back exactly");
}
