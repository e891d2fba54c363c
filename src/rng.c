/* rng.c: Philox4x32-10 from Random123, and the few distributions nndl needs (see nndl/rng.h). */
#include "nndl/rng.h"

#include <Random123/philox.h>
#include <math.h>

void nndl_rng_block(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t counter, uint32_t out[4])
{
    philox4x32_ctr_t c = {{(uint32_t)counter, (uint32_t)(counter >> 32), sub, stream}};
    philox4x32_key_t k = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    philox4x32_ctr_t r = philox4x32(c, k);
    for (int i = 0; i < 4; i++) out[i] = r.v[i];
}

static double u53(uint32_t hi, uint32_t lo) /* [0, 1) */
{
    uint64_t bits = ((uint64_t)hi << 21) ^ (lo >> 11);
    return (double)(bits & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
}

void nndl_rng_uniform2(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t counter, double u[2])
{
    uint32_t w[4];
    nndl_rng_block(seed, stream, sub, counter, w);
    u[0] = u53(w[0], w[1]);
    u[1] = u53(w[2], w[3]);
}

void nndl_rng_normal2(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t counter, double z[2])
{
    double u[2];
    nndl_rng_uniform2(seed, stream, sub, counter, u);
    double r = sqrt(-2.0 * log(1.0 - u[0])); /* 1 - u in (0, 1]: log never sees 0 */
    double t = 6.283185307179586 * u[1];
    z[0] = r * cos(t);
    z[1] = r * sin(t);
}

void nndl_rng_permutation(uint64_t seed, uint32_t stream, uint32_t sub, int *perm, int n)
{
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        uint32_t w[4];
        nndl_rng_block(seed, stream, sub, (uint64_t)i, w);
        /* Multiply-shift maps 64 random bits onto [0, i]; the bias is below i / 2^64. */
        uint64_t x = ((uint64_t)w[0] << 32) | w[1];
        int j = (int)(((unsigned __int128)x * (uint64_t)(i + 1)) >> 64);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
