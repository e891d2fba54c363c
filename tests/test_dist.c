/* Shard arithmetic: for every batch size and rank count, the shards cover the batch exactly once
 * and their sizes differ by at most one (P > B leaves empty shards). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "nndl/dist.h"

Test(dist, shards_cover_the_batch)
{
    for (int B = 0; B <= 130; B++)
        for (int P = 1; P <= 9; P++) {
            int next = 0, lo = B, hi = 0;
            for (int r = 0; r < P; r++) {
                int first, len;
                nndl_dist_shard(B, P, r, &first, &len);
                cr_assert(eq(int, first, next), "B=%d P=%d r=%d: shard starts at %d, expected %d",
                          B, P, r, first, next);
                next = first + len;
                lo = len < lo ? len : lo;
                hi = len > hi ? len : hi;
            }
            cr_assert(eq(int, next, B), "B=%d P=%d: shards end at %d", B, P, next);
            cr_assert(le(int, hi - lo, 1), "B=%d P=%d: shard sizes %d..%d", B, P, lo, hi);
        }
}
