/* nndl/optim.h: the update rule (SGD with L1/L2 regularisation and momentum) and the learning-rate
 * schedule of the book's chapter 3. Pure computation: no MPI, no I/O. */
#ifndef NNDL_OPTIM_H
#define NNDL_OPTIM_H

#include "nndl/net.h"

/* ---- the update ---- */

typedef struct {
    double eta;      /* current learning rate */
    double l1, l2;   /* lambda of the L1 and L2 terms (0 = off) */
    double momentum; /* mu (0 = plain SGD) */
    long n_train;    /* n in the book's lambda/n: the size of the training set */
    float *velocity; /* [n_params] when momentum > 0, else NULL */
    size_t n_params;
} nndl_sgd;

nndl_status nndl_sgd_init(nndl_sgd *o, const nndl_net *net, double eta, double l1, double l2,
                          double momentum, long n_train, nndl_err *err);
void nndl_sgd_free(nndl_sgd *o);

/* The regularisation term of the cost: (l2 / 2n) sum w^2 + (l1 / n) sum |w|, over weights only. */
double nndl_sgd_penalty(const nndl_sgd *o, const nndl_net *net);

/* out[i] = the gradient the step follows: net->grads / batch plus the penalty's gradient
 * ((l2/n) w + (l1/n) sgn w on weights; biases are not regularised). out: [n_params]. */
void nndl_sgd_gradient(const nndl_sgd *o, const nndl_net *net, int batch, float *out);

/* 1 if the rule can run inside the GEMM (nndl_sgd_fused): always with momentum; without it the L2
 * decay factor 1 - eta l2/n must be > 0. n_train as in nndl_sgd_init. */
int nndl_sgd_fusable(double eta, double l2, double momentum, long n_train);

/* The coefficients of the fused update (nndl_net_update_part) for a global batch of batch samples:
 * the same rule as nndl_sgd_step. Plain: w <- (1 - eta l2/n) w - eta (l1/n) sgn w - (eta/B) Σ
 * gradient, with the L1 term applied first and scaled by 1/decay; momentum: into o->velocity. 0 if
 * the rule cannot be fused (no momentum and a decay factor <= 0). */
int nndl_sgd_fused(const nndl_sgd *o, int batch, nndl_fused *u);

/* One update from net->grads (SUMS over the global batch of batch samples):
 * plain:    w <- w - eta g                 (with L2 this is the book's (1 - eta l2/n) w - eta grad)
 * momentum: v <- mu v - eta g;  w <- w + v */
void nndl_sgd_step(nndl_sgd *o, nndl_net *net, int batch);

/* ---- the learning-rate schedule ---- */

typedef struct {
    double eta0;      /* initial learning rate */
    int patience;     /* epochs without improvement before eta /= decay (0 = constant eta) */
    double decay;     /* > 1 */
    double min_ratio; /* stop when eta < eta0 / min_ratio */
    int early_stop;   /* stop after this many epochs without improvement (0 = off) */
} nndl_schedule;

/* Where the schedule stands: part of the training state a checkpoint keeps. */
typedef struct {
    double eta;       /* current learning rate */
    double best;      /* best validation accuracy so far (-1 before the first epoch) */
    int since_best;   /* epochs since it last improved (early stop counts these) */
    int since_change; /* epochs since it improved or eta decayed (the patience counts these) */
    int decays;       /* how many times eta was divided */
    int stopped;      /* 1: the schedule has ended training */
} nndl_schedule_state;

/* The state at the start: eta = s->eta0, no best yet. */
nndl_schedule_state nndl_schedule_start(const nndl_schedule *s);

/* After an epoch with validation accuracy val: improve, wait, decay or stop. Returns st->stopped.
 */
int nndl_schedule_update(const nndl_schedule *s, nndl_schedule_state *st, double val);

#endif
