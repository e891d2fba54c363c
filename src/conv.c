/* conv.c: patches, their adjoint, and max-pooling of conv layers (see conv.h). */
#include "conv.h"

#include <string.h>

#include "hot.h"

NNDL_HOT void nndl_im2col(const nndl_layer *L, const float *in, int n, float *col)
{
    const int k = L->k, H = L->h, Wd = L->wd, ho = L->ho, wo = L->wo, hw = H * Wd;
    for (int s = 0; s < n; s++) {
        const float *x = in + (size_t)s * L->c * hw;
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                float *row = col + ((size_t)s * L->pos + (size_t)oy * wo + ox) * L->n_in;
                for (int c = 0; c < L->c; c++)
                    for (int ky = 0; ky < k; ky++) {
                        const float *src = x + (size_t)c * hw + (size_t)(oy + ky) * Wd + ox;
                        if (k == 5) /* the book's kernels: a copy of known width */
                            memcpy(row, src, 5 * sizeof *row);
                        else
                            memcpy(row, src, (size_t)k * sizeof *row);
                        row += k;
                    }
            }
    }
}

NNDL_HOT void nndl_col2im(const nndl_layer *L, const float *dcol, int n, float *g)
{
    const int k = L->k, H = L->h, Wd = L->wd, ho = L->ho, wo = L->wo, hw = H * Wd;
    memset(g, 0, sizeof *g * (size_t)n * L->c * hw);
    for (int s = 0; s < n; s++) {
        float *x = g + (size_t)s * L->c * hw;
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                const float *row = dcol + ((size_t)s * L->pos + (size_t)oy * wo + ox) * L->n_in;
                for (int c = 0; c < L->c; c++)
                    for (int ky = 0; ky < k; ky++) {
                        float *dst = x + (size_t)c * hw + (size_t)(oy + ky) * Wd + ox;
                        for (int kx = 0; kx < k; kx++) dst[kx] += *row++;
                    }
            }
    }
}

NNDL_HOT void nndl_pool_forward(const nndl_layer *L, const float *z, int n, float *out,
                                int32_t *arg)
{
    const int F = L->n_out, p = L->pool, wo = L->wo, hp = L->ho / p, wp = L->wo / p;
    const int cells = hp * wp;
    float best[NNDL_MAX_FILTERS];
    int32_t where[NNDL_MAX_FILTERS];
    for (int s = 0; s < n; s++) {
        const float *zs = z + (size_t)s * L->pos * F;
        float *os = out + (size_t)s * F * cells;
        int32_t *as = arg + (size_t)s * F * cells;
        for (int cell = 0; cell < cells; cell++) {
            int py = cell / wp, px = cell % wp, first = py * p * wo + px * p;
            memcpy(best, zs + (size_t)first * F, sizeof *best * F);
            for (int f = 0; f < F; f++) where[f] = first;
            for (int dy = 0; dy < p; dy++)
                for (int dx = 0; dx < p; dx++) {
                    int q = first + dy * wo + dx;
                    const float *zq = zs + (size_t)q * F;
                    for (int f = 0; f < F; f++) { /* branch-free: the compiler vectorises it */
                        int gt = zq[f] > best[f];
                        best[f] = gt ? zq[f] : best[f];
                        where[f] = gt ? q : where[f];
                    }
                }
            for (int f = 0; f < F; f++) { /* to channel-major order, with the bias */
                os[(size_t)f * cells + cell] = best[f] + L->b[f];
                as[(size_t)f * cells + cell] = where[f];
            }
        }
    }
}

NNDL_HOT void nndl_pool_backward(const nndl_layer *L, const float *dz, const int32_t *arg, int n,
                                 float *D)
{
    const int F = L->n_out, cells = L->n_outw / F;
    memset(D, 0, sizeof *D * (size_t)n * L->pos * F);
    for (int s = 0; s < n; s++) {
        const float *ds = dz + (size_t)s * F * cells;
        const int32_t *as = arg + (size_t)s * F * cells;
        float *Ds = D + (size_t)s * L->pos * F;
        for (int f = 0; f < F; f++)
            for (int c = 0; c < cells; c++)
                Ds[(size_t)as[(size_t)f * cells + c] * F + f] = ds[(size_t)f * cells + c];
    }
}
