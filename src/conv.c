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

/* The portable col2im: each (c, ky, kx) adds Wo-wide runs into g. */
NNDL_HOT static void col2im_runs(const nndl_layer *L, const float *dcolt, int n, float *g)
{
    const int k = L->k, H = L->h, Wd = L->wd, ho = L->ho, wo = L->wo, hw = H * Wd;
    const size_t ld = (size_t)n * L->pos;
    memset(g, 0, sizeof *g * (size_t)n * L->c * hw);
    for (int s = 0; s < n; s++) {
        float *x = g + (size_t)s * L->c * hw;
        for (int i = 0; i < L->n_in; i++) { /* i = (c, ky, kx): a row of dcolᵀ */
            int c = i / (k * k), ky = i / k % k, kx = i % k;
            const float *src = dcolt + (size_t)i * ld + (size_t)s * L->pos;
            for (int oy = 0; oy < ho; oy++) {
                float *restrict dst = x + (size_t)c * hw + (size_t)(oy + ky) * Wd + kx;
                const float *restrict row = src + (size_t)oy * wo;
                for (int ox = 0; ox < wo; ox++) dst[ox] += row[ox]; /* wo wide: vectorised */
            }
        }
    }
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#include <immintrin.h>
#define NNDL_COL2IM_AVX512 1
/* The same sums, 16 output columns of g at a time in a register: each (ky, kx) term is a masked
 * load of its dcolᵀ run shifted by kx (masked-off lanes are not read), added in the order of
 * col2im_runs (ky, then kx, from 0), so the results are the same bits; g is written once. The
 * runs' version stores into g 5 times per element, each store partly overlapping the last one's
 * (kx shifts by one float), which stalls store-to-load forwarding. */
__attribute__((target("avx512f"))) static void col2im_avx512(const nndl_layer *L,
                                                             const float *dcolt, int n, float *g)
{
    const int k = L->k, H = L->h, Wd = L->wd, ho = L->ho, wo = L->wo, kk = k * k;
    const size_t ld = (size_t)n * L->pos;
    for (int s = 0; s < n; s++)
        for (int c = 0; c < L->c; c++)
            for (int x0 = 0; x0 < Wd; x0 += 16)
                for (int y = 0; y < H; y += 4) { /* 4 rows: 4 independent chains of adds */
                    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                                   _mm512_setzero_ps()};
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            /* lane j: the run's x0 + j - kx where 0 <= x0 + j - kx < wo */
                            int lo = kx - x0, hi = lo + wo; /* the lanes [lo, hi) */
                            lo = lo < 0 ? 0 : lo;
                            hi = hi > 16 ? 16 : hi;
                            if (hi <= lo) continue;
                            __mmask16 m = (__mmask16)(((1u << (hi - lo)) - 1u) << lo);
                            const float *run = dcolt + (size_t)(c * kk + ky * k + kx) * ld +
                                               (size_t)s * L->pos + x0 - kx;
                            for (int r = 0; r < 4; r++) {
                                int oy = y + r - ky;
                                if (oy >= 0 && oy < ho)
                                    a[r] = _mm512_add_ps(
                                        a[r], _mm512_maskz_loadu_ps(m, run + (size_t)oy * wo));
                            }
                        }
                    int w = Wd - x0 < 16 ? Wd - x0 : 16;
                    float *dst = g + ((size_t)s * L->c + (size_t)c) * H * Wd + (size_t)y * Wd + x0;
                    for (int r = 0; r < 4 && y + r < H; r++)
                        _mm512_mask_storeu_ps(dst + (size_t)r * Wd, (__mmask16)((1u << w) - 1u),
                                              a[r]);
                }
}
#endif

void nndl_col2im(const nndl_layer *L, const float *dcolt, int n, float *g)
{
#ifdef NNDL_COL2IM_AVX512
    if (__builtin_cpu_supports("avx512f")) {
        col2im_avx512(L, dcolt, n, g);
        return;
    }
#endif
    col2im_runs(L, dcolt, n, g);
}

/* One pool cell: m[f] = the max over its p x p positions (from position `first`), w[f] = where. */
static inline void pool_cell(const float *restrict zs, int F, int p, int wo, int first,
                             float *restrict m, int32_t *restrict w)
{
    const float *restrict z0 = zs + (size_t)first * F;
    if (p == 2) { /* the book's pooling: straight-line selects, no stored state in the loop */
        const float *restrict z1 = z0 + F, *restrict z2 = z0 + (size_t)wo * F,
                              *restrict z3 = z2 + F;
        for (int f = 0; f < F; f++) {
            int top = z1[f] > z0[f], bottom = z3[f] > z2[f];
            float mt = top ? z1[f] : z0[f], mb = bottom ? z3[f] : z2[f];
            int32_t wt = first + top, wb = first + wo + bottom;
            int low = mb > mt; /* ties keep the first in row order */
            m[f] = low ? mb : mt;
            w[f] = low ? wb : wt;
        }
        return;
    }
    for (int f = 0; f < F; f++) {
        m[f] = z0[f];
        w[f] = first;
    }
    for (int dy = 0; dy < p; dy++)
        for (int dx = dy == 0; dx < p; dx++) {
            int q = first + dy * wo + dx;
            const float *restrict zq = zs + (size_t)q * F;
            for (int f = 0; f < F; f++) { /* branch-free: the compiler vectorises it */
                int gt = zq[f] > m[f];
                m[f] = gt ? zq[f] : m[f];
                w[f] = gt ? q : w[f];
            }
        }
}

NNDL_HOT void nndl_pool_forward(const nndl_layer *L, const float *z, int n, float *out,
                                int32_t *arg)
{
    const int F = L->n_out, p = L->pool, wo = L->wo, hp = L->ho / p, wp = L->wo / p;
    const int cells = hp * wp;
    float m[NNDL_MAX_FILTERS];
    int32_t w[NNDL_MAX_FILTERS];
    for (int s = 0; s < n; s++) {
        const float *zs = z + (size_t)s * L->pos * F;
        float *os = out + (size_t)s * F * cells;
        int32_t *as = arg + (size_t)s * F * cells;
        for (int cell = 0; cell < cells; cell++) {
            int py = cell / wp, px = cell % wp;
            pool_cell(zs, F, p, wo, py * p * wo + px * p, m, w);
            for (int f = 0; f < F; f++) { /* to channel-major order, with the bias */
                os[(size_t)f * cells + cell] = m[f] + L->b[f];
                as[(size_t)f * cells + cell] = w[f];
            }
        }
    }
}

NNDL_HOT void nndl_pool_backward(const nndl_layer *L, const float *dz, const int32_t *arg, int n,
                                 float *D)
{
    const int F = L->n_out, p = L->pool, wo = L->wo, wp = wo / p, cells = L->n_outw / F;
    float g[NNDL_MAX_FILTERS];
    int32_t at[NNDL_MAX_FILTERS];
    for (int s = 0; s < n; s++) {
        const float *ds = dz + (size_t)s * F * cells;
        const int32_t *as = arg + (size_t)s * F * cells;
        float *Ds = D + (size_t)s * L->pos * F;
        for (int cell = 0; cell < cells; cell++) {
            int first = cell / wp * p * wo + cell % wp * p;
            for (int f = 0; f < F; f++) { /* this cell's delta and argmax, filter-contiguous */
                g[f] = ds[(size_t)f * cells + cell];
                at[f] = as[(size_t)f * cells + cell];
            }
            /* every position of the cell written once: the delta at the argmax, 0 elsewhere */
            for (int dy = 0; dy < p; dy++)
                for (int dx = 0; dx < p; dx++) {
                    int q = first + dy * wo + dx;
                    float *restrict Dq = Ds + (size_t)q * F;
                    for (int f = 0; f < F; f++) Dq[f] = at[f] == q ? g[f] : 0.0f;
                }
        }
    }
}
