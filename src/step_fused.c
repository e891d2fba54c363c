/* step_fused.c: the fused step, on one rank or on the ranks of one node (see nndl/train.h).
 *
 * No gradient is formed. Each rank runs forward and backprop over its rows, keeping every layer's
 * delta, then updates its share of every layer's units from the whole batch inside the
 * weight-gradient GEMM (nndl_net_update_part). On several ranks (plan.shared) the parameters,
 * momentum's velocity and the batch's activations and deltas live in node-shared memory: a barrier
 * after the deltas, one after the update; the riders (cost, stop flag, bound) sit in a small shared
 * slot per rank and are summed in rank order. Split by units (plan.units), every GEMM is cut by
 * units instead of rows: each rank computes its share of each layer's units for the whole batch,
 * with a barrier after each layer, so that it packs only its share of each weight matrix; a conv
 * net's conv layers stay split by rows (see deltas_by_units). A conv net split by rows
 * (plan.replicas) shares the batch but not the parameters: each rank keeps its own replica and
 * applies the whole update (a store to a line the other core has read waits for its invalidation,
 * and each rank's half of a shared update rewrote what the other had just read).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train_int.h"

/* ---- the strategy's data ---- */

typedef struct {
    nndl_dist_shared sh; /* plan.shared: the node-shared windows */
    /* the net's own buffers, given back (with the trained values) at the end */
    float *own_params;
    float *own_velocity;
    /* the batch's activations and deltas from row 0, and from this rank's first row */
    nndl_batch all, mine;
    float **bptr;    /* the pointer arrays of all and mine */
    float *bbuf;     /* one rank: the buffers themselves */
    int batch_first; /* this rank's first row in them */
    int part, parts; /* this rank's share of every layer's units: part of parts */
    float *conv_g;   /* plan.shared, a conv net: each rank's rows' conv gradients, parts slots */
    float *dpart;    /* plan.conv_rows: each part's share of delta·W (nndl_net_dpart_units) */
    size_t dstride;  /* the floats of one such slot */
    float *bmax;     /* plan.units: each part's maxima for the bound (nndl_net_bound_part) */
    size_t bstride;  /* the floats of one such slot: 2 a layer, in whole cache lines */
} fused;

/* ---- the batch buffers ---- */

/* The floats per sample of slot i of the batch buffers: act[0..L], delta[0..L-1], then in[0..L-1]
 * (a conv layer's patches; 0 for a dense layer, which reads its act). */
static size_t slot_width(const nndl_net *net, int i)
{
    int L = net->n_layers;
    size_t act, delta, in;
    nndl_net_batch_widths(net,
                          i <= L       ? 0
                          : i <= 2 * L ? i - L - 1
                                       : i - 2 * L - 1,
                          &act, &delta, &in);
    return i <= L ? (size_t)net->sizes[i] : i <= 2 * L ? delta : in;
}

/* The slots at base, each [rows x width]; f->all points at row 0, f->mine at row `first` (this
 * rank's rows). */
static void point_batch(fused *f, const nndl_net *net, float *base, int rows, int first)
{
    int L = net->n_layers, slots = 3 * L + 1;
    f->all = (nndl_batch){f->bptr, f->bptr + L + 1, f->bptr + 2 * L + 1};
    f->mine = (nndl_batch){f->bptr + slots, f->bptr + slots + L + 1, f->bptr + slots + 2 * L + 1};
    for (int i = 0; i < slots; i++) {
        size_t width = slot_width(net, i);
        f->bptr[i] = width ? base : NULL;
        f->bptr[slots + i] = width ? base + (size_t)first * width : NULL;
        base += (size_t)rows * width;
    }
    f->batch_first = first;
}

/* Floats of the batch buffers for rows rows. */
static size_t batch_floats(const nndl_net *net, int rows)
{
    size_t w = 0;
    for (int i = 0; i < 3 * net->n_layers + 1; i++) w += slot_width(net, i);
    return w * (size_t)rows;
}

/* COLLECTIVE: move the parameters and momentum's velocity (unless plan.replicas) and the batch
 * buffers into node-shared memory (the plan has checked that every rank is on this node). */
static nndl_status shared_setup(nndl_trainer *t, fused *f, size_t nb, nndl_err *err)
{
    nndl_net *net = t->net;
    int usable = 0, rep = t->plan.replicas; /* replicas: the parameters stay each rank's own */
    nndl_status st =
        nndl_dist_shared_init(t->dist, &f->sh, rep ? NULL : net->params, rep ? 0 : net->n_params,
                              rep ? NULL : t->sgd.velocity, NNDL_GRAD_EXTRA, nb, &usable, err);
    if (st == NNDL_OK && !usable)
        st = nndl_fail(err, NNDL_EMPI,
                       "the node-shared step was planned, but the ranks do not share one node");
    if (st != NNDL_OK) return st;
    if (!rep) {
        nndl_net_rebind(net, f->sh.params, net->grads, &f->own_params, NULL);
        f->own_velocity = t->sgd.velocity; /* checkpoints read the shared one */
        t->sgd.velocity = t->state.velocity = f->sh.velocity;
    }
    point_batch(f, net, f->sh.batch, t->cfg.batch, 0);
    f->part = f->sh.ns.node_rank;
    f->parts = f->sh.ns.node_size;
    float *extra = f->sh.batch + batch_floats(net, t->cfg.batch);
    if (nndl_net_conv_grad_floats(net)) f->conv_g = extra;
    if (f->dstride) f->dpart = extra + nndl_net_conv_grad_floats(net) * (size_t)f->parts;
    if (f->bstride)
        f->bmax = extra + (nndl_net_conv_grad_floats(net) + f->dstride) * (size_t)f->parts;
    /* split by units, a rank's dropout masks span the whole batch */
    return t->plan.units && t->cfg.batch > t->rows ? nndl_net_reserve(net, t->cfg.batch, err)
                                                   : NNDL_OK;
}

static nndl_status init(nndl_trainer *t, nndl_err *err)
{
    fused *f = calloc(1, sizeof *f);
    if (!f) return nndl_fail(err, NNDL_ENOMEM, "out of memory");
    t->impl = f;
    f->parts = 1;
    size_t nb = batch_floats(t->net, t->cfg.batch);
    if (t->plan.conv_rows) f->dstride = nndl_net_dpart_floats(t->net, t->cfg.batch);
    if (t->plan.units) f->bstride = (2 * (size_t)t->net->n_layers + 15) / 16 * 16;
    if (t->plan.shared)
        nb += (nndl_net_conv_grad_floats(t->net) + f->dstride + f->bstride) * (size_t)t->dist->size;
    f->bptr = malloc(sizeof *f->bptr * (6 * (size_t)(unsigned)t->net->n_layers + 2));
    nndl_status st = f->bptr ? NNDL_OK : nndl_fail(err, NNDL_ENOMEM, "out of memory");
    st = nndl_dist_agree(t->dist, st, err, NULL); /* before the collective set-up */
    if (st == NNDL_OK && t->plan.shared) return shared_setup(t, f, nb, err);
    if (st == NNDL_OK && !(f->bbuf = malloc(sizeof *f->bbuf * nb)))
        st = nndl_fail(err, NNDL_ENOMEM, "out of memory for the activations of a batch of %d",
                       t->cfg.batch);
    if (st == NNDL_OK) point_batch(f, t->net, f->bbuf, t->cfg.batch, 0);
    return st;
}

/* COLLECTIVE: give the net (and the update rule) their own buffers back, with the trained values.
 */
static void release(nndl_trainer *t)
{
    fused *f = t->impl;
    if (!f) return;
    if (f->sh.ready && !t->plan.replicas) {
        nndl_net *net = t->net;
        memcpy(f->own_params, net->params, sizeof(float) * net->n_params);
        nndl_net_rebind(net, f->own_params, net->grads, NULL, NULL);
        if (f->own_velocity)
            memcpy(f->own_velocity, t->sgd.velocity, sizeof(float) * net->n_params);
        t->sgd.velocity = t->state.velocity = f->own_velocity;
    }
    nndl_dist_shared_free(&f->sh);
    free(f->bptr);
    free(f->bbuf);
    free(f);
    t->impl = NULL;
}

/* ---- the step ---- */

/* delta[l - 1] of a conv net's dense layer l: each rank's units' share of delta[l]·W_l into its
 * slot, a barrier, the sum of the slots (see nndl_net_dpart_units). */
static nndl_status delta_by_parts(nndl_trainer *t, fused *f, int l, int bsz, int first, int len,
                                  const nndl_dropout *every, nndl_err *err)
{
    nndl_net_dpart_units(t->net, &f->all, l, bsz, f->part, f->parts,
                         f->dpart + f->dstride * (size_t)f->part);
    nndl_status st = nndl_dist_shared_sync(&f->sh, err); /* every part's slot is written */
    if (st == NNDL_OK)
        nndl_net_dsum_units(t->net, &f->all, &f->mine, l, bsz, first, len, f->part, f->parts,
                            f->dpart, f->dstride, every);
    return st;
}

/* Forward and every delta over the whole batch, every dense GEMM split by units; a barrier after
 * each phase. Conv layers (which come first) stay split by rows: each rank runs its own rows
 * through them, forward and back, and the dense layers then read every rank's rows. Returns the
 * cost of this rank's rows [first, first + len). */
static nndl_status deltas_by_units(nndl_trainer *t, fused *f, int b0, int bsz, int first, int len,
                                   const nndl_dropout *drop, double *cost, nndl_err *err)
{
    nndl_net *net = t->net;
    nndl_dropout every = *drop;
    every.sample = t->perm + b0; /* the batch's rows, all of them */
    int L = net->n_layers, convs = 0;
    while (convs < L - 1 && net->layer[convs].kind == NNDL_LAYER_CONV) convs++;
    for (int l = 0; l < convs; l++) nndl_net_forward_rows(net, &f->mine, l, len, drop);
    nndl_status st = nndl_dist_shared_sync(&f->sh, err); /* the dense layers' inputs are written */
    for (int l = convs; l < L - 1 && st == NNDL_OK; l++) {
        nndl_net_forward_units(net, &f->all, l, bsz, f->part, f->parts, &every);
        st = nndl_dist_shared_sync(&f->sh, err);
    }
    *cost = st == NNDL_OK ? nndl_net_output_rows(net, &f->all, t->y, first, len) : 0.0;
    for (int l = L - 1; l >= 1 && st == NNDL_OK; l--) {
        if (l < convs) { /* into a conv layer's output: this rank's rows, which it alone reads */
            nndl_net_delta_rows(net, &f->mine, l, len, drop);
            continue;
        }
        st = nndl_dist_shared_sync(&f->sh, err); /* delta[l] is complete */
        if (st != NNDL_OK) break;
        if (f->dpart) /* a conv net (plan.conv_rows) */
            st = delta_by_parts(t, f, l, bsz, first, len, &every, err);
        else
            nndl_net_delta_units(net, &f->all, l, bsz, f->part, f->parts, &every);
    }
    return st;
}

/* Several ranks: publish this rank's riders, wait for every row and rider, and sum them in rank
 * order (the same on every rank). */
static nndl_status sum_riders(nndl_trainer *t, fused *f, int bsz, double *cost, int *stop,
                              float *bound, nndl_err *err)
{
    float *e = f->sh.slot[f->part];
    e[NNDL_EXTRA_COST] = (float)*cost;
    e[NNDL_EXTRA_STOP] = (float)*stop;
    e[NNDL_EXTRA_BOUND] = *bound;
    nndl_status st = nndl_dist_shared_sync(&f->sh, err); /* every row and rider is written */
    if (st != NNDL_OK) return st;
    *cost = 0.0;
    *bound = 0.0f;
    *stop = 0;
    for (int k = 0; k < f->parts; k++) {
        e = f->sh.slot[k];
        *cost += e[NNDL_EXTRA_COST];
        *stop |= e[NNDL_EXTRA_STOP] > 0;
        *bound = isnan(*bound) ? *bound : *bound + e[NNDL_EXTRA_BOUND];
    }
    /* every part's maxima: the same bound on every rank */
    if (t->plan.units) *bound = nndl_net_bound_parts(t->net, bsz, f->bmax, f->bstride, f->parts);
    return NNDL_OK;
}

static nndl_status step(nndl_trainer *t, int b0, int bsz, double *batch_cost, nndl_err *err)
{
    nndl_net *net = t->net;
    fused *f = t->impl;
    int first, len;
    nndl_dist_shard(bsz, t->dist->size, t->dist->rank, &first, &len);
    if (first != f->batch_first) point_batch(f, net, f->bptr[0], t->cfg.batch, first);
    nndl_dropout drop;
    train_gather_shard(t, b0, bsz, &drop, f->mine.act[0]);
    int stop = train_stop_here(t);
    /* split by units: computed from the whole batch once every delta is written */
    float bound = 0.0f;
    double cost;
    nndl_status st = NNDL_OK;
    if (t->plan.units)
        st = deltas_by_units(t, f, b0, bsz, first, len, &drop, &cost, err);
    else
        cost = nndl_net_deltas(net, &f->mine, t->y, len, &drop, &bound);
    if (st == NNDL_OK && f->conv_g)
        nndl_net_conv_grads(net, &f->mine, len,
                            f->conv_g + nndl_net_conv_grad_floats(net) * (size_t)f->part);
    if (st == NNDL_OK && f->bmax)
        nndl_net_bound_part(net, &f->all, bsz, first, len, f->part, f->parts,
                            f->bmax + f->bstride * (size_t)f->part);
    if (st == NNDL_OK && f->parts > 1) st = sum_riders(t, f, bsz, &cost, &stop, &bound, err);
    if (st != NNDL_OK) return st;
    *batch_cost = cost / bsz;
    /* not proven finite: look (at this rank's part), agree */
    if (!isfinite(cost) || !(bound <= FLT_MAX / 4)) {
        float bad =
            !isfinite(cost) || nndl_net_part_nonfinite(net, &f->all, bsz, f->part, f->parts);
        if (f->parts > 1 && (st = nndl_dist_max_floats(t->dist, &bad, 1, err)) != NNDL_OK)
            return st;
        if (bad > 0) return train_non_finite(t, cost, b0, err);
    }
    nndl_fused u;
    nndl_sgd_fused(&t->sgd, bsz, &u);
    u.conv_g = f->conv_g;
    u.conv_slots = f->parts;
    if (t->plan.replicas) /* every rank the whole update, from every rank's slot and rows */
        nndl_net_update_part(net, &f->all, bsz, 0, 1, &u);
    else
        nndl_net_update_part(net, &f->all, bsz, f->part, f->parts, &u);
    /* every part updated */
    if (f->parts > 1 && (st = nndl_dist_shared_sync(&f->sh, err)) != NNDL_OK) return st;
    return stop ? NNDL_ESTOP : NNDL_OK;
}

const step_ops step_fused = {init, step, release};
