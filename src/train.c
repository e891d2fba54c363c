/* train.c: the data-parallel training loop (see nndl/train.h); the steps are in step_*.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nndl/eval.h"
#include "nndl/rng.h"
#include "train_int.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the plan ---- */

nndl_status nndl_trainer_plan(const nndl_config *cfg, const nndl_net *net, long n_train,
                              const nndl_dist *d, nndl_step_plan *p, nndl_err *err)
{
    nndl_plan_env env = {d->size, 1, net->n_params, n_train, net->has_conv};
    nndl_status st = nndl_dist_node_ranks(d, &env.node_ranks, err);
    return st == NNDL_OK ? nndl_config_plan(cfg, &env, p, err) : st;
}

/* ---- lifetime ---- */

static const step_ops *ops_of(nndl_step_kind kind)
{
    switch (kind) {
    case NNDL_STEP_FUSED: return &step_fused;
    case NNDL_STEP_REPRODUCIBLE: return &step_reproducible;
    case NNDL_STEP_ALLREDUCE: break;
    }
    return &step_allreduce;
}

/* The state to start from: the start of training, or a resumed one (its velocity copied in). */
static void start_state(nndl_trainer *t, const nndl_train_state *from)
{
    t->state = from ? *from : (nndl_train_state){.sched = nndl_schedule_start(&t->sched)};
    if (from && from->velocity && t->sgd.velocity)
        memcpy(t->sgd.velocity, from->velocity, sizeof(float) * t->net->n_params);
    t->state.velocity = t->sgd.velocity;
    t->state.n_velocity = t->sgd.velocity ? t->net->n_params : 0;
}

nndl_status train_reserve_rows(nndl_trainer *t, int rows, nndl_err *err)
{
    if (rows <= t->rows) return NNDL_OK;
    size_t d = (size_t)t->train->src->rows * t->train->src->cols;
    float *x = realloc(t->x, sizeof *x * (size_t)rows * d);
    if (x) t->x = x;
    uint8_t *y = x ? realloc(t->y, (size_t)rows) : NULL;
    if (y) t->y = y;
    if (!x || !y) return nndl_fail(err, NNDL_ENOMEM, "out of memory for batches of %d rows", rows);
    t->rows = rows;
    return nndl_net_reserve(t->net, rows, err);
}

nndl_status nndl_trainer_create(nndl_trainer **out, const nndl_trainer_setup *s, nndl_err *err)
{
    const nndl_config *cfg = s->cfg;
    nndl_trainer *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t) return nndl_fail(err, NNDL_ENOMEM, "out of memory for the trainer");
    t->net = s->net;
    t->cfg = *cfg;
    t->plan = *s->plan;
    t->train = s->train;
    t->val = s->val;
    t->dist = s->dist;
    t->hooks = s->hooks;
    t->ops = ops_of(s->plan->kind);
    t->sched =
        (nndl_schedule){cfg->eta, cfg->patience, cfg->lr_decay, cfg->lr_min_ratio, cfg->early_stop};
    int shard = (cfg->batch + t->dist->size - 1) / t->dist->size;
    t->perm = malloc(sizeof *t->perm * (t->train->n > 0 ? t->train->n : 1));
    nndl_status st =
        t->perm ? train_reserve_rows(
                      t, shard > nndl_eval_rows(t->net) ? shard : nndl_eval_rows(t->net), err)
                : nndl_fail(err, NNDL_ENOMEM, "out of memory for a permutation of %d", t->train->n);
    if (st == NNDL_OK)
        st = nndl_sgd_init(&t->sgd, t->net, cfg->eta, cfg->l1, cfg->l2, cfg->momentum, t->train->n,
                           err);
    if (st == NNDL_OK) start_state(t, s->from);
    /* every rank joins the strategy's collective set-up, or none does */
    if ((st = nndl_dist_agree(t->dist, st, err, NULL)) == NNDL_OK) st = t->ops->init(t, err);
    if (st != NNDL_OK) {
        nndl_trainer_free(t);
        return st;
    }
    *out = t;
    return NNDL_OK;
}

void nndl_trainer_free(nndl_trainer *t)
{
    if (!t) return;
    t->ops->free(t);
    nndl_sgd_free(&t->sgd);
    free(t->x);
    free(t->y);
    free(t->perm);
    free(t);
}

const nndl_train_state *nndl_trainer_state(const nndl_trainer *t) { return &t->state; }

double nndl_trainer_penalty(const nndl_trainer *t) { return nndl_sgd_penalty(&t->sgd, t->net); }

/* ---- what the strategies share ---- */

int train_gather_shard(nndl_trainer *t, int b0, int bsz, nndl_dropout *drop, float *x)
{
    int first, len;
    nndl_dist_shard(bsz, t->dist->size, t->dist->rank, &first, &len);
    /* positions in the training split: the samples' global indices */
    const int *order = t->perm + b0 + first;
    uint32_t epoch = (uint32_t)t->state.epoch + 1;
    nndl_augment aug = {t->cfg.augment, t->cfg.seed, epoch};
    *drop = (nndl_dropout){(float)t->cfg.dropout, t->cfg.seed, epoch, order,
                           (float)t->cfg.dropout_conv};
    nndl_split_gather_aug(t->train, order, len, x, t->y, &aug);
    /* the next step's shard: its rows load while this step computes */
    if (b0 + bsz < t->train->n) {
        int left = t->train->n - (b0 + bsz), nb = left < t->cfg.batch ? left : t->cfg.batch, f2, l2;
        nndl_dist_shard(nb, t->dist->size, t->dist->rank, &f2, &l2);
        nndl_split_prefetch(t->train, t->perm + b0 + bsz + f2, l2);
    }
    return len;
}

int train_stop_here(nndl_trainer *t)
{
    const nndl_train_hooks *h = &t->hooks;
    t->steps_run++;
    return (h->stop_request && *h->stop_request) ||
           (h->stop_after_steps > 0 && t->steps_run >= h->stop_after_steps);
}

nndl_status train_non_finite(const nndl_trainer *t, double cost, int b0, nndl_err *err)
{
    return nndl_fail(err, NNDL_ENUM, "non-finite %s (cost %g) at epoch %d, step %d of the epoch",
                     isfinite(cost) ? "gradient" : "cost", cost, t->state.epoch + 1,
                     b0 / t->cfg.batch + 1);
}

/* ---- the epoch ---- */

/* The step at position s of the epoch, counted; NNDL_OK also for a skipped batch (--on-nan
 * skip-batch). */
static nndl_status run_step(nndl_trainer *t, long s, nndl_err *err)
{
    int n = t->train->n, B = t->cfg.batch, b0 = (int)(s * B), bsz = n - b0 < B ? n - b0 : B;
    double c = 0.0;
    t->sgd.eta = t->state.sched.eta;
    nndl_status st = t->ops->step(t, b0, bsz, &c, err);
    /* nothing of it was applied: go on */
    if (st == NNDL_ENUM && t->cfg.on_nan == NNDL_ON_NAN_SKIP) {
        t->state.skipped++;
        t->state.step = s + 1;
        return NNDL_OK;
    }
    if (st == NNDL_ENUM) {
        char what[512];
        snprintf(what, sizeof what, "%s", err->msg);
        return nndl_fail(
            err, NNDL_ENUM,
            "%s: the learning rate is probably too large (--eta %g); nothing of this "
            "step was applied and the last checkpoint is intact (or train with --on-nan "
            "skip-batch)",
            what, t->state.sched.eta);
    }
    if (st != NNDL_OK && st != NNDL_ESTOP) return st;
    t->state.cost_sum += c;
    t->state.step = s + 1;
    if (st == NNDL_ESTOP)
        return nndl_fail(err, NNDL_ESTOP, "stopped at epoch %d, step %ld", t->state.epoch + 1,
                         s + 1);
    return NNDL_OK;
}

/* The epoch's steps, from state.step on. */
static nndl_status run_steps(nndl_trainer *t, long n_steps, nndl_err *err)
{
    const nndl_train_hooks *h = &t->hooks;
    for (long s = t->state.step; s < n_steps; s++) {
        nndl_status st = run_step(t, s, err);
        if (st != NNDL_OK) return st;
        if (h->on_progress && (s & 63) == 63)
            h->on_progress(h->ctx, t->state.epoch + 1, s + 1, n_steps);
        if (h->on_step && h->step_every > 0 && (s + 1) % h->step_every == 0 && s + 1 < n_steps &&
            (st = h->on_step(h->ctx, err)) != NNDL_OK)
            return st;
    }
    return NNDL_OK;
}

nndl_status nndl_trainer_epoch(nndl_trainer *t, nndl_epoch_metrics *m, nndl_err *err)
{
    nndl_train_state *z = &t->state;
    int n = t->train->n, B = t->cfg.batch, epoch = z->epoch + 1;
    if (t->cfg.shuffle)
        nndl_rng_permutation(t->cfg.seed, NNDL_STREAM_PERM, (uint32_t)epoch, t->perm, n);
    else
        for (int i = 0; i < n; i++) t->perm[i] = i;
    /* the last batch may be smaller, as in network.py */
    long n_steps = (n + B - 1) / B, first_step = z->step;
    double t0 = now();
    nndl_status st = run_steps(t, n_steps, err);
    if (st != NNDL_OK) return st;
    double t1 = now();
    memset(m, 0, sizeof *m);
    m->epoch = epoch;
    m->train_cost = n_steps > z->skipped ? z->cost_sum / (double)(n_steps - z->skipped) : NAN;
    m->skipped = z->skipped;
    m->learning_rate = z->sched.eta;
    m->seconds = t1 - t0;
    /* a resumed epoch did only the rest */
    m->samples_per_s = (double)(n - first_step * B) / m->seconds;
    if ((st = nndl_eval_split(t->net, t->val, t->dist, &m->val_accuracy, &m->val_cost, err)) !=
        NNDL_OK)
        return st;
    m->eval_seconds = now() - t1;
    z->epoch = epoch;
    z->step = 0;
    z->cost_sum = 0.0;
    z->skipped = 0;
    /* every rank: the same numbers, the same decision */
    nndl_schedule_update(&t->sched, &z->sched, m->val_accuracy);
    return NNDL_OK;
}
