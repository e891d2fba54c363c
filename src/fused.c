/* fused.c: the fused step (see nndl/net.h): backprop that keeps every layer's delta, and the update
 * inside the weight-gradient GEMM, split by rows or by units over the ranks of a node. A conv
 * layer's GEMMs are those of a dense layer over its output positions (conv.h), so the same code
 * serves both. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "conv.h"
#include "hot.h"
#include "net_int.h"
#include "nndl/fixed.h"

/* The rows weight layer l's GEMMs read: a conv layer's patches, or a dense layer's input. */
static const float *gemm_in(const nndl_batch *b, int l)
{
    return b->in && b->in[l] ? b->in[l] : b->act[l];
}

/* Output units [*j0, *j1) of a layer of n_out that part `part` of `parts` owns. */
static void part_units(int n_out, int part, int parts, int *j0, int *j1)
{
    *j0 = (int)((long long)n_out * part / parts);
    *j1 = (int)((long long)n_out * (part + 1) / parts);
}

/* g[0..m) = the sum of the slots' values at s, s + stride, ... in rank order (from 0.0f). */
NNDL_HOT static void slot_sum(float *restrict g, const float *restrict s, size_t stride, int slots,
                              size_t m)
{
    for (size_t i = 0; i < m; i++) g[i] = 0.0f;
    for (int k = 0; k < slots; k++)
        for (size_t i = 0; i < m; i++) g[i] += s[(size_t)k * stride + i];
}

/* ---- split by rows: each rank its rows of the batch, then its part of every layer's units ---- */

double nndl_net_deltas(nndl_net *net, const nndl_batch *b, const uint8_t *y, int n,
                       const nndl_dropout *drop, float *bound)
{
    *bound = 0.0f;
    if (n == 0) return 0.0;
    drop = net_dropping(drop);
    int L = net->n_layers;
    const float *out = net_forward(net, b->act[0], n, drop, b->act, b->in);
    double cost = nndl_net_cost(net, out, net->zout, y, n);
    net_output_delta(net, b->delta[L - 1], out, y, n);
    for (int l = L - 1; l > 0; l--)
        net_delta_prev(net, l, b->delta[l], b->delta[l - 1], b->act[l], n, 0, net->sizes[l], drop,
                       1 << 30, NULL);
    *bound = nndl_net_bound(net, b, n);
    return cost;
}

/* ---- the fused step split by units: the ranks of a node share the work of every GEMM ---- */

void nndl_net_forward_rows(nndl_net *net, const nndl_batch *b, int l, int n,
                           const nndl_dropout *drop)
{
    if (n > 0)
        net_forward_layer(net, l, b->act[l], b->act[l + 1], b->in ? b->in[l] : NULL, n, drop);
}

void nndl_net_forward_units(nndl_net *net, const nndl_batch *b, int l, int k, int part, int parts,
                            const nndl_dropout *drop)
{
    int j0, j1;
    part_units(net->layer[l].n_out, part, parts, &j0, &j1);
    if (j1 > j0 && k > 0) net_dense_forward(net, l, b->act[l], b->act[l + 1], k, j0, j1, drop);
}

double nndl_net_output_rows(nndl_net *net, const nndl_batch *b, const uint8_t *y, int r0, int n)
{
    int L = net->n_layers, m = net->sizes[L];
    if (n == 0) return 0.0;
    float *z = b->act[L] + (size_t)r0 * m;
    net_dense_forward(net, L - 1, b->act[L - 1] + (size_t)r0 * net->sizes[L - 1], z, n, 0, m, NULL);
    double cost = nndl_net_cost(net, z, net->zout, y, n);
    net_output_delta(net, b->delta[L - 1] + (size_t)r0 * m, z, y, n);
    return cost;
}

void nndl_net_delta_units(nndl_net *net, const nndl_batch *b, int l, int k, int part, int parts,
                          const nndl_dropout *drop)
{
    int c0, c1;
    part_units(net->sizes[l], part, parts, &c0, &c1);
    if (c1 > c0 && k > 0)
        net_delta_prev(net, l, b->delta[l], b->delta[l - 1], b->act[l], k, c0, c1, drop, 1 << 30,
                       NULL);
}

void nndl_net_delta_rows(nndl_net *net, const nndl_batch *b, int l, int n, const nndl_dropout *drop)
{
    if (n > 0)
        net_delta_prev(net, l, b->delta[l], b->delta[l - 1], b->act[l], n, 0, net->sizes[l], drop,
                       1 << 30, NULL);
}

/* ---- a conv net's dense layers split by units: delta[l - 1] from per-part partial products ----
 */

size_t nndl_net_dpart_floats(const nndl_net *net, int k)
{
    int w = 0;
    for (int l = 1; l < net->n_layers; l++)
        if (net->layer[l].kind == NNDL_LAYER_DENSE && net->sizes[l] > w) w = net->sizes[l];
    return (size_t)w * (size_t)k;
}

void nndl_net_dpart_units(const nndl_net *net, const nndl_batch *b, int l, int k, int part,
                          int parts, float *slot)
{
    const nndl_layer *W = &net->layer[l];
    int j0, j1;
    part_units(W->n_out, part, parts, &j0, &j1);
    if (j1 > j0 && k > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, W->n_in, j1 - j0, 1.0f,
                    b->delta[l] + j0, W->n_out, W->w + (size_t)j0 * W->n_in, W->n_in, 0.0f, slot,
                    W->n_in);
    else
        memset(slot, 0, sizeof *slot * (size_t)k * W->n_in);
}

void nndl_net_dsum_units(nndl_net *net, const nndl_batch *all, const nndl_batch *mine, int l, int k,
                         int first, int len, int part, int parts, const float *slots, size_t stride,
                         const nndl_dropout *drop)
{
    int m = net->layer[l].n_in;
    if (net->layer[l - 1].kind == NNDL_LAYER_CONV) { /* this part's rows, through the pooling */
        for (int r = 0; r < len; r++)
            slot_sum(net->gbuf + (size_t)r * m, slots + (size_t)(first + r) * m, stride, parts, m);
        if (len > 0)
            net_conv_delta_tail(net, l, net->gbuf, mine->delta[l - 1], mine->act[l], len, drop);
        return;
    }
    int c0, c1;
    part_units(m, part, parts, &c0, &c1);
    if (c1 == c0) return;
    for (int r = 0; r < k; r++)
        slot_sum(all->delta[l - 1] + (size_t)r * m + c0, slots + (size_t)r * m + c0, stride, parts,
                 c1 - c0);
    net_delta_tail(net, l, all->delta[l - 1], all->act[l], k, c0, c1, drop);
}

/* ---- split by units, the bound from what each part wrote ---- */

/* The larger of m and x; a NaN sticks. */
static float max_nan(float m, float x) { return isnan(m) ? m : isnan(x) || x > m ? x : m; }

/* max |a| over columns [c0, c1) of the k rows of a [k x width]. */
static float cols_max_abs(const float *a, int k, int width, int c0, int c1)
{
    float m = 0.0f;
    for (int r = 0; r < k && c1 > c0; r++)
        m = max_nan(m, nndl_max_abs(a + (size_t)r * width + c0, (size_t)(c1 - c0)));
    return m;
}

void nndl_net_bound_part(const nndl_net *net, const nndl_batch *all, int k, int first, int len,
                         int part, int parts, float *m)
{
    int L = net->n_layers, c0, c1;
    for (int l = 0; l < L; l++) {
        const nndl_layer *W = &net->layer[l];
        size_t dw = (size_t)W->pos * W->n_out;
        if (W->kind == NNDL_LAYER_CONV || l == L - 1) { /* by rows */
            m[2 * l] = nndl_max_abs(all->delta[l] + (size_t)first * dw, (size_t)len * dw);
        } else {
            part_units(W->n_out, part, parts, &c0, &c1);
            m[2 * l] = cols_max_abs(all->delta[l], k, W->n_out, c0, c1);
        }
        if (l == 0 || net->layer[l - 1].kind == NNDL_LAYER_CONV) { /* the input, by rows */
            m[2 * l + 1] =
                nndl_max_abs(all->act[l] + (size_t)first * W->n_inw, (size_t)len * W->n_inw);
        } else {
            part_units(W->n_in, part, parts, &c0, &c1);
            m[2 * l + 1] = cols_max_abs(all->act[l], k, W->n_in, c0, c1);
        }
    }
}

float nndl_net_bound_parts(const nndl_net *net, int k, const float *m, size_t stride, int parts)
{
    float bound = 0.0f;
    for (int l = 0; l < net->n_layers; l++) {
        float md = 0.0f, ma = 0.0f;
        for (int p = 0; p < parts; p++) {
            md = max_nan(md, m[(size_t)p * stride + 2 * (size_t)l]);
            ma = max_nan(ma, m[(size_t)p * stride + 2 * (size_t)l + 1]);
        }
        bound = net_bound_of(bound, k * net->layer[l].pos, md, ma); /* the same maxima: the same */
    }
    return bound;
}

float nndl_net_bound(const nndl_net *net, const nndl_batch *b, int k)
{
    float bound = 0.0f;
    for (int l = 0; l < net->n_layers && k > 0; l++)
        bound = net_layer_bound(bound, b->delta[l], b->act[l], k, &net->layer[l]);
    return bound;
}

int nndl_net_part_nonfinite(nndl_net *net, const nndl_batch *b, int k, int part, int parts)
{
    int bad = 0;
    for (int l = 0; l < net->n_layers && !bad; l++) {
        const nndl_layer *W = &net->layer[l];
        nndl_layer *G = &net->dlayer[l];
        int j0, j1;
        part_units(W->n_out, part, parts, &j0, &j1);
        if (j1 == j0) continue;
        net_weight_grad(net, l, b->delta[l], gemm_in(b, l), k, j0, j1, G->w + (size_t)j0 * W->n_in,
                        G->b);
        bad = nndl_any_nonfinite(G->w + (size_t)j0 * W->n_in, (size_t)(j1 - j0) * W->n_in) ||
              nndl_any_nonfinite(G->b + j0, (size_t)(j1 - j0));
    }
    return bad;
}

NNDL_HOT static void l1_shrink(float *w, size_t n, float c)
{
    for (size_t i = 0; i < n; i++) w[i] -= c * (float)((w[i] > 0.0f) - (w[i] < 0.0f));
}

NNDL_HOT static void bias_step(float *restrict bias, const float *restrict d, int k, int n_out,
                               int j0, int j1, float step)
{
    for (int r = 0; r < k; r++) {
        const float *dr = d + (size_t)r * n_out;
        for (int j = j0; j < j1; j++) bias[j] -= step * dr[j];
    }
}

/* Momentum: v <- mu v - step·deltaᵀA (the GEMM), then v -= wd w + l1 sgn w and w += v over the
 * part. */
NNDL_HOT static void momentum_apply(float *restrict w, float *restrict v, size_t n, float wd,
                                    float l1)
{
    for (size_t i = 0; i < n; i++) {
        v[i] -= wd * w[i] + l1 * (float)((w[i] > 0.0f) - (w[i] < 0.0f));
        w[i] += v[i];
    }
}

/* ---- conv layers on several ranks: each rank's rows' gradient, summed ---- */

size_t nndl_net_conv_grad_floats(const nndl_net *net)
{
    size_t n = 0;
    for (int l = 0; l < net->n_layers; l++)
        if (net->layer[l].kind == NNDL_LAYER_CONV)
            n += (size_t)net->layer[l].n_out * (net->layer[l].n_in + 1);
    return n;
}

/* dst[0..n) = src[0..n) with non-temporal stores where they are aligned: dst is a shared slot that
 * the other ranks read last step, and a store to a line another core holds waits for its
 * invalidation (nndl-bench-micro coherence on these VMs: 39 us for 256 KB, 17 us streamed);
 * streamed stores do not wait in order. */
static void stream_floats(float *restrict dst, const float *restrict src, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    for (; i < n && ((uintptr_t)(dst + i) & 15); i++) dst[i] = src[i];
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    _mm_sfence(); /* before the barrier that publishes the slot */
#endif
    for (; i < n; i++) dst[i] = src[i];
}

void nndl_net_conv_grads(const nndl_net *net, const nndl_batch *b, int n, float *slot)
{
    for (int l = 0; l < net->n_layers; l++) {
        const nndl_layer *W = &net->layer[l];
        const nndl_layer *G = &net->dlayer[l]; /* this rank's own memory, then streamed */
        size_t nw = (size_t)W->n_out * W->n_in;
        if (W->kind != NNDL_LAYER_CONV) continue;
        if (n > 0) {
            net_weight_grad(net, l, b->delta[l], gemm_in(b, l), n, 0, W->n_out, G->w, G->b);
            stream_floats(slot, G->w, nw);
            stream_floats(slot + nw, G->b, (size_t)W->n_out);
        } else {
            memset(slot, 0, sizeof *slot * (nw + (size_t)W->n_out));
        }
        slot += nw + (size_t)W->n_out;
    }
}

/* w <- decay·(w - l1·sgn w) - step·g (a bias: w - step·g), or through momentum's velocity v. */
NNDL_HOT static void conv_apply(float *restrict w, float *restrict v, const float *restrict g,
                                size_t m, int bias, const nndl_fused *u)
{
    float step = u->step, decay = u->decay, l1 = u->l1, mu = u->mu, wd = u->wd;
    if (!v && bias) {
        for (size_t i = 0; i < m; i++) w[i] -= step * g[i];
    } else if (!v) { /* as l1_shrink, then the GEMM's beta */
        for (size_t i = 0; i < m; i++)
            w[i] = (w[i] - l1 * (float)((w[i] > 0.0f) - (w[i] < 0.0f))) * decay - step * g[i];
    } else if (bias) {
        for (size_t i = 0; i < m; i++) {
            v[i] = mu * v[i] - step * g[i];
            w[i] += v[i];
        }
    } else {
        for (size_t i = 0; i < m; i++) {
            v[i] = mu * v[i] - step * g[i];
            v[i] -= wd * w[i] + l1 * (float)((w[i] > 0.0f) - (w[i] < 0.0f));
            w[i] += v[i];
        }
    }
}

/* Filters [j0, j1) of conv layer l (its gradient at offset o of every slot): w <- decay·w -
 * step·Σ slots (or through momentum's velocity), b likewise; in chunks of 256 floats. */
static void conv_update_slots(nndl_net *net, int l, size_t o, int j0, int j1, const nndl_fused *u)
{
    const nndl_layer *W = &net->layer[l];
    size_t stride = nndl_net_conv_grad_floats(net), nw = (size_t)W->n_out * W->n_in;
    float *v = u->velocity ? u->velocity + (W->w - net->params) : NULL;
    float *vb = u->velocity ? u->velocity + (W->b - net->params) : NULL;
    float g[256];
    for (int j = j0; j <= j1; j++) { /* j == j1: the biases [j0, j1) */
        int bias = j == j1;
        size_t at = bias ? nw + (size_t)j0 : (size_t)j * W->n_in, len = bias ? j1 - j0 : W->n_in;
        float *w = bias ? W->b + j0 : W->w + (size_t)j * W->n_in;
        float *vj = v ? (bias ? vb + j0 : v + (size_t)j * W->n_in) : NULL;
        for (size_t i = 0; i < len; i += 256) {
            size_t m = len - i < 256 ? len - i : 256;
            slot_sum(g, u->conv_g + o + at + i, stride, u->conv_slots, m);
            conv_apply(w + i, vj ? vj + i : NULL, g, m, bias, u);
        }
    }
}

void nndl_net_update_part(nndl_net *net, const nndl_batch *b, int k, int part, int parts,
                          const nndl_fused *u)
{
    size_t conv_at = 0;
    for (int l = 0; l < net->n_layers; l++) {
        const nndl_layer *W = &net->layer[l];
        int j0, j1;
        part_units(W->n_out, part, parts, &j0, &j1);
        if (u->conv_g && W->kind == NNDL_LAYER_CONV) {
            if (j1 > j0) conv_update_slots(net, l, conv_at, j0, j1, u);
            conv_at += (size_t)W->n_out * (W->n_in + 1);
            continue;
        }
        if (j1 == j0) continue;
        if (W->kind == NNDL_LAYER_CONV && nndl_conv_direct(W)) { /* its gradient, then the step */
            nndl_layer *G = &net->dlayer[l];
            net_weight_grad(net, l, b->delta[l], gemm_in(b, l), k, j0, j1,
                            G->w + (size_t)j0 * W->n_in, G->b);
            nndl_fused one = *u; /* one slot: the gradient in net->grads, laid out as the params */
            one.conv_g = net->grads;
            one.conv_slots = 1;
            conv_update_slots(net, l, (size_t)(W->w - net->params), j0, j1, &one);
            continue;
        }
        size_t nw = (size_t)(j1 - j0) * W->n_in;
        float *w = W->w + (size_t)j0 * W->n_in;
        const float *in = gemm_in(b, l);
        int rows = k * W->pos;
        if (u->velocity) { /* the GEMM writes the velocity; the weights follow it */
            float *v = u->velocity + (W->w - net->params) + (size_t)j0 * W->n_in;
            float *vb = u->velocity + (W->b - net->params);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, W->n_in, rows, -u->step,
                        b->delta[l] + j0, W->n_out, in, W->n_in, u->mu, v, W->n_in);
            momentum_apply(w, v, nw, u->wd, u->l1);
            for (int j = j0; j < j1; j++) vb[j] *= u->mu;
            bias_step(vb, b->delta[l], rows, W->n_out, j0, j1, u->step);
            for (int j = j0; j < j1; j++) W->b[j] += vb[j];
            continue;
        }
        if (u->l1 != 0.0f) l1_shrink(w, nw, u->l1);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, W->n_in, rows, -u->step,
                    b->delta[l] + j0, W->n_out, in, W->n_in, u->decay, w, W->n_in);
        bias_step(W->b, b->delta[l], rows, W->n_out, j0, j1, u->step);
    }
}
