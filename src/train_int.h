/* train_int.h: the trainer's insides, shared by train.c and the step strategies (not a public
 * header).
 *
 * A strategy is three functions behind step_ops: init (COLLECTIVE: its buffers, and for the
 * node-shared step the move of the parameters into shared memory), step (one SGD step on the global
 * batch at positions [b0, b0 + bsz) of the epoch's permutation), and free (COLLECTIVE). Each keeps
 * its own data behind t->impl.
 */
#ifndef NNDL_TRAIN_INT_H
#define NNDL_TRAIN_INT_H

#include "nndl/train.h"

struct nndl_trainer;
typedef struct {
    nndl_status (*init)(struct nndl_trainer *t, nndl_err *err);
    /* one step; *batch_cost = the batch's mean cost. NNDL_ENUM: nothing of the step was applied;
     * NNDL_ESTOP: the step is complete and every rank stops here. */
    nndl_status (*step)(struct nndl_trainer *t, int b0, int bsz, double *batch_cost, nndl_err *err);
    void (*free)(struct nndl_trainer *t);
} step_ops;

extern const step_ops step_allreduce, step_fused, step_reproducible;

struct nndl_trainer {
    nndl_net *net;
    nndl_config cfg;
    nndl_step_plan plan;
    const nndl_split *train, *val;
    const nndl_dist *dist;
    nndl_train_hooks hooks;
    nndl_train_state state; /* its velocity is sgd.velocity (refreshed by nndl_trainer_state) */
    nndl_schedule sched;
    nndl_sgd sgd;   /* the update rule (eta follows state.sched.eta at every step) */
    long steps_run; /* steps in this launch (--stop-after-steps) */
    /* scratch: this rank's shard of a batch, the epoch's permutation */
    int rows;
    float *x;
    uint8_t *y;
    int *perm;
    const step_ops *ops;
    void *impl;
};

/* Gather this rank's shard of the global batch at b0 (bsz samples) into x and t->y, and start
 * loading the next step's shard; *drop = the dropout of the shard's samples. Returns the shard's
 * rows. */
int train_gather_shard(struct nndl_trainer *t, int b0, int bsz, nndl_dropout *drop, float *x);

/* Make t->x, t->y and the net's workspace hold at least rows rows. */
nndl_status train_reserve_rows(struct nndl_trainer *t, int rows, nndl_err *err);

/* Count this step; 1 if this rank is asked to stop at it (a signal, or --stop-after-steps). */
int train_stop_here(struct nndl_trainer *t);

/* The NNDL_ENUM error of a step whose cost or gradient is not finite. */
nndl_status train_non_finite(const struct nndl_trainer *t, double cost, int b0, nndl_err *err);

#endif
