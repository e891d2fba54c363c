/* step_allreduce.c: the step that forms the gradient (see nndl/train.h).
 *
 * This rank sums its shard's gradient, joins ONE allreduce of the gradient buffer (the batch cost,
 * the stop flag and the gradient's bound ride in its tail), and every rank applies the same update.
 * With overlap (plan.overlap), the reduction is cut into buckets of the same buffer, each started
 * (MPI_Iallreduce) as soon as backprop has written it, in the same order on every rank, and
 * advanced between the panels of the remaining GEMMs.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "train_int.h"

#define OVERLAP_PANEL 256 /* rows of a weight-gradient panel (and columns of a delta panel) */
#define OVERLAP_MIN_BUCKET                                                                         \
    (1u << 18) /* floats (1 MiB): smaller buckets cost more in latency than they hide */

typedef struct {
    nndl_trainer *t;
    /* the buckets [bucket[i+1], bucket[i]) of the gradient buffer, from its end */
    int n_buckets, next_bucket;
    size_t bucket[NNDL_MAX_BUCKETS + 1];
    float stop_flag; /* this step's stop request, for the first bucket */
    nndl_dist_pending pending;
    nndl_backprop_hooks hooks;
} overlap;

/* grads[from..) are final: start every planned bucket that now is, in order (the first one carries
 * the extras: the cost, and the stop flag set here). */
static void overlap_ready(void *ctx, size_t from)
{
    overlap *o = ctx;
    const nndl_net *net = o->t->net;
    float *g = net->grads;
    while (o->next_bucket <= o->n_buckets && o->bucket[o->next_bucket] >= from) {
        if (o->next_bucket == 1) g[net->n_params + NNDL_EXTRA_STOP] = o->stop_flag;
        size_t a = o->bucket[o->next_bucket], b = o->bucket[o->next_bucket - 1];
        nndl_dist_isum_floats(o->t->dist, g + a, b - a, &o->pending);
        o->next_bucket++;
    }
    nndl_dist_progress(&o->pending);
}

static void overlap_progress(void *ctx) { nndl_dist_progress(&((overlap *)ctx)->pending); }

/* The buckets: cut the gradient buffer at the panel boundaries backprop reports, from the end, into
 * pieces of at least OVERLAP_MIN_BUCKET floats. Every rank plans the same list. */
static nndl_status init(nndl_trainer *t, nndl_err *err)
{
    if (!t->plan.overlap) return NNDL_OK;
    overlap *o = calloc(1, sizeof *o);
    if (!o) return nndl_fail(err, NNDL_ENOMEM, "out of memory");
    const nndl_net *net = t->net;
    size_t last = net->n_params + NNDL_GRAD_EXTRA;
    o->t = t;
    o->bucket[0] = last;
    for (int l = net->n_layers - 1; l >= 0; l--) {
        const nndl_layer *G = &net->dlayer[l];
        for (int j1 = G->n_out; j1 > 0; j1 -= OVERLAP_PANEL) {
            int j0 = j1 - OVERLAP_PANEL > 0 ? j1 - OVERLAP_PANEL : 0;
            size_t from = (size_t)(G->w + (size_t)j0 * G->n_in - net->grads);
            if (from == 0 ||
                (last - from >= OVERLAP_MIN_BUCKET && o->n_buckets < NNDL_MAX_BUCKETS - 1)) {
                last = from;
                o->bucket[++o->n_buckets] = last;
            }
        }
    }
    o->hooks = (nndl_backprop_hooks){o, overlap_ready, overlap_progress, OVERLAP_PANEL};
    t->impl = o;
    return NNDL_OK;
}

static void release(nndl_trainer *t)
{
    free(t->impl);
    t->impl = NULL;
}

static nndl_status step(nndl_trainer *t, int b0, int bsz, double *batch_cost, nndl_err *err)
{
    nndl_net *net = t->net;
    overlap *o = t->impl;
    nndl_dropout drop;
    int len = train_gather_shard(t, b0, bsz, &drop, t->x);
    float *extra = net->grads + net->n_params, stop = (float)train_stop_here(t);
    nndl_status s;
    if (o) { /* the reduction in buckets, each started as soon as backprop has written it */
        o->next_bucket = 1;
        o->stop_flag = stop;
        net->hooks = &o->hooks;
        nndl_net_backprop(net, t->x, t->y, len, &drop);
        overlap_ready(o, 0); /* the rest (all of it for an empty shard) */
        net->hooks = NULL;
        s = nndl_dist_wait(&o->pending, err);
    } else { /* one reduction: the gradient and, in its tail, the cost sum and the stop flag */
        nndl_net_backprop(net, t->x, t->y, len, &drop);
        extra[NNDL_EXTRA_STOP] = stop;
        s = nndl_dist_sum_floats(t->dist, net->grads, net->n_params + NNDL_GRAD_EXTRA, err);
    }
    if (s != NNDL_OK) return s;
    *batch_cost = extra[NNDL_EXTRA_COST] / bsz;
    /* every rank has the same sums, so all decide alike; nothing of a non-finite step is applied.
     * The summed bound (complete only without overlap) proves most steps finite without a pass over
     * the whole gradient: it exceeds every |element| (rounding is far inside the factor 4). */
    int proven = !o && extra[NNDL_EXTRA_BOUND] <= FLT_MAX / 4;
    if (!isfinite(extra[NNDL_EXTRA_COST]) ||
        (!proven && nndl_any_nonfinite(net->grads, net->n_params)))
        return train_non_finite(t, extra[NNDL_EXTRA_COST], b0, err);
    nndl_sgd_step(&t->sgd, net, bsz); /* the grads are sums: it divides by the global batch */
    return extra[NNDL_EXTRA_STOP] > 0 ? NNDL_ESTOP : NNDL_OK; /* the step is complete either way */
}

const step_ops step_allreduce = {init, step, release};
