/* Run under mpiexec -n P: train with all P ranks, then (on rank 0) the same run with one rank,
 * and compare every layer: ||W_P - W_1|| / ||W_1|| <= 1e-5 (Frobenius). Real MNIST, real MPI.
 * Usage: test_ranks DATA_DIR TRAIN_SAMPLES BATCH [DROPOUT MOMENTUM L2 AUGMENT]
 * (prints "1 passed, 0 failed" or "0 passed, 1 failed"). With dropout the masks depend on the
 * sample, not the rank, and augmentation likewise, so the ranks still train the same model. Every
 * rank's parameters must also be bit-identical to rank 0's at the end (each rank applies the same
 * update; a conv net's fused step keeps a replica of the parameters on every rank). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nndl/dist.h"
#include "nndl/train.h"

static nndl_status train(MPI_Comm comm, const nndl_config *cfg, const nndl_split *tr,
                         const nndl_split *va, nndl_net **out, nndl_err *err)
{
    nndl_dist d;
    nndl_trainer *t;
    nndl_step_plan plan;
    nndl_status st = nndl_dist_init(&d, comm, err);
    if (st == NNDL_OK) st = nndl_config_net(cfg, (nndl_shape){1, 28, 28}, out, err);
    if (st != NNDL_OK) return st;
    nndl_net_init(*out, cfg->init, cfg->seed);
    if ((st = nndl_trainer_plan(cfg, *out, tr->n, &d, &plan, err)) != NNDL_OK) return st;
    nndl_trainer_setup s = {*out, cfg, &plan, tr, va, &d, NULL, {0}};
    if ((st = nndl_trainer_create(&t, &s, err)) != NNDL_OK) return st;
    for (int e = 0; e < cfg->epochs && st == NNDL_OK; e++) {
        nndl_epoch_metrics m;
        st = nndl_trainer_epoch(t, &m, err);
    }
    nndl_trainer_free(t);
    return st;
}

/* The run's settings: the arguments, then the variant the environment asks for. */
static nndl_config config_of(int argc, char **argv)
{
    nndl_config cfg = {.sizes = {784, 30, 10},
                       .n_sizes = 3,
                       .cost = NNDL_COST_QUADRATIC,
                       .init = NNDL_INIT_NIELSEN,
                       .eta = 0.5,
                       .batch = atoi(argv[3]),
                       .epochs = 1,
                       .seed = 3,
                       .shuffle = 1,
                       .lr_decay = 2,
                       .lr_min_ratio = 128};
    if (argc == 8) {
        cfg.dropout = atof(argv[4]);
        cfg.momentum = atof(argv[5]);
        cfg.l2 = atof(argv[6]);
        cfg.augment = atoi(argv[7]);
        cfg.eta = 0.1; /* with momentum 0.9: still not chaotic */
        cfg.epochs = 2;
    }
    if (getenv(
            "NNDL_TEST_OVERLAP")) { /* the reduction in buckets (--overlap on): several of them */
        cfg.overlap = NNDL_OVERLAP_ON;
        cfg.sizes[1] = 600;
        cfg.eta = 0.1;
    }
    if (getenv("NNDL_TEST_SHARED")) { /* --reduce shared (the fused step), with L2 (its decay) */
        cfg.reduce = NNDL_REDUCE_SHARED;
        cfg.l2 = argc == 8 ? cfg.l2 : 5.0;
    }
    if (getenv("NNDL_TEST_SPLIT")) cfg.split = NNDL_SPLIT_UNITS; /* --split units */
    if (getenv("NNDL_TEST_MPI")) cfg.reduce = NNDL_REDUCE_MPI;   /* the gradient + MPI_Allreduce */
    if (getenv("NNDL_TEST_CONV")) { /* conv:6x5x5,pool:2x2,conv:8x3x3,dense:30,dense:10, ReLU,
                                       softmax */
        nndl_layer_spec s[] = {{NNDL_LAYER_CONV, 6, 5, 2},
                               {NNDL_LAYER_CONV, 8, 3, 1},
                               {NNDL_LAYER_DENSE, 30, 0, 1},
                               {NNDL_LAYER_DENSE, 10, 0, 1}};
        memcpy(cfg.layers, s, sizeof s);
        cfg.n_layers = 4;
        cfg.n_sizes = 0;
        for (int l = 0; l < 3; l++) cfg.act[l] = NNDL_ACT_RELU;
        cfg.cost = NNDL_COST_LOG_LIKELIHOOD;
        cfg.eta = 0.05;
        /* one epoch: max-pooling's argmax is a discrete choice; two pre-pool values within rounding
         * of each other pick different winners on different rank counts (the conv gradient is a sum
         * over the ranks' rows), and the models then part at 1e-4 (seen in epoch 2 of seed 3) */
        cfg.epochs = 1;
        cfg.dropout_conv = cfg.dropout; /* with _dropout: network3's dropout of the FC inputs too */
    }
    return cfg;
}

/* 1 if every layer of np is within 1e-5 (relative, Frobenius) of n1's and training moved the
 * weights. */
static int same_model(const nndl_net *np, const nndl_net *n1, const nndl_config *cfg, int size)
{
    int ok = 1;
    for (int l = 0; l < np->n_layers; l++) {
        const nndl_layer *a = &np->layer[l], *b = &n1->layer[l];
        double d2 = 0, n2 = 0;
        for (size_t i = 0; i < (size_t)a->n_in * a->n_out; i++) {
            d2 += pow((double)a->w[i] - b->w[i], 2);
            n2 += pow((double)b->w[i], 2);
        }
        double rel = sqrt(d2 / n2);
        printf("layer %d: ||W_%d - W_1|| / ||W_1|| = %.3g (limit 1e-5)\n", l + 1, size, rel);
        ok &= rel <= 1e-5 && n2 > 0;
    }
    /* and the runs did train: the weights moved away from their initial values */
    nndl_net *init = NULL;
    nndl_err err;
    nndl_config_net(cfg, (nndl_shape){1, 28, 28}, &init, &err);
    nndl_net_init(init, cfg->init, cfg->seed);
    double moved = 0;
    for (size_t i = 0; i < init->n_params; i++)
        moved = fmax(moved, fabs(init->params[i] - np->params[i]));
    printf("largest change of a parameter by training: %.3g\n", moved);
    nndl_net_free(init);
    return ok && moved > 1e-2;
}

/* COLLECTIVE: 1 on every rank if every rank's parameters are bit-identical to rank 0's. */
static int same_on_every_rank(const nndl_net *net)
{
    float *p0 = malloc(sizeof(float) * net->n_params);
    int differ = !p0;
    if (p0) {
        memcpy(p0, net->params, sizeof(float) * net->n_params);
        MPI_Bcast(p0, (int)net->n_params, MPI_FLOAT, 0, MPI_COMM_WORLD);
        differ = memcmp(p0, net->params, sizeof(float) * net->n_params) != 0;
        free(p0);
    }
    int rank, any = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (differ) fprintf(stderr, "test_ranks: rank %d's parameters differ from rank 0's\n", rank);
    MPI_Allreduce(&differ, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    return !any;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size, ok = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 4 && argc != 8) {
        if (rank == 0)
            fprintf(stderr, "usage: test_ranks DATA_DIR TRAIN_SAMPLES BATCH [DROPOUT MOMENTUM L2 "
                            "AUGMENT]\n");
        MPI_Finalize();
        return 2;
    }
    nndl_err err = {0};
    char pi[4200], pl[4200];
    nndl_data_find(pi, sizeof pi, argv[1], "train-images-idx3-ubyte");
    nndl_data_find(pl, sizeof pl, argv[1], "train-labels-idx1-ubyte");
    nndl_images im;
    nndl_split tr, va;
    nndl_status st = nndl_images_load(&im, pi, pl, 10, "run tools/fetch-data mnist", &err);
    if (st == NNDL_OK) st = nndl_split_train_val(&tr, &va, &im, atoi(argv[2]), 1000, 0, 1, &err);
    nndl_config cfg = config_of(argc, argv);
    nndl_net *np = NULL, *n1 = NULL;
    if (st == NNDL_OK) st = train(MPI_COMM_WORLD, &cfg, &tr, &va, &np, &err);
    int replicas_agree = st == NNDL_OK ? same_on_every_rank(np) : 1;
    if (rank == 0)
        printf("every rank's parameters bit-identical to rank 0's: %s\n",
               replicas_agree ? "yes" : "NO");
    if (st == NNDL_OK && rank == 0) st = train(MPI_COMM_SELF, &cfg, &tr, &va, &n1, &err);
    if (rank == 0 && st != NNDL_OK) fprintf(stderr, "test_ranks: %s\n", err.msg);
    if (rank == 0 && st == NNDL_OK) ok = same_model(np, n1, &cfg, size) && replicas_agree;
    if (rank == 0)
        printf("test_ranks np=%d batch=%s%s%s: %s\n%d passed, %d failed\n", size, argv[3],
               argc == 8 ? " with dropout/momentum/L2/augment" : "",
               cfg.overlap == NNDL_OVERLAP_ON     ? " with --overlap on"
               : cfg.split == NNDL_SPLIT_UNITS    ? " with --reduce shared --split units"
               : cfg.reduce == NNDL_REDUCE_SHARED ? " with --reduce shared and L2"
               : cfg.n_layers > 0                 ? " with conv layers"
                                                  : "",
               ok ? "PASS" : "FAIL", ok, !ok);
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    nndl_net_free(np);
    nndl_net_free(n1);
    MPI_Finalize();
    return ok ? 0 : 1;
}
