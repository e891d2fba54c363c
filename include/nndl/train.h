/* nndl/train.h: the data-parallel training loop shared by every rank.
 *
 * One step (default mode): this rank gathers its shard of the global mini-batch (positions taken from the
 * epoch's permutation, identical on every rank), sums the shard's gradient, joins ONE allreduce
 * of the gradient buffer (with the batch cost riding in its tail), divides by the global batch
 * size and applies the same SGD update as every other rank. Evaluation is sharded and reduced.
 *
 * The fused step (one rank, or every rank on one node): no gradient is formed. Each rank
 * runs forward and backprop over its rows, keeping every layer's delta, then updates its share of
 * every layer's units from the whole batch inside the weight-gradient GEMM (nndl_net_update_part). On
 * several ranks the parameters and the batch's activations and deltas live in node-shared memory:
 * a barrier after the deltas, one after the update; the riders (cost, stop flag, bound) sit in a small
 * shared slot per rank and are summed in rank order. On large nets (cfg.split) every GEMM is split by
 * units instead of rows: each rank computes its share of each layer's units for the whole batch, with
 * a barrier after each layer, so that it packs only its share of each weight matrix.
 *
 * With overlap (large nets on several ranks), the one reduction is cut into buckets of the same
 * buffer, each started (MPI_Iallreduce) as soon as backprop has written it, in the same order on
 * every rank, and advanced between the panels of the remaining GEMMs.
 *
 * Reproducible mode (cfg.reproducible): the global batch is cut into fixed chunks of cfg.chunk
 * samples whatever the rank count; ranks take whole chunks; each chunk's gradient is computed
 * alone (the same GEMM shapes on any rank), rounded once to int64 fixed point and the chunks are
 * summed exactly (nndl/fixed.h). The summed gradient, and so every weight, is then the same bits
 * for any number of ranks. It costs one more (tiny) allreduce per step and the per-chunk work.
 * The loop reports through hooks; it never prints.
 */
#ifndef NNDL_TRAIN_H
#define NNDL_TRAIN_H

#include <stdint.h>

#include "nndl/data.h"
#include "nndl/dist.h"
#include "nndl/net.h"
#include "nndl/optim.h"

#define NNDL_MAX_SIZES 64

typedef struct {
    int sizes[NNDL_MAX_SIZES];
    int n_sizes;
    nndl_act act[NNDL_MAX_SIZES]; /* hidden layers' activations */
    nndl_cost cost;
    nndl_init init;
    double eta;
    int batch;
    int epochs;
    uint64_t seed;
    int shuffle;     /* 1: a new permutation each epoch; 0: file order */
    double l1, l2;   /* regularisation lambdas (book form, n = training-set size) */
    double momentum; /* mu */
    double dropout;  /* p of hidden units */
    int augment;     /* 1: --augment shift */
    int patience;    /* learning-rate schedule (0: constant eta) */
    double lr_decay, lr_min_ratio;
    int early_stop;
    int monitor_train, monitor_test; /* extra full passes each epoch */
    int on_nan_skip; /* a non-finite cost: 0 = stop with an error, 1 = skip that batch and go on */
    long step_hook_every; /* call hooks->on_step after every this many steps of an epoch (0: never) */
    int reproducible; /* 1: the same bits for any rank count (fixed chunks, exact fixed-point sums) */
    int chunk;        /* reproducible mode: samples per chunk (0: ceil(batch / 8)) */
    int reduce;       /* 1: the node-shared fused step (all ranks on one node), 0: MPI_Allreduce
                       * of a materialised gradient (and a separate update pass), -1: auto (fused wherever it can) */
    int split;        /* the node-shared fused step: 1 each rank its rows, 2 every GEMM split by units, 0 auto
                       * (units for nets of >= 1M parameters) */
    int overlap;      /* gradient reduction in buckets overlapping backprop: 1 on, 0 off, -1 for nets of >= 1M
                       * parameters (the program resolves --overlap auto by the node layout) */
} nndl_config;

typedef struct {
    int epoch;            /* 1-based */
    double train_cost;    /* mean of the epoch's mini-batch costs */
    double val_accuracy;  /* fraction in [0, 1] */
    double val_cost;      /* mean per sample */
    double learning_rate;
    double seconds;       /* training steps of the epoch, wall clock */
    double samples_per_s; /* training samples / seconds */
    double eval_seconds;  /* the validation pass */
    long skipped;         /* batches skipped for a non-finite cost (--on-nan skip-batch) */
} nndl_epoch_metrics;

struct nndl_trainer;
typedef struct {
    void *ctx;
    /* after each epoch (every rank calls it; the program prints on rank 0 only) */
    void (*on_epoch)(void *ctx, const nndl_epoch_metrics *m);
    /* every few steps: step done out of n_steps in this epoch */
    void (*on_progress)(void *ctx, int epoch, long step, long n_steps);
    /* COLLECTIVE, every cfg.step_hook_every steps (on every rank at the same step): e.g. a
     * mid-epoch checkpoint. t->step and t->cost_sum are up to date. A non-OK status stops the epoch. */
    nndl_status (*on_step)(void *ctx, struct nndl_trainer *t, nndl_err *err);
} nndl_train_hooks;

typedef struct nndl_trainer {
    nndl_net *net;
    const nndl_split *train, *val;
    const nndl_dist *dist;
    nndl_config cfg;
    int epoch;        /* epochs completed */
    long step;        /* steps done in epoch + 1 (non-zero only inside an epoch or after a mid-epoch resume) */
    double cost_sum;  /* sum of those steps' mini-batch costs */
    long skipped;     /* of those steps, skipped for a non-finite cost */
    /* stopping at a step boundary: a rank's request rides in the gradient reduction, so every rank
     * sees it at the same step and no rank is left waiting in a collective */
    volatile int *stop_request; /* set asynchronously (a signal handler), or NULL */
    long stop_after_steps;      /* stop after this many steps in this launch (0: never) */
    long steps_run;             /* steps in this launch */
    nndl_sgd sgd;               /* the update rule and its state (momentum velocity) */
    nndl_schedule sched;        /* the learning-rate schedule and its state */
    /* scratch, sized for the largest shard and evaluation block */
    int rows;
    /* overlap: the buckets [bucket[i+1], bucket[i]) of the gradient buffer, from its end; each is
     * reduced (MPI_Iallreduce) as soon as backprop has finished it */
    int overlap, n_buckets, next_bucket;
    float stop_flag; /* this step's stop request, for the first bucket */
    size_t bucket[NNDL_MAX_BUCKETS + 1];
    nndl_dist_pending pending;
    nndl_backprop_hooks hooks;
    /* the fused step (one rank, or the ranks of one node sharing the parameters and the batch buffers,
     * set up at the first epoch; the net's own parameter buffer is kept to give back) */
    int fused, want_shared, shared_tried, shared;
    int units; /* the shared step split by units (nndl_net_forward_units ...) rather than by rows */
    nndl_dist_shared sh;
    float *own_params, *own_velocity;
    nndl_batch all, mine; /* the batch's activations and deltas from row 0, and from this rank's first row */
    float **bptr;         /* the pointer arrays of all and mine */
    float *bbuf;          /* one rank: the buffers themselves */
    int batch_first;      /* this rank's first row in them */
    /* reproducible mode: fixed chunks of the global batch, each rank holds its chunks' gradients
     * ([cap_chunks x (n_params + 1)], the cost last) until the exponents are agreed */
    int chunk, cap_chunks, n_seg;
    float *cg, *seg_max; /* seg_max: [n_seg + 2]: each segment's max |g|, non-finite flag, stop flag */
    int64_t *acc;        /* [n_params + 1] */
    float *x;
    uint8_t *y;
    int *perm;
} nndl_trainer;

/* Set up a trainer over net (already initialised), reserving every buffer the steps need. */
nndl_status nndl_trainer_init(nndl_trainer *t, nndl_net *net, const nndl_config *cfg, const nndl_split *train,
                              const nndl_split *val, const nndl_dist *dist, nndl_err *err);
void nndl_trainer_free(nndl_trainer *t);

/* Train epoch t->epoch + 1 from step t->step (0, or where a resumed checkpoint stopped), evaluate
 * on the validation split, fill *m. Collective. Returns NNDL_ESTOP, with t->step at the step
 * boundary where every rank stopped, when a stop was requested. */
nndl_status nndl_trainer_epoch(nndl_trainer *t, const nndl_train_hooks *hooks, nndl_epoch_metrics *m,
                               nndl_err *err);

/* Accuracy (fraction) and mean cost of the network on split s, sharded over the ranks. Collective. */
nndl_status nndl_trainer_evaluate(nndl_trainer *t, const nndl_split *s, double *accuracy, double *cost,
                                  nndl_err *err);

/* The confusion matrix of split s: conf[true * n_out + predicted] counts, n_out = output width,
 * summed over the ranks. Collective. */
nndl_status nndl_trainer_confusion(nndl_trainer *t, const nndl_split *s, double *conf, nndl_err *err);

#endif
