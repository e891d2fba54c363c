/* train.c: the data-parallel training loop (see nndl/train.h). */
#include "nndl/train.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nndl/fixed.h"
#include "nndl/rng.h"

#define EVAL_BLOCK 1024 /* rows per evaluation GEMM */
#define OVERLAP_PANEL 256             /* rows of a weight-gradient panel (and columns of a delta panel) */
#define OVERLAP_MIN_BUCKET (1u << 18) /* floats (1 MiB): smaller buckets cost more in latency than they hide */
#define OVERLAP_AUTO_PARAMS (1u << 20) /* --overlap auto: on for nets of at least this many parameters */

static void overlap_ready(void *ctx, size_t from);
static nndl_status fused_private(nndl_trainer *t, nndl_err *err);
static void overlap_progress(void *ctx);

/* The buckets: cut the gradient buffer at the panel boundaries backprop reports, from the end, into
 * pieces of at least OVERLAP_MIN_BUCKET floats. Every rank plans the same list. */
static void plan_buckets(nndl_trainer *t)
{
    const nndl_net *net = t->net;
    size_t last = net->n_params + NNDL_GRAD_EXTRA;
    t->n_buckets = 0, t->bucket[0] = last;
    for (int l = net->n_layers - 1; l >= 0; l--) {
        const nndl_layer *G = &net->dlayer[l];
        for (int j1 = G->n_out; j1 > 0; j1 -= OVERLAP_PANEL) {
            int j0 = j1 - OVERLAP_PANEL > 0 ? j1 - OVERLAP_PANEL : 0;
            size_t from = (size_t)(G->w + (size_t)j0 * G->n_in - net->grads);
            if (from == 0 || (last - from >= OVERLAP_MIN_BUCKET && t->n_buckets < NNDL_MAX_BUCKETS - 1))
                t->bucket[++t->n_buckets] = last = from;
        }
    }
    t->hooks = (nndl_backprop_hooks){t, overlap_ready, overlap_progress, OVERLAP_PANEL};
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nndl_status nndl_trainer_init(nndl_trainer *t, nndl_net *net, const nndl_config *cfg, const nndl_split *train,
                              const nndl_split *val, const nndl_dist *dist, nndl_err *err)
{
    memset(t, 0, sizeof *t);
    t->net = net, t->cfg = *cfg, t->train = train, t->val = val, t->dist = dist;
    int shard = (cfg->batch + dist->size - 1) / dist->size;
    t->rows = shard > EVAL_BLOCK ? shard : EVAL_BLOCK;
    int d = train->src->rows * train->src->cols;
    t->x = malloc(sizeof *t->x * (size_t)t->rows * d);
    t->y = malloc((size_t)t->rows);
    t->perm = malloc(sizeof *t->perm * (train->n > 0 ? train->n : 1));
    if (!t->x || !t->y || !t->perm) {
        nndl_trainer_free(t);
        return nndl_fail(err, NNDL_ENOMEM, "out of memory for batches of %d rows", t->rows);
    }
    if (cfg->reproducible) {
        t->chunk = cfg->chunk > 0 ? cfg->chunk : (cfg->batch + 7) / 8;
        if (t->chunk > cfg->batch) t->chunk = cfg->batch;
        int n_chunks = (cfg->batch + t->chunk - 1) / t->chunk;
        t->cap_chunks = (n_chunks + dist->size - 1) / dist->size;
        t->n_seg = 2 * net->n_layers + 1; /* each layer's weights, its biases; the cost */
        t->cg = malloc(sizeof *t->cg * (size_t)t->cap_chunks * (net->n_params + 1));
        t->seg_max = malloc(sizeof *t->seg_max * (size_t)(t->n_seg + 2));
        t->acc = malloc(sizeof *t->acc * (net->n_params + 1));
        if (!t->cg || !t->seg_max || !t->acc) {
            nndl_trainer_free(t);
            return nndl_fail(err, NNDL_ENOMEM, "out of memory for %d chunk gradients of %zu parameters "
                             "(--reproducible; a larger --chunk needs fewer)", t->cap_chunks, net->n_params);
        }
    }
    nndl_status st = nndl_sgd_init(&t->sgd, net, cfg->eta, cfg->l1, cfg->l2, cfg->momentum, train->n, err);
    if (st != NNDL_OK) {
        nndl_trainer_free(t);
        return st;
    }
    nndl_fused u;
    int fusable = !cfg->reproducible && cfg->reduce != 0 && nndl_sgd_fused(&t->sgd, cfg->batch, &u);
    t->fused = dist->size == 1 && fusable; /* several ranks: once the node-shared buffers are set up */
    t->want_shared = dist->size > 1 && fusable && cfg->overlap != 1; /* auto: wherever it can (measured faster) */
    t->overlap = dist->size > 1 && !cfg->reproducible && !t->want_shared &&
                 (cfg->overlap == 1 || (cfg->overlap < 0 && net->n_params >= OVERLAP_AUTO_PARAMS));
    if (t->fused && (st = fused_private(t, err)) != NNDL_OK) {
        nndl_trainer_free(t);
        return st;
    }
    if (t->overlap) plan_buckets(t);
    nndl_schedule_init(&t->sched, cfg->eta, cfg->patience, cfg->lr_decay, cfg->lr_min_ratio, cfg->early_stop);
    /* split by units (--split), a rank's dropout masks span the whole batch */
    return nndl_net_reserve(net, t->want_shared && cfg->batch > t->rows ? cfg->batch : t->rows, err);
}

void nndl_trainer_free(nndl_trainer *t)
{
    if (t->shared) { /* give the net (and the update rule) their own buffers back, with the trained values */
        memcpy(t->own_params, t->net->params, sizeof(float) * t->net->n_params);
        nndl_net_rebind(t->net, t->own_params, t->net->grads, NULL, NULL);
        if (t->own_velocity) memcpy(t->own_velocity, t->sgd.velocity, sizeof(float) * t->net->n_params);
        t->sgd.velocity = t->own_velocity, t->own_velocity = NULL;
        nndl_dist_shared_free(&t->sh);
        t->shared = 0;
    }
    free(t->x), free(t->y), free(t->perm), free(t->cg), free(t->seg_max), free(t->acc), free(t->bptr), free(t->bbuf);
    nndl_sgd_free(&t->sgd);
    t->x = NULL, t->y = NULL, t->perm = NULL, t->cg = NULL, t->seg_max = NULL, t->acc = NULL;
    t->bptr = NULL, t->bbuf = NULL;
}

/* Overlap: grads[from..) are final; start every planned bucket that now is, in order (the first one
 * carries the extras: the cost, and the stop flag set here). */
static void overlap_ready(void *ctx, size_t from)
{
    nndl_trainer *t = ctx;
    float *g = t->net->grads;
    while (t->next_bucket <= t->n_buckets && t->bucket[t->next_bucket] >= from) {
        if (t->next_bucket == 1) g[t->net->n_params + NNDL_EXTRA_STOP] = t->stop_flag;
        size_t a = t->bucket[t->next_bucket], b = t->bucket[t->next_bucket - 1];
        nndl_dist_isum_floats(t->dist, g + a, b - a, &t->pending);
        t->next_bucket++;
    }
    nndl_dist_progress(&t->pending);
}

static void overlap_progress(void *ctx)
{
    nndl_dist_progress(&((nndl_trainer *)ctx)->pending);
}

/* Gather rows [b0 + first, + len) of the permutation (this rank's shard of the global batch at b0) and
 * start loading the next step's shard; the dropout of the shard's samples. */
static int gather_shard(nndl_trainer *t, int b0, int bsz, nndl_dropout *drop, float *x)
{
    int first, len;
    nndl_dist_shard(bsz, t->dist->size, t->dist->rank, &first, &len);
    const int *order = t->perm + b0 + first; /* positions in the training split: the samples' global indices */
    uint32_t epoch = (uint32_t)t->epoch + 1;
    nndl_augment aug = {t->cfg.augment, t->cfg.seed, epoch};
    *drop = (nndl_dropout){(float)t->cfg.dropout, t->cfg.seed, epoch, order};
    nndl_split_gather_aug(t->train, order, len, x, t->y, &aug);
    if (b0 + bsz < t->train->n) { /* the next step's shard: its rows load while this step computes */
        int nb = t->train->n - (b0 + bsz) < t->cfg.batch ? t->train->n - (b0 + bsz) : t->cfg.batch, f2, l2;
        nndl_dist_shard(nb, t->dist->size, t->dist->rank, &f2, &l2);
        nndl_split_prefetch(t->train, t->perm + b0 + bsz + f2, l2);
    }
    return len;
}

/* Count this step; 1 if this rank is asked to stop at it (a signal, or --stop-after-steps). */
static int stop_here(nndl_trainer *t)
{
    t->steps_run++;
    return (t->stop_request && *t->stop_request) || (t->stop_after_steps > 0 && t->steps_run >= t->stop_after_steps);
}

static nndl_status non_finite(const nndl_trainer *t, double cost, uint32_t epoch, int b0, nndl_err *err)
{
    return nndl_fail(err, NNDL_ENUM, "non-finite %s (cost %g) at epoch %u, step %d of the epoch",
                     isfinite(cost) ? "gradient" : "cost", cost, epoch, b0 / t->cfg.batch + 1);
}

/* One SGD step on the global batch at positions [b0, b0 + bsz) of the permutation. */
static nndl_status step(nndl_trainer *t, int b0, int bsz, double *batch_cost, nndl_err *err)
{
    nndl_dropout drop;
    int len = gather_shard(t, b0, bsz, &drop, t->x);
    uint32_t epoch = drop.epoch;
    float *extra = t->net->grads + t->net->n_params;
    t->stop_flag = stop_here(t);
    nndl_status s;
    if (t->overlap) { /* the reduction in buckets, each started as soon as backprop has written it */
        t->next_bucket = 1;
        t->net->hooks = &t->hooks;
        nndl_net_backprop(t->net, t->x, t->y, len, &drop);
        overlap_ready(t, 0); /* the rest (all of it for an empty shard) */
        t->net->hooks = NULL;
        s = nndl_dist_wait(&t->pending, err);
    } else { /* one reduction: the gradient and, in its tail, the cost sum and the stop flag */
        nndl_net_backprop(t->net, t->x, t->y, len, &drop);
        extra[NNDL_EXTRA_STOP] = t->stop_flag;
        s = nndl_dist_sum_floats(t->dist, t->net->grads, t->net->n_params + NNDL_GRAD_EXTRA, err);
    }
    if (s != NNDL_OK) return s;
    *batch_cost = extra[NNDL_EXTRA_COST] / bsz;
    /* every rank has the same sums, so all decide alike; nothing of a non-finite step is applied. The
     * summed bound (complete only without overlap) proves most steps finite without a pass over the
     * whole gradient: it exceeds every |element| (rounding is far inside the factor 4). */
    int proven = !t->overlap && extra[NNDL_EXTRA_BOUND] <= FLT_MAX / 4;
    if (!isfinite(extra[NNDL_EXTRA_COST]) || (!proven && nndl_any_nonfinite(t->net->grads, t->net->n_params)))
        return non_finite(t, extra[NNDL_EXTRA_COST], epoch, b0, err);
    t->sgd.eta = t->sched.eta;
    nndl_sgd_step(&t->sgd, t->net, bsz); /* the grads are sums: it divides by the global batch */
    return extra[NNDL_EXTRA_STOP] > 0 ? NNDL_ESTOP : NNDL_OK; /* the step is complete either way */
}

/* The fused step's batch buffers: act[0..L] then delta[0..L-1], each [rows x width], at base; t->all
 * points at row 0, t->mine at row `first` (this rank's rows). */
static void point_batch(nndl_trainer *t, float *base, int rows, int first)
{
    const nndl_net *net = t->net;
    int L = net->n_layers;
    t->all = (nndl_batch){t->bptr, t->bptr + L + 1}, t->mine = (nndl_batch){t->bptr + 2 * L + 1, t->bptr + 3 * L + 2};
    for (int i = 0; i < 2 * L + 1; i++) {
        int width = i <= L ? net->sizes[i] : net->sizes[i - L];
        t->bptr[i] = base, t->bptr[2 * L + 1 + i] = base + (size_t)first * width;
        base += (size_t)rows * width;
    }
    t->batch_first = first;
}

/* Floats of the batch buffers for rows rows; allocate the pointer arrays. */
static size_t batch_floats(nndl_trainer *t, int rows, nndl_err *err)
{
    const nndl_net *net = t->net;
    size_t w = 0;
    for (int l = 0; l <= net->n_layers; l++) w += (size_t)net->sizes[l] * (l > 0 ? 2 : 1);
    if (!t->bptr && !(t->bptr = malloc(sizeof *t->bptr * (4 * (size_t)(unsigned)net->n_layers + 2)))) {
        nndl_fail(err, NNDL_ENOMEM, "out of memory");
        return 0;
    }
    return w * (size_t)rows;
}

/* One rank: the fused step's buffers in private memory. */
static nndl_status fused_private(nndl_trainer *t, nndl_err *err)
{
    size_t n = batch_floats(t, t->cfg.batch, err);
    if (!n) return NNDL_ENOMEM;
    if (!(t->bbuf = malloc(sizeof *t->bbuf * n)))
        return nndl_fail(err, NNDL_ENOMEM, "out of memory for the activations of a batch of %d", t->cfg.batch);
    point_batch(t, t->bbuf, t->cfg.batch, 0);
    return NNDL_OK;
}

/* Collective, at the first epoch (after any resume or --init-from has set the parameters): move the
 * parameters, momentum's velocity and the batch buffers into node-shared memory if every rank is on
 * this node. */
static nndl_status shared_setup(nndl_trainer *t, nndl_err *err)
{
    nndl_net *net = t->net;
    int usable = 0;
    t->shared_tried = 1;
    size_t nb = batch_floats(t, t->cfg.batch, err);
    if (!nb) return NNDL_ENOMEM; /* (before the collective: only on a failed malloc of a few pointers) */
    nndl_status st = nndl_dist_shared_init(t->dist, &t->sh, net->params, net->n_params, t->sgd.velocity,
                                           NNDL_GRAD_EXTRA, nb, &usable, err);
    if (st != NNDL_OK || !usable) return st;
    nndl_net_rebind(net, t->sh.params, net->grads, &t->own_params, NULL);
    t->own_velocity = t->sgd.velocity, t->sgd.velocity = t->sh.velocity; /* checkpoints read the shared one */
    point_batch(t, t->sh.batch, t->cfg.batch, 0);
    t->shared = t->fused = 1;
    /* large layers: split every GEMM by units (each rank packs its share of each weight matrix and runs
     * its GEMMs over the whole batch, instead of packing all of it for its share of the rows) */
    t->units = t->cfg.split == 2 || (t->cfg.split == 0 && net->n_params >= OVERLAP_AUTO_PARAMS);
    return NNDL_OK;
}

/* One fused step (nndl/net.h): forward and every delta for this rank's rows (written into the node's
 * shared batch when there are several ranks), then this rank updates its part of every layer from the
 * whole batch. No gradient is reduced; the riders (cost, stop flag, bound) are summed in rank order. */
static nndl_status step_fused(nndl_trainer *t, int b0, int bsz, double *batch_cost, nndl_err *err)
{
    nndl_net *net = t->net;
    int P = t->shared ? t->sh.ns.node_size : 1, part = t->shared ? t->sh.ns.node_rank : 0, first, len;
    nndl_dist_shard(bsz, t->dist->size, t->dist->rank, &first, &len);
    if (first != t->batch_first) point_batch(t, t->bptr[0], t->cfg.batch, first);
    nndl_dropout drop;
    gather_shard(t, b0, bsz, &drop, t->mine.act[0]);
    int stop = stop_here(t);
    float bound = 0.0f;
    double cost;
    nndl_status st = NNDL_OK;
    if (t->units) { /* every GEMM split by units over the whole batch; a barrier after each phase */
        nndl_dropout every = drop;
        every.sample = t->perm + b0; /* the batch's rows, all of them */
        int L = net->n_layers;
        st = nndl_dist_shared_sync(&t->sh, err); /* the batch's inputs are written */
        for (int l = 0; l < L - 1 && st == NNDL_OK; l++) {
            nndl_net_forward_units(net, &t->all, l, bsz, part, P, &every);
            st = nndl_dist_shared_sync(&t->sh, err);
        }
        cost = st == NNDL_OK ? nndl_net_output_rows(net, &t->all, t->y, first, len) : 0.0;
        for (int l = L - 1; l >= 1 && st == NNDL_OK; l--) {
            st = nndl_dist_shared_sync(&t->sh, err); /* delta[l] is complete */
            if (st == NNDL_OK) nndl_net_delta_units(net, &t->all, l, bsz, part, P, &every);
        }
        if (st != NNDL_OK) return st;
        bound = 0.0f; /* below, from the whole batch once every delta is written */
    } else {
        cost = nndl_net_deltas(net, &t->mine, t->y, len, &drop, &bound);
    }
    if (P > 1) {
        float *e = t->sh.slot[part];
        e[NNDL_EXTRA_COST] = (float)cost, e[NNDL_EXTRA_STOP] = (float)stop, e[NNDL_EXTRA_BOUND] = bound;
        if ((st = nndl_dist_shared_sync(&t->sh, err)) != NNDL_OK) return st; /* every row and rider is written */
        cost = 0.0, bound = 0.0f, stop = 0;
        for (int k = 0; k < P; k++) { /* in rank order: the same on every rank */
            e = t->sh.slot[k];
            cost += e[NNDL_EXTRA_COST], stop |= e[NNDL_EXTRA_STOP] > 0;
            bound = isnan(bound) ? bound : bound + e[NNDL_EXTRA_BOUND];
        }
        if (t->units) bound = nndl_net_bound(net, &t->all, bsz); /* the same scan on every rank */
    }
    *batch_cost = cost / bsz;
    if (!isfinite(cost) || !(bound <= FLT_MAX / 4)) { /* not proven finite: look (at this rank's part), and agree */
        float bad = !isfinite(cost) || nndl_net_part_nonfinite(net, &t->all, bsz, part, P);
        if (P > 1 && (st = nndl_dist_max_floats(t->dist, &bad, 1, err)) != NNDL_OK) return st;
        if (bad > 0) return non_finite(t, cost, drop.epoch, b0, err);
    }
    t->sgd.eta = t->sched.eta;
    nndl_fused u;
    nndl_sgd_fused(&t->sgd, bsz, &u);
    nndl_net_update_part(net, &t->all, bsz, part, P, &u);
    if (P > 1 && (st = nndl_dist_shared_sync(&t->sh, err)) != NNDL_OK) return st; /* every part is updated */
    return stop ? NNDL_ESTOP : NNDL_OK;
}

/* Segment s of a chunk gradient laid out as [params..., cost]: layer s/2's weights or biases, or the cost. */
static void segment(const nndl_net *net, int s, size_t *off, size_t *len)
{
    if (s == 2 * net->n_layers) {
        *off = net->n_params, *len = 1;
        return;
    }
    const nndl_layer *L = &net->layer[s / 2];
    *off = (size_t)((s % 2 ? L->b : L->w) - net->params);
    *len = s % 2 ? (size_t)L->n_out : (size_t)L->n_out * L->n_in;
}

/* The same step in reproducible mode (see nndl/train.h): whole chunks per rank, exact sums. */
static nndl_status step_reproducible(nndl_trainer *t, int b0, int bsz, double *batch_cost, nndl_err *err)
{
    nndl_net *net = t->net;
    size_t np = net->n_params, stride = np + 1;
    int C = t->chunk, n_chunks = (bsz + C - 1) / C, c0, cl, S = t->n_seg;
    nndl_dist_shard(n_chunks, t->dist->size, t->dist->rank, &c0, &cl);
    uint32_t epoch = (uint32_t)t->epoch + 1;
    float *mx = t->seg_max;
    memset(mx, 0, sizeof *mx * (size_t)(S + 2));
    for (int j = 0; j < cl; j++) {
        int r0 = (c0 + j) * C, len = bsz - r0 < C ? bsz - r0 : C;
        const int *order = t->perm + b0 + r0;
        nndl_augment aug = {t->cfg.augment, t->cfg.seed, epoch};
        nndl_dropout drop = {(float)t->cfg.dropout, t->cfg.seed, epoch, order};
        nndl_split_gather_aug(t->train, order, len, t->x, t->y, &aug);
        nndl_net_backprop(net, t->x, t->y, len, &drop);
        float *g = t->cg + (size_t)j * stride;
        memcpy(g, net->grads, sizeof *g * np);
        g[np] = net->grads[np + NNDL_EXTRA_COST];
        for (int s = 0; s < S; s++) {
            size_t off, n;
            segment(net, s, &off, &n);
            float m = nndl_max_abs(g + off, n); /* +inf or NaN (as a bit pattern above inf) if non-finite */
            if (!(m <= FLT_MAX)) mx[S] = 1.0f;
            else mx[s] = m > mx[s] ? m : mx[s];
        }
    }
    mx[S + 1] = stop_here(t);
    /* 1: agree on each segment's range (and the flags); MAX is exact, so its result is P-independent */
    nndl_status st = nndl_dist_max_floats(t->dist, mx, S + 2, err);
    if (st != NNDL_OK) return st;
    if (mx[S] > 0)
        return nndl_fail(err, NNDL_ENUM, "non-finite gradient or cost at epoch %u, step %d of the epoch", epoch,
                         b0 / t->cfg.batch + 1);
    /* 2: round each chunk once to fixed point, add exactly, reduce exactly */
    memset(t->acc, 0, sizeof *t->acc * stride);
    for (int s = 0; s < S; s++) {
        size_t off, n;
        segment(net, s, &off, &n);
        int k = nndl_fixed_exponent(mx[s], n_chunks);
        for (int j = 0; j < cl; j++) nndl_fixed_add(t->acc + off, t->cg + (size_t)j * stride + off, n, k);
    }
    if ((st = nndl_dist_sum_int64(t->dist, t->acc, stride, err)) != NNDL_OK) return st;
    float cost;
    for (int s = 0; s < S; s++) {
        size_t off, n;
        segment(net, s, &off, &n);
        nndl_fixed_read(s == S - 1 ? &cost : net->grads + off, t->acc + off, n, nndl_fixed_exponent(mx[s], n_chunks));
    }
    *batch_cost = (double)cost / bsz;
    if (!isfinite(cost) || nndl_any_nonfinite(net->grads, np)) /* finite terms whose sum exceeds float */
        return nndl_fail(err, NNDL_ENUM, "non-finite gradient or cost sum at epoch %u, step %d of the epoch", epoch,
                         b0 / t->cfg.batch + 1);
    t->sgd.eta = t->sched.eta;
    nndl_sgd_step(&t->sgd, net, bsz);
    return mx[S + 1] > 0 ? NNDL_ESTOP : NNDL_OK;
}

nndl_status nndl_trainer_epoch(nndl_trainer *t, const nndl_train_hooks *hooks, nndl_epoch_metrics *m,
                               nndl_err *err)
{
    int n = t->train->n, B = t->cfg.batch, epoch = t->epoch + 1;
    if (t->want_shared && !t->shared_tried) {
        nndl_status st = shared_setup(t, err);
        if (st != NNDL_OK) return st;
    }
    if (t->cfg.shuffle)
        nndl_rng_permutation(t->cfg.seed, NNDL_STREAM_PERM, (uint32_t)epoch, t->perm, n);
    else
        for (int i = 0; i < n; i++) t->perm[i] = i;
    long n_steps = (n + B - 1) / B; /* the last batch may be smaller, as in the book's network.py */
    double t0 = now();
    long first_step = t->step;
    for (long s = t->step; s < n_steps; s++) {
        int b0 = (int)(s * B), bsz = n - b0 < B ? n - b0 : B;
        double c = 0.0;
        nndl_status st = t->cfg.reproducible ? step_reproducible(t, b0, bsz, &c, err)
                         : t->fused          ? step_fused(t, b0, bsz, &c, err)
                                             : step(t, b0, bsz, &c, err);
        if (st == NNDL_ENUM && t->cfg.on_nan_skip) { /* nothing of it was applied: go on with the next batch */
            t->skipped++, t->step = s + 1;
            continue;
        }
        if (st == NNDL_ENUM) {
            char what[256];
            snprintf(what, sizeof what, "%s", err->msg);
            return nndl_fail(err, NNDL_ENUM, "%s: the learning rate is probably too large (--eta %g); nothing of this "
                             "step was applied and the last checkpoint is intact (or train with --on-nan skip-batch)",
                             what, t->sched.eta);
        }
        if (st != NNDL_OK && st != NNDL_ESTOP) return st;
        t->cost_sum += c;
        t->step = s + 1;
        if (st == NNDL_ESTOP) return nndl_fail(err, NNDL_ESTOP, "stopped at epoch %d, step %ld", epoch, s + 1);
        if (hooks && hooks->on_progress && (s & 63) == 63) hooks->on_progress(hooks->ctx, epoch, s + 1, n_steps);
        if (hooks && hooks->on_step && t->cfg.step_hook_every > 0 && (s + 1) % t->cfg.step_hook_every == 0 &&
            s + 1 < n_steps && (st = hooks->on_step(hooks->ctx, t, err)) != NNDL_OK)
            return st;
    }
    double t1 = now();
    memset(m, 0, sizeof *m);
    m->epoch = epoch;
    m->train_cost = n_steps > t->skipped ? t->cost_sum / (double)(n_steps - t->skipped) : NAN;
    m->skipped = t->skipped;
    m->learning_rate = t->sched.eta;
    m->seconds = t1 - t0;
    m->samples_per_s = (double)(n - (long)first_step * B) / m->seconds; /* a resumed epoch did only the rest */
    nndl_status st = nndl_trainer_evaluate(t, t->val, &m->val_accuracy, &m->val_cost, err);
    if (st != NNDL_OK) return st;
    m->eval_seconds = now() - t1;
    t->epoch = epoch, t->step = 0, t->cost_sum = 0.0, t->skipped = 0;
    if (hooks && hooks->on_epoch) hooks->on_epoch(hooks->ctx, m);
    return NNDL_OK;
}

nndl_status nndl_trainer_evaluate(nndl_trainer *t, const nndl_split *s, double *accuracy, double *cost, nndl_err *err)
{
    int first, len;
    nndl_dist_shard(s->n, t->dist->size, t->dist->rank, &first, &len);
    double sums[2] = {0.0, 0.0}; /* cost, correct */
    long correct = 0;
    for (int i = 0; i < len; i += t->rows) {
        int k = len - i < t->rows ? len - i : t->rows;
        nndl_split_gather_range(s, first + i, k, t->x, t->y);
        nndl_net_evaluate(t->net, t->x, t->y, k, &sums[0], &correct);
    }
    sums[1] = (double)correct;
    nndl_status st = nndl_dist_sum_doubles(t->dist, sums, 2, err);
    if (st != NNDL_OK) return st;
    *accuracy = s->n ? sums[1] / s->n : 0.0;
    *cost = s->n ? sums[0] / s->n : 0.0;
    return NNDL_OK;
}

nndl_status nndl_trainer_confusion(nndl_trainer *t, const nndl_split *s, double *conf, nndl_err *err)
{
    int first, len, m = t->net->sizes[t->net->n_layers];
    int *pred = malloc(sizeof *pred * t->rows);
    if (!pred) return nndl_fail(err, NNDL_ENOMEM, "out of memory");
    memset(conf, 0, sizeof *conf * m * m);
    nndl_dist_shard(s->n, t->dist->size, t->dist->rank, &first, &len);
    for (int i = 0; i < len; i += t->rows) {
        int k = len - i < t->rows ? len - i : t->rows;
        nndl_split_gather_range(s, first + i, k, t->x, t->y);
        nndl_net_predict(t->net, t->x, k, pred);
        for (int r = 0; r < k; r++) conf[t->y[r] * m + pred[r]] += 1.0;
    }
    free(pred);
    return nndl_dist_sum_doubles(t->dist, conf, m * m, err);
}
