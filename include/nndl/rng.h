/* nndl/rng.h: the counter-based random numbers of nndl (Random123 Philox4x32-10).
 *
 * Every random value is a pure function of (seed, stream, sub, counter): no generator state is
 * carried from one draw to the next. So a value can be recomputed anywhere (any rank, after a
 * resume) from its coordinates alone, which is what makes -np 1 and -np P draw the same
 * permutation, dropout masks and augmentations. Streams keep the uses apart.
 */
#ifndef NNDL_RNG_H
#define NNDL_RNG_H

#include <stddef.h>
#include <stdint.h>

enum {
    NNDL_STREAM_INIT = 1,  /* sub = layer, counter = element pair */
    NNDL_STREAM_PERM = 2,  /* sub = epoch, counter = Fisher-Yates position */
    NNDL_STREAM_SPLIT = 3, /* sub = 0, random validation split */
    NNDL_STREAM_DROPOUT = 4,
    NNDL_STREAM_AUGMENT = 5,
    NNDL_STREAM_PROBE = 6
};

/* Four 32-bit words from Philox4x32-10 with key = seed and counter = (counter, sub, stream). */
void nndl_rng_block(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t counter,
                    uint32_t out[4]);

/* Two uniform doubles in [0, 1) with 53 random bits each, from one block. */
void nndl_rng_uniform2(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t counter, double u[2]);

/* Two independent N(0,1) values from one block (Box-Muller). */
void nndl_rng_normal2(uint64_t seed, uint32_t stream, uint32_t sub, uint64_t counter, double z[2]);

/* perm[0..n) = a uniformly random permutation of 0..n-1 (Fisher-Yates), a function of
 * (seed, stream, sub) only. */
void nndl_rng_permutation(uint64_t seed, uint32_t stream, uint32_t sub, int *perm, int n);

#endif
