/* nndl-bench-micro: the machine's limits for tools/bench/run. Prints one JSON object.
 *   nndl-bench-micro sgemm N REPS
 *       single-thread cblas_sgemm GFLOP/s on N x N (median of REPS)
 *   nndl-bench-micro gemms SIZES BATCH REPS
 *       the GEMMs alone of one training step (forward + backward): us per step and samples/s
 *   mpirun -np P nndl-bench-micro allreduce N REPS
 *       MPI_Allreduce(SUM) of N floats: median microseconds
 *   mpirun -np P nndl-bench-micro steps SIZES BATCH ROUNDS
 *       training steps, blocking vs overlapped reduction
 *   nndl-bench-micro convs BATCH REPS
 *       the book's two conv-pool layers alone, forward + backprop (conv_ref.py: PyTorch's)
 *   mpirun -np 2 nndl-bench-micro coherence KB REPS
 *       rank 0 rewriting KB of node-shared memory: lines only it holds, lines rank 1 has just read
 *       (with ordinary and with non-temporal stores), lines rank 1 has just written; and a barrier
 */
#include <cblas.h>
#include <mpi.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nndl/train.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *rnd(size_t n)
{
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

static int sgemm_peak(int n, int reps)
{
    float *a = rnd((size_t)n * n), *b = rnd((size_t)n * n), *c = rnd((size_t)n * n);
    double *t = malloc(sizeof(double) * reps);
    /* warm up */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t[r] = now() - t0;
    }
    double s = median(t, reps);
    printf("{\"sgemm_n\": %d, \"sgemm_seconds\": %.6g, \"sgemm_gflops\": %.2f}\n", n, s,
           2.0 * n * n * n / s / 1e9);
    return 0;
}

/* The GEMMs of one step: per layer a forward A W^T, and backward dW = D^T A and (but for the
 * first layer) D W; exactly the calls nndl's core makes. */
static int gemms(const char *sizes_s, int batch, int reps)
{
    int sizes[64], n = 0;
    for (const char *p = sizes_s; *p && n < 64;) {
        sizes[n++] = atoi(p);
        while (*p && *p != ',') p++;
        if (*p) p++;
    }
    float *w[64], *a[64], *d[64], *dw[64];
    double flops = 0;
    for (int l = 0; l < n; l++) {
        a[l] = rnd((size_t)batch * sizes[l]);
        d[l] = rnd((size_t)batch * sizes[l]);
    }
    for (int l = 0; l + 1 < n; l++) {
        w[l] = rnd((size_t)sizes[l + 1] * sizes[l]);
        dw[l] = rnd((size_t)sizes[l + 1] * sizes[l]);
        flops += 2.0 * batch * sizes[l] * sizes[l + 1] * (l == 0 ? 2 : 3);
    }
    double *t = malloc(sizeof(double) * reps);
    for (int r = -10; r < reps; r++) {
        double t0 = now();
        for (int l = 0; l + 1 < n; l++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, sizes[l + 1], sizes[l], 1,
                        a[l], sizes[l], w[l], sizes[l], 1, a[l + 1], sizes[l + 1]);
        for (int l = n - 2; l >= 0; l--) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, sizes[l + 1], sizes[l], batch, 1,
                        d[l + 1], sizes[l + 1], a[l], sizes[l], 0, dw[l], sizes[l]);
            if (l > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, sizes[l],
                            sizes[l + 1], 1, d[l + 1], sizes[l + 1], w[l], sizes[l], 0, d[l],
                            sizes[l]);
        }
        if (r >= 0) t[r] = now() - t0;
    }
    double s = median(t, reps);
    printf("{\"sizes\": \"%s\", \"batch\": %d, \"gemm_us_per_step\": %.4g, \"gemm_samples_per_s\": "
           "%.0f, "
           "\"flops_per_step\": %.6g, \"gemm_gflops\": %.2f}\n",
           sizes_s, batch, 1e6 * s, batch / s, flops, flops / s / 1e9);
    return 0;
}

static int fail(const char *msg);

/* The conv layers alone: forward and backprop (the gradient) of the book's two conv-pool layers
 * (conv 20x5x5, pool 2x2, conv 40x5x5, pool 2x2; sigmoid) and a 640-10 softmax on a batch: what
 * nndl's conv kernels and pooling cost, for the comparison with oneDNN (tools/bench/conv_ref.py
 * runs the same layers through PyTorch, whose CPU convolutions are oneDNN's). */
static int convs(int batch, int reps)
{
    nndl_err err;
    nndl_net *net;
    const nndl_layer_spec spec[] = {
        {NNDL_LAYER_CONV, 20, 5, 2}, {NNDL_LAYER_CONV, 40, 5, 2}, {NNDL_LAYER_DENSE, 10, 0, 1}};
    const nndl_act act[] = {NNDL_ACT_SIGMOID, NNDL_ACT_SIGMOID};
    if (nndl_net_create_layers(&net, (nndl_shape){1, 28, 28}, spec, 3, act,
                               NNDL_COST_LOG_LIKELIHOOD, &err) != NNDL_OK ||
        nndl_net_reserve(net, batch, &err) != NNDL_OK)
        return fail(err.msg);
    nndl_net_init(net, NNDL_INIT_NETWORK3, 1);
    float *x = rnd((size_t)batch * 784);
    for (int i = 0; i < batch * 784; i++) x[i] += 0.5f;
    uint8_t *y = malloc((size_t)batch);
    for (int i = 0; i < batch; i++) y[i] = (uint8_t)(i % 10);
    double *t = malloc(sizeof(double) * reps);
    for (int r = -20; r < reps; r++) {
        double t0 = now();
        nndl_net_backprop(net, x, y, batch, NULL);
        if (r >= 0) t[r] = now() - t0;
    }
    double s = median(t, reps);
    printf("{\"convs_batch\": %d, \"convs_us_per_step\": %.4g, \"convs_samples_per_s\": %.0f}\n",
           batch, 1e6 * s, batch / s);
    nndl_net_free(net);
    return 0;
}

static int allreduce(int argc, char **argv, long n, int reps)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    float *buf = rnd((size_t)n);
    double *t = malloc(sizeof(double) * reps);
    for (int r = -50; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (r >= 0) t[r] = now() - t0;
        for (long i = 0; i < n; i++) buf[i] *= 0.5f; /* keep the values finite */
    }
    double s = median(t, reps);
    if (rank == 0)
        printf("{\"allreduce_floats\": %ld, \"ranks\": %d, \"allreduce_us\": %.4g}\n", n, size,
               1e6 * s);
    MPI_Finalize();
    return 0;
}

static int fail(const char *msg)
{
    fprintf(stderr, "nndl-bench-micro: %s\n", msg);
    return 1;
}

/* Synthetic images for a net of c's sizes: n training and batch validation samples (pixels from a
 * multiplicative hash: the timing does not depend on their values). */
static void synthetic(const nndl_config *c, int n, int batch, nndl_images *im, nndl_split *tr,
                      nndl_split *va)
{
    nndl_err err;
    int px = c->sizes[0], total = n + batch;
    *im = (nndl_images){
        total, 1, px, c->sizes[c->n_sizes - 1], malloc((size_t)total * px), malloc((size_t)total),
        0};
    for (size_t i = 0; i < (size_t)total * px; i++)
        im->pixels[i] = (uint8_t)((i * 2654435761u) >> 24);
    for (int i = 0; i < total; i++) im->labels[i] = (uint8_t)(i % im->n_classes);
    nndl_split_range(tr, im, 0, n, &err);
    nndl_split_range(va, im, n, batch, &err);
}

/* Training steps of SIZES at BATCH on the ranks of mpirun, the gradient reduction alternating
 * between one blocking MPI_Allreduce and buckets overlapping backprop (--overlap), round by round
 * in one process (the fairest comparison on a noisy machine): median seconds per step of each. */
static int steps(int argc, char **argv, const char *sizes_s, int batch, int rounds)
{
    MPI_Init(&argc, &argv);
    nndl_dist d;
    nndl_err err;
    nndl_dist_init(&d, MPI_COMM_WORLD, &err);
    nndl_config c = {.cost = NNDL_COST_LOG_LIKELIHOOD,
                     .eta = 0.001,
                     .batch = batch,
                     .seed = 1,
                     .shuffle = 1,
                     .reduce = NNDL_REDUCE_MPI};
    for (const char *p = sizes_s; *p && c.n_sizes < NNDL_MAX_SIZES;
         p += strcspn(p, ",") + (p[strcspn(p, ",")] != 0))
        c.sizes[c.n_sizes++] = atoi(p);
    for (int i = 0; i < NNDL_MAX_SIZES; i++) c.act[i] = NNDL_ACT_RELU;
    int per_round = 20;
    nndl_images im;
    nndl_split tr, va;
    synthetic(&c, batch * per_round, batch, &im, &tr, &va);
    nndl_net *net;
    nndl_net_create(&net, c.sizes, c.n_sizes, c.act, c.cost, &err);
    nndl_net_init(net, NNDL_INIT_NIELSEN, 1);
    /* two trainers on one net: the blocking reduction and the one in buckets (--overlap on) */
    nndl_trainer *t[2];
    nndl_step_plan plan[2];
    for (int mode = 0; mode < 2; mode++) {
        c.overlap = mode ? NNDL_OVERLAP_ON : NNDL_OVERLAP_OFF;
        nndl_trainer_setup s = {net, &c, &plan[mode], &tr, &va, &d, NULL, {0}};
        if (nndl_trainer_plan(&c, net, tr.n, &d, &plan[mode], &err) != NNDL_OK ||
            nndl_trainer_create(&t[mode], &s, &err) != NNDL_OK)
            return fail(err.msg);
    }
    double *ts[2] = {malloc(sizeof(double) * rounds), malloc(sizeof(double) * rounds)};
    for (int r = -2; r < rounds; r++)
        for (int mode = 0; mode < 2; mode++) {
            nndl_epoch_metrics m;
            if (nndl_trainer_epoch(t[mode], &m, &err) != NNDL_OK) return fail(err.msg);
            if (r >= 0) ts[mode][r] = m.seconds / per_round;
        }
    double b = median(ts[0], rounds), o = median(ts[1], rounds);
    if (d.rank == 0)
        printf("{\"sizes\": \"%s\", \"batch\": %d, \"ranks\": %d, \"overlap\": %d, "
               "\"blocking_us_per_step\": %.4g, \"overlap_us_per_step\": %.4g, "
               "\"overlap_speedup\": %.3f}\n",
               sizes_s, batch, d.size, plan[1].overlap, 1e6 * b, 1e6 * o, b / o);
    nndl_trainer_free(t[0]);
    nndl_trainer_free(t[1]);
    MPI_Finalize();
    return 0;
}

/* One rewrite of w[0..n): w = 0.999 w + 1e-6 (an update's read-modify-write), streamed or not. */
static void rewrite(float *w, size_t n, int streamed)
{
#if defined(__SSE2__)
    if (streamed) {
        for (size_t i = 0; i + 4 <= n; i += 4)
            _mm_stream_ps(w + i, _mm_add_ps(_mm_mul_ps(_mm_load_ps(w + i), _mm_set1_ps(0.999f)),
                                            _mm_set1_ps(1e-6f)));
        _mm_sfence();
        return;
    }
#endif
    (void)streamed;
    for (size_t i = 0; i < n; i++) w[i] = 0.999f * w[i] + 1e-6f;
}

/* What the node-shared step pays for sharing cache lines between two cores: median microseconds of
 * rank 0's rewrite of kb KB after rank 1 did nothing (mode 0), read it (1, and 3 with rank 0's
 * stores non-temporal), or rewrote it (2). */
static int coherence(int argc, char **argv, int kb, int reps)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t n = (size_t)kb * 256;
    float *w;
    volatile float sink = 0.0f; /* rank 1's reads are not optimised away */
    MPI_Win win;
    MPI_Win_allocate_shared(rank == 0 ? (MPI_Aint)(sizeof(float) * (n + 16)) : 0, sizeof(float),
                            MPI_INFO_NULL, MPI_COMM_WORLD, &w, &win);
    MPI_Aint bytes;
    int unit;
    MPI_Win_shared_query(win, 0, &bytes, &unit, &w);
    w += (64 - (uintptr_t)w % 64) % 64 / sizeof(float); /* whole cache lines */
    if (rank == 0) memset(w, 0, sizeof(float) * n);
    double *t = malloc(sizeof(double) * (size_t)reps), us[5];
    for (int mode = 0; mode < 5; mode++) {
        for (int r = -3; r < reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            if (rank == 1 && (mode == 1 || mode == 3))
                for (size_t i = 0; i < n; i++) sink += w[i];
            if (rank == 1 && mode == 2) rewrite(w, n, 0);
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = now();
            if (mode == 4)
                MPI_Barrier(MPI_COMM_WORLD); /* the barrier alone */
            else if (rank == 0)
                rewrite(w, n, mode == 3);
            if (r >= 0) t[r] = now() - t0;
        }
        us[mode] = 1e6 * median(t, reps);
    }
    if (rank == 0)
        printf(
            "{\"coherence_kb\": %d, \"ranks\": %d, \"own_us\": %.2f, \"after_read_us\": %.2f, "
            "\"after_write_us\": %.2f, \"after_read_streamed_us\": %.2f, \"barrier_us\": %.2f}\n",
            kb, size, us[0], us[1], us[2], us[3], us[4]);
    (void)sink;
    free(t);
    MPI_Win_free(&win);
    MPI_Finalize();
    return 0;
}

int main(int argc, char **argv)
{
    openblas_set_num_threads(1);
    if (argc == 4 && !strcmp(argv[1], "sgemm")) return sgemm_peak(atoi(argv[2]), atoi(argv[3]));
    if (argc == 5 && !strcmp(argv[1], "gemms")) return gemms(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "convs")) return convs(atoi(argv[2]), atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "allreduce"))
        return allreduce(argc, argv, atol(argv[2]), atoi(argv[3]));
    if (argc == 5 && !strcmp(argv[1], "steps"))
        return steps(argc, argv, argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "coherence"))
        return coherence(argc, argv, atoi(argv[2]), atoi(argv[3]));
    fprintf(stderr,
            "usage: nndl-bench-micro sgemm N REPS | gemms SIZES BATCH REPS | allreduce N REPS | "
            "steps SIZES BATCH ROUNDS | convs BATCH REPS | coherence KB REPS\n");
    return 2;
}
