/* The counter-based RNG: repeatable, seed-sensitive, the right distributions. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>

#include "nndl/rng.h"

Test(rng, same_coordinates_same_values)
{
    uint32_t a[4], b[4], c[4];
    nndl_rng_block(42, 1, 2, 3, a);
    nndl_rng_block(42, 1, 2, 3, b);
    nndl_rng_block(43, 1, 2, 3, c);
    for (int i = 0; i < 4; i++) cr_expect(eq(u32, a[i], b[i]));
    cr_expect(a[0] != c[0] || a[1] != c[1], "another seed gives other values");
    nndl_rng_block(42, 1, 2, 4, c);
    cr_expect(a[0] != c[0] || a[1] != c[1], "another counter gives other values");
}

Test(rng, philox_known_answer)
{
    /* Random123's kat_vectors: philox4x32 10 rounds, counter and key all zero */
    uint32_t w[4];
    nndl_rng_block(0, 0, 0, 0, w);
    cr_expect(eq(u32, w[0], 0x6627e8d5u));
    cr_expect(eq(u32, w[1], 0xe169c58du));
    cr_expect(eq(u32, w[2], 0xbc57ac4cu));
    cr_expect(eq(u32, w[3], 0x9b00dbd8u));
}

Test(rng, uniform_and_normal_moments)
{
    double s = 0, s2 = 0, zs = 0, zs2 = 0, umin = 1, umax = 0;
    int n = 200000;
    for (int i = 0; i < n; i += 2) {
        double u[2], z[2];
        nndl_rng_uniform2(7, 1, 0, (uint64_t)i, u);
        nndl_rng_normal2(7, 2, 0, (uint64_t)i, z);
        for (int k = 0; k < 2; k++) {
            s += u[k];
            s2 += u[k] * u[k];
            zs += z[k];
            zs2 += z[k] * z[k];
            umin = fmin(umin, u[k]);
            umax = fmax(umax, u[k]);
        }
    }
    cr_expect(ge(dbl, umin, 0.0));
    cr_expect(lt(dbl, umax, 1.0));
    cr_expect(lt(dbl, fabs(s / n - 0.5), 0.005), "uniform mean %g", s / n);
    cr_expect(lt(dbl, fabs(s2 / n - s / n * s / n - 1.0 / 12), 0.002), "uniform variance");
    cr_expect(lt(dbl, fabs(zs / n), 0.01), "normal mean %g", zs / n);
    cr_expect(lt(dbl, fabs(zs2 / n - 1.0), 0.015), "normal variance %g", zs2 / n);
}

Test(rng, permutation_is_a_repeatable_permutation)
{
    int n = 1000, *p = malloc(sizeof *p * n), *q = malloc(sizeof *q * n),
        *seen = calloc(n, sizeof *seen);
    nndl_rng_permutation(5, 2, 1, p, n);
    nndl_rng_permutation(5, 2, 1, q, n);
    int fixed = 0, differs = 0;
    for (int i = 0; i < n; i++) {
        seen[p[i]]++;
        fixed += p[i] == i;
        cr_expect(eq(int, p[i], q[i]));
    }
    for (int i = 0; i < n; i++) cr_expect(eq(int, seen[i], 1));
    cr_expect(lt(int, fixed, 10), "a shuffle leaves few items in place (%d)", fixed);
    nndl_rng_permutation(5, 2, 2, q, n); /* next epoch */
    for (int i = 0; i < n; i++) differs += p[i] != q[i];
    cr_expect(gt(int, differs, 900));
    free(p);
    free(q);
    free(seen);
}
