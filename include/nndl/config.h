/* nndl/config.h: what a training run is asked to do (nndl_config), and the one place that turns it,
 * with the ranks and nodes it runs on, into the step that runs (nndl_config_plan).
 *
 * The "auto" settings of --reduce, --split and --overlap, and --reproducible, are resolved here and
 * nowhere else, once, before training: the trainer then runs the plan it is given. Pure logic: no
 * MPI (the caller counts the ranks and the ranks of this node).
 */
#ifndef NNDL_CONFIG_H
#define NNDL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "nndl/err.h"
#include "nndl/net.h"

#define NNDL_MAX_SIZES        64
#define NNDL_MAX_SHARED_RANKS 256 /* ranks of one node that can share the parameters */

/* --reduce: how the ranks combine their shards' work */
typedef enum { NNDL_REDUCE_AUTO, NNDL_REDUCE_MPI, NNDL_REDUCE_SHARED } nndl_reduce;
/* --split: how the ranks of a node share the node-shared step's GEMMs */
typedef enum { NNDL_SPLIT_AUTO, NNDL_SPLIT_ROWS, NNDL_SPLIT_UNITS } nndl_split_how;
/* --overlap: the MPI reduction in buckets that overlap backprop */
typedef enum { NNDL_OVERLAP_AUTO, NNDL_OVERLAP_ON, NNDL_OVERLAP_OFF } nndl_overlap;
/* --on-nan */
typedef enum { NNDL_ON_NAN_STOP, NNDL_ON_NAN_SKIP } nndl_on_nan;

typedef struct {
    /* the model: --sizes (a fully connected net, inputs first) or --layers (n_layers > 0; n_sizes
     * 0) */
    int sizes[NNDL_MAX_SIZES];
    int n_sizes;
    nndl_layer_spec layers[NNDL_MAX_SIZES];
    int n_layers;
    nndl_act act[NNDL_MAX_SIZES]; /* hidden layers' activations */
    nndl_cost cost;
    nndl_init init;
    uint64_t seed;
    /* the optimisation (book chapters 1 and 3) */
    double eta;
    int batch;
    int epochs;
    int shuffle;         /* 1: a new permutation each epoch; 0: file order */
    double l1, l2;       /* regularisation lambdas (book form, n = training-set size) */
    double momentum;     /* mu */
    double dropout;      /* p of hidden units */
    double dropout_conv; /* p of the last conv layer's outputs (the first dense layer's inputs) */
    int augment;         /* 1: --augment shift */
    int patience;        /* learning-rate schedule (0: constant eta) */
    double lr_decay, lr_min_ratio;
    int early_stop;
    int monitor_train, monitor_test; /* extra full passes each epoch */
    nndl_on_nan on_nan;
    /* how the ranks compute it (the plan resolves these) */
    int reproducible; /* the same bits for any rank count (fixed chunks, exact fixed-point sums) */
    int chunk;        /* reproducible mode: samples per chunk (0: ceil(batch / 8)) */
    nndl_reduce reduce;
    nndl_split_how split;
    nndl_overlap overlap;
} nndl_config;

/* ---- the step plan ---- */

typedef enum {
    NNDL_STEP_ALLREDUCE,   /* each rank's gradient, MPI_Allreduce, the same update on every rank */
    NNDL_STEP_FUSED,       /* no gradient formed: the update inside the weight-gradient GEMM */
    NNDL_STEP_REPRODUCIBLE /* fixed chunks, exact fixed-point sums: the same bits for any P */
} nndl_step_kind;

typedef struct {
    nndl_step_kind kind;
    int shared;    /* FUSED on P > 1: the ranks of the node share the parameters and the batch */
    int units;     /* FUSED shared: every GEMM split by units (else each rank its rows) */
    int conv_rows; /* units on a conv net: its conv layers still by rows */
    int replicas;  /* rows on a conv net: each rank keeps the parameters and applies the whole
                      update (no parameter shared between cores; see parallel.md) */
    int overlap;   /* ALLREDUCE on P > 1: the reduction in buckets overlapping backprop */
    char why[200]; /* why these choices, in words (for the start-up header) */
} nndl_step_plan;

/* Where the run is: its ranks, and how many of them share this node (all of them on one node); the
 * net's size and whether it has conv layers. */
typedef struct {
    int ranks, node_ranks;
    size_t n_params;
    long n_train;
    int has_conv;
} nndl_plan_env;

/* The large-net threshold of the "auto" choices (--split auto, --overlap auto): 2^20 parameters. */
#define NNDL_LARGE_NET (1u << 20)

/* Resolve the step for c on env into *p. A contradiction between flags given explicitly (e.g.
 * --reduce shared with --overlap on) is NNDL_EARG with a message that names both and the fix;
 * a wish the machine cannot grant (--reduce shared on ranks of several nodes) falls back, and
 * p->why says so. */
nndl_status nndl_config_plan(const nndl_config *c, const nndl_plan_env *env, nndl_step_plan *p,
                             nndl_err *err);

/* ---- the model ---- */

/* Weight layers of c's net, and the units of its last (the classes it tells apart). */
int nndl_config_depth(const nndl_config *c);
int nndl_config_outputs(const nndl_config *c);

/* The net c describes, over inputs of shape data (--layers; --sizes takes its own first size). */
nndl_status nndl_config_net(const nndl_config *c, nndl_shape data, nndl_net **out, nndl_err *err);

/* "conv:20x5x5,pool:2x2,dense:100,dense:10": c's layers as --layers writes them. */
void nndl_config_layers_str(const nndl_config *c, char *buf, size_t cap);

/* "fused, node-shared, split by units" and the like. */
void nndl_step_plan_name(const nndl_step_plan *p, char *buf, size_t cap);

#endif
