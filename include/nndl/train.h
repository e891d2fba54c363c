/* nndl/train.h: the data-parallel training loop shared by every rank.
 *
 * Every global mini-batch is cut into one shard per rank (positions taken from the epoch's
 * permutation, identical on every rank). What a step does with the shards is the plan's
 * (nndl/config.h), chosen once before training; each strategy lives in its own file
 * (docs/architecture.md): step_allreduce.c     each rank's gradient, one MPI_Allreduce (or buckets
 * overlapping backprop), the same update on every rank; step_fused.c         no gradient formed:
 * the update runs inside the weight-gradient GEMM; on the ranks of one node the parameters and the
 * batch's activations are node-shared and each rank updates its share of every layer (split by rows
 * or by units); step_reproducible.c  fixed chunks of the batch, exact fixed-point sums: the same
 * bits for any P. The trainer is opaque: callers see its state (nndl_train_state) and its metrics,
 * nothing else. It never prints: progress and mid-epoch checkpoints go through hooks.
 */
#ifndef NNDL_TRAIN_H
#define NNDL_TRAIN_H

#include <stdint.h>

#include "nndl/config.h"
#include "nndl/data.h"
#include "nndl/dist.h"
#include "nndl/net.h"
#include "nndl/optim.h"

/* Where training stands: with the parameters, everything an exact resume needs. The run file writes
 * and reads it whole (nndl_runfile_checkpoint, nndl_runfile_load_checkpoint). */
typedef struct {
    int epoch;       /* epochs completed */
    long step;       /* steps done in epoch + 1 (non-zero only within an epoch) */
    double cost_sum; /* sum of those steps' mini-batch costs */
    /* of those steps, skipped for a non-finite cost (--on-nan skip-batch) */
    long skipped;
    nndl_schedule_state sched; /* the learning-rate schedule */
    /* [n_velocity] momentum's velocity, laid out as the parameters; NULL without */
    float *velocity;
    size_t n_velocity;
} nndl_train_state;

typedef struct {
    int epoch;            /* 1-based */
    double train_cost;    /* mean of the epoch's mini-batch costs */
    double val_accuracy;  /* fraction in [0, 1] */
    double val_cost;      /* mean per sample */
    double learning_rate; /* the eta the epoch trained with */
    double seconds;       /* training steps of the epoch, wall clock */
    double samples_per_s; /* training samples / seconds */
    double eval_seconds;  /* the validation pass */
    long skipped;         /* batches skipped for a non-finite cost (--on-nan skip-batch) */
} nndl_epoch_metrics;

/* What the caller plugs into the loop (all optional). */
typedef struct {
    void *ctx;
    /* every few steps: step done out of n_steps in this epoch */
    void (*on_progress)(void *ctx, int epoch, long step, long n_steps);
    /* COLLECTIVE, after every step_every steps of an epoch (on every rank at the same step): e.g. a
     * mid-epoch checkpoint, from nndl_trainer_state. A non-OK status stops the epoch. */
    nndl_status (*on_step)(void *ctx, nndl_err *err);
    long step_every;
    /* stopping at a step boundary: a rank's request rides in the step's reduction, so every rank
     * sees it at the same step and no rank is left waiting in a collective */
    volatile int *stop_request; /* set asynchronously (a signal handler), or NULL */
    long stop_after_steps;      /* stop after this many steps of this launch (0: never) */
} nndl_train_hooks;

typedef struct nndl_trainer nndl_trainer;

typedef struct {
    /* parameters already set: initialised, loaded, or the checkpoint's */
    nndl_net *net;
    const nndl_config *cfg;
    const nndl_step_plan *plan; /* nndl_trainer_plan */
    const nndl_split *train, *val;
    const nndl_dist *dist;
    const nndl_train_state *from; /* a resumed state (its velocity is copied), or NULL: the start */
    nndl_train_hooks hooks;
} nndl_trainer_setup;

/* Count this node's ranks (COLLECTIVE) and resolve the step for cfg (nndl_config_plan). */
nndl_status nndl_trainer_plan(const nndl_config *cfg, const nndl_net *net, long n_train,
                              const nndl_dist *d, nndl_step_plan *p, nndl_err *err);

/* COLLECTIVE. A trainer over s->net that runs s->plan; reserves every buffer the steps need. With
 * the node-shared step the parameters (and the velocity) move into node-shared memory here:
 * net->params is that copy until nndl_trainer_free gives the net its own buffer back, with the
 * trained values. */
nndl_status nndl_trainer_create(nndl_trainer **out, const nndl_trainer_setup *s, nndl_err *err);
void nndl_trainer_free(nndl_trainer *t); /* COLLECTIVE; NULL is fine */

/* COLLECTIVE. Train epoch state.epoch + 1 from state.step (0, or where a resumed checkpoint
 * stopped), evaluate on the validation split, advance the schedule, fill *m. Returns NNDL_ESTOP,
 * with the state at the step boundary where every rank stopped, when a stop was requested. */
nndl_status nndl_trainer_epoch(nndl_trainer *t, nndl_epoch_metrics *m, nndl_err *err);

/* The state now (its velocity points at the trainer's live buffer: read it, do not keep it). */
const nndl_train_state *nndl_trainer_state(const nndl_trainer *t);

/* The regularisation term of the cost for the parameters now ((l2/2n) Σw² + (l1/n) Σ|w|). */
double nndl_trainer_penalty(const nndl_trainer *t);

#endif
