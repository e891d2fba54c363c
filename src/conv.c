/* conv.c: conv layers' direct kernels (AVX-512), patches and their adjoint, and max-pooling (see
 * conv.h). */
#include "conv.h"

#include <string.h>

#include "hot.h"

#define DIRECT_POS 8  /* direct kernels: output positions per register block of the forward */
#define DIRECT_F   48 /* and filters per register block (3 vectors) */

/* The portable im2col: k-wide runs of the input copied into each patch row. */
NNDL_HOT static void im2col_runs(const nndl_layer *L, const float *in, int n, float *col)
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
#define NNDL_CONV_AVX512 1
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
    for (int c = 0; c < L->c; c++)  /* channel outer: its k² rows of dcolᵀ stay in cache */
        for (int s = 0; s < n; s++) /* while the samples go by, each row read in order */
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

/* im2col with one masked load and one store per k-wide run (memcpy of 5 floats takes two of
 * each): for k <= 8 an 8-float store whose tail the next run overwrites (masked where it would
 * reach past the row); the same copies. */
__attribute__((target("avx512f"))) static void im2col_avx512(const nndl_layer *L, const float *in,
                                                             int n, float *col)
{
    const int k = L->k, H = L->h, Wd = L->wd, ho = L->ho, wo = L->wo, hw = H * Wd;
    const int runs = L->c * k, wide = k <= 8; /* runs per patch row */
    const __mmask16 m = (__mmask16)((1u << k) - 1u);
    for (int s = 0; s < n; s++) {
        const float *x = in + (size_t)s * L->c * hw;
        float *row = col + (size_t)s * L->pos * L->n_in;
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++, row += L->n_in) {
                float *dst = row;
                for (int c = 0; c < L->c; c++) {
                    const float *src = x + (size_t)c * hw + (size_t)oy * Wd + ox;
                    for (int ky = 0; ky < k; ky++, dst += k, src += Wd) {
                        __m512 v = _mm512_maskz_loadu_ps(m, src);
                        if (wide && dst + 8 <= row + (size_t)runs * k)
                            _mm256_storeu_ps(dst, _mm512_castps512_ps256(v));
                        else
                            _mm512_mask_storeu_ps(dst, m, v);
                    }
                }
            }
    }
}

/* 2 x 2 pooling (the book's), 16 filters at a time in a register: the same compares as pool_cell
 * (`>`, ties and NaNs keep the first in row order), so the same maxima and argmaxes. Cells go in
 * blocks of 16 through a tile [16 cells x F], whose columns are gathered into the NCHW output
 * (the portable loop writes 2F scattered floats per cell). */
#define TILE_CELLS 16
#define TILE_MAX_F 256
__attribute__((target("avx512f"))) static void
pool2_forward_avx512(const nndl_layer *L, const float *z, int n, float *out, int32_t *arg)
{
    const int F = L->n_out, wo = L->wo, wp = wo / 2, cells = L->ho / 2 * wp;
    float mt[TILE_CELLS * TILE_MAX_F];
    int32_t wt[TILE_CELLS * TILE_MAX_F];
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(F));
    for (int s = 0; s < n; s++) {
        const float *zs = z + (size_t)s * L->pos * F;
        float *os = out + (size_t)s * F * cells;
        int32_t *as = arg + (size_t)s * F * cells;
        for (int c0 = 0; c0 < cells; c0 += TILE_CELLS) {
            int nc = cells - c0 < TILE_CELLS ? cells - c0 : TILE_CELLS;
            for (int i = 0; i < nc; i++) {
                int cell = c0 + i, first = cell / wp * 2 * wo + cell % wp * 2;
                const float *z0 = zs + (size_t)first * F, *z2 = z0 + (size_t)wo * F;
                for (int f = 0; f < F; f += 16) {
                    __mmask16 k = F - f < 16 ? (__mmask16)((1u << (F - f)) - 1u) : 0xffff;
                    __m512 a = _mm512_maskz_loadu_ps(k, z0 + f),
                           b = _mm512_maskz_loadu_ps(k, z0 + F + f);
                    __m512 c = _mm512_maskz_loadu_ps(k, z2 + f),
                           d = _mm512_maskz_loadu_ps(k, z2 + F + f);
                    __mmask16 top = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ);
                    __mmask16 bottom = _mm512_cmp_ps_mask(d, c, _CMP_GT_OQ);
                    __m512 mtop = _mm512_mask_blend_ps(top, a, b),
                           mbot = _mm512_mask_blend_ps(bottom, c, d);
                    __m512i wtop = _mm512_mask_blend_epi32(top, _mm512_set1_epi32(first),
                                                           _mm512_set1_epi32(first + 1));
                    __m512i wbot = _mm512_mask_blend_epi32(bottom, _mm512_set1_epi32(first + wo),
                                                           _mm512_set1_epi32(first + wo + 1));
                    __mmask16 low = _mm512_cmp_ps_mask(mbot, mtop, _CMP_GT_OQ);
                    _mm512_mask_storeu_ps(mt + i * F + f, k, _mm512_mask_blend_ps(low, mtop, mbot));
                    _mm512_mask_storeu_epi32(wt + i * F + f, k,
                                             _mm512_mask_blend_epi32(low, wtop, wbot));
                }
            }
            __mmask16 kc = (__mmask16)((1u << nc) - 1u);
            for (int f = 0; f < F; f++) { /* column f of the tile: 16 cells of channel f */
                __m512 m = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), kc, idx, mt + f, 4);
                __m512i w = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), kc, idx, wt + f, 4);
                _mm512_mask_storeu_ps(os + (size_t)f * cells + c0, kc,
                                      _mm512_add_ps(m, _mm512_set1_ps(L->b[f])));
                _mm512_mask_storeu_epi32(as + (size_t)f * cells + c0, kc, w);
            }
        }
    }
}

/* The adjoint of pool2_forward_avx512: per cell, 16 filters' deltas and argmaxes gathered from
 * the NCHW arrays, each of the cell's 4 positions written once (the delta where it was the max). */
__attribute__((target("avx512f"))) static void
pool2_backward_avx512(const nndl_layer *L, const float *dz, const int32_t *arg, int n, float *D)
{
    const int F = L->n_out, wo = L->wo, wp = wo / 2, cells = L->n_outw / F;
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(cells));
    for (int s = 0; s < n; s++) {
        const float *ds = dz + (size_t)s * F * cells;
        const int32_t *as = arg + (size_t)s * F * cells;
        float *Ds = D + (size_t)s * L->pos * F;
        for (int cell = 0; cell < cells; cell++) {
            int first = cell / wp * 2 * wo + cell % wp * 2;
            for (int f = 0; f < F; f += 16) {
                __mmask16 k = F - f < 16 ? (__mmask16)((1u << (F - f)) - 1u) : 0xffff;
                const float *dsf = ds + (size_t)f * cells + cell;
                __m512 g = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, dsf, 4);
                __m512i at = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, idx,
                                                         as + (size_t)f * cells + cell, 4);
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int q = first + dy * wo + dx;
                        __mmask16 hit = _mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(q));
                        _mm512_mask_storeu_ps(Ds + (size_t)q * F + f, k,
                                              _mm512_maskz_mov_ps(hit, g));
                    }
            }
        }
    }
}

/* ---- direct convolution: the GEMMs of the patches without forming them ----
 * The forward keeps DIRECT_POS output positions of a row x up to DIRECT_F filters in registers and
 * runs over (c, ky, kx) once, each input value broadcast, each weight vector loaded once per block:
 * z[p][f] = Σ_t x(p, t)·W[f][t] in the order of t, one FMA each. The weight gradient keeps k taps
 * (kx) x up to DIRECT_F filters of one (c, ky) in registers and runs over the rows in order:
 * dW[f][t] = Σ_rows d[row][f]·x(row, t). No patches are written or packed (im2col and the GEMMs'
 * packing took a third of a conv step). */

__attribute__((target("avx512f"), always_inline)) static inline void
fwd_block(const nndl_layer *L, const float *x, const float *wt, int Fp, const int nv, const int np,
          __mmask16 last, float *z)
{
    const int k = L->k, hw = L->h * L->wd;
    __m512 acc[DIRECT_POS][3];
    for (int i = 0; i < np; i++)
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_ps();
    for (int c = 0; c < L->c; c++)
        for (int ky = 0; ky < k; ky++) {
            const float *xr = x + (size_t)c * hw + (size_t)ky * L->wd;
            for (int kx = 0; kx < k; kx++, wt += Fp) {
                __m512 wv[3];
                for (int j = 0; j < nv; j++) wv[j] = _mm512_loadu_ps(wt + 16 * j);
                for (int i = 0; i < np; i++) {
                    __m512 xb = _mm512_set1_ps(xr[kx + i]);
                    for (int j = 0; j < nv; j++) acc[i][j] = _mm512_fmadd_ps(xb, wv[j], acc[i][j]);
                }
            }
        }
    for (int i = 0; i < np; i++)
        for (int j = 0; j < nv; j++)
            _mm512_mask_storeu_ps(z + (size_t)i * L->n_out + 16 * j,
                                  j == nv - 1 ? last : (__mmask16)0xffff, acc[i][j]);
}

#define FWD_NV(NP)                                                                                 \
    do {                                                                                           \
        const float *xo = x + ox;                                                                  \
        float *zo = zr + (size_t)ox * F;                                                           \
        if (nv == 1)                                                                               \
            fwd_block(L, xo, wt + f0, Fp, 1, NP, last, zo);                                        \
        else if (nv == 2)                                                                          \
            fwd_block(L, xo, wt + f0, Fp, 2, NP, last, zo);                                        \
        else                                                                                       \
            fwd_block(L, xo, wt + f0, Fp, 3, NP, last, zo);                                        \
    } while (0)

__attribute__((target("avx512f"))) static void
conv_forward_avx512(const nndl_layer *L, const float *in, int n, const float *wt, float *z)
{
    const int F = L->n_out, Fp = (F + 15) / 16 * 16, hw = L->h * L->wd;
    for (int s = 0; s < n; s++)
        for (int oy = 0; oy < L->ho; oy++)
            for (int f0 = 0; f0 < F; f0 += DIRECT_F) {
                int nf = F - f0 < DIRECT_F ? F - f0 : DIRECT_F, nv = (nf + 15) / 16;
                __mmask16 last = (__mmask16)(0xffffu >> (16 * nv - nf));
                const float *x = in + (size_t)s * L->c * hw + (size_t)oy * L->wd;
                float *zr = z + ((size_t)s * L->pos + (size_t)oy * L->wo) * F + f0;
                int ox = 0;
                for (; ox + DIRECT_POS <= L->wo; ox += DIRECT_POS) FWD_NV(DIRECT_POS);
                for (; ox < L->wo; ox++) FWD_NV(1);
            }
}

__attribute__((target("avx512f"), always_inline)) static inline void
wgrad_block(const nndl_layer *L, const float *in, const float *d, int n, const int nv, const int K,
            __mmask16 last, float *dwt, const int bias, float *db)
{
    const int hw = L->h * L->wd, F = L->n_out;
    __m512 acc[8][3], bacc[3];
    for (int j = 0; j < nv; j++) bacc[j] = _mm512_setzero_ps();
    for (int kx = 0; kx < K; kx++)
        for (int j = 0; j < nv; j++) acc[kx][j] = _mm512_setzero_ps();
    for (int s = 0; s < n; s++) {
        const float *x = in + (size_t)s * L->c * hw;
        const float *ds = d + (size_t)s * L->pos * F;
        for (int oy = 0; oy < L->ho; oy++, x += L->wd)
            for (int ox = 0; ox < L->wo; ox++, ds += F) {
                __m512 dv[3];
                for (int j = 0; j < nv; j++)
                    dv[j] =
                        _mm512_maskz_loadu_ps(j == nv - 1 ? last : (__mmask16)0xffff, ds + 16 * j);
                if (bias) /* the bias gradient, row after row as net_column_sums adds */
                    for (int j = 0; j < nv; j++) bacc[j] = _mm512_add_ps(bacc[j], dv[j]);
                for (int kx = 0; kx < K; kx++) {
                    __m512 xb = _mm512_set1_ps(x[ox + kx]);
                    for (int j = 0; j < nv; j++)
                        acc[kx][j] = _mm512_fmadd_ps(xb, dv[j], acc[kx][j]);
                }
            }
    }
    for (int kx = 0; kx < K; kx++)
        for (int j = 0; j < nv; j++)
            _mm512_storeu_ps(dwt + (size_t)kx * DIRECT_F + 16 * j, acc[kx][j]);
    if (bias)
        for (int j = 0; j < nv; j++)
            _mm512_mask_storeu_ps(db + 16 * j, j == nv - 1 ? last : (__mmask16)0xffff, bacc[j]);
}

#define WGRAD_NV(K, B)                                                                             \
    do {                                                                                           \
        if (nv == 1)                                                                               \
            wgrad_block(L, x, d, n, 1, K, last, t, B, db);                                         \
        else if (nv == 2)                                                                          \
            wgrad_block(L, x, d, n, 2, K, last, t, B, db);                                         \
        else                                                                                       \
            wgrad_block(L, x, d, n, 3, K, last, t, B, db);                                         \
    } while (0)
#define WGRAD_K(K)                                                                                 \
    case K:                                                                                        \
        if (db && c == 0 && ky == 0) /* the first pass over the rows also sums the biases */       \
            WGRAD_NV(K, 1);                                                                        \
        else                                                                                       \
            WGRAD_NV(K, 0);                                                                        \
        break

/* scratch [n_in x DIRECT_F]: dWᵀ of filters [f0, f0 + nf); db[0, nf) their bias gradient (NULL:
 * not wanted) */
__attribute__((target("avx512f"))) static void wgrad_avx512(const nndl_layer *L, const float *in,
                                                            const float *d, int n, int f0, int nf,
                                                            float *scratch, float *db)
{
    const int k = L->k, hw = L->h * L->wd, nv = (nf + 15) / 16;
    const __mmask16 last = (__mmask16)(0xffffu >> (16 * nv - nf));
    d += f0;
    for (int c = 0; c < L->c; c++)
        for (int ky = 0; ky < k; ky++) {
            const float *x = in + (size_t)c * hw + (size_t)ky * L->wd;
            float *t = scratch + (size_t)(c * k + ky) * k * DIRECT_F;
            switch (k) {
                WGRAD_K(1);
                WGRAD_K(2);
                WGRAD_K(3);
                WGRAD_K(4);
                WGRAD_K(5);
                WGRAD_K(6);
                WGRAD_K(7);
                WGRAD_K(8);
            }
        }
}

/* ---- a conv layer with 2 x 2 pooling over rows of 16 to 32 positions (the book's first) ----
 * Positions are the lanes: two output rows (one row of pool cells) x up to 32 columns in 4 vectors,
 * for POOL_G filters at a time, each input vector loaded once per tap and each weight broadcast.
 * The sums are those of fwd_block (one FMA per tap, in tap order), and each cell's max and argmax
 * those of pool_cell; the pooled rows are stored straight into the NCHW output, so nothing is
 * transposed and z is never written. */
#define POOL_G 5

__attribute__((target("avx512f"), always_inline)) static inline void
pooled_block(const nndl_layer *L, const float *x, const float *w, const int G, __mmask16 m1,
             float acc[POOL_G][2][2][16])
{
    const int k = L->k, hw = L->h * L->wd;
    __m512 a[2][2][POOL_G];
    for (int r = 0; r < 2; r++)
        for (int v = 0; v < 2; v++)
            for (int g = 0; g < G; g++) a[r][v][g] = _mm512_setzero_ps();
    for (int c = 0; c < L->c; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *xr = x + (size_t)c * hw + (size_t)ky * L->wd + kx;
                int t = (c * k + ky) * k + kx;
                __m512 xv[2][2];
                for (int r = 0; r < 2; r++) {
                    xv[r][0] = _mm512_loadu_ps(xr + (size_t)r * L->wd);
                    xv[r][1] = _mm512_maskz_loadu_ps(m1, xr + (size_t)r * L->wd + 16);
                }
                for (int g = 0; g < G; g++) {
                    __m512 wb = _mm512_set1_ps(w[(size_t)g * L->n_in + t]);
                    for (int r = 0; r < 2; r++)
                        for (int v = 0; v < 2; v++)
                            a[r][v][g] = _mm512_fmadd_ps(xv[r][v], wb, a[r][v][g]);
                }
            }
    for (int r = 0; r < 2; r++)
        for (int v = 0; v < 2; v++)
            for (int g = 0; g < G; g++) _mm512_storeu_ps(acc[g][r][v], a[r][v][g]);
}

/* Row py of pool cells of filter f from its two conv rows z[r][0..32): out[px] = max + b,
 * arg[px] = the position of the max within the sample (ties: the first in row order). */
__attribute__((target("avx512f"))) static void pool_row(const nndl_layer *L, float z[2][2][16],
                                                        int py, float b, float *out, int32_t *arg)
{
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const int wo = L->wo, wp = wo / 2;
    __m512 z0[2], z1[2];
    for (int r = 0; r < 2; r++) {
        __m512 lo = _mm512_loadu_ps(z[r][0]), hi = _mm512_loadu_ps(z[r][1]);
        z0[r] = _mm512_permutex2var_ps(lo, even, hi); /* columns 2px */
        z1[r] = _mm512_permutex2var_ps(lo, odd, hi);  /* columns 2px + 1 */
    }
    __m512i q0 = _mm512_add_epi32(_mm512_set1_epi32(2 * py * wo), even); /* position of 2px */
    __m512i q1 = _mm512_add_epi32(q0, _mm512_set1_epi32(wo));
    __mmask16 top = _mm512_cmp_ps_mask(z1[0], z0[0], _CMP_GT_OQ);
    __mmask16 bottom = _mm512_cmp_ps_mask(z1[1], z0[1], _CMP_GT_OQ);
    __m512 mt = _mm512_mask_blend_ps(top, z0[0], z1[0]),
           mb = _mm512_mask_blend_ps(bottom, z0[1], z1[1]);
    __m512i wt = _mm512_mask_add_epi32(q0, top, q0, _mm512_set1_epi32(1));
    __m512i wb = _mm512_mask_add_epi32(q1, bottom, q1, _mm512_set1_epi32(1));
    __mmask16 low = _mm512_cmp_ps_mask(mb, mt, _CMP_GT_OQ), keep = (__mmask16)((1u << wp) - 1u);
    _mm512_mask_storeu_ps(out, keep,
                          _mm512_add_ps(_mm512_mask_blend_ps(low, mt, mb), _mm512_set1_ps(b)));
    _mm512_mask_storeu_epi32(arg, keep, _mm512_mask_blend_epi32(low, wt, wb));
}

#define POOLED_G(G)                                                                                \
    case G: pooled_block(L, x, L->w + (size_t)f0 * L->n_in, G, m1, acc); break

__attribute__((target("avx512f"))) static void
conv_pooled_avx512(const nndl_layer *L, const float *in, int n, float *out, int32_t *arg)
{
    const int F = L->n_out, hw = L->h * L->wd, wp = L->wo / 2, cells = L->ho / 2 * wp;
    const __mmask16 m1 = (__mmask16)((1u << (L->wo - 16)) - 1u);
    float acc[POOL_G][2][2][16] = {0}; /* (only the first G filters' rows are read) */
    for (int s = 0; s < n; s++)
        for (int py = 0; py < L->ho / 2; py++) {
            const float *x = in + (size_t)s * L->c * hw + (size_t)2 * py * L->wd;
            for (int f0 = 0; f0 < F; f0 += POOL_G) {
                switch (F - f0 < POOL_G ? F - f0 : POOL_G) {
                    POOLED_G(1);
                    POOLED_G(2);
                    POOLED_G(3);
                    POOLED_G(4);
                default: pooled_block(L, x, L->w + (size_t)f0 * L->n_in, POOL_G, m1, acc);
                }
                for (int g = 0; g < POOL_G && f0 + g < F; g++) {
                    size_t o = ((size_t)s * F + (size_t)(f0 + g)) * cells + (size_t)py * wp;
                    pool_row(L, acc[g], py, L->b[f0 + g], out + o, arg + o);
                }
            }
        }
}

/* ---- the input gradient: dcolᵀ and col2im in one pass, per sample and channel ----
 * For channel c and kernel row ky, the k rows (c, ky, kx) of dcolᵀ over the sample's positions are
 * k x nvp vectors in registers: Σ_f W[f][c, ky, kx]·dᵀ[f][position] (dᵀ: the sample's delta
 * transposed, positions as lanes); each is then added into the rows of g it belongs to, one row of
 * g in a register at a time (as col2im_avx512 adds). No dcolᵀ in memory, no GEMM packing. */

__attribute__((target("avx512f"), always_inline)) static inline void
dx_rows(const nndl_layer *L, const float *dt, int posp, const float *w, const int K, const int nvp,
        float *t)
{
    __m512 acc[8][4];
    for (int kx = 0; kx < K; kx++)
        for (int v = 0; v < nvp; v++) acc[kx][v] = _mm512_setzero_ps();
    for (int f = 0; f < L->n_out; f++) {
        __m512 dv[4];
        for (int v = 0; v < nvp; v++) dv[v] = _mm512_loadu_ps(dt + (size_t)f * posp + 16 * v);
        const float *wf = w + (size_t)f * L->n_in;
        for (int kx = 0; kx < K; kx++) {
            __m512 wb = _mm512_set1_ps(wf[kx]);
            for (int v = 0; v < nvp; v++) acc[kx][v] = _mm512_fmadd_ps(wb, dv[v], acc[kx][v]);
        }
    }
    for (int kx = 0; kx < K; kx++)
        for (int v = 0; v < nvp; v++) _mm512_storeu_ps(t + (size_t)kx * posp + 16 * v, acc[kx][v]);
}

#define DX_K(K)                                                                                    \
    case K:                                                                                        \
        if (nvp == 1)                                                                              \
            dx_rows(L, dt, posp, wck, K, 1, t);                                                    \
        else if (nvp == 2)                                                                         \
            dx_rows(L, dt, posp, wck, K, 2, t);                                                    \
        else if (nvp == 3)                                                                         \
            dx_rows(L, dt, posp, wck, K, 3, t);                                                    \
        else                                                                                       \
            dx_rows(L, dt, posp, wck, K, 4, t);                                                    \
        break

__attribute__((target("avx512f"))) static void
input_grad_avx512(const nndl_layer *L, const float *d, int n, float *g, float *scratch)
{
    const int k = L->k, F = L->n_out, H = L->h, Wd = L->wd, ho = L->ho, wo = L->wo;
    const int posp = (L->pos + 15) / 16 * 16, nvp = posp / 16;
    float *dt = scratch, *t = scratch + (size_t)F * posp; /* dᵀ [F x posp], rows [k x posp] */
    for (int s = 0; s < n; s++) {
        const float *ds = d + (size_t)s * L->pos * F;
        for (int f = 0; f < F; f++)
            for (int p = 0; p < posp; p++)
                dt[(size_t)f * posp + p] = p < L->pos ? ds[(size_t)p * F + f] : 0.0f;
        for (int c = 0; c < L->c; c++) {
            float *gc = g + ((size_t)s * L->c + (size_t)c) * H * Wd;
            memset(gc, 0, sizeof *gc * (size_t)H * Wd);
            for (int ky = 0; ky < k; ky++) {
                const float *wck = L->w + (size_t)(c * k + ky) * k;
                switch (k) {
                    DX_K(1);
                    DX_K(2);
                    DX_K(3);
                    DX_K(4);
                    DX_K(5);
                    DX_K(6);
                    DX_K(7);
                    DX_K(8);
                }
                for (int x0 = 0; x0 < Wd; x0 += 16) { /* g rows += Σ_kx row kx shifted by kx */
                    int w = Wd - x0 < 16 ? Wd - x0 : 16;
                    __mmask16 mw = (__mmask16)((1u << w) - 1u), m[8];
                    for (int kx = 0; kx < k; kx++) { /* lanes [lo, hi) of run kx */
                        int lo = kx - x0 < 0 ? 0 : kx - x0,
                            hi = kx - x0 + wo > 16 ? 16 : kx - x0 + wo;
                        m[kx] = hi > lo ? (__mmask16)(((1u << (hi - lo)) - 1u) << lo) : 0;
                    }
                    for (int oy = 0; oy < ho; oy++) {
                        float *dst = gc + (size_t)(oy + ky) * Wd + x0;
                        const float *run = t + (size_t)oy * wo + x0;
                        __m512 a = _mm512_maskz_loadu_ps(mw, dst);
                        for (int kx = 0; kx < k; kx++)
                            if (m[kx])
                                a = _mm512_add_ps(
                                    a, _mm512_maskz_loadu_ps(m[kx], run + (size_t)kx * posp - kx));
                        _mm512_mask_storeu_ps(dst, mw, a);
                    }
                }
            }
        }
    }
}

static int pool2_avx512(const nndl_layer *L)
{
    return L->pool == 2 && L->n_out <= TILE_MAX_F && __builtin_cpu_supports("avx512f");
}
#endif

void nndl_im2col(const nndl_layer *L, const float *in, int n, float *col)
{
#ifdef NNDL_CONV_AVX512
    if (L->k <= 16 && __builtin_cpu_supports("avx512f")) {
        im2col_avx512(L, in, n, col);
        return;
    }
#endif
    im2col_runs(L, in, n, col);
}

void nndl_col2im(const nndl_layer *L, const float *dcolt, int n, float *g)
{
#ifdef NNDL_CONV_AVX512
    if (__builtin_cpu_supports("avx512f")) {
        col2im_avx512(L, dcolt, n, g);
        return;
    }
#endif
    col2im_runs(L, dcolt, n, g);
}

/* One pool cell: m[f] = the max over its p x p positions (from position `first`), w[f] = where.
 */
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
#ifdef NNDL_CONV_AVX512
    if (pool2_avx512(L)) {
        pool2_forward_avx512(L, z, n, out, arg);
        return;
    }
#endif
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
#ifdef NNDL_CONV_AVX512
    if (pool2_avx512(L)) {
        pool2_backward_avx512(L, dz, arg, n, D);
        return;
    }
#endif
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

/* ---- direct convolution: the entry points ---- */

int nndl_conv_direct(const nndl_layer *L)
{
#ifdef NNDL_CONV_AVX512
    return L->k <= 8 && __builtin_cpu_supports("avx512f");
#else
    (void)L;
    return 0;
#endif
}

size_t nndl_conv_scratch_floats(const nndl_layer *L)
{
    size_t fp = (size_t)(L->n_out + 15) / 16 * 16, posp = (size_t)(L->pos + 15) / 16 * 16;
    size_t w = (size_t)L->n_in * (fp > DIRECT_F ? fp : DIRECT_F), dx = (L->n_out + L->k) * posp;
    return w > dx ? w : dx;
}

void nndl_conv_forward(const nndl_layer *L, const float *in, int n, float *z, float *scratch)
{
#ifdef NNDL_CONV_AVX512
    const int F = L->n_out, Fp = (F + 15) / 16 * 16;
    for (int t = 0; t < L->n_in; t++) /* Wᵀ [n_in x Fp], zero past F */
        for (int f = F; f < Fp; f++) scratch[(size_t)t * Fp + f] = 0.0f;
    for (int f = 0; f < F; f++) /* W read in order: on several ranks its rows come from the */
        for (int t = 0; t < L->n_in; t++) /* other core's cache, fastest as one stream */
            scratch[(size_t)t * Fp + f] = L->w[(size_t)f * L->n_in + t];
    conv_forward_avx512(L, in, n, scratch, z);
#else
    (void)L;
    (void)in;
    (void)n;
    (void)z;
    (void)scratch;
#endif
}

void nndl_conv_wgrad(const nndl_layer *L, const float *in, const float *d, int n, int j0, int j1,
                     float *dw, float *db, float *scratch)
{
#ifdef NNDL_CONV_AVX512
    for (int f0 = j0; f0 < j1; f0 += DIRECT_F) {
        int nf = j1 - f0 < DIRECT_F ? j1 - f0 : DIRECT_F;
        wgrad_avx512(L, in, d, n, f0, nf, scratch, db ? db + f0 : NULL);
        for (int f = 0; f < nf;
             f++) { /* dw written in order: on several ranks it is a shared slot */
            float *row = dw + (size_t)(f0 - j0 + f) * L->n_in;
            for (int t = 0; t < L->n_in; t++) row[t] = scratch[(size_t)t * DIRECT_F + f];
        }
    }
#else
    (void)L;
    (void)in;
    (void)d;
    (void)n;
    (void)j0;
    (void)j1;
    (void)dw;
    (void)db;
    (void)scratch;
#endif
}

int nndl_conv_forward_pooled(const nndl_layer *L, const float *in, int n, float *out, int32_t *arg)
{
#ifdef NNDL_CONV_AVX512
    /* positions as lanes beat filters as lanes (fwd_block) when a row fills more of its vectors
     * than the filters do theirs: the book's first layer, 24 of 32 lanes against 20 of 32 */
    int fill_rows = L->wo * 32 / (L->wo > 16 ? 32 : 16);
    int fill_f = L->n_out * 32 / ((L->n_out + 15) / 16 * 16);
    if (!nndl_conv_direct(L) || L->pool != 2 || L->wo < 16 || L->wo > 32 || fill_rows <= fill_f)
        return 0;
    conv_pooled_avx512(L, in, n, out, arg);
    return 1;
#else
    (void)L;
    (void)in;
    (void)n;
    (void)out;
    (void)arg;
    return 0;
#endif
}

int nndl_conv_input_grad_direct(const nndl_layer *L)
{
    int nvp = (L->pos + 15) / 16; /* position vectors */
    return nndl_conv_direct(L) && nvp <= 4 && L->k * nvp <= 28 /* accumulators in registers */;
}

int nndl_conv_input_grad(const nndl_layer *L, const float *d, int n, float *g, float *scratch)
{
    if (!nndl_conv_input_grad_direct(L)) return 0;
#ifdef NNDL_CONV_AVX512
    input_grad_avx512(L, d, n, g, scratch);
#else
    (void)d;
    (void)n;
    (void)g;
    (void)scratch;
#endif
    return 1;
}
