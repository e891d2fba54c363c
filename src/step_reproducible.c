/* step_reproducible.c: the reproducible step (see nndl/train.h).
 *
 * The global batch is cut into fixed chunks of cfg.chunk samples whatever the rank count; ranks
 * take whole chunks; each chunk's gradient is computed alone (the same GEMM shapes on any rank),
 * rounded once to int64 fixed point and the chunks are summed exactly (nndl/fixed.h). The summed
 * gradient, and so every weight, is then the same bits for any number of ranks. It costs one more
 * (tiny) allreduce per step and the per-chunk work.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nndl/fixed.h"
#include "train_int.h"

/* each rank holds its chunks' gradients ([cap_chunks x (n_params + 1)], the cost last) until the
 * exponents are agreed */
typedef struct {
    int chunk, cap_chunks, n_seg;
    /* seg_max: [n_seg + 2]: each segment's max |g|, non-finite flag, stop flag */
    float *cg, *seg_max;
    int64_t *acc; /* [n_params + 1] */
} repro;

/* ---- set-up ---- */

static void release(nndl_trainer *t)
{
    repro *r = t->impl;
    if (!r) return;
    free(r->cg);
    free(r->seg_max);
    free(r->acc);
    free(r);
    t->impl = NULL;
}

static nndl_status init(nndl_trainer *t, nndl_err *err)
{
    const nndl_config *cfg = &t->cfg;
    const nndl_net *net = t->net;
    repro *r = calloc(1, sizeof *r);
    if (!r) return nndl_fail(err, NNDL_ENOMEM, "out of memory");
    t->impl = r;
    r->chunk = cfg->chunk > 0 ? cfg->chunk : (cfg->batch + 7) / 8;
    if (r->chunk > cfg->batch) r->chunk = cfg->batch;
    int n_chunks = (cfg->batch + r->chunk - 1) / r->chunk;
    r->cap_chunks = (n_chunks + t->dist->size - 1) / t->dist->size;
    r->n_seg = 2 * net->n_layers + 1; /* each layer's weights, its biases; the cost */
    r->cg = malloc(sizeof *r->cg * (size_t)r->cap_chunks * (net->n_params + 1));
    r->seg_max = malloc(sizeof *r->seg_max * (size_t)(r->n_seg + 2));
    r->acc = malloc(sizeof *r->acc * (net->n_params + 1));
    if (!r->cg || !r->seg_max || !r->acc)
        return nndl_fail(err, NNDL_ENOMEM,
                         "out of memory for %d chunk gradients of %zu parameters (--reproducible; "
                         "a larger --chunk needs fewer)",
                         r->cap_chunks, net->n_params);
    return train_reserve_rows(t, r->chunk, err); /* a chunk may be larger than a rank's shard */
}

/* ---- the step ---- */

/* Segment s of a chunk gradient laid out as [params..., cost]: layer s/2's weights or biases, or
 * the cost. */
static void segment(const nndl_net *net, int s, size_t *off, size_t *len)
{
    if (s == 2 * net->n_layers) {
        *off = net->n_params;
        *len = 1;
        return;
    }
    const nndl_layer *L = &net->layer[s / 2];
    *off = (size_t)((s % 2 ? L->b : L->w) - net->params);
    *len = s % 2 ? (size_t)L->n_out : (size_t)L->n_out * L->n_in;
}

/* This rank's chunks [c0, c0 + cl) of the batch at b0: each gradient alone, and each segment's
 * range. */
static void chunk_gradients(nndl_trainer *t, repro *r, int b0, int bsz, int c0, int cl)
{
    nndl_net *net = t->net;
    size_t np = net->n_params, stride = np + 1;
    uint32_t epoch = (uint32_t)t->state.epoch + 1;
    float *mx = r->seg_max;
    memset(mx, 0, sizeof *mx * (size_t)(r->n_seg + 2));
    for (int j = 0; j < cl; j++) {
        int r0 = (c0 + j) * r->chunk, len = bsz - r0 < r->chunk ? bsz - r0 : r->chunk;
        const int *order = t->perm + b0 + r0;
        nndl_augment aug = {t->cfg.augment, t->cfg.seed, epoch};
        nndl_dropout drop = {(float)t->cfg.dropout, t->cfg.seed, epoch, order,
                             (float)t->cfg.dropout_conv};
        nndl_split_gather_aug(t->train, order, len, t->x, t->y, &aug);
        nndl_net_backprop(net, t->x, t->y, len, &drop);
        float *g = r->cg + (size_t)j * stride;
        memcpy(g, net->grads, sizeof *g * np);
        g[np] = net->grads[np + NNDL_EXTRA_COST];
        for (int s = 0; s < r->n_seg; s++) {
            size_t off, n;
            segment(net, s, &off, &n);
            /* +inf or NaN (as a bit pattern above inf) if non-finite */
            float m = nndl_max_abs(g + off, n);
            if (!(m <= FLT_MAX))
                mx[r->n_seg] = 1.0f;
            else
                mx[s] = m > mx[s] ? m : mx[s];
        }
    }
}

static nndl_status step(nndl_trainer *t, int b0, int bsz, double *batch_cost, nndl_err *err)
{
    nndl_net *net = t->net;
    repro *r = t->impl;
    size_t stride = net->n_params + 1;
    int n_chunks = (bsz + r->chunk - 1) / r->chunk, c0, cl, S = r->n_seg;
    nndl_dist_shard(n_chunks, t->dist->size, t->dist->rank, &c0, &cl);
    chunk_gradients(t, r, b0, bsz, c0, cl);
    float *mx = r->seg_max;
    mx[S + 1] = (float)train_stop_here(t);
    /* 1: agree on each segment's range (and the flags); MAX is exact, so its result is
     * P-independent */
    nndl_status st = nndl_dist_max_floats(t->dist, mx, S + 2, err);
    if (st != NNDL_OK) return st;
    if (mx[S] > 0)
        return nndl_fail(err, NNDL_ENUM,
                         "non-finite gradient or cost at epoch %d, step %d of the epoch",
                         t->state.epoch + 1, b0 / t->cfg.batch + 1);
    /* 2: round each chunk once to fixed point, add exactly, reduce exactly */
    memset(r->acc, 0, sizeof *r->acc * stride);
    for (int s = 0; s < S; s++) {
        size_t off, n;
        segment(net, s, &off, &n);
        int k = nndl_fixed_exponent(mx[s], n_chunks);
        for (int j = 0; j < cl; j++)
            nndl_fixed_add(r->acc + off, r->cg + (size_t)j * stride + off, n, k);
    }
    if ((st = nndl_dist_sum_int64(t->dist, r->acc, stride, err)) != NNDL_OK) return st;
    float cost;
    for (int s = 0; s < S; s++) {
        size_t off, n;
        segment(net, s, &off, &n);
        nndl_fixed_read(s == S - 1 ? &cost : net->grads + off, r->acc + off, n,
                        nndl_fixed_exponent(mx[s], n_chunks));
    }
    *batch_cost = (double)cost / bsz;
    /* finite terms whose sum exceeds float */
    if (!isfinite(cost) || nndl_any_nonfinite(net->grads, net->n_params))
        return nndl_fail(err, NNDL_ENUM,
                         "non-finite gradient or cost sum at epoch %d, step %d of the epoch",
                         t->state.epoch + 1, b0 / t->cfg.batch + 1);
    nndl_sgd_step(&t->sgd, net, bsz);
    return mx[S + 1] > 0 ? NNDL_ESTOP : NNDL_OK;
}

const step_ops step_reproducible = {init, step, release};
